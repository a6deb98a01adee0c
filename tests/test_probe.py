"""keras_gated.probe: gates, states and gradient flow read from the layers' own weights."""

import os

import numpy as np
import pytest

import keras
from keras import ops

import keras_gated as kg
from keras_gated import probe


def _numpy(x):
    return ops.convert_to_numpy(x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _random_weights(layer, rng, scale=0.5):
    layer.set_weights(
        [rng.normal(scale=scale, size=w.shape).astype("float32") for w in layer.get_weights()]
    )


def test_peephole_gates_equal_a_numpy_evaluation_of_the_equations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 5)).astype("float32")
    layer = kg.PeepholeLSTM(4, return_sequences=True)
    layer(x)
    _random_weights(layer, rng)
    W, U, b, p_i, p_f, p_o = layer.get_weights()
    H = 4
    h = np.zeros((3, H))
    c = np.zeros((3, H))
    expected = {"input": [], "forget": [], "output": [], "c": [], "h": []}
    for t in range(6):
        z = x[:, t] @ W + h @ U + b
        i = _sigmoid(z[:, :H] + p_i * c)
        f = _sigmoid(z[:, H : 2 * H] + p_f * c)
        c = f * c + i * np.tanh(z[:, 2 * H : 3 * H])
        o = _sigmoid(z[:, 3 * H :] + p_o * c)
        h = o * np.tanh(c)
        for key, value in (("input", i), ("forget", f), ("output", o), ("c", c), ("h", h)):
            expected[key].append(value)
    expected = {key: np.stack(v, axis=1) for key, v in expected.items()}

    trace = probe.gate_activations(layer, x)[layer.name]
    assert list(trace.gates) == ["input", "forget", "output"]
    for gate in ("input", "forget", "output"):
        assert trace.gates[gate].shape == (3, 6, 4)
        np.testing.assert_allclose(trace.gates[gate], expected[gate], atol=1e-5)
    np.testing.assert_allclose(trace.cell_states[0], expected["c"], atol=1e-5)
    np.testing.assert_allclose(trace.hidden_states[0], expected["h"], atol=1e-5)
    np.testing.assert_allclose(trace.outputs, _numpy(layer(x)), atol=1e-5)


def test_keras_lstm_gates_recomputed_from_its_weights_in_order_i_f_c_o():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    layer = keras.layers.LSTM(5, return_sequences=True, return_state=True)
    outputs, h_last, c_last = layer(x)
    trace = probe.trace_layer(layer, x)
    np.testing.assert_allclose(trace.outputs, _numpy(outputs), atol=1e-5)
    np.testing.assert_allclose(trace.cell_states[0][:, -1], _numpy(c_last), atol=1e-5)
    # Block i of the kernel drives the "input" gate at the first step (h = c = 0).
    W, _, b = layer.get_weights()
    np.testing.assert_allclose(
        trace.gates["input"][:, 0], _sigmoid(x[:, 0] @ W[:, :5] + b[:5]), atol=1e-5
    )
    np.testing.assert_allclose(
        trace.gates["output"][:, 0], _sigmoid(x[:, 0] @ W[:, 15:] + b[15:]), atol=1e-5
    )


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_outputs_and_update_gate_from_its_weights(reset_after):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    layer = keras.layers.GRU(4, return_sequences=True, reset_after=reset_after)
    layer(x)
    _random_weights(layer, rng)
    trace = probe.trace_layer(layer, x)
    np.testing.assert_allclose(trace.outputs, _numpy(layer(x)), atol=1e-5)
    assert list(trace.gates) == ["update", "reset"]
    assert trace.cell_states == []
    W, _, b = layer.get_weights()
    input_bias = b[0] if reset_after else b
    recurrent_bias = b[1][:4] if reset_after else 0.0
    np.testing.assert_allclose(
        trace.gates["update"][:, 0],
        _sigmoid(x[:, 0] @ W[:, :4] + input_bias[:4] + recurrent_bias),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: kg.CoupledLSTM(4, return_sequences=True, return_state=True),
        lambda: kg.UntiedLSTM(4, return_sequences=True, return_state=True),
        lambda: keras.layers.RNN(kg.PeepholeLSTMCell(4), return_sequences=True, return_state=True),
        lambda: keras.layers.SimpleRNN(4, return_sequences=True, return_state=True),
    ],
    ids=["coupled", "untied", "rnn-over-cell", "simple-rnn"],
)
def test_probe_replays_the_layer_exactly(make):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    layer = make()
    outputs, *states = layer(x)
    trace = probe.trace_layer(layer, x)
    np.testing.assert_allclose(trace.outputs, _numpy(outputs), atol=1e-5)
    np.testing.assert_allclose(trace.hidden_states[0][:, -1], _numpy(states[0]), atol=1e-5)
    if len(states) > 1:
        np.testing.assert_allclose(trace.cell_states[0][:, -1], _numpy(states[1]), atol=1e-5)
    for gate, values in trace.gates.items():
        assert values.shape == (2, 5, 4), gate
        assert np.all((values >= 0) & (values <= 1)), gate


def test_bidirectional_halves_are_indexed_by_input_position():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    layer = keras.layers.Bidirectional(kg.PeepholeLSTM(4, return_sequences=True))
    merged = _numpy(layer(x))
    traces = probe.gate_activations(layer, x)
    assert list(traces) == [f"{layer.name}/forward", f"{layer.name}/backward"]
    np.testing.assert_allclose(traces[f"{layer.name}/forward"].outputs, merged[..., :4], atol=1e-5)
    np.testing.assert_allclose(traces[f"{layer.name}/backward"].outputs, merged[..., 4:], atol=1e-5)
    # The backward half reads x_{T-1} first: its step at position T-1 starts from zero state.
    backward = keras.layers.RNN(layer.backward_layer.cell, return_sequences=True)
    first = _numpy(backward(x[:, ::-1]))[:, 0]
    np.testing.assert_allclose(traces[f"{layer.name}/backward"].outputs[:, -1], first, atol=1e-5)


def test_model_walk_probes_nested_layers_on_their_own_inputs():
    tokens = np.array([[3, 4, 5, 6, 7], [1, 2, 3, 4, 5]])
    inner = keras.Sequential(
        [keras.Input((5, 8)), kg.CoupledLSTM(6, return_sequences=True, name="cifg")],
        name="inner",
    )
    inputs = keras.Input((5,), dtype="int32")
    hidden = keras.layers.Embedding(10, 8)(inputs)
    hidden = kg.PeepholeLSTM(8, return_sequences=True, name="first")(hidden)
    hidden = inner(hidden)
    hidden = keras.layers.LSTM(3, name="last")(hidden)
    dense = keras.layers.Dense(1)
    model = keras.Model(inputs, dense(hidden))

    found = [path for path, _ in probe.find_gated_layers(model)]
    assert found == ["first", "inner/cifg", "last"]
    traces = probe.gate_activations(model, tokens)
    assert list(traces) == found
    np.testing.assert_allclose(
        traces["inner/cifg"].outputs,
        _numpy(inner(traces["first"].outputs)),
        atol=1e-5,
    )
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(
        traces["last"].outputs[:, -1] @ kernel + bias, _numpy(model(tokens)), atol=1e-5
    )


def test_masked_steps_carry_the_state_and_are_left_out():
    tokens = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    embedding = keras.layers.Embedding(10, 8, mask_zero=True)
    layer = kg.PeepholeLSTM(8, return_sequences=True)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), embedding, layer])
    trace = probe.gate_activations(model, tokens)[layer.name]
    np.testing.assert_array_equal(trace.mask, tokens != 0)
    np.testing.assert_allclose(trace.outputs, _numpy(model(tokens)), atol=1e-5)
    np.testing.assert_allclose(trace.cell_states[0][0, 3], trace.cell_states[0][0, 2])
    assert trace.values("forget").shape == (8, 8)  # 3 + 5 valid steps
    left, right = trace.saturation("forget")
    assert left.shape == right.shape == (8,)
    assert np.all((left >= 0) & (left <= 1) & (right >= 0) & (right <= 1))
    assert np.all(left + right <= 1)


def test_gradient_flow_is_dl_dh_checked_through_the_inputs():
    # SimpleRNN: h_t = tanh(W x_t + U h_{t-1} + b), so dL/dx_t = W ((1 - h_t^2) dL/dh_t).
    import tensorflow as tf

    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 8, 2)).astype("float32")
    y = rng.normal(size=(3, 1)).astype("float32")
    rnn = keras.layers.SimpleRNN(5)
    model = keras.Sequential([keras.Input((8, 2)), rnn, keras.layers.Dense(1)])
    model.compile(loss="mse")
    found = probe.inspect(model, x, y)
    (dl_dh,) = found.hidden_gradients[rnn.name]
    h = found.traces[rnn.name].hidden_states[0]
    W = rnn.get_weights()[0]
    from_probe = ((1 - h**2) * dl_dh) @ W.T

    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = model.compute_loss(x=inputs, y=y, y_pred=model(inputs))
    np.testing.assert_allclose(from_probe, tape.gradient(loss, inputs).numpy(), atol=1e-6)
    flow = probe.gradient_flow(model, x, y)[rnn.name]
    assert flow.shape == (1, 8)
    np.testing.assert_allclose(flow[0], np.sqrt((dl_dh**2).sum(axis=(0, 2))))


def _flow(layer, x, y, forget_bias=None):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(x.shape[1:]), layer, keras.layers.Dense(1)])
    model.compile(loss="mse")
    if forget_bias is not None:
        bias = _numpy(layer.cell.bias).copy()
        k = layer.cell.kernel_gates.index("f")
        bias[k * layer.units : (k + 1) * layer.units] = forget_bias
        layer.cell.bias.assign(bias)
    return probe.gradient_flow(model, x, y)[layer.name][0]


def test_gradient_vanishes_in_a_simple_rnn_but_not_through_a_peephole_lstm():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 100, 4)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    keras.utils.set_random_seed(1)
    simple = _flow(keras.layers.SimpleRNN(16), x, y)
    keras.utils.set_random_seed(1)
    lstm = _flow(kg.PeepholeLSTM(16), x, y, forget_bias=3.0)
    assert simple.shape == lstm.shape == (100,)
    simple_decay = np.log10(simple[-1] / simple[0])
    lstm_decay = np.log10(lstm[-1] / lstm[0])
    # Measured: SimpleRNN 13.7 orders of magnitude, peephole LSTM 1.0.
    assert simple_decay > 8.0
    assert lstm_decay < 3.0


def test_transform_gates_of_a_highway_stack():
    inputs = keras.Input((6,))
    hidden = inputs
    for _ in range(3):
        hidden = kg.Highway()(hidden)
    model = keras.Model(inputs, hidden)
    x = np.random.default_rng(6).normal(size=(4, 6)).astype("float32")
    gates = probe.transform_gates(model, x)
    assert len(gates) == 3
    first = model.layers[1]
    np.testing.assert_allclose(
        list(gates.values())[0], _numpy(first.transform_gate(x)), atol=1e-6
    )
    # The transform bias starts at -2: the gates start mostly closed.
    assert all(g.mean() < 0.3 for g in gates.values())


def test_probe_rejects_what_it_cannot_read():
    dense = keras.layers.Dense(3)
    with pytest.raises(ValueError, match="gate_activations takes"):
        probe.gate_activations(dense, np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="trace_layer needs a recurrent layer"):
        probe.trace_layer(dense, np.zeros((1, 2, 3), "float32"))
    conv = keras.layers.ConvLSTM1D(2, 3)
    assert not probe.is_recurrent(conv)


_JAX_CHECK = """
import jax, numpy as np, keras
from keras_gated import probe
rng = np.random.default_rng(5)
x = rng.normal(size=(3, 8, 2)).astype("float32")
y = rng.normal(size=(3, 1)).astype("float32")
rnn = keras.layers.SimpleRNN(5)
model = keras.Sequential([keras.Input((8, 2)), rnn, keras.layers.Dense(1)])
model.compile(loss="mse")
found = probe.inspect(model, x, y)
(dl_dh,) = found.hidden_gradients[rnn.name]
h = found.traces[rnn.name].hidden_states[0]
from_probe = ((1 - h**2) * dl_dh) @ rnn.get_weights()[0].T
direct = jax.grad(lambda v: model.compute_loss(x=v, y=y, y_pred=model(v)))(x)
np.testing.assert_allclose(from_probe, np.asarray(direct), atol=1e-6)
print("gradient flow on jax:", found.gradient_flow[rnn.name].shape)
"""


def test_gradient_flow_on_the_jax_backend():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=root, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", _JAX_CHECK], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gradient flow on jax: (1, 8)" in result.stdout


class _TwoLevelCell(keras.layers.Layer):
    """A toy stack: two tanh RNN levels inside one step, states (h, c) per level.

    It follows the protocol of the stacked cells: project_inputs, gated_step
    returning per-level gates, and `perturbed_step` (a
    `probe.PerturbableStack`).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units] * 4
        self.output_size = units

    def build(self, input_shape):
        H = self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], H), name="kernel")
        self.recurrent_0 = self.add_weight(shape=(H, H), name="recurrent_0")
        self.up = self.add_weight(shape=(H, H), name="up")
        self.recurrent_1 = self.add_weight(shape=(H, H), name="recurrent_1")

    def project_inputs(self, inputs):
        return ops.matmul(inputs, self.kernel)

    def gated_step(self, projected, states, training=False):
        return self.perturbed_step(projected, states, None, training)

    def perturbed_step(self, projected, states, hidden_perturbations, training=False):
        e = hidden_perturbations or [0.0, 0.0]
        h0 = ops.tanh(projected + ops.matmul(states[0], self.recurrent_0)) + e[0]
        gate = ops.sigmoid(ops.matmul(h0, self.up))
        h1 = ops.tanh(ops.matmul(h0, self.up) + ops.matmul(states[2], self.recurrent_1)) + e[1]
        return h1, [h0, h0, h1, h1], {"layer_0": {}, "layer_1": {"up": gate}}

    def call(self, inputs, states, training=False):
        output, new_states, _ = self.gated_step(self.project_inputs(inputs), states)
        return output, new_states


def test_stacked_cell_with_hidden_perturbations_gets_the_full_gradient_of_every_level():
    import tensorflow as tf

    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 6, 2)).astype("float32")
    y = rng.normal(size=(3, 1)).astype("float32")
    rnn = keras.layers.RNN(_TwoLevelCell(4), name="stack")
    model = keras.Sequential([keras.Input((6, 2)), rnn, keras.layers.Dense(1)])
    model.compile(loss="mse")
    found = probe.inspect(model, x, y)
    trace = found.traces["stack"]
    assert list(trace.gates) == ["layer_1/up"]
    assert len(trace.hidden_states) == len(trace.cell_states) == 2
    np.testing.assert_allclose(trace.outputs[:, -1], _numpy(rnn(x)), atol=1e-5)
    # Level 0 is h0_t = tanh(W x_t + U h0_{t-1}): dL/dx_t = W (1 - h0_t^2) dL/dh0_t,
    # which holds only if dL/dh0_t includes the path up through level 1.
    dl_dh0 = found.hidden_gradients["stack"][0]
    h0 = trace.hidden_states[0]
    from_probe = ((1 - h0**2) * dl_dh0) @ rnn.cell.get_weights()[0].T
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = model.compute_loss(x=inputs, y=y, y_pred=model(inputs))
    np.testing.assert_allclose(from_probe, tape.gradient(loss, inputs).numpy(), atol=1e-6)
    assert found.gradient_flow["stack"].shape == (2, 6)
    assert found.gradient_flow["stack"][0, -1] > 0


def test_probe_under_a_mixed_precision_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    x = np.random.default_rng(8).normal(size=(2, 6, 3)).astype("float32")
    layer = kg.PeepholeLSTM(4, return_sequences=True)
    model = keras.Sequential([keras.Input((6, 3)), layer, keras.layers.LSTM(4, name="top"), keras.layers.Dense(1)])
    model.compile(loss="mse")
    found = probe.inspect(model, x, np.zeros((2, 1), "float32"))
    # The replay runs in float32, the layer in float16: equal to float16 precision.
    np.testing.assert_allclose(
        found.traces[layer.name].outputs,
        _numpy(ops.cast(layer(x), "float32")),
        atol=1e-2,
    )
    assert found.gradient_flow["top"].shape == (1, 6)
    assert np.all(np.isfinite(found.gradient_flow["top"]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: kg.DepthGatedLSTM(4, num_layers=2, name="stack"),
        lambda: kg.GridLSTM(4, depth=2, priority="depth", name="stack"),
    ],
    ids=["depth_gated", "grid_prioritised"],
)
def test_stacks_report_the_upward_path_in_the_lower_levels_gradient(make):
    # The loss reads only the top level's output at the last step, so the
    # lower level's h at that step matters only through the level above in
    # the same step: its gradient is non-zero only if the stack adds the
    # probe's perturbation where h is computed (`perturbed_step`).
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 2)).astype("float32")
    y = rng.normal(size=(3, 1)).astype("float32")
    model = keras.Sequential([keras.Input((5, 2)), make(), keras.layers.Dense(1)])
    model.compile(loss="mse")
    flow = probe.inspect(model, x, y).gradient_flow["stack"]
    assert flow.shape == (2, 5)
    assert flow[0, -1] > 1e-6
    assert np.all(np.isfinite(flow))
