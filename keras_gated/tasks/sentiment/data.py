"""Sentiment data: local tables, tensorflow-datasets sets and the embedded sample; splits,
the vectorizer and the batches (see `keras_gated.tasks.sentiment`)."""

import csv
import dataclasses
import gzip
import io
import json
import os
import random
import zlib

from keras_gated.tasks.common import DataError
from keras_gated.tasks.common import offline_message as common_offline_message
from keras_gated.tasks.common import prepared_tfds_builder
from keras_gated.tasks.sentiment import sample as sentiment_sample

#: Known tensorflow-datasets text classification sets: feature names and
#: which split serves as the held-out test split (GLUE's own test split
#: has no labels, so its validation split is the test split here).
TFDS_SOURCES = {
    "imdb_reviews": {"text": "text", "label": "label", "train": "train", "test": "test"},
    "glue/sst2": {"text": "sentence", "label": "label", "train": "train", "test": "validation"},
}

FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

#: The baseline that ignores word order; accepted by `--hp cell=bow,...`.
BAG_OF_WORDS = "bow"

#: What to use when a tensorflow-datasets set cannot be had (the offline message).
OFFLINE_INSTEAD = (
    "the embedded sample (--data sample) or a local file (--data reviews.csv "
    "--text-column text --label-column label; .csv, .tsv or .jsonl)"
)


@dataclasses.dataclass
class TextSplits:
    """Texts (lists of str) and labels (lists of int) of the three splits."""

    train_texts: list
    train_labels: list
    val_texts: list
    val_labels: list
    test_texts: list
    test_labels: list
    class_names: list
    source: str


@dataclasses.dataclass
class SentimentData:
    """What `load_data` returns: the splits, the fitted vectorizer, the batches.

    `train` is a `keras_gated.tasks.batches.BucketedArrayBatches` of the
    vectorized training texts (its order a function of the seed and the
    epoch, each batch cut to its longest text); `validation` and `test` are
    the same, sorted by length. `describe_batch(epoch, batch)` names the
    first texts of a training batch.
    """

    splits: TextSplits
    vectorizer: object
    train: object
    validation: object
    test: object
    describe_batch: object = None

    @property
    def class_names(self):
        return self.splits.class_names


# --------------------------------------------------------------------------
# Reading data
# --------------------------------------------------------------------------


def _column_spec(value):
    if value is None:
        return None
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def read_table(path, text_column=None, label_column=None, file_format=None, header="auto", delimiter=None):
    """Reads `(texts, raw_labels)` from a CSV, TSV or JSONL file.

    Args:
        path: The file (`.gz` allowed).
        text_column, label_column: A header name (JSONL: a key) or a
            0-based column index. Default: a column named text / sentence /
            review (label / sentiment / stars) when the header has one, else
            columns 0 and 1.
        file_format: "csv", "tsv" or "jsonl"; default from the extension.
        header: "auto" (a header if a column is given by name, or if the
            first row's label appears nowhere else in the label column),
            "yes" or "no". Not used for JSONL.
        delimiter: Overrides the format's delimiter.

    Raises:
        DataError: naming the file and the line for any problem.
    """
    if os.path.isdir(path):
        raise DataError(f"{path}: a folder, not a file; give the .csv, .tsv or .jsonl file in it.")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file.")
    stem = path[:-3] if path.endswith(".gz") else path
    file_format = file_format or FILE_FORMATS.get(os.path.splitext(stem)[1].lower())
    if file_format is None:
        raise DataError(
            f"{path}: unknown file type; use a .csv, .tsv or .jsonl file or pass --format csv|tsv|jsonl."
        )
    opener = gzip.open if path.endswith(".gz") else open
    try:
        # utf-8-sig: a byte-order mark (Excel writes one) is not part of the header.
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            content = handle.read()
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error}).") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path}: not a complete gzip file ({error}); copy it again or unzip it.") from None
    if not content.strip():
        raise DataError(f"{path}: the file is empty.")
    text_column, label_column = _column_spec(text_column), _column_spec(label_column)
    if file_format == "jsonl":
        return _read_jsonl(path, content, text_column, label_column)
    delimiter = delimiter or ("," if file_format == "csv" else "\t")
    # A review may be longer than the csv module's default field limit
    # (128 KiB); the file's own size bounds every field.
    csv.field_size_limit(max(csv.field_size_limit(), len(content) + 1))
    rows = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(content), delimiter=delimiter), 1) if row]
    return _read_rows(path, rows, text_column, label_column, header)


def _read_rows(path, rows, text_column, label_column, header):
    first = rows[0][1]
    by_name = isinstance(text_column, str) or isinstance(label_column, str)
    guessed = _guess_columns(first)
    if header == "auto":
        if by_name or (text_column is None and label_column is None and None not in guessed):
            has_header = True
        else:
            index = label_column if isinstance(label_column, int) else 1
            labels = [row[index] for _, row in rows[1:] if len(row) > index]
            has_header = len(first) > index and len(labels) > 0 and first[index] not in set(labels)
    else:
        has_header = header == "yes"
    if by_name and not has_header:
        raise DataError(f"{path}: columns given by name need a header line (remove --header no).")
    names = [name.strip() for name in first] if has_header else None

    def resolve(column, default_name, default_index, what):
        if column is None:
            column = default_name if (names and default_name is not None) else default_index
        if isinstance(column, str):
            if column not in names:
                raise DataError(
                    f"{path}, line 1: no column named {column!r} for the {what}; "
                    f"the header has {', '.join(repr(n) for n in names)}."
                )
            return names.index(column)
        return column

    text_index = resolve(text_column, guessed[0], 0, "text")
    label_index = resolve(label_column, guessed[1], 1, "label")
    texts, labels = [], []
    for number, row in rows[1:] if has_header else rows:
        for index, what, option in ((text_index, "text", "--text-column"), (label_index, "label", "--label-column")):
            if not -len(row) <= index < len(row):
                unclosed = " A field holds a line break: is a quote left open?" if any(
                    "\n" in field for field in row) else ""
                raise DataError(
                    f"{path}, line {number}: no column {index} for the {what} (the line has "
                    f"{len(row)} columns); check {option} and the delimiter.{unclosed}"
                )
        text, label = row[text_index].strip(), row[label_index].strip()
        if not label:
            raise DataError(f"{path}, line {number}: the label is empty.")
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataError(f"{path}: no examples after the header line.")
    return texts, labels


_TEXT_NAMES = ("text", "sentence", "review", "content", "document")
_LABEL_NAMES = ("label", "sentiment", "stars", "rating", "class", "polarity")


def _guess_columns(header):
    lowered = [h.strip().lower() for h in header]
    text = next((header[lowered.index(n)].strip() for n in _TEXT_NAMES if n in lowered), None)
    label = next((header[lowered.index(n)].strip() for n in _LABEL_NAMES if n in lowered), None)
    return text, label


def _read_jsonl(path, content, text_column, label_column):
    texts, labels = [], []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not a JSON object ({error.msg}).") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object per line.")
        keys = list(record)
        guessed = _guess_columns(keys)
        values = []
        for column, default, what, option in (
            (text_column, guessed[0], "text", "--text-column"),
            (label_column, guessed[1], "label", "--label-column"),
        ):
            column = default if column is None else column
            if column is None:
                names = "/".join(_TEXT_NAMES if what == "text" else _LABEL_NAMES)
                raise DataError(
                    f"{path}, line {number}: no field for the {what}: the object has "
                    f"{', '.join(repr(k) for k in keys)}, none named {names}. Set {option}."
                )
            if isinstance(column, int):
                if not -len(keys) <= column < len(keys):
                    raise DataError(f"{path}, line {number}: no field {column} for the {what}; check {option}.")
                column = keys[column]
            if column is None or column not in record:
                raise DataError(
                    f"{path}, line {number}: no field {column!r} for the {what}; the object has "
                    f"{', '.join(repr(k) for k in keys)}. Set {option}."
                )
            values.append(record[column])
        if values[1] is None or not str(values[1]).strip():
            raise DataError(f"{path}, line {number}: the label is empty.")
        if values[0] is None:
            raise DataError(f"{path}, line {number}: the text is null; use \"\" for an empty text.")
        texts.append(str(values[0]))
        labels.append(str(values[1]).strip())
    if not texts:
        raise DataError(f"{path}: the file has no records.")
    return texts, labels


def encode_labels(raw_labels, class_names=None):
    """Maps raw labels (strings, or integers written as strings) to class indices.

    Integer labels 0..K-1 keep their value; other integers and strings are
    numbered in sorted order. With `class_names` given (a saved model's),
    labels are looked up in it. Returns `(indices, class_names)`.
    """
    raw_labels = [str(label).strip() for label in raw_labels]
    if class_names is None:
        distinct = set(raw_labels)
        if all(label.lstrip("-").isdigit() for label in distinct):
            class_names = [str(v) for v in sorted(int(label) for label in distinct)]
            if class_names == [str(i) for i in range(len(class_names))]:
                return [int(label) for label in raw_labels], class_names
        else:
            class_names = sorted(distinct)
    lookup = {name: index for index, name in enumerate(class_names)}
    unknown = sorted(set(raw_labels) - set(lookup))
    if unknown:
        raise DataError(f"Labels {unknown[:5]} are not among the model's classes {class_names}.")
    if len(class_names) < 2:
        raise DataError(f"Need at least two classes; the labels are all {class_names}.")
    return [lookup[label] for label in raw_labels], list(class_names)


def offline_message(name, data_dir):
    """The message of an unprepared set `name` offline (see `keras_gated.tasks.common.tfds`)."""
    return common_offline_message(name, data_dir, OFFLINE_INSTEAD)


def read_tfds(name, data_dir=None, text_column=None, label_column=None, max_examples=None):
    """Reads a tensorflow-datasets text classification set.

    Returns `(train_texts, train_labels, test_texts, test_labels,
    class_names)`; `test_*` are None when the set has no labelled test split.

    Raises:
        DataError: unknown name, or not prepared and no network (at once,
            without a download attempt).
    """
    import tensorflow_datasets as tfds

    builder = prepared_tfds_builder(name, data_dir, OFFLINE_INSTEAD)
    known = TFDS_SOURCES.get(name, {})
    features = builder.info.features
    text_key = text_column or known.get("text") or _first_feature(features, "string")
    label_key = label_column or known.get("label") or "label"
    for key, option in ((text_key, "--text-column"), (label_key, "--label-column")):
        if key not in features:
            raise DataError(f"{name} has no feature {key!r}; its features are {list(features)}. Set {option}.")
    label_feature = features[label_key]
    class_names = list(getattr(label_feature, "names", None) or [])
    splits = list(builder.info.splits)
    train_split = known.get("train", "train")
    test_split = known.get("test", "test" if "test" in splits else None)

    def read(split):
        texts, labels = [], []
        dataset = builder.as_dataset(split=split)
        if max_examples:
            dataset = dataset.take(max_examples)
        for example in tfds.as_numpy(dataset):
            texts.append(example[text_key].decode("utf-8"))
            labels.append(int(example[label_key]))
        return texts, labels

    train_texts, train_labels = read(train_split)
    test_texts = test_labels = None
    if test_split is not None:
        test_texts, test_labels = read(test_split)
        if min(test_labels, default=-1) < 0:  # unlabelled test split (GLUE)
            test_texts = test_labels = None
    if not class_names:
        class_names = [str(i) for i in range(max(train_labels) + 1)]
    return train_texts, train_labels, test_texts, test_labels, class_names


def _first_feature(features, dtype):
    for key, feature in features.items():
        if getattr(feature, "dtype", None) is not None and "string" in str(feature.dtype):
            return key
    return None


def _split(pairs, fraction, rng):
    pairs = list(pairs)
    rng.shuffle(pairs)
    cut = int(round(len(pairs) * fraction))
    return pairs[cut:], pairs[:cut]


def load_splits(data, text_column=None, label_column=None, file_format=None, header="auto",
                delimiter=None, tfds_dir=None, val_fraction=0.1, test_fraction=0.1,
                split_seed=0, max_examples=None, class_names=None):
    """Loads `data` ("sample", a file or a TFDS name) into `TextSplits`."""
    rng = random.Random(split_seed)
    test = None
    if data == "sample":
        texts, raw = zip(*sentiment_sample.read())
        labels, class_names = encode_labels(raw, class_names)
        pairs = list(zip(texts, labels))
        source = "sample"
    elif os.path.exists(data) or os.path.splitext(data)[1].lower() in FILE_FORMATS or data.endswith(".gz"):
        texts, raw = read_table(data, text_column, label_column, file_format, header, delimiter)
        labels, class_names = encode_labels(raw, class_names)
        pairs = list(zip(texts, labels))
        source = os.path.abspath(data)
    else:
        train_texts, train_labels, test_texts, test_labels, names = read_tfds(
            data, tfds_dir, text_column, label_column, max_examples
        )
        class_names = class_names or names
        pairs = list(zip(train_texts, train_labels))
        if test_texts is not None:
            test = list(zip(test_texts, test_labels))
        source = f"tfds:{data}"
    if max_examples:
        pairs = pairs[:max_examples]
    if test is None:
        pairs, test = _split(pairs, test_fraction, rng)
    train, val = _split(pairs, val_fraction, rng)
    if not train or not val or not test:
        raise DataError(
            f"{data}: too few examples ({len(pairs) + len(test)}) for train, validation and "
            "test splits; add data or change --val-fraction / --test-fraction."
        )
    return TextSplits(
        *_unzip(train), *_unzip(val), *_unzip(test), class_names=list(class_names), source=source
    )


def _unzip(pairs):
    texts, labels = zip(*pairs)
    return list(texts), list(labels)


# --------------------------------------------------------------------------
# Pipelines and model
# --------------------------------------------------------------------------


def make_vectorizer(train_texts, max_tokens=20000, sequence_length=64):
    """A `TextVectorization` fitted on the training texts only."""
    import keras
    import tensorflow as tf

    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_mode="int", output_sequence_length=sequence_length
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(train_texts).batch(1024))
    return vectorizer


def count_empty_texts(texts, vectorizer):
    """How many texts have no token left after the vectorizer's standardisation."""
    if not len(texts):
        return 0
    import numpy as np

    tokens = np.asarray(vectorizer(list(texts)))
    return int(np.sum(np.all(tokens == 0, axis=-1)))


def vectorize(texts, vectorizer, chunk=4096):
    """The token ids `(len(texts), sequence_length)` of `texts`, as a numpy array."""
    import numpy as np

    texts = list(texts)
    if not texts:
        raise ValueError("No texts to vectorize.")
    return np.concatenate(
        [np.asarray(vectorizer(texts[start:start + chunk])) for start in range(0, len(texts), chunk)]
    )


def make_train_batches(texts, labels, vectorizer, batch_size, seed, drop_remainder=False,
                       window=None):
    """Training batches of (token ids, labels) whose order is a function of (seed, epoch).

    The texts are vectorized once; the batches are length-bucketed
    (`window` batches per sorting window, default
    `keras_gated.tasks.batches.BUCKET_WINDOW`; 0: every batch
    `sequence_length` wide) and each is cut to its longest text, which the
    embedding's `mask_zero` makes invisible to the model.
    `keras_gated.tasks.batches.EpochSeeding` tells the batches the epoch.
    Returns `(batches, describe_batch)`, the latter naming the first texts
    of a batch.
    """
    from keras_gated.tasks.batches import BatchNames

    batches = make_batches(texts, labels, vectorizer, batch_size, seed, drop_remainder, window)
    return batches, BatchNames(batches.batch_order, list(texts))


def make_batches(texts, labels, vectorizer, batch_size, seed=None, drop_remainder=False,
                 window=None):
    """Length-bucketed batches of (token ids, labels), vectorized once.

    With `seed=None` (validation, test) the texts are visited sorted by
    length; a batch's examples then differ from those of an unsorted split,
    not its examples' predictions.
    """
    import numpy as np

    from keras_gated.tasks.batches import BUCKET_WINDOW
    from keras_gated.tasks.batches import BucketedArrayBatches

    tokens = vectorize(texts, vectorizer)
    window = BUCKET_WINDOW if window is None else window
    return BucketedArrayBatches(
        (tokens, np.asarray(labels, "int64")), (True, False), batch_size, seed, drop_remainder,
        window=window,
    )


def make_dataset(texts, labels, vectorizer, batch_size, shuffle_seed=None, drop_remainder=False):
    """`tf.data`: (raw strings, labels) → batched (token ids, labels), vectorized in the pipeline.

    `drop_remainder=True` with several replicas: Keras under
    `MirroredStrategy` fails on a last batch that does not split evenly.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((list(texts), list(labels)))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(texts), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        lambda text, label: (vectorizer(text), label), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
