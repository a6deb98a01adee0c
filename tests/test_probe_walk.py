"""The private Keras names `keras_gated.probe.walk` uses still exist.

The probe walks models through Keras internals that carry no compatibility
promise; `walk` lists every one of them. When a Keras release moves one,
this test names it, rather than the probe silently treating every model as
one it cannot walk.
"""

import keras
from keras.src import backend as keras_backend

from keras_gated.probe import walk


def _missing(owner, names):
    return [name for name in names if not hasattr(owner, name)]


def test_every_private_keras_name_the_walk_uses_exists():
    sequential = keras.Sequential([keras.Input((3, 2)), keras.layers.LSTM(2)])
    inputs = keras.Input((3, 2))
    functional = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    missing = {
        "keras.src.backend": _missing(keras_backend, walk.PRIVATE_BACKEND_NAMES),
        "keras.Sequential": _missing(sequential, walk.PRIVATE_SEQUENTIAL_NAMES),
        "Sequential._functional": _missing(
            sequential._functional, walk.PRIVATE_FUNCTIONAL_NAMES
        ),
        "functional keras.Model": _missing(functional, walk.PRIVATE_FUNCTIONAL_NAMES),
        "keras.layers.Layer": _missing(
            sequential.layers[0], walk.PRIVATE_LAYER_NAMES
        ),
    }
    missing = {owner: names for owner, names in missing.items() if names}
    assert not missing, (
        f"Keras {keras.__version__} moved private names keras_gated.probe.walk "
        f"uses: {missing}. Update walk.py (and its list of private names)."
    )


def test_the_private_layer_flags_say_what_the_walk_expects():
    # The walk passes training=False and the mask only where these say the
    # layer's call takes them.
    lstm = keras.layers.LSTM(2)
    assert lstm._call_has_training_arg is True
    assert lstm._call_has_mask_arg is True
    assert keras.layers.Dense(2)._call_has_mask_arg is False
