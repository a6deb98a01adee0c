"""Every cell and the Highway layer against the float64 NumPy reference of SPEC.md.

Forward: outputs and final states of `keras.layers.RNN(cell)` and of the layer
class (fused and step by step) equal `tests/reference.py` to float32
precision. Backward: the TensorFlow gradients of a scalar loss w.r.t. the
inputs, the initial states and every weight equal central finite differences
of the float64 reference.
"""

from typing import Callable
from typing import NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gated as kg
from tests import reference as ref

BATCH, STEPS, FEATURES, UNITS = 2, 4, 3, 4

class Case(NamedTuple):
    id: str
    cell: type
    layer: type
    kwargs: dict  # constructor arguments, shared by the cell and the layer
    step: Callable  # the reference step function
    options: dict = {}  # its activations, when not the defaults


PEEPHOLE = (kg.PeepholeLSTMCell, kg.PeepholeLSTM)
COUPLED = (kg.CoupledLSTMCell, kg.CoupledLSTM)
UNTIED = (kg.UntiedLSTMCell, kg.UntiedLSTM)
# σ and φ other than the defaults, to show each is used where SPEC puts it.
CUSTOM = {"activation": "softsign", "recurrent_activation": kg.activations.legacy_hard_sigmoid}
CUSTOM_REF = {"activation": ref.softsign, "recurrent_activation": ref.legacy_hard_sigmoid}

CELLS = [
    Case("peephole-ifo", *PEEPHOLE, {}, ref.peephole_lstm_step),
    Case("peephole-fo", *PEEPHOLE, {"peepholes": ("f", "o")}, ref.peephole_lstm_step),
    Case("peephole-i", *PEEPHOLE, {"peepholes": "i"}, ref.peephole_lstm_step),
    Case("peephole-none", *PEEPHOLE, {"peepholes": ()}, ref.peephole_lstm_step),
    Case("coupled", *COUPLED, {}, ref.coupled_lstm_step),
    Case("coupled-fo", *COUPLED, {"peepholes": ("f", "o")}, ref.coupled_lstm_step),
    Case("coupled-o", *COUPLED, {"peepholes": ("o",)}, ref.coupled_lstm_step),
    Case("untied", *UNTIED, {}, ref.untied_lstm_step),
    Case("untied-nobias", *UNTIED, {"use_bias": False}, ref.untied_lstm_step),
    Case("peephole-softsign-hardsigmoid", *PEEPHOLE, CUSTOM,
         ref.peephole_lstm_step, CUSTOM_REF),
    Case("coupled-fo-softsign-hardsigmoid", *COUPLED, {"peepholes": "fo", **CUSTOM},
         ref.coupled_lstm_step, CUSTOM_REF),
    Case("untied-softsign-hardsigmoid", *UNTIED, CUSTOM,
         ref.untied_lstm_step, CUSTOM_REF),
]
CASE_IDS = [case.id for case in CELLS]
PATHS = ["rnn", "fused", "unfused"]


def make_layer(case, path, dtype=None):
    if path == "rnn":
        return keras.layers.RNN(
            case.cell(UNITS, dtype=dtype, **case.kwargs),
            return_sequences=True, return_state=True, dtype=dtype,
        )
    return case.layer(
        UNITS, return_sequences=True, return_state=True,
        fused=(path == "fused"), dtype=dtype, **case.kwargs
    )


def randomize(layer, rng, scale=0.6, dtype="float32"):
    """Sets every weight to random values; returns {SPEC name: float64 array}."""
    weights = {}
    for variable in layer.weights:
        value = rng.normal(0.0, scale, size=variable.shape).astype(dtype)
        variable.assign(value)
        # The reference gets exactly what the layer holds, rounding included.
        weights[variable.name] = value.astype("float64")
    assert len(weights) == len(layer.weights), "weight names must be unique"
    return weights


def random_problem(case, path, seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(dtype)
    states = [rng.normal(0.0, 0.5, size=(BATCH, UNITS)).astype(dtype) for _ in range(2)]
    layer = make_layer(case, path, dtype=None if dtype == "float32" else dtype)
    layer.build((BATCH, STEPS, FEATURES))
    weights = randomize(layer, rng, dtype=dtype)
    return layer, inputs, states, weights, rng


def reference_run(case, inputs, states, weights):
    return ref.run_sequence(case.step, inputs, states, weights, **case.options)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CELLS, ids=CASE_IDS)
def test_forward_matches_reference(case, path):
    layer, inputs, states, weights, _ = random_problem(case, path, seed=0)
    outputs, h, c = layer(inputs, initial_state=states)
    expected_outputs, (expected_h, expected_c) = reference_run(
        case, inputs.astype("float64"), [s.astype("float64") for s in states], weights
    )
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(h, expected_h, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(c, expected_c, rtol=1e-5, atol=2e-6)
    # The problem is not degenerate: the memory moved well away from its start.
    assert np.abs(expected_c - states[1]).max() > 0.1


def check_gradients(keras_grads, numeric_grads, names):
    for name, got, expected in zip(names, keras_grads, numeric_grads):
        np.testing.assert_allclose(
            np.asarray(got), expected, rtol=1e-4, atol=2e-5,
            err_msg=f"gradient w.r.t. {name}",
        )
        assert np.abs(expected).max() > 1e-3, f"gradient w.r.t. {name} vanishes"


def gradients_and_finite_differences(case, layer, inputs, states, weights, rng):
    """Gradients of a scalar loss from TensorFlow and from the float64 reference.

    A fixed random projection of outputs and final states makes the loss
    scalar. Returns (names, keras gradients, numerical gradients) for the
    inputs, the initial states and every weight.
    """
    probe_out = rng.normal(size=(BATCH, STEPS, UNITS))
    probe_h = rng.normal(size=(BATCH, UNITS))
    probe_c = rng.normal(size=(BATCH, UNITS))
    dtype = inputs.dtype

    x = tf.constant(inputs)
    s = [tf.constant(v) for v in states]
    with tf.GradientTape() as tape:
        tape.watch([x, *s])
        outputs, h, c = layer(x, initial_state=s)
        loss = (
            tf.reduce_sum(outputs * probe_out.astype(dtype))
            + tf.reduce_sum(h * probe_h.astype(dtype))
            + tf.reduce_sum(c * probe_c.astype(dtype))
        )
    variables = list(layer.weights)
    grads = tape.gradient(loss, [x, *s, *[v.value for v in variables]])

    x64 = inputs.astype("float64")
    s64 = [v.astype("float64") for v in states]

    def reference_loss():
        out, (h_ref, c_ref) = reference_run(case, x64, s64, weights)
        return (out * probe_out).sum() + (h_ref * probe_h).sum() + (c_ref * probe_c).sum()

    arrays = [x64, *s64, *[weights[v.name] for v in variables]]
    numeric = [ref.numerical_gradient(reference_loss, a) for a in arrays]
    names = ["inputs", "initial h", "initial c", *[v.name for v in variables]]
    return names, grads, numeric


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CELLS, ids=CASE_IDS)
def test_gradients_match_finite_differences(case, path):
    problem = random_problem(case, path, seed=1)
    names, grads, numeric = gradients_and_finite_differences(case, *problem)
    check_gradients(grads, numeric, names)


@pytest.mark.parametrize("case", CELLS, ids=CASE_IDS)
def test_float64_layers_match_reference_to_round_off(case):
    """In float64 the only differences left are round-off: nothing approximate
    hides behind the float32 tolerances above."""
    for path in PATHS:
        layer, inputs, states, weights, _ = random_problem(case, path, 5, "float64")
        got = layer(inputs, initial_state=states)
        expected_outputs, expected_states = reference_run(case, inputs, states, weights)
        for name, g, e in zip(["outputs", "h", "c"], got,
                              [expected_outputs, *expected_states]):
            assert g.dtype == "float64"
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-13,
                                       err_msg=f"{path}: {name}")
    names, grads, numeric = gradients_and_finite_differences(
        case, *random_problem(case, "fused", 6, "float64")
    )
    for name, g, n in zip(names, grads, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-7, atol=1e-8, err_msg=name)


# ------------------------------------------------------------------- Highway
HIGHWAY_CASES = [
    ("coupled-relu", {"carry_gate": "coupled"}, "relu"),
    ("free-relu", {"carry_gate": "free"}, "relu"),
    ("coupled-tanh", {"carry_gate": "coupled", "activation": "tanh"}, "tanh"),
    ("free-tanh", {"carry_gate": "free", "activation": "tanh"}, "tanh"),
]
REFERENCE_ACTIVATIONS = {"relu": ref.relu, "tanh": np.tanh}


def highway_problem(kwargs, seed, shape=(3, FEATURES + 1)):
    rng = np.random.default_rng(seed)
    layer = kg.Highway(**kwargs)
    layer.build(shape)
    weights = randomize(layer, rng, scale=0.8)
    inputs = rng.normal(size=shape).astype("float32")
    return layer, inputs, weights, rng


@pytest.mark.parametrize("case", HIGHWAY_CASES, ids=[c[0] for c in HIGHWAY_CASES])
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 5)], ids=["rank2", "rank3"])
def test_highway_forward_matches_reference(case, shape):
    _, kwargs, activation = case
    layer, inputs, weights, _ = highway_problem(kwargs, seed=2, shape=shape)
    expected = ref.highway(
        inputs.astype("float64"), weights,
        activation=REFERENCE_ACTIVATIONS[activation],
        carry_gate=kwargs["carry_gate"],
    )
    np.testing.assert_allclose(layer(inputs), expected, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("case", HIGHWAY_CASES, ids=[c[0] for c in HIGHWAY_CASES])
def test_highway_gradients_match_finite_differences(case):
    _, kwargs, activation = case
    layer, inputs, weights, rng = highway_problem(kwargs, seed=3)
    probe = rng.normal(size=inputs.shape)
    x = tf.constant(inputs)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * probe.astype("float32"))
    variables = list(layer.weights)
    grads = tape.gradient(loss, [x, *[v.value for v in variables]])

    x64 = inputs.astype("float64")

    def reference_loss():
        y = ref.highway(
            x64, weights, activation=REFERENCE_ACTIVATIONS[activation],
            carry_gate=kwargs["carry_gate"],
        )
        return (y * probe).sum()

    arrays = [x64, *[weights[v.name] for v in variables]]
    numeric = [ref.numerical_gradient(reference_loss, a) for a in arrays]
    if activation == "relu":
        # relu has a kink at 0; finite differences across it are meaningless.
        pre = x64 @ weights["kernel"] + weights["bias"]
        assert np.abs(pre).min() > 1e-4, "choose another seed: a relu input sits on its kink"
    check_gradients(grads, numeric, ["inputs", *[v.name for v in variables]])


# ------------------------------------------- PeepholeLSTMCell vs keras LSTMCell
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("peepholes", ["zero-vectors", "none-created"])
def test_zero_peepholes_equal_keras_lstm_cell(peepholes, path):
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    lstm = keras.layers.RNN(
        keras.layers.LSTMCell(UNITS), return_sequences=True, return_state=True
    )
    lstm.build((BATCH, STEPS, FEATURES))
    randomize(lstm, rng)
    kwargs = {"peepholes": ()} if peepholes == "none-created" else {}
    ours = make_layer(Case("", *PEEPHOLE, kwargs, ref.peephole_lstm_step), path)
    ours.build((BATCH, STEPS, FEATURES))
    zeros = [np.zeros(UNITS, "float32")] * (3 if peepholes == "zero-vectors" else 0)
    ours.set_weights(lstm.get_weights() + zeros)

    x = tf.constant(inputs)
    results = []
    for layer in (lstm, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs, h, c = layer(x)
            loss = tf.reduce_sum(outputs * np.linspace(-1, 1, UNITS, dtype="float32"))
        grads = tape.gradient(loss, [x, *[v.value for v in layer.weights[:3]]])
        results.append([outputs, h, c, *grads])
    names = ["outputs", "h", "c", "d/dinputs", "d/dkernel", "d/drecurrent_kernel", "d/dbias"]
    for name, expected, got in zip(names, *results):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=name)
