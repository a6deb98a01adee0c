"""No silent NaN: the bag of words over no words, and training that stops at a non-finite loss."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_gated.tasks import sentiment
from keras_gated.tuning.guards import NonFiniteLossError
from keras_gated.tuning.guards import StopOnNonFiniteLoss


def _bag_of_words(vocab_size=20, length=6):
    hypermodel = sentiment.SentimentHyperModel(
        vocab_size, length, 2, ["cell=bow", "units=4", "embedding_dim=4"]
    )
    return hypermodel.build(keras_tuner.HyperParameters())


def test_bag_of_words_is_finite_on_a_text_with_no_words():
    """A text empty after standardisation is all padding: its mean is defined as zeros."""
    model = _bag_of_words()
    tokens = np.array([[0, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0]], "int32")
    probabilities = np.asarray(model(tokens))
    assert np.all(np.isfinite(probabilities))
    pooled = keras.Model(model.inputs, model.get_layer("bag_of_words").output)(tokens)
    np.testing.assert_array_equal(np.asarray(pooled)[0], 0.0)
    embedded = np.asarray(model.get_layer("embedding")(tokens[1:, :2]))
    np.testing.assert_allclose(np.asarray(pooled)[1], embedded[0].mean(0), rtol=1e-6, atol=1e-6)


def test_bag_of_words_trains_to_a_finite_loss_with_empty_texts():
    model = _bag_of_words()
    tokens = np.zeros((8, 6), "int32")
    tokens[::2, :3] = [5, 6, 7]
    labels = np.arange(8) % 2
    history = model.fit(tokens, labels, epochs=2, batch_size=4, verbose=0,
                        callbacks=[StopOnNonFiniteLoss()])
    assert np.all(np.isfinite(history.history["loss"]))


def test_training_stops_at_a_nan_loss_naming_epoch_and_batch():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((8, 3), "float32")
    x[5] = np.nan  # the second batch of 4 in the first epoch
    with pytest.raises(NonFiniteLossError) as error:
        model.fit(x, np.ones((8, 1)), batch_size=4, epochs=2, shuffle=False, verbose=0,
                  callbacks=[StopOnNonFiniteLoss()])
    message = str(error.value)
    assert "epoch 1, batch 2" in message
    assert "NaN, Inf or empty" in message


class _PoisonHyperModel(keras_tuner.HyperModel):
    """A dense model whose `poison=1` trials multiply their inputs by NaN."""

    def build(self, hp):
        poison = hp.Choice("poison", [0, 1])
        inputs = keras.Input((3,))
        x = inputs * (float("nan") if poison else 1.0)
        model = keras.Model(inputs, keras.layers.Dense(1)(x))
        model.compile("sgd", "mse")
        return model


def test_a_trial_that_goes_nan_is_recorded_as_failed_not_scored(tmp_path):
    from keras_gated.tuning.tuners import completed_trials
    from keras_gated.tuning.tuners import failed_trials
    from keras_gated.tuning.tuners import make_tuner

    tuner = make_tuner("grid", _PoisonHyperModel(), "val_loss", str(tmp_path), "poison",
                       max_trials=2, max_consecutive_failed_trials=3)
    x, y = np.ones((8, 3), "float32"), np.ones((8, 1), "float32")
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=4, verbose=0)
    completed = completed_trials(tuner)
    assert [t.hyperparameters.get("poison") for t in completed] == [0]
    failed = failed_trials(tuner)
    assert len(failed) == 1
    assert "epoch 1, batch 1" in failed[0][1]


def test_texts_empty_after_standardisation_are_counted():
    vectorizer = sentiment.make_vectorizer(["a good film", "a bad film"], 100, 6)
    assert sentiment.count_empty_texts(["!!!", "a film", "", "?.,"], vectorizer) == 3
    assert sentiment.count_empty_texts([], vectorizer) == 0
