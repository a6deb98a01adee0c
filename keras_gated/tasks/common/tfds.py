"""The one tensorflow-datasets loader of the tasks, with one offline rule.

Offline (no answer from the download host, or `KERAS_GATED_OFFLINE=1`) a set
that is not prepared fails at once with a `DataError` that says what to use
instead; a prepared set loads without touching the network.
"""

import os
import socket
import threading

from keras_gated.tasks.common.errors import DataError


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


def offline_message(name, where, instead):
    """What the user reads when set `name` is not prepared in `where` and cannot be downloaded.

    `instead` names the task's other sources, e.g. "the embedded sample
    (--data sample) or a local file (--data pairs.tsv)".
    """
    return (
        f"Cannot get the tensorflow-datasets dataset {name!r}: it is not prepared in {where} "
        f"and this machine cannot reach the download server. Use {instead}, or prepare "
        "the dataset on a machine with network access and pass its directory with --tfds-dir."
    )


def prepared_tfds_builder(name, data_dir, instead):
    """A tensorflow-datasets builder of `name`, prepared (downloaded) if need be.

    Offline, a set that is not prepared fails at once (no download attempt).
    Only the errors of a bad name and of a failed download become a
    `DataError`; anything else is a bug and propagates as it is.

    Args:
        name: The tensorflow-datasets name (`imdb_reviews`, `coco_captions`).
        data_dir: Where prepared sets live (`--tfds-dir`), or None.
        instead: The task's other data sources, for the offline message
            (see `offline_message`).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            "tensorflow-datasets is not installed (pip install 'keras-gated[examples]'); "
            "or use a local file or --data sample."
        ) from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except ValueError as error:  # DatasetNotFoundError and its kin are ValueErrors
        raise DataError(
            f"--data {name!r} is not a file, 'sample', nor a tensorflow-datasets name "
            f"({str(error).splitlines()[0]})."
        ) from None
    if builder.is_prepared():
        return builder
    where = data_dir or os.path.dirname(os.path.dirname(builder.data_dir))
    if not network_available():
        raise DataError(offline_message(name, where, instead))
    try:
        builder.download_and_prepare()
    except _download_errors() as error:
        raise DataError(
            f"{offline_message(name, where, instead)} "
            f"(download failed: {error.__class__.__name__}: {str(error)[:200]})"
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
