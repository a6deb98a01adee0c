"""The `keras-gated` command line: help, errors, resume after a kill, distributed search, MirroredStrategy."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from keras_gated.cli import main

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny searches: a few hundred examples, 8 units, one or two epochs.
TINY = [
    "--data", "sample", "--max-examples", "300", "--hp", "units=8", "--hp", "embedding_dim=8",
    "--batch-size", "32", "--verbose", "0",
]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env.pop("KERASTUNER_ORACLE_IP", None)
    env.update(extra)
    return env


def _keras_gated(*args):
    return [sys.executable, "-m", "keras_gated", *args]


def test_help_lists_commands_and_tasks(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("train TASK", "tune TASK", "evaluate TASK", "sentiment", "translation", "captioning", "translate", "caption"):
        assert word in out


def test_task_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "sentiment", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--hp", "--tuner", "--max-trials", "--gate-monitor", "--mixed-precision", "--strategy",
                   "--text-column", "--label-column", "--sequence-length", "--max-tokens", "--overwrite"):
        assert option in out
    assert "random,bayesian,hyperband,grid" in out.replace(" ", "")


def test_unknown_task_and_bad_hp_are_clear_errors(capsys):
    assert main(["tune", "poetry"]) == 2
    assert "Unknown task 'poetry'. Registered tasks: sentiment, translation, captioning" in capsys.readouterr().err
    assert main(["train", "sentiment", *TINY, "--hp", "cell=tree_lstm"]) == 2
    assert "Unknown `cell`: 'tree_lstm'" in capsys.readouterr().err


def test_commands_of_tasks_not_yet_present_are_reported(capsys):
    for command, module in (("translate", "keras_gated.tasks.translation"), ("caption", "keras_gated.tasks.captioning")):
        if importlib.util.find_spec(module) is None:
            assert main([command]) == 2
            assert "not available in this version" in capsys.readouterr().err
        else:
            with pytest.raises(SystemExit) as exit_info:
                main([command, "--help"])
            assert exit_info.value.code == 0


def _trial_status(project_dir):
    statuses = {}
    for name in sorted(os.listdir(project_dir)) if os.path.isdir(project_dir) else []:
        path = os.path.join(project_dir, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            try:
                with open(path) as handle:
                    statuses[name] = json.load(handle)["status"]
            except (ValueError, KeyError):
                statuses[name] = "WRITING"
    return statuses


@pytest.mark.slow
def test_search_killed_mid_trial_resumes_with_the_same_command(tmp_path, capsys):
    out = str(tmp_path / "run")
    command = _keras_gated("tune", "sentiment", *TINY, "--tuner", "grid", "--hp", "cell=lstm,coupled",
                           "--epochs", "1", "--output", out)
    project = os.path.join(out, "tuner", "sentiment")
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Kill as soon as the second trial has started (its trial.json exists).
        for _ in range(30000):
            statuses = _trial_status(project)
            if len(statuses) >= 2 or process.poll() is not None:
                break
            time.sleep(0.02)
        process.kill()
    finally:
        process.wait()
    statuses = _trial_status(project)
    assert process.returncode != 0, process.stderr.read()
    assert list(statuses.values())[:1] == ["COMPLETED"] and len(statuses) == 2, statuses
    assert list(statuses.values())[1] == "RUNNING"
    first = sorted(statuses)[0]
    checkpoint = os.path.join(project, first, "checkpoint.weights.h5")
    stamp = os.stat(checkpoint).st_mtime_ns
    assert os.path.exists(os.path.join(out, "best_model.keras"))  # the best model so far survived

    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    assert len(results["trials"]) == 2
    # Only the interrupted trial was trained again.
    assert results["trained_by_this_run"] == [sorted(statuses)[1][len("trial_"):]]
    assert os.stat(checkpoint).st_mtime_ns == stamp  # the completed trial was not redone
    assert {row["hyperparameters"]["cell"] for row in results["trials"]} == {"lstm", "coupled"}
    assert "test_accuracy" in results["best"] and "val_accuracy" in results["best"]
    assert "trial" in result.stdout and "test_accuracy" in result.stdout and "Best: trial" in result.stdout

    # The saved model classifies raw strings from the command line ...
    assert main(["evaluate", "sentiment", "--model", os.path.join(out, "best_model.keras"),
                 "--text", "the plot was not good .", "--text", "i loved the film ."]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["text"] for p in predictions] == ["the plot was not good .", "i loved the film ."]
    assert all(p["label"] in ("negative", "positive") and 0.5 <= p["probability"] <= 1 for p in predictions)
    # ... and evaluates on the test split of the data it was trained on.
    assert main(["evaluate", "sentiment", "--model", os.path.join(out, "best_model.keras")]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["examples"] == 30 and 0.0 <= evaluation["accuracy"] <= 1.0


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_distributed_search_chief_and_two_workers(tmp_path):
    out = str(tmp_path / "shared")
    oracle = dict(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(_free_port()))
    command = _keras_gated("tune", "sentiment", *TINY, "--tuner", "random", "--max-trials", "4",
                           "--hp", "cell=lstm,gru", "--epochs", "1", "--output", out)
    processes = {
        tuner_id: subprocess.Popen(command, env=_env(KERASTUNER_TUNER_ID=tuner_id, **oracle),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for tuner_id in ("chief", "tuner0", "tuner1")
    }
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=900)[0]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for tuner_id, process in processes.items():
        assert process.returncode == 0, (tuner_id, outputs[tuner_id][-3000:])
    ran = {}
    for worker in ("tuner0", "tuner1"):
        with open(os.path.join(out, f"tuner-{worker}.json")) as handle:
            ran[worker] = json.load(handle)["trials"]
        assert ran[worker], (worker, outputs[worker][-3000:])
    assert not set(ran["tuner0"]) & set(ran["tuner1"])
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    # One oracle: the chief's table holds exactly the trials the two workers ran.
    assert sorted(row["trial"] for row in results["trials"]) == sorted(ran["tuner0"] + ran["tuner1"])
    assert len(results["trials"]) == 4
    assert os.path.exists(os.path.join(out, "best_model.keras"))


MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_gated.tuning import select_strategy
strategy = select_strategy("mirrored")
assert type(strategy).__name__ == "MirroredStrategy", strategy
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
from keras_gated.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_train_with_mirrored_strategy_over_two_logical_cpus(tmp_path):
    out = str(tmp_path / "mirrored")
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, "train", "sentiment", *TINY, "--hp", "cell=peephole",
         "--epochs", "1", "--strategy", "mirrored", "--batch-size", "8", "--output", out],
        env=_env(), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy over 2 devices" in result.stdout
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    assert results["hyperparameters"]["cell"] == "peephole"
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert os.path.exists(os.path.join(out, "best_model.keras"))


@pytest.mark.slow
def test_train_killed_mid_fit_resumes_at_its_last_completed_epoch(tmp_path):
    """A real SIGKILL after the first epoch's backup; the same command resumes after it
    and ends with the model of an uninterrupted run (same batches, same dropout masks)."""
    import signal

    import numpy as np

    from keras_gated.tasks.sentiment import load_classifier

    out = str(tmp_path / "run")
    arguments = ("train", "sentiment", *TINY, "--hp", "cell=coupled", "--hp", "dropout=0.2", "--epochs", "6")
    command = _keras_gated(*arguments, "--output", out)
    metadata = os.path.join(out, "backup", "train", "training_metadata.json")
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(30000):
            if os.path.exists(metadata) or process.poll() is not None:
                break
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()[-3000:]
    with open(metadata) as handle:
        saved_epoch = json.load(handle)["epoch"]
    assert saved_epoch < 5  # killed before the last epoch ended

    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from the backup after epoch {saved_epoch}" in result.stdout
    assert os.path.exists(os.path.join(out, "best_model.keras"))
    assert not os.path.exists(metadata)  # Keras removes the backup once fit ends

    uninterrupted = str(tmp_path / "uninterrupted")
    result = subprocess.run(_keras_gated(*arguments, "--output", uninterrupted), env=_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_weights = load_classifier(os.path.join(out, "best_model.keras")).model.get_weights()
    uninterrupted_weights = load_classifier(os.path.join(uninterrupted, "best_model.keras")).model.get_weights()
    assert len(resumed_weights) == len(uninterrupted_weights)
    for resumed, whole in zip(resumed_weights, uninterrupted_weights):
        np.testing.assert_allclose(resumed, whole, rtol=1e-5, atol=1e-6)
