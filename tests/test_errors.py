"""Bad arguments and badly shaped inputs fail early, with messages that say what to do."""

import keras
import numpy as np
import pytest

import keras_gated as kg
from gated_cases import RNN_CASES

# Each block is tested as a layer and as a cell.
CONSTRUCTORS = []
for _param in RNN_CASES:
    _layer_class, _cell_class, _kwargs = _param.values
    CONSTRUCTORS.append(pytest.param(_layer_class, _kwargs, id=f"{_param.id}-layer"))
    CONSTRUCTORS.append(pytest.param(_cell_class, _kwargs, id=f"{_param.id}-cell"))


@pytest.mark.parametrize("bad_units", [0, -3, 2.5, "8", None, True])
@pytest.mark.parametrize("constructor, kwargs", CONSTRUCTORS)
def test_units_must_be_a_positive_integer(constructor, kwargs, bad_units):
    with pytest.raises(ValueError) as error:
        constructor(bad_units, **kwargs)
    message = str(error.value)
    assert "`units`" in message
    assert "positive integer" in message
    assert repr(bad_units) in message


@pytest.mark.parametrize("constructor, kwargs", CONSTRUCTORS)
def test_units_accepts_numpy_integers(constructor, kwargs):
    block = constructor(np.int64(3), **kwargs)
    assert block.units == 3 and type(block.units) is int


@pytest.mark.parametrize("argument", ["activation", "recurrent_activation"])
@pytest.mark.parametrize("constructor, kwargs", CONSTRUCTORS)
def test_unknown_activation(constructor, kwargs, argument):
    with pytest.raises(ValueError) as error:
        constructor(4, **{argument: "tanhh"}, **kwargs)
    message = str(error.value)
    assert f"`{argument}`" in message
    assert "'tanhh'" in message
    assert "'tanh'" in message and "'sigmoid'" in message  # accepted values
    # A callable is accepted.
    constructor(4, **{argument: keras.ops.tanh}, **kwargs)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
@pytest.mark.parametrize("argument", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("constructor, kwargs", CONSTRUCTORS)
def test_dropout_rates_must_lie_in_zero_one(constructor, kwargs, argument, rate):
    with pytest.raises(ValueError) as error:
        constructor(4, **{argument: rate}, **kwargs)
    message = str(error.value)
    assert f"`{argument}`" in message
    assert "[0, 1)" in message
    assert f"{argument}={rate!r}" in message


@pytest.mark.parametrize("constructor, kwargs", CONSTRUCTORS)
def test_dropout_rates_accept_numpy_floats_and_zero(constructor, kwargs):
    block = constructor(4, dropout=np.float32(0.25), recurrent_dropout=0, **kwargs)
    assert block.dropout == 0.25 and block.recurrent_dropout == 0.0


@pytest.mark.parametrize(
    "constructor, bad, accepted",
    [
        (kg.PeepholeLSTMCell, "x", "('i', 'f', 'o')"),
        (kg.PeepholeLSTM, ("i", "c"), "('i', 'f', 'o')"),
        (kg.PeepholeLSTMCell, "ff", "('i', 'f', 'o')"),  # repeated
        (kg.CoupledLSTMCell, "i", "('f', 'o')"),  # CIFG has no input gate
        (kg.CoupledLSTM, ("o", "input"), "('f', 'o')"),
    ],
)
def test_unknown_peephole_gate(constructor, bad, accepted):
    with pytest.raises(ValueError) as error:
        constructor(4, peepholes=bad)
    message = str(error.value)
    assert "`peepholes`" in message
    assert repr(bad) in message
    assert accepted in message


def test_untied_lstm_takes_no_peepholes():
    with pytest.raises((ValueError, TypeError)) as error:
        kg.UntiedLSTMCell(4, peepholes="f")
    assert "peephole" in str(error.value)


def test_peephole_choices_are_accepted_in_any_spelling():
    for spelling in ("fo", ("f", "o"), ["o", "f"]):
        cell = kg.PeepholeLSTMCell(3, peepholes=spelling)
        cell.build((None, 2))
        names = [w.path.split("/")[-1] for w in cell.weights]
        assert names[-2:] == ["forget_gate_peephole_weights", "output_gate_peephole_weights"]
        assert "input_gate_peephole_weights" not in names


@pytest.mark.parametrize("layer_class", [kg.PeepholeLSTM, kg.CoupledLSTM, kg.UntiedLSTM])
def test_unknown_layer_keyword_is_named(layer_class):
    with pytest.raises(TypeError) as error:
        layer_class(4, forget_bias=1.0)
    assert "forget_bias" in str(error.value)


# -- Highway ------------------------------------------------------------------


def test_highway_units_must_equal_the_input_width():
    layer = kg.Highway(units=8)
    with pytest.raises(ValueError) as error:
        layer(np.zeros((2, 6), "float32"))
    message = str(error.value)
    assert "`units`" in message
    assert "input width 6" in message and "units=8" in message
    assert "Dense" in message  # the fix
    assert kg.Highway(units=6)(np.zeros((2, 6), "float32")).shape == (2, 6)


@pytest.mark.parametrize("bad_units", [0, -1, 1.5])
def test_highway_units_must_be_positive_integer(bad_units):
    with pytest.raises(ValueError, match="`units` must be a positive integer"):
        kg.Highway(units=bad_units)


@pytest.mark.parametrize("carry_gate", ["tied", "Coupled", None, 1])
def test_highway_unknown_carry_gate(carry_gate):
    with pytest.raises(ValueError) as error:
        kg.Highway(carry_gate=carry_gate)
    message = str(error.value)
    assert "`carry_gate`" in message
    assert "'coupled'" in message and "'free'" in message
    assert repr(carry_gate) in message


def test_highway_unknown_activation():
    with pytest.raises(ValueError, match="`activation`.*'rellu'"):
        kg.Highway(activation="rellu")


def test_highway_changed_width_after_build():
    layer = kg.Highway()
    layer(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError) as error:
        layer(np.zeros((2, 6), "float32"))
    message = str(error.value)
    assert "value 5" in message and "(2, 6)" in message


# -- input shapes -------------------------------------------------------------


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_rank_2_input_into_an_rnn_layer(layer_class, cell_class, kwargs):
    layer = layer_class(4, **kwargs)
    with pytest.raises(ValueError) as error:
        layer(np.zeros((2, 5), "float32"))
    message = str(error.value)
    assert "ndim=3" in message and "ndim=2" in message
    assert "(2, 5)" in message


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_rank_2_input_into_a_functional_model(layer_class, cell_class, kwargs):
    with pytest.raises(ValueError) as error:
        layer_class(4, **kwargs)(keras.Input((5,)))
    message = str(error.value)
    assert "ndim=3" in message and "(None, 5)" in message


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_changed_feature_width_after_build(layer_class, cell_class, kwargs):
    layer = layer_class(4, **kwargs)
    layer(np.zeros((2, 3, 5), "float32"))
    with pytest.raises(ValueError) as error:
        layer(np.zeros((2, 3, 6), "float32"))
    message = str(error.value)
    assert "value 5" in message  # expected width
    assert "(2, 3, 6)" in message  # received shape


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_changed_feature_width_into_rnn_of_cell(layer_class, cell_class, kwargs):
    rnn = keras.layers.RNN(cell_class(4, **kwargs))
    rnn(np.zeros((2, 3, 5), "float32"))
    with pytest.raises(ValueError) as error:
        rnn(np.zeros((2, 3, 6), "float32"))
    message = str(error.value)
    assert "5 features" in message and "(batch, 5)" in message
    assert "(2, 6)" in message


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_cell_called_on_a_sequence_points_to_rnn(layer_class, cell_class, kwargs):
    cell = cell_class(4, **kwargs)
    states = cell.get_initial_state(batch_size=2)
    cell(np.zeros((2, 5), "float32"), states)
    with pytest.raises(ValueError) as error:
        cell(np.zeros((2, 3, 5), "float32"), states)
    message = str(error.value)
    assert "(batch, features)" in message and "(2, 3, 5)" in message
    assert "keras.layers.RNN" in message


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_unknown_feature_width(layer_class, cell_class, kwargs):
    with pytest.raises(ValueError) as error:
        layer_class(4, **kwargs)(keras.Input((7, None)))
    assert "(None, 7, None)" in str(error.value)
