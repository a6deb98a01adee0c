"""The translation model: the hypermodel over `keras_gated.seq2seq.Seq2Seq`, the
`Translator` of a trained model, and BLEU/chrF scoring (sacrebleu)."""

import keras

from keras_gated.cells import available_cells
from keras_gated.seq2seq import END_ID
from keras_gated.seq2seq import START_ID
from keras_gated.seq2seq import UNK_ID
from keras_gated.seq2seq import Seq2Seq
from keras_gated.tasks.common import corpus_bleu
from keras_gated.tasks.common import corpus_chrf
from keras_gated.tasks.common.compiled import compiled_inference
from keras_gated.tasks.translation.data import TextSide
from keras_gated.tasks.translation.data import pad
from keras_gated.tuning import GatedHyperModel
from keras_gated.tuning.hypermodel import graph_without_xla

BLEU_TOKENIZERS = {"word": "13a", "char": "char"}

#: Defaults of `learning_rate`, `warmup_steps` and `label_smoothing`, chosen
#: by time to quality (benchmarks/time_to_quality.py, docs/benchmarks.md
#: "Time to quality").
TRANSLATION_LEARNING_RATE = 3e-3
TRANSLATION_WARMUP_STEPS = 0
TRANSLATION_LABEL_SMOOTHING = 0.1
#: The default cell, chosen by the same measurement: the coupled (CIFG)
#: LSTM reached the sample's BLEU 100 one epoch before Keras's LSTM and runs
#: its steps on this package's fused loop on every backend.
TRANSLATION_CELL = "coupled"


class Translator:
    """Translates raw sentences with a trained `keras_gated.seq2seq.Seq2Seq`.

    The model's `metadata` holds the tokenizers and vocabularies (the task
    puts them there), so a saved `.keras` file is all a translator needs.

    Example:

    >>> translator = Translator.load("best_model.keras")
    >>> translator.translate(["I need a taxi."], beam_width=4)
    ['Mi taksio un beza.']
    """

    def __init__(self, model):
        metadata = model.metadata
        if "source" not in metadata or "target" not in metadata:
            raise ValueError(
                "This Seq2Seq model carries no vocabularies in its metadata; "
                "build it with the translation task (or pass "
                "metadata={'source': ..., 'target': ...})."
            )
        self.model = model
        self.source = TextSide.from_metadata(metadata["source"])
        self.target = TextSide.from_metadata(metadata["target"])
        self.max_length = int(metadata.get("max_length") or 64)

    @classmethod
    def load(cls, path):
        """Loads a `.keras` file saved by the translation task."""
        from keras_gated.seq2seq import Seq2Seq
        from keras_gated.tasks.base import load_saved_model

        return cls(load_saved_model(path, Seq2Seq, made_by="keras-gated train|tune translation"))

    def save(self, path):
        self.model.save(path)

    def step_fn(self):
        """The model's `step_fn`, compiled for the backend (`compiled_inference`).

        One compiled function per model, shared by every `Translator` of it
        (the validation-BLEU callback makes one per epoch).
        """
        return compiled_inference(self.model, type(self.model).step_fn)

    def translate_ids(self, sources, beam_width=1, length_penalty=0.6, max_length=None,
                      batch_size=64):
        """Token ids of the translations of `sources` (lists of source ids)."""
        from keras_gated import decoding

        max_length = max_length or self.max_length + 10
        results = [None] * len(sources)
        # Sorting by length keeps padding, and so wasted work, small.
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            # An empty source becomes one unknown token: attention needs a position.
            batch = pad([sources[i] or [UNK_ID] for i in rows])
            encoded = compiled_inference(self.model, type(self.model).encode)(batch)
            if beam_width == 1:
                tokens, _ = decoding.greedy_search(
                    self.step_fn(), encoded, len(rows), START_ID, END_ID, max_length
                )
            else:
                tokens, _ = decoding.beam_search(
                    self.step_fn(), encoded, len(rows), START_ID, END_ID, max_length,
                    beam_width=beam_width, length_penalty=length_penalty,
                )
            for row, ids in zip(rows, decoding.strip_special(tokens, END_ID)):
                results[row] = ids
        return results

    def translate(self, sentences, beam_width=1, length_penalty=0.6, max_length=None,
                  batch_size=64):
        """Translations of raw `sentences` (a list of strings).

        Args:
            sentences: Source sentences.
            beam_width: 1 for greedy search, more for beam search.
            length_penalty: GNMT alpha of beam search (0: none).
            max_length: Most target tokens (default: the training limit + 10).
            batch_size: Sentences decoded together.
        """
        if isinstance(sentences, str):
            raise ValueError("`sentences` must be a list of strings, not one string.")
        ids = [self.source.encode(s, self.max_length) for s in sentences]
        out = self.translate_ids(ids, beam_width, length_penalty, max_length, batch_size)
        return [self.target.decode(o) for o in out]


def corpus_scores(hypotheses, references, target_split="word"):
    """Corpus BLEU and chrF (sacrebleu) of detokenized hypotheses.

    `references[i]` is the list of references of `hypotheses[i]`. BLEU is
    computed with sacrebleu's `13a` tokenizer for word-split targets and its
    `char` tokenizer for character-split ones (Chinese, Japanese).
    """
    bleu = corpus_bleu(hypotheses, references, tokenize=BLEU_TOKENIZERS[target_split])
    chrf = corpus_chrf(hypotheses, references)
    return {"bleu": float(bleu.score), "chrf": float(chrf.score), "bleu_signature": str(bleu)}


def evaluate_translator(translator, sources, references, beam_width=4, length_penalty=0.6,
                        examples=5, batch_size=64):
    """BLEU and chrF of `translator` on `sources` against `references`.

    References are normalised the way the model's target tokenizer
    normalises text (whitespace, lowercase), so that lowercasing models are
    compared with lowercased references. Returns a dict with `bleu`, `chrf`,
    `count` and `examples` (source, references, translation).
    """
    hypotheses = translator.translate(
        sources, beam_width=beam_width, length_penalty=length_penalty, batch_size=batch_size
    )
    normalize = translator.target.tokenizer.normalize
    references = [[normalize(r) for r in refs] for refs in references]
    scores = corpus_scores(hypotheses, references, translator.target.tokenizer.split)
    return {
        **scores,
        "count": len(sources),
        "beam_width": beam_width,
        "length_penalty": length_penalty,
        "examples": [
            {"source": s, "references": r, "translation": h}
            for s, r, h in list(zip(sources, references, hypotheses))[:examples]
        ],
    }


class BleuCallback(keras.callbacks.Callback):
    """Greedy-decodes validation sentences at the end of every epoch into `val_bleu` / `val_chrf`.

    Place it before callbacks that read the logs (TensorBoard, the tuner's
    own): `TranslationHyperModel.fit` does.
    """

    def __init__(self, sources, references, max_sentences=500, batch_size=64):
        super().__init__()
        self.sources = sources[:max_sentences]
        self.references = references[:max_sentences]
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        result = evaluate_translator(
            Translator(self.model), self.sources, self.references,
            beam_width=1, examples=0, batch_size=self.batch_size,
        )
        logs["val_bleu"] = result["bleu"]
        logs["val_chrf"] = result["chrf"]


def bleu_callback(sources, references, max_sentences=500, batch_size=64):
    """A `BleuCallback` that writes `val_bleu` / `val_chrf` into the epoch logs."""
    return BleuCallback(sources, references, max_sentences, batch_size)


class TranslationHyperModel(GatedHyperModel):
    """Seq2Seq with the cell, sizes, attention and optimizer as hyperparameters.

    Makes `coupled` the default cell (`TRANSLATION_CELL`) and adds to
    `GatedHyperModel`'s space: `embedding_dim` (16-256, default 64), `attention` (additive, dot, none) and `warmup_steps` (default 0,
    see `GatedHyperModel.add_warmup`), and widens `learning_rate` to 3e-2. `bleu_data=(sources,
    references)` adds `val_bleu` / `val_chrf` to every epoch's logs (the
    tuner objective `val_bleu` needs it).
    """

    def __init__(self, source_vocab_size, target_vocab_size, metadata,
                 overrides=(), bleu_data=None):
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.metadata = metadata
        self.bleu_data = bleu_data
        super().__init__(overrides, name="translation")

    def add_hparams(self, space):
        space.choice("cell", available_cells(), default=TRANSLATION_CELL)
        space.int("embedding_dim", 16, 256, step=16, default=64)
        space.choice("attention", ["additive", "dot", "none"])
        self.add_warmup(space, default=TRANSLATION_WARMUP_STEPS)
        space.float("learning_rate", 1e-4, 3e-2, sampling="log", default=TRANSLATION_LEARNING_RATE)
        space.float("label_smoothing", 0.0, 0.2, default=TRANSLATION_LABEL_SMOOTHING)

    def build(self, hp):
        r = self.recurrent_hparams(hp)
        model = Seq2Seq(
            self.source_vocab_size,
            self.target_vocab_size,
            cell=r["cell"],
            units=r["units"],
            embedding_dim=self.space.get(hp, "embedding_dim"),
            num_layers=r["num_layers"],
            bidirectional=r["bidirectional"],
            attention=self.space.get(hp, "attention"),
            dropout=r["dropout"],
            recurrent_dropout=r["recurrent_dropout"],
            metadata=self.metadata,
        )
        model.build()
        loss = Seq2Seq.loss_function(self.space.get(hp, "label_smoothing"))
        return self.compile(model, hp, loss, jit_compile=graph_without_xla())

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        if self.bleu_data is not None:
            callbacks.insert(0, bleu_callback(*self.bleu_data))
        return model.fit(*args, callbacks=callbacks, **kwargs)
