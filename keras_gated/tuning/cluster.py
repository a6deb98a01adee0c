"""Training one model over several processes (machines): TensorFlow workers or JAX processes.

Two engines, both the ones their users already run:

* TensorFlow: `tf.distribute.MultiWorkerMirroredStrategy`, configured by
  the `TF_CONFIG` environment variable (`--strategy multi-worker`, or
  `--strategy auto` when `TF_CONFIG` names several workers). Every worker
  runs the same command; each reads its shard of every global batch: the
  batches are a `keras.utils.PyDataset` turned into a generator-backed
  `tf.data.Dataset` by Keras, which has no files, so tf.data's AUTO
  sharding policy falls back to sharding by DATA: each worker builds every
  global batch (the one-process batch of the same (seed, epoch)) and keeps
  its replicas' contiguous slice of it.
* JAX: `--coordinator HOST:PORT --num-processes N --process-id I` (or the
  `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`
  environment variables) call `keras.distribution.initialize` (which calls
  `jax.distributed.initialize`), and a `keras.distribution.DataParallel`
  over the devices of all processes is set with `auto_shard_dataset=False`:
  each process feeds its local slice of the global batch
  (`ProcessShard`: process `i` of `N` takes the `i`-th contiguous block
  of the one-process batch), which Keras assembles into the global batch
  with `jax.make_array_from_process_local_data`.

What each process writes (`ClusterRole.writes_shared_files`): the chief
alone (TensorFlow: the `chief` task, else worker 0; JAX: process 0)
writes the TensorBoard logs, the backup of `BackupAndRestore`, the saved
model and `results.json` under `--output` (shared storage). The others
write those to a temporary directory that is removed at the end, as
TensorFlow's multi-worker guide prescribes (saving runs on every worker),
plus `OUTPUT/workers/<role>.json`, the record that they took part. See
docs/scaling.md.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile

import keras

from keras_gated.tasks.batches import EpochBatches

#: The environment variables of a JAX cluster, read when the flags are absent.
JAX_ENVIRONMENT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class ClusterConfigError(ValueError):
    """A cluster is asked for but its configuration is missing or wrong; the message says the fix."""


@dataclasses.dataclass(frozen=True)
class ClusterRole:
    """Where this process stands in a multi-process run.

    Attributes:
        engine: "tensorflow" (MultiWorkerMirroredStrategy), "jax"
            (jax.distributed) or "single" (one process).
        name: "chief", "worker-0", "worker-1", "process-1", ...
        process_index: 0 for the chief, then 1, 2, ... in cluster order.
        process_count: The number of processes training the model.
        writes_shared_files: Whether this process writes the logs, backups,
            model and results under `--output` (the chief does).
    """

    engine: str
    name: str
    process_index: int
    process_count: int
    writes_shared_files: bool

    @property
    def is_distributed(self):
        return self.process_count > 1


SINGLE_PROCESS = ClusterRole("single", "chief", 0, 1, True)


def read_tf_config(environ=None):
    """The parsed `TF_CONFIG` (a dict), or None when it is not set."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterConfigError(
            f"TF_CONFIG is not valid JSON ({error}). Set it to e.g. "
            '\'{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}\'.'
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not isinstance(
        config.get("task"), dict
    ):
        raise ClusterConfigError(
            'TF_CONFIG needs a "cluster" (e.g. {"worker": ["host1:port", "host2:port"]}) and a "task" '
            '(e.g. {"type": "worker", "index": 0}); see docs/scaling.md.'
        )
    return config


def tf_config_process_count(config):
    """How many processes of `TF_CONFIG` train the model (its chief and workers)."""
    cluster = config["cluster"]
    return len(cluster.get("chief", ())) + len(cluster.get("worker", ()))


def wants_multi_worker(prefer, environ=None):
    """Whether `--strategy prefer` means MultiWorkerMirroredStrategy here.

    "multi-worker" always; "auto" when `TF_CONFIG` names several workers.
    """
    if prefer == "multi-worker":
        return True
    config = read_tf_config(environ) if prefer == "auto" else None
    return config is not None and tf_config_process_count(config) > 1


def jax_cluster_options(coordinator=None, num_processes=None, process_id=None, environ=None):
    """`(coordinator, num_processes, process_id)` from the flags, else the `JAX_*` variables.

    Returns None when no JAX cluster is asked for; raises `ClusterConfigError`
    when one is asked for incompletely.
    """
    environ = os.environ if environ is None else environ
    coordinator = coordinator or environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None and environ.get("JAX_NUM_PROCESSES"):
        num_processes = _environment_int(environ, "JAX_NUM_PROCESSES")
    if process_id is None and environ.get("JAX_PROCESS_ID"):
        process_id = _environment_int(environ, "JAX_PROCESS_ID")
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise ClusterConfigError(
                "--num-processes / --process-id need --coordinator HOST:PORT (the address of process 0, "
                "the same on every process), or the JAX_COORDINATOR_ADDRESS environment variable."
            )
        return None
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterConfigError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:1234); got {coordinator!r}.")
    if num_processes is None or process_id is None:
        raise ClusterConfigError(
            "--coordinator needs --num-processes N (processes in all) and --process-id I (0 to N-1, "
            "0 on the coordinator's machine), or JAX_NUM_PROCESSES and JAX_PROCESS_ID."
        )
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ClusterConfigError(
            f"--process-id must be in 0..{num_processes - 1} for --num-processes {num_processes}; got {process_id}."
        )
    return coordinator, num_processes, process_id


def _environment_int(environ, name):
    try:
        return int(environ[name])
    except ValueError:
        raise ClusterConfigError(f"{name} must be an integer; got {environ[name]!r}.") from None


def check_cluster_arguments(backend, strategy, jax_options, environ=None):
    """Raises `ClusterConfigError` for flags that cannot work together on `backend`."""
    environ = os.environ if environ is None else environ
    if strategy == "multi-worker":
        if backend != "tensorflow":
            raise ClusterConfigError(
                f"--strategy multi-worker is TensorFlow's MultiWorkerMirroredStrategy; the backend is "
                f"{backend}. Set KERAS_BACKEND=tensorflow, or on JAX pass --coordinator HOST:PORT "
                "--num-processes N --process-id I instead."
            )
        if read_tf_config(environ) is None:
            raise ClusterConfigError(
                "--strategy multi-worker needs the TF_CONFIG environment variable on every worker, e.g. "
                'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}\' (index 1 on the second machine); see docs/scaling.md.'
            )
    if jax_options is not None:
        if backend != "jax":
            raise ClusterConfigError(
                f"--coordinator / --num-processes / --process-id start a JAX cluster; the backend is "
                f"{backend}. Set KERAS_BACKEND=jax, or on TensorFlow use TF_CONFIG with --strategy multi-worker."
            )
        if strategy not in ("auto", "default"):
            raise ClusterConfigError(
                f"--strategy {strategy} does not apply to a JAX cluster (it uses keras.distribution.DataParallel); "
                "leave --strategy at auto."
            )
    if "KERASTUNER_ORACLE_IP" in environ and (
        jax_options is not None or (backend == "tensorflow" and wants_multi_worker(strategy, environ))
    ):
        raise ClusterConfigError(
            "A distributed search (KERASTUNER_ORACLE_IP) whose trials each train over several processes is "
            "not supported: run either the search over machines (KerasTuner's chief and workers, one model "
            "per worker) or `tune` under --strategy multi-worker / a JAX cluster (every process runs the same "
            "trials together). See docs/scaling.md."
        )


def check_global_batch(batch_size, replicas, role):
    """Raises `ClusterConfigError` when the global batch does not split over a cluster's replicas."""
    if role.is_distributed and batch_size % replicas:
        raise ClusterConfigError(
            f"--batch-size {batch_size} (the global batch) does not split over the {replicas} "
            f"replicas of {role.process_count} processes: use a multiple of {replicas}."
        )


def check_tuner_kind(kind, role):
    """Raises `ClusterConfigError` for a tuner that cannot run under `role`'s strategy."""
    if role.engine == "tensorflow" and kind == "hyperband":
        raise ClusterConfigError(
            "--tuner hyperband under a multi-worker strategy: Hyperband continues trials from "
            "checkpoints that KerasTuner keeps on the chief only. Use --tuner random, bayesian or grid."
        )


def start_jax_cluster(coordinator, num_processes, process_id):
    """Joins the JAX cluster (`jax.distributed.initialize`, through Keras); call before any JAX work."""
    import keras

    keras.distribution.initialize(coordinator, num_processes=num_processes, process_id=process_id)


def multi_worker_strategy():
    """`tf.distribute.MultiWorkerMirroredStrategy()` from `TF_CONFIG`.

    It must be created before any other TensorFlow operation: it configures
    the collective ops of the process's eager context.
    """
    import tensorflow as tf

    from keras_gated._keras_private import use_local_batch_to_build

    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        raise ClusterConfigError(
            f"MultiWorkerMirroredStrategy could not start ({error}): it must be created before "
            "any other TensorFlow operation, at the start of the program."
        ) from None
    use_local_batch_to_build()
    return strategy


def role_of(strategy):
    """This process's `ClusterRole` under `strategy` (or the JAX cluster it joined)."""
    if _is_multi_worker_strategy(strategy):
        resolver = strategy.cluster_resolver
        cluster = resolver.cluster_spec().as_dict()
        chiefs = len(cluster.get("chief", ()))
        index = resolver.task_id + (chiefs if resolver.task_type == "worker" else 0)
        return ClusterRole(
            "tensorflow",
            "chief" if resolver.task_type == "chief" else f"{resolver.task_type}-{resolver.task_id}",
            index,
            chiefs + len(cluster.get("worker", ())),
            # True on the chief, or on worker 0 when there is no chief.
            bool(strategy.extended.should_checkpoint),
        )
    import keras

    if keras.backend.backend() == "jax":
        import jax

        if jax.process_count() > 1:
            index = jax.process_index()
            return ClusterRole("jax", f"process-{index}", index, jax.process_count(), index == 0)
    return SINGLE_PROCESS


def _worker_lost_error():
    import keras_tuner

    from keras_gated.tasks import TrainingFailedError

    class WorkerLostError(TrainingFailedError, keras_tuner.errors.FatalError):
        """Another worker of the cluster died. A KerasTuner `FatalError` as well: the
        search stops at once, the trial stays RUNNING and a resumed search trains it again,
        rather than recording it as failed."""

    return WorkerLostError


@contextlib.contextmanager
def peer_failures_explained(role, resumes):
    """Turns TensorFlow's error for a dead worker into a `TrainingFailedError` with the procedure.

    When a worker dies, the collective ops of the others fail once it stops
    sending heartbeats (`tf.errors.UnavailableError`, a few seconds later).
    `resumes` says what a restart resumes (e.g. the chief's backup).
    """
    if role.engine != "tensorflow":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except tf.errors.UnavailableError as error:
        # "... Collective ops is aborted by: Error reported from /job:worker/task:1: The following
        # tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1 ..."
        lines = str(error.message).strip().splitlines()
        cause = " ".join(lines[:2]).split("aborted by: ")[-1][:300]
        raise _worker_lost_error()(
            f"{role.name}: another worker of the cluster stopped ({cause}). Stop every worker that still "
            f"runs, then start all of them again with the same commands: {resumes}. See docs/scaling.md."
        ) from None


def _is_multi_worker_strategy(strategy):
    if strategy is None or not type(strategy).__module__.startswith("tensorflow"):
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class ProcessShard(EpochBatches):
    """This process's slice of every global batch of `batches` (an `EpochBatches`).

    Process `index` of `count` takes rows `[index * b, (index + 1) * b)` of
    each global batch of `batch_size = count * b` examples, so the batches
    of all processes put together are the one-process batches, in order.
    A last, smaller batch that does not split evenly over the processes is
    left out of every epoch (JAX assembles a global batch from equal local
    slices); one that does, such as 20 rows over 2 processes, is kept.

    Args:
        batches: The `EpochBatches` of the global batches (the one-process run's).
        index, count: This process's index and the number of processes.
    """

    def __init__(self, batches, index, count):
        self.global_batches = batches
        self.index = int(index)
        self.count = int(count)
        super().__init__(batches.batch_order)

    def __len__(self):
        steps = len(self.batch_order)
        order = self.batch_order
        if steps and (order.count - (steps - 1) * order.batch_size) % self.count and (
            order.count < steps * order.batch_size
        ):
            return steps - 1
        return steps

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.global_batches.set_epoch(epoch)

    def _local_slice(self, batch):
        """The rows of global batch `batch` that are this process's, as a slice."""
        if not 0 <= batch < len(self):
            raise IndexError(f"Batch {batch} of an epoch of {len(self)} batches.")
        count = len(super().rows(batch))
        if count % self.count:
            raise ClusterConfigError(
                f"A batch of {count} examples does not split over {self.count} processes: "
                "use a --batch-size that is a multiple of the number of processes."
            )
        size = count // self.count
        return slice(self.index * size, (self.index + 1) * size)

    def rows(self, batch):
        return super().rows(batch)[self._local_slice(batch)]

    def __getitem__(self, batch):
        # The slice of the global batch, not a batch of the local rows: a
        # length-bucketed batch is cut to the width of its longest example
        # of all processes, so every process's slice has the same shape.
        local = self._local_slice(batch)
        return keras.tree.map_structure(lambda array: array[local], self.global_batches[batch])

    def batch_of(self, rows):
        return self.global_batches.batch_of(rows)


def shard_fit_kwargs(fit_kwargs, role):
    """`fit_kwargs` with `x` replaced by this process's `ProcessShard` on a JAX cluster.

    TensorFlow shards inside `MultiWorkerMirroredStrategy` (see the module
    doc), so only JAX processes need their slice. The validation data is not
    sharded: every JAX process evaluates all of it, which repeats each
    validation example once per process and leaves the metrics unchanged.
    """
    if role.engine != "jax":
        return fit_kwargs
    x = fit_kwargs.get("x")
    if not isinstance(x, EpochBatches):
        raise ClusterConfigError(
            f"A JAX cluster feeds each process its slice of the batches; this task's training data is "
            f"{type(x).__name__}, not keras_gated.tasks.batches.EpochBatches. Train it on one process."
        )
    return dict(fit_kwargs, x=ProcessShard(x, role.process_index, role.process_count))


def local_scope(role):
    """A scope in which models get variables on this process's devices alone.

    In a JAX cluster a model built under the global `DataParallel` has
    variables that span every process, and each computation with them must
    run on all processes at once. Evaluating or exporting on one process
    (the chief evaluating the trials of a search), or many small decoding
    steps, needs a model of its own: `DataParallel` over the local devices.
    Elsewhere: no change.
    """
    if role.engine != "jax":
        return contextlib.nullcontext()
    import jax
    import keras

    return keras.distribution.DataParallel(devices=jax.local_devices()).scope()


def local_copy(model, role):
    """`model` itself, or in a JAX cluster a copy whose variables are on this process's devices.

    The copy is made through a `.keras` file in a temporary directory: the
    trained weights are the same on every process (replicated), so each
    process can save them alone.
    """
    if role.engine != "jax":
        return model
    import keras

    with tempfile.TemporaryDirectory(prefix="keras-gated-local-") as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        with local_scope(role):
            return keras.saving.load_model(path)


class WorkerFiles:
    """The directories a process writes to: `--output` for the chief, a temporary one for the others.

    Use as a context manager: a non-chief's temporary directory is removed
    on exit (the guide's `write_filepath` pattern: every worker saves, only
    the chief's copy is kept).
    """

    def __init__(self, output, role):
        self.output = output
        self.role = role
        self.root = output if role.writes_shared_files else tempfile.mkdtemp(prefix=f"keras-gated-{role.name}-")

    def path(self, *parts):
        """`OUTPUT/parts...` on the chief, `TEMP/parts...` elsewhere."""
        return os.path.join(self.root, *parts)

    def shared_path(self, *parts):
        """`OUTPUT/parts...` on every process (read, e.g. the chief's backup)."""
        return os.path.join(self.output, *parts)

    def record_path(self):
        """Where a non-chief records that it took part: `OUTPUT/workers/<name>.json`."""
        return os.path.join(self.output, "workers", f"{self.role.name}.json")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if not self.role.writes_shared_files:
            shutil.rmtree(self.root, ignore_errors=True)
        return False


def barrier(strategy, role):
    """Returns once every process of the cluster has called it (no-op on one process)."""
    if role.engine == "tensorflow":
        import tensorflow as tf

        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
    elif role.engine == "jax":
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("keras-gated barrier")


def copy_chief_state(chief_dir, worker_dir):
    """Makes `worker_dir` a copy of `chief_dir` (or absent, when the chief has none).

    A non-chief's KerasTuner oracle starts from the chief's: after a restart
    every process then resumes at the same trial, even when a worker died
    before recording the end of a trial that the chief recorded. Call it
    before `barrier`, which the chief passes before it writes anything.
    """
    if os.path.isdir(worker_dir):
        shutil.rmtree(worker_dir)
    if os.path.isdir(chief_dir):
        shutil.copytree(chief_dir, worker_dir)


def seed_backup_from_chief(chief_backup, worker_backup, run_stamp):
    """Copies the chief's backup into a worker's own backup directory when it is of this run.

    The workers hold the same weights after every step, so the chief's
    backup is every worker's. A resumed worker restores it from its own
    copy, and saves to that copy, never to the chief's files.
    """
    if os.path.isdir(worker_backup):
        shutil.rmtree(worker_backup)
    stamp = os.path.join(chief_backup, "run.json")
    try:
        with open(stamp) as handle:
            same_run = json.load(handle) == run_stamp
    except (OSError, json.JSONDecodeError):
        same_run = False
    if same_run:
        shutil.copytree(chief_backup, worker_backup)
    return same_run
