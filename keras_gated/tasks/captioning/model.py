"""Show, Attend and Tell with a gated-cell decoder.

An `ImageEncoder` turns an image into a grid of feature vectors
`a = {a_1, ..., a_L}` (L = rows x columns of the last feature map). A
`CaptionDecoder` writes the caption one word at a time with the gated cell
of choice and soft attention (Xu et al. 2015, "Show, Attend and Tell"):

    e_{t,i}  = w_a^T tanh(W_a a_i + U_a h_{t-1})             # score of location i
    α_{t,i}  = exp(e_{t,i}) / Σ_k exp(e_{t,k})               # sums to one over i
    z_t      = β_t ⊙ Σ_i α_{t,i} a_i,  β_t = σ(W_β h_{t-1})  # gated context
    h_t, s_t = cell([E y_{t-1}; z_t], s_{t-1})               # any gated cell
    p(y_t)   = softmax(L_o tanh(L_h h_t + L_z z_t + E y_{t-1}))   # deep output

The initial cell state and h_0 are read from the image (Show and Tell):
`s_0 = tanh(W_init mean_i a_i)`, one projection per state tensor. Training
feeds the true previous word (teacher forcing); inference decodes greedily or
with beam search through `keras_gated.decoding`, one `step` at a time.

Everything here is written with `keras.ops`, so it runs on the TensorFlow,
JAX and PyTorch backends.
"""

import importlib

import keras
from keras import ops

from keras_gated._keras_private import rnn as backend_rnn

from keras_gated.tasks.captioning.data import END
from keras_gated.tasks.captioning.data import PAD
from keras_gated.tasks.captioning.data import START
from keras_gated.tasks.captioning.data import Vocabulary
from keras_gated.cells import make_cell
from keras_gated.losses import sparse_crossentropy
from keras_gated.tasks.common.compiled import compiled_inference
from keras_gated.tuning import GatedHyperModel
from keras_gated.tuning.hypermodel import graph_without_xla

SMALL_CNN = "small_cnn"

def _preprocess_function(backbone_fn):
    """The `preprocess_input` that goes with a keras.applications model."""
    module = importlib.import_module(backbone_fn.__module__)
    return getattr(module, "preprocess_input", None)


@keras.saving.register_keras_serializable(package="keras_gated")
class ImageEncoder(keras.layers.Layer):
    """Image -> grid of feature vectors `[batch, L, F]`.

    Args:
        backbone: `"small_cnn"` (a three-block CNN trained from scratch, the
            offline default) or the name of a `keras.applications` model
            (`"MobileNetV3Small"`, `"EfficientNetB0"`, `"InceptionV3"`, ...),
            used without its classifier top.
        image_size: Side of the square input images in pixels.
        weights: For a backbone: `"imagenet"` (downloads once, needs the
            network), `"none"` (random), or the path of a weights file.
        fine_tune: Whether the backbone trains with the decoder. A frozen
            backbone's features can be cached (see `features.py`).
        filters: Width of the small CNN's last block (its feature width F).
        coordinates: Append the (x, y) position of each grid cell, in
            [-1, 1], to its feature vector, so the attended context says
            where it looked.

    Images are float or uint8 RGB in [0, 255]; the encoder applies the
    backbone's own `preprocess_input`.

    Example:

        encoder = ImageEncoder("small_cnn", image_size=48)
        features = encoder(images)          # [batch, 36, 130]
    """

    def __init__(
        self,
        backbone=SMALL_CNN,
        image_size=48,
        weights="none",
        fine_tune=False,
        filters=128,
        coordinates=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone_name = str(backbone)
        self.image_size = int(image_size)
        self.weights_source = str(weights)
        self.fine_tune = bool(fine_tune)
        self.filters = int(filters)
        self.coordinates = bool(coordinates)
        self._preprocess = None
        size = self.image_size
        if self.backbone_name == SMALL_CNN:
            layers = []
            for width in (32, 64):
                layers += [
                    keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
                    keras.layers.MaxPooling2D(2),
                ]
            layers.append(
                keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu")
            )
            self.backbone = keras.Sequential(layers, name="small_cnn")
        else:
            backbone_fn = getattr(keras.applications, self.backbone_name, None)
            if backbone_fn is None or not callable(backbone_fn):
                raise ValueError(
                    f"Unknown encoder `backbone`: {self.backbone_name!r}. Pass "
                    f"{SMALL_CNN!r} or the name of a keras.applications model, "
                    "e.g. 'MobileNetV3Small', 'EfficientNetB0', 'InceptionV3'."
                )
            self.backbone = backbone_fn(
                include_top=False,
                weights=resolve_weights(self.weights_source),
                input_shape=(size, size, 3),
            )
            self._preprocess = _preprocess_function(backbone_fn)
            self.backbone.trainable = self.fine_tune
        self.backbone.build((None, size, size, 3))
        grid = self.backbone.compute_output_shape((None, size, size, 3))
        self.grid_shape = (int(grid[1]), int(grid[2]))
        self.feature_dim = int(grid[3]) + (2 if self.coordinates else 0)
        self.built = True

    @property
    def cacheable(self):
        """Whether the features are fixed, so they can be computed once."""
        return self.backbone_name != SMALL_CNN and not self.fine_tune

    def call(self, images, training=False):
        images = ops.cast(images, self.compute_dtype)
        if self.backbone_name == SMALL_CNN:
            images = images / 255.0
        elif self._preprocess is not None:
            images = self._preprocess(images)
        grid = self.backbone(images, training=training and self.fine_tune)
        rows, cols = self.grid_shape
        features = ops.reshape(grid, (-1, rows * cols, grid.shape[-1]))
        if self.coordinates:
            ys, xs = ops.meshgrid(
                ops.linspace(-1.0, 1.0, rows), ops.linspace(-1.0, 1.0, cols),
                indexing="ij",
            )
            where = ops.stack([ops.reshape(xs, (-1,)), ops.reshape(ys, (-1,))], -1)
            where = ops.cast(where, features.dtype)
            where = ops.broadcast_to(
                where[None], (ops.shape(features)[0], rows * cols, 2)
            )
            features = ops.concatenate([features, where], axis=-1)
        return features

    def compute_output_shape(self, input_shape):
        rows, cols = self.grid_shape
        return (input_shape[0], rows * cols, self.feature_dim)

    def get_config(self):
        # The weights travel in the .keras file, so a reloaded encoder never
        # needs the network or the original weights file again.
        return {
            **super().get_config(),
            "backbone": self.backbone_name,
            "image_size": self.image_size,
            "weights": "none",
            "fine_tune": self.fine_tune,
            "filters": self.filters,
            "coordinates": self.coordinates,
        }


def resolve_weights(weights):
    """`--encoder-weights` value -> the `weights` of keras.applications."""
    import os

    if weights is None or str(weights).lower() in ("none", "random", ""):
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    if os.path.isfile(str(weights)):
        return str(weights)
    raise ValueError(
        f"`encoder_weights` must be 'imagenet', 'none' or the path of an "
        f"existing weights file. Received: {weights!r} (no such file)."
    )


@keras.saving.register_keras_serializable(package="keras_gated")
class CaptionDecoder(keras.layers.Layer):
    """Gated-cell decoder with soft attention over image locations.

    The equations are in this module's docstring. The decoder state is the
    list `[h_{t-1}, *cell_states]`.

    Args:
        vocabulary_size: Number of output words (ids 0..V-1).
        cell: Decoder cell name (`keras_gated.tuning.available_cells()`):
            `"lstm"`, `"gru"`, `"peephole"`, `"coupled"`, `"untied"`,
            `"depth_gated"`, `"grid"`.
        units: Width of the cell's state.
        embedding_dim: Width of the word embeddings E.
        attention_units: Width of the attention's hidden layer.
        num_layers: Decoder depth: a `depth_gated` or `grid` cell's own
            levels, otherwise a `keras.layers.StackedRNNCells`.
        dropout: Dropout on the embeddings and the deep output.
        feature_dim: Width F of the image features (set by the model).
    """

    def __init__(
        self,
        vocabulary_size,
        cell="lstm",
        units=256,
        embedding_dim=128,
        attention_units=128,
        num_layers=1,
        dropout=0.0,
        feature_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.cell_name = str(cell)
        self.units = int(units)
        self.embedding_dim = int(embedding_dim)
        self.attention_units = int(attention_units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.feature_dim = feature_dim
        self.cell = make_cell(self.cell_name, self.units, self.num_layers)
        self.embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim, name="embedding"
        )
        self.feature_attention = keras.layers.Dense(
            self.attention_units, name="feature_attention"
        )
        self.hidden_attention = keras.layers.Dense(
            self.attention_units, use_bias=False, name="hidden_attention"
        )
        self.attention_score = keras.layers.Dense(
            1, use_bias=False, name="attention_score"
        )
        self.context_gate = keras.layers.Dense(
            1, activation="sigmoid", name="context_gate"
        )
        self.deep_output = keras.layers.Dense(
            self.embedding_dim, activation="tanh", name="deep_output"
        )
        self.output_dropout = keras.layers.Dropout(self.dropout)
        self.logits = keras.layers.Dense(self.vocabulary_size, name="logits")
        state_sizes = [int(s) for s in keras.tree.flatten(self.cell.state_size)]
        output_size = int(getattr(self.cell, "output_size", state_sizes[0]))
        self.state_sizes = [output_size] + state_sizes
        self.initial_states = [
            keras.layers.Dense(size, activation="tanh", name=f"initial_state_{n}")
            for n, size in enumerate(self.state_sizes)
        ]
        if feature_dim is not None:
            self.build((None, None, int(feature_dim)))

    def build(self, features_shape):
        feature_dim = int(features_shape[-1])
        self.feature_dim = feature_dim
        self.embedding.build((None,))
        self.feature_attention.build((None, None, feature_dim))
        self.hidden_attention.build((None, self.state_sizes[0]))
        self.attention_score.build((None, None, self.attention_units))
        self.context_gate.build((None, self.state_sizes[0]))
        self.cell.build((None, self.embedding_dim + feature_dim))
        self.deep_output.build(
            (None, self.state_sizes[0] + feature_dim + self.embedding_dim)
        )
        self.logits.build((None, self.embedding_dim))
        for dense in self.initial_states:
            dense.build((None, feature_dim))
        self.built = True

    def initial_state(self, features):
        """`[h_0, *s_0]` read from the mean of the image features."""
        mean = ops.mean(features, axis=1)
        return [dense(mean) for dense in self.initial_states]

    def project_features(self, features):
        """`W_a a_i`, computed once per image rather than once per step."""
        return self.feature_attention(features)

    def attend_and_update(self, embedded, states, features, projected, training=False):
        """Attention, gated context and one cell update for embedded words.

        Returns `(deep_output [N, E], new_states, attention [N, L])`.
        """
        hidden = states[0]
        scores = self.attention_score(
            ops.tanh(projected + self.hidden_attention(hidden)[:, None, :])
        )
        attention = ops.softmax(scores[..., 0], axis=-1)
        context = ops.sum(attention[..., None] * features, axis=1)
        context = self.context_gate(hidden) * context
        # Stacked and GRU cells want their states in their own nesting.
        cell_states = keras.tree.pack_sequence_as(
            self.cell.state_size, list(states[1:])
        )
        output, cell_states = self.cell(
            ops.concatenate([embedded, context], axis=-1),
            cell_states,
            training=training,
        )
        cell_states = keras.tree.flatten(cell_states)
        deep = self.deep_output(ops.concatenate([output, context, embedded], -1))
        return deep, [output] + list(cell_states), attention

    def step(self, tokens, states, features, projected):
        """One inference step.

        Args:
            tokens: int `[N]`, the previous words y_{t-1}.
            states: `[h_{t-1}, *s_{t-1}]`.
            features: `[N, L, F]`; projected: `[N, L, A]`
                (`project_features(features)`).

        Returns:
            `(logits [N, V], new_states, attention [N, L])`.
        """
        deep, states, attention = self.attend_and_update(
            self.embedding(tokens), states, features, projected
        )
        return self.logits(deep), states, attention

    def call(self, features, tokens, training=False, return_attention=False):
        """Teacher forcing over `tokens` `[B, T]` -> logits `[B, T, V]`.

        The time loop is the backend's own (`tf.while_loop`, `lax.scan`), so
        the step is traced once, not once per word.
        """
        states = self.initial_state(features)
        projected = self.project_features(features)
        embedded = self.embedding(tokens)
        if self.dropout:
            embedded = self.output_dropout(embedded, training=training)
        width = self.embedding_dim

        def loop_step(embedded_t, loop_states):
            deep, new_states, attention = self.attend_and_update(
                embedded_t, loop_states, features, projected, training=training
            )
            return ops.concatenate([deep, attention], axis=-1), new_states

        _, outputs, _ = backend_rnn(
            loop_step, embedded, states, unroll=False,
            input_length=tokens.shape[1],
        )
        deep, attention = outputs[..., :width], outputs[..., width:]
        logits = self.logits(self.output_dropout(deep, training=training))
        if return_attention:
            return logits, attention
        return logits

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "cell": self.cell_name,
            "units": self.units,
            "embedding_dim": self.embedding_dim,
            "attention_units": self.attention_units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "feature_dim": self.feature_dim,
        }


@keras.saving.register_keras_serializable(package="keras_gated")
class ImageCaptioner(keras.Model):
    """Encoder, attention decoder and vocabulary in one saveable model.

    `call` takes a dict with `"tokens"` (the caption so far, `[B, T]`,
    starting with `<start>`) and either `"images"` (`[B, S, S, 3]`, values
    in [0, 255]) or `"features"` (the encoder's output, e.g. from the cache);
    it returns the logits of the next words `[B, T, V]`.

    Example:

        model = ImageCaptioner(vocabulary, image_size=48, cell="coupled")
        model.compile(optimizer="adam", loss=caption_loss())
        model.fit(...)
        model.caption(images)               # ["a red circle left of ..."]
        model.save("captioner.keras")
    """

    def __init__(
        self,
        vocabulary,
        image_size=48,
        encoder="small_cnn",
        encoder_weights="none",
        fine_tune_encoder=False,
        encoder_filters=128,
        cell="lstm",
        units=256,
        embedding_dim=128,
        attention_units=128,
        num_layers=1,
        dropout=0.0,
        max_length=20,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary = (
            vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(vocabulary)
        )
        self.image_size = int(image_size)
        self.max_length = int(max_length)
        self.encoder = ImageEncoder(
            encoder,
            image_size=self.image_size,
            weights=encoder_weights,
            fine_tune=fine_tune_encoder,
            filters=encoder_filters,
            name="encoder",
        )
        self.decoder = CaptionDecoder(
            len(self.vocabulary),
            cell=cell,
            units=units,
            embedding_dim=embedding_dim,
            attention_units=attention_units,
            num_layers=num_layers,
            dropout=dropout,
            feature_dim=self.encoder.feature_dim,
            name="decoder",
        )
        # Every weight exists now (both halves build in their constructors),
        # so weights can be loaded into a fresh model (KerasTuner does that).
        self.built = True

    def features(self, inputs, training=False):
        if "features" in inputs:
            return ops.convert_to_tensor(inputs["features"])
        return self.encoder(inputs["images"], training=training)

    def call(self, inputs, training=False):
        features = self.features(inputs, training=training)
        return self.decoder(features, inputs["tokens"], training=training)

    def attend(self, inputs):
        """Logits and attention maps `[B, T, L]` for given tokens."""
        features = self.features(inputs)
        return self.decoder(features, inputs["tokens"], return_attention=True)

    def encode(self, images, batch_size=64):
        """Image features as a NumPy array `[N, L, F]`."""
        from keras_gated.tasks.captioning.features import encode_images

        return encode_images(self.encoder, images, batch_size)

    def decode_step(self, prev_tokens, state):
        """One greedy or beam-search step: `(log-probabilities, new state)`.

        `state` holds the decoder's states and the image features (and
        their attention projection) of every row; `generate` makes it.
        """
        logits, new_states, _ = self.decoder.step(
            ops.cast(prev_tokens, "int32"),
            state["decoder"],
            state["features"],
            state["projected"],
        )
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        return log_probs, {**state, "decoder": new_states}

    def generate(
        self,
        images=None,
        features=None,
        method="greedy",
        beam_width=3,
        length_penalty=0.0,
        max_length=None,
        batch_size=64,
    ):
        """Token ids of the captions (without `<start>`/`<end>`), one list per image."""
        from keras_gated import decoding

        import numpy as np

        if features is None:
            features = self.encode(images, batch_size=batch_size)
        max_words = int(max_length or self.max_length)
        if method not in ("greedy", "beam"):
            raise ValueError(
                f"`method` must be 'greedy' or 'beam'. Received: method={method!r}"
            )
        results = []
        for start in range(0, len(features), batch_size):
            chunk = ops.convert_to_tensor(features[start : start + batch_size])
            count = int(chunk.shape[0])
            state = {
                "decoder": self.decoder.initial_state(chunk),
                "features": chunk,
                "projected": self.decoder.project_features(chunk),
            }

            arguments = dict(
                step_fn=compiled_inference(self, type(self).decode_step),
                initial_state=state,
                batch_size=count,
                start_id=START,
                end_id=END,
                # The searches count the end token too.
                max_length=max_words + 1,
            )
            if method == "greedy":
                found = decoding.greedy_search(**arguments)
            else:
                found = decoding.beam_search(
                    **arguments, beam_width=beam_width, length_penalty=length_penalty
                )
            results += _token_lists(found)
        return [
            [int(t) for t in seq if t not in (PAD, START)][:max_words] for seq in results
        ]

    def caption(self, images=None, features=None, **options):
        """Captions as strings, one per image."""
        ids = self.generate(images=images, features=features, **options)
        return [self.vocabulary.decode(seq) for seq in ids]

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": list(self.vocabulary.words),
            "image_size": self.image_size,
            "encoder": self.encoder.backbone_name,
            "encoder_weights": "none",
            "fine_tune_encoder": self.encoder.fine_tune,
            "encoder_filters": self.encoder.filters,
            "cell": self.decoder.cell_name,
            "units": self.decoder.units,
            "embedding_dim": self.decoder.embedding_dim,
            "attention_units": self.decoder.attention_units,
            "num_layers": self.decoder.num_layers,
            "dropout": self.decoder.dropout,
            "max_length": self.max_length,
        }


def _token_lists(found):
    """Normalises what a `keras_gated.decoding` search returns to id lists."""
    import numpy as np

    if isinstance(found, dict):
        found = found.get("tokens", found.get("sequences"))
    elif isinstance(found, tuple):
        found = found[0]
    rows = []
    for row in found:
        row = keras.ops.convert_to_numpy(row) if not isinstance(row, list) else row
        row = np.asarray(row).reshape(-1).tolist()
        if END in row:
            row = row[: row.index(END)]
        rows.append(row)
    return rows


def caption_loss():
    """Cross-entropy of the next word; padding positions do not count."""
    return sparse_crossentropy(ignore_class=PAD)


class CaptionHyperModel(GatedHyperModel):
    """Builds an `ImageCaptioner` for a trial.

    On top of `GatedHyperModel`'s space (cell, units, num_layers, dropout,
    learning_rate, optimizer, clipnorm) it tunes `embedding_dim` and
    `attention_units`. `bidirectional` and `recurrent_dropout` are fixed
    (False, 0.0): a decoder that writes left to right cannot be
    bidirectional, and `dropout` acts on the embeddings and the deep output.

    When the data were encoded once by a frozen backbone (`data.inputs` are
    cached features), every trial's encoder gets that backbone's weights, so
    the saved model's encoder is the one the decoder was trained on.
    """

    def __init__(self, data, overrides=()):
        self.data = data
        super().__init__(overrides, name="captioning")

    def add_hparams(self, space):
        space.int("units", 32, 256, step=32, default=128)
        space.int("embedding_dim", 32, 256, step=32, default=64)
        space.int("attention_units", 32, 256, step=32, default=64)
        space.float("dropout", 0.0, 0.5, step=0.1, default=0.0)
        space.fixed("bidirectional", False)
        space.fixed("recurrent_dropout", 0.0)

    def build(self, hp):
        config = self.data.config
        r = self.recurrent_hparams(hp)
        model = ImageCaptioner(
            self.data.vocabulary,
            image_size=config.image_size,
            encoder=config.encoder,
            encoder_weights=config.encoder_weights,
            fine_tune_encoder=config.fine_tune_encoder,
            encoder_filters=config.encoder_filters,
            cell=r["cell"],
            units=r["units"],
            num_layers=r["num_layers"],
            dropout=r["dropout"],
            embedding_dim=self.space.get(hp, "embedding_dim"),
            attention_units=self.space.get(hp, "attention_units"),
            max_length=config.max_length,
        )
        if self.data.encoder_weights is not None:
            model.encoder.set_weights(self.data.encoder_weights)
        return self.compile(model, hp, caption_loss(), jit_compile=graph_without_xla())
