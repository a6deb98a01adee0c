"""What a task module provides to the `keras-gated` command line.

A task module (e.g. `keras_gated/tasks/sentiment.py`) defines a subclass of
`Task` and exposes one instance as the module attribute `TASK`. It is
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
import os
import socket
import threading
from typing import Callable


class DataError(Exception):
    """Data cannot be loaded; the message tells the user what to do.

    The command line prints the message alone (no stack trace) and exits
    with status 2. Also `keras_gated.tasks.DataError`.
    """


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


# Where tensorflow-datasets downloads from: the host network_available asks.
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def network_available(timeout=3.0):
    """Whether the download host answers within `timeout` seconds.

    `KERAS_GATED_OFFLINE=1` answers False without touching the network. The
    check runs in a daemon thread so a stuck DNS lookup cannot hang the run.
    """
    if os.environ.get("KERAS_GATED_OFFLINE", "") not in ("", "0"):
        return False
    answer = []

    def probe():
        try:
            socket.create_connection(_DOWNLOAD_HOST, timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


class SavedModelError(ValueError):
    """A `.keras` file cannot be loaded as the model a command expects.

    The command line prints the message alone and exits with status 2.
    """


def load_saved_model(path, expected_class=None, made_by="keras-gated train|tune", compile=False):
    """Loads a `.keras` file with a message that names what is wrong with it.

    Keras reports a truncated or non-zip file as "File not found" and a model
    of another package as a `TypeError` about deserialisation; this names the
    actual problem and the fix.

    Args:
        path: The `.keras` file.
        expected_class: The class the model must be (e.g. `Seq2Seq`), or None.
        made_by: The command that writes such files, for the messages.
        compile: Passed to `keras.saving.load_model`.

    Raises:
        SavedModelError: missing, empty, truncated or corrupt file, objects of
            another package, or a model of another class.
    """
    import json
    import zipfile

    import keras

    import keras_gated  # noqa: F401  (registers the cells for deserialization)

    if not os.path.isfile(path):
        raise SavedModelError(f"{path}: no such model file.")
    if os.path.getsize(path) == 0:
        raise SavedModelError(f"{path}: the model file is empty; save it again with `{made_by}`.")
    if not zipfile.is_zipfile(path):
        raise SavedModelError(
            f"{path}: not a .keras model file (a .keras file is a zip archive; this one is "
            f"truncated or of another format). Copy it again or save it again with `{made_by}`."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            names = set(archive.namelist())
            if damaged is None and "config.json" in names:
                config_text = archive.read("config.json")
    except (zipfile.BadZipFile, EOFError) as error:
        raise SavedModelError(
            f"{path}: the .keras archive is damaged ({error}). "
            f"Copy it again or save it again with `{made_by}`."
        ) from None
    if damaged is not None:
        problem = f"its member {damaged!r} fails its checksum"
    elif not {"config.json", "metadata.json"} <= names:
        problem = "it has no config.json or metadata.json"
    else:
        problem = None
    if problem:
        raise SavedModelError(
            f"{path}: the .keras archive is damaged ({problem}). "
            f"Copy it again or save it again with `{made_by}`."
        )
    try:
        config = json.loads(config_text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SavedModelError(f"{path}: the model's config.json is not JSON ({error}).") from None
    foreign = sorted(_foreign_objects(config))
    if foreign:
        raise SavedModelError(
            f"{path}: the model uses objects of another package ({', '.join(foreign[:5])}); "
            f"import that package before loading it, or load a model saved by `{made_by}`."
        )
    try:
        model = keras.saving.load_model(path, compile=compile)
    except OSError as error:  # h5py: the weights inside the archive are not HDF5
        raise SavedModelError(f"{path}: the model's weights cannot be read ({error}).") from None
    if expected_class is not None and not isinstance(model, expected_class):
        raise SavedModelError(
            f"{path} holds a {model.__class__.__name__}, not the {expected_class.__name__} "
            f"that `{made_by}` saves."
        )
    return model


def _foreign_objects(config):
    """`registered_name`s in a saved config that no registered class answers to."""
    import keras

    found = set()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("registered_name")
            if isinstance(name, str) and ">" in name and keras.saving.get_registered_object(name) is None:
                found.add(name)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def prepared_tfds_builder(name, data_dir, offline_message, error_class=DataError):
    """A tensorflow-datasets builder of `name`, prepared (downloaded) if need be.

    Offline, a set that is not prepared fails at once (no download attempt).
    Only the errors of a bad name and of a failed download become
    `error_class`; anything else is a bug and propagates as it is.

    Args:
        name: The tensorflow-datasets name (`imdb_reviews`, `coco_captions`).
        data_dir: Where prepared sets live (`--tfds-dir`), or None.
        offline_message: `offline_message(where) -> str` for the user: what
            to do instead (a local file, `--data sample`, `--tfds-dir`).
        error_class: The exception raised for the user (a `DataError`).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise error_class(
            "tensorflow-datasets is not installed (pip install 'keras-gated[examples]'); "
            "or use a local file or --data sample."
        ) from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except ValueError as error:  # DatasetNotFoundError and its kin are ValueErrors
        raise error_class(
            f"--data {name!r} is not a file, 'sample', nor a tensorflow-datasets name "
            f"({str(error).splitlines()[0]})."
        ) from None
    if builder.is_prepared():
        return builder
    where = data_dir or os.path.dirname(os.path.dirname(builder.data_dir))
    if not network_available():
        raise error_class(offline_message(where))
    try:
        builder.download_and_prepare()
    except _download_errors() as error:
        raise error_class(
            f"{offline_message(where)} (download failed: {error.__class__.__name__}: {str(error)[:200]})"
        ) from None
    return builder


def _download_errors():
    """The exception types of a failed tensorflow-datasets download.

    The checksum and extraction errors are not exported by tfds; they are
    imported from their modules here only, and `tests/test_bad_inputs.py`
    fails loudly if they move.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError
    from tensorflow_datasets.core.download.extractor import ExtractError

    return (
        OSError,  # connection, HTTP (requests and urllib raise OSErrors), disk full
        tfds.download.DownloadError,
        NonMatchingChecksumError,
        ExtractError,
        tf.errors.OpError,  # tf.io.gfile on a cloud bucket
    )
