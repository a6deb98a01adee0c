"""No silent NaN: stop training at a non-finite loss, with a message that names where.

`StopOnNonFiniteLoss` is in every callback list of `trial_callbacks` (so in
`keras-gated train` and `tune`), and the keras-gated tuners add it to every
trial that lacks one. It raises `NonFiniteLossError` naming the epoch and the
batch (both counted from 1, as Keras's progress bar counts epochs) and, when
the task can say which examples made the batch, the first of them. In a
search the tuners turn the error into `keras_tuner.errors.FailedTrialError`,
so the oracle records the trial as FAILED instead of giving it a score.
"""

import math

import keras

from keras_gated.tasks import TrainingFailedError


class NonFiniteLossError(TrainingFailedError):
    """The loss became NaN or infinite during `fit`."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the first batch whose loss is NaN or Inf.

    Unlike `keras.callbacks.TerminateOnNaN`, which ends `fit` quietly, this
    raises, so neither `train` nor the tuner can report the model as valid.
    The validation loss is checked at each epoch's end.

    Args:
        describe_batch: Optional `describe_batch(epoch, batch) -> str`
            (0-based indices) naming the examples of a training batch.
    """

    def __init__(self, describe_batch=None):
        super().__init__()
        self.describe_batch = describe_batch
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            where = f"epoch {self._epoch + 1}, batch {batch + 1}"
            examples = ""
            if self.describe_batch is not None:
                examples = " " + self.describe_batch(self._epoch, batch)
            raise NonFiniteLossError(
                f"Training stopped: the loss is {float(loss)} at {where} (counted from 1).{examples} "
                "Look for inputs that are NaN, Inf or empty, or lower the learning rate "
                "(--hp learning_rate=...) or clip gradients (--hp clipnorm=1)."
            )

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            if name.endswith("loss") and value is not None and not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"Training stopped: {name} is {float(value)} at the end of epoch {epoch + 1} "
                    "(counted from 1). Look for validation inputs that are NaN, Inf or empty."
                )
