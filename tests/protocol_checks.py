"""Checks of the Keras RNN protocol shared by the stacked-cell test files.

Each check takes `make(**kwargs)`, which returns a fresh layer of the class
under test (a `GatedRNN`) with the given `keras.layers.RNN` arguments, and
asserts one part of the protocol against plain Keras behaviour.
"""

import os

import keras
import numpy as np

ATOL = 1e-5


def built(layer, x, **call_kwargs):
    out = layer(x, **call_kwargs)
    return layer, out


def check_rnn_cell_equals_layer(make, x):
    """keras.layers.RNN(cell) gives the layer's numbers; fused == unfused."""
    layer, fused = built(make(return_sequences=True), x)
    unfused_layer = make(return_sequences=True, fused=False)
    unfused_layer(x)
    unfused_layer.set_weights(layer.get_weights())
    cell = layer.cell.__class__.from_config(layer.cell.get_config())
    rnn = keras.layers.RNN(cell, return_sequences=True)
    rnn(x)
    rnn.set_weights(layer.get_weights())
    np.testing.assert_allclose(unfused_layer(x), fused, atol=ATOL)
    np.testing.assert_allclose(rnn(x), fused, atol=ATOL)


def check_bidirectional(make, x):
    """Both halves of Bidirectional are the layer forwards and backwards."""
    bidirectional = keras.layers.Bidirectional(make(return_sequences=True))
    out = np.asarray(bidirectional(x))
    H = out.shape[-1] // 2
    forward = make(return_sequences=True)
    forward(x)
    forward.set_weights(bidirectional.forward_layer.get_weights())
    backward = make(return_sequences=True)
    backward(x)
    backward.set_weights(bidirectional.backward_layer.get_weights())
    np.testing.assert_allclose(out[..., :H], forward(x), atol=ATOL)
    reversed_out = np.asarray(backward(x[:, ::-1]))[:, ::-1]
    np.testing.assert_allclose(out[..., H:], reversed_out, atol=ATOL)


def check_masking(make, x):
    """Masked trailing steps change nothing, on the fused and the cell path."""
    padded = np.concatenate([x, np.full_like(x[:, :2], 9.0)], axis=1)
    mask = np.ones(padded.shape[:2], dtype=bool)
    mask[:, x.shape[1]:] = False
    for fused in (True, False):
        layer, expected = built(make(fused=fused), x)
        np.testing.assert_allclose(layer(padded, mask=mask), expected, atol=ATOL)
    model = keras.Sequential(
        [keras.Input(padded.shape[1:]), keras.layers.Masking(9.0), layer]
    )
    np.testing.assert_allclose(model(padded), expected, atol=ATOL)


def check_stateful_and_return_state(make, x, state_count):
    """Two stateful halves equal one pass; return_state gives every state."""
    full = make(return_state=True)
    outputs = full(x)
    assert len(outputs) == 1 + state_count
    stateful = make(stateful=True, return_state=True)
    stateful(x[:, :2])
    stateful.set_weights(full.get_weights())
    stateful.reset_state()
    stateful(x[:, :2])
    second = stateful(x[:, 2:])
    for got, expected in zip(second, outputs):
        np.testing.assert_allclose(got, expected, atol=ATOL)
    for state, expected in zip(stateful.states, outputs[1:]):
        np.testing.assert_allclose(state, expected, atol=ATOL)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(x)[0], outputs[0], atol=ATOL)
    # initial_state continues where the first half stopped.
    first = full(x[:, :2])
    again = full(x[:, 2:], initial_state=list(first[1:]))
    np.testing.assert_allclose(again[0], outputs[0], atol=ATOL)


def check_dropout(make, x):
    """Dropout: one mask per sequence shared by both paths; off at inference."""
    plain, expected = built(make(return_sequences=True), x)
    layers = [
        make(return_sequences=True, dropout=0.4, recurrent_dropout=0.4,
             seed=3, fused=fused)
        for fused in (True, False)
    ]
    for layer in layers:
        layer(x)
        layer.set_weights(plain.get_weights())
    # Same seed, same number of draws so far: the same masks on both paths.
    dropped = [np.asarray(layer(x, training=True)) for layer in layers]
    np.testing.assert_allclose(dropped[0], dropped[1], atol=ATOL)
    np.testing.assert_allclose(layers[0](x, training=False), expected, atol=ATOL)
    assert np.abs(dropped[0] - expected).max() > 1e-3
    model = keras.Sequential([keras.Input(x.shape[1:]), layers[0],
                              keras.layers.Dense(1)])
    model.compile("sgd", "mse", jit_compile=False)
    history = model.fit(x, np.zeros(x.shape[:2] + (1,)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def check_mixed_float16(make, x):
    reference, expected = built(make(return_sequences=True), x)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = make(return_sequences=True)
        out = layer(x)
        assert out.dtype == "float16"
        assert all(w.dtype == "float32" for w in layer.weights)
        layer.set_weights(reference.get_weights())
        np.testing.assert_allclose(
            np.asarray(layer(x), "float32"), expected, atol=1e-2
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


def check_config_save_and_export(make, x, tmp_path):
    """get_config/from_config, .keras save/load, and SavedModel export on TF."""
    layer = make(return_sequences=True)
    model = keras.Sequential([keras.Input(x.shape[1:]), layer,
                              keras.layers.Dense(2)])
    expected = np.asarray(model(x))
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x), layer(x), atol=ATOL)

    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.layers[0]) is type(layer)
    np.testing.assert_allclose(loaded(x), expected, atol=ATOL)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        export_dir = os.path.join(str(tmp_path), "exported")
        model.export(export_dir, verbose=False)
        reloaded = tf.saved_model.load(export_dir)
        served = reloaded.serve(x)
        np.testing.assert_allclose(served, expected, atol=ATOL)
