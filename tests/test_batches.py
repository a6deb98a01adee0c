"""Training batches ordered by (seed, epoch), the epoch-seeding callback, and `describe_batch`
of each task matching the batch its sequence yields (`keras_gated.tasks.batches`)."""

import copy

import keras
import numpy as np
import pytest

from keras_gated.tasks import batches as kb
from keras_gated.tasks import runner


def test_epoch_order_is_the_seeded_permutation_of_that_epoch():
    order = kb.BatchOrder(10, 4, seed=3)
    assert len(order) == 3
    for epoch in (0, 1, 5):
        expected = np.random.default_rng([3, epoch]).permutation(10)
        np.testing.assert_array_equal(order.order(epoch), expected)
        np.testing.assert_array_equal(order.rows(epoch, 2), expected[8:])
    assert not np.array_equal(order.order(0), order.order(1))
    np.testing.assert_array_equal(kb.BatchOrder(10, 4).order(7), np.arange(10))
    assert len(kb.BatchOrder(10, 4, drop_remainder=True)) == 2
    assert len(kb.BatchOrder(10, 4, steps=2)) == 2
    with pytest.raises(IndexError):
        order.rows(0, 3)
    with pytest.raises(ValueError, match=">= 0"):
        kb.BatchOrder(10, 4, seed=-1)


def test_array_batches_follow_the_epoch_they_are_told():
    x = np.arange(10)[:, None] * np.ones((1, 2))
    batches = kb.ArrayBatches(((x, x * 2), np.arange(10)), 4, seed=1)
    for epoch in (0, 4):
        batches.set_epoch(epoch)
        rows = np.random.default_rng([1, epoch]).permutation(10)[4:8]
        (first, second), labels = batches[1]
        np.testing.assert_array_equal(labels, rows)
        np.testing.assert_array_equal(second, x[rows] * 2)
    with pytest.raises(ValueError, match="differ in rows"):
        kb.ArrayBatches((np.zeros(3), np.zeros(4)), 2)


def _dropout_model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((2,))
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    return model


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("interrupted")


class _LoggedBatches(kb.ArrayBatches):
    """Logs `("get", epoch, batch)` at every fetch."""

    def __init__(self, log, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = log

    def __getitem__(self, batch):
        self.log.append(("get", self.epoch, batch))
        return super().__getitem__(batch)


def _fit(model, extra_callbacks=()):
    """Three epochs; returns the (epoch, rows) of every training step.

    Also checks that Keras fetches an epoch's batches only after the
    callbacks' `on_epoch_begin` (the TensorFlow adapter prefetches from a
    generator it starts lazily), so that `EpochSeeding` is not too late.
    """
    x = np.random.default_rng(0).normal(size=(12, 2)).astype("float32")
    log = []
    batches = _LoggedBatches(log, (x, x[:, :1]), 4, seed=5)
    seen = []

    class Seen(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            log.append(("begin", epoch))

        def on_train_batch_begin(self, batch, logs=None):
            seen.append((batches.epoch, tuple(batches.rows(batch))))

    callbacks = kb.epoch_seeding_callbacks({"x": batches}) + [Seen(), *extra_callbacks]
    try:
        model.fit(batches, epochs=3, shuffle=False, verbose=0, callbacks=callbacks)
    except RuntimeError as error:
        assert str(error) == "interrupted"
    begins = [index for index, entry in enumerate(log) if entry[0] == "begin"]
    for start, end in zip(begins, begins[1:] + [len(log)]):
        epoch = log[start][1]
        fetched = [entry for entry in log[start + 1:end] if entry[0] == "get"]
        assert all(entry[1] == epoch for entry in fetched), log
    return seen


def test_a_fit_resumed_by_backup_and_restore_equals_an_uninterrupted_one(tmp_path):
    """Same batches and dropout masks in the resumed epochs: BackupAndRestore restores the
    weights and the optimizer, EpochSeeding the batch order and the seed-generator counters."""
    whole = _dropout_model()
    seen_whole = _fit(whole)
    backup = str(tmp_path / "backup")
    seen_first = _fit(_dropout_model(), [keras.callbacks.BackupAndRestore(backup), _Interrupt()])
    resumed = _dropout_model()
    seen_rest = _fit(resumed, [keras.callbacks.BackupAndRestore(backup)])
    assert [epoch for epoch, _ in seen_rest] == [2, 2, 2]
    assert seen_first + seen_rest == seen_whole
    for after_resume, uninterrupted in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(after_resume, uninterrupted, rtol=1e-6, atol=1e-7)


def test_seed_generator_states_are_the_variables_that_are_not_weights():
    model = _dropout_model()
    states = kb.seed_generator_states(model)
    assert [tuple(s.shape) for s in states] == [(2,)]
    assert "seed_generator" in states[0].path


def test_a_deep_copy_of_the_callback_drives_the_same_batches():
    """KerasTuner deep-copies every trial's callbacks."""
    batches = kb.ArrayBatches((np.zeros((4, 1)), np.zeros(4)), 2, seed=0)
    assert copy.deepcopy(kb.EpochSeeding(batches)).batches is batches


def test_batch_names_describe_the_rows_of_the_batch():
    order = kb.BatchOrder(5, 4, seed=0)
    names = kb.BatchNames(order, [f"text number {i} " + "x" * 80 for i in range(5)], shown=2, width=20)
    rows = order.rows(3, 0)
    description = names(3, 0)
    assert description.startswith("The batch holds 4 examples: ")
    assert f"'text number {rows[0]} xxx...', 'text number {rows[1]} xxx...'" in description
    assert description.endswith(" and 2 more.")
    assert names(3, 1) == f"The batch holds 1 example: 'text number {order.rows(3, 1)[0]} xxx...'."


# --------------------------------------------------------- the three tasks


def _task_data(name, argv, tmp_path):
    from keras_gated.tasks import load_task

    task = load_task(name)
    args = runner.build_parser(task, "train").parse_args([*argv, "--output", str(tmp_path)])
    args.replicas = 1
    return task, args, task.load_data(args)


TASK_ARGUMENTS = {
    "sentiment": ["--data", "sample", "--max-examples", "200", "--batch-size", "16", "--seed", "4"],
    "translation": ["--data", "sample", "--sample-size", "200", "--batch-size", "16", "--seed", "4"],
    "captioning": ["--data", "sample", "--sample-size", "40", "--image-size", "16",
                   "--encoder-filters", "4", "--batch-size", "16", "--seed", "4"],
}


def _first_example_name(name, data, batch_x, rows):
    """How `describe_batch` should begin naming the first example, read off the batch itself."""
    if name == "sentiment":
        return data.splits.train_texts[rows[0]]
    if name == "translation":
        return data.train_pairs[rows[0]][0]
    # Captioning: the image index and the caption the batch's tokens spell.
    tokens = batch_x["tokens"][0]
    return f"image {data.train_batches.image_index[rows[0]]}: {data.vocabulary.decode(tokens)}"


@pytest.mark.parametrize("name", sorted(TASK_ARGUMENTS))
def test_describe_batch_names_the_examples_the_batches_yield_at_that_epoch(name, tmp_path):
    task, args, data = _task_data(name, TASK_ARGUMENTS[name], tmp_path)
    batches = task.fit_kwargs(args, data)["x"]
    assert isinstance(batches, kb.EpochBatches)
    assert task.fit_kwargs(args, data)["shuffle"] is False
    epoch, batch = 2, 1
    batches.set_epoch(epoch)
    rows = batches.rows(batch)
    np.testing.assert_array_equal(rows, np.random.default_rng([4, epoch]).permutation(
        batches.batch_order.count)[16:32])
    x, y = batches[batch]
    description = data.describe_batch(epoch, batch)
    if name == "sentiment":
        np.testing.assert_array_equal(x, np.asarray(data.vectorizer(data.splits.train_texts))[rows])
    elif name == "translation":
        (source, _), _ = data.train_arrays
        np.testing.assert_array_equal(x[0], source[rows])
        expected = data.source.encode(data.train_pairs[rows[0]][0])
        np.testing.assert_array_equal(x[0][0][: len(expected)], expected)
    else:
        np.testing.assert_array_equal(x["tokens"], data.train_batches.tokens[rows][:, :-1])
    first = _first_example_name(name, data, x, rows)
    assert description.startswith(f"The batch holds {len(rows)} examples: {repr(first[:40])[:-1]}"), (
        first, description)
