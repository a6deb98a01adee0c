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
    # The length-bucketed order: a permutation that is a function of (seed, epoch).
    order = batches.batch_order.order(epoch)
    np.testing.assert_array_equal(rows, order[16:32])
    np.testing.assert_array_equal(np.sort(order), np.arange(batches.batch_order.count))
    np.testing.assert_array_equal(order, copy.deepcopy(batches.batch_order).order(epoch))
    x, y = batches[batch]
    description = data.describe_batch(epoch, batch)
    if name == "sentiment":
        tokens = np.asarray(data.vectorizer(data.splits.train_texts))[rows]
        np.testing.assert_array_equal(x, tokens[:, : x.shape[1]])
        assert not tokens[:, x.shape[1]:].any()  # only padding was cut
    elif name == "translation":
        (source, _), _ = data.train_arrays
        np.testing.assert_array_equal(x[0], source[rows][:, : x[0].shape[1]])
        assert not source[rows][:, x[0].shape[1]:].any()
        expected = data.source.encode(data.train_pairs[rows[0]][0])
        np.testing.assert_array_equal(x[0][0][: len(expected)], expected)
    else:
        tokens = data.train_batches.tokens[rows][:, :-1]
        np.testing.assert_array_equal(x["tokens"], tokens[:, : x["tokens"].shape[1]])
    first = _first_example_name(name, data, x, rows)
    assert description.startswith(f"The batch holds {len(rows)} examples: {repr(first[:40])[:-1]}"), (
        first, description)


# ------------------------------------------------------------ length bucketing


def _lengths(count=203, seed=0):
    return np.random.default_rng(seed).integers(1, 40, size=count)


def test_bucketed_order_is_a_seeded_permutation_of_batches_of_similar_length():
    lengths = _lengths()
    order = kb.BucketedBatchOrder(lengths, 8, seed=3, window=5)
    assert len(order) == 26
    epoch0 = order.order(0)
    np.testing.assert_array_equal(np.sort(epoch0), np.arange(203))
    np.testing.assert_array_equal(epoch0, kb.BucketedBatchOrder(lengths, 8, seed=3, window=5).order(0))
    assert not np.array_equal(epoch0, order.order(1))
    # Within a batch the lengths are close: each batch is a slice of a sorted window.
    spread = [np.ptp(lengths[order.rows(0, b)]) for b in range(len(order) - 1)]
    unsorted = kb.BatchOrder(203, 8, seed=3)
    assert np.mean(spread) < 0.5 * np.mean([np.ptp(lengths[unsorted.rows(0, b)]) for b in range(25)])
    # The partial batch stays last, so drop_remainder drops it.
    assert len(order.rows(0, 25)) == 3
    assert len(kb.BucketedBatchOrder(lengths, 8, seed=3, window=5, drop_remainder=True)) == 25
    # Batches are shuffled, not visited shortest first.
    firsts = [lengths[order.rows(0, b)].min() for b in range(25)]
    assert firsts != sorted(firsts)
    # No seed: sorted by length. Window 0: the plain BatchOrder.
    np.testing.assert_array_equal(lengths[kb.BucketedBatchOrder(lengths, 8).order(0)], np.sort(lengths))
    np.testing.assert_array_equal(
        kb.BucketedBatchOrder(lengths, 8, seed=3, window=0).order(2), kb.BatchOrder(203, 8, seed=3).order(2)
    )
    with pytest.raises(ValueError, match=">= 0"):
        kb.BucketedBatchOrder(lengths, 8, window=-1)


def _padded_ids(lengths, width, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), width), "int32")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 50, size=length)
    return ids


def test_bucketed_batches_cut_each_sequence_array_to_its_batch_longest_rounded_up():
    lengths = _lengths()
    source, target = _padded_ids(lengths, 48), _padded_ids(np.maximum(lengths // 2, 1), 30, seed=1)
    labels = np.arange(len(lengths))
    batches = kb.BucketedArrayBatches(((source, target), labels), ((True, True), False), 8, seed=2, window=5)
    np.testing.assert_array_equal(kb.sequence_lengths(source), lengths)
    widths = set()
    for batch in range(len(batches)):
        (x_source, x_target), y = batches[batch]
        rows = batches.rows(batch)
        np.testing.assert_array_equal(y, labels[rows])
        for cut, full in ((x_source, source[rows]), (x_target, target[rows])):
            width = cut.shape[1]
            np.testing.assert_array_equal(cut, kb.cut_or_pad(full, width))
            if batch == 0:
                # Wider than any batch, so that Keras leaves the length axis unfixed.
                whole = source if full.shape[1] == 48 else target
                assert width == kb.widest_first(kb.sequence_lengths(whole), full.shape[1])
                continue
            assert width % 8 == 0 or width == full.shape[1]
            assert width - 8 < kb.sequence_lengths(full).max() <= width
        widths.add(x_source.shape[1])
    assert len(widths) > 2
    assert batches[0][0][0].shape[1] > max(batches[b][0][0].shape[1] for b in range(1, len(batches)))
    (source_real, source_padded), (target_real, _) = batches.token_counts(0)
    assert source_real == lengths.sum() and target_real == np.maximum(lengths // 2, 1).sum()
    assert source_padded < 0.8 * len(lengths) * 48
    # Window 0: every batch as wide as the split (the pipeline before bucketing).
    unbucketed = kb.BucketedArrayBatches(((source, target), labels), ((True, True), False), 8, seed=2, window=0)
    assert unbucketed[0][0][0].shape == (8, 48)
    assert kb.padded_length(3, 48) == 8 and kb.padded_length(17, 20) == 20 and kb.padded_length(0, 48) == 8
    with pytest.raises(ValueError, match="marks 2 arrays"):
        kb.BucketedArrayBatches((source, labels, labels), (True, False), 8)


def test_a_bucketed_batch_has_the_loss_of_its_examples_padded_to_the_split_longest():
    from keras_gated.seq2seq import Seq2Seq

    keras.utils.set_random_seed(0)
    lengths = _lengths(64)
    source = _padded_ids(lengths, 48)
    targets = _padded_ids(np.maximum(lengths // 3, 1), 24, seed=1)
    decoder_inputs = np.concatenate([np.full((64, 1), 2, "int32"), targets[:, :-1]], axis=1)
    arrays = ((source, decoder_inputs), targets)
    model = Seq2Seq(50, 50, cell="lstm", units=8, embedding_dim=8)
    model.build()
    loss = Seq2Seq.loss_function()
    batches = kb.BucketedArrayBatches(arrays, ((True, True), True), 16, seed=1, window=2)
    for batch in range(len(batches)):
        (x_source, x_inputs), y = batches[batch]
        rows = batches.rows(batch)
        assert x_source.shape[1] < 48 or batch == 0
        cut = float(loss(y, model((x_source, x_inputs))))
        full = float(loss(targets[rows], model((source[rows], decoder_inputs[rows]))))
        assert cut == pytest.approx(full, rel=1e-5, abs=1e-6)


def test_the_train_step_is_traced_a_bounded_number_of_times_over_many_batch_widths():
    keras.utils.set_random_seed(0)
    lengths = _lengths(400)
    tokens = _padded_ids(lengths, 64)
    labels = (lengths > 20).astype("int64")
    batches = kb.BucketedArrayBatches((tokens, labels), (True, False), 16, seed=0, window=25)
    widths = {batches[b][0].shape[1] for b in range(len(batches))}
    batches.set_epoch(0)
    inputs = keras.Input((None,), dtype="int64")
    x = keras.layers.Embedding(50, 4, mask_zero=True)(inputs)
    import keras_gated as kg

    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(kg.LSTM(4)(x)))
    model.compile("adam", "sparse_categorical_crossentropy")
    traces = []
    train_step = model.train_step
    # Python runs in a traced step only while it is traced (TF: (data); JAX: (state, data)).
    model.train_step = lambda *step_args: (traces.append(1), train_step(*step_args))[1]
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    # TensorFlow's reduce_retracing relaxes the width to None after a couple of shapes.
    assert len(widths) >= 4
    if keras.backend.backend() == "tensorflow":
        assert len(traces) <= 3, (len(traces), widths)
    else:
        assert len(traces) <= len(widths) + 1
