"""DepthGatedLSTMCell / DepthGatedLSTM: numbers, the depth connection, protocol."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_gated as kg
from tests import protocol_checks
from tests import reference_stacks as ref

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, T, D, H = 2, 5, 3, 4


def sequence(batch=B, steps=T, features=D, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, features))


def randomize(layer, seed=1, scale=0.6):
    """Random weights everywhere (the default init zeroes the biases)."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(scale=scale, size=w.shape) for w in layer.get_weights()]
    )


def float64_layer(x, **kwargs):
    layer = kg.DepthGatedLSTM(
        H, return_sequences=True, return_state=True, dtype="float64", **kwargs
    )
    layer(x)
    randomize(layer)
    return layer


# -- numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "num_layers, features, peepholes, fused",
    [
        (1, D, "ifo", True),
        (1, H, "ifo", False),  # D == H: l_t is x_t itself, no projection
        (3, D, "ifo", True),
        (3, D, "ifo", False),
        (2, H, "", True),
    ],
)
def test_layer_matches_numpy_stack(num_layers, features, peepholes, fused):
    x = sequence(features=features)
    layer = float64_layer(
        x, num_layers=num_layers, use_peepholes=bool(peepholes), fused=fused
    )
    rng = np.random.default_rng(5)
    initial = [rng.normal(size=(B, H)) for _ in range(2 * num_layers)]
    outputs, *states = layer(x, initial_state=initial)
    layers = ref.depth_gated_weights_from_keras(
        layer.get_weights(), num_layers, peepholes
    )
    assert ("projection" in layers[0]) == (features != H)
    expected, expected_states = ref.depth_gated_stack(x, layers, initial)
    np.testing.assert_allclose(outputs, expected, rtol=1e-10, atol=1e-12)
    assert len(states) == 2 * num_layers
    for got, want in zip(states, expected_states):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_stack_built_by_hand_from_single_layer_steps():
    """The 2-layer layer equals two reference layers wired by hand, step by step."""
    x = sequence()
    layer = float64_layer(x, num_layers=2)
    bottom, top = ref.depth_gated_weights_from_keras(layer.get_weights(), 2)
    h0 = c0 = h1 = c1 = np.zeros((B, H))
    tops = []
    for t in range(T):
        h0, c0, _ = ref.depth_gated_step(
            x[:, t], x[:, t] @ bottom["projection"], h0, c0, bottom
        )
        # The top layer reads h0 and gates c0 of this very step.
        h1, c1, _ = ref.depth_gated_step(h0, c0, h1, c1, top)
        tops.append(h1)
    outputs, *states = layer(x)
    np.testing.assert_allclose(outputs, np.stack(tops, 1), rtol=1e-10)
    for got, want in zip(states, [h0, c0, h1, c1]):
        np.testing.assert_allclose(got, want, rtol=1e-10)
    # Wiring the top layer to anything else than c_t of the layer below
    # gives different numbers, so the comparison above pins the connection.
    layers = [bottom, top]
    for wrong in ("previous_memory", "hidden"):
        other, _ = ref.depth_gated_stack(x, layers, lower_source=wrong)
        assert np.abs(other - outputs).max() > 1e-3, wrong


def test_lower_memory_reaches_upper_layer_through_depth_gate():
    """Changing the lower c_t changes the upper c_t by d_t-gated amounts."""
    x = sequence()
    layer = float64_layer(x, num_layers=2)
    top_cell = layer.cell.layer_cells[1]
    top = ref.depth_gated_weights_from_keras(layer.get_weights(), 2)[1]
    rng = np.random.default_rng(2)
    h_below, h_prev, c_prev = (rng.normal(size=(B, H)) for _ in range(3))
    lower = rng.normal(size=(B, H))
    delta = np.zeros((B, H))
    delta[:, 1] = 1e-6

    def upper_c(lower_memory):
        _, c, gates = top_cell.layer_step(
            top_cell.project_gate_inputs(h_below), lower_memory, h_prev, c_prev
        )
        return np.asarray(c), np.asarray(gates["depth"])

    c, d = upper_c(lower)
    c_moved, _ = upper_c(lower + delta)
    _, ref_c, ref_gates = ref.depth_gated_step(h_below, lower, h_prev, c_prev, top)
    np.testing.assert_allclose(c, ref_c, rtol=1e-10)
    np.testing.assert_allclose(d, ref_gates["depth"], rtol=1e-10)
    # dc/dl = d + l * d (1 - d) w_ld, only in the perturbed unit.
    slope = (c_moved - c) / 1e-6
    expected = d[:, 1] + lower[:, 1] * d[:, 1] * (1 - d[:, 1]) * top["w_ld"][1]
    np.testing.assert_allclose(slope[:, 1], expected, rtol=1e-4)
    np.testing.assert_allclose(np.delete(slope, 1, axis=1), 0.0, atol=1e-8)
    assert np.all(np.abs(slope[:, 1]) > 1e-3)
    # With the depth gate shut (b_d -> -inf) the lower memory has no way in.
    bias = top_cell.bias.numpy()
    bias[4 * H:] = -1e4
    top_cell.bias.assign(bias)
    c, _ = upper_c(lower)
    c_moved, _ = upper_c(lower + 1.0)
    np.testing.assert_allclose(c_moved, c, atol=1e-12)


def test_gradients_match_finite_differences_of_reference():
    x = sequence(steps=3)
    layer = float64_layer(x, num_layers=2)
    weights = layer.get_weights()
    target = np.random.default_rng(4).normal(size=(B, 3, H))

    def reference_loss(values, inputs):
        layers = ref.depth_gated_weights_from_keras(values, 2)
        outputs, states = ref.depth_gated_stack(inputs, layers)
        return np.sum(outputs * target) + np.sum(states[1] ** 2)

    import tensorflow as tf

    inputs = tf.Variable(x)
    with tf.GradientTape() as tape:
        outputs, _, c_bottom, _, _ = layer(inputs)
        loss = tf.reduce_sum(outputs * target) + tf.reduce_sum(c_bottom**2)
    grads = tape.gradient(loss, layer.trainable_weights + [inputs])
    assert len(grads) == len(weights) + 1
    rng = np.random.default_rng(6)
    eps = 1e-6
    for index, grad in enumerate(grads):
        values = weights + [x]
        for flat in rng.choice(values[index].size, size=3, replace=False):
            plus = [v.copy() for v in values]
            minus = [v.copy() for v in values]
            plus[index].flat[flat] += eps
            minus[index].flat[flat] -= eps
            numeric = (
                reference_loss(plus[:-1], plus[-1])
                - reference_loss(minus[:-1], minus[-1])
            ) / (2 * eps)
            np.testing.assert_allclose(
                np.asarray(grad).flat[flat], numeric, rtol=1e-5, atol=1e-7
            )


# -- structure, weights, costs ---------------------------------------------


def documented_weight_count(D, H, N, peepholes=True):
    """docs/depth_gated_lstm.md: N(4H^2 + 7H + 3H·[peepholes]) + 5H(D + (N-1)H) + [D != H]·DH."""
    count = N * (4 * H * H + 7 * H + (3 * H if peepholes else 0))
    count += 5 * H * (D + (N - 1) * H)
    return count + (D * H if D != H else 0)


@pytest.mark.parametrize(
    "features, num_layers, peepholes",
    [(3, 1, True), (4, 1, True), (3, 3, True), (5, 2, False)],
)
def test_weight_count_matches_documented_formula(features, num_layers, peepholes):
    layer = kg.DepthGatedLSTM(H, num_layers=num_layers, use_peepholes=peepholes)
    layer(np.zeros((1, 2, features), "float32"))
    assert layer.count_params() == documented_weight_count(
        features, H, num_layers, peepholes
    )


def test_weight_names_and_gates():
    single = kg.DepthGatedLSTM(H)
    single(np.zeros((1, 2, D), "float32"))
    assert [w.name for w in single.weights] == [
        "kernel", "recurrent_kernel", "depth_projection", "bias",
        "input_gate_peephole_weights", "forget_gate_peephole_weights",
        "output_gate_peephole_weights", "depth_gate_cell_weights",
        "depth_gate_lower_weights",
    ]
    assert single.cell.kernel.shape == (D, 5 * H)
    assert single.cell.recurrent_kernel.shape == (H, 4 * H)

    stack = kg.DepthGatedLSTM(H, num_layers=2, use_peepholes=False)
    stack(np.zeros((1, 2, H), "float32"))
    paths = [w.path.split("/", 2)[-1] for w in stack.weights]
    assert paths == [
        f"layer_{k}/{name}" for k in range(2) for name in (
            "kernel", "recurrent_kernel", "bias",
            "depth_gate_cell_weights", "depth_gate_lower_weights")
    ]
    assert stack.num_layers == 2 and stack.cell.state_size == [H] * 4

    cell = stack.cell
    states = cell.get_initial_state(batch_size=1)
    _, new_states, gates = cell.gated_step(
        cell.project_inputs(np.ones((1, H), "float32")), states
    )
    assert len(new_states) == 4
    assert sorted(gates) == sorted(
        f"layer_{k}/{g}" for k in range(2)
        for g in ("input", "forget", "depth", "output")
    )


def test_single_layer_in_sequential_and_separate_layers_are_not_a_stack():
    x = sequence().astype("float32")
    model = keras.Sequential([
        keras.Input((None, D)),
        kg.DepthGatedLSTM(H, return_sequences=True),
        kg.DepthGatedLSTM(H),
        keras.layers.Dense(1),
    ])
    assert model(x).shape == (B, 1)
    # Two separate layers: the upper one gates on its own input (the lower
    # one's h), which is the reference stack wired to h, not to c.
    first, second = model.layers[0], model.layers[1]
    bottom = ref.depth_gated_weights_from_keras(first.get_weights(), 1)
    top = ref.depth_gated_weights_from_keras(second.get_weights(), 1)
    h_seq, _ = ref.depth_gated_stack(x, bottom)
    top_out, _ = ref.depth_gated_stack(h_seq, top)
    np.testing.assert_allclose(
        second(first(x)), top_out[:, -1], rtol=1e-4, atol=1e-6
    )


# -- the Keras RNN protocol --------------------------------------------------


def make_layer(**kwargs):
    kwargs.setdefault("num_layers", 2)
    return kg.DepthGatedLSTM(H, **kwargs)


@pytest.fixture
def x32():
    return sequence(seed=9).astype("float32")


def test_rnn_cell_and_unfused_path_equal_layer(x32):
    protocol_checks.check_rnn_cell_equals_layer(make_layer, x32)


def test_bidirectional(x32):
    protocol_checks.check_bidirectional(make_layer, x32)


def test_masking(x32):
    protocol_checks.check_masking(make_layer, x32)


def test_stateful_and_return_state(x32):
    protocol_checks.check_stateful_and_return_state(make_layer, x32, 4)


def test_dropout(x32):
    protocol_checks.check_dropout(make_layer, x32)


def test_recurrent_dropout_masks_differ_between_layers(x32):
    cell = kg.DepthGatedLSTMCell(64, num_layers=3, recurrent_dropout=0.5, seed=1)
    mask = np.asarray(cell.get_recurrent_dropout_mask(np.ones((2, 64), "float32")))
    assert mask.shape == (2, 3 * 64)
    first, second, third = np.split(mask, 3, axis=-1)
    assert (first != second).any() and (second != third).any()


def test_mixed_float16(x32):
    protocol_checks.check_mixed_float16(make_layer, x32)


def test_config_save_load_and_export(x32, tmp_path):
    protocol_checks.check_config_save_and_export(
        lambda **kw: make_layer(use_peepholes=False, dropout=0.1, **kw),
        x32, tmp_path,
    )


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_layers": 0}, "num_layers"),
        ({"num_layers": 2.0}, "num_layers"),
        ({"num_layers": True}, "num_layers"),
        ({"use_peepholes": "yes"}, "use_peepholes"),
        ({"use_peepholes": False, "peepholes": "fo"}, "use_peepholes"),
        ({"peepholes": "d"}, "peepholes"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kg.DepthGatedLSTMCell(H, **kwargs)
    with pytest.raises(ValueError, match=message):
        kg.DepthGatedLSTM(H, **kwargs)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="units"):
        kg.DepthGatedLSTM(0)
    with pytest.raises(ValueError, match=r"\(batch, timesteps, features\)"):
        kg.DepthGatedLSTM(H, num_layers=2).build((B, D))
    cell = kg.DepthGatedLSTMCell(H, num_layers=2)
    cell.build((None, D))
    states = cell.get_initial_state(batch_size=B)
    with pytest.raises(ValueError, match="built for inputs with 3 features"):
        cell(np.zeros((B, D + 1), "float32"), states)
    with pytest.raises(TypeError, match="num_layer"):
        kg.DepthGatedLSTM(H, num_layer=2)


# -- other backends ----------------------------------------------------------

BACKEND_SMOKE = r"""
import numpy as np, keras, keras_gated as kg
from tests import reference_stacks as ref
x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
layer = kg.DepthGatedLSTM(5, num_layers=2, return_sequences=True)
out = np.asarray(keras.ops.convert_to_numpy(layer(x)))
expected, _ = ref.depth_gated_stack(
    x.astype("float64"), ref.depth_gated_weights_from_keras(layer.get_weights(), 2))
np.testing.assert_allclose(out, expected, atol=1e-5)
grid = kg.GridLSTM(5, depth=2, return_sequences=True)
out = np.asarray(keras.ops.convert_to_numpy(grid(x)))
w = ref.grid_weights_from_keras(grid.get_weights(), 2, tied=False)
expected, _ = ref.grid_sequence(x.astype("float64"), w, 2)
np.testing.assert_allclose(out, expected, atol=1e-5)
# One compiled model for both layers keeps the subprocess short.
model = keras.Sequential([
    keras.Input((4, 3)),
    kg.DepthGatedLSTM(5, num_layers=2, dropout=0.2, recurrent_dropout=0.2,
                      return_sequences=True),
    kg.GridLSTM(5, depth=2, recurrent_dropout=0.2),
    keras.layers.Dense(1),
])
model.compile("adam", "mse")
loss = model.fit(x, np.ones((2, 1)), epochs=2, verbose=0).history["loss"]
assert np.all(np.isfinite(loss)), loss
print("OK", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_runs_on_other_backends(backend):
    """Depth-gated and Grid LSTM forward (vs NumPy) and fit on JAX and PyTorch."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": REPO_ROOT,
           "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", BACKEND_SMOKE], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK {backend}" in result.stdout


# -- what the paper claims ---------------------------------------------------


def steps_to_threshold(model, max_steps, threshold=0.1, window=10, seed=0):
    """Training steps until the mean loss of the last `window` batches < threshold."""
    rng = np.random.default_rng(seed)
    losses = []
    for step in range(max_steps):
        x = rng.choice([-1.0, 1.0], size=(32, 10, 8)).astype("float32")
        y = (x[:, 0, :1] > 0).astype("float32")
        losses.append(float(model.train_on_batch(x, y)))
        if step + 1 >= window and np.mean(losses[-window:]) < threshold:
            return step + 1
    return None


def eight_layer_model(recurrent):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10, 8)), recurrent,
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "binary_crossentropy",
                  jit_compile=False)
    return model


def test_deep_depth_gated_stack_learns_where_plain_stack_stalls():
    """Yao et al.'s claim at test scale: depth gates let a deep stack train.

    Task: read 10 steps of 8 random ±1 features, output the sign of the very
    first feature of the first step (needs memory over time and through all
    8 layers). Width 8, SGD with momentum, batches of 32. An 8-layer
    depth-gated stack reaches a mean loss below 0.1 in about 40 steps; an
    8-layer stack of keras.layers.LSTM of the same width, same data and
    optimizer, must not get there in twice as many steps (it stays at
    chance, loss ~0.69, for 300 steps and more in our runs).
    """
    depth_gated = eight_layer_model(kg.DepthGatedLSTM(8, num_layers=8))
    depth_gated_steps = steps_to_threshold(depth_gated, max_steps=80)
    assert depth_gated_steps is not None and depth_gated_steps <= 80

    plain_stack = keras.Sequential(
        [keras.layers.LSTM(8, return_sequences=k < 7) for k in range(8)]
    )
    plain = eight_layer_model(plain_stack)
    plain_steps = steps_to_threshold(plain, max_steps=2 * depth_gated_steps)
    assert plain_steps is None, (depth_gated_steps, plain_steps)
