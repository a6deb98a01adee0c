"""The KerasTuner hypermodel base whose recurrent block is a hyperparameter."""

import keras
import keras_tuner

from keras_gated.cells import OPTION_CELLS
from keras_gated.cells import available_cells
from keras_gated.cells import check_cell
from keras_gated.cells import lstm_options
from keras_gated.cells import make_rnn_layer
from keras_gated.cells import recurrent_stack
from keras_gated.tuning.space import SearchSpace

#: Names of the recurrent hyperparameters every `GatedHyperModel` defines.
RECURRENT_HPARAMS = (
    "cell",
    "units",
    "num_layers",
    "bidirectional",
    "dropout",
    "recurrent_dropout",
)
#: The LSTM options a task may tune (`add_lstm_options`): active only for the
#: cells that take them (`keras_gated.cells.OPTION_CELLS`).
LSTM_OPTION_HPARAMS = ("layer_norm", "projection", "zoneout")
#: Names of the optimisation hyperparameters (`GatedHyperModel.compile`).
OPTIMIZER_HPARAMS = ("learning_rate", "optimizer", "clipnorm")



def graph_without_xla():
    """`jit_compile` for models whose XLA compile costs more than it saves.

    On TensorFlow `False` runs the train step as a plain `tf.function`
    graph: XLA compiles a seq2seq or captioning decoder loop for longer
    than it then runs on CPU. JAX has no graph without XLA (`False` there
    runs every operation eagerly, about 60x slower a step on the
    translation sample), and Keras's "auto" is already no compilation on
    PyTorch, so every other backend keeps "auto".
    """
    return False if keras.backend.backend() == "tensorflow" else "auto"


OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": lambda **kw: keras.optimizers.SGD(momentum=0.9, nesterov=True, **kw),
}


@keras.saving.register_keras_serializable(package="keras_gated")
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup_steps` steps, then decay as 1 / sqrt(step).

    `peak * min(step / warmup_steps, sqrt(warmup_steps / step))` (steps
    counted from 1), the schedule of Vaswani et al. (2017) without the
    model-size factor. It needs no total number of steps, so it means the
    same for any `--epochs` and for a resumed fit (the optimizer's
    iteration count is saved with it).
    """

    def __init__(self, peak, warmup_steps):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        if self.warmup_steps < 1:
            raise ValueError(f"`warmup_steps` must be >= 1; got {warmup_steps}.")

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0
        warmup = float(self.warmup_steps)
        return self.peak * keras.ops.minimum(step / warmup, keras.ops.sqrt(warmup / step))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


class GatedHyperModel(keras_tuner.HyperModel):
    """Base hypermodel: the recurrent block and the optimizer are hyperparameters.

    The default search space (`default_space()`):

    | name               | values                                        |
    |--------------------|-----------------------------------------------|
    | cell               | lstm, gru, peephole, coupled, untied, and     |
    |                    | depth_gated, grid where available             |
    | units              | 16 to 256, step 16 (default 64)               |
    | num_layers         | 1 to 2                                        |
    | bidirectional      | true / false                                  |
    | dropout            | 0.0 to 0.5, step 0.1                          |
    | recurrent_dropout  | 0.0 to 0.3, step 0.1                          |
    | learning_rate      | 1e-4 to 1e-2, log scale (default 3e-3)        |
    | optimizer          | adam, adamw, rmsprop, sgd                     |
    | clipnorm           | 0 (off), 1, 5                                 |

    A task subclasses this, adds its own hyperparameters in
    `add_hparams(space)` (and may narrow the defaults there, e.g. smaller
    `units` for a small dataset) and implements `build(hp)`:

        class MyHyperModel(GatedHyperModel):
            def __init__(self, vocab_size, overrides=()):
                self.vocab_size = vocab_size
                super().__init__(overrides, name="mine")

            def add_hparams(self, space):
                space.int("embedding_dim", 16, 128, step=16, default=32)

            def build(self, hp):
                r = self.recurrent_hparams(hp)          # dict of the six above
                tokens = keras.Input((None,), dtype="int32")
                x = keras.layers.Embedding(
                    self.vocab_size, self.space.get(hp, "embedding_dim"),
                    mask_zero=True)(tokens)
                x = self.recurrent_block(x, r)          # or make_rnn_layer(...)
                outputs = keras.layers.Dense(2, activation="softmax")(x)
                model = keras.Model(tokens, outputs)
                return self.compile(model, hp, "sparse_categorical_crossentropy",
                                    ["accuracy"])

    The user's `--hp` overrides given to `__init__` are applied after
    `add_hparams`, so they can fix or narrow any hyperparameter.

    Args:
        overrides: `--hp` strings (see `keras_gated.tuning.space`).
        name, tunable: As in `keras_tuner.HyperModel`.
    """

    def __init__(self, overrides=(), name=None, tunable=True):
        super().__init__(name=name, tunable=tunable)
        self.space = self.default_space()
        self.add_hparams(self.space)
        self.space.override(overrides)

    def add_hparams(self, space):
        """Hook: add the task's own hyperparameters to `space` (a `SearchSpace`)."""

    @staticmethod
    def default_space():
        """The recurrent and optimizer hyperparameters, as a new `SearchSpace`."""
        space = SearchSpace()
        space.choice("cell", available_cells())
        space.validators["cell"] = check_cell
        space.int("units", 16, 256, step=16, default=64)
        space.int("num_layers", 1, 2, default=1)
        space.boolean("bidirectional", default=False)
        space.float("dropout", 0.0, 0.5, step=0.1, default=0.0)
        space.float("recurrent_dropout", 0.0, 0.3, step=0.1, default=0.0)
        space.float("learning_rate", 1e-4, 1e-2, sampling="log", default=3e-3)
        space.choice("optimizer", list(OPTIMIZERS))
        space.choice("clipnorm", [0.0, 1.0, 5.0], default=1.0)
        return space

    def recurrent_hparams(self, hp):
        """Registers the recurrent hyperparameters on `hp`; returns them as a dict.

        Keys: cell, units, num_layers, bidirectional, dropout,
        recurrent_dropout (the arguments of `recurrent_stack`).
        """
        return {name: self.space.get(hp, name) for name in RECURRENT_HPARAMS}

    @staticmethod
    def add_lstm_options(space):
        """Adds the LSTM options to `space` (for a task's `add_hparams`).

        | name       | values                                           |
        |------------|--------------------------------------------------|
        | layer_norm | true / false (default false)                     |
        | projection | 0 (none), 0.5 (projection_units = units / 2)     |
        | zoneout    | 0, 0.1 (default 0)                               |

        Their defaults are off, so `train` and a grid search (which fixes
        what `--hp` leaves alone) build what they built before; a random or
        Bayesian search, or `--hp layer_norm=true,false`, tries them.
        """
        space.boolean("layer_norm", default=False)
        space.choice("projection", [0.0, 0.5], default=0.0)
        space.choice("zoneout", [0.0, 0.1], default=0.0)

    @staticmethod
    def add_warmup(space, default=0, maximum=2000):
        """Adds `warmup_steps` to `space` (for a task's `add_hparams`).

        0: a constant `learning_rate`; n > 0: `WarmupInverseSqrt`, a linear
        warm-up to `learning_rate` over n steps, then 1 / sqrt(step) decay.
        """
        space.int("warmup_steps", 0, maximum, step=100, default=default)

    def lstm_option_arguments(self, hp, hparams):
        """The layer arguments of a trial's LSTM options (`cells.lstm_options`).

        The options are registered under a condition on `cell`, so a trial
        whose cell does not take them (gru, the stacks) neither records nor
        varies them.
        """
        if "layer_norm" not in self.space.definitions:
            return {}
        with hp.conditional_scope("cell", [c for c in OPTION_CELLS if c in available_cells()]):
            values = {name: self.space.get(hp, name) for name in LSTM_OPTION_HPARAMS}
        if hparams["cell"] not in OPTION_CELLS:
            return {}
        return lstm_options(hparams["cell"], hparams["units"], **values)

    def recurrent_block(
        self, inputs, hparams, return_sequences=False, name="recurrent", **layer_arguments
    ):
        """`recurrent_stack(inputs, **hparams)`: the stack a trial chose.

        `layer_arguments` go to every layer (e.g. `lstm_option_arguments`).
        """
        return recurrent_stack(
            inputs, return_sequences=return_sequences, name=name, **hparams, **layer_arguments
        )

    def recurrent_layer(self, hparams, **kwargs):
        """`make_rnn_layer` with a trial's cell, units, depth and dropouts.

        `kwargs` (return_sequences, return_state, name, ...) go to
        `make_rnn_layer`; `bidirectional` is ignored (a decoder cannot be).
        """
        keys = ("cell", "units", "num_layers", "dropout", "recurrent_dropout")
        return make_rnn_layer(**{k: hparams[k] for k in keys}, **kwargs)

    def make_optimizer(self, hp):
        """The optimizer a trial chose (learning_rate, optimizer, clipnorm)."""
        learning_rate = self.space.get(hp, "learning_rate")
        name = self.space.get(hp, "optimizer")
        clipnorm = self.space.get(hp, "clipnorm")
        if name not in OPTIMIZERS:
            raise ValueError(
                f"Unknown `optimizer`: {name!r}. Accepted values: {', '.join(OPTIMIZERS)}."
            )
        warmup_steps = self.space.get(hp, "warmup_steps") if "warmup_steps" in self.space.definitions else 0
        if warmup_steps:
            learning_rate = WarmupInverseSqrt(learning_rate, warmup_steps)
        kwargs = {"learning_rate": learning_rate}
        if clipnorm:
            kwargs["clipnorm"] = float(clipnorm)
        return OPTIMIZERS[name](**kwargs)

    def compile(self, model, hp, loss, metrics=None, **kwargs):
        """Compiles `model` with `make_optimizer(hp)`; returns it (for `build`)."""
        model.compile(optimizer=self.make_optimizer(hp), loss=loss, metrics=metrics, **kwargs)
        if model.built:
            # Without a distribution strategy Keras creates the optimizer's
            # slots inside the first traced train step, and TensorFlow then
            # traces that step twice (a `tf.function` that creates variables
            # is traced again without them): 1.9 s of the translation
            # sample's 5 s first epoch. Built here, the step is traced once.
            model.optimizer.build(model.trainable_variables)
        return model

    def hparams_summary(self, values):
        """The hyperparameters worth showing in a table, in space order."""
        return {name: values[name] for name in self.space.definitions if name in values}
