"""What the probe reads from a model or layer: traces, gradient flow, Highway gates."""

import dataclasses

from keras import ops

from keras_gated.probe import walk
from keras_gated.probe.gradients import flow_norms, replay_with_hidden_gradients
from keras_gated.probe.replay import replayed_run, selector
from keras_gated.probe.trace import (
    bidirectional_halves,
    is_bidirectional,
    is_recurrent,
    trace_from_run,
    trace_layer,
)


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
    x = walk.as_tensors(x)
    selected = selector(layers)
    if y is None:
        _, records, highways = replayed_run(model, x, selected)
        return _inspection(records, highways, {})
    if sample_weight is not None:
        sample_weight = walk.as_tensors(sample_weight)
    records, highways, gradients = replay_with_hidden_gradients(
        model, x, walk.as_tensors(y), sample_weight, selected
    )
    return _inspection(records, highways, gradients)


def _inspection(records, highways, gradients):
    traces = {
        name: trace_from_run(name, rnn, run, mask)
        for name, rnn, run, mask in records
    }
    gates = {
        path: ops.convert_to_numpy(layer.transform_gate(inputs))
        for path, layer, inputs in highways
    }
    return Inspection(
        traces=traces,
        gradient_flow=flow_norms(gradients),
        transform_gates=gates,
        hidden_gradients=gradients,
    )


def _traces_of_call(path, layer, inputs, initial_state, mask):
    if is_bidirectional(layer):
        return {
            f"{path}/{direction}": trace_layer(
                sub, inputs, state, mask, name=f"{path}/{direction}"
            )
            for sub, direction, state in bidirectional_halves(layer, initial_state)
        }
    return {path: trace_layer(layer, inputs, initial_state, mask, name=path)}


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
    if is_recurrent(target) or is_bidirectional(target):
        inputs = ops.convert_to_tensor(inputs)
        if not target.built:
            target(inputs, initial_state=initial_state, mask=mask)
        return _traces_of_call(target.name, target, inputs, initial_state, mask)
    if not walk.contains_layers(target):
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
    if walk.is_highway(model):
        return {model.name: ops.convert_to_numpy(model.transform_gate(walk.as_tensors(inputs)))}
    return {
        path: ops.convert_to_numpy(layer.transform_gate(args[0]))
        for path, layer, args, _ in walk.record_calls(model, inputs, walk.is_highway)
    }
