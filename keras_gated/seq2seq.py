"""Encoder-decoder with attention whose recurrent blocks are any gated cell.

`Seq2Seq` is a `keras.Model`: trained with teacher forcing on
`(source_tokens, decoder_input_tokens)` pairs, and run one step at a time at
inference through `encode` and `decode_step`, which use the very same layers
(so they share the weights). `Seq2Seq.step_fn` adapts the pair to the
model-agnostic searches of `keras_gated.decoding`.

Architecture (Luong, Pham & Manning 2015, "global attention"):

    e_1..e_S = Encoder(embed(x))                 # stacked, optionally bidirectional
    s_0      = tanh(W_b mean_s(e_s) + b_b)       # one bridge per decoder state tensor
    h_t      = Decoder(embed(y_{t-1}), h_{t-1})  # stacked, the same cell type
    a_t      = softmax_s(score(h_t, e_s))        # masked over source padding
    c_t      = Σ_s a_ts e_s
    h̃_t      = tanh(W_c [c_t; h_t])
    p(y_t)   = softmax(W_o h̃_t + b_o)

Score functions (`attention`):

* `"additive"` (Bahdanau, Cho & Bengio 2015): `v^T tanh(W_q h_t + W_k e_s)`,
  `keras.layers.AdditiveAttention` on projected queries and keys.
* `"dot"` (Luong's "general"): `h_t^T W_k e_s`, `keras.layers.Attention` on
  the raw queries and projected keys.
* `"none"`: no attention (`h̃_t = h_t`), the baseline that shows what
  attention adds when the word order differs.

The attention reads the decoder's top-layer output after the recurrence
(Luong's placement, without input feeding) also for the additive score:
training then runs the whole target sequence through the recurrent layers
in one call, and step-by-step decoding computes exactly the same numbers
as the teacher-forced pass.

Example:

>>> model = Seq2Seq(source_vocab_size=500, target_vocab_size=400,
...                 cell="peephole", units=128, num_layers=2,
...                 bidirectional=True, attention="additive")
>>> model.compile("adam", loss=model.loss_function())
>>> model.fit((source, decoder_inputs), decoder_targets)
>>> tokens, scores = beam_search(model.step_fn, model.encode(source),
...                              batch_size=len(source), start_id=2, end_id=3,
...                              max_length=40, beam_width=4)
"""

import keras
from keras import layers
from keras import ops
from keras import tree

from keras_gated.cells import NATIVE_STACKS
from keras_gated.cells import check_cell
from keras_gated.cells import stack_layers
from keras_gated.cells import stack_size
from keras_gated.losses import sparse_crossentropy

# Token ids every vocabulary of this module reserves.
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3

ATTENTIONS = ("additive", "dot", "none")


def recurrent_layers(
    cell,
    units,
    num_layers=1,
    dropout=0.0,
    recurrent_dropout=0.0,
    return_state=False,
    name="rnn",
    **cell_options,
):
    """The recurrent layers of a `num_layers`-deep stack of `cell`, all returning sequences.

    `keras_gated.cells.stack_layers` with the names `Seq2Seq` gives its
    layers: `name` for a native stack (`"depth_gated"`, `"grid"`, one layer
    whose levels are computed inside one time step), `name_0`, `name_1`, ...
    for the separate layers of any other cell (with dropout between them in
    `Seq2Seq`).
    """
    size = stack_size(cell, num_layers)
    names = [name] if cell in NATIVE_STACKS else [f"{name}_{index}" for index in range(size)]
    return stack_layers(
        cell,
        units,
        num_layers,
        return_sequences=True,
        return_state=return_state,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        names=names,
        **cell_options,
    )


def _state_sizes(layer):
    sizes = layer.cell.state_size
    return [int(size) for size in tree.flatten(sizes)] if tree.is_nested(
        sizes
    ) else [int(sizes)]


@keras.saving.register_keras_serializable(package="keras_gated")
class Seq2Seq(keras.Model):
    """Attention encoder-decoder over any recurrent cell (see module doc).

    Args:
        source_vocab_size: Size of the source vocabulary (id 0 is padding).
        target_vocab_size: Size of the target vocabulary (ids 0, 2 and 3 are
            padding, start and end of sentence).
        cell: Recurrent block of encoder and decoder, a name from
            `keras_gated.tuning.available_cells()`:
            Keras's `"lstm"` and `"gru"` (baselines), or this package's
            `"peephole"`, `"coupled"`, `"untied"`, `"depth_gated"`, `"grid"`.
        units: Width of the recurrent state of every layer (an encoder
            layer has `units` per direction when bidirectional).
        embedding_dim: Width of the token embeddings. Default: `units`.
        num_layers: Depth of encoder and decoder (for `"depth_gated"` and
            `"grid"` the depth inside their one layer).
        bidirectional: Whether the encoder reads the source both ways.
        attention: `"additive"`, `"dot"` or `"none"`.
        attention_units: Width of the additive score's projections.
            Default: `units`.
        dropout: Dropout on embeddings and between layers, and on the
            cells' inputs.
        recurrent_dropout: Dropout on the cells' recurrent state.
        cell_options: Extra keyword arguments for every recurrent layer
            (e.g. `{"peepholes": "fo"}`).
        metadata: JSON-serializable dict saved with the model; the
            translation task keeps its vocabularies and tokenizer settings
            here, so one `.keras` file translates raw text.
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        cell="lstm",
        units=64,
        embedding_dim=None,
        num_layers=1,
        bidirectional=False,
        attention="additive",
        attention_units=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        cell_options=None,
        metadata=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("source_vocab_size", source_vocab_size),
            ("target_vocab_size", target_vocab_size),
            ("units", units),
            ("num_layers", num_layers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"`{name}` must be a positive integer. Received: "
                    f"{name}={value!r}"
                )
        if target_vocab_size <= END_ID:
            raise ValueError(
                "`target_vocab_size` must exceed 3: ids 0-3 are padding, "
                "unknown, start and end. Received: "
                f"target_vocab_size={target_vocab_size}"
            )
        if attention not in ATTENTIONS:
            raise ValueError(
                f"Unknown `attention`: {attention!r}. Accepted values: "
                f"{', '.join(ATTENTIONS)}."
            )
        check_cell(cell)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.cell = cell
        self.units = units
        self.embedding_dim = embedding_dim or units
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.attention = attention
        self.attention_units = attention_units or units
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.cell_options = dict(cell_options or {})
        self.metadata = dict(metadata or {})

        rnn_args = dict(
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            **self.cell_options,
        )
        self.source_embedding = layers.Embedding(
            source_vocab_size, self.embedding_dim, name="source_embedding"
        )
        self.target_embedding = layers.Embedding(
            target_vocab_size, self.embedding_dim, name="target_embedding"
        )
        self.encoder_layers = recurrent_layers(
            cell, units, num_layers, name="encoder", **rnn_args
        )
        if self.bidirectional:
            self.encoder_layers = [
                layers.Bidirectional(layer, name=f"bidirectional_{layer.name}")
                for layer in self.encoder_layers
            ]
        self.decoder_layers = recurrent_layers(
            cell, units, num_layers, return_state=True, name="decoder", **rnn_args
        )
        self.decoder_state_sizes = [_state_sizes(l) for l in self.decoder_layers]
        self.bridges = [
            [
                layers.Dense(size, activation="tanh", name=f"bridge_{i}_{j}")
                for j, size in enumerate(sizes)
            ]
            for i, sizes in enumerate(self.decoder_state_sizes)
        ]
        self.dropout_layer = layers.Dropout(self.dropout)
        if attention == "additive":
            self.query_projection = layers.Dense(
                self.attention_units, use_bias=False, name="attention_query"
            )
            self.key_projection = layers.Dense(
                self.attention_units, use_bias=False, name="attention_key"
            )
            self.attention_layer = layers.AdditiveAttention(name="attention")
        elif attention == "dot":
            self.query_projection = None
            self.key_projection = layers.Dense(
                units, use_bias=False, name="attention_key"
            )
            self.attention_layer = layers.Attention(name="attention")
        if attention != "none":
            self.attention_combine = layers.Dense(
                units, activation="tanh", name="attention_combine"
            )
        # float32 logits keep the softmax and the loss stable under a
        # mixed-precision policy.
        self.output_projection = layers.Dense(
            target_vocab_size, name="logits", dtype="float32"
        )

    def get_config(self):
        return {
            "name": self.name,
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            "cell": self.cell,
            "units": self.units,
            "embedding_dim": self.embedding_dim,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "attention": self.attention,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "cell_options": self.cell_options,
            "metadata": self.metadata,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Variables are created by one forward pass on a dummy batch, so a
    # loaded model is complete before its weights are read.
    def build(self, input_shape=None):
        if self.built:
            return
        dummy = ops.ones((1, 2), dtype="int32")
        self._forward(dummy, dummy, training=False)
        self.built = True

    def get_build_config(self):
        return {"built": True}

    def build_from_config(self, config):
        self.build()

    def encode(self, source, training=False):
        """Runs the encoder: returns the decoder's initial search state.

        `source`: int tokens `(B, S)`, 0-padded. The result is a dict of
        arrays with leading dimension B: `memory` (encoder outputs), `keys`
        (their attention projection), `mask` (the source positions that are
        not padding) and `states` (the decoder's initial states, a list per
        layer), ready for `decode_step` and the searches of
        `keras_gated.decoding`.
        """
        source = ops.convert_to_tensor(source, dtype="int32")
        mask = ops.not_equal(source, PAD_ID)
        x = self.dropout_layer(self.source_embedding(source), training=training)
        for index, layer in enumerate(self.encoder_layers):
            x = layer(x, mask=mask, training=training)
            if index < len(self.encoder_layers) - 1:
                x = self.dropout_layer(x, training=training)
        memory = x
        weights = ops.expand_dims(ops.cast(mask, memory.dtype), -1)
        summary = ops.sum(memory * weights, axis=1) / ops.maximum(
            ops.sum(weights, axis=1), 1.0
        )
        states = [[bridge(summary) for bridge in bridges] for bridges in self.bridges]
        if self.attention == "none":
            keys = memory[:, :, :1]
        else:
            keys = self.key_projection(memory)
        return {"memory": memory, "keys": keys, "mask": mask, "states": states}

    def decode(self, target_inputs, encoded, training=False, return_attention=False):
        """Teacher-forced decoder pass: logits `(B, T, V)` and final states.

        `target_inputs` are the previous tokens `(B, T)` (start token first);
        `encoded` comes from `encode`. Causal: position t depends only on
        `target_inputs[:, :t + 1]`, so running T steps of length one with
        the returned states gives the same logits.
        """
        target_inputs = ops.convert_to_tensor(target_inputs, dtype="int32")
        x = self.dropout_layer(self.target_embedding(target_inputs), training=training)
        new_states = []
        for index, (layer, states) in enumerate(
            zip(self.decoder_layers, encoded["states"])
        ):
            outputs = layer(x, initial_state=list(states), training=training)
            x, layer_states = outputs[0], list(outputs[1:])
            new_states.append(layer_states)
            if index < len(self.decoder_layers) - 1:
                x = self.dropout_layer(x, training=training)
        scores = None
        if self.attention != "none":
            query = x
            if self.query_projection is not None:
                query = self.query_projection(x)
            context = self.attention_layer(
                [query, encoded["memory"], encoded["keys"]],
                mask=[None, encoded["mask"]],
                return_attention_scores=return_attention,
                training=training,
            )
            if return_attention:
                context, scores = context
            x = self.attention_combine(ops.concatenate([context, x], axis=-1))
        x = self.dropout_layer(x, training=training)
        logits = self.output_projection(x)
        if return_attention:
            return logits, new_states, scores
        return logits, new_states

    def _forward(self, source, target_inputs, training=False):
        logits, _ = self.decode(
            target_inputs, self.encode(source, training=training), training=training
        )
        return logits

    def call(self, inputs, training=False):
        """`inputs`: `(source, target_inputs)` or a dict with those keys."""
        if isinstance(inputs, dict):
            source, target_inputs = inputs["source"], inputs["target_inputs"]
        else:
            source, target_inputs = inputs
        return self._forward(source, target_inputs, training=training)

    def decode_step(self, prev_tokens, encoded):
        """One inference step: `(logits (N, V), new encoded state)`."""
        prev_tokens = ops.reshape(ops.convert_to_tensor(prev_tokens, "int32"), (-1, 1))
        logits, states = self.decode(prev_tokens, encoded, training=False)
        return logits[:, 0], {**encoded, "states": states}

    def step_fn(self, prev_tokens, encoded):
        """`decode_step` with log-probabilities, for `keras_gated.decoding`."""
        logits, encoded = self.decode_step(prev_tokens, encoded)
        return ops.log_softmax(logits, axis=-1), encoded

    @staticmethod
    def loss_function(label_smoothing=0.0):
        """Cross-entropy on logits that ignores padded target positions.

        `label_smoothing` ε > 0 trains against `(1 - ε) one_hot(y) + ε / V`
        (`keras_gated.losses.SmoothedSparseCrossentropy`).
        """
        return sparse_crossentropy(label_smoothing, ignore_class=PAD_ID)
