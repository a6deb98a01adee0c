"""The whole Keras RNN protocol, for every recurrent layer and cell of keras-gated.

Every test runs over `RNN_CASES` (see `gated_cases.py`): a layer must give the
numbers of `keras.layers.RNN(cell)` with the same weights, and behave the way
`keras.layers.LSTM` does wherever Keras defines a behaviour (masking,
statefulness, dropout, mixed precision, serialization).
"""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

import keras_gated as kg
from gated_cases import RNN_CASES
from gated_cases import RNN_CLASSES
from gated_cases import flat_state_sizes
from gated_cases import randomize_weights
from gated_cases import sequences

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = 5
FEATURES = 4
ATOL = 1e-5


def build_pair(layer_class, cell_class, kwargs, x, units=UNITS, seed=0, **rnn_kwargs):
    """A layer and `keras.layers.RNN(cell)` with the same random weights."""
    layer = layer_class(units, **kwargs, **rnn_kwargs)
    layer(x)
    randomize_weights(layer, seed=seed)
    rnn = keras.layers.RNN(cell_class(units, **kwargs), **rnn_kwargs)
    rnn(x)
    rnn.set_weights(layer.get_weights())
    return layer, rnn


def as_numpy(outputs):
    if isinstance(outputs, (list, tuple)):
        return [ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)]
    return ops.convert_to_numpy(outputs)


def assert_all_close(a, b, atol=ATOL):
    a, b = as_numpy(a), as_numpy(b)
    if isinstance(a, list):
        assert len(a) == len(b)
        for a_i, b_i in zip(a, b):
            np.testing.assert_allclose(a_i, b_i, atol=atol, rtol=atol)
    else:
        np.testing.assert_allclose(a, b, atol=atol, rtol=atol)


# -- the layer is keras.layers.RNN(cell) --------------------------------------


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_layer_equals_rnn_of_cell(layer_class, cell_class, kwargs, fused):
    x = sequences()
    layer = layer_class(UNITS, fused=fused, return_sequences=True, return_state=True, **kwargs)
    layer(x)
    randomize_weights(layer)
    rnn = keras.layers.RNN(
        cell_class(UNITS, **kwargs), return_sequences=True, return_state=True
    )
    rnn(x)
    rnn.set_weights(layer.get_weights())
    got, expected = layer(x), rnn(x)
    assert len(got) == 1 + len(flat_state_sizes(layer.cell))
    assert_all_close(got, expected)
    assert got[0].shape == (3, 6, layer.cell.output_size)


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_fused_equals_unfused(layer_class, cell_class, kwargs):
    x = sequences()
    fused = layer_class(UNITS, return_sequences=True, return_state=True, **kwargs)
    fused(x)
    randomize_weights(fused)
    unfused = layer_class(
        UNITS, fused=False, return_sequences=True, return_state=True, **kwargs
    )
    unfused(x)
    unfused.set_weights(fused.get_weights())
    assert_all_close(fused(x), unfused(x))


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_last_output_is_last_of_sequence_and_states_have_cell_sizes(
    layer_class, cell_class, kwargs
):
    x = sequences()
    layer = layer_class(UNITS, return_sequences=True, return_state=True, **kwargs)
    outputs, *states = layer(x)
    randomize_weights(layer)
    outputs, *states = layer(x)
    last = layer_class(UNITS, return_state=True, **kwargs)
    last(x)
    last.set_weights(layer.get_weights())
    last_output, *last_states = last(x)
    assert_all_close(last_output, outputs[:, -1])
    assert_all_close(last_states, states)
    assert [s.shape for s in states] == [(3, n) for n in flat_state_sizes(layer.cell)]
    plain = layer_class(UNITS, **kwargs)
    plain(x)
    plain.set_weights(layer.get_weights())
    assert_all_close(plain(x), outputs[:, -1])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_unroll_equals_loop(layer_class, cell_class, kwargs, fused):
    x = sequences()
    looped = layer_class(UNITS, fused=fused, return_sequences=True, **kwargs)
    looped(x)
    randomize_weights(looped)
    unrolled = layer_class(
        UNITS, fused=fused, unroll=True, return_sequences=True, **kwargs
    )
    unrolled(x)
    unrolled.set_weights(looped.get_weights())
    assert_all_close(unrolled(x), looped(x))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_go_backwards_reads_the_reversed_sequence(layer_class, cell_class, kwargs, fused):
    x = sequences()
    backwards = layer_class(
        UNITS, fused=fused, go_backwards=True, return_sequences=True, **kwargs
    )
    backwards(x)
    randomize_weights(backwards)
    rnn = keras.layers.RNN(
        cell_class(UNITS, **kwargs), go_backwards=True, return_sequences=True
    )
    rnn(x)
    rnn.set_weights(backwards.get_weights())
    forwards = layer_class(UNITS, return_sequences=True, **kwargs)
    forwards(x)
    forwards.set_weights(backwards.get_weights())
    assert_all_close(backwards(x), forwards(x[:, ::-1]))
    assert_all_close(backwards(x), rnn(x))


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_initial_state(layer_class, cell_class, kwargs):
    x = sequences()
    layer, rnn = build_pair(layer_class, cell_class, kwargs, x, return_state=True)
    rng = np.random.default_rng(5)
    initial = [
        rng.standard_normal((3, n)).astype("float32")
        for n in flat_state_sizes(layer.cell)
    ]
    got = layer(x, initial_state=initial)
    assert_all_close(got, rnn(x, initial_state=initial))
    from_zero = layer(x)
    assert not np.allclose(as_numpy(got[0]), as_numpy(from_zero[0]), atol=1e-3)
    zeros = [np.zeros_like(s) for s in initial]
    assert_all_close(layer(x, initial_state=zeros), from_zero)


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_initial_state_in_a_functional_model(layer_class, cell_class, kwargs):
    sizes = flat_state_sizes(cell_class(UNITS, **kwargs))
    sequence_input = keras.Input((6, FEATURES))
    state_inputs = [keras.Input((n,)) for n in sizes]
    layer = layer_class(UNITS, **kwargs)
    model = keras.Model(
        [sequence_input, *state_inputs], layer(sequence_input, initial_state=state_inputs)
    )
    x = sequences()
    rng = np.random.default_rng(1)
    initial = [rng.standard_normal((3, n)).astype("float32") for n in sizes]
    assert_all_close(model([x, *initial]), layer(x, initial_state=initial))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_stateful_carries_state_across_calls(layer_class, cell_class, kwargs, fused):
    x = sequences(timesteps=8)
    whole = layer_class(UNITS, return_sequences=True, return_state=True, **kwargs)
    whole(x)
    randomize_weights(whole)
    outputs, *final_states = whole(x)

    stateful = layer_class(
        UNITS, fused=fused, stateful=True, return_sequences=True, **kwargs
    )
    first = stateful(x[:, :3])
    stateful.set_weights(whole.get_weights())
    stateful.reset_state()
    first = stateful(x[:, :3])
    second = stateful(x[:, 3:])
    assert_all_close(first, outputs[:, :3])
    assert_all_close(second, outputs[:, 3:])
    assert_all_close([v.value for v in stateful.states], final_states)

    stateful.reset_state()
    for state in stateful.states:
        np.testing.assert_array_equal(as_numpy(state.value), 0.0)
    assert_all_close(stateful(x[:, :3]), outputs[:, :3])


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CLASSES)
def test_stateful_in_a_model_with_predict(layer_class, cell_class, kwargs):
    x = sequences(batch=2, timesteps=8)
    model = keras.Sequential(
        [keras.Input((None, FEATURES), batch_size=2), layer_class(UNITS, stateful=True, **kwargs)]
    )
    whole = layer_class(UNITS, **kwargs)
    whole(x)
    whole.set_weights(model.get_weights())
    model.predict(x[:, :5], verbose=0)
    carried = model.predict(x[:, 5:], verbose=0)
    assert_all_close(carried, whole(x))
    model.layers[0].reset_state()
    assert_all_close(model.predict(x[:, 5:], verbose=0), whole(x[:, 5:]))


# -- wrappers: Bidirectional, stacks ------------------------------------------


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_bidirectional(layer_class, cell_class, kwargs):
    x = sequences()
    mask = np.ones((3, 6), bool)
    mask[1, 4:] = False
    ours = keras.layers.Bidirectional(
        layer_class(UNITS, return_sequences=True, **kwargs)
    )
    ours(x)
    randomize_weights(ours)
    reference = keras.layers.Bidirectional(
        keras.layers.RNN(cell_class(UNITS, **kwargs), return_sequences=True)
    )
    reference(x)
    reference.set_weights(ours.get_weights())
    assert_all_close(ours(x), reference(x))
    assert_all_close(ours(x, mask=mask), reference(x, mask=mask))

    # The backward half is the same layer reading the reversed sequence.
    forward_weights = ours.forward_layer.get_weights()
    backward_weights = ours.backward_layer.get_weights()
    assert ours.backward_layer.go_backwards and isinstance(ours.backward_layer, layer_class)
    single = layer_class(UNITS, return_sequences=True, **kwargs)
    single(x)
    single.set_weights(forward_weights)
    expected_forward = as_numpy(single(x))
    single.set_weights(backward_weights)
    expected_backward = as_numpy(single(x[:, ::-1]))[:, ::-1]
    assert_all_close(ours(x), np.concatenate([expected_forward, expected_backward], -1))


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_bidirectional_of_cell_in_rnn_with_states(layer_class, cell_class, kwargs):
    x = sequences()
    encoder = keras.layers.Bidirectional(
        keras.layers.RNN(cell_class(UNITS, **kwargs), return_sequences=True, return_state=True)
    )
    outputs, *states = encoder(x)
    assert outputs.shape == (3, 6, 2 * encoder.forward_layer.cell.output_size)
    assert len(states) == 2 * len(flat_state_sizes(encoder.forward_layer.cell))


@pytest.mark.parametrize("stack", ["list", "StackedRNNCells"])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_stacked_cells_equal_stacked_layers(layer_class, cell_class, kwargs, stack):
    x = sequences()
    cells = [cell_class(UNITS, **kwargs), cell_class(3, **kwargs)]
    if stack == "StackedRNNCells":
        cells = keras.layers.StackedRNNCells(cells)
    stacked = keras.layers.RNN(cells, return_sequences=True, return_state=True)
    stacked(x)
    randomize_weights(stacked)
    lower = layer_class(UNITS, return_sequences=True, return_state=True, **kwargs)
    upper = layer_class(3, return_sequences=True, return_state=True, **kwargs)
    lower(x)
    upper(np.zeros((3, 6, lower.cell.output_size), "float32"))
    n_lower = len(lower.get_weights())
    lower.set_weights(stacked.get_weights()[:n_lower])
    upper.set_weights(stacked.get_weights()[n_lower:])
    lower_out, *lower_states = lower(x)
    upper_out, *upper_states = upper(lower_out)
    got_out, *got_states = stacked(x)
    assert_all_close(got_out, upper_out)
    assert_all_close(got_states, lower_states + upper_states)


# -- masking: padded steps behave as in keras.layers.LSTM ---------------------


MASK = np.array(
    [
        [1, 1, 1, 1, 1, 1],  # no padding
        [1, 1, 1, 0, 0, 0],  # post-padding
        [0, 0, 1, 1, 1, 1],  # pre-padding
        [1, 0, 1, 1, 0, 1],  # holes
    ],
    bool,
)


def check_keras_masking_semantics(layer, x, mask):
    """What Keras's RNN layers do with a mask, stated step by step:

    * at a masked step the output repeats the previous output (zeros before
      the first unmasked step) and the states do not change;
    * the unmasked steps produce exactly what the layer produces on the
      sequence with the masked steps removed; so the final states are the
      states after the last unmasked step.

    `layer` must have return_sequences=True and return_state=True.
    """
    outputs, *states = as_numpy(layer(x, mask=mask))
    for b in range(x.shape[0]):
        kept = np.flatnonzero(mask[b])
        alone_outputs, *alone_states = as_numpy(layer(x[b : b + 1, kept]))
        previous = np.zeros_like(outputs[b, 0])
        k = 0
        for t in range(x.shape[1]):
            if mask[b, t]:
                np.testing.assert_allclose(outputs[b, t], alone_outputs[0, k], atol=ATOL)
                k += 1
            else:
                np.testing.assert_allclose(outputs[b, t], previous, atol=ATOL)
            previous = outputs[b, t]
        for state, alone in zip(states, alone_states):
            np.testing.assert_allclose(state[b], alone[0], atol=ATOL)
    return outputs, states


def test_keras_lstm_has_the_masking_semantics_the_tests_state():
    x = sequences(batch=4)
    lstm = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    lstm(x)
    randomize_weights(lstm)
    check_keras_masking_semantics(lstm, x, MASK)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_masked_steps_behave_as_in_keras_lstm(layer_class, cell_class, kwargs, fused):
    x = sequences(batch=4)
    layer = layer_class(
        UNITS, fused=fused, return_sequences=True, return_state=True, **kwargs
    )
    layer(x)
    randomize_weights(layer)
    check_keras_masking_semantics(layer, x, MASK)
    rnn = keras.layers.RNN(
        cell_class(UNITS, **kwargs), return_sequences=True, return_state=True
    )
    rnn(x)
    rnn.set_weights(layer.get_weights())
    assert_all_close(layer(x, mask=MASK), rnn(x, mask=MASK))


@pytest.mark.parametrize("fused", [True, False])
def test_masked_peephole_lstm_with_zero_peepholes_equals_keras_lstm(fused):
    x = sequences(batch=4)
    ours = kg.PeepholeLSTM(UNITS, fused=fused, return_sequences=True, return_state=True)
    ours(x)
    randomize_weights(ours)
    weights = ours.get_weights()
    ours.set_weights(weights[:3] + [np.zeros_like(w) for w in weights[3:]])
    lstm = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    lstm(x)
    lstm.set_weights(weights[:3])
    assert_all_close(ours(x, mask=MASK), lstm(x, mask=MASK))


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_zero_output_for_mask(layer_class, cell_class, kwargs):
    x = sequences(batch=4)
    layer = layer_class(
        UNITS, zero_output_for_mask=True, return_sequences=True, **kwargs
    )
    layer(x)
    randomize_weights(layer)
    outputs = as_numpy(layer(x, mask=MASK))
    np.testing.assert_array_equal(outputs[~MASK], 0.0)
    assert np.all(np.abs(outputs[MASK]).sum(-1) > 0)


def token_batch():
    """Token ids with 0 as padding, and the same sequences unpadded."""
    unpadded = [[3, 7, 1, 4, 9, 2], [5, 8, 2], [6, 1, 1, 3]]
    post = np.zeros((3, 6), "int32")
    pre = np.zeros((3, 6), "int32")
    for b, tokens in enumerate(unpadded):
        post[b, : len(tokens)] = tokens
        pre[b, 6 - len(tokens) :] = tokens
    return unpadded, post, pre


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_embedding_mask_zero(layer_class, cell_class, kwargs):
    unpadded, post, pre = token_batch()
    model = keras.Sequential(
        [
            keras.layers.Embedding(10, FEATURES, mask_zero=True),
            layer_class(UNITS, **kwargs),
            kg.Highway(),
        ]
    )
    model(post)
    randomize_weights(model)
    from_post, from_pre = as_numpy(model(post)), as_numpy(model(pre))
    for b, tokens in enumerate(unpadded):
        alone = as_numpy(model(np.array([tokens], "int32")))[0]
        np.testing.assert_allclose(from_post[b], alone, atol=ATOL)
        np.testing.assert_allclose(from_pre[b], alone, atol=ATOL)
    # The mask reaches the layer: without it the padded rows differ.
    unmasked = keras.Sequential(
        [keras.layers.Embedding(10, FEATURES), layer_class(UNITS, **kwargs), kg.Highway()]
    )
    unmasked(post)
    unmasked.set_weights(model.get_weights())
    assert not np.allclose(as_numpy(unmasked(post))[1], from_post[1], atol=1e-4)


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_masking_layer(layer_class, cell_class, kwargs):
    x = sequences(batch=4)
    x[~MASK] = 0.0
    model = keras.Sequential(
        [
            keras.Input((6, FEATURES)),
            keras.layers.Masking(mask_value=0.0),
            layer_class(UNITS, return_sequences=True, **kwargs),
        ]
    )
    randomize_weights(model)
    layer = model.layers[-1]
    explicit = layer_class(UNITS, return_sequences=True, return_state=True, **kwargs)
    explicit(x)
    explicit.set_weights(layer.get_weights())
    outputs, _ = check_keras_masking_semantics(explicit, x, MASK)
    np.testing.assert_allclose(as_numpy(model(x)), outputs, atol=ATOL)


# -- dropout ------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_dropout_training_versus_inference(layer_class, cell_class, kwargs, fused):
    x = sequences()
    plain = layer_class(UNITS, return_sequences=True, **kwargs)
    plain(x)
    randomize_weights(plain)
    for rates in ({"dropout": 0.5}, {"recurrent_dropout": 0.5}):
        layer = layer_class(
            UNITS, fused=fused, return_sequences=True, seed=3, **rates, **kwargs
        )
        layer(x)
        layer.set_weights(plain.get_weights())
        inference = as_numpy(layer(x, training=False))
        np.testing.assert_array_equal(inference, as_numpy(layer(x)))
        np.testing.assert_allclose(inference, as_numpy(plain(x)), atol=ATOL)
        first = as_numpy(layer(x, training=True))
        second = as_numpy(layer(x, training=True))
        assert not np.allclose(first, inference, atol=1e-3), rates
        # A fresh mask per call (per batch of sequences).
        assert not np.allclose(first, second, atol=1e-3), rates


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_dropout_same_seed_same_masks_fused_unfused_and_rnn(layer_class, cell_class, kwargs):
    x = sequences()
    rates = {"dropout": 0.3, "recurrent_dropout": 0.4, "seed": 11}
    outputs = []
    reference_weights = None
    for make in (
        lambda: layer_class(UNITS, return_sequences=True, **rates, **kwargs),
        lambda: layer_class(UNITS, fused=False, return_sequences=True, **rates, **kwargs),
        lambda: keras.layers.RNN(
            cell_class(UNITS, **rates, **kwargs), return_sequences=True
        ),
    ):
        layer = make()
        layer(x)
        if reference_weights is None:
            randomize_weights(layer)
            reference_weights = layer.get_weights()
        layer.set_weights(reference_weights)
        outputs.append(as_numpy(layer(x, training=True)))
    assert_all_close(outputs[0], outputs[1])
    assert_all_close(outputs[0], outputs[2])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_dropout_masks_are_drawn_once_per_sequence(layer_class, cell_class, kwargs, fused):
    """One input mask and one recurrent mask for all T steps, as LSTMCell."""
    x = sequences(timesteps=7)
    layer = layer_class(
        UNITS, fused=fused, dropout=0.5, recurrent_dropout=0.5, seed=1, **kwargs
    )
    layer(x)
    drawn = []
    original = layer.cell._create_dropout_mask

    def counting(step_input, rate):
        drawn.append(tuple(step_input.shape))
        return original(step_input, rate)

    layer.cell._create_dropout_mask = counting
    for _ in range(2):
        drawn.clear()
        layer(x, training=True)
        assert sorted(drawn) == sorted([(3, FEATURES), (3, layer.cell.state_size[0])]), drawn


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_input_dropout_mask_is_constant_over_time(layer_class, cell_class, kwargs):
    """With one feature that is 1 at every step, the input kernel row of that
    feature either reaches every step or none: dropping it at some steps only
    would show as a per-step difference."""
    timesteps = 5
    x = np.zeros((64, timesteps, FEATURES), "float32")
    x[:, :, 0] = 1.0
    layer = layer_class(
        UNITS, dropout=0.5, seed=2, return_sequences=True, **kwargs
    )
    layer(x)
    randomize_weights(layer)
    dropped = as_numpy(layer(x, training=True))
    kept = as_numpy(layer(x * 2.0, training=False))  # dropout scales kept by 2
    zero = as_numpy(layer(np.zeros_like(x), training=False))
    for b in range(x.shape[0]):
        as_kept = np.allclose(dropped[b], kept[b], atol=1e-5)
        as_zero = np.allclose(dropped[b], zero[b], atol=1e-5)
        assert as_kept != as_zero, b


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CLASSES)
def test_dropout_trains_through_fit(layer_class, cell_class, kwargs):
    x = sequences(batch=16)
    y = x.sum(axis=(1, 2))[:, None]
    model = keras.Sequential(
        [
            keras.Input((6, FEATURES)),
            layer_class(UNITS, dropout=0.2, recurrent_dropout=0.2, seed=0, **kwargs),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert all(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


# -- initializers, regularizers, constraints ----------------------------------


WEIGHT_ARGUMENTS = {
    # argument prefix -> the weights it governs (by name)
    "kernel": lambda name: name == "kernel",
    "recurrent": lambda name: name == "recurrent_kernel",
    "bias": lambda name: name == "bias",
    "peephole": lambda name: name.endswith("_peephole_weights"),
    "untied": lambda name: name == "untied_kernel",
}


def weight_name(variable):
    return variable.path.split("/")[-1]


def accepted_arguments(cell_class):
    names = set()
    for klass in cell_class.__mro__:
        if "__init__" in klass.__dict__:
            names.update(inspect.signature(klass.__init__).parameters)
    return names


def governed_prefixes(cell_class, kind):
    accepted = accepted_arguments(cell_class)
    return [p for p in WEIGHT_ARGUMENTS if f"{p}_{kind}" in accepted]


def keras_lstm_arguments():
    parameters = inspect.signature(keras.layers.LSTM.__init__).parameters
    return {
        name: p.default
        for name, p in parameters.items()
        if name not in ("self", "kwargs", "units", "use_cudnn")
    }


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_accepts_every_argument_of_keras_lstm(layer_class, cell_class, kwargs):
    arguments = keras_lstm_arguments()
    assert {"kernel_initializer", "recurrent_regularizer", "bias_constraint",
            "activity_regularizer", "unit_forget_bias", "stateful"} <= set(arguments)
    layer = layer_class(UNITS, **arguments, **kwargs)
    config = layer.get_config()
    for name in arguments:
        assert name in config, name
    layer(sequences())


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_initializers_take_effect(layer_class, cell_class, kwargs):
    prefixes = governed_prefixes(cell_class, "initializer")
    assert {"kernel", "recurrent", "bias"} <= set(prefixes)
    values = {p: 0.1 * (i + 1) for i, p in enumerate(prefixes)}
    layer = layer_class(
        UNITS,
        unit_forget_bias=False,
        **{f"{p}_initializer": keras.initializers.Constant(v) for p, v in values.items()},
        **kwargs,
    )
    layer(sequences())
    seen = set()
    for variable in layer.weights:
        for prefix, governs in WEIGHT_ARGUMENTS.items():
            if prefix in values and governs(weight_name(variable)):
                np.testing.assert_allclose(as_numpy(variable.value), values[prefix], rtol=1e-6)
                seen.add(prefix)
    assert {"kernel", "recurrent", "bias"} <= seen
    assert seen == {
        p for p in prefixes
        if any(WEIGHT_ARGUMENTS[p](weight_name(v)) for v in layer.weights)
    }
    # A plain number is a constant initializer too.
    numeric = layer_class(UNITS, bias_initializer=0.25, unit_forget_bias=False, **kwargs)
    numeric(sequences())
    np.testing.assert_allclose(as_numpy(numeric.cell.bias.value), 0.25)


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_unit_forget_bias(layer_class, cell_class, kwargs):
    x = sequences()
    layer = layer_class(UNITS, bias_initializer=keras.initializers.Constant(0.3), **kwargs)
    layer(x)
    gates = layer.cell.kernel_gates
    assert "f" in gates
    blocks = np.split(as_numpy(layer.cell.bias.value), len(gates))
    for gate, block in zip(gates, blocks):
        np.testing.assert_allclose(block, 1.0 if gate == "f" else 0.3, err_msg=gate)
    off = layer_class(
        UNITS, bias_initializer=keras.initializers.Constant(0.3), unit_forget_bias=False, **kwargs
    )
    off(x)
    np.testing.assert_allclose(as_numpy(off.cell.bias.value), 0.3)


def test_unit_forget_bias_matches_keras_lstm_layout():
    x = sequences()
    ours = kg.PeepholeLSTM(UNITS)
    ours(x)
    lstm = keras.layers.LSTM(UNITS)
    lstm(x)
    np.testing.assert_array_equal(as_numpy(ours.cell.bias.value), as_numpy(lstm.cell.bias.value))


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_regularizers_add_losses(layer_class, cell_class, kwargs):
    prefixes = governed_prefixes(cell_class, "regularizer")
    assert {"kernel", "recurrent", "bias"} <= set(prefixes)
    factors = {p: 0.01 * (i + 1) for i, p in enumerate(prefixes)}
    layer = layer_class(
        UNITS,
        **{f"{p}_regularizer": keras.regularizers.L2(f) for p, f in factors.items()},
        activity_regularizer=keras.regularizers.L1(0.5),
        **kwargs,
    )
    x = sequences()
    output = layer(x)
    expected = 0.5 * float(np.abs(as_numpy(output)).sum()) / x.shape[0]
    for variable in layer.weights:
        for prefix, governs in WEIGHT_ARGUMENTS.items():
            if prefix in factors and governs(weight_name(variable)):
                expected += factors[prefix] * float(np.sum(as_numpy(variable.value) ** 2))
    losses = [float(as_numpy(loss)) for loss in layer.losses]
    n_regularized = sum(
        1 for v in layer.weights for p in factors if WEIGHT_ARGUMENTS[p](weight_name(v))
    )
    assert len(losses) == n_regularized + 1
    np.testing.assert_allclose(sum(losses), expected, rtol=1e-4)


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CLASSES)
def test_regularizers_enter_the_training_loss(layer_class, cell_class, kwargs):
    x = sequences(batch=8)
    y = np.zeros((8, UNITS), "float32")
    plain = keras.Sequential([keras.Input((6, FEATURES)), layer_class(UNITS, **kwargs)])
    heavy = keras.Sequential(
        [
            keras.Input((6, FEATURES)),
            layer_class(UNITS, kernel_regularizer=keras.regularizers.L2(10.0), **kwargs),
        ]
    )
    heavy.set_weights(plain.get_weights())
    for model in (plain, heavy):
        model.compile(loss="mse")
    assert heavy.evaluate(x, y, verbose=0) > plain.evaluate(x, y, verbose=0) + 1.0


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CLASSES)
def test_constraints_are_applied_after_an_optimizer_step(layer_class, cell_class, kwargs):
    prefixes = governed_prefixes(cell_class, "constraint")
    assert {"kernel", "recurrent", "bias"} <= set(prefixes)
    layer = layer_class(
        UNITS,
        unit_forget_bias=False,
        **{f"{p}_initializer": keras.initializers.Constant(-0.2) for p in prefixes},
        **{f"{p}_constraint": keras.constraints.NonNeg() for p in prefixes},
        **kwargs,
    )
    model = keras.Sequential([keras.Input((6, FEATURES)), layer, keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    constrained = [
        v for v in layer.weights
        if any(WEIGHT_ARGUMENTS[p](weight_name(v)) for p in prefixes)
    ]
    assert len(constrained) == len(layer.weights)
    for variable in constrained:
        assert np.all(as_numpy(variable.value) < 0)
    x = sequences(batch=4)
    model.fit(x, np.ones((4, 1), "float32"), epochs=1, batch_size=4, verbose=0)
    for variable in constrained:
        assert np.all(as_numpy(variable.value) >= 0), variable.path


# -- mixed precision ----------------------------------------------------------


@pytest.mark.parametrize(
    "policy, compute_dtype, atol",
    [("mixed_float16", "float16", 1e-2), ("mixed_bfloat16", "bfloat16", 6e-2)],
)
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_mixed_precision(layer_class, cell_class, kwargs, fused, policy, compute_dtype, atol):
    x = sequences()
    reference = layer_class(UNITS, return_sequences=True, return_state=True, **kwargs)
    reference(x)
    randomize_weights(reference)
    expected = as_numpy(reference(x))

    keras.mixed_precision.set_global_policy(policy)
    layer = layer_class(
        UNITS, fused=fused, return_sequences=True, return_state=True, **kwargs
    )
    rnn = keras.layers.RNN(cell_class(UNITS, **kwargs), return_sequences=True, return_state=True)
    for candidate in (layer, rnn):
        candidate(x)
        candidate.set_weights(reference.get_weights())
        for variable in candidate.weights:
            assert variable.dtype == "float32", variable.path
        got = candidate(x)
        for tensor in got:
            assert keras.backend.standardize_dtype(tensor.dtype) == compute_dtype
        for g, e in zip(as_numpy([ops.cast(t, "float32") for t in got]), expected):
            np.testing.assert_allclose(g, e, atol=atol)


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CLASSES)
def test_mixed_float16_trains(layer_class, cell_class, kwargs):
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential(
        [
            keras.Input((6, FEATURES)),
            layer_class(UNITS, **kwargs),
            keras.layers.Dense(1, dtype="float32"),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    x = sequences(batch=8)
    history = model.fit(x, x.sum(axis=(1, 2))[:, None], epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


# -- config and serialization -------------------------------------------------


NON_DEFAULT = {
    "activation": "relu",
    "recurrent_activation": "hard_sigmoid",
    "kernel_regularizer": keras.regularizers.L2(0.01),
    "bias_constraint": keras.constraints.MaxNorm(2.0),
    "recurrent_initializer": "glorot_normal",
    "dropout": 0.1,
    "recurrent_dropout": 0.2,
    "seed": 4,
    "unit_forget_bias": False,
    "use_bias": True,
}


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_layer_config_round_trip(layer_class, cell_class, kwargs):
    x = sequences()
    layer = layer_class(
        UNITS, return_sequences=True, go_backwards=True, fused=False,
        name="custom_name", **NON_DEFAULT, **kwargs,
    )
    layer(x)
    randomize_weights(layer)
    config = layer.get_config()
    json.dumps(keras.saving.serialize_keras_object(layer))
    rebuilt = layer_class.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.name == "custom_name" and rebuilt.go_backwards and not rebuilt.fused
    rebuilt(x)
    rebuilt.set_weights(layer.get_weights())
    assert_all_close(rebuilt(x), layer(x))
    deserialized = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(deserialized) is layer_class
    assert deserialized.get_config() == config


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_cell_config_round_trip(layer_class, cell_class, kwargs):
    cell = cell_class(UNITS, **NON_DEFAULT, **kwargs)
    config = cell.get_config()
    rebuilt = cell_class.from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.state_size == cell.state_size
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = sequences()
    rnn(x)
    randomize_weights(rnn)
    copied = keras.layers.RNN.from_config(rnn.get_config())
    assert type(copied.cell) is cell_class
    copied(x)
    copied.set_weights(rnn.get_weights())
    assert_all_close(copied(x), rnn(x))
    assert [weight_name(w) for w in copied.weights] == [weight_name(w) for w in rnn.weights]


def test_highway_config_round_trip():
    x = np.random.default_rng(0).standard_normal((3, 7)).astype("float32")
    for carry_gate in ("coupled", "free"):
        layer = kg.Highway(
            activation="tanh", carry_gate=carry_gate, transform_bias_initializer=-1.0,
            kernel_regularizer=keras.regularizers.L2(0.1), name="hw",
        )
        layer(x)
        rebuilt = kg.Highway.from_config(layer.get_config())
        assert rebuilt.get_config() == layer.get_config()
        rebuilt(x)
        rebuilt.set_weights(layer.get_weights())
        assert_all_close(rebuilt(x), layer(x))
        assert len(rebuilt.losses) == 1


@pytest.mark.parametrize("policy, dtype", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
def test_highway_mixed_precision(policy, dtype):
    x = np.random.default_rng(0).standard_normal((3, 7)).astype("float32")
    reference = kg.Highway()
    expected = as_numpy(reference(x))
    keras.mixed_precision.set_global_policy(policy)
    layer = kg.Highway()
    layer(x)
    layer.set_weights(reference.get_weights())
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    assert all(v.dtype == "float32" for v in layer.weights)
    np.testing.assert_allclose(as_numpy(ops.cast(out, "float32")), expected, atol=5e-2)


def test_highway_regularizers_constraints_and_initializers():
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    names = ["kernel", "bias", "transform_kernel", "transform_bias", "carry_kernel", "carry_bias"]
    layer = kg.Highway(
        carry_gate="free",
        **{f"{n}_initializer": keras.initializers.Constant(-0.1) for n in names},
        **{f"{n}_regularizer": keras.regularizers.L1(0.1) for n in names},
        **{f"{n}_constraint": keras.constraints.NonNeg() for n in names},
    )
    model = keras.Sequential([keras.Input((6,)), layer])
    assert [weight_name(w) for w in layer.weights] == names
    for w in layer.weights:
        np.testing.assert_allclose(as_numpy(w.value), -0.1)
    assert len(layer.losses) == len(names)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(x, x, epochs=1, verbose=0)
    for w in layer.weights:
        assert np.all(as_numpy(w.value) >= 0), w.path
    # Default initial transform bias is -2: a fresh stack starts near the identity.
    fresh = kg.Highway()
    fresh(x)
    np.testing.assert_allclose(as_numpy(fresh.transform_bias.value), -2.0)


# -- .keras files and SavedModel export ---------------------------------------


def saved_models():
    """Name -> (model builder, input), one per case plus wrappers and Highway."""
    x = sequences()
    builders = {}
    for case in RNN_CLASSES:
        layer_class, cell_class, kwargs = case.values

        def layer_model(layer_class=layer_class, kwargs=kwargs):
            return keras.Sequential(
                [
                    keras.Input((6, FEATURES)),
                    layer_class(UNITS, return_sequences=True, dropout=0.1, **kwargs),
                    layer_class(UNITS, **kwargs),
                    kg.Highway(),
                ]
            )

        def cell_model(cell_class=cell_class, kwargs=kwargs):
            inputs = keras.Input((6, FEATURES))
            encoded = keras.layers.Bidirectional(
                keras.layers.RNN(cell_class(UNITS, **kwargs), return_sequences=True)
            )(inputs)
            stacked = keras.layers.RNN(
                [cell_class(UNITS, **kwargs), cell_class(3, **kwargs)]
            )(encoded)
            return keras.Model(inputs, stacked)

        builders[f"{case.id}-layer"] = layer_model
        builders[f"{case.id}-cell"] = cell_model
    tokens = token_batch()[1]
    builders["embedding-mask"] = lambda: keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(10, FEATURES, mask_zero=True),
            kg.PeepholeLSTM(UNITS),
            kg.Highway(carry_gate="free"),
        ]
    )
    return builders, {"embedding-mask": tokens}, x


LOAD_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import keras

    directory = sys.argv[1]
    names = sys.argv[2:]
    # Without importing keras_gated its classes are not registered, and Keras
    # refuses to load the file: users must `import keras_gated` first (no
    # custom_objects needed once it is imported).
    try:
        keras.saving.load_model(os.path.join(directory, names[0] + ".keras"))
    except TypeError as error:
        assert "keras_gated>" in str(error), error
        print("UNREGISTERED-FAILS")
    import keras_gated  # noqa: F401  registers every class of the package
    for name in names:
        model = keras.saving.load_model(os.path.join(directory, name + ".keras"))
        x = np.load(os.path.join(directory, name + "-input.npy"))
        np.save(os.path.join(directory, name + "-loaded.npy"), keras.ops.convert_to_numpy(model(x)))
        print("LOADED", name)
    """
)


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    builders, inputs, x = saved_models()
    for name, build in builders.items():
        model = build()
        randomize_weights(model, seed=len(name))
        model_input = inputs.get(name, x)
        np.save(tmp_path / f"{name}-input.npy", model_input)
        np.save(tmp_path / f"{name}-expected.npy", as_numpy(model(model_input)))
        model.save(tmp_path / f"{name}.keras")
        # Loading in this process too (classes already registered).
        reloaded = keras.saving.load_model(tmp_path / f"{name}.keras")
        assert_all_close(reloaded(model_input), model(model_input))
        assert [type(layer) for layer in reloaded.layers] == [type(layer) for layer in model.layers]
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path), *builders],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "UNREGISTERED-FAILS" in result.stdout
    for name in builders:
        assert f"LOADED {name}" in result.stdout
        np.testing.assert_allclose(
            np.load(tmp_path / f"{name}-loaded.npy"),
            np.load(tmp_path / f"{name}-expected.npy"),
            atol=ATOL,
        )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="SavedModel export needs the TensorFlow backend")
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CLASSES)
def test_export_saved_model_serves_the_same_outputs(layer_class, cell_class, kwargs, tmp_path):
    import tensorflow as tf

    x = sequences()
    inputs = keras.Input((6, FEATURES))
    sequence = layer_class(UNITS, return_sequences=True, **kwargs)(inputs)
    backwards = keras.layers.Bidirectional(
        keras.layers.RNN(cell_class(UNITS, **kwargs))
    )(sequence)
    model = keras.Model(inputs, kg.Highway()(backwards))
    randomize_weights(model)
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "exported"))
    assert_all_close(served.serve(tf.constant(x)), model(x))
    # A different batch size goes through the same signature.
    assert_all_close(served.serve(tf.constant(x[:1])), model(x[:1]))
