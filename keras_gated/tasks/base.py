"""What a task module provides to the `keras-gated` command line.

A task package (e.g. `keras_gated/tasks/sentiment/`, with `data.py`,
`model.py`, `sample.py` and `task.py`) defines a subclass of `Task` in its
`task.py` and exposes one instance as the attribute `TASK`. It is
registered by name in `keras_gated.tasks.REGISTRY`. Keep the module cheap
to import (import TensorFlow / tensorflow-datasets inside functions) so
that `keras-gated --help` stays fast.

The generic commands call these methods (see `keras_gated.tasks.runner`):

    keras-gated tune TASK ...      load_data -> hypermodel -> tuner.search(**fit_kwargs)
                                   -> evaluate (every trial, test split) -> export (best)
    keras-gated train TASK ...     load_data -> hypermodel.build(fixed hp) -> fit
                                   -> evaluate -> export
    keras-gated evaluate TASK ...  evaluate_saved

and `commands()` lets a task add its own top-level subcommands (for example
`keras-gated translate`), listed in `keras_gated.tasks.EXTRA_COMMANDS`.
"""

import dataclasses
from typing import Callable

# The shared helpers live in keras_gated.tasks.common; these names stay
# importable from here, where the tasks and tests have always found them.
from keras_gated.tasks.common.errors import DataError  # noqa: F401
from keras_gated.tasks.common.errors import SavedModelError  # noqa: F401
from keras_gated.tasks.common.saved_models import load_saved_model  # noqa: F401
from keras_gated.tasks.common.tfds import _download_errors  # noqa: F401
from keras_gated.tasks.common.tfds import network_available  # noqa: F401
from keras_gated.tasks.common.tfds import prepared_tfds_builder  # noqa: F401


@dataclasses.dataclass
class Command:
    """An extra top-level subcommand contributed by a task.

    Attributes:
        help: One line for `keras-gated --help`.
        add_arguments: `add_arguments(parser)` adds the command's options.
        run: `run(args) -> int | None` runs it (return an exit status).
    """

    help: str
    add_arguments: Callable
    run: Callable


class Task:
    """Base class of a keras-gated task. Override the methods marked "must".

    Attributes:
        name: The task's name on the command line ("sentiment").
        description: One paragraph for `--help`.
        objective: The tuner objective: a metric name ("val_accuracy",
            "val_loss", "val_bleu") or a `keras_tuner.Objective`.
        default_epochs, default_batch_size: Defaults of `--epochs`,
            `--batch-size`.
        metric_names: The names of the metrics `evaluate` returns, in table
            order (e.g. `("test_accuracy",)`).
    """

    name = None
    description = ""
    objective = "val_accuracy"
    default_epochs = 3
    default_batch_size = 64
    metric_names = ()

    def add_arguments(self, parser, command):
        """Adds the task's own options (data source, sizes, ...).

        Called for `command` in {"train", "tune", "evaluate"}; the generic
        options (`--hp`, `--epochs`, `--output`, `--tuner`, ...) are already
        there. Every option needs a `help=` text.
        """

    def load_data(self, args):
        """Must: loads and splits the data; returns any object the task's
        other methods understand. The test split must stay out of
        `fit_kwargs`. Raise `keras_gated.tasks.DataError` with a message
        for the user (no stack trace is shown) when data cannot be had."""
        raise NotImplementedError

    def hypermodel(self, args, data):
        """Must: returns a `keras_gated.tuning.GatedHyperModel` built with
        the user's overrides `args.hp` (a list of strings)."""
        raise NotImplementedError

    def fit_kwargs(self, args, data):
        """Must: keyword arguments of `model.fit` / `tuner.search` for the
        training and validation splits: `x` (and `y`), `validation_data`,
        optionally `steps_per_epoch` etc. `epochs` and `verbose` are added
        by the runner; `callbacks` given here (e.g. one that resets stateful
        layers) run before the runner's own (TensorBoard, ...).

        For a resumed `train` to repeat an uninterrupted one, give `x` as a
        `keras_gated.tasks.batches.EpochBatches` (its order a function of
        the seed and the epoch; the runner adds the `EpochSeeding` callback
        that tells it the epoch) with `shuffle=False`. The data object may
        then carry `describe_batch(epoch, batch) -> str` (a `BatchNames`),
        which the NaN guard quotes."""
        raise NotImplementedError

    def evaluate(self, model, data, args):
        """Must: metrics of a trained model on the held-out test split, a
        dict whose keys are `metric_names` (floats)."""
        raise NotImplementedError

    def export(self, model, data, path, args):
        """Saves a self-contained model to `path` (a `.keras` file) that
        `evaluate_saved` and the task's Python API can use on raw inputs.
        The default saves `model` as it is."""
        model.save(path)

    def evaluate_saved(self, args):
        """`keras-gated evaluate TASK`: load `args.model` and evaluate or
        predict. Returns a dict that is printed and written as JSON."""
        raise NotImplementedError(f"The {self.name} task has no evaluate command.")

    def monitor_sample(self, data):
        """A small batch `(x, y)` (16 to 64 examples) for `--gate-monitor`:
        `keras_gated.callbacks.GateMonitor(log_dir, (x, y))`; `y` lets it
        log the gradient flow."""
        raise NotImplementedError(f"The {self.name} task does not support --gate-monitor.")

    def commands(self):
        """Extra top-level subcommands: a dict name -> `Command`."""
        return {}
