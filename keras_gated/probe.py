"""Read what the gates of a recurrent layer do, step by step.

Every cell of keras-gated computes one step with
`gated_step(projected, states, training) -> (output, new_states, gates)`,
where `gates` maps gate names ("input", "forget", "output", ...) to their
activations, and `project_inputs(x)` computes the input half of every gate
block for a whole sequence. The layers use the same two methods (and throw
the gates away), so the probe re-runs exactly the cell's own equations with
the layer's own weights, in a Python loop over time, and keeps what the
layer discards. Nothing is patched and nothing runs unless you call the
probe, so it costs nothing when unused.

What it reads:

* the layers of this package (`PeepholeLSTM`, `CoupledLSTM`, `UntiedLSTM`,
  and any cell with `gated_step` and `project_inputs`, such as the
  depth-gated and Grid LSTM stacks, whose states are (h, c) for every
  layer/level), also inside a plain `keras.layers.RNN(cell)`;
* `keras.layers.LSTM` / `LSTMCell`: the gates are recomputed from the
  layer's weights. Keras concatenates the gate blocks of `kernel`,
  `recurrent_kernel` and `bias` in the order **i, f, c, o** (input, forget,
  candidate, output);
* `keras.layers.GRU` / `GRUCell`: recomputed from the weights, blocks in
  the order **z, r, h** (update, reset, candidate); both `reset_after=True`
  (the default, with a separate recurrent bias, `bias` of shape (2, 3H))
  and `reset_after=False` are handled. A GRU keeps no separate memory cell,
  so its trace has no `cell_states`;
* `keras.layers.SimpleRNN`: it has no gates, but its hidden states and its
  gradient flow are read the same way (the baseline that vanishes);
* `keras.layers.Bidirectional` over any of these: two traces, named
  `"<name>/forward"` and `"<name>/backward"`;
* models (`keras.Sequential` and functional models, nested ones
  included): the model is run once on the inputs and the input of every
  supported layer is taken on the way, with its mask, so a layer deep inside
  the model is probed on exactly what it receives there.

All arrays are indexed by the position of the input step, also for layers
that run backwards (`go_backwards=True`, the backward half of a
`Bidirectional`): index t holds what the layer computed when it read x_t.

Example:

>>> model = keras.Sequential([
...     keras.Input((20, 8)),
...     kg.PeepholeLSTM(16, return_sequences=True),
...     keras.layers.LSTM(16),
...     keras.layers.Dense(1)])
>>> traces = kg.probe.gate_activations(model, x)
>>> trace = traces["peephole_lstm"]
>>> trace.gates["forget"].shape               # (batch, T, units)
>>> left, right = trace.saturation("forget")  # per unit, in [0, 1]
>>> flows = kg.probe.gradient_flow(model, x, y)
>>> flows["lstm"].shape                       # (levels, T): ||dL/dh_t||
"""

import dataclasses
import inspect as pyinspect

import keras
import numpy as np
from keras import ops
from keras.src import backend as keras_backend
from keras.src import tree

__all__ = [
    "GateTrace",
    "Inspection",
    "find_gated_layers",
    "gate_activations",
    "gradient_flow",
    "inspect",
    "is_recurrent",
    "trace_layer",
    "transform_gates",
]

LEFT_SATURATION = 0.1
RIGHT_SATURATION = 0.9


@dataclasses.dataclass
class GateTrace:
    """Everything one recurrent layer computed, for every step of a batch.

    Attributes:
        name: Path of the layer in the model (`"outer/inner"` for nested
            models; `"<name>/forward"`, `"<name>/backward"` for the halves
            of a `Bidirectional`).
        layer: The `keras.layers.RNN` that was probed.
        gates: Dict gate name -> activations of shape (batch, T, units), in
            the order the cell returns them. For stacks the names carry the
            level, as the cell names them.
        hidden_states: One array (batch, T, units) per level: h_t after
            each step (for one-level cells, a list of one).
        cell_states: One array (batch, T, units) per level: the memory cell
            c_t after each step; empty for cells without a separate memory
            (GRU, SimpleRNN).
        outputs: The layer's output at every step, (batch, T, units).
        mask: Boolean (batch, T), or None. Steps where it is False were
            skipped by the layer: states are carried over, and their gate
            values mean nothing (`values` and `saturation` leave them out).
    """

    name: str
    layer: object
    gates: dict
    hidden_states: list
    cell_states: list
    outputs: np.ndarray
    mask: object = None

    @property
    def timesteps(self):
        return self.outputs.shape[1]

    def values(self, gate):
        """The activations of `gate` at the valid steps, as (n, units)."""
        activations = self.gates[gate]
        units = activations.shape[-1]
        if self.mask is None:
            return activations.reshape(-1, units)
        return activations[self.mask.astype(bool)].reshape(-1, units)

    def saturation(self, gate, low=LEFT_SATURATION, high=RIGHT_SATURATION):
        """Per unit, the fractions of steps with activation < low and > high.

        Returns two arrays of shape (units,) with values in [0, 1]: the x
        (left-saturated) and y (right-saturated) coordinates of the points of
        Karpathy, Johnson & Fei-Fei 2015, Fig. 2.
        """
        values = self.values(gate)
        if values.shape[0] == 0:
            empty = np.zeros(values.shape[-1])
            return empty, empty
        return (values < low).mean(axis=0), (values > high).mean(axis=0)

    def state_norms(self):
        """||c_t|| (or ||h_t|| without a memory cell) per level and step.

        Returns an array (levels, T): the Euclidean norm over the units,
        averaged over the batch (masked steps are left out of the average).
        """
        states = self.cell_states or self.hidden_states
        norms = np.stack([np.linalg.norm(s, axis=-1) for s in states])
        if self.mask is None:
            return norms.mean(axis=1)
        weights = self.mask.astype(norms.dtype)
        return (norms * weights).sum(axis=1) / np.maximum(weights.sum(axis=0), 1)


# -- what a layer computes, one step at a time ---------------------------


def _takes_hidden_perturbations(cell):
    """Whether `cell.gated_step` adds perturbations to each level's h itself.

    A stacked cell (several levels inside one step) may accept
    `gated_step(..., hidden_perturbations=[e_0, e_1, ...])` and add e_k to
    level k's h_t right where it is computed, before the levels above read
    it; then dL/de_k is the full dL/dh^k_t, the path up through the levels
    of the same step included. Otherwise the probe adds e_k to the state
    that leaves the step (see `gradient_flow`).
    """
    step = getattr(cell, "gated_step", None)
    if step is None:
        return False
    try:
        return "hidden_perturbations" in pyinspect.signature(step).parameters
    except (TypeError, ValueError):
        return False


def _cell_steps(cell):
    """(project, step) for a cell: the input projection and one step.

    `step(projected_t, states) -> (output, new_states, gates)`.
    """
    if hasattr(cell, "gated_step") and hasattr(cell, "project_inputs"):
        return cell.project_inputs, (
            lambda projected, states: cell.gated_step(projected, states, training=False)
        )
    if isinstance(cell, keras.layers.LSTMCell):
        return _dense_projection(cell), _lstm_step(cell)
    if isinstance(cell, keras.layers.GRUCell):
        return _gru_projection(cell), _gru_step(cell)
    if isinstance(cell, keras.layers.SimpleRNNCell):
        return _dense_projection(cell), _simple_rnn_step(cell)
    raise ValueError(
        f"The probe cannot read the cell {cell.__class__.__name__}. It reads "
        "cells with `gated_step` and `project_inputs` (every keras-gated "
        "cell) and keras.layers.LSTMCell, GRUCell and SimpleRNNCell."
    )


def _dense_projection(cell):
    def project(inputs):
        projected = ops.matmul(inputs, cell.kernel)
        return projected + cell.bias if cell.use_bias else projected

    return project


def _lstm_step(cell):
    # keras.layers.LSTMCell: blocks i, f, c, o in kernel, recurrent_kernel, bias.
    σ, φ = cell.recurrent_activation, cell.activation

    def step(projected, states):
        h_tm1, c_tm1 = states[0], states[1]
        z = projected + ops.matmul(h_tm1, cell.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i, f, o = σ(z_i), σ(z_f), σ(z_o)
        c = f * c_tm1 + i * φ(z_c)
        h = o * φ(c)
        return h, [h, c], {"input": i, "forget": f, "output": o}

    return step


def _gru_projection(cell):
    def project(inputs):
        projected = ops.matmul(inputs, cell.kernel)
        if not cell.use_bias:
            return projected
        input_bias = cell.bias[0] if cell.reset_after else cell.bias
        return projected + input_bias

    return project


def _gru_step(cell):
    # keras.layers.GRUCell: blocks z (update), r (reset), h (candidate).
    σ, φ = cell.recurrent_activation, cell.activation
    H = cell.units

    def step(projected, states):
        h_tm1 = states[0]
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        if cell.reset_after:
            inner = ops.matmul(h_tm1, cell.recurrent_kernel)
            if cell.use_bias:
                inner = inner + cell.bias[1]
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z, r = σ(x_z + r_z), σ(x_r + r_r)
            candidate = φ(x_h + r * r_h)
        else:
            kernel = cell.recurrent_kernel
            z = σ(x_z + ops.matmul(h_tm1, kernel[:, :H]))
            r = σ(x_r + ops.matmul(h_tm1, kernel[:, H : 2 * H]))
            candidate = φ(x_h + ops.matmul(r * h_tm1, kernel[:, 2 * H :]))
        h = z * h_tm1 + (1.0 - z) * candidate
        return h, [h], {"update": z, "reset": r}

    return step


def _simple_rnn_step(cell):
    def step(projected, states):
        h = projected + ops.matmul(states[0], cell.recurrent_kernel)
        if cell.activation is not None:
            h = cell.activation(h)
        return h, [h], {}

    return step


def _state_slots(cell):
    """Indices of the hidden and the memory states: (h, c) for every level."""
    count = len(tree.flatten(cell.state_size))
    if count == 1:
        return [0], []
    return list(range(0, count, 2)), list(range(1, count, 2))


def _hidden_widths(cell):
    sizes = tree.flatten(cell.state_size)
    return [int(sizes[slot]) for slot in _state_slots(cell)[0]]


def is_recurrent(layer):
    """Whether the probe can read `layer` (an RNN over a supported cell)."""
    if not isinstance(layer, keras.layers.RNN):
        return False
    try:
        _cell_steps(layer.cell)
    except ValueError:
        return False
    return True


def _is_bidirectional(layer):
    return isinstance(layer, keras.layers.Bidirectional) and is_recurrent(
        layer.forward_layer
    ) and is_recurrent(layer.backward_layer)


def _flat_gates(gates, prefix=""):
    """Nested gate dicts/lists (stacks) -> flat {"level/gate": tensor}."""
    flat = {}
    items = gates.items() if isinstance(gates, dict) else enumerate(gates)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, (dict, list, tuple)):
            flat.update(_flat_gates(value, name + "/"))
        else:
            flat[name] = value
    return flat


def _initial_state(layer, batch_size, initial_state):
    if initial_state is not None:
        return [ops.convert_to_tensor(s) for s in tree.flatten(initial_state)]
    if layer.stateful and getattr(layer, "states", None) is not None:
        return [ops.convert_to_tensor(s) for s in tree.flatten(layer.states)]
    return list(tree.flatten(layer.get_initial_state(batch_size)))


def _run_recurrence(layer, inputs, initial_state=None, mask=None, perturbations=None):
    """Runs `layer`'s cell over `inputs` step by step, keeping everything.

    `perturbations`, one (batch, T, units) tensor per level, are added to
    each level's h_t after step t (before the mask, so skipped steps get
    none); the loss's gradient with respect to them is dL/dh_t.

    Returns a dict of per-step lists in processing order ("outputs",
    "states", "gates") and the layer's own return value ("result").
    """
    # Outside the layer's __call__ nothing autocasts, so under a mixed
    # precision policy the replay runs in the weights' dtype (float32).
    dtype = layer.cell.variable_dtype
    inputs = ops.cast(ops.convert_to_tensor(inputs), dtype)
    if mask is not None:
        mask = ops.cast(ops.convert_to_tensor(mask), "bool")
    project, step = _cell_steps(layer.cell)
    hidden_slots, _ = _state_slots(layer.cell)
    timesteps = inputs.shape[1]
    states = [
        ops.cast(s, dtype)
        for s in _initial_state(layer, ops.shape(inputs)[0], initial_state)
    ]
    projected = project(inputs)
    order = range(timesteps - 1, -1, -1) if layer.go_backwards else range(timesteps)

    inner = perturbations is not None and _takes_hidden_perturbations(layer.cell)
    outputs, all_states, all_gates = [], [], []
    previous_output = None
    for t in order:
        if inner:
            output, new_states, gates = layer.cell.gated_step(
                projected[:, t],
                states,
                training=False,
                hidden_perturbations=[p[:, t] for p in perturbations],
            )
        else:
            output, new_states, gates = step(projected[:, t], states)
        new_states = list(tree.flatten(new_states))
        if perturbations is not None and not inner:
            for slot, perturbation in zip(hidden_slots, perturbations):
                perturbed = new_states[slot] + perturbation[:, t]
                if output is new_states[slot]:
                    output = perturbed
                new_states[slot] = perturbed
        if mask is not None:
            keep = ops.expand_dims(mask[:, t], -1)
            new_states = [ops.where(keep, n, s) for n, s in zip(new_states, states)]
            if previous_output is None or layer.zero_output_for_mask:
                previous_output = ops.zeros_like(output)
            output = ops.where(keep, output, previous_output)
        states = new_states
        previous_output = output
        outputs.append(output)
        all_states.append(new_states)
        all_gates.append(_flat_gates(gates))

    if layer.return_sequences:
        result = ops.stack(outputs, axis=1)
    else:
        result = outputs[-1]
    if layer.return_state:
        result = [result] + list(states)
    return {
        "outputs": outputs,
        "states": all_states,
        "gates": all_gates,
        "result": result,
        "order": list(order),
    }


def _to_input_order(steps, order):
    """Stacks per-step tensors (processing order) into (batch, T, ...) in input order."""
    array = ops.convert_to_numpy(ops.stack(steps, axis=1))
    if order and order[0] > order[-1]:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)


def _trace_from_run(name, layer, run, mask):
    order = run["order"]
    hidden_slots, cell_slots = _state_slots(layer.cell)
    gates = {
        gate: _to_input_order([g[gate] for g in run["gates"]], order)
        for gate in (run["gates"][0] if run["gates"] else {})
    }

    def states_at(slot):
        return _to_input_order([s[slot] for s in run["states"]], order)

    if mask is not None:
        mask = ops.convert_to_numpy(ops.cast(ops.convert_to_tensor(mask), "bool"))
    return GateTrace(
        name=name,
        layer=layer,
        gates=gates,
        hidden_states=[states_at(slot) for slot in hidden_slots],
        cell_states=[states_at(slot) for slot in cell_slots],
        outputs=_to_input_order(run["outputs"], order),
        mask=mask,
    )


def trace_layer(layer, inputs, initial_state=None, mask=None, name=None):
    """Runs one recurrent layer on `inputs` and returns its `GateTrace`.

    Args:
        layer: A `keras.layers.RNN` (any layer of this package,
            `keras.layers.LSTM`, `GRU`, `SimpleRNN`, or `RNN(cell)` over a
            supported cell). Built, or built here by calling it once.
        inputs: (batch, T, features) array or tensor.
        initial_state: Optional list of initial states, as the layer takes.
        mask: Optional boolean (batch, T): False marks padding steps.
        name: Name of the trace; default the layer's name.
    """
    if not is_recurrent(layer):
        raise ValueError(
            f"trace_layer needs a recurrent layer the probe can read "
            f"(keras-gated layers, keras LSTM/GRU/SimpleRNN, RNN over such a "
            f"cell); received {layer.__class__.__name__} '{layer.name}'. For "
            "a Bidirectional wrapper or a model use gate_activations()."
        )
    inputs = ops.convert_to_tensor(inputs)
    if not layer.built:
        layer(inputs, initial_state=initial_state, mask=mask)
    run = _run_recurrence(layer, inputs, initial_state, mask)
    return _trace_from_run(name or layer.name, layer, run, mask)


def _bidirectional_halves(layer, initial_state):
    halves = [(layer.forward_layer, "forward"), (layer.backward_layer, "backward")]
    if initial_state is None:
        return [(sub, direction, None) for sub, direction in halves]
    states = list(tree.flatten(initial_state))
    half = len(states) // 2
    return [
        (layer.forward_layer, "forward", states[:half]),
        (layer.backward_layer, "backward", states[half:]),
    ]


# -- walking a model ------------------------------------------------------


def _graph_of(model):
    """The functional graph that runs `model`, or None."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if hasattr(model, "_run_through_graph") and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def _contains_layers(layer):
    return isinstance(layer, keras.Model)


def _call_model(model, inputs, hook, path=""):
    """Calls `model` on `inputs` with every layer call routed through `hook`.

    `hook(layer, path, args, kwargs)` returns the layer's outputs (it may
    record the arguments, or compute the outputs its own way). Nested
    models are entered, so the hook sees every layer with the tensors it
    receives in the model (masks included, as Keras attaches them to the
    tensors).
    """

    def route(layer, args, kwargs):
        layer_path = f"{path}{layer.name}"
        if getattr(layer, "_call_has_training_arg", False):
            kwargs["training"] = False
        if _contains_layers(layer):
            kwargs.pop("training", None)
            kwargs.pop("mask", None)
            return _call_model(layer, args[0], hook, layer_path + "/")
        return hook(layer, layer_path, args, kwargs)

    graph = _graph_of(model)
    if graph is not None:
        flat_inputs = graph._standardize_inputs(inputs)
        outputs = graph._run_through_graph(
            flat_inputs,
            operation_fn=lambda op: (lambda *a, **k: route(op, a, dict(k))),
        )
        return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs
    if isinstance(model, keras.Sequential):
        outputs = tree.map_structure(ops.convert_to_tensor, inputs)
        mask = None
        for layer in model.layers:
            kwargs = {}
            if getattr(layer, "_call_has_mask_arg", False) and mask is not None:
                kwargs["mask"] = mask
            outputs = route(layer, (outputs,), kwargs)
            mask = tree.map_structure(keras_backend.get_keras_mask, outputs)
        return outputs
    raise ValueError(
        f"The probe walks Sequential and functional models; "
        f"{model.__class__.__name__} '{model.name}' is a subclassed model "
        "whose layer calls it cannot see. Probe its recurrent layers directly "
        "with trace_layer(layer, inputs_of_that_layer)."
    )


def _call_arguments(args, kwargs):
    """(inputs, initial_state, mask) of a recorded RNN/Bidirectional call."""
    inputs = args[0]
    initial_state = kwargs.get("initial_state", args[1] if len(args) > 1 else None)
    mask = kwargs.get("mask", args[2] if len(args) > 2 else None)
    if mask is None:
        mask = keras_backend.get_keras_mask(inputs)
    if tree.is_nested(mask):
        mask = tree.flatten(mask)[0]
    return inputs, initial_state, mask


def _is_highway(layer):
    return callable(getattr(layer, "transform_gate", None))


def _record_calls(model, inputs, wanted):
    """Runs `model` once; returns [(path, layer, args, kwargs)] for wanted layers."""
    calls = []
    seen = set()

    def hook(layer, path, args, kwargs):
        if wanted(layer) and id(layer) not in seen:
            seen.add(id(layer))
            calls.append((path, layer, args, dict(kwargs)))
        return layer(*args, **kwargs)

    _call_model(model, _as_tensors(inputs), hook)
    return calls


def _as_tensors(inputs):
    return tree.map_structure(
        lambda x: x if x is None else ops.convert_to_tensor(x), inputs
    )


def find_gated_layers(model):
    """The layers of `model` the probe reads, as a list of (path, layer).

    Recurrent layers (keras-gated, LSTM, GRU, SimpleRNN, RNN over such a
    cell), `Bidirectional` wrappers over them, and Highway layers (anything
    with a `transform_gate(x)` method), in model order, nested models
    entered (paths `"outer/inner"`).
    """
    found = []

    def walk(layer, prefix):
        if is_recurrent(layer) or _is_bidirectional(layer) or _is_highway(layer):
            found.append((prefix + layer.name, layer))
        elif _contains_layers(layer):
            for inner in layer.layers:
                walk(inner, prefix + layer.name + "/")

    for layer in model.layers if _contains_layers(model) else [model]:
        walk(layer, "")
    return found


def _traces_of_call(path, layer, inputs, initial_state, mask):
    if _is_bidirectional(layer):
        return {
            f"{path}/{direction}": trace_layer(
                sub, inputs, state, mask, name=f"{path}/{direction}"
            )
            for sub, direction, state in _bidirectional_halves(layer, initial_state)
        }
    return {path: trace_layer(layer, inputs, initial_state, mask, name=path)}


# -- one replayed pass through a model ---------------------------------------


def _replay(layer, path, args, kwargs, perturbations_for, records):
    """The outputs of an RNN or Bidirectional call, recomputed step by step.

    Each half's per-step run is appended to `records`; `perturbations_for(
    name, rnn, inputs)` returns the perturbations of its levels, or None.
    """
    inputs, initial_state, mask = _call_arguments(args, kwargs)
    if not _is_bidirectional(layer):
        perturbations = perturbations_for(path, layer, inputs)
        run = _run_recurrence(layer, inputs, initial_state, mask, perturbations)
        records.append((path, layer, run, mask))
        result = run["result"]
        if mask is not None and layer.return_sequences:
            keras_backend.set_keras_mask(
                result[0] if layer.return_state else result, mask
            )
        return result
    if layer.return_state:
        raise ValueError(
            "The probe does not replay a Bidirectional layer with "
            f"return_state=True ('{layer.name}'); probe its forward_layer and "
            "backward_layer with trace_layer instead."
        )
    results = {}
    for sub, direction, state in _bidirectional_halves(layer, initial_state):
        name = f"{path}/{direction}"
        run = _run_recurrence(
            sub, inputs, state, mask, perturbations_for(name, sub, inputs)
        )
        records.append((name, sub, run, mask))
        results[direction] = run["result"]
    forward, backward = results["forward"], results["backward"]
    if layer.return_sequences:
        backward = ops.flip(backward, axis=1)
    mode = layer.merge_mode
    if mode == "concat":
        output = ops.concatenate([forward, backward], axis=-1)
    elif mode == "sum":
        output = forward + backward
    elif mode == "ave":
        output = (forward + backward) / 2
    elif mode == "mul":
        output = forward * backward
    else:
        output = [forward, backward]
    if mask is not None and layer.return_sequences and mode is not None:
        keras_backend.set_keras_mask(output, mask)
    return output


def _selector(layers):
    """A predicate on (layer, path) for the `layers=` argument."""
    if layers is None:
        return lambda layer, path: True
    names = [choice for choice in layers if isinstance(choice, str)]
    objects = [id(choice) for choice in layers if not isinstance(choice, str)]
    return lambda layer, path: (
        id(layer) in objects or layer.name in names or path in names
    )


def _replayed_run(model, x, selected, perturbations_for=None):
    """Runs `model` once with every selected recurrent layer replayed.

    Returns (y_pred, records, highways): records are (name, rnn, run, mask)
    per recurrent layer (per half of a Bidirectional), highways are
    (path, layer, inputs) per Highway layer. The replays compute the very
    numbers the layers would, so y_pred is the model's output.
    """
    perturbations_for = perturbations_for or (lambda name, rnn, inputs: None)
    records, highways = [], []
    replayed, seen = set(), set()

    def hook(layer, path, args, kwargs):
        if _is_highway(layer) and id(layer) not in seen:
            seen.add(id(layer))
            highways.append((path, layer, args[0]))
        readable = is_recurrent(layer) or _is_bidirectional(layer)
        if readable and selected(layer, path) and id(layer) not in replayed:
            replayed.add(id(layer))
            return _replay(layer, path, args, kwargs, perturbations_for, records)
        return layer(*args, **kwargs)

    y_pred = _call_model(model, x, hook)
    return y_pred, records, highways


@dataclasses.dataclass
class Inspection:
    """What `inspect` found in one pass over a model.

    Attributes:
        traces: Dict name -> `GateTrace` (see `gate_activations`).
        gradient_flow: Dict name -> array (levels, T) (see
            `gradient_flow`); empty without targets.
        transform_gates: Dict path -> T(x) of every Highway layer (see
            `transform_gates`).
        hidden_gradients: Dict name -> one array (batch, T, units) per
            level: dL/dh_t itself, whose norms make `gradient_flow`.
    """

    traces: dict
    gradient_flow: dict
    transform_gates: dict
    hidden_gradients: dict


def inspect(model, x, y=None, sample_weight=None, layers=None):
    """Gate traces, gradient flow and Highway gates of `model` in one pass.

    This is what `GateMonitor` calls: with targets `y` the model is run
    once under differentiation (twice on JAX, whose gradients need the
    shapes first) and everything is read from that run.

    Args:
        model: A Sequential or functional model (compiled, for the gradient
            flow).
        x, y, sample_weight: One batch; without `y` no gradient flow.
        layers: Optional list of layer names, paths or layers to read
            (default: all readable recurrent layers).
    """
    x = _as_tensors(x)
    selected = _selector(layers)
    if y is None:
        _, records, highways = _replayed_run(model, x, selected)
        return _inspection(records, highways)
    y = _as_tensors(y)
    if sample_weight is not None:
        sample_weight = _as_tensors(sample_weight)
    backend = keras.backend.backend()
    created = []

    def loss_of(y_pred):
        return model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )

    def zeros_for(rnn, inputs):
        return [
            ops.zeros(
                (ops.shape(inputs)[0], inputs.shape[1], width),
                dtype=rnn.cell.variable_dtype,
            )
            for width in _hidden_widths(rnn.cell)
        ]

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:

            def perturbations_for(name, rnn, inputs):
                perturbations = zeros_for(rnn, inputs)
                tape.watch(perturbations)
                created.extend((name, p) for p in perturbations)
                return perturbations

            y_pred, records, highways = _replayed_run(
                model, x, selected, perturbations_for
            )
            loss = loss_of(y_pred)
        grads = tape.gradient(loss, [p for _, p in created]) if created else []
    elif backend == "torch":
        import torch

        def perturbations_for(name, rnn, inputs):
            perturbations = [p.requires_grad_(True) for p in zeros_for(rnn, inputs)]
            created.extend((name, p) for p in perturbations)
            return perturbations

        y_pred, records, highways = _replayed_run(model, x, selected, perturbations_for)
        loss = loss_of(y_pred)
        grads = (
            torch.autograd.grad(loss, [p for _, p in created], allow_unused=True)
            if created
            else []
        )
    elif backend == "jax":
        import jax

        _, records, highways = _replayed_run(model, x, selected)
        for name, rnn, run, _ in records:
            batch = ops.shape(run["outputs"][0])[0]
            created.extend(
                (name, ops.zeros((batch, len(run["outputs"]), width), dtype=run["outputs"][0].dtype))
                for width in _hidden_widths(rnn.cell)
            )

        def loss_fn(perturbations):
            remaining = iter(perturbations)

            def perturbations_for(name, rnn, inputs):
                return [next(remaining) for _ in _state_slots(rnn.cell)[0]]

            y_pred, _, _ = _replayed_run(model, x, selected, perturbations_for)
            return loss_of(y_pred)

        grads = jax.grad(loss_fn)([p for _, p in created]) if created else []
    else:
        raise ValueError(
            f"The gradient flow supports the tensorflow, jax and torch "
            f"backends; the current backend is {backend!r}."
        )
    gradients = {}
    for (name, perturbation), grad in zip(created, grads):
        if grad is None:
            grad = np.zeros(tuple(perturbation.shape))
        gradients.setdefault(name, []).append(
            ops.convert_to_numpy(grad).astype("float64")
        )
    return _inspection(records, highways, gradients)


def _inspection(records, highways, gradients=None):
    gradients = gradients or {}
    flows = {
        name: np.stack([np.sqrt((g**2).sum(axis=(0, 2))) for g in levels])
        for name, levels in gradients.items()
    }
    traces = {
        name: _trace_from_run(name, rnn, run, mask)
        for name, rnn, run, mask in records
    }
    gates = {
        path: ops.convert_to_numpy(layer.transform_gate(inputs))
        for path, layer, inputs in highways
    }
    return Inspection(
        traces=traces,
        gradient_flow=flows,
        transform_gates=gates,
        hidden_gradients=gradients,
    )


def gate_activations(target, inputs, initial_state=None, mask=None):
    """Gate activations, memory cells and hidden states of every step.

    Args:
        target: A recurrent layer, a `keras.layers.Bidirectional` over one,
            or a model (Sequential or functional; every readable recurrent
            layer in it is probed on the inputs it receives in the model).
        inputs: The inputs of `target`, e.g. (batch, T, features) for a
            layer, or whatever the model takes.
        initial_state, mask: For a layer: its initial states and a boolean
            (batch, T) mask. For a model these come from the model itself.

    Returns:
        A dict name -> `GateTrace`, in model order. A layer's trace is under
        its name; a Bidirectional gives `"<name>/forward"` and
        `"<name>/backward"`; layers of nested models are named
        `"outer/inner"`.
    """
    if is_recurrent(target) or _is_bidirectional(target):
        inputs = ops.convert_to_tensor(inputs)
        if not target.built:
            target(inputs, initial_state=initial_state, mask=mask)
        return _traces_of_call(target.name, target, inputs, initial_state, mask)
    if not _contains_layers(target):
        raise ValueError(
            f"gate_activations takes a recurrent layer, a Bidirectional over "
            f"one, or a model; received {target.__class__.__name__} "
            f"'{target.name}'."
        )
    return inspect(target, inputs).traces


def transform_gates(model, inputs):
    """T(x) of every Highway layer of `model` (or of one Highway layer).

    Returns a dict path -> array of the shape of that layer's input (the
    transform-gate activation of every unit), in model order. A Highway
    layer is anything with a `transform_gate(x)` method.
    """
    if _is_highway(model):
        return {model.name: ops.convert_to_numpy(model.transform_gate(_as_tensors(inputs)))}
    return {
        path: ops.convert_to_numpy(layer.transform_gate(args[0]))
        for path, layer, args, _ in _record_calls(model, inputs, _is_highway)
    }


def gradient_flow(model, x, y, sample_weight=None, layers=None):
    """||dL/dh_t|| for every step t of every recurrent layer of `model`.

    Method: the model is run on `x` with each probed layer recomputed by
    its own cell, step by step, and a zero perturbation tensor e_t added to
    the hidden state h_t of each step (for stacks, to the h_t of every
    level) wherever h_t goes: into the next step and, when it is the
    layer's output, out of the layer. The loss L is the model's compiled
    loss (`model.compute_loss`, as in training, without dropout) on (x, y);
    its gradient with respect to e_t is exactly dL/dh_t, all paths
    included. Zero perturbations leave every number unchanged.

    For a stack (depth-gated, Grid: several levels inside one step), the
    probe only sees the states that leave the step, so by default e_t of a
    level is added to that level's h_t as it goes into the next step: the
    curve of a lower level is then dL/dh_t along the time path (through
    steps t+1, t+2, ...), without the path up through the levels above at
    the same step (it is 0 at the last step when the loss reads only the
    top). A stacked cell whose `gated_step` accepts
    `hidden_perturbations=[e_0, ..., e_{K-1}]` and adds e_k to level k's h_t
    where it computes it gets the full dL/dh^k_t, all paths included; the
    probe passes them whenever the cell takes that argument.

    Args:
        model: A compiled Sequential or functional model.
        x, y, sample_weight: One batch.
        layers: Optional list of layer names, paths or layers to probe;
            default all readable recurrent layers.

    Returns:
        A dict name -> array (levels, T): the Frobenius norm over batch and
        units of dL/dh_t, t in input order (see the module docstring for
        backward layers). Names as in `gate_activations`.

    Works on the TensorFlow, JAX and PyTorch backends (differentiated with
    tf.GradientTape, jax.grad, torch.autograd.grad).
    """
    return inspect(model, x, y, sample_weight, layers).gradient_flow
