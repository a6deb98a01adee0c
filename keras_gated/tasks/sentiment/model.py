"""The sentiment model: the hypermodel (Embedding → recurrent block or bag of words →
Dense softmax) and the saved end-to-end classifier (raw strings → classes)."""

import json
import os

import keras

from keras_gated.cells import check_cell
from keras_gated.tasks.common import load_saved_model
from keras_gated.tasks.sentiment.data import BAG_OF_WORDS
from keras_gated.tuning import GatedHyperModel


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
        self.add_lstm_options(space)

    def build(self, hp):
        # Any length: the training batches are cut to their longest text
        # (length bucketing); the saved classifier feeds `sequence_length`.
        tokens = keras.Input((None,), dtype="int64", name="tokens")
        embedding_dim = self.space.get(hp, "embedding_dim")
        x = keras.layers.Embedding(self.vocab_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
        recurrent = self.recurrent_hparams(hp)
        if recurrent["cell"] == BAG_OF_WORDS:
            # The mean over the unmasked words; a text with none (empty
            # after standardisation) averages to zeros, not 0/0 = NaN.
            x = MaskedMean(name="bag_of_words")(x)
            x = keras.layers.Dense(recurrent["units"], activation="relu", name="hidden")(x)
        else:
            x = self.recurrent_block(x, recurrent, **self.lstm_option_arguments(hp, recurrent))
        x = keras.layers.Dropout(recurrent["dropout"])(x)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", dtype="float32", name="classes")(x)
        model = keras.Model(tokens, outputs, name=f"sentiment_{recurrent['cell']}")
        return self.compile(model, hp, "sparse_categorical_crossentropy", ["accuracy"])


def _metadata_path(path):
    return os.path.splitext(path)[0] + ".json"


def export_classifier(model, vectorizer, class_names, path, data_options=None):
    """Saves an end-to-end model (raw strings → class probabilities) as `.keras`.

    The model is `TextVectorization` (with its fitted vocabulary) followed by
    the trained `model`. The class names and the data options go to the
    `.json` file beside it.
    """
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
    model = load_saved_model(path, keras.Model, made_by="keras-gated train|tune sentiment", compile=True)
    metadata = {}
    if os.path.isfile(_metadata_path(path)):
        with open(_metadata_path(path)) as handle:
            metadata = json.load(handle)
    class_names = metadata.get("class_names") or [str(i) for i in range(model.output_shape[-1])]
    return SentimentClassifier(model, class_names, metadata)
