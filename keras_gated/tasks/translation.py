"""Translation task: attention encoder-decoder, beam search, BLEU and chrF.

    keras-gated tune translation --data sample --max-trials 4
    keras-gated train translation --data pairs.tsv --source-column 1 --target-column 0
    keras-gated evaluate translation --model runs/translation/best_model.keras
    keras-gated translate --model runs/translation/best_model.keras < sentences.txt

Data (`--data`):

* `sample`: the embedded travel-phrase corpus (English -> Kelvan, a
  language made up for this project with verb-final order, postpositions and
  adjectives after nouns; see `keras_gated.tasks.travel_phrases`);
* a local file of sentence pairs, one pair per line, tab-separated
  (`source<TAB>target`; extra columns, such as the attribution columns of
  Tatoeba / Anki exports, are ignored). `--source-column` and
  `--target-column` pick the columns, so they also choose the direction;
* a tensorflow-datasets translation set by name (e.g.
  `ted_hrlr_translate/pt_to_en`); the columns are then its language codes
  (default: its supervised keys). Without network and without the prepared
  dataset in `--tfds-dir`, this fails at once with a message.

Sentence pairs are grouped by source sentence (several translations of one
sentence become several references) and the groups split into train,
validation and test; the test split never reaches the tuner.

The Python API:

    from keras_gated.tasks.translation import Translator
    translator = Translator.load("runs/translation/best_model.keras")
    translator.translate(["Where is the station?"], beam_width=4)
"""

import dataclasses
import os
import random
import sys
import weakref

import numpy as np

from keras_gated.seq2seq import END_ID
from keras_gated.seq2seq import UNK_ID
from keras_gated.seq2seq import START_ID
from keras_gated.tasks import Command
from keras_gated.tasks import DataError
from keras_gated.tasks.base import Task
# One offline check for every task (`KERAS_GATED_OFFLINE=1` forces it).
from keras_gated.tasks.base import prepared_tfds_builder
from keras_gated.text import Tokenizer
from keras_gated.text import Vocabulary

BLEU_TOKENIZERS = {"word": "13a", "char": "char"}
_COMPILED_STEPS = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------- data


def read_pairs(path, source_column=0, target_column=1):
    """Reads `source<TAB>target` sentence pairs from a UTF-8 text file.

    Blank lines are skipped; columns beyond the two chosen are ignored.

    Raises:
        DataError: the file is missing or empty, a line has no tab, a line
            has fewer columns than `source_column` / `target_column` ask
            for, or a chosen column is empty. The message names the file
            and the line.
    """
    for name, value in (("source_column", source_column), ("target_column", target_column)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(
                f"--{name.replace('_', '-')} must be a column index (0 for the "
                f"first column) for a file of pairs; got {value!r}."
            )
    if source_column == target_column:
        raise DataError(
            f"--source-column and --target-column are both {source_column}: "
            "choose two different columns."
        )
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file of sentence pairs.")
    pairs = []
    needed = max(source_column, target_column) + 1
    with open(path, encoding="utf-8") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({error}).") from None
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) == 1:
            raise DataError(
                f"{path}, line {number}: no tab. Each line must be "
                f"source<TAB>target; found {_preview(line)}."
            )
        if len(columns) < needed:
            raise DataError(
                f"{path}, line {number}: {len(columns)} columns, but "
                f"--source-column {source_column} / --target-column "
                f"{target_column} need {needed} (columns count from 0)."
            )
        source, target = columns[source_column].strip(), columns[target_column].strip()
        if not source or not target:
            which = "source" if not source else "target"
            raise DataError(
                f"{path}, line {number}: the {which} column "
                f"({source_column if which == 'source' else target_column}) is empty."
            )
        pairs.append((source, target))
    if not pairs:
        raise DataError(
            f"{path}: the file is empty; it must hold source<TAB>target lines."
        )
    return pairs


def _preview(line, width=60):
    return repr(line if len(line) <= width else line[:width] + "...")


def read_tfds_pairs(name, data_dir=None, source_column=None, target_column=None,
                    max_pairs=None):
    """Sentence pairs of every split of a tensorflow-datasets translation set.

    `source_column` / `target_column` are feature names (language codes);
    default: the set's supervised keys.

    Raises:
        DataError: unknown name; not prepared and no network (at once); a
            language that is not a feature.
    """
    import tensorflow_datasets as tfds

    def offline(where):
        return (
            f"Cannot get the tensorflow-datasets set {name!r}: it is not prepared "
            f"in {where} and this machine cannot reach the download server. Use the "
            "embedded sample (--data sample), a local file of source<TAB>target lines "
            "(--data pairs.tsv), or prepare the set on a machine with network access "
            "and pass --tfds-dir."
        )

    builder = prepared_tfds_builder(name, data_dir, offline)
    keys = builder.info.supervised_keys or ()
    features = list(builder.info.features)
    source_key = source_column if source_column is not None else (keys[0] if keys else None)
    target_key = target_column if target_column is not None else (keys[1] if keys else None)
    for key, option in ((source_key, "--source-column"), (target_key, "--target-column")):
        if key not in features:
            raise DataError(
                f"{name} has no language {key!r}; its features are {features}. "
                f"Set {option}."
            )
    pairs = []
    for split in builder.info.splits:
        dataset = builder.as_dataset(split=split)
        for example in tfds.as_numpy(dataset):
            pairs.append(
                (
                    example[source_key].decode("utf-8").strip(),
                    example[target_key].decode("utf-8").strip(),
                )
            )
            if max_pairs and len(pairs) >= max_pairs:
                return pairs
    return pairs


@dataclasses.dataclass
class Splits:
    """Train / validation / test sentence pairs and the test references.

    `test_sources[i]` has the references `test_references[i]` (every
    target paired with that source). `val_*` likewise.
    """

    train: list
    val: list
    test: list
    val_sources: list
    val_references: list
    test_sources: list
    test_references: list
    description: str


def split_pairs(pairs, val_fraction=0.1, test_fraction=0.1, seed=1, description=""):
    """Groups pairs by source sentence, shuffles the groups, splits them.

    All translations of a source sentence land in one split, so a test
    sentence is never seen in training, and its several translations are
    its references.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"--{name.replace('_', '-')} must be in [0, 1); got {value}.")
    if val_fraction + test_fraction >= 1.0:
        raise DataError("--val-fraction plus --test-fraction must leave pairs for training.")
    groups = {}
    for source, target in pairs:
        groups.setdefault(source, [])
        if target not in groups[source]:
            groups[source].append(target)
    sources = sorted(groups)
    random.Random(seed).shuffle(sources)
    n_test = int(round(len(sources) * test_fraction))
    n_val = int(round(len(sources) * val_fraction))
    if len(sources) - n_test - n_val < 1 or (test_fraction and not n_test) or (
        val_fraction and not n_val
    ):
        raise DataError(
            f"Too few distinct source sentences ({len(sources)}) to split into "
            "train, validation and test."
        )
    test_sources = sources[:n_test]
    val_sources = sources[n_test:n_test + n_val]
    train_sources = sources[n_test + n_val:]

    def flat(keys):
        return [(s, t) for s in keys for t in groups[s]]

    return Splits(
        train=flat(train_sources),
        val=flat(val_sources),
        test=flat(test_sources),
        val_sources=val_sources,
        val_references=[groups[s] for s in val_sources],
        test_sources=test_sources,
        test_references=[groups[s] for s in test_sources],
        description=description,
    )


def load_pairs(data="sample", source_column=None, target_column=None, tfds_dir=None,
               max_pairs=None, sample_size=None):
    """Sentence pairs from `--data`: "sample", a file, or a tfds name.

    Returns `(pairs, description)`.
    """
    if data == "sample":
        from keras_gated.tasks import travel_phrases

        pairs = travel_phrases.generate(sample_size or travel_phrases.SAMPLE_SIZE)
        source_column = 0 if source_column is None else int(source_column)
        target_column = 1 if target_column is None else int(target_column)
        if {source_column, target_column} != {0, 1}:
            raise DataError(
                "The sample has two columns, 0 (English) and 1 (Kelvan); "
                f"got --source-column {source_column} --target-column {target_column}."
            )
        pairs = [(p[source_column], p[target_column]) for p in pairs]
        description = "sample travel phrases, " + (
            "English -> Kelvan" if source_column == 0 else "Kelvan -> English"
        )
    elif os.path.exists(data) or os.path.splitext(data)[1] in (".tsv", ".txt", ".tab"):
        pairs = read_pairs(
            data,
            _column_index(source_column, 0, "--source-column"),
            _column_index(target_column, 1, "--target-column"),
        )
        description = f"file {data}"
    else:
        pairs = read_tfds_pairs(data, tfds_dir, source_column, target_column, max_pairs)
        description = f"tfds:{data}"
    if max_pairs:
        pairs = pairs[:max_pairs]
    return pairs, description


def _column_index(value, default, option):
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{option} must be a column index (0, 1, 2, ...) for a file of "
            f"pairs; got {value!r}."
        ) from None


# ------------------------------------------------------------ text <-> ids


@dataclasses.dataclass
class TextSide:
    """Tokenizer and vocabulary of one side (source or target)."""

    tokenizer: Tokenizer
    vocabulary: Vocabulary

    def encode(self, sentence, max_length=None):
        ids = self.vocabulary.encode(self.tokenizer.tokenize(sentence))
        return ids[:max_length] if max_length else ids

    def decode(self, ids):
        return self.tokenizer.detokenize(self.vocabulary.decode(ids))

    def to_metadata(self):
        return {"tokenizer": self.tokenizer.get_config(), "vocabulary": self.vocabulary.tokens}

    @classmethod
    def from_metadata(cls, metadata):
        return cls(Tokenizer.from_config(metadata["tokenizer"]), Vocabulary(metadata["vocabulary"]))

    @classmethod
    def fit(cls, sentences, split="word", lowercase=False, max_size=None):
        tokenizer = Tokenizer(split, lowercase)
        vocabulary = Vocabulary.build(
            [tokenizer.tokenize(s) for s in sentences], max_size=max_size
        )
        return cls(tokenizer, vocabulary)


def pad(sequences, length=None):
    """Right-pads lists of ids with 0 into an int32 array."""
    length = length or max(1, max((len(s) for s in sequences), default=1))
    array = np.zeros((len(sequences), length), dtype="int32")
    for row, ids in enumerate(sequences):
        ids = ids[:length]
        array[row, : len(ids)] = ids
    return array


def pairs_within(pairs, source_side, target_side, max_length):
    """The pairs whose sides both have at most `max_length` tokens (all of them without a limit).

    `make_arrays(pairs, ..., drop_longer=True)` keeps these, in this order.
    """
    if not max_length:
        return list(pairs)
    return [
        (source, target)
        for source, target in pairs
        if len(source_side.encode(source)) <= max_length and len(target_side.encode(target)) <= max_length
    ]


def make_arrays(pairs, source_side, target_side, max_length=None, drop_longer=False):
    """`((source, decoder_inputs), decoder_targets)` arrays for `fit`.

    Decoder inputs are `<s> y`, targets `y </s>`, both 0-padded. With
    `drop_longer`, pairs with a side longer than `max_length` tokens are left
    out instead of truncated (for training).
    """
    sources, targets = [], []
    for source, target in pairs:
        source_ids = source_side.encode(source)
        target_ids = target_side.encode(target)
        if max_length and (len(source_ids) > max_length or len(target_ids) > max_length):
            if drop_longer:
                continue
            source_ids, target_ids = source_ids[:max_length], target_ids[:max_length]
        sources.append(source_ids)
        targets.append(target_ids)
    if not sources:
        raise DataError(
            f"No sentence pair is at most {max_length} tokens long; raise --max-length."
        )
    decoder_inputs = pad([[START_ID] + t for t in targets])
    decoder_targets = pad([t + [END_ID] for t in targets])
    return (pad(sources), decoder_inputs), decoder_targets


# --------------------------------------------------------------- translator


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
        """The model's `step_fn`, compiled with `tf.function` on TensorFlow.

        One compiled function per model, shared by every `Translator` of it
        (the validation-BLEU callback makes one per epoch).
        """
        import keras

        if keras.backend.backend() != "tensorflow":
            return self.model.step_fn
        if self.model not in _COMPILED_STEPS:
            import tensorflow as tf

            _COMPILED_STEPS[self.model] = tf.function(
                self.model.step_fn, reduce_retracing=True
            )
        return _COMPILED_STEPS[self.model]

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
            encoded = self.model.encode(batch)
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
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics import CHRF

    width = max((len(r) for r in references), default=1)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    bleu = BLEU(tokenize=BLEU_TOKENIZERS[target_split]).corpus_score(hypotheses, streams)
    chrf = CHRF().corpus_score(hypotheses, streams)
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


# ---------------------------------------------------------------- training


def bleu_callback(sources, references, max_sentences=500, batch_size=64):
    """A Keras callback that writes `val_bleu` / `val_chrf` into the epoch logs.

    Place it before callbacks that read the logs (TensorBoard, the tuner's
    own): `TranslationHyperModel.fit` does.
    """
    import keras

    class BleuCallback(keras.callbacks.Callback):
        """Greedy-decodes the validation sentences at the end of every epoch."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            translator = Translator(self.model)
            result = evaluate_translator(
                translator, sources[:max_sentences], references[:max_sentences],
                beam_width=1, examples=0, batch_size=batch_size,
            )
            logs["val_bleu"] = result["bleu"]
            logs["val_chrf"] = result["chrf"]

    return BleuCallback()


def _hypermodel_class():
    from keras_gated.seq2seq import Seq2Seq
    from keras_gated.tuning import GatedHyperModel

    class TranslationHyperModel(GatedHyperModel):
        """Seq2Seq with the cell, sizes, attention and optimizer as hyperparameters.

        Adds to `GatedHyperModel`'s space: `embedding_dim` (16-256, default
        64) and `attention` (additive, dot, none).
        """

        def __init__(self, source_vocab_size, target_vocab_size, metadata,
                     overrides=(), bleu_data=None):
            self.source_vocab_size = source_vocab_size
            self.target_vocab_size = target_vocab_size
            self.metadata = metadata
            self.bleu_data = bleu_data
            super().__init__(overrides, name="translation")

        def add_hparams(self, space):
            space.int("embedding_dim", 16, 256, step=16, default=64)
            space.choice("attention", ["additive", "dot", "none"])

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
            # XLA compiles the decoder loop slowly and runs it no faster on
            # CPU; jit_compile stays off.
            return self.compile(model, hp, Seq2Seq.loss_function(), jit_compile=False)

        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            callbacks = list(callbacks or [])
            if self.bleu_data is not None:
                callbacks.insert(0, bleu_callback(*self.bleu_data))
            return model.fit(*args, callbacks=callbacks, **kwargs)

    return TranslationHyperModel


def TranslationHyperModel(source_vocab_size, target_vocab_size, metadata, overrides=(),
                          bleu_data=None):
    """The translation `GatedHyperModel` (keras-tuner is imported on use).

    `bleu_data=(sources, references)` adds `val_bleu` / `val_chrf` to every
    epoch's logs (the tuner objective `val_bleu` needs it).
    """
    return _hypermodel_class()(
        source_vocab_size, target_vocab_size, metadata, overrides, bleu_data
    )


@dataclasses.dataclass
class TranslationData:
    """What `TranslationTask.load_data` returns.

    `train_pairs` are the training pairs within `max_length`, in the row
    order of `train_arrays`. `train_batches` (a
    `keras_gated.tasks.batches.ArrayBatches` of `train_arrays`, its order a
    function of the seed and the epoch) and `describe_batch(epoch, batch)`
    (the first source sentences of a training batch) are set by
    `make_train_batches`.
    """

    splits: Splits
    source: TextSide
    target: TextSide
    train_arrays: tuple
    val_arrays: tuple
    metadata: dict
    train_pairs: list = None
    train_batches: object = None
    describe_batch: object = None


def make_train_batches(data, batch_size, seed):
    """Sets `data.train_batches` and `data.describe_batch` for `batch_size` and `seed`."""
    from keras_gated.tasks.batches import ArrayBatches
    from keras_gated.tasks.batches import BatchNames

    data.train_batches = ArrayBatches(data.train_arrays, batch_size, seed)
    data.describe_batch = BatchNames(data.train_batches.batch_order, [s for s, _ in data.train_pairs])
    return data


def prepare_data(pairs, description="", source_split="word", target_split="word",
                 lowercase=False, source_vocab_size=8000, target_vocab_size=8000,
                 max_length=64, val_fraction=0.1, test_fraction=0.1, seed=1):
    """Splits pairs, fits tokenizers and vocabularies on train, makes arrays."""
    splits = split_pairs(pairs, val_fraction, test_fraction, seed, description)
    source = TextSide.fit([s for s, _ in splits.train], source_split, lowercase, source_vocab_size)
    target = TextSide.fit([t for _, t in splits.train], target_split, lowercase, target_vocab_size)
    train_pairs = pairs_within(splits.train, source, target, max_length)
    train_arrays = make_arrays(train_pairs, source, target, max_length, drop_longer=True)
    val_arrays = make_arrays(splits.val or splits.train[:1], source, target, max_length)
    metadata = {
        "task": "translation",
        "source": source.to_metadata(),
        "target": target.to_metadata(),
        "max_length": max_length,
        "data": description,
    }
    return TranslationData(splits, source, target, train_arrays, val_arrays, metadata, train_pairs)


# --------------------------------------------------------------------- task


def _add_data_arguments(parser, evaluating=False):
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default=None if evaluating else "sample",
        help=(
            "'sample' (embedded English/Kelvan travel phrases), a file of "
            "source<TAB>target lines (extra columns ignored), or a "
            "tensorflow-datasets translation set (e.g. ted_hrlr_translate/pt_to_en)."
            + (" Default: the test split of the data the model was trained on"
               " (sample only); a file is evaluated whole." if evaluating else "")
        ),
    )
    group.add_argument(
        "--source-column", default=None,
        help="Source column: an index from 0 for a file (default 0), a language "
             "code for tfds (default: its supervised keys). Swap the columns to "
             "translate the other way.",
    )
    group.add_argument(
        "--target-column", default=None,
        help="Target column: index for a file (default 1), language code for tfds.",
    )
    group.add_argument("--tfds-dir", default=None, help="tensorflow-datasets data directory.")
    group.add_argument("--max-pairs", type=int, default=None, help="Use at most this many pairs.")
    if evaluating:
        return
    group.add_argument(
        "--sample-size", type=int, default=None,
        help="Pairs generated for --data sample (default 6000).",
    )
    group.add_argument(
        "--source-split", choices=("word", "char"), default="word",
        help="Source tokens: words and punctuation, or characters (Chinese, Japanese).",
    )
    group.add_argument(
        "--target-split", choices=("word", "char"), default="word",
        help="Target tokens: words and punctuation, or characters.",
    )
    group.add_argument("--lowercase", action="store_true", help="Lowercase both sides.")
    group.add_argument(
        "--source-vocab-size", type=int, default=8000,
        help="Source vocabulary size (4 special tokens included); rarer tokens are unknown.",
    )
    group.add_argument(
        "--target-vocab-size", type=int, default=8000, help="Target vocabulary size."
    )
    group.add_argument(
        "--max-length", type=int, default=64,
        help="Training pairs with a side longer than this many tokens are dropped.",
    )
    group.add_argument("--val-fraction", type=float, default=0.1, help="Validation share.")
    group.add_argument("--test-fraction", type=float, default=0.1, help="Held-out test share.")


def _add_decoding_arguments(parser):
    group = parser.add_argument_group("decoding")
    group.add_argument(
        "--beam-width", type=int, default=4, help="Beam width (1 = greedy search)."
    )
    group.add_argument(
        "--length-penalty", type=float, default=0.6,
        help="GNMT length-penalty alpha: score = log P / ((5 + length) / 6) ** alpha; 0 = none.",
    )
    group.add_argument(
        "--examples", type=int, default=5, help="Example translations to print."
    )


class TranslationTask(Task):
    name = "translation"
    description = (
        "Sentence-pair translation with an attention encoder-decoder on the chosen "
        "gated cell; greedy/beam-search decoding; BLEU and chrF (sacrebleu) on a "
        "held-out test split."
    )
    objective = "val_loss"
    metric_names = ("test_bleu", "test_chrf")
    default_epochs = 15
    default_batch_size = 64

    def add_arguments(self, parser, command):
        _add_data_arguments(parser, evaluating=command == "evaluate")
        _add_decoding_arguments(parser)
        if command != "evaluate":
            parser.add_argument(
                "--objective", choices=("val_loss", "val_bleu"), default="val_loss",
                help="Tuner objective: validation loss, or validation BLEU "
                     "(greedy decoding of --bleu-sentences sentences every epoch).",
            )
            parser.add_argument(
                "--bleu-sentences", type=int, default=500,
                help="Validation sentences decoded for val_bleu.",
            )

    def load_data(self, args):
        pairs, description = load_pairs(
            args.data, args.source_column, args.target_column, args.tfds_dir,
            args.max_pairs, args.sample_size,
        )
        data = prepare_data(
            pairs, description, args.source_split, args.target_split, args.lowercase,
            args.source_vocab_size, args.target_vocab_size, args.max_length,
            args.val_fraction, args.test_fraction, args.seed,
        )
        data.metadata["data_options"] = {
            "data": args.data, "source_column": args.source_column,
            "target_column": args.target_column, "sample_size": args.sample_size,
            "max_pairs": args.max_pairs, "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction, "seed": args.seed,
        }
        make_train_batches(data, args.batch_size, args.seed)
        splits = data.splits
        print(
            f"keras-gated: {description}: {len(splits.train)} train, {len(splits.val)} "
            f"validation, {len(splits.test)} test pairs; vocabularies "
            f"{len(data.source.vocabulary)} / {len(data.target.vocabulary)}",
            flush=True,
        )
        return data

    def hypermodel(self, args, data):
        if args.objective == "val_bleu":
            import keras_tuner

            self.objective = keras_tuner.Objective("val_bleu", direction="max")
            bleu_data = (
                data.splits.val_sources[: args.bleu_sentences],
                data.splits.val_references[: args.bleu_sentences],
            )
        else:
            self.objective = "val_loss"
            bleu_data = None
        return TranslationHyperModel(
            len(data.source.vocabulary), len(data.target.vocabulary), data.metadata,
            args.hp, bleu_data,
        )

    def fit_kwargs(self, args, data):
        # The batches order themselves by (seed, epoch); Keras's own shuffle
        # would draw on Python's global random state, which a resumed run lacks.
        return {
            "x": data.train_batches,
            "validation_data": data.val_arrays,
            "validation_batch_size": args.batch_size,
            "shuffle": False,
        }

    def evaluate(self, model, data, args):
        result = evaluate_translator(
            Translator(model), data.splits.test_sources, data.splits.test_references,
            args.beam_width, args.length_penalty, args.examples, args.batch_size,
        )
        _print_examples(result["examples"])
        return {"test_bleu": result["bleu"], "test_chrf": result["chrf"]}

    def export(self, model, data, path, args):
        model.save(path)

    def evaluate_saved(self, args):
        translator = Translator.load(args.model)
        if args.data is None:
            options = translator.model.metadata.get("data_options") or {}
            if options.get("data") != "sample":
                raise DataError(
                    "Give --data: the model was not trained on the embedded sample, "
                    "so its test split cannot be rebuilt here."
                )
            pairs, description = load_pairs(
                "sample", options["source_column"], options["target_column"],
                max_pairs=options.get("max_pairs"), sample_size=options.get("sample_size"),
            )
            splits = split_pairs(
                pairs, options["val_fraction"], options["test_fraction"], options["seed"],
            )
            sources, references = splits.test_sources, splits.test_references
            description += " (test split)"
        else:
            pairs, description = load_pairs(
                args.data, args.source_column, args.target_column, args.tfds_dir,
                args.max_pairs,
            )
            groups = {}
            for source, target in pairs:
                groups.setdefault(source, []).append(target)
            sources, references = list(groups), list(groups.values())
        result = evaluate_translator(
            translator, sources, references, args.beam_width, args.length_penalty,
            args.examples, args.batch_size,
        )
        _print_examples(result["examples"])
        return {"model": args.model, "data": description, **result}

    def monitor_sample(self, data):
        (source, decoder_inputs), decoder_targets = data.val_arrays
        return (source[:32], decoder_inputs[:32]), decoder_targets[:32]

    def commands(self):
        return {
            "translate": Command(
                help="Translate sentences (a file, or standard input) with a saved model.",
                add_arguments=add_translate_arguments,
                run=run_translate,
            )
        }


def _print_examples(examples):
    for example in examples:
        print(f"  source:      {example['source']}")
        print(f"  reference:   {' | '.join(example['references'])}")
        print(f"  translation: {example['translation']}\n")


def add_translate_arguments(parser):
    parser.add_argument("--model", required=True, help="A .keras model saved by train or tune.")
    parser.add_argument(
        "--input", default="-",
        help="File with one source sentence per line; '-' reads standard input.",
    )
    parser.add_argument(
        "--output", default="-", help="Where to write the translations; '-' is standard output."
    )
    parser.add_argument("--beam-width", type=int, default=4, help="Beam width (1 = greedy).")
    parser.add_argument(
        "--length-penalty", type=float, default=0.6, help="GNMT length-penalty alpha (0 = none)."
    )
    parser.add_argument(
        "--max-length", type=int, default=None,
        help="Most target tokens (default: the model's training limit + 10).",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="Sentences decoded together.")


def run_translate(args):
    """`keras-gated translate`: one translation per input line, in order.

    Typed at a terminal, each line is translated as soon as it is entered;
    a file or a pipe is translated in batches.
    """
    if args.input == "-" and args.output == "-" and sys.stdin.isatty():
        return _translate_interactively(args)
    if args.input == "-":
        lines = sys.stdin.read().splitlines()
    else:
        if not os.path.isfile(args.input):
            raise DataError(f"{args.input}: no such input file.")
        with open(args.input, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    translator = Translator.load(args.model)
    keep = [i for i, line in enumerate(lines) if line.strip()]
    translated = translator.translate(
        [lines[i] for i in keep], beam_width=args.beam_width,
        length_penalty=args.length_penalty, max_length=args.max_length,
        batch_size=args.batch_size,
    )
    output = [""] * len(lines)
    for i, text in zip(keep, translated):
        output[i] = text
    text = "".join(line + "\n" for line in output)
    if args.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


def _translate_interactively(args):
    translator = Translator.load(args.model)
    print("Type a sentence and press Enter (Ctrl-D to quit).", file=sys.stderr)
    for line in sys.stdin:
        if line.strip():
            (text,) = translator.translate(
                [line.strip()], beam_width=args.beam_width,
                length_penalty=args.length_penalty, max_length=args.max_length,
            )
        else:
            text = ""
        print(text, flush=True)
    return 0


TASK = TranslationTask()
