"""Weights of TensorFlow's old `tf.keras.experimental.PeepholeLSTMCell` load unchanged.

The old cell still ships inside TensorFlow 2.21 as
`tensorflow.python.keras.layers.recurrent.PeepholeLSTMCell` (tensorflow is in
the `test` extra). These tests run it, move its weights into keras-gated the
ways a user would (`get_weights`/`set_weights`, an .h5 weights file, an .npz
file, a TensorFlow checkpoint) and compare the outputs. See docs/migration.md.
"""

import numpy as np
import pytest
import tensorflow as tf

try:
    import tensorflow.python.keras as legacy_keras
    from tensorflow.python.keras.layers import recurrent as legacy_recurrent
except ImportError as error:  # pragma: no cover - must never be skipped
    raise ImportError(
        "The migration tests need TensorFlow's old Keras 2 code "
        "(tensorflow.python.keras.layers.recurrent), which TensorFlow 2.21 "
        "still ships. Install the `test` extra (tensorflow); these tests must "
        f"not be skipped. ({error})"
    ) from error

import keras

import keras_gated as kg

BATCH, STEPS, FEATURES, UNITS = 3, 5, 4, 3
WEIGHT_NAMES = [
    "kernel",
    "recurrent_kernel",
    "bias",
    "input_gate_peephole_weights",
    "forget_gate_peephole_weights",
    "output_gate_peephole_weights",
]


def old_peephole_layer(seed, **cell_kwargs):
    """The old cell in the old RNN layer, built, with random weights (biases and
    peepholes included); returns (layer, inputs, initial states)."""
    rng = np.random.default_rng(seed)
    with pytest.warns(UserWarning, match="deprecated"):
        cell = legacy_recurrent.PeepholeLSTMCell(UNITS, **cell_kwargs)
    layer = legacy_recurrent.RNN(cell, return_sequences=True, return_state=True)
    inputs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    states = [rng.normal(0, 0.5, size=(BATCH, UNITS)).astype("float32") for _ in "hc"]
    layer(tf.constant(inputs), initial_state=[tf.constant(s) for s in states])
    layer.set_weights(
        [rng.normal(0, 0.7, size=w.shape).astype("float32") for w in layer.get_weights()]
    )
    return layer, inputs, states


def run(layer, inputs, states):
    # The old RNN layer wants tensors, not NumPy arrays, for initial_state.
    outputs = layer(tf.constant(inputs), initial_state=[tf.constant(s) for s in states])
    return [np.asarray(t) for t in outputs]


def assert_same_outputs(got, expected):
    for name, g, e in zip(("outputs", "final h", "final c"), got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6, err_msg=name)


def test_old_cell_layout_is_the_spec_layout():
    layer, _, _ = old_peephole_layer(seed=0)
    names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
    assert names == WEIGHT_NAMES
    ours = kg.PeepholeLSTMCell(UNITS)
    ours.build((None, FEATURES))
    assert [w.name for w in ours.weights] == WEIGHT_NAMES
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in layer.get_weights()]


@pytest.mark.parametrize("wrapper", ["rnn", "layer"])
def test_old_defaults_load_with_legacy_hard_sigmoid(wrapper):
    # The old cell's default recurrent_activation is Keras 2's hard_sigmoid.
    old, inputs, states = old_peephole_layer(seed=1)
    assert old.cell.get_config()["recurrent_activation"] == "hard_sigmoid"
    expected = run(old, inputs, states)

    def ours(recurrent_activation):
        if wrapper == "rnn":
            layer = keras.layers.RNN(
                kg.PeepholeLSTMCell(UNITS, recurrent_activation=recurrent_activation),
                return_sequences=True, return_state=True,
            )
        else:
            layer = kg.PeepholeLSTM(
                UNITS, recurrent_activation=recurrent_activation,
                return_sequences=True, return_state=True,
            )
        layer.build((None, STEPS, FEATURES))
        layer.set_weights(old.get_weights())
        return run(layer, inputs, states)

    assert_same_outputs(ours(kg.activations.legacy_hard_sigmoid), expected)
    # Keras 3's "hard_sigmoid" has slope 1/6, not 0.2: using it is a real error.
    wrong = ours("hard_sigmoid")
    assert np.abs(wrong[0] - expected[0]).max() > 1e-2


@pytest.mark.parametrize("implementation", [1, 2])
def test_sigmoid_cells_agree(implementation):
    old, inputs, states = old_peephole_layer(
        seed=2, recurrent_activation="sigmoid", implementation=implementation
    )
    expected = run(old, inputs, states)
    for fused in (True, False):
        layer = kg.PeepholeLSTM(
            UNITS, return_sequences=True, return_state=True, fused=fused
        )
        layer.build((None, STEPS, FEATURES))
        layer.set_weights(old.get_weights())
        assert_same_outputs(run(layer, inputs, states), expected)


def old_model(seed):
    """An old tf.keras Sequential model around the old cell, random weights."""
    old_layer, inputs, _ = old_peephole_layer(seed)
    model = legacy_keras.Sequential(
        [legacy_recurrent.RNN(old_layer.cell, return_sequences=True,
                              input_shape=(STEPS, FEATURES))]
    )
    return model, inputs


def new_model():
    return keras.Sequential([
        keras.Input((STEPS, FEATURES)),
        kg.PeepholeLSTM(
            UNITS, return_sequences=True,
            recurrent_activation=kg.activations.legacy_hard_sigmoid,
        ),
    ])


def test_h5_weights_file_of_an_old_model_loads(tmp_path, monkeypatch):
    model, inputs = old_model(seed=3)
    expected = np.asarray(model(inputs))
    # The old Keras stamps its version into .h5 files; the copy inside TF 2.21
    # lost that string, so we give it one. The file is otherwise written by
    # the old code itself, exactly as under TensorFlow 2.x.
    monkeypatch.setattr(legacy_keras, "__version__", "2.x", raising=False)
    # Keras 3 reads a file ending in ".weights.h5" as its own format: an old
    # file must end in plain ".h5" (or ".hdf5"), as old Keras named them.
    path = str(tmp_path / "old_peephole.h5")
    model.save_weights(path, save_format="h5")

    ours = new_model()
    # Keras 3 reads legacy .h5 weight files; layers match by order.
    ours.load_weights(path)
    np.testing.assert_allclose(ours(inputs), expected, rtol=1e-5, atol=1e-6)


def test_npz_and_checkpoint_by_weight_name(tmp_path):
    model, inputs = old_model(seed=4)
    expected = np.asarray(model(inputs))

    # A user's own export: one array per weight, keyed by its short name.
    npz_path = tmp_path / "old_peephole.npz"
    np.savez(npz_path, **{
        w.name.split("/")[-1].split(":")[0]: w.numpy() for w in model.weights
    })
    # TensorFlow's default format for model.save_weights in TF 2.x.
    checkpoint = str(tmp_path / "ckpt" / "old_peephole")
    model.save_weights(checkpoint)

    ours = new_model()
    layer = ours.layers[-1]
    with np.load(npz_path) as arrays:
        layer.set_weights([arrays[w.name] for w in layer.weights])
    np.testing.assert_allclose(ours(inputs), expected, rtol=1e-5, atol=1e-6)

    ours = new_model()
    layer = ours.layers[-1]
    reader = tf.train.load_checkpoint(checkpoint)
    layer.set_weights([
        reader.get_tensor(f"layer_with_weights-0/cell/{w.name}/.ATTRIBUTES/VARIABLE_VALUE")
        for w in layer.weights
    ])
    np.testing.assert_allclose(ours(inputs), expected, rtol=1e-5, atol=1e-6)
