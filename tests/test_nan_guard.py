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


# ------------------------------------- each task: all padding, and a NaN named


@pytest.mark.parametrize("cell", ["lstm", "coupled", "gru"])
def test_sentiment_model_is_finite_on_a_row_of_only_padding(cell):
    hypermodel = sentiment.SentimentHyperModel(20, 6, 2, [f"cell={cell}", "units=4", "embedding_dim=4"])
    model = hypermodel.build(keras_tuner.HyperParameters())
    tokens = np.array([[0, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0]], "int64")
    assert np.all(np.isfinite(np.asarray(model(tokens))))


@pytest.mark.parametrize("attention", ["additive", "dot", "none"])
def test_translation_model_is_finite_on_a_source_and_a_target_of_only_padding(attention):
    from keras_gated.seq2seq import Seq2Seq

    model = Seq2Seq(13, 11, cell="coupled", units=8, attention=attention, bidirectional=True)
    source = np.array([[0, 0, 0, 0], [5, 6, 0, 0]], "int32")
    decoder_inputs = np.array([[2, 4, 5], [2, 0, 0]], "int32")
    logits = keras.ops.convert_to_numpy(model((source, decoder_inputs)))
    assert np.all(np.isfinite(logits))
    padding_only = keras.ops.convert_to_numpy(model((source, np.zeros((2, 3), "int32"))))
    assert np.all(np.isfinite(padding_only))
    assert np.isfinite(float(Seq2Seq.loss_function()(np.zeros((2, 3), "int32"), padding_only)))


def test_captioning_model_is_finite_on_a_caption_of_only_padding():
    from keras_gated.tasks.captioning.data import Vocabulary
    from keras_gated.tasks.captioning.model import ImageCaptioner
    from keras_gated.tasks.captioning.model import caption_loss

    model = ImageCaptioner(
        Vocabulary.fit(["a red circle left of two blue squares"]), image_size=16, cell="coupled",
        units=8, embedding_dim=8, attention_units=8, encoder_filters=4, max_length=6,
    )
    images = np.zeros((2, 16, 16, 3), "float32")
    tokens = np.array([[0, 0, 0, 0, 0, 0], [2, 5, 6, 0, 0, 0]], "int32")
    logits = keras.ops.convert_to_numpy(model({"images": images, "tokens": tokens}))
    assert np.all(np.isfinite(logits))
    assert np.isfinite(float(caption_loss()(np.zeros((2, 6), "int32"), logits)))


NAN_TASK_ARGUMENTS = {
    "sentiment": ["--data", "sample", "--max-examples", "200", "--hp", "units=4", "--hp", "embedding_dim=4"],
    "translation": ["--data", "sample", "--sample-size", "200", "--hp", "units=4", "--hp", "embedding_dim=16",
                    "--hp", "attention=dot"],
    "captioning": ["--data", "sample", "--sample-size", "40", "--image-size", "16", "--encoder-filters", "4",
                   "--hp", "units=32", "--hp", "embedding_dim=32", "--hp", "attention_units=32"],
}


@pytest.mark.parametrize("name", sorted(NAN_TASK_ARGUMENTS))
def test_a_nan_in_a_task_s_training_names_the_examples_of_the_batch(name, tmp_path):
    """A NaN learning rate makes the weights NaN after the first step of the (resumed) epoch 3,
    so the loss is NaN at its second batch; the error names that batch's examples."""
    from keras_gated.tasks import load_task
    from keras_gated.tasks import runner
    from keras_gated.tasks.batches import epoch_seeding_callbacks

    task = load_task(name)
    args = runner.build_parser(task, "train").parse_args(
        [*NAN_TASK_ARGUMENTS[name], "--batch-size", "8", "--seed", "3", "--output", str(tmp_path)]
    )
    args.replicas = 1
    data = task.load_data(args)
    model = task.hypermodel(args, data).build(keras_tuner.HyperParameters())
    model.optimizer.learning_rate.assign(float("nan"))
    fit_kwargs = task.fit_kwargs(args, data)
    fit_kwargs.pop("validation_data")
    with pytest.raises(NonFiniteLossError) as error:
        model.fit(**fit_kwargs, epochs=3, initial_epoch=2, verbose=0,
                  callbacks=epoch_seeding_callbacks(fit_kwargs) + [StopOnNonFiniteLoss(data.describe_batch)])
    message = str(error.value)
    assert "epoch 3, batch 2" in message
    assert data.describe_batch(2, 1) in message
    assert data.describe_batch(2, 1) != data.describe_batch(0, 1)
    rows = fit_kwargs["x"].rows(1)
    assert fit_kwargs["x"].epoch == 2
    np.testing.assert_array_equal(rows, data.describe_batch.rows(2, 1))
