"""The JAX fast path against the generic loop, run by test_fast_path.py under KERAS_BACKEND=jax.

Prints `OK <check>` or `FAIL <check>` with the traceback; exits 1 on a failure.
Masking and `go_backwards` at the edges are in `edge_script.py`; here: initial
states, recurrent dropout, inference, activations without a written
derivative, stateful calls, `model.fit` under `jax.jit`, the stacks'
loop (the same `fused_rnn`, over their levels), mixed-precision policies
(`edge_cases.mixed_precision_checks`), and the reasons a stack with an activation
without a written derivative, a prioritised Grid and `unroll=True` give for the generic loop.
"""

import sys
import traceback

import jax
import keras
import numpy as np

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
    # The LSTM options (docs/options.md) on the written steps; all three
    # together come with RNN_CASES ("lstm-options").
    ("coupled-zoneout-layer-norm", kg.CoupledLSTM, {"zoneout": (0.2, 0.3), "layer_norm": True}),
    ("depth-gated-options", kg.DepthGatedLSTM,
     {"layer_norm": True, "projection_units": 3, "cell_clip": 1.0, "zoneout": (0.2, 0.3)}),
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


def compare(layer_class, kwargs, training=True, initial=False, **options):
    batch, steps = 3, 5
    x = data(batch, steps)
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    results, paths = {}, {}
    for path in ("fast", "generic"):
        layer = make_layer(layer_class, kwargs, path, **options)
        layer.build((batch, steps, x.shape[-1]))
        set_weights(layer)
        state = None
        if initial:
            rng = np.random.default_rng(5)
            state = [rng.standard_normal((batch, s)).astype("float32") for s in layer.cell.state_size]
        keras.utils.set_random_seed(3)
        results[path] = values_and_gradients(layer, x, mask, training=training, initial_state=state)
        paths[path] = layer.last_call_path
    assert paths == {"fast": "fast", "generic": "generic"}, paths
    assert_close(results["generic"][0], results["fast"][0], "values")
    assert_close(results["generic"][1], results["fast"][1], "gradients")


def stateful(layer_class, kwargs):
    outputs = {}
    for path in ("fast", "generic"):
        layer = layer_class(4, stateful=True, fast_path=path == "fast", **kwargs)
        layer.build((2, 3, 3))
        set_weights(layer)
        first = layer(data(2, 3, seed=1))
        second = layer(data(2, 3, seed=2))
        assert layer.last_call_path == path
        outputs[path] = [np.asarray(first), np.asarray(second)]
    assert_close(outputs["generic"], outputs["fast"], "stateful outputs")
    assert not np.allclose(outputs["fast"][1], 0)


def fit(layer_class, kwargs):
    """Two epochs of model.fit (jitted train steps) end at the same weights on both paths."""
    x = data(16, 6, seed=4)
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
        model.compile(keras.optimizers.Adam(0.01), "mse", jit_compile=True)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights[path] = model.get_weights()
    assert_close(weights["generic"], weights["fast"], "weights after fit", atol=1e-4)


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


def inference_under_jit():
    layer = kg.UntiedLSTM(4, return_sequences=True)
    layer.build((2, 5, 3))
    set_weights(layer)
    x = data(2, 5)
    eager = np.asarray(layer(x))
    trainable = [v.value for v in layer.trainable_variables]
    others = [v.value for v in layer.non_trainable_variables]
    jitted = jax.jit(lambda t, o, x: layer.stateless_call(t, o, x)[0])(trainable, others, x)
    assert layer.last_call_path == "fast"
    assert_close([eager], [np.asarray(jitted)], "jitted inference")


def main():
    print("BACKEND", keras.backend.backend(), flush=True)
    checks = fast_path_checks(ONE_LAYER + STACKS, compare)
    # Each case compiles three scans: one per kind of step, within the suite's time.
    checks += mixed_precision_checks(
        ("peephole", "untied", "lstm-layer-norm-projection-wide-clip",
         "depth-gated-2-all-options", "grid-2")
    )
    checks.append(("depth-gated-2 stateful", stateful, (kg.DepthGatedLSTM, {"num_layers": 2}), {}))
    checks.append(("grid-2 fit", fit, (kg.GridLSTM, {"num_layers": 2}), {}))
    # One class each, within the suite's time: the untied cell (a weight
    # matrix inside the step) and the one-layer depth-gated cell.
    for case_id, layer_class, kwargs in ONE_LAYER:
        if case_id not in ("untied", "depth-gated-1"):
            continue
        checks.append((f"{case_id} stateful", stateful, (layer_class, kwargs), {}))
    checks.append(("untied fit", fit, (kg.UntiedLSTM, {}), {}))
    checks.append(("fallbacks", fallbacks, (), {}))
    checks.append(("inference under jit", inference_under_jit, (), {}))
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
