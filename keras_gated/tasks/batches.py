"""Training batches whose order is a function of (seed, epoch), shared by every task.

`keras-gated train` resumes a killed fit with `keras.callbacks.BackupAndRestore`,
which restores the weights and the optimizer but not the state of a data
pipeline nor the counters of the dropout seed generators. For a seeded
resumed run to end with the model of an uninterrupted one, everything random
in an epoch is made a function of the seed and the epoch number alone:

* `BatchOrder`: epoch `k` visits the examples in the order
  `numpy.random.default_rng([seed, k]).permutation(count)`;
* `EpochBatches`: a `keras.utils.PyDataset` that yields the batches of that
  order (`ArrayBatches` for arrays; the captioning task subclasses it);
* `EpochSeeding`: a callback that, at the start of each epoch, tells the
  batches the epoch (Keras counts epochs from 0 also in a resumed fit, which
  starts at the epoch after the backup) and restarts the counter of every
  seed generator of the model (dropout, recurrent dropout) at a value that
  depends on the epoch only;
* `BucketedBatchOrder` / `BucketedArrayBatches`: the same, with length
  bucketing: the epoch's permutation is sorted by example length within
  windows of `window` batches, cut into batches, and the full batches are
  shuffled with the same (seed, epoch) generator; `BucketedArrayBatches`
  cuts each batch's sequence arrays to the batch's own longest sequence,
  rounded up to a multiple of `LENGTH_MULTIPLE` (so that a padded short
  sentence does not pay for the split's longest one), and the epoch's
  first batch one multiple wider than any on TensorFlow (`widest_first`:
  Keras fixes a `PyDataset`'s shapes there from its first two batches);
* `BatchNames`: `describe_batch(epoch, batch)` for
  `keras_gated.tuning.guards.StopOnNonFiniteLoss`, naming the examples of a
  batch, which the order makes possible.

`model.fit` must get `shuffle=False` with these batches: Keras would
otherwise shuffle the batch indices with Python's global `random`, whose
state a resumed process does not share. Keras fetches an epoch's batches
only after the callbacks' `on_epoch_begin` (with TensorFlow, from a
generator it starts at the epoch's first step), so the callback is in time;
`tests/test_batches.py` fails if that changes.
"""

import keras
import numpy as np

#: An epoch's seed-generator counters start at `epoch * COUNTER_STRIDE`, so
#: an epoch may draw this many seeds per generator before it reaches the
#: next epoch's. The counters wrap at 2**31 (PyTorch's seeds are int32), so
#: after 2048 epochs an epoch's dropout masks repeat those of an early one.
COUNTER_STRIDE = 2**20
_COUNTER_LIMIT = 2**31


def epoch_permutation(seed, epoch, count):
    """The order of `count` examples in epoch `epoch` (from 0) under `seed` (an int >= 0)."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(count)


class BatchOrder:
    """Which examples make batch `b` of epoch `k`.

    Args:
        count: Number of examples.
        batch_size: Examples per batch (the last one may hold fewer).
        seed: An int >= 0: epoch `k` visits `epoch_permutation(seed, k,
            count)`. None: every epoch visits the examples in their order.
        drop_remainder: Leave out the last batch when it is not full (a
            `MirroredStrategy` needs batches that split evenly).
        steps: At most this many batches per epoch (the first of the order).
    """

    def __init__(self, count, batch_size, seed=None, drop_remainder=False, steps=None):
        if seed is not None and int(seed) < 0:
            raise ValueError(f"The seed of a batch order must be an integer >= 0; got {seed}.")
        self.count = int(count)
        self.batch_size = int(batch_size)
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.steps = steps

    def __len__(self):
        if self.drop_remainder:
            full = self.count // self.batch_size
        else:
            full = -(-self.count // self.batch_size)
        return min(full, self.steps) if self.steps else full

    def order(self, epoch):
        """The example indices of epoch `epoch`, in visiting order."""
        if self.seed is None:
            return np.arange(self.count)
        return epoch_permutation(self.seed, epoch, self.count)

    def rows(self, epoch, batch, order=None):
        """The example indices of batch `batch` of epoch `epoch` (both from 0).

        `order`, if given, is `self.order(epoch)` already computed.
        """
        if not 0 <= batch < len(self):
            raise IndexError(f"Batch {batch} of an epoch of {len(self)} batches.")
        order = self.order(epoch) if order is None else order
        return order[batch * self.batch_size : (batch + 1) * self.batch_size]


#: Batches per sorting window of `BucketedBatchOrder` (the `--bucket-window`
#: default). Measured on a short-sentence corpus (benchmarks/time_to_quality.py):
#: 20 batches leave about as little padding as sorting the whole split, while
#: each batch still draws its examples from a random twentieth-or-so of it.
BUCKET_WINDOW = 20

#: A batch's padded length is its longest sequence rounded up to a multiple
#: of this. The shapes a compiled train step sees are then bounded (at most
#: `max_length / 8` lengths per sequence array): TensorFlow's `reduce_retracing`
#: generalises after a couple of shapes anyway, but JAX compiles once per shape.
LENGTH_MULTIPLE = 8


def sequence_lengths(tokens):
    """Per row of a right-padded 2-D id array, the position after its last nonzero id (0 if none)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"Sequence lengths need a 2-D array of ids; got shape {tokens.shape}.")
    nonzero = tokens != 0
    last = tokens.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0).astype("int64")


def padded_length(longest, width, multiple=LENGTH_MULTIPLE):
    """`longest` rounded up to a multiple of `multiple`, at least `multiple`, at most `width`."""
    rounded = max(multiple, -(-int(longest) // multiple) * multiple)
    return min(rounded, int(width))


def widest_first(lengths, width, multiple=LENGTH_MULTIPLE):
    """The width of an epoch's first bucketed batch: one multiple past the widest batch can be.

    Before an epoch, Keras's `PyDataset` adapter (TensorFlow) fixes the
    shapes of the whole dataset from its first two batches: an axis on
    which they agree gets that fixed size, and a later batch of another
    width fails. A first batch wider than any other makes every sequence
    axis `None`. Its extra columns are padding, masked like the rest, so
    they cost that one batch some time and change no result.
    """
    return padded_length(np.max(lengths, initial=0), width, multiple) + multiple


def widens_first_batch():
    """Whether an epoch's first bucketed batch is widened (`widest_first`).

    Only TensorFlow's `PyDataset` adapter fixes shapes from the first
    batches. JAX compiles the train step once per distinct batch shape
    (about 1.6 s each for the translation sample's model on 2 cores), so
    there a wider first batch would only add a compilation of the train
    step and one of the validation step; PyTorch needs it no more.
    """
    return keras.backend.backend() == "tensorflow"


def cut_or_pad(tokens, width):
    """`tokens` (2-D, right-padded with 0) cut or zero-padded to `width` columns."""
    if tokens.shape[1] >= width:
        return tokens[:, :width]
    return np.pad(tokens, ((0, 0), (0, width - tokens.shape[1])))


class BucketedBatchOrder(BatchOrder):
    """A `BatchOrder` whose batches hold examples of similar length.

    Epoch `k` with a seed: the permutation of `BatchOrder` is cut into
    windows of `window * batch_size` examples; each window is sorted by
    length (stably, so ties keep the permutation's order) and cut into
    batches; the full batches are then shuffled by the same
    `default_rng([seed, k])` generator, the last partial batch (if any)
    stays last (so `drop_remainder` and `steps` mean what they mean for a
    `BatchOrder`). Everything is a function of (seed, epoch), as before.
    Without a seed (validation, test): the whole split sorted by length.

    Args:
        lengths: One length per example (the sort key).
        batch_size, seed, drop_remainder, steps: See `BatchOrder`.
        window: Batches per sorting window; 0 or None: no bucketing (this
            is a plain `BatchOrder`).
    """

    def __init__(self, lengths, batch_size, seed=None, drop_remainder=False, steps=None,
                 window=BUCKET_WINDOW):
        self.lengths = np.asarray(lengths, dtype="int64")
        if self.lengths.ndim != 1:
            raise ValueError(f"One length per example; got an array of shape {self.lengths.shape}.")
        if window is not None and int(window) < 0:
            raise ValueError(f"The bucket window must be a number of batches >= 0; got {window}.")
        self.window = int(window or 0)
        super().__init__(len(self.lengths), batch_size, seed, drop_remainder, steps)

    def order(self, epoch):
        if not self.window:
            return super().order(epoch)
        if self.seed is None:
            return np.argsort(self.lengths, kind="stable")
        rng = np.random.default_rng([int(self.seed), int(epoch)])
        # The same first draw as `epoch_permutation`, so that window=0 and a
        # window of the whole split visit the same examples per epoch.
        permutation = rng.permutation(self.count)
        span = self.window * self.batch_size
        windows = [
            chunk[np.argsort(self.lengths[chunk], kind="stable")]
            for chunk in np.split(permutation, range(span, self.count, span))
        ]
        ordered = np.concatenate(windows) if windows else permutation
        full = self.count // self.batch_size
        batches = ordered[: full * self.batch_size].reshape(full, self.batch_size)
        return np.concatenate([batches[rng.permutation(full)].reshape(-1),
                               ordered[full * self.batch_size:]])


class EpochBatches(keras.utils.PyDataset):
    """A `PyDataset` whose batches follow a `BatchOrder` at the epoch it was told.

    Subclasses define `batch_of(rows)`, the batch made of the example indices
    `rows`. The epoch is 0 until `set_epoch`; `EpochSeeding` sets it at the
    start of every epoch of a fit.
    """

    def __init__(self, order, **kwargs):
        super().__init__(**kwargs)
        self.batch_order = order
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Makes the next batches those of epoch `epoch` (from 0)."""
        self.epoch = int(epoch)
        self._epoch_order = self.batch_order.order(self.epoch)

    def rows(self, batch):
        """The example indices of batch `batch` of the current epoch."""
        return self.batch_order.rows(self.epoch, batch, self._epoch_order)

    def __len__(self):
        return len(self.batch_order)

    def __getitem__(self, batch):
        return self.batch_of(self.rows(batch))

    def batch_of(self, rows):
        raise NotImplementedError


class ArrayBatches(EpochBatches):
    """Batches of a structure of arrays with one row per example.

    Args:
        arrays: Arrays, or a tuple / dict nesting of them, all with `count`
            rows: e.g. `(tokens, labels)` or `((source, decoder_inputs),
            decoder_targets)`; a batch has the same structure.
        batch_size, seed, drop_remainder, steps: See `BatchOrder`.
    """

    def __init__(self, arrays, batch_size, seed=None, drop_remainder=False, steps=None, **kwargs):
        self.arrays = keras.tree.map_structure(np.asarray, arrays)
        counts = {len(array) for array in keras.tree.flatten(self.arrays)}
        if len(counts) != 1:
            raise ValueError(f"The arrays of a batch sequence differ in rows: {sorted(counts)}.")
        order = BatchOrder(counts.pop(), batch_size, seed, drop_remainder, steps)
        super().__init__(order, **kwargs)

    def batch_of(self, rows):
        return keras.tree.map_structure(lambda array: array[rows], self.arrays)


class BucketedArrayBatches(ArrayBatches):
    """`ArrayBatches` in length buckets, each batch padded to its own longest sequence.

    Args:
        arrays: See `ArrayBatches`.
        sequences: A structure like `arrays` of booleans: True marks a
            right-padded 2-D id array (0 is padding) whose second axis a
            batch cuts to `padded_length` of the batch's longest row of that
            array. A model that masks id 0 (`mask_zero`, or the loss's
            `ignore_class=0`) and runs causally over the kept steps gives the
            same results on the cut batch, only sooner.
        batch_size, seed, drop_remainder, steps: See `BatchOrder`.
        window: Batches per sorting window (see `BucketedBatchOrder`); 0:
            no bucketing and no cutting (every batch has the split's width,
            the pipeline before length bucketing).
        length_multiple: Padded lengths are multiples of this.

    The sort key of an example is the sum of its lengths in the sequence
    arrays (source plus target for a translation pair).
    """

    def __init__(self, arrays, sequences, batch_size, seed=None, drop_remainder=False, steps=None,
                 window=BUCKET_WINDOW, length_multiple=LENGTH_MULTIPLE, **kwargs):
        arrays = keras.tree.map_structure(np.asarray, arrays)
        flat_arrays = keras.tree.flatten(arrays)
        flat_sequences = [bool(flag) for flag in keras.tree.flatten(sequences)]
        if len(flat_sequences) != len(flat_arrays):
            raise ValueError(
                f"`sequences` marks {len(flat_sequences)} arrays, but there are {len(flat_arrays)}."
            )
        if not any(flat_sequences):
            raise ValueError("`sequences` marks no array as a sequence of ids to cut.")
        counts = {len(array) for array in flat_arrays}
        if len(counts) != 1:
            raise ValueError(f"The arrays of a batch sequence differ in rows: {sorted(counts)}.")
        self.arrays = arrays
        self.flat_sequences = flat_sequences
        self.length_multiple = int(length_multiple)
        self.sequence_lengths = [
            sequence_lengths(array) if flag else None
            for array, flag in zip(flat_arrays, flat_sequences)
        ]
        key = sum(lengths for lengths in self.sequence_lengths if lengths is not None)
        order = BucketedBatchOrder(key, batch_size, seed, drop_remainder, steps, window)
        EpochBatches.__init__(self, order, **kwargs)

    def __getitem__(self, batch):
        return self.batch_of(self.rows(batch), first=batch == 0)

    def batch_widths(self, rows, first=False):
        """The widths of the sequence arrays (None for the others) in the batch of `rows`.

        `first`: the batch is the first of its epoch, which is one multiple
        wider than any batch can be (see `widest_first`).
        """
        widths = []
        for array, lengths in zip(keras.tree.flatten(self.arrays), self.sequence_lengths):
            if lengths is None:
                widths.append(None)
            elif not self.batch_order.window:
                widths.append(array.shape[1])
            elif first and widens_first_batch():
                widths.append(widest_first(lengths, array.shape[1], self.length_multiple))
            else:
                longest = lengths[rows].max() if len(rows) else 0
                widths.append(padded_length(longest, array.shape[1], self.length_multiple))
        return widths

    def batch_of(self, rows, first=False):
        flat = [
            array[rows] if width is None else cut_or_pad(array[rows], width)
            for array, width in zip(keras.tree.flatten(self.arrays), self.batch_widths(rows, first))
        ]
        return keras.tree.pack_sequence_as(self.arrays, flat)

    def batch_token_counts(self, rows, first=False):
        """`[(real, padded), ...]` per sequence array of the batch of `rows`.

        `real` counts the ids within each row's length, `padded` the
        positions the batch holds (rows times its width).
        """
        widths = [w for w in self.batch_widths(rows, first) if w is not None]
        lengths = [l for l in self.sequence_lengths if l is not None]
        return [
            (int(np.minimum(length[rows], width).sum()), width * len(rows))
            for width, length in zip(widths, lengths)
        ]

    def token_counts(self, epoch=None):
        """`[(real, padded), ...]` per sequence array over one epoch's batches.

        Their ratio is the share of a step's work spent on real tokens
        (`batch_token_counts` summed over the epoch).
        """
        epoch = self.epoch if epoch is None else epoch
        order = self.batch_order.order(epoch)
        totals = [[0, 0] for lengths in self.sequence_lengths if lengths is not None]
        for batch in range(len(self)):
            rows = self.batch_order.rows(epoch, batch, order)
            for total, (real, padded) in zip(totals, self.batch_token_counts(rows, batch == 0)):
                total[0] += real
                total[1] += padded
        return [tuple(total) for total in totals]

class BatchNames:
    """`describe_batch(epoch, batch) -> str`: the first examples of a training batch.

    A small object rather than a method of a task's data: KerasTuner
    deep-copies the callbacks of every trial, and with them this (only the
    order and the names, not the data).

    Args:
        order: The `BatchOrder` of the training batches.
        names: One short string per example (a text, a sentence, an image
            and its caption), in example order.
        shown: How many examples the description names.
        width: Each name is cut to this many characters.
    """

    def __init__(self, order, names, shown=3, width=60):
        if len(names) != order.count:
            raise ValueError(f"{len(names)} names for {order.count} examples.")
        self.order = order
        self.names = [_cut(str(name), width) for name in names]
        self.shown = shown

    def rows(self, epoch, batch):
        """The example indices of batch `batch` of epoch `epoch` (both from 0)."""
        return self.order.rows(epoch, batch)

    def __call__(self, epoch, batch):
        rows = self.rows(epoch, batch)
        named = ", ".join(repr(self.names[row]) for row in rows[: self.shown])
        more = f" and {len(rows) - self.shown} more" if len(rows) > self.shown else ""
        examples = "example" if len(rows) == 1 else "examples"
        return f"The batch holds {len(rows)} {examples}: {named}{more}."


def _cut(text, width):
    return text if len(text) <= width else text[: width - 3] + "..."


def seed_generator_states(model):
    """The state variables of the model's seed generators (dropout, recurrent dropout).

    They are the model's variables that are not weights (Keras documents
    `Layer.weights` as the variables without the metric states and the
    random seeds), so `save_weights`, and with it `BackupAndRestore`, does
    not save them.
    """
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.non_trainable_variables if id(variable) not in weights]


class EpochSeeding(keras.callbacks.Callback):
    """Makes the randomness of each epoch a function of the epoch number.

    At the start of epoch `k`: the training batches (an `EpochBatches`) take
    their epoch-`k` order, and every seed generator of the model keeps its
    seed and restarts its counter at `k * COUNTER_STRIDE` (mod 2**31). A fit
    resumed at epoch `k` (`BackupAndRestore`) then draws the batches and the
    dropout masks of an uninterrupted fit's epoch `k`.

    Args:
        batches: The `EpochBatches` given to `fit` as `x`, or None (only
            the seed generators are set).
    """

    def __init__(self, batches=None):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        if self.batches is not None:
            self.batches.set_epoch(epoch)
        counter = (int(epoch) * COUNTER_STRIDE) % _COUNTER_LIMIT
        for state in seed_generator_states(self.model):
            seed = keras.ops.convert_to_numpy(state.value)[0]
            state.assign(np.asarray([seed, counter], dtype=state.dtype))

    def __deepcopy__(self, memo):
        # KerasTuner deep-copies the callbacks of every trial; the copy must
        # drive the batches that `fit` reads, not a copy of them.
        return EpochSeeding(self.batches)


def epoch_seeding_callbacks(fit_kwargs):
    """`[EpochSeeding(x)]` for the `fit` keyword arguments of a task.

    With `x` an `EpochBatches`, the callback also sets its epoch; with other
    data it only resets the seed generators.
    """
    x = fit_kwargs.get("x")
    return [EpochSeeding(x if isinstance(x, EpochBatches) else None)]
