"""Losses of the sequence tasks.

`sparse_crossentropy(label_smoothing, ignore_class)` is the next-token loss of
the translation (and captioning) models: Keras's own
`SparseCategoricalCrossentropy` when `label_smoothing` is 0, else
`SmoothedSparseCrossentropy`, which Keras has only for one-hot targets
(`CategoricalCrossentropy(label_smoothing=...)`), not for token ids.

Label smoothing (Szegedy et al. 2016; Vaswani et al. 2017 use 0.1 for
translation) trains against the target distribution
`q_k = (1 - ε) [k = y] + ε / V` over the V classes instead of the one-hot
`[k = y]`, so for logits z with `log p = log_softmax(z)`:

    loss = -(1 - ε) log p_y - (ε / V) Σ_k log p_k

The same as `keras.losses.CategoricalCrossentropy(label_smoothing=ε,
from_logits=True)` on one-hot targets. Positions whose target is
`ignore_class` (padding) count neither in the sum nor in the mean: the loss
is averaged over the real tokens of the batch, as Keras's `ignore_class`
does. Give either `ignore_class` or predictions that carry a Keras mask over
the same positions, not both: Keras's `Loss` averages over a mask's
positions itself, so both would count the real share twice (the sequence
models of this package give logits without a mask).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_gated")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer targets against label-smoothed distributions.

    Args:
        label_smoothing: ε in (0, 1): the probability mass spread evenly over
            all classes.
        from_logits: Whether `y_pred` are logits (else probabilities).
        ignore_class: A target id whose positions do not count (padding), or
            None.
    """

    def __init__(self, label_smoothing=0.1, from_logits=True, ignore_class=None,
                 reduction="sum_over_batch_size", name="smoothed_sparse_crossentropy",
                 dtype=None):
        if not 0.0 < float(label_smoothing) < 1.0:
            raise ValueError(
                "`label_smoothing` must be in (0, 1), the share of the target "
                "probability spread over all classes (0 is plain cross-entropy: "
                "use keras.losses.SparseCategoricalCrossentropy). Received: "
                f"label_smoothing={label_smoothing!r}"
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, "int32")
        if self.from_logits:
            log_probabilities = ops.log_softmax(y_pred, axis=-1)
        else:
            log_probabilities = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        target_log_probability = ops.take_along_axis(
            log_probabilities, ops.expand_dims(ops.maximum(y_true, 0), -1), axis=-1
        )[..., 0]
        smoothing = self.label_smoothing
        loss = -(1.0 - smoothing) * target_log_probability - smoothing * ops.mean(
            log_probabilities, axis=-1
        )
        if self.ignore_class is None:
            return loss
        valid = ops.cast(ops.not_equal(y_true, self.ignore_class), loss.dtype)
        # "sum_over_batch_size" divides by every position; scaled by the
        # share of real ones, the result is the mean over the real tokens.
        real_share = ops.maximum(ops.mean(valid), keras.config.epsilon())
        return loss * valid / real_share

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
        }


def sparse_crossentropy(label_smoothing=0.0, ignore_class=None):
    """Next-token cross-entropy on logits: Keras's, or label-smoothed when ε > 0."""
    if label_smoothing:
        return SmoothedSparseCrossentropy(label_smoothing, from_logits=True,
                                          ignore_class=ignore_class)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                      ignore_class=ignore_class)
