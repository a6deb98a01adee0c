"""The cell registry (`keras_gated.cells`): one stack builder, fused levels, one depth name."""

import warnings

import keras
import numpy as np
import pytest

import keras_gated as kg
from keras_gated import cells

X = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")


def test_a_pile_keeps_every_level_fused():
    layers = cells.stack_layers("peephole", 6, num_layers=3, return_sequences=False)
    assert [type(layer) for layer in layers] == [kg.PeepholeLSTM] * 3
    assert [layer.return_sequences for layer in layers] == [True, True, False]
    stack = cells.make_rnn_layer("peephole", 6, num_layers=3)
    assert isinstance(stack, cells.RecurrentStack)
    assert stack(X).shape == (3, 6)
    assert {level.last_call_path for level in stack.levels} <= {"fast", "generic"}


def test_native_stack_is_one_layer_with_num_layers():
    (layer,) = cells.stack_layers("grid", 4, num_layers=2, return_sequences=True)
    assert isinstance(layer, kg.GridLSTM) and layer.num_layers == 2
    (layer,) = cells.stack_layers("depth_gated", 4, num_layers=3)
    assert layer.num_layers == 3


def test_recurrent_stack_states_are_flat_and_feed_back(tmp_path):
    stack = cells.make_rnn_layer("lstm", 5, num_layers=2, return_sequences=True, return_state=True)
    output, *states = stack(X)
    assert output.shape == (3, 5, 5) and len(states) == 4
    again = stack(X, initial_state=states)
    assert again[0].shape == (3, 5, 5)
    inputs = keras.Input((5, 4))
    model = keras.Model(inputs, cells.make_rnn_layer("gru", 3, num_layers=2)(inputs))
    path = tmp_path / "stack.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)


def test_grid_depth_is_a_deprecated_alias_of_num_layers():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = kg.GridLSTM(4, depth=3)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    assert old.num_layers == old.depth == 3
    config = old.get_config()
    assert config["num_layers"] == 3 and "depth" not in config
    config.pop("num_layers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert kg.GridLSTM.from_config({**config, "depth": 2}).num_layers == 2
    with pytest.raises(ValueError, match="once"):
        kg.GridLSTMCell(4, num_layers=2, depth=3)


def test_old_registry_path_still_works():
    from keras_gated.tuning import recurrent

    assert recurrent.make_rnn_layer is cells.make_rnn_layer
    assert recurrent.available_cells() == cells.available_cells()
