"""kg.LSTM and the LSTM options against float64 references, Keras and PyTorch.

`layer_norm`, `projection_units` and `cell_clip` on the LSTM, peephole,
coupled and untied cells (SPEC.md, "Options of the LSTM-family cells"):
forward values of every path and the gradients of the fast path (the
written backward steps) against `tests/reference.py`'s
`lstm_options_step` and its central finite differences; `kg.LSTM` against
`keras.layers.LSTM`; `projection_units` against `torch.nn.LSTM(proj_size=)`
with ported weights (docs/migration.md). The same layers on JAX's fast loop
are compared with its generic loop by `tests/jax_fast_script.py`.
"""

from typing import NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gated as kg
from tests import reference as ref

BATCH, STEPS, FEATURES, UNITS, PROJECTION = 2, 4, 3, 4, 3
CLIP = 0.3


class Case(NamedTuple):
    id: str
    layer: type
    cell: type
    reference_cell: str  # the cell name of ref.lstm_options_step
    kwargs: dict


CELLS = [
    ("lstm", kg.LSTM, kg.LSTMCell, {}),
    ("peephole", kg.PeepholeLSTM, kg.PeepholeLSTMCell, {}),
    ("coupled", kg.CoupledLSTM, kg.CoupledLSTMCell, {"peepholes": "fo"}),
    ("untied", kg.UntiedLSTM, kg.UntiedLSTMCell, {}),
    # One layer; D != H, so l_t is the learned `depth_projection` of x.
    ("depth_gated", kg.DepthGatedLSTM, kg.DepthGatedLSTMCell, {}),
]
OPTIONS = {
    "layer-norm": {"layer_norm": True},
    "projection": {"projection_units": PROJECTION},
    "clip": {"cell_clip": CLIP},
    "zoneout": {"zoneout": (0.25, 0.4)},
    "all": {"layer_norm": True, "projection_units": PROJECTION, "cell_clip": CLIP,
            "zoneout": 0.3},
}
CASES = [
    Case(f"{name}-{option}", layer, cell, name, {**kwargs, **options})
    for name, layer, cell, kwargs in CELLS
    for option, options in OPTIONS.items()
]
IDS = [case.id for case in CASES]


def make_layer(case, path, dtype=None):
    kwargs = dict(case.kwargs, dtype=dtype, seed=11)
    if path == "rnn":
        return keras.layers.RNN(
            case.cell(UNITS, **kwargs), return_sequences=True, return_state=True, dtype=dtype
        )
    return case.layer(
        UNITS, return_sequences=True, return_state=True,
        fast_path={"fast": True, "generic": False}[path], **kwargs,
    )


def problem(case, path, seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    layer = make_layer(case, path, None if dtype == "float32" else dtype)
    layer.build((BATCH, STEPS, FEATURES))
    weights = {}
    for variable in layer.weights:
        value = rng.normal(0.0, 0.6, size=variable.shape).astype(dtype)
        variable.assign(value)
        weights[variable.name] = value.astype("float64")
    assert len(weights) == len(layer.weights), "weight names must be unique"
    inputs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(dtype)
    widths = layer.cell.state_size
    states = [rng.normal(0.0, 0.5, size=(BATCH, w)).astype(dtype) for w in widths]
    return layer, inputs, states, weights, rng


def reference_run(case, inputs, states, weights, keep=None):
    """The float64 reference; `keep` the keep masks (T of them) in training,
    else zoneout's rates (the expectation, as at inference)."""
    rates = ref_zoneout_rates(case)
    outputs, states = [], [s.astype("float64") for s in states]
    for t in range(inputs.shape[1]):
        output, states = ref.lstm_options_step(
            inputs[:, t], states, weights, cell=case.reference_cell,
            cell_clip=case.kwargs.get("cell_clip"),
            keep=rates if keep is None else keep[t],
        )
        outputs.append(output)
    return np.stack(outputs, axis=1), states


def ref_zoneout_rates(case):
    rates = case.kwargs.get("zoneout", 0.0)
    return tuple(rates) if isinstance(rates, tuple) else (rates, rates)


def drawn_keep_masks(case, inputs):
    """The keep masks a fresh layer of `case` (seed 11) draws in its first
    training call, split per step into (d_c, d_h), or None without zoneout."""
    if "zoneout" not in case.kwargs:
        return None
    dtype = None if inputs.dtype == np.float32 else str(inputs.dtype)
    cell = make_layer(case, "fast", dtype).cell
    cell.build(inputs.shape)
    projected = np.asarray(cell.project_sequence(inputs, training=True), "float64")
    masks = projected[..., projected.shape[-1] - cell.zoneout_width :]
    return [np.split(masks[:, t], [UNITS], axis=-1) for t in range(inputs.shape[1])]


@pytest.mark.parametrize("path", ["fast", "generic", "rnn"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_reference(case, path):
    layer, inputs, states, weights, _ = problem(case, path, seed=0)
    outputs, h, c = layer(inputs, initial_state=states)
    if path != "rnn":
        assert layer.last_call_path == path
    expected, (expected_h, expected_c) = reference_run(
        case, inputs.astype("float64"), states, weights
    )
    for got, want in ((outputs, expected), (h, expected_h), (c, expected_c)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=3e-6)
    assert h.shape == (BATCH, case.kwargs.get("projection_units", UNITS))
    if "cell_clip" in case.kwargs and "zoneout" not in case.kwargs:
        # The clip acted: some memory sits on its bound.
        assert np.isclose(np.abs(expected_c), CLIP).any()


def _gradients(case, layer, inputs, states, weights, rng):
    """(names, TensorFlow gradients, finite differences of the float64 reference)."""
    width = layer.cell.output_size
    probes = [rng.normal(size=(BATCH, STEPS, width)), rng.normal(size=(BATCH, width)),
              rng.normal(size=(BATCH, UNITS))]
    dtype = inputs.dtype
    x, s = tf.constant(inputs), [tf.constant(v) for v in states]
    with tf.GradientTape() as tape:
        tape.watch([x, *s])
        results = layer(x, initial_state=s, training=True)
        loss = sum(tf.reduce_sum(r * p.astype(dtype)) for r, p in zip(results, probes))
    variables = list(layer.weights)
    grads = tape.gradient(loss, [x, *s, *[v.value for v in variables]])

    x64, s64 = inputs.astype("float64"), [v.astype("float64") for v in states]

    # The layer is fresh: its training call drew the masks a fresh layer draws first.
    keep = drawn_keep_masks(case, inputs)

    def reference_loss():
        outputs, final = reference_run(case, x64, s64, weights, keep)
        return sum((r * p).sum() for r, p in zip([outputs, *final], probes))

    arrays = [x64, *s64, *[weights[v.name] for v in variables]]
    numeric = [ref.numerical_gradient(reference_loss, a) for a in arrays]
    return ["inputs", "initial h", "initial c", *[v.name for v in variables]], grads, numeric


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fast_path_gradients_match_finite_differences(case):
    layer, *rest = problem(case, "fast", seed=1)
    names, grads, numeric = _gradients(case, layer, *rest)
    assert layer.last_call_path == "fast"
    for name, got, expected in zip(names, grads, numeric):
        np.testing.assert_allclose(
            np.asarray(got), expected, rtol=1e-4, atol=3e-5, err_msg=f"gradient w.r.t. {name}"
        )
        assert np.abs(expected).max() > 1e-3, f"gradient w.r.t. {name} vanishes"


@pytest.mark.parametrize("case", [c for c in CASES if c.id.endswith("-all")],
                         ids=lambda c: c.id)
def test_float64_fast_path_is_exact_to_round_off(case):
    """In float64 nothing approximate hides behind the float32 tolerances."""
    layer, inputs, states, weights, rng = problem(case, "fast", seed=6, dtype="float64")
    names, grads, numeric = _gradients(case, layer, inputs, states, weights, rng)
    for name, got, expected in zip(names, grads, numeric):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_lstm_equals_keras_lstm_with_the_same_weights():
    x = np.random.default_rng(0).normal(size=(3, 9, 5)).astype("float32")
    keras_layer = keras.layers.LSTM(6, return_sequences=True, return_state=True)
    keras_layer(x)
    rng = np.random.default_rng(1)
    keras_layer.set_weights([rng.normal(0, 0.5, w.shape) for w in keras_layer.get_weights()])
    ours = kg.LSTM(6, return_sequences=True, return_state=True)
    ours(x)
    assert [w.name for w in ours.weights] == [w.name for w in keras_layer.weights]
    ours.set_weights(keras_layer.get_weights())

    def values_and_gradients(layer):
        with tf.GradientTape() as tape:
            outputs, h, c = layer(x, training=True)
            loss = tf.reduce_sum(outputs ** 2) + tf.reduce_sum(c)
        return [outputs, h, c, *tape.gradient(loss, layer.trainable_weights)]

    for got, want in zip(values_and_gradients(ours), values_and_gradients(keras_layer)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert ours.last_call_path == "fast"


def test_projection_equals_torch_lstm_with_proj_size():
    torch = pytest.importorskip("torch")
    units, projection, features = 6, 3, 5
    x = np.random.default_rng(0).normal(size=(2, 7, features)).astype("float32")
    torch.manual_seed(0)
    reference = torch.nn.LSTM(features, units, proj_size=projection, batch_first=True)
    layer = kg.LSTM(units, projection_units=projection, return_sequences=True,
                    return_state=True)
    layer(x)
    # docs/migration.md: weight_ih, weight_hh, weight_hr are kernel, recurrent
    # kernel and projection kernel transposed; the two biases add up.
    layer.set_weights([
        reference.weight_ih_l0.detach().numpy().T,
        reference.weight_hh_l0.detach().numpy().T,
        (reference.bias_ih_l0 + reference.bias_hh_l0).detach().numpy(),
        reference.weight_hr_l0.detach().numpy().T,
    ])
    outputs, h, c = layer(x)
    expected, (expected_h, expected_c) = reference(torch.from_numpy(x))
    np.testing.assert_allclose(outputs, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, expected_h[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, expected_c[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_layer_norm_weights_are_in_tf_addons_order():
    layer = kg.LSTM(4, layer_norm=True)
    layer.build((None, 3, 2))
    assert [w.name for w in layer.weights] == [
        "kernel", "recurrent_kernel", "bias",
        "kernel_norm_gamma", "kernel_norm_beta",
        "recurrent_norm_gamma", "recurrent_norm_beta",
        "state_norm_gamma", "state_norm_beta",
    ]
    # tfa's defaults: gamma ones, beta zeros, epsilon 1e-3.
    np.testing.assert_array_equal(layer.cell.norms["state"][0], np.ones(4))
    assert layer.cell.norm_epsilon == 1e-3


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_recurrent_dropout_and_mask_on_the_fast_path_equal_the_generic(options):
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], bool)
    results = []
    for fast_path in (True, False):
        layer = kg.UntiedLSTM(5, recurrent_dropout=0.3, seed=4, fast_path=fast_path,
                              return_sequences=True, **options)
        layer.build(x.shape)
        layer.set_weights([np.random.default_rng(2).normal(0, 0.5, w.shape)
                           for w in layer.get_weights()])
        keras.utils.set_random_seed(7)
        with tf.GradientTape() as tape:
            y = layer(x, mask=mask, training=True)
            loss = tf.reduce_sum(y ** 2)
        results.append([y, *tape.gradient(loss, layer.trainable_weights)])
    for fast, generic in zip(*results):
        np.testing.assert_allclose(fast, generic, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", [c for c in CASES if c.id.endswith("-all")],
                         ids=lambda c: c.id)
def test_options_survive_config_and_keras_files(case, tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    model = keras.Sequential([keras.Input((5, 3)), case.layer(4, **case.kwargs)])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
    config = loaded.layers[0].get_config()
    for key, value in case.kwargs.items():
        if key == "zoneout":
            assert tuple(config[key]) == ref_zoneout_rates(case)
        else:
            assert config[key] == (tuple(value) if key == "peepholes" else value)


@pytest.mark.parametrize("kwargs, says", [
    ({"layer_norm": "yes"}, "`layer_norm` must be True or False"),
    ({"projection_units": 0}, "`projection_units` must be a positive integer"),
    ({"cell_clip": -1.0}, "`cell_clip` must be a positive number"),
    ({"norm_epsilon": 0}, "`norm_epsilon` must be a positive number"),
    ({"zoneout": 1.0}, "`zoneout` must be a rate in"),
    ({"zoneout": (0.1, 0.2, 0.3)}, "`zoneout` must be a rate in"),
])
def test_bad_option_values_name_the_argument(kwargs, says):
    with pytest.raises(ValueError, match=says):
        kg.LSTM(4, **kwargs)


def test_grid_lstm_says_it_does_not_take_the_options_yet():
    with pytest.raises(ValueError, match="does not take layer_norm yet"):
        kg.GridLSTM(4, layer_norm=True)


# -- the depth-gated stack: the options on every layer -------------------------

STACK_OPTIONS = {
    "layer-norm": {"layer_norm": True},
    "projection": {"projection_units": PROJECTION},
    "all": {"layer_norm": True, "projection_units": PROJECTION, "cell_clip": CLIP,
            "zoneout": (0.25, 0.4)},
    "cell-clip": {"cell_clip": CLIP},
    "projection-cell-clip": {"projection_units": PROJECTION, "cell_clip": CLIP},
    "zoneout": {"zoneout": (0.25, 0.4)},
    "zoneout-projection-cell-clip": {"projection_units": PROJECTION, "cell_clip": CLIP,
                                     "zoneout": (0.25, 0.4)},
}
STACK_LAYERS = 3


def stack_problem(options, seed, dtype="float32", **kwargs):
    rng = np.random.default_rng(seed)
    layer = kg.DepthGatedLSTM(
        UNITS, num_layers=STACK_LAYERS, return_sequences=True, return_state=True,
        seed=11, dtype=None if dtype == "float32" else dtype, **options, **kwargs,
    )
    layer.build((BATCH, STEPS, FEATURES))
    layers = [{} for _ in range(STACK_LAYERS)]
    for variable in layer.weights:
        value = rng.normal(0.0, 0.6, size=variable.shape).astype(dtype)
        variable.assign(value)
        level = int(variable.path.split("layer_")[1].split("/")[0])
        layers[level][variable.name] = value.astype("float64")
    inputs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(dtype)
    states = [rng.normal(0.0, 0.5, size=(BATCH, w)).astype(dtype)
              for w in layer.cell.state_size]
    return layer, inputs, states, layers, rng


def stack_keep_masks(options, inputs):
    """Per step and layer (d_c, d_h) a fresh stack (seed 11) draws first; None without zoneout."""
    if "zoneout" not in options:
        return None
    layer, *_ = stack_problem(options, seed=0, dtype=str(inputs.dtype))
    cell = layer.cell
    projected = np.asarray(cell.project_sequence(inputs, training=True), "float64")
    masks = projected[..., projected.shape[-1] - cell.zoneout_width * STACK_LAYERS:]
    return [
        [np.split(level, [UNITS], axis=-1) for level in np.split(masks[:, t], STACK_LAYERS, -1)]
        for t in range(inputs.shape[1])
    ]


def stack_reference(options, inputs, states, layers, keep=None):
    """SPEC: the layers bottom-up inside each step, each with the options; an
    upper layer's input is the h below (P wide), its l_t the carried c below."""
    rates = options.get("zoneout", (0.0, 0.0))
    states = [s.astype("float64") for s in states]
    outputs = []
    for t in range(inputs.shape[1]):
        below, lower, new = inputs[:, t], None, []
        for k, weights in enumerate(layers):
            h, (_, c) = ref.lstm_options_step(
                below, states[2 * k : 2 * k + 2], weights, cell="depth_gated",
                cell_clip=options.get("cell_clip"), lower=lower,
                keep=rates if keep is None else keep[t][k],
            )
            new += [h, c]
            below, lower = h, c
        states = new
        outputs.append(below)
    return np.stack(outputs, axis=1), states


@pytest.mark.parametrize("path", ["fast", "generic"])
@pytest.mark.parametrize("options", STACK_OPTIONS.values(), ids=STACK_OPTIONS.keys())
def test_depth_gated_stack_takes_the_options_on_every_layer(options, path):
    # Every option has a written level form: the stack runs the fast loop.
    layer, inputs, states, layers, _ = stack_problem(options, seed=3, fast_path=path == "fast")
    outputs, *final = layer(inputs, initial_state=states)
    assert layer.last_call_path == path
    expected, expected_states = stack_reference(options, inputs.astype("float64"), states, layers)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=3e-6)
    for got, want in zip(final, expected_states):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=3e-6)
    width = options.get("projection_units", UNITS)
    assert [s.shape[-1] for s in final] == [width, UNITS] * STACK_LAYERS


@pytest.mark.parametrize("option_set, path", [
    ("all", "fast"), ("all", "generic"), ("layer-norm", "fast"), ("cell-clip", "fast"),
    ("projection-cell-clip", "fast"), ("zoneout-projection-cell-clip", "fast"),
])
def test_depth_gated_stack_gradients_with_every_option_match_finite_differences(option_set, path):
    """The fast loop's levels' written backward steps, and the generic loop."""
    options = STACK_OPTIONS[option_set]
    layer, inputs, states, layers, rng = stack_problem(
        options, seed=4, dtype="float64", fast_path=path == "fast"
    )
    probes = [rng.normal(size=(BATCH, STEPS, options.get("projection_units", UNITS)))] + [
        rng.normal(size=s.shape) for s in states
    ]
    x, s = tf.constant(inputs), [tf.constant(v) for v in states]
    with tf.GradientTape() as tape:
        tape.watch([x, *s])
        results = layer(x, initial_state=s, training=True)
        loss = sum(tf.reduce_sum(r * p) for r, p in zip(results, probes))
    assert layer.last_call_path == path
    variables = list(layer.weights)
    grads = tape.gradient(loss, [x, *s, *[v.value for v in variables]])
    keep = stack_keep_masks(options, inputs)

    def reference_loss():
        outputs, final = stack_reference(options, inputs, states, layers, keep)
        return sum((r * p).sum() for r, p in zip([outputs, *final], probes))

    def level(variable):
        return layers[int(variable.path.split("layer_")[1].split("/")[0])]

    arrays = [inputs, *states, *[level(v)[v.name] for v in variables]]
    names = ["inputs", *[f"state {k}" for k in range(len(states))],
             *[v.path for v in variables]]
    for name, got, array in zip(names, grads, arrays):
        np.testing.assert_allclose(
            np.asarray(got), ref.numerical_gradient(reference_loss, array),
            rtol=1e-6, atol=1e-8, err_msg=name,
        )


def test_depth_gated_stack_without_a_written_derivative_and_fast_path_true_names_the_reason():
    layer = kg.DepthGatedLSTM(
        UNITS, num_layers=2, layer_norm=True, activation="relu", fast_path=True
    )
    with pytest.raises(ValueError, match="no fast form"):
        layer(np.zeros((BATCH, STEPS, FEATURES), "float32"))


def test_depth_gated_weights_keep_their_order_and_the_options_follow():
    layer = kg.DepthGatedLSTM(4, layer_norm=True, projection_units=3)
    layer.build((None, 3, 2))
    assert [w.name for w in layer.weights] == [
        "kernel", "recurrent_kernel", "depth_projection", "bias",
        "input_gate_peephole_weights", "forget_gate_peephole_weights",
        "output_gate_peephole_weights", "depth_gate_cell_weights",
        "depth_gate_lower_weights", "kernel_norm_gamma", "kernel_norm_beta",
        "recurrent_norm_gamma", "recurrent_norm_beta", "state_norm_gamma",
        "state_norm_beta", "projection_kernel",
    ]
    assert layer.cell.recurrent_kernel.shape == (3, 16)


def test_zoneout_masks_are_bernoulli_per_step_and_unit_and_follow_the_seed():
    cell = kg.LSTMCell(64, zoneout=(0.2, 0.6), projection_units=32, seed=5)
    inputs = np.zeros((16, 50, 3), "float32")
    cell.build(inputs.shape)
    masks = np.asarray(cell.project_sequence(inputs, training=True))[..., -96:]
    keep_c, keep_h = masks[..., :64], masks[..., 64:]
    assert set(np.unique(masks)) == {0.0, 1.0}
    assert abs(keep_c.mean() - 0.2) < 0.02 and abs(keep_h.mean() - 0.6) < 0.02
    # Drawn afresh for every step, not once per sequence.
    assert (keep_c[:, 0] != keep_c[:, 1]).any()
    again = kg.LSTMCell(64, zoneout=(0.2, 0.6), projection_units=32, seed=5)
    again.build(inputs.shape)
    np.testing.assert_array_equal(
        np.asarray(again.project_sequence(inputs, training=True))[..., -96:], masks
    )
    # At inference, the expectation: the rates themselves.
    expected = np.asarray(cell.project_sequence(inputs, training=False))[..., -96:]
    np.testing.assert_allclose(expected[0, 0], [0.2] * 64 + [0.6] * 32, rtol=1e-6)


def test_zoneout_training_differs_between_calls_and_not_at_inference():
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
    layer = kg.LSTM(5, zoneout=0.5, seed=1)
    assert not np.allclose(layer(x, training=True), layer(x, training=True))
    np.testing.assert_array_equal(layer(x), layer(x))


def test_the_probe_reads_the_normalised_gates_of_an_lstm_with_options():
    """The gates the probe and GateMonitor show are those of the normalised
    pre-activations, at inference (zoneout at its expectation)."""
    case = Case("lstm-probe", kg.LSTM, kg.LSTMCell, "lstm",
                {"layer_norm": True, "projection_units": PROJECTION, "zoneout": 0.3})
    layer, inputs, states, weights, _ = problem(case, "fast", seed=3)
    trace = kg.probe.gate_activations(layer, inputs, initial_state=states)[layer.name]
    expected, _ = reference_run(case, inputs.astype("float64"), states, weights)
    np.testing.assert_allclose(trace.outputs, expected, rtol=1e-5, atol=3e-6)
    # i_t = σ(LN_x(W x_t) + LN_h(U h_{t-1}) + b), block i, from the trace's own h.
    previous_h = np.concatenate(
        [states[0][:, None].astype("float64"), trace.hidden_states[0][:, :-1]], axis=1
    )
    z = (ref.layer_norm(inputs @ weights["kernel"], weights["kernel_norm_gamma"],
                        weights["kernel_norm_beta"])
         + ref.layer_norm(previous_h @ weights["recurrent_kernel"],
                          weights["recurrent_norm_gamma"], weights["recurrent_norm_beta"])
         + weights["bias"])
    np.testing.assert_allclose(trace.gates["input"], ref.sigmoid(z[..., :UNITS]),
                               rtol=1e-5, atol=3e-6)


# -- the tuner's search space ------------------------------------------------


def test_registry_gives_the_options_to_the_cells_that_take_them():
    from keras_gated import cells

    assert cells.lstm_options("gru", 64, layer_norm=True, projection=0.5, zoneout=0.1) == {}
    assert cells.lstm_options("untied", 64, layer_norm=True, projection=0.5, zoneout=0.1) == {
        "layer_norm": True, "projection_units": 32, "zoneout": 0.1,
    }
    assert cells.lstm_options("lstm", 64) == {}
    (plain,) = cells.stack_layers("lstm", 8)
    (optioned,) = cells.stack_layers("lstm", 8, layer_norm=True)
    # Keras's LSTM without options; the package's, which takes them, with.
    assert type(plain) is keras.layers.LSTM and type(optioned) is kg.LSTM
    assert type(cells.make_cell("lstm", 8, layer_norm=True)) is kg.LSTMCell


@pytest.mark.parametrize("overrides, layer_class, options", [
    (["cell=lstm", "layer_norm=true", "projection=0.5", "zoneout=0.1"], kg.LSTM,
     {"layer_norm": True, "projection_units": 16, "zoneout": (0.1, 0.1)}),
    (["cell=coupled", "zoneout=0.1"], kg.CoupledLSTM,
     {"layer_norm": False, "projection_units": None, "zoneout": (0.1, 0.1)}),
    (["cell=lstm"], keras.layers.LSTM, {}),
    (["cell=gru", "layer_norm=true"], keras.layers.GRU, {}),
])
def test_the_sentiment_search_space_tunes_the_options_where_they_apply(
    overrides, layer_class, options
):
    import keras_tuner

    from keras_gated.tasks.sentiment.model import SentimentHyperModel

    hypermodel = SentimentHyperModel(
        vocab_size=50, sequence_length=6, num_classes=2, overrides=overrides
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    (layer,) = [l for l in model.layers if isinstance(l, keras.layers.RNN)]
    assert type(layer) is layer_class
    for name, value in options.items():
        assert getattr(layer.cell, name) == value
    # Conditional on the cell: a GRU trial neither records nor varies them.
    assert ("layer_norm" in hp.values) == (layer_class is not keras.layers.GRU)


def test_a_grid_search_leaves_the_options_off_unless_asked():
    from keras_gated.tasks.sentiment.model import SentimentHyperModel

    space = SentimentHyperModel(10, 6, 2, overrides=["layer_norm=true,false"]).space
    space.fix_defaults()
    assert space.definitions["layer_norm"].kind == "boolean"
    assert space.definitions["zoneout"].kind == "fixed"
    assert space.definitions["projection"].kind == "fixed"
