"""The PyTorch fast path against the generic loop, run by test_fast_path.py under KERAS_BACKEND=torch.

Prints `OK <check>` or `FAIL <check>` with the traceback; exits 1 on a failure.
Masking and `go_backwards` at the edges are in `edge_script.py`; here, for
every one-layer case: a mask, initial states with `go_backwards`, recurrent
dropout with input dropout, and an inference call (still differentiated);
then stateful calls, inference under `torch.no_grad()` (the loop without the
autograd Function), `stateless_call`, `model.fit`, the traced steps, the stacks on the same
loop (the same `fused_rnn`, over their levels), mixed-precision policies
(`edge_cases.mixed_precision_checks`), and the reasons a stack with an activation
without a written derivative, a prioritised Grid and `unroll=True` give for the generic loop.
"""

import gc
import sys
import traceback
import weakref

import keras
import numpy as np
import torch

import keras_gated as kg
from edge_cases import assert_close
from edge_cases import data
from edge_cases import fast_path_checks
from edge_cases import make_layer
from edge_cases import mixed_precision_checks
from edge_cases import set_weights
from edge_cases import values_and_gradients
from gated_cases import RNN_CASES

ONE_LAYER = [(p.id, p.values[0], p.values[2]) for p in RNN_CASES] + [
    ("depth-gated-1", kg.DepthGatedLSTM, {}),
    ("peephole-relu", kg.PeepholeLSTM, {"activation": "relu"}),  # no written derivative
    # The LSTM options (docs/options.md) on the written steps; layer_norm,
    # projection_units and cell_clip together come with RNN_CASES
    # ("lstm-options").
    ("coupled-zoneout-layer-norm", kg.CoupledLSTM, {"zoneout": (0.2, 0.3), "layer_norm": True}),
    ("depth-gated-options", kg.DepthGatedLSTM,
     {"layer_norm": True, "projection_units": 3, "cell_clip": 1.0, "zoneout": (0.2, 0.3)}),
    ("lstm-zoneout-projection", kg.LSTM, {"zoneout": 0.2, "projection_units": 3}),
]

# Stacks run the fast loop over their levels: depth-gated with D != H (a learned l_t of the
# input) and D == H (l_t = x), and the Grid with each depth transform.
STACKS = [
    ("depth-gated-2", kg.DepthGatedLSTM, {"num_layers": 2}),
    ("depth-gated-3-fo", kg.DepthGatedLSTM, {"num_layers": 3, "peepholes": "fo"}),
    # The LSTM options on the levels.
    ("depth-gated-2-clip", kg.DepthGatedLSTM, {"num_layers": 2, "cell_clip": 0.3}),
    ("depth-gated-2-projection", kg.DepthGatedLSTM,
     {"num_layers": 2, "projection_units": 3, "cell_clip": 0.3}),
    ("depth-gated-3-all-options", kg.DepthGatedLSTM,
     {"num_layers": 3, "layer_norm": True, "zoneout": (0.3, 0.2), "projection_units": 3,
      "cell_clip": 1.0}),
    ("depth-gated-3-zoneout-projection", kg.DepthGatedLSTM,
     {"num_layers": 3, "zoneout": (0.3, 0.2), "projection_units": 3, "cell_clip": 0.3}),
    ("grid-2", kg.GridLSTM, {"num_layers": 2}),
    ("grid-2-tanh-tied", kg.GridLSTM, {"num_layers": 2, "depth_transform": "tanh",
                                       "tied_weights": True}),
    ("grid-3-identity", kg.GridLSTM, {"num_layers": 3, "depth_transform": "identity"}),
]


def compare(layer_class, kwargs, training=True, initial=False, masked=True, **options):
    batch, steps = 3, 5
    x = data(batch, steps)
    # Row 1 starts masked: Keras's torch loop repeats zeros there, not h_0.
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool) if masked else None
    results, paths = {}, {}
    for path in ("fast", "generic"):
        layer = make_layer(layer_class, kwargs, path, **options)
        layer.build((batch, steps, x.shape[-1]))
        set_weights(layer)
        state = None
        if initial:
            rng = np.random.default_rng(5)
            state = [torch.tensor(rng.standard_normal((batch, s)).astype("float32"))
                     for s in layer.cell.state_size]
        keras.utils.set_random_seed(3)
        results[path] = values_and_gradients(layer, x, mask, training=training, initial_state=state)
        paths[path] = layer.last_call_path
    assert paths == {"fast": "fast", "generic": "generic"}, paths
    assert_close(results["generic"][0], results["fast"][0], "values")
    assert_close(results["generic"][1], results["fast"][1], "gradients")


def initial_state_gradients(layer_class, kwargs, zero_output_for_mask):
    """Gradients reach the initial states, through leading masked steps too."""
    batch, steps = 3, 5
    x = data(batch, steps)
    mask = torch.tensor(np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 1, 0]], bool))
    rng = np.random.default_rng(6)
    results = {}
    for path in ("fast", "generic"):
        layer = make_layer(layer_class, kwargs, path, zero_output_for_mask=zero_output_for_mask,
                           go_backwards=True)
        layer.build((batch, steps, x.shape[-1]))
        set_weights(layer)
        states = [torch.tensor(rng.standard_normal((batch, s)).astype("float32"), requires_grad=True)
                  for s in layer.cell.state_size]
        rng = np.random.default_rng(6)
        outputs = layer(torch.tensor(x), mask=mask, initial_state=states, training=True)
        loss = sum((o * torch.linspace(0.5, 1.5, o.shape[-1])).sum() for o in outputs)
        grads = torch.autograd.grad(loss, states)
        results[path] = [np.asarray(o.detach()) for o in outputs], [g.numpy() for g in grads]
        assert layer.last_call_path == path
    assert_close(results["generic"][0], results["fast"][0], "values")
    assert_close(results["generic"][1], results["fast"][1], "initial state gradients")


def stateful(layer_class, kwargs):
    outputs, grads = {}, {}
    for path in ("fast", "generic"):
        layer = layer_class(4, stateful=True, fast_path=path == "fast", **kwargs)
        layer.build((2, 3, 3))
        set_weights(layer)
        first = layer(data(2, 3, seed=1))
        second = layer(data(2, 3, seed=2))
        # The first call's graph survives the in-place update of the states.
        loss = (first * 1.5).sum() + second.sum()
        grads[path] = [g.numpy() for g in torch.autograd.grad(loss, [w.value for w in layer.trainable_weights])]
        assert layer.last_call_path == path
        outputs[path] = [first.detach().numpy(), second.detach().numpy()]
    assert_close(outputs["generic"], outputs["fast"], "stateful outputs")
    assert_close(grads["generic"], grads["fast"], "stateful gradients")
    assert not np.allclose(outputs["fast"][1], 0)


def inference_without_autograd():
    """Under torch.no_grad() the forward loop runs alone (no Function, no graph)."""
    values = {}
    for path in ("fast", "generic"):
        layer = kg.UntiedLSTM(4, return_sequences=True, fast_path=path == "fast")
        layer.build((3, 5, 3))
        set_weights(layer)
        with torch.no_grad():
            out = layer(data(3, 5), mask=torch.tensor(np.array(
                [[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)))
        assert out.grad_fn is None and layer.last_call_path == path
        values[path] = [out.numpy()]
    assert_close(values["generic"], values["fast"], "no_grad inference")


def stateless_call():
    """Gradients reach the tensors a stateless_call maps the weights to (the
    backward loop runs after the call's scope has closed)."""
    x = torch.tensor(data(2, 4))
    results = {}
    for path in ("fast", "generic"):
        layer = kg.PeepholeLSTM(4, return_sequences=True, fast_path=path == "fast")
        layer.build((2, 4, 3))
        set_weights(layer)
        trainable = [torch.tensor(0.7 * w.numpy(), requires_grad=True)
                     for w in layer.trainable_variables]
        others = [v.value for v in layer.non_trainable_variables]
        outputs, _ = layer.stateless_call(trainable, others, x, training=True)
        grads = torch.autograd.grad((outputs * 1.5).sum(), trainable)
        assert layer.last_call_path == path
        results[path] = [outputs.detach().numpy()] + [g.numpy() for g in grads]
    assert_close(results["generic"], results["fast"], "stateless_call values and gradients")


def fit(layer_class, kwargs):
    """Two epochs of model.fit end at the same weights on both paths."""
    x = data(16, 6, seed=4)
    x[:4, :2] = 0.0  # masked steps
    y = np.random.default_rng(4).standard_normal((16, 2)).astype("float32")
    weights = {}
    for path in ("fast", "generic"):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input((6, 3)),
            keras.layers.Masking(),
            layer_class(4, recurrent_dropout=0.2, fast_path=path == "fast", **kwargs),
            keras.layers.Dense(2),
        ])
        model.compile(keras.optimizers.Adam(0.01), "mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights[path] = model.get_weights()
        assert model.layers[1].last_call_path == path
    assert_close(weights["generic"], weights["fast"], "weights after fit", atol=1e-4)


def compiled_steps():
    """The loops' traced steps: made from the second call of a signature on,
    kept per cell, reading the weights of each call (not of the call that
    traced them), and dropped where a step reads a tensor of its own."""
    from keras_gated._fast import torch as torch_loop

    x = torch.tensor(data(3, 5))
    layers = {}
    for path in ("fast", "generic"):
        layers[path] = kg.UntiedLSTM(4, return_sequences=True, fast_path=path == "fast")
        layers[path].build((3, 5, 3))
        set_weights(layers[path])
    results = {"fast": [], "generic": []}
    for scale in (1.0, 0.5):
        for path, layer in layers.items():
            for weight in layer.weights:
                weight.assign(scale * weight.numpy())
            leaf = x.clone().requires_grad_()
            outputs = layer(leaf, training=True)
            (gradient,) = torch.autograd.grad((outputs * 1.5).sum(), [leaf])
            results[path] += [outputs.detach().numpy(), gradient.numpy()]
    assert_close(results["generic"], results["fast"], "traced steps after the weights changed")
    kept = torch_loop._CompiledSteps._of_cell[layers["fast"].cell]
    traced = {kind: [e for e in steps._entries.values() if isinstance(e, tuple)]
              for (kind, _), steps in kept.items()}
    assert traced["forward"] and traced["backward"], traced

    # The per-cell cache keeps no cell alive: the graphs let go of the
    # loop (and its cell) they were traced from.
    cell = weakref.ref(layers["fast"].cell)
    del layers, kept, traced
    gc.collect()
    assert cell() is None, "a traced step keeps its cell alive"

    own_tensor = torch.ones(3, 4)
    step = lambda a: a * own_tensor  # noqa: E731
    leaves, spec = torch_loop._flatten((torch.ones(3, 4),))
    assert torch_loop._trace(step, spec, leaves) is None
    run = torch_loop._CompiledSteps().runner(step)
    for _ in range(3):
        assert torch.equal(run(torch.full((3, 4), 2.0)), torch.full((3, 4), 2.0))


def fallbacks():
    x = data(2, 3)
    stack = kg.DepthGatedLSTM(4, num_layers=2)
    stack(x)
    assert stack.last_call_path == "fast"
    # Every LSTM option runs on the stack's levels; an activation without
    # a written derivative does not.
    with_options = kg.DepthGatedLSTM(4, num_layers=2, layer_norm=True)
    with_options(x)
    assert with_options.last_call_path == "fast"
    relu_stack = kg.DepthGatedLSTM(4, num_layers=2, activation="relu")
    relu_stack(x)
    assert relu_stack.last_call_path == "generic"
    assert "no fast form" in relu_stack.fast_path_unavailable_reason()
    unrolled = kg.CoupledLSTM(4, unroll=True)
    unrolled(x)
    assert unrolled.last_call_path == "generic"
    assert "unroll=True" in unrolled.fast_path_unavailable_reason()
    try:
        kg.GridLSTM(4, num_layers=2, priority="depth", fast_path=True)(x)
    except ValueError as error:
        assert "fast_path=True" in str(error) and "prioritised" in str(error)
    else:
        raise AssertionError("fast_path=True on a prioritised Grid did not raise")


def main():
    print("BACKEND", keras.backend.backend(), flush=True)
    checks = fast_path_checks(ONE_LAYER + STACKS, compare)
    checks += mixed_precision_checks()
    checks.append(("depth-gated-2 stateful", stateful, (kg.DepthGatedLSTM, {"num_layers": 2}), {}))
    checks.append(("grid-2 fit", fit, (kg.GridLSTM, {"num_layers": 2}), {}))
    for zero_output_for_mask in (False, True):
        checks.append((f"peephole initial state gradients zero_output_for_mask={zero_output_for_mask}",
                       initial_state_gradients, (kg.PeepholeLSTM, {}, zero_output_for_mask), {}))
    # One class each, within the suite's time: the untied cell (a weight
    # matrix inside the step) and the one-layer depth-gated cell.
    checks.append(("untied stateful", stateful, (kg.UntiedLSTM, {}), {}))
    checks.append(("depth-gated-1 stateful", stateful, (kg.DepthGatedLSTM, {}), {}))
    checks.append(("inference without autograd", inference_without_autograd, (), {}))
    checks.append(("stateless call", stateless_call, (), {}))
    checks.append(("untied fit", fit, (kg.UntiedLSTM, {}), {}))
    checks.append(("compiled steps", compiled_steps, (), {}))
    checks.append(("fallbacks", fallbacks, (), {}))
    failed = 0
    for name, function, args, options in checks:
        try:
            function(*args, **options)
        except Exception:
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"OK {name}", flush=True)
    print("CHECKS", len(checks), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
