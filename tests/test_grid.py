"""GridLSTMCell / GridLSTM: numbers against NumPy, options, weights, protocol.

The JAX and PyTorch smoke run of GridLSTM shares a subprocess with the
depth-gated one (tests/test_depth_gated.py::test_runs_on_other_backends).
"""

import numpy as np
import pytest

import keras_gated as kg
from tests import protocol_checks
from tests import reference_stacks as ref

B, T, D, H = 2, 5, 3, 4


def sequence(batch=B, steps=T, features=D, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, features))


def float64_grid(x, seed=1, **kwargs):
    layer = kg.GridLSTM(
        H, return_sequences=True, return_state=True, dtype="float64", **kwargs
    )
    layer(x)
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(scale=0.6, size=w.shape) for w in layer.get_weights()]
    )
    return layer


def test_one_level_grid_is_one_block_per_step():
    """A 1-level grid: each step is one 2-D grid block fed by x P from below."""
    x = sequence()
    layer = float64_grid(x, depth=1)
    P, W_t, b_t, W_d, b_d = layer.get_weights()
    h_time = m_time = np.zeros((B, H))
    outputs = []
    for t in range(T):
        (h_time, m_time), (h_depth, _) = ref.grid_block(
            [h_time, x[:, t] @ P],
            [m_time, np.zeros((B, H))],
            [("lstm", W_t[0], b_t[0]), ("lstm", W_d[0], b_d[0])],
        )
        outputs.append(h_depth)
    got, h_state, m_state = layer(x)
    np.testing.assert_allclose(got, np.stack(outputs, 1), rtol=1e-10)
    np.testing.assert_allclose(h_state, h_time, rtol=1e-10)
    np.testing.assert_allclose(m_state, m_time, rtol=1e-10)


@pytest.mark.parametrize(
    "options",
    [
        dict(depth=3),
        dict(depth=3, fused=False),
        dict(depth=3, tied_weights=True),
        dict(depth=2, depth_transform="tanh"),
        dict(depth=2, depth_transform="identity", use_bias=False),
        dict(depth=2, priority="depth"),
        dict(depth=2, tied_weights=True, depth_transform="tanh", priority="depth"),
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_k_level_grid_matches_numpy_loop_over_levels(options):
    x = sequence()
    layer = float64_grid(x, **options)
    depth = options["depth"]
    rng = np.random.default_rng(3)
    initial = [rng.normal(size=(B, H)) for _ in range(2 * depth)]
    outputs, *states = layer(x, initial_state=initial)
    w = ref.grid_weights_from_keras(
        layer.get_weights(), depth,
        tied=options.get("tied_weights", False),
        use_bias=options.get("use_bias", True),
    )
    expected, expected_states = ref.grid_sequence(
        x, w, depth,
        transform=options.get("depth_transform", "lstm"),
        priority=options.get("priority"),
        states=initial,
    )
    np.testing.assert_allclose(outputs, expected, rtol=1e-10, atol=1e-12)
    assert len(states) == 2 * depth
    for got, want in zip(states, expected_states):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_options_change_the_numbers():
    """Each option is used: the variants differ from the default grid."""
    x = sequence()
    default = float64_grid(x, depth=2)
    base = np.asarray(default(x)[0])
    for options in (dict(priority="depth"), dict(depth_transform="tanh"),
                    dict(depth_transform="identity")):
        other = float64_grid(x, depth=2, **options)
        assert np.abs(np.asarray(other(x)[0]) - base).max() > 1e-3, options


def test_gradients_match_finite_differences_of_reference():
    x = sequence(steps=3)
    layer = float64_grid(x, depth=2)
    weights = layer.get_weights()
    target = np.random.default_rng(4).normal(size=(B, 3, H))

    def reference_loss(values, inputs):
        w = ref.grid_weights_from_keras(values, 2, tied=False)
        outputs, states = ref.grid_sequence(inputs, w, 2)
        return np.sum(outputs * target) + np.sum(states[1] ** 2)

    import tensorflow as tf

    inputs = tf.Variable(x)
    with tf.GradientTape() as tape:
        outputs, _, m_bottom, _, _ = layer(inputs)
        loss = tf.reduce_sum(outputs * target) + tf.reduce_sum(m_bottom**2)
    grads = tape.gradient(loss, layer.trainable_weights + [inputs])
    rng = np.random.default_rng(6)
    eps = 1e-6
    for index, grad in enumerate(grads):
        values = weights + [x]
        for flat in rng.choice(values[index].size, size=4, replace=False):
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


# -- weights and their count -------------------------------------------------


def documented_weight_count(D, H, K, tied=False, transform="lstm", bias=True):
    """docs/grid_lstm.md: DH + L (8H^2 + 4H + 2H·W + W), W = 4H (lstm) or H, L = 1 if tied else K."""
    W = 4 * H if transform == "lstm" else H
    per_level = 2 * H * 4 * H + 2 * H * W + ((4 * H + W) if bias else 0)
    return D * H + (1 if tied else K) * per_level


@pytest.mark.parametrize(
    "options",
    [
        dict(depth=1),
        dict(depth=3),
        dict(depth=3, tied_weights=True),
        dict(depth=2, depth_transform="tanh"),
        dict(depth=4, tied_weights=True, depth_transform="identity", use_bias=False),
    ],
)
def test_weight_count_matches_documented_formula(options):
    layer = kg.GridLSTM(H, **options)
    layer(np.zeros((1, 2, D), "float32"))
    assert layer.count_params() == documented_weight_count(
        D, H, options["depth"],
        tied=options.get("tied_weights", False),
        transform=options.get("depth_transform", "lstm"),
        bias=options.get("use_bias", True),
    )


def test_tied_weights_do_not_grow_with_depth():
    counts = {}
    for tied in (False, True):
        for depth in (1, 4):
            layer = kg.GridLSTM(H, depth=depth, tied_weights=tied)
            layer(np.zeros((1, 2, D), "float32"))
            counts[tied, depth] = layer.count_params()
    assert counts[True, 4] == counts[True, 1] == counts[False, 1]
    assert counts[False, 4] - D * H == 4 * (counts[False, 1] - D * H)


def test_weight_layout_and_initial_forget_bias():
    layer = kg.GridLSTM(H, depth=3)
    layer(np.zeros((1, 2, D), "float32"))
    shapes = {w.name: tuple(w.shape) for w in layer.weights}
    assert shapes == {
        "input_projection": (D, H), "time_kernel": (3, 2 * H, 4 * H),
        "time_bias": (3, 4 * H), "depth_kernel": (3, 2 * H, 4 * H),
        "depth_bias": (3, 4 * H),
    }
    # Blocks i, f, o, g: only the forget block starts at 1.
    for bias in (layer.cell.time_bias, layer.cell.depth_bias):
        expected = np.concatenate([np.zeros(H), np.ones(H), np.zeros(2 * H)])
        np.testing.assert_allclose(bias.numpy(), np.tile(expected, (3, 1)))
    # Every level starts from its own draw.
    kernel = layer.cell.time_kernel.numpy()
    assert np.abs(kernel[0] - kernel[1]).max() > 1e-3
    cell = layer.cell
    _, states, gates = cell.gated_step(
        cell.project_inputs(np.ones((1, D), "float32")),
        cell.get_initial_state(batch_size=1),
    )
    assert len(states) == 6
    assert "level_2/depth_forget" in gates and "level_0/time_output" in gates


# -- the Keras RNN protocol --------------------------------------------------


def make_grid(**kwargs):
    kwargs.setdefault("depth", 2)
    return kg.GridLSTM(H, **kwargs)


@pytest.fixture
def x32():
    return sequence(seed=9).astype("float32")


def test_rnn_cell_and_unfused_path_equal_layer(x32):
    protocol_checks.check_rnn_cell_equals_layer(make_grid, x32)
    protocol_checks.check_rnn_cell_equals_layer(
        lambda **kw: make_grid(priority="depth", tied_weights=True, **kw), x32
    )


def test_bidirectional(x32):
    protocol_checks.check_bidirectional(make_grid, x32)


def test_masking(x32):
    protocol_checks.check_masking(make_grid, x32)


def test_stateful_and_return_state(x32):
    protocol_checks.check_stateful_and_return_state(make_grid, x32, 4)


def test_dropout(x32):
    protocol_checks.check_dropout(make_grid, x32)


def test_mixed_float16(x32):
    protocol_checks.check_mixed_float16(make_grid, x32)


def test_config_save_load_and_export(x32, tmp_path):
    protocol_checks.check_config_save_and_export(
        lambda **kw: make_grid(depth_transform="tanh", priority="depth", **kw),
        x32, tmp_path,
    )


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 0}, "depth"),
        ({"depth": "3"}, "depth"),
        ({"tied_weights": "yes"}, "tied_weights"),
        ({"depth_transform": "relu"}, "depth_transform"),
        ({"priority": "time"}, "priority"),
        ({"recurrent_dropout": -0.1}, "recurrent_dropout"),
        ({"peepholes": "f"}, "peephole"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kg.GridLSTMCell(H, **kwargs)
    with pytest.raises(ValueError, match=message):
        kg.GridLSTM(H, **kwargs)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(batch, timesteps, features\)"):
        kg.GridLSTM(H, depth=2).build((B, D))
    cell = kg.GridLSTMCell(H, depth=2)
    with pytest.raises(ValueError, match="known feature width"):
        cell.build((None, None))
    cell.build((None, D))
    with pytest.raises(ValueError, match="built for inputs with 3 features"):
        cell(np.zeros((B, 5), "float32"), cell.get_initial_state(batch_size=B))
    with pytest.raises(ValueError, match="one time step"):
        cell(np.zeros((B, T, D), "float32"), cell.get_initial_state(batch_size=B))
