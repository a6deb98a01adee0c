"""Activations that keras-gated users need when porting old models."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_gated")
def legacy_hard_sigmoid(x):
    """The hard sigmoid of Keras 2 and `tf.keras` 2.x: `clip(0.2 x + 0.5, 0, 1)`.

    Keras 3's `"hard_sigmoid"` is `relu6(x + 3) / 6`, a different slope
    (1/6 instead of 0.2). Cells ported from TensorFlow's old
    `PeepholeLSTMCell` or `LSTMCell`, whose default `recurrent_activation`
    was the Keras 2 `"hard_sigmoid"`, need this one to give the same numbers:

        PeepholeLSTMCell(units, recurrent_activation=legacy_hard_sigmoid)
    """
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)
