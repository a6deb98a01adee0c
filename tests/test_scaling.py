"""One model trained by several processes on 127.0.0.1: TensorFlow workers (TF_CONFIG) and JAX processes.

Each run is the sentiment sample, 8 units, 36 examples per global batch
(18 per process), 9 steps per epoch, 2 epochs, on CPU; a one-process run with the
same global batch is the reference. No network beyond the loopback.
"""

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_gated.cli import main
from keras_gated.tuning import cluster

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 400 examples: 324 train (9 global batches of 36), 36 validation (one batch), 40 test.
SMALL = [
    "--data", "sample", "--max-examples", "400", "--hp", "units=8", "--hp", "embedding_dim=8",
    "--hp", "cell=lstm", "--batch-size", "36", "--verbose", "2",
]
EPOCHS = ["--epochs", "2"]
# Two workers on two shared CPU cores: minutes at most, never hang a test run.
TIMEOUT = 240


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(backend, **extra):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend,
               JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    for name in ("KERASTUNER_ORACLE_IP", "TF_CONFIG", *cluster.JAX_ENVIRONMENT):
        env.pop(name, None)
    env.update(extra)
    return env


def _command(*args):
    return [sys.executable, "-m", "keras_gated", *args]


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def _start_tf_workers(arguments, count=2):
    ports = [_free_port() for _ in range(count)]
    return [
        subprocess.Popen(_command(*arguments), env=_env("tensorflow", TF_CONFIG=_tf_config(ports, index)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for index in range(count)
    ]


def _start_jax_processes(arguments, count=2):
    coordinator = f"127.0.0.1:{_free_port()}"
    return [
        subprocess.Popen(
            _command(*arguments, "--coordinator", coordinator, "--num-processes", str(count),
                     "--process-id", str(index)),
            env=_env("jax"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for index in range(count)
    ]


def _finish(processes):
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
    return outputs


def _one_process(backend, arguments):
    result = subprocess.run(_command(*arguments), env=_env(backend), capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _weights(path):
    from keras_gated.tasks.sentiment import load_classifier

    return load_classifier(path).model.get_weights()


def _assert_same_model(path, reference_path):
    weights, reference = _weights(path), _weights(reference_path)
    assert len(weights) == len(reference)
    for trained, expected in zip(weights, reference):
        # Two replicas sum their gradients in another order than one process.
        np.testing.assert_allclose(trained, expected, rtol=1e-3, atol=1e-4)


def _check_cluster_run(out, worker_name, engine, outputs, epochs=2):
    with open(os.path.join(out, "results.json")) as handle:
        chief = json.load(handle)
    with open(os.path.join(out, "workers", f"{worker_name}.json")) as handle:
        worker = json.load(handle)
    # Both took part: each ran every epoch as one of two processes, and they
    # ended with the same weights (the chief's are the saved model's).
    for record in (chief, worker):
        assert record["cluster"]["engine"] == engine and record["cluster"]["process_count"] == 2
        assert record["cluster"]["epochs_run"] == epochs
    assert {chief["cluster"]["process_index"], worker["cluster"]["process_index"]} == {0, 1}
    assert chief["cluster"]["weights_sha256"] == worker["cluster"]["weights_sha256"]
    assert chief["model"] == os.path.join(out, "best_model.keras")
    assert not worker["model"].startswith(out)  # the worker saved to its temporary directory
    assert not os.path.exists(worker["model"])  # ... which is gone
    # The chief alone wrote under --output: no worker's logs or backup there.
    assert sorted(os.listdir(out)) == ["backup", "best_model.json", "best_model.keras", "logs",
                                       "results.json", "workers"]
    assert os.listdir(os.path.join(out, "workers")) == [f"{worker_name}.json"]
    assert f"{worker_name} done" in outputs[1]
    return chief


@pytest.fixture(scope="module")
def tensorflow_reference(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("one_process_tf"))
    _one_process("tensorflow", ["train", "sentiment", *SMALL, *EPOCHS, "--output", out])
    return out


def test_bad_cluster_arguments_name_the_problem_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name in cluster.JAX_ENVIRONMENT + ("KERASTUNER_ORACLE_IP",):
        monkeypatch.delenv(name, raising=False)
    out = str(tmp_path / "run")
    assert main(["train", "sentiment", *SMALL, "--strategy", "multi-worker", "--output", out]) == 2
    assert "--strategy multi-worker needs the TF_CONFIG environment variable" in capsys.readouterr().err
    assert main(["train", "sentiment", *SMALL, "--num-processes", "2", "--output", out]) == 2
    assert "--num-processes / --process-id need --coordinator HOST:PORT" in capsys.readouterr().err
    assert main(["train", "sentiment", *SMALL, "--coordinator", "127.0.0.1:1", "--num-processes", "2",
                 "--process-id", "0", "--output", out]) == 2
    assert "start a JAX cluster; the backend is tensorflow. Set KERAS_BACKEND=jax" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", "{not json")
    assert main(["train", "sentiment", *SMALL, "--strategy", "multi-worker", "--output", out]) == 2
    assert "TF_CONFIG is not valid JSON" in capsys.readouterr().err

    with pytest.raises(cluster.ClusterConfigError, match="Set KERAS_BACKEND=tensorflow, or on JAX pass --coordinator"):
        cluster.check_cluster_arguments("jax", "multi-worker", None, environ={})
    with pytest.raises(cluster.ClusterConfigError, match="--process-id must be in 0..1"):
        cluster.jax_cluster_options("127.0.0.1:5", 2, 2, environ={})
    with pytest.raises(cluster.ClusterConfigError, match="must be HOST:PORT"):
        cluster.jax_cluster_options("localhost", 2, 0, environ={})
    with pytest.raises(cluster.ClusterConfigError, match="--coordinator needs --num-processes N"):
        cluster.jax_cluster_options(None, None, None, environ={"JAX_COORDINATOR_ADDRESS": "127.0.0.1:5"})
    assert cluster.jax_cluster_options(None, None, None, environ={
        "JAX_COORDINATOR_ADDRESS": "127.0.0.1:5", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}) == (
        "127.0.0.1:5", 2, 1)
    two_workers = {"TF_CONFIG": _tf_config([1, 2], 0)}
    assert cluster.wants_multi_worker("auto", two_workers)
    assert not cluster.wants_multi_worker("auto", {"TF_CONFIG": _tf_config([1], 0)})
    assert not cluster.wants_multi_worker("default", two_workers)
    two_tf_workers = cluster.ClusterRole("tensorflow", "worker-0", 0, 2, True)
    with pytest.raises(cluster.ClusterConfigError, match="--batch-size 35 .* 2 replicas of 2 processes: use a multiple of 2"):
        cluster.check_global_batch(35, 2, two_tf_workers)
    cluster.check_global_batch(35, 1, cluster.SINGLE_PROCESS)
    with pytest.raises(cluster.ClusterConfigError, match="--tuner hyperband under a multi-worker strategy"):
        cluster.check_tuner_kind("hyperband", two_tf_workers)
    cluster.check_tuner_kind("hyperband", cluster.SINGLE_PROCESS)
    with pytest.raises(cluster.ClusterConfigError, match="KERASTUNER_ORACLE_IP.*not supported"):
        cluster.check_cluster_arguments("tensorflow", "auto", None,
                                        environ=dict(two_workers, KERASTUNER_ORACLE_IP="127.0.0.1"))


def test_private_keras_and_keras_tuner_pieces_are_still_there():
    """Fails loudly when Keras or KerasTuner move what `keras_gated._keras_private`
    patches for the multi-worker fit or `keras_gated.tuning.keras_tuner_private` reads."""
    import keras_tuner
    from keras.src.backend.tensorflow import trainer
    from keras_tuner.src.engine.tuner import Tuner
    from keras_tuner.src.tuners.gridsearch import LinkedList

    assert list(inspect.signature(trainer.TensorFlowTrainer._maybe_symbolic_build).parameters) == [
        "self", "iterator", "data_batch"]
    assert callable(trainer.TensorFlowTrainer._symbolic_build)
    assert list(inspect.signature(trainer.reduce_per_replica).parameters) == ["values", "strategy", "reduction"]
    assert callable(trainer._collective_all_reduce_multi_worker)
    assert list(inspect.signature(Tuner._get_checkpoint_fname).parameters) == ["self", "trial_id"]
    assert callable(LinkedList().insert)
    oracle = keras_tuner.oracles.GridSearchOracle()
    assert callable(oracle._compare)
    assert hasattr(oracle, "_ordered_ids") and hasattr(oracle, "_populate_next")


def test_process_shards_put_together_are_the_global_batches():
    from keras_gated.tasks.batches import ArrayBatches

    rows = np.arange(40)
    batches = ArrayBatches((rows[:, None], rows), batch_size=8, seed=3, drop_remainder=True)
    shards = [cluster.ProcessShard(batches, index, 2) for index in range(2)]
    for epoch in (0, 4):
        for batches_or_shard in (batches, *shards):
            batches_or_shard.set_epoch(epoch)
        assert [len(shard) for shard in shards] == [len(batches)] * 2
        for step in range(len(batches)):
            whole = batches[step][1]
            assert np.array_equal(np.concatenate([shard[step][1] for shard in shards]), whole)
    with pytest.raises(cluster.ClusterConfigError, match="multiple of the number of processes"):
        cluster.ProcessShard(batches, 0, 3)[0]
    # A last, smaller batch is kept when it splits evenly, left out otherwise.
    for count, steps in ((42, 6), (43, 5)):
        uneven = ArrayBatches(np.arange(count), batch_size=8, seed=3)
        assert len(uneven) == 6
        assert len(cluster.ProcessShard(uneven, 1, 2)) == steps
        assert len(cluster.ProcessShard(uneven, 1, 2)[steps - 1]) == (1 if count == 42 else 4)


def test_process_shards_of_length_bucketed_batches_all_have_the_global_batch_width():
    """Each process's slice of a bucketed batch is cut from the global batch, so
    every process's tensors have one shape (JAX assembles one global array)."""
    from keras_gated.tasks.batches import BucketedArrayBatches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=64)
    tokens = np.zeros((64, 32), "int32")
    for row, length in enumerate(lengths):
        tokens[row, :length] = rng.integers(1, 50, size=length)
    labels = np.arange(64)
    batches = BucketedArrayBatches((tokens, labels), (True, False), batch_size=8, seed=1, window=4)
    shards = [cluster.ProcessShard(batches, index, 2) for index in range(2)]
    for epoch in (0, 3):
        for shard in shards:
            shard.set_epoch(epoch)
        batches.set_epoch(epoch)
        for step in range(len(batches)):
            whole_tokens, whole_labels = batches[step]
            parts = [shard[step] for shard in shards]
            assert {part[0].shape for part in parts} == {(4, whole_tokens.shape[1])}
            assert np.array_equal(np.concatenate([part[0] for part in parts]), whole_tokens)
            assert np.array_equal(np.concatenate([part[1] for part in parts]), whole_labels)
            assert np.array_equal(
                np.concatenate([shard.rows(step) for shard in shards]), batches.rows(step)
            )


@pytest.mark.slow
def test_two_tensorflow_workers_killed_one_restarted_train_the_model_of_one_process(tmp_path, tensorflow_reference):
    """Two MultiWorkerMirroredStrategy workers; SIGKILL one after the chief's first backup:
    the other stops with the resume procedure; both started again (the same command,
    --strategy auto) resume after the backed-up epoch, both take part, only the chief
    writes under --output, and its model is the one-process model."""
    out = str(tmp_path / "shared")
    arguments = ["train", "sentiment", *SMALL, *EPOCHS, "--output", out]  # auto: TF_CONFIG has 2 workers
    metadata = os.path.join(out, "backup", "train", "training_metadata.json")
    _kill_worker_when(metadata, _start_tf_workers(arguments))
    with open(metadata) as handle:
        saved_epoch = json.load(handle)["epoch"]
    assert saved_epoch < 2  # Keras counts the completed epochs: killed before the last one ended

    outputs = _finish(_start_tf_workers(arguments))
    for output in outputs:
        assert "MultiWorkerMirroredStrategy over 2 replicas of 2 workers" in output  # auto chose it
        assert f"resuming from the backup after epoch {saved_epoch}" in output, output[-3000:]
    chief = _check_cluster_run(out, "worker-1", "tensorflow", outputs, epochs=2 - saved_epoch)
    assert sorted(os.listdir(os.path.join(out, "logs", "train"))) == ["train", "validation"]
    assert not os.path.exists(metadata)  # Keras removes the backup once fit ends
    _assert_same_model(chief["model"], os.path.join(tensorflow_reference, "best_model.keras"))


@pytest.mark.slow
def test_two_jax_processes_train_the_model_of_one_process(tmp_path):
    out = str(tmp_path / "shared")
    reference = str(tmp_path / "one_process")
    outputs = _finish(_start_jax_processes(["train", "sentiment", *SMALL, *EPOCHS, "--output", out]))
    assert "JAX DataParallel over 2 devices of 2 processes (this is process 0)" in outputs[0]
    chief = _check_cluster_run(out, "process-1", "jax", outputs)
    _one_process("jax", ["train", "sentiment", *SMALL, *EPOCHS, "--output", reference])
    _assert_same_model(chief["model"], os.path.join(reference, "best_model.keras"))


def _kill_worker_when(path, processes):
    """SIGKILLs worker 1 once `path` exists; returns the output of worker 0, which must stop by itself."""
    try:
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(path) and time.monotonic() < deadline:
            assert all(process.poll() is None for process in processes), processes[0].communicate()[0][-4000:]
            time.sleep(0.02)
        os.kill(processes[1].pid, signal.SIGKILL)
        # The survivor's collective ops fail once the dead worker stops sending
        # heartbeats (seconds); it exits with the procedure.
        survivor = processes[0].communicate(timeout=TIMEOUT)[0]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()
    assert processes[1].returncode == -signal.SIGKILL
    assert processes[0].returncode == 2, survivor[-4000:]
    assert "worker-0: another worker of the cluster stopped" in survivor
    assert "start all of them again with the same commands" in survivor
    return survivor


@pytest.mark.slow
def test_search_under_a_multi_worker_strategy_resumes_after_a_worker_dies(tmp_path):
    """Both workers train every trial together; worker 1 is killed in the second trial, the
    restarted cluster trains that trial only (every oracle starts from the chief's)."""
    out = str(tmp_path / "shared")
    arguments = ["tune", "sentiment", *SMALL, "--epochs", "1", "--tuner", "grid", "--hp", "cell=lstm,gru",
                 "--strategy", "multi-worker", "--output", out]
    survivor = _kill_worker_when(os.path.join(out, "tuner", "sentiment", "trial_01", "trial.json"),
                                 _start_tf_workers(arguments))
    assert "the search resumes at trial 01" in survivor
    outputs = _finish(_start_tf_workers(arguments))
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    with open(os.path.join(out, "workers", "worker-1.json")) as handle:
        worker = json.load(handle)
    assert sorted(row["trial"] for row in results["trials"]) == ["00", "01"]
    assert results["failed_trials"] == []
    assert results["trained_by_this_run"] == worker["trained_by_this_run"] == ["01"]
    assert {row["hyperparameters"]["cell"] for row in results["trials"]} == {"lstm", "gru"}
    assert os.path.exists(os.path.join(out, "best_model.keras"))
    assert "worker-1 ran trials 01 with the chief" in outputs[1]
    assert os.listdir(os.path.join(out, "workers")) == ["worker-1.json"]  # its oracle was temporary
