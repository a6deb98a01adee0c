"""The private Keras names `keras_gated._keras_private` uses still exist.

Keras's private code carries no compatibility promise; `_keras_private`
is the one module of the package that uses it. When a Keras release
moves a piece, these tests name it, rather than the cells losing their
dropout masks or the probe silently treating every model as one it cannot
walk. (The TensorFlow trainer that `use_local_batch_to_build` patches is
checked in `tests/test_scaling.py`, with KerasTuner's private names.)
"""

import ast
import inspect
import pathlib

import keras

from keras_gated import _keras_private


def _missing(owner, names):
    return [name for name in names if not hasattr(owner, name)]


def test_every_private_keras_name_the_walk_uses_exists():
    sequential = keras.Sequential([keras.Input((3, 2)), keras.layers.LSTM(2)])
    inputs = keras.Input((3, 2))
    functional = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    missing = {
        "keras.Sequential": _missing(sequential, _keras_private.SEQUENTIAL_NAMES),
        "Sequential._functional": _missing(
            sequential._functional, _keras_private.FUNCTIONAL_NAMES
        ),
        "functional keras.Model": _missing(functional, _keras_private.FUNCTIONAL_NAMES),
        "keras.layers.Layer": _missing(sequential.layers[0], _keras_private.LAYER_NAMES),
    }
    missing = {owner: names for owner, names in missing.items() if names}
    assert not missing, (
        f"Keras {keras.__version__} moved private names keras_gated._keras_private "
        f"uses: {missing}. Update _keras_private.py (and its lists of private names)."
    )
    assert _keras_private.functional_graph(sequential) is sequential._functional
    assert _keras_private.functional_graph(functional) is functional


def test_the_private_layer_flags_say_what_the_walk_expects():
    # The walk passes training=False and the mask only where these say the
    # layer's call takes them.
    lstm = keras.layers.LSTM(2)
    assert _keras_private.call_takes_training(lstm) is True
    assert _keras_private.call_takes_mask(lstm) is True
    assert _keras_private.call_takes_mask(keras.layers.Dense(2)) is False


def test_the_dropout_mixin_is_the_one_keras_cells_use():
    # keras.layers.RNN draws the masks of cells of this class before the loop.
    assert issubclass(keras.layers.LSTMCell, _keras_private.DropoutRNNCell)
    for name in ("get_dropout_mask", "get_recurrent_dropout_mask", "reset_dropout_mask"):
        assert callable(getattr(_keras_private.DropoutRNNCell, name, None)), name


def test_the_backend_loop_and_the_mask_functions_keep_their_signatures():
    parameters = list(inspect.signature(_keras_private.rnn).parameters)
    assert parameters[:3] == ["step_function", "inputs", "initial_states"], parameters
    for name in ("go_backwards", "mask", "unroll", "input_length", "zero_output_for_mask"):
        assert name in parameters, name
    tensor = keras.ops.ones((2, 3))
    mask = keras.ops.ones((2,), dtype="bool")
    _keras_private.set_keras_mask(tensor, mask)
    assert _keras_private.get_keras_mask(tensor) is not None


def test_the_autocast_scope_casts_float_variables_as_a_layer_call_does():
    # The fast loops' backward passes under a mixed-precision policy rely on it.
    variable = keras.Variable(keras.ops.ones((2,)), dtype="float32")
    with _keras_private.autocast("bfloat16"):
        assert keras.backend.standardize_dtype(variable.value.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(variable.value.dtype) == "float32"


def test_no_other_module_of_the_package_imports_private_keras():
    package = pathlib.Path(_keras_private.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "_keras_private.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.relative_to(package)}: {n}" for n in names if n.startswith("keras.src")]
    assert not offenders, offenders
