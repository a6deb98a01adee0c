"""Walking a model: every layer call routed through a hook, nested models entered.

To probe a layer deep inside a model on exactly what it receives there,
the model is run once with each layer call handed to a hook, which may
record the call or compute the layer's outputs its own way. Keras has no
public API for that (nor for the masks it attaches to tensors), so the
walk goes through `keras_gated._keras_private`, which lists the private
Keras names it needs and whose test fails loudly the day one moves.
"""

import keras
from keras import ops
from keras import tree

from keras_gated import _keras_private
from keras_gated.probe.trace import is_bidirectional, is_recurrent


def keras_mask(tensor):
    """The mask Keras attached to `tensor`, or None."""
    return _keras_private.get_keras_mask(tensor)


def attach_mask(tensor, mask):
    """Attaches `mask` to `tensor` as a Keras layer's output would carry it."""
    _keras_private.set_keras_mask(tensor, mask)


def contains_layers(layer):
    """Whether `layer` is a model whose own layers the walk enters."""
    return isinstance(layer, keras.Model)


def is_highway(layer):
    """Whether `layer` has a Highway transform gate, `transform_gate(x)`."""
    return callable(getattr(layer, "transform_gate", None))


def as_tensors(inputs):
    """`inputs` (any nesting, None kept) as backend tensors."""
    return tree.map_structure(
        lambda x: x if x is None else ops.convert_to_tensor(x), inputs
    )


def call_model(model, inputs, hook, path=""):
    """Calls `model` on `inputs` with every layer call routed through `hook`.

    `hook(layer, path, args, kwargs)` returns the layer's outputs (it may
    record the arguments, or compute the outputs its own way). Nested
    models are entered, so the hook sees every layer with the tensors it
    receives in the model (masks included, as Keras attaches them to the
    tensors).
    """

    def route(layer, args, kwargs):
        layer_path = f"{path}{layer.name}"
        if _keras_private.call_takes_training(layer):
            kwargs["training"] = False
        if contains_layers(layer):
            kwargs.pop("training", None)
            kwargs.pop("mask", None)
            return call_model(layer, args[0], hook, layer_path + "/")
        return hook(layer, layer_path, args, kwargs)

    graph = _keras_private.functional_graph(model)
    if graph is not None:
        outputs = _keras_private.run_through_graph(
            graph, inputs, lambda op: (lambda *a, **k: route(op, a, dict(k)))
        )
        return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs
    if isinstance(model, keras.Sequential):
        outputs = tree.map_structure(ops.convert_to_tensor, inputs)
        mask = None
        for layer in model.layers:
            kwargs = {}
            if _keras_private.call_takes_mask(layer) and mask is not None:
                kwargs["mask"] = mask
            outputs = route(layer, (outputs,), kwargs)
            mask = tree.map_structure(keras_mask, outputs)
        return outputs
    raise ValueError(
        f"The probe walks Sequential and functional models; "
        f"{model.__class__.__name__} '{model.name}' is a subclassed model "
        "whose layer calls it cannot see. Probe its recurrent layers directly "
        "with trace_layer(layer, inputs_of_that_layer)."
    )


def call_arguments(args, kwargs):
    """(inputs, initial_state, mask) of a recorded RNN/Bidirectional call."""
    inputs = args[0]
    initial_state = kwargs.get("initial_state", args[1] if len(args) > 1 else None)
    mask = kwargs.get("mask", args[2] if len(args) > 2 else None)
    if mask is None:
        mask = keras_mask(inputs)
    if tree.is_nested(mask):
        mask = tree.flatten(mask)[0]
    return inputs, initial_state, mask


def record_calls(model, inputs, wanted):
    """Runs `model` once; returns [(path, layer, args, kwargs)] for wanted layers."""
    calls = []
    seen = set()

    def hook(layer, path, args, kwargs):
        if wanted(layer) and id(layer) not in seen:
            seen.add(id(layer))
            calls.append((path, layer, args, dict(kwargs)))
        return layer(*args, **kwargs)

    call_model(model, as_tensors(inputs), hook)
    return calls


def find_gated_layers(model):
    """The layers of `model` the probe reads, as a list of (path, layer).

    Recurrent layers (keras-gated, LSTM, GRU, SimpleRNN, RNN over such a
    cell), `Bidirectional` wrappers over them, and Highway layers (anything
    with a `transform_gate(x)` method), in model order, nested models
    entered (paths `"outer/inner"`).
    """
    found = []

    def walk(layer, prefix):
        if is_recurrent(layer) or is_bidirectional(layer) or is_highway(layer):
            found.append((prefix + layer.name, layer))
        elif contains_layers(layer):
            for inner in layer.layers:
                walk(inner, prefix + layer.name + "/")

    for layer in model.layers if contains_layers(model) else [model]:
        walk(layer, "")
    return found
