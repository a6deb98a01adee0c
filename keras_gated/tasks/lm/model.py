"""The language model: hypermodel, perplexity, stateful copies, sampling.

    tokens (batch B, any length) -> Embedding -> recurrent stack (stateful)
        -> Dropout -> logits over the vocabulary (Dense, or the transposed
        embedding when `tie_embeddings`)

The recurrent stack is `keras_gated.cells.recurrent_stack` with
`stateful=True`, so every cell name of the search means here what it means
in the other tasks; `depth_gated` and `grid` are native stacks of
`num_layers` levels. The batch size is part of the model (the states are
variables of shape `(B, units)`); `with_batch_size` builds a copy for
another batch size with the same weights.
"""

import math

import keras
import numpy as np

from keras_gated.tuning import GatedHyperModel
from keras_gated.tuning.hypermodel import OPTIMIZERS
from keras_gated.cells import recurrent_stack


@keras.saving.register_keras_serializable(package="keras_gated_lm")
class Perplexity(keras.metrics.Metric):
    """exp of the mean token cross-entropy, over every token seen since the last reset.

    Accumulates the summed cross-entropy and the token count, so the
    perplexity of an evaluation is that of the whole stream, not a mean of
    per-batch perplexities. Expects integer targets and logits.
    """

    def __init__(self, name="perplexity", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        logits = keras.ops.cast(y_pred, "float32")
        losses = keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        if sample_weight is not None:
            weights = keras.ops.cast(keras.ops.broadcast_to(sample_weight, keras.ops.shape(losses)), "float32")
        else:
            weights = keras.ops.ones_like(losses)
        self.total.assign_add(keras.ops.sum(losses * weights))
        self.count.assign_add(keras.ops.sum(weights))

    def result(self):
        return keras.ops.exp(self.total / keras.ops.maximum(self.count, 1.0))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="keras_gated_lm")
class EpochDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The schedule of Zaremba et al. (2014): constant, then times `decay` every epoch.

    lr(step) = initial * decay ** max(0, epoch - start_epoch + 1), where
    `epoch = step // steps_per_epoch + 1` counts from 1, so
    `start_epoch=5, decay=0.5` halves the rate in the fifth epoch and again
    in every one after it. `decay=1` is a constant rate.
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, decay=1.0, start_epoch=1):
        self.initial_learning_rate = float(initial_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.decay = float(decay)
        self.start_epoch = int(start_epoch)

    def __call__(self, step):
        epoch = keras.ops.floor(keras.ops.cast(step, "float32") / float(self.steps_per_epoch)) + 1.0
        decays = keras.ops.maximum(0.0, epoch - float(self.start_epoch) + 1.0)
        return self.initial_learning_rate * keras.ops.power(self.decay, decays)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "decay": self.decay,
            "start_epoch": self.start_epoch,
        }


def stateful_layers(model):
    """The stateful recurrent layers of `model`."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.RNN) and layer.stateful]


def reset_states(model):
    for layer in stateful_layers(model):
        layer.reset_states()


class ResetStates(keras.callbacks.Callback):
    """Zeroes the states of the stateful layers at the start of every pass.

    At each epoch's start (a new pass over the training stream) and before
    every evaluation (the validation stream is another text).
    """

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)

    def on_predict_begin(self, logs=None):
        reset_states(self.model)


def model_batch_size(model):
    return model.inputs[0].shape[0]


def with_batch_size(model, batch_size):
    """A copy of the functional `model` for batches of `batch_size` rows, same weights.

    The stateful states are not weights: the copy starts from zeros.
    """
    config = model.get_config()
    for layer in config["layers"]:
        # A recorded build shape would build the stateful layers (and their
        # state variables) for the old batch size before the new input reaches them.
        layer.pop("build_config", None)
        if layer["class_name"] == "InputLayer":
            shape = list(layer["config"]["batch_shape"])
            layer["config"]["batch_shape"] = [batch_size] + shape[1:]
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def loss_function():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def evaluate_stream(model, windows):
    """`{"perplexity", "cross_entropy"}` (nats per token) of a model on `StreamWindows`.

    Stateful over the whole stream: states start at zero and carry from
    window to window. Runs on a copy built for the windows' batch size, so
    the trained `model` (and its optimizer) is left as it is. Window by
    window with `predict_on_batch`, which keeps the batch size static (a
    `model.evaluate` over a `PyDataset` traces batches of 1 as of unknown
    size, which a stateful layer of batch size 1 cannot take).
    """
    copy = with_batch_size(model, windows.batch_size)
    reset_states(copy)
    perplexity = Perplexity()
    for index in range(len(windows)):
        inputs, targets, weights = windows[index]
        perplexity.update_state(targets, copy.predict_on_batch(inputs), weights)
    value = float(perplexity.result())
    return {"perplexity": value, "cross_entropy": math.log(value)}


class LanguageModelHyperModel(GatedHyperModel):
    """Embedding -> stateful recurrent stack -> logits; cell and sizes are hyperparameters.

    Adds to `GatedHyperModel`'s space: `embedding_dim`, `tie_embeddings`
    (the output layer is the transposed input embedding, Press & Wolf 2017;
    a linear projection maps the top layer to `embedding_dim` when `units`
    differs), `lr_decay` and `lr_decay_start` (`EpochDecay`). `num_layers`
    goes to 3; `bidirectional` is fixed off (a language model must not read
    the future); `clipnorm` defaults to 5 as in Zaremba et al. (2014).
    `dropout` drops the input of every recurrent layer (the embeddings and,
    between separate layers, the hidden states; a native stack drops only
    the input of its first level) and the top layer's output.

    Args:
        vocab_size: Output classes.
        batch_size: Rows of every batch (static: the layers are stateful).
        steps_per_epoch: Windows per epoch, for the learning-rate schedule.
        overrides: `--hp` strings.
    """

    def __init__(self, vocab_size, batch_size, steps_per_epoch, overrides=()):
        self.vocab_size = vocab_size
        self.batch_size = batch_size
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        super().__init__(overrides, name="lm")

    def add_hparams(self, space):
        space.int("units", 16, 512, step=16, default=128)
        space.int("num_layers", 1, 3, default=1)
        space.fixed("bidirectional", False)
        space.validators["bidirectional"] = _check_unidirectional
        space.float("dropout", 0.0, 0.6, step=0.1, default=0.0)
        space.int("embedding_dim", 16, 512, step=16, default=128)
        space.boolean("tie_embeddings", default=False)
        self.add_lstm_options(space)
        space.choice("clipnorm", [5.0, 1.0, 0.0], default=5.0)
        space.float("lr_decay", 0.5, 1.0, step=0.1, default=1.0)
        space.int("lr_decay_start", 1, 10, default=4)

    def make_optimizer(self, hp):
        name = self.space.get(hp, "optimizer")
        clipnorm = self.space.get(hp, "clipnorm")
        schedule = EpochDecay(
            self.space.get(hp, "learning_rate"),
            self.steps_per_epoch,
            self.space.get(hp, "lr_decay"),
            self.space.get(hp, "lr_decay_start"),
        )
        if name not in OPTIMIZERS:
            raise ValueError(f"Unknown `optimizer`: {name!r}. Accepted values: {', '.join(OPTIMIZERS)}.")
        kwargs = {"learning_rate": schedule}
        if clipnorm:
            kwargs["clipnorm"] = float(clipnorm)
        return OPTIMIZERS[name](**kwargs)

    def build(self, hp):
        recurrent = self.recurrent_hparams(hp)
        embedding_dim = self.space.get(hp, "embedding_dim")
        tied = self.space.get(hp, "tie_embeddings")
        tokens = keras.Input(batch_shape=(self.batch_size, None), dtype="int32", name="tokens")
        if tied:
            embedding = keras.layers.ReversibleEmbedding(
                self.vocab_size, embedding_dim, tie_weights=True, name="embedding"
            )
        else:
            embedding = keras.layers.Embedding(self.vocab_size, embedding_dim, name="embedding")
        x = embedding(tokens)
        x = recurrent_stack(
            x, return_sequences=True, stateful=True, **recurrent,
            **self.lstm_option_arguments(hp, recurrent),
        )
        x = keras.layers.Dropout(recurrent["dropout"], name="output_dropout")(x)
        if tied:
            # The stack's output is `units` wide, or narrower with a projection.
            if x.shape[-1] != embedding_dim:
                x = keras.layers.Dense(embedding_dim, use_bias=False, name="projection")(x)
            logits = embedding(x, reverse=True)
        else:
            logits = keras.layers.Dense(self.vocab_size, name="logits")(x)
        logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
        model = keras.Model(tokens, logits, name=f"lm_{recurrent['cell']}")
        # weighted: the padded steps of an evaluation stream's last window weigh 0.
        return self.compile(model, hp, loss_function(), weighted_metrics=[Perplexity()])


def _check_unidirectional(value):
    if value:
        raise ValueError("bidirectional=true: a language model predicts the next token and must not read ahead.")
    return value


# --------------------------------------------------------------------- sampling


def sample_token(logits, temperature=1.0, top_k=0, rng=None):
    """One token id drawn from `logits` (1-D) at `temperature` among the `top_k` best.

    `top_k=1` (or `temperature=0`) is greedy: the most likely token, always.
    `top_k=0` keeps every token.
    """
    logits = np.asarray(logits, dtype="float64")
    if top_k == 1 or temperature == 0:
        return int(np.argmax(logits))
    if temperature < 0:
        raise ValueError(f"--temperature must be >= 0; got {temperature}.")
    if top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0 = every token); got {top_k}.")
    scaled = logits / temperature
    if 0 < top_k < len(scaled):
        cutoff = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= cutoff, scaled, -np.inf)
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    rng = rng or np.random.default_rng()
    return int(rng.choice(len(probabilities), p=probabilities))


def generate_ids(model, prompt_ids, length, temperature=1.0, top_k=0, seed=None, stop_id=None):
    """Continues `prompt_ids` by `length` sampled token ids with a batch-1 copy of `model`.

    The prompt is read in one call (its states carried on), then one token
    per call. An empty prompt starts from `<eos>` (id 0), a sentence start.
    Stops early after `stop_id` when given.
    """
    single = with_batch_size(model, 1)
    reset_states(single)
    rng = np.random.default_rng(seed)
    context = np.asarray([list(prompt_ids) or [0]], dtype="int32")
    generated = []
    for _ in range(length):
        logits = np.asarray(single.predict_on_batch(context))[0, -1]
        token = sample_token(logits, temperature, top_k, rng)
        generated.append(token)
        if stop_id is not None and token == stop_id:
            break
        context = np.asarray([[token]], dtype="int32")
    return generated
