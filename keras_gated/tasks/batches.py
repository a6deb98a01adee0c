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
