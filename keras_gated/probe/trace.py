"""Tracing one recurrent layer: its cell re-run step by step, everything kept.

Every cell of keras-gated computes one step with
`gated_step(projected, states, training) -> (output, new_states, gates)`,
where `gates` maps gate names to their activations, and `project_inputs(x)`
computes the input half of every gate block for a whole sequence. The
layers use the same two methods (and throw the gates away), so the trace
re-runs exactly the cell's own equations with the layer's own weights, in a
Python loop over time, and keeps what the layer discards. Keras's built-in
cells are read through `keras_cells`.

Masked steps follow Keras's rule for `keras.layers.RNN` (the one the
package's fast loops implement in `keras_gated._fast`): a step where the
mask is False keeps the previous states and repeats the previous output
(zeros at the first step, or always with `zero_output_for_mask`).
"""

import dataclasses
import typing

import keras
import numpy as np
from keras import ops
from keras import tree

from keras_gated.layers.base import GatedCell
from keras_gated.probe.keras_cells import keras_cell_steps

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


@typing.runtime_checkable
class PerturbableStack(typing.Protocol):
    """A cell that runs several levels inside one step and can perturb each.

    `perturbed_step(projected, states, hidden_perturbations, training)` is
    the cell's `gated_step` with `hidden_perturbations[k]` (or nothing, for
    None) added to level k's h_t right where it is computed, before the
    levels above read it; then dL/de_k is the full dL/dh^k_t, the path up
    through the levels of the same step included. `DepthGatedLSTMCell` and
    `GridLSTMCell` declare it (their `gated_step` is `perturbed_step` with
    None). For any other cell the probe adds e_k to the state that leaves
    the step (see `gradient_flow`).
    """

    def perturbed_step(self, projected, states, hidden_perturbations, training=False):
        """`(output, new_states, gates)`, each level's h_t plus its perturbation."""


def cell_steps(cell):
    """(project, step) for a cell: the input projection and one step.

    `step(projected_t, states) -> (output, new_states, gates)`.
    """
    if hasattr(cell, "gated_step") and hasattr(cell, "project_inputs"):
        project = cell.project_inputs
        if isinstance(cell, GatedCell):
            # At inference, as the probe reads a trained model: zoneout's
            # keep masks are then its rates.
            def project(inputs):
                return cell.project_sequence(inputs, training=False)
        return project, (
            lambda projected, states: cell.gated_step(projected, states, training=False)
        )
    steps = keras_cell_steps(cell)
    if steps is None:
        raise ValueError(
            f"The probe cannot read the cell {cell.__class__.__name__}. It reads "
            "cells with `gated_step` and `project_inputs` (every keras-gated "
            "cell) and keras.layers.LSTMCell, GRUCell and SimpleRNNCell."
        )
    return steps


def state_slots(cell):
    """Indices of the hidden and the memory states: (h, c) for every level."""
    count = len(tree.flatten(cell.state_size))
    if count == 1:
        return [0], []
    return list(range(0, count, 2)), list(range(1, count, 2))


def hidden_widths(cell):
    """The width of each level's h, bottom first."""
    sizes = tree.flatten(cell.state_size)
    return [int(sizes[slot]) for slot in state_slots(cell)[0]]


def is_recurrent(layer):
    """Whether the probe can read `layer` (an RNN over a supported cell)."""
    if not isinstance(layer, keras.layers.RNN):
        return False
    try:
        cell_steps(layer.cell)
    except ValueError:
        return False
    return True


def is_bidirectional(layer):
    """Whether `layer` is a `Bidirectional` over two layers the probe reads."""
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


def _skip_masked(keep, output, new_states, states, fallback_output):
    """Keras's masking rule for one step: where `keep` is False the states
    stay as they were and the output is `fallback_output`."""
    new_states = [ops.where(keep, new, old) for new, old in zip(new_states, states)]
    return ops.where(keep, output, fallback_output), new_states


def run_recurrence(layer, inputs, initial_state=None, mask=None, perturbations=None):
    """Runs `layer`'s cell over `inputs` step by step, keeping everything.

    `perturbations`, one (batch, T, units) tensor per level, are added to
    each level's h_t after step t (before the mask, so skipped steps get
    none); the loss's gradient with respect to them is dL/dh_t. A
    `PerturbableStack` adds them where it computes each level's h_t.

    Returns a dict of per-step lists in processing order ("outputs",
    "states", "gates"), the processing order of the input steps ("order")
    and the layer's own return value ("result").
    """
    cell = layer.cell
    # Outside the layer's __call__ nothing autocasts, so under a mixed
    # precision policy the replay runs in the weights' dtype (float32).
    dtype = cell.variable_dtype
    inputs = ops.cast(ops.convert_to_tensor(inputs), dtype)
    if mask is not None:
        mask = ops.cast(ops.convert_to_tensor(mask), "bool")
    project, step = cell_steps(cell)
    hidden_slots, _ = state_slots(cell)
    timesteps = inputs.shape[1]
    states = [
        ops.cast(s, dtype)
        for s in _initial_state(layer, ops.shape(inputs)[0], initial_state)
    ]
    projected = project(inputs)
    order = range(timesteps - 1, -1, -1) if layer.go_backwards else range(timesteps)

    perturbed_inside = perturbations is not None and isinstance(cell, PerturbableStack)
    outputs, all_states, all_gates = [], [], []
    previous_output = None
    for t in order:
        if perturbed_inside:
            output, new_states, gates = cell.perturbed_step(
                projected[:, t],
                states,
                [p[:, t] for p in perturbations],
                training=False,
            )
        else:
            output, new_states, gates = step(projected[:, t], states)
        new_states = list(tree.flatten(new_states))
        if perturbations is not None and not perturbed_inside:
            for slot, perturbation in zip(hidden_slots, perturbations):
                perturbed = new_states[slot] + perturbation[:, t]
                if output is new_states[slot]:
                    output = perturbed
                new_states[slot] = perturbed
        if mask is not None:
            if previous_output is None or layer.zero_output_for_mask:
                previous_output = ops.zeros_like(output)
            output, new_states = _skip_masked(
                ops.expand_dims(mask[:, t], -1), output, new_states, states, previous_output
            )
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


def trace_from_run(name, layer, run, mask):
    """The `GateTrace` named `name` of a `run_recurrence` run of `layer`."""
    order = run["order"]
    hidden_slots, cell_slots = state_slots(layer.cell)
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
    run = run_recurrence(layer, inputs, initial_state, mask)
    return trace_from_run(name or layer.name, layer, run, mask)


def bidirectional_halves(layer, initial_state):
    """[(layer, "forward" or "backward", its initial states or None)] of a
    `Bidirectional`, whose initial states are the forward half's, then the
    backward half's."""
    halves = [(layer.forward_layer, "forward"), (layer.backward_layer, "backward")]
    if initial_state is None:
        return [(sub, direction, None) for sub, direction in halves]
    states = list(tree.flatten(initial_state))
    half = len(states) // 2
    return [
        (layer.forward_layer, "forward", states[:half]),
        (layer.backward_layer, "backward", states[half:]),
    ]
