"""One pass through a model with its recurrent layers replayed step by step.

The model runs as usual (`walk.call_model`), except that each selected
recurrent layer (and each half of a selected `Bidirectional`) is computed
by `trace.run_recurrence` instead of the layer's own loop: the very numbers
the layer would compute, with every step kept, and with the perturbations
`gradients` differentiates by added to each level's h_t.
"""

from keras import ops

from keras_gated.probe import walk
from keras_gated.probe.trace import (
    bidirectional_halves,
    is_bidirectional,
    is_recurrent,
    run_recurrence,
)


def selector(layers):
    """A predicate on (layer, path) for the `layers=` argument: names,
    paths or layer objects, or None for every layer."""
    if layers is None:
        return lambda layer, path: True
    names = [choice for choice in layers if isinstance(choice, str)]
    objects = [id(choice) for choice in layers if not isinstance(choice, str)]
    return lambda layer, path: (
        id(layer) in objects or layer.name in names or path in names
    )


def _merge_bidirectional(layer, forward, backward):
    """The output of `layer` (a Bidirectional) from its two halves' results."""
    if layer.return_sequences:
        backward = ops.flip(backward, axis=1)
    mode = layer.merge_mode
    if mode == "concat":
        return ops.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "ave":
        return (forward + backward) / 2
    if mode == "mul":
        return forward * backward
    return [forward, backward]


def _replay(layer, path, args, kwargs, perturbations_for, records):
    """The outputs of an RNN or Bidirectional call, recomputed step by step.

    Each half's per-step run is appended to `records`; `perturbations_for(
    name, rnn, inputs)` returns the perturbations of its levels, or None.
    """
    inputs, initial_state, mask = walk.call_arguments(args, kwargs)
    if not is_bidirectional(layer):
        perturbations = perturbations_for(path, layer, inputs)
        run = run_recurrence(layer, inputs, initial_state, mask, perturbations)
        records.append((path, layer, run, mask))
        result = run["result"]
        if mask is not None and layer.return_sequences:
            walk.attach_mask(result[0] if layer.return_state else result, mask)
        return result
    if layer.return_state:
        raise ValueError(
            "The probe does not replay a Bidirectional layer with "
            f"return_state=True ('{layer.name}'); probe its forward_layer and "
            "backward_layer with trace_layer instead."
        )
    results = {}
    for sub, direction, state in bidirectional_halves(layer, initial_state):
        name = f"{path}/{direction}"
        run = run_recurrence(
            sub, inputs, state, mask, perturbations_for(name, sub, inputs)
        )
        records.append((name, sub, run, mask))
        results[direction] = run["result"]
    output = _merge_bidirectional(layer, results["forward"], results["backward"])
    if mask is not None and layer.return_sequences and layer.merge_mode is not None:
        walk.attach_mask(output, mask)
    return output


def replayed_run(model, x, selected, perturbations_for=None):
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
        if walk.is_highway(layer) and id(layer) not in seen:
            seen.add(id(layer))
            highways.append((path, layer, args[0]))
        readable = is_recurrent(layer) or is_bidirectional(layer)
        if readable and selected(layer, path) and id(layer) not in replayed:
            replayed.add(id(layer))
            return _replay(layer, path, args, kwargs, perturbations_for, records)
        return layer(*args, **kwargs)

    y_pred = walk.call_model(model, x, hook)
    return y_pred, records, highways
