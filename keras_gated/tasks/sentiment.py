"""Sentiment classification: which gated cell reads reviews best?

    keras-gated tune sentiment --data sample --max-trials 4
    keras-gated tune sentiment --data imdb_reviews --sequence-length 200
    keras-gated train sentiment --data reviews.csv --text-column review --label-column stars
    keras-gated evaluate sentiment --model runs/sentiment/best_model.keras --text "not bad at all"

Data (`--data`):

* `sample`: the embedded generated reviews (`keras_gated.tasks.sentiment_sample`);
* a tensorflow-datasets name: `imdb_reviews`, `glue/sst2` (or any text
  classification set; name its features with `--text-column` /
  `--label-column`). Without network and without the prepared dataset in
  `--tfds-dir`, this fails at once with a message;
* a local `.csv`, `.tsv` or `.jsonl` file: `--text-column` and
  `--label-column` name a header field or give a 0-based column index;
  labels may be strings or integers, two classes or more.

Splits: a held-out test split (the dataset's own when it has one with
labels, else `--test-fraction` of the data) that the tuner never sees, and a
validation split (`--val-fraction` of the training data) for the tuner's
objective. Splits depend on `--split-seed` only; the order of the training
batches depends on `--seed` and the epoch only (`keras_gated.tasks.batches`),
so a resumed `train` repeats the epochs of an uninterrupted one.

The model: `keras.layers.TextVectorization` (vocabulary fitted on the
training split only; it vectorizes the training texts once and the
validation and test texts in `tf.data` pipelines), then Embedding → the
recurrent block a trial chose (or `cell=bow`, a bag-of-words baseline) →
Dense softmax. The saved model (`best_model.keras`) contains the
vectorizer, so it classifies raw strings; its class names are in the
`.json` file beside it:

    from keras_gated.tasks.sentiment import load_classifier
    classifier = load_classifier("runs/sentiment/best_model.keras")
    classifier.predict(["the plot was not good"])   # [("negative", 0.97)]
    classifier.model                                # the Keras model: strings -> probabilities
"""

import csv
import dataclasses
import gzip
import io
import json
import os
import random
import zlib

from keras_gated.tasks import DataError
from keras_gated.tasks.base import load_saved_model
from keras_gated.tasks.base import prepared_tfds_builder
from keras_gated.tasks.base import Task
from keras_gated.tasks import sentiment_sample

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

# Host that tensorflow-datasets downloads from; only reachability is checked.


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

    `train` is a `keras_gated.tasks.batches.ArrayBatches` of the vectorized
    training texts (its order a function of the seed and the epoch);
    `validation` and `test` are `tf.data` pipelines. `describe_batch(epoch,
    batch)` names the first texts of a training batch.
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
    return (
        f"Cannot get the tensorflow-datasets dataset {name!r}: it is not prepared in "
        f"{data_dir} and this machine cannot reach the download server. Use the embedded "
        "sample (--data sample), a local file (--data reviews.csv --text-column text "
        "--label-column label; .csv, .tsv or .jsonl), or prepare the dataset on a machine "
        "with network access and pass its directory with --tfds-dir."
    )


def read_tfds(name, data_dir=None, text_column=None, label_column=None, max_examples=None):
    """Reads a tensorflow-datasets text classification set.

    Returns `(train_texts, train_labels, test_texts, test_labels,
    class_names)`; `test_*` are None when the set has no labelled test split.

    Raises:
        DataError: unknown name, or not prepared and no network (at once,
            without a download attempt).
    """
    import tensorflow_datasets as tfds

    builder = prepared_tfds_builder(name, data_dir, lambda where: offline_message(name, where))
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


def make_train_batches(texts, labels, vectorizer, batch_size, seed, drop_remainder=False):
    """Training batches of (token ids, labels) whose order is a function of (seed, epoch).

    The texts are vectorized once; `keras_gated.tasks.batches.EpochSeeding`
    tells the batches the epoch. Returns `(batches, describe_batch)`, the
    latter naming the first texts of a batch.
    """
    import numpy as np

    from keras_gated.tasks.batches import ArrayBatches
    from keras_gated.tasks.batches import BatchNames

    tokens = vectorize(texts, vectorizer)
    batches = ArrayBatches((tokens, np.asarray(labels, "int64")), batch_size, seed, drop_remainder)
    return batches, BatchNames(batches.batch_order, list(texts))


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


def _sentiment_hypermodel_class():
    import keras

    from keras_gated.tuning import GatedHyperModel
    from keras_gated.tuning import check_cell

    @keras.saving.register_keras_serializable(package="keras_gated_sentiment")
    class MaskedMean(keras.layers.Layer):
        """Mean over the unmasked steps, sum / max(count, 1): zeros for a fully masked row."""

        def call(self, inputs, mask=None):
            if mask is None:
                return keras.ops.mean(inputs, axis=1)
            weights = keras.ops.expand_dims(keras.ops.cast(mask, inputs.dtype), -1)
            total = keras.ops.sum(keras.ops.where(weights > 0, inputs, 0.0), axis=1)
            return total / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)

        def compute_mask(self, inputs, mask=None):
            return None

    class SentimentHyperModel(GatedHyperModel):
        """Embedding → recurrent block (or bag of words) → Dense softmax.

        Adds `embedding_dim` to the base search space, narrows `units`,
        `learning_rate` and `dropout` to ranges that suit short reviews,
        and accepts `cell=bow` (mean of the word embeddings, blind to word
        order) as a baseline.
        """

        def __init__(self, vocab_size, sequence_length, num_classes, overrides=()):
            self.vocab_size = vocab_size
            self.sequence_length = sequence_length
            self.num_classes = num_classes
            super().__init__(overrides, name="sentiment")

        def add_hparams(self, space):
            space.validators["cell"] = lambda cell: cell == BAG_OF_WORDS or check_cell(cell)
            space.int("units", 16, 128, step=16, default=32)
            space.int("embedding_dim", 16, 64, step=16, default=32)
            space.float("dropout", 0.0, 0.3, step=0.1, default=0.0)
            space.float("learning_rate", 1e-3, 1e-2, sampling="log", default=5e-3)

        def build(self, hp):
            tokens = keras.Input((self.sequence_length,), dtype="int64", name="tokens")
            embedding_dim = self.space.get(hp, "embedding_dim")
            x = keras.layers.Embedding(self.vocab_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
            recurrent = self.recurrent_hparams(hp)
            if recurrent["cell"] == BAG_OF_WORDS:
                # The mean over the unmasked words; a text with none (empty
                # after standardisation) averages to zeros, not 0/0 = NaN.
                x = MaskedMean(name="bag_of_words")(x)
                x = keras.layers.Dense(recurrent["units"], activation="relu", name="hidden")(x)
            else:
                x = self.recurrent_block(x, recurrent)
            x = keras.layers.Dropout(recurrent["dropout"])(x)
            outputs = keras.layers.Dense(self.num_classes, activation="softmax", dtype="float32", name="classes")(x)
            model = keras.Model(tokens, outputs, name=f"sentiment_{recurrent['cell']}")
            return self.compile(model, hp, "sparse_categorical_crossentropy", ["accuracy"])

    return SentimentHyperModel


def SentimentHyperModel(vocab_size, sequence_length, num_classes, overrides=()):
    """The sentiment hypermodel (a `GatedHyperModel`); see `_sentiment_hypermodel_class`."""
    return _sentiment_hypermodel_class()(vocab_size, sequence_length, num_classes, overrides)


# --------------------------------------------------------------------------
# Saved classifier
# --------------------------------------------------------------------------


def _metadata_path(path):
    return os.path.splitext(path)[0] + ".json"


def export_classifier(model, vectorizer, class_names, path, data_options=None):
    """Saves an end-to-end model (raw strings → class probabilities) as `.keras`.

    The model is `TextVectorization` (with its fitted vocabulary) followed by
    the trained `model`. The class names and the data options go to the
    `.json` file beside it.
    """
    import keras

    texts = keras.Input(shape=(), dtype="string", name="text")
    end_to_end = keras.Model(texts, model(vectorizer(texts)), name="sentiment_classifier")
    end_to_end.save(path)
    metadata = {"task": "sentiment", "class_names": list(class_names), "data": data_options or {}}
    with open(_metadata_path(path), "w") as handle:
        json.dump(metadata, handle, indent=2)
    return end_to_end


class SentimentClassifier:
    """A saved sentiment model: `predict(texts)` → `[(class_name, probability), ...]`.

    Attributes:
        model: The Keras model, raw strings `(batch,)` → probabilities
            `(batch, num_classes)`.
        class_names: Names of the classes, in output order.
        metadata: The `.json` file saved beside the model.
    """

    def __init__(self, model, class_names, metadata=None):
        self.model = model
        self.class_names = list(class_names)
        self.metadata = metadata or {}

    def probabilities(self, texts, batch_size=256):
        import numpy as np

        texts = np.asarray(list(texts), dtype=object)
        return self.model.predict(texts, batch_size=batch_size, verbose=0)

    def predict(self, texts, batch_size=256):
        probabilities = self.probabilities(texts, batch_size)
        return [
            (self.class_names[int(row.argmax())], float(row.max())) for row in probabilities
        ]

    def accuracy(self, texts, labels, batch_size=256):
        """Accuracy on raw texts with integer class labels."""
        probabilities = self.probabilities(texts, batch_size)
        correct = sum(int(row.argmax()) == int(label) for row, label in zip(probabilities, labels))
        return correct / max(len(labels), 1)


def load_classifier(path):
    """Loads a model saved by `keras-gated train/tune sentiment` as a `SentimentClassifier`."""
    import keras

    model = load_saved_model(path, keras.Model, made_by="keras-gated train|tune sentiment", compile=True)
    metadata = {}
    if os.path.isfile(_metadata_path(path)):
        with open(_metadata_path(path)) as handle:
            metadata = json.load(handle)
    class_names = metadata.get("class_names") or [str(i) for i in range(model.output_shape[-1])]
    return SentimentClassifier(model, class_names, metadata)


# --------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------


class SentimentTask(Task):
    """Text classification of reviews (binary or multi-class)."""

    name = "sentiment"
    description = (
        "Sentiment classification with a tuned recurrent model. --data is 'sample' "
        "(embedded generated reviews), a tensorflow-datasets name (imdb_reviews, glue/sst2) "
        "or a .csv/.tsv/.jsonl file. The test split is held out of the search; the best "
        "model is saved with its TextVectorization and classifies raw strings."
    )
    objective = "val_accuracy"
    metric_names = ("test_accuracy",)
    default_epochs = 3
    default_batch_size = 64

    def add_arguments(self, parser, command):
        data = parser.add_argument_group("data")
        data.add_argument(
            "--data",
            default=None if command == "evaluate" else "sample",
            help=(
                "'sample', a tensorflow-datasets name (imdb_reviews, glue/sst2) or a .csv/.tsv/.jsonl "
                "file." + (" Default for evaluate: the data the model was trained on." if command == "evaluate" else "")
            ),
        )
        data.add_argument("--text-column", default=None, help="Text column: header name, JSON key or 0-based index (default: text/sentence/review, else 0).")
        data.add_argument("--label-column", default=None, help="Label column: header name, JSON key or 0-based index (default: label/sentiment/stars, else 1).")
        data.add_argument("--format", dest="file_format", choices=("csv", "tsv", "jsonl"), default=None, help="File format (default: from the extension).")
        data.add_argument("--header", choices=("auto", "yes", "no"), default="auto", help="Whether a CSV/TSV file has a header line.")
        data.add_argument("--delimiter", default=None, help="Field delimiter of a CSV/TSV file (default: ',' or tab).")
        data.add_argument("--tfds-dir", default=None, help="tensorflow-datasets data directory (prepared datasets).")
        data.add_argument("--val-fraction", type=float, default=0.1, help="Fraction of the training data used for validation (the tuner's objective).")
        data.add_argument("--test-fraction", type=float, default=0.1, help="Fraction held out for the test split when the data has no test split.")
        data.add_argument("--split-seed", type=int, default=0, help="Seed of the train/validation/test split (independent of --seed).")
        data.add_argument("--max-examples", type=int, default=None, help="Use at most this many examples per split (quick runs).")
        if command == "evaluate":
            data.add_argument("--text", action="append", default=[], help="Classify this text (repeatable).")
            data.add_argument("--input", default=None, help="Classify every line of this file.")
            data.add_argument("--split", choices=("test", "all"), default="test", help="Evaluate on the test split or on all of --data.")
            return
        model = parser.add_argument_group("text model")
        model.add_argument("--max-tokens", type=int, default=20000, help="Vocabulary size (TextVectorization max_tokens).")
        model.add_argument("--sequence-length", type=int, default=None, help="Tokens per text, padded or cut (default: 40 for the sample, 200 otherwise).")

    def _data_options(self, args):
        return {
            "data": args.data,
            "text_column": args.text_column,
            "label_column": args.label_column,
            "file_format": args.file_format,
            "header": args.header,
            "delimiter": args.delimiter,
            "tfds_dir": args.tfds_dir,
            "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction,
            "split_seed": args.split_seed,
            "max_examples": args.max_examples,
        }

    def load_data(self, args):
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(args, name) < 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in (0, 1); got {getattr(args, name)}.")
        splits = load_splits(**self._data_options(args))
        sequence_length = args.sequence_length or (40 if args.data == "sample" else 200)
        args.sequence_length = sequence_length
        vectorizer = make_vectorizer(splits.train_texts, args.max_tokens, sequence_length)
        print(
            f"keras-gated: {splits.source}: {len(splits.train_texts)} train, {len(splits.val_texts)} "
            f"validation, {len(splits.test_texts)} test examples, classes {splits.class_names}, "
            f"vocabulary {vectorizer.vocabulary_size()}",
            flush=True,
        )
        empty = {
            name: count_empty_texts(texts, vectorizer)
            for name, texts in (("train", splits.train_texts), ("validation", splits.val_texts),
                                ("test", splits.test_texts))
        }
        if any(empty.values()):
            # Kept: their tokens are all padding, which every model here handles
            # (the bag of words averages no words to zeros).
            print(
                "keras-gated: texts empty after standardisation (kept, read as no words): "
                + ", ".join(f"{count} {name}" for name, count in empty.items()),
                flush=True,
            )
        even = getattr(args, "replicas", 1) > 1
        if even and len(splits.val_texts) < args.batch_size:
            raise DataError(
                f"With {args.replicas} replicas the validation split ({len(splits.val_texts)}) "
                f"must hold a whole batch ({args.batch_size}): lower --batch-size."
            )
        train, describe_batch = make_train_batches(
            splits.train_texts, splits.train_labels, vectorizer, args.batch_size, args.seed, even
        )
        return SentimentData(
            splits,
            vectorizer,
            train,
            make_dataset(splits.val_texts, splits.val_labels, vectorizer, args.batch_size, None, even),
            make_dataset(splits.test_texts, splits.test_labels, vectorizer, args.batch_size),
            describe_batch,
        )

    def hypermodel(self, args, data):
        return SentimentHyperModel(
            data.vectorizer.vocabulary_size(), args.sequence_length, len(data.class_names), args.hp
        )

    def fit_kwargs(self, args, data):
        # The batches order themselves by (seed, epoch); Keras's own shuffle
        # would draw on Python's global random state, which a resumed run lacks.
        return {"x": data.train, "validation_data": data.validation, "shuffle": False}

    def evaluate(self, model, data, args):
        # Batch by batch, outside `model.evaluate`: every test example counts,
        # also under a MirroredStrategy (see `make_dataset`).
        import numpy as np

        correct = total = 0
        for tokens, labels in data.test:
            predicted = np.asarray(model(tokens, training=False)).argmax(-1)
            correct += int((predicted == np.asarray(labels)).sum())
            total += len(predicted)
        return {"test_accuracy": correct / total}

    def export(self, model, data, path, args):
        export_classifier(model, data.vectorizer, data.class_names, path, self._data_options(args))

    def monitor_sample(self, data):
        import numpy as np

        x = np.asarray(data.vectorizer(data.splits.val_texts[:16]))
        return x, np.asarray(data.splits.val_labels[:16])

    def evaluate_saved(self, args):
        classifier = load_classifier(args.model)
        texts = list(args.text)
        if args.input:
            if not os.path.isfile(args.input):
                raise DataError(f"{args.input}: no such file.")
            with open(args.input, encoding="utf-8") as handle:
                texts += [line.rstrip("\n") for line in handle if line.strip()]
        if texts:
            return {
                "predictions": [
                    {"text": text, "label": label, "probability": round(probability, 4)}
                    for text, (label, probability) in zip(texts, classifier.predict(texts, args.batch_size))
                ]
            }
        options = dict(classifier.metadata.get("data", {}))
        if args.data is not None:
            options = self._data_options(args)
        if not options.get("data"):
            raise DataError("Nothing to evaluate: pass --text, --input or --data.")
        splits = load_splits(**options, class_names=classifier.class_names)
        if args.split == "all":
            texts = splits.train_texts + splits.val_texts + splits.test_texts
            labels = splits.train_labels + splits.val_labels + splits.test_labels
        else:
            texts, labels = splits.test_texts, splits.test_labels
        return {
            "data": options["data"],
            "split": args.split,
            "examples": len(texts),
            "accuracy": classifier.accuracy(texts, labels, args.batch_size),
        }


TASK = SentimentTask()
