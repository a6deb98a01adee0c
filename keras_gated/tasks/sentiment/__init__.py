"""Sentiment classification: which gated cell reads reviews best?

    keras-gated tune sentiment --data sample --max-trials 4
    keras-gated tune sentiment --data imdb_reviews --sequence-length 200
    keras-gated train sentiment --data reviews.csv --text-column review --label-column stars
    keras-gated evaluate sentiment --model runs/sentiment/best_model.keras --text "not bad at all"

Data (`--data`):

* `sample`: the embedded generated reviews (`keras_gated.tasks.sentiment.sample`);
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

The package: `data` (readers, splits, vectorizer, batches), `model` (the
hypermodel and the saved classifier), `sample` (the embedded reviews) and
`task` (the command-line wiring, `TASK`). The names below are re-exported
here, where they were when the task was one module.
"""

from keras_gated.tasks.sentiment.data import BAG_OF_WORDS
from keras_gated.tasks.sentiment.data import FILE_FORMATS
from keras_gated.tasks.sentiment.data import TFDS_SOURCES
from keras_gated.tasks.sentiment.data import SentimentData
from keras_gated.tasks.sentiment.data import TextSplits
from keras_gated.tasks.sentiment.data import count_empty_texts
from keras_gated.tasks.sentiment.data import encode_labels
from keras_gated.tasks.sentiment.data import load_splits
from keras_gated.tasks.sentiment.data import make_batches
from keras_gated.tasks.sentiment.data import make_dataset
from keras_gated.tasks.sentiment.data import make_train_batches
from keras_gated.tasks.sentiment.data import make_vectorizer
from keras_gated.tasks.sentiment.data import offline_message
from keras_gated.tasks.sentiment.data import read_table
from keras_gated.tasks.sentiment.data import read_tfds
from keras_gated.tasks.sentiment.data import vectorize
from keras_gated.tasks.sentiment.model import MaskedMean
from keras_gated.tasks.sentiment.model import SentimentClassifier
from keras_gated.tasks.sentiment.model import SentimentHyperModel
from keras_gated.tasks.sentiment.model import export_classifier
from keras_gated.tasks.sentiment.model import load_classifier
from keras_gated.tasks.sentiment.task import TASK
from keras_gated.tasks.sentiment.task import SentimentTask

__all__ = [
    "BAG_OF_WORDS",
    "FILE_FORMATS",
    "MaskedMean",
    "SentimentClassifier",
    "SentimentData",
    "SentimentHyperModel",
    "SentimentTask",
    "TASK",
    "TFDS_SOURCES",
    "TextSplits",
    "count_empty_texts",
    "encode_labels",
    "export_classifier",
    "load_classifier",
    "load_splits",
    "make_batches",
    "make_dataset",
    "make_train_batches",
    "make_vectorizer",
    "offline_message",
    "read_table",
    "read_tfds",
    "vectorize",
]
