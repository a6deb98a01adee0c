"""Translation data: sentence pairs from the sample, a file or tensorflow-datasets; splits,
tokenizers and vocabularies, arrays and batches (see `keras_gated.tasks.translation`)."""

import dataclasses
import os
import random

import numpy as np

from keras_gated.seq2seq import END_ID
from keras_gated.seq2seq import START_ID
from keras_gated.tasks.common import DataError
from keras_gated.tasks.common import prepared_tfds_builder
from keras_gated.tasks.translation import sample as travel_phrases
from keras_gated.text import Tokenizer
from keras_gated.text import Vocabulary

#: What to use when a tensorflow-datasets set cannot be had (the offline message).
OFFLINE_INSTEAD = (
    "the embedded sample (--data sample) or a local file of source<TAB>target lines "
    "(--data pairs.tsv)"
)


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

    builder = prepared_tfds_builder(name, data_dir, OFFLINE_INSTEAD)
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
    encoded = [(source_side.encode(source), target_side.encode(target)) for source, target in pairs]
    return _arrays_of_ids(encoded, max_length, drop_longer)


def _arrays_of_ids(encoded, max_length=None, drop_longer=False):
    """`make_arrays` of pairs already encoded: `[(source_ids, target_ids), ...]`."""
    sources, targets = [], []
    for source_ids, target_ids in encoded:
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


@dataclasses.dataclass
class TranslationData:
    """What `TranslationTask.load_data` returns.

    `train_pairs` are the training pairs within `max_length`, in the row
    order of `train_arrays`; `dropped_pairs` counts the training pairs
    `--max-length` left out. `train_batches` (a
    `keras_gated.tasks.batches.BucketedArrayBatches` of `train_arrays`, its
    order a function of the seed and the epoch), `val_batches` (the
    validation arrays sorted by length) and `describe_batch(epoch, batch)`
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
    dropped_pairs: int = 0
    train_batches: object = None
    val_batches: object = None
    describe_batch: object = None


#: Which arrays of `((source, decoder_inputs), decoder_targets)` a batch cuts to its own length.
PAIR_SEQUENCES = ((True, True), True)


def make_train_batches(data, batch_size, seed, window=None):
    """Sets `data.train_batches`, `data.val_batches` and `data.describe_batch`.

    Both are length-bucketed (`window` batches per sorting window, default
    `keras_gated.tasks.batches.BUCKET_WINDOW`; 0: every batch as wide as its
    split, the pipeline before bucketing). The model masks source padding
    and the loss ignores target padding, so a batch cut to its own longest
    pair gives the loss of the same pairs padded to the split's longest.
    """
    from keras_gated.tasks.batches import BUCKET_WINDOW
    from keras_gated.tasks.batches import BatchNames
    from keras_gated.tasks.batches import BucketedArrayBatches

    window = BUCKET_WINDOW if window is None else window
    data.train_batches = BucketedArrayBatches(
        data.train_arrays, PAIR_SEQUENCES, batch_size, seed, window=window
    )
    data.val_batches = BucketedArrayBatches(
        data.val_arrays, PAIR_SEQUENCES, batch_size, None, window=window
    )
    data.describe_batch = BatchNames(data.train_batches.batch_order, [s for s, _ in data.train_pairs])
    return data


def padding_report(data, max_length):
    """One line for the data report: the pairs `--max-length` dropped and the padding of a batch."""
    kept = len(data.train_pairs)
    dropped = (
        f"{data.dropped_pairs} of {kept + data.dropped_pairs} training pairs dropped by "
        f"--max-length {max_length}" if max_length else "no --max-length"
    )
    (source_real, source_padded), _, (target_real, target_padded) = data.train_batches.token_counts(0)
    width = data.train_arrays[0][0].shape[1] + data.train_arrays[1].shape[1]
    split_padded = kept * width
    real = source_real + target_real
    return (
        f"{dropped}; real tokens fill {100 * real / (source_padded + target_padded):.0f}% "
        f"of the training batches (--bucket-window {data.train_batches.batch_order.window}), "
        f"{100 * real / split_padded:.0f}% when padded to the split's longest pair"
    )


def prepare_data(pairs, description="", source_split="word", target_split="word",
                 lowercase=False, source_vocab_size=8000, target_vocab_size=8000,
                 max_length=64, val_fraction=0.1, test_fraction=0.1, seed=1):
    """Splits pairs, fits tokenizers and vocabularies on train, makes arrays."""
    splits = split_pairs(pairs, val_fraction, test_fraction, seed, description)
    source = TextSide.fit([s for s, _ in splits.train], source_split, lowercase, source_vocab_size)
    target = TextSide.fit([t for _, t in splits.train], target_split, lowercase, target_vocab_size)
    # Each training pair is tokenized once, for the length filter and the arrays alike.
    encoded = [(source.encode(s), target.encode(t)) for s, t in splits.train]
    kept = [
        index for index, (source_ids, target_ids) in enumerate(encoded)
        if not max_length or (len(source_ids) <= max_length and len(target_ids) <= max_length)
    ]
    train_pairs = [splits.train[index] for index in kept]
    train_arrays = _arrays_of_ids([encoded[index] for index in kept], max_length, drop_longer=True)
    val_arrays = make_arrays(splits.val or splits.train[:1], source, target, max_length)
    metadata = {
        "task": "translation",
        "source": source.to_metadata(),
        "target": target.to_metadata(),
        "max_length": max_length,
        "data": description,
    }
    return TranslationData(
        splits, source, target, train_arrays, val_arrays, metadata, train_pairs,
        dropped_pairs=len(splits.train) - len(train_pairs),
    )
