"""A quiet command line: no backend log lines unless --verbose, one line per epoch in a log, a summary."""

import io
import json
import os
import re
import subprocess
import sys

import pytest

from keras_gated.tasks.common.progress import keras_verbosity
from keras_gated_cli import NATIVE_LOG_LINE
from keras_gated_cli import wants_backend_logs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What TensorFlow's C++ logging writes: its own format, absl's, and their companions.
NATIVE_LINES = (
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "),
    re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "),
    re.compile(r"oneDNN|absl::InitializeLog|cuInit|cpu_feature_guard"),
)


def _env():
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, KERAS_BACKEND="tensorflow")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command line must quiet TensorFlow itself
    return env


def _native_lines(text):
    return [line for line in text.splitlines() if any(p.search(line) for p in NATIVE_LINES)]


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_is_a_bar_in_a_terminal_and_a_line_per_epoch_in_a_log():
    assert keras_verbosity("auto", _Stream(tty=True)) == 1
    assert keras_verbosity("auto", _Stream(tty=False)) == 2
    assert keras_verbosity("all", _Stream(tty=False)) == 2
    assert keras_verbosity("0") == 0


def test_a_bare_verbose_asks_for_the_backend_logs():
    assert wants_backend_logs(["train", "sentiment", "--verbose"])
    assert wants_backend_logs(["train", "sentiment", "--verbose", "--epochs", "2"])
    assert not wants_backend_logs(["train", "sentiment", "--verbose", "2"])
    assert not wants_backend_logs(["train", "sentiment", "--epochs", "2"])


def test_the_native_log_pattern():
    assert NATIVE_LOG_LINE.match(
        "I0000 00:00:1796419377.053322   24293 port.cc:153] oneDNN custom operations are on."
    )
    assert NATIVE_LOG_LINE.match("2026-12-04 21:05:35.123456: W tensorflow/core/x.cc:12] slow")
    assert NATIVE_LOG_LINE.match(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    )
    for kept in ("Traceback (most recent call last):", "keras-gated: error: no such file",
                 "UserWarning: a Python warning"):
        assert not NATIVE_LOG_LINE.match(kept)


def test_the_launcher_imports_no_backend_and_filters_descriptor_two():
    code = (
        "import os, sys\n"
        "import keras_gated_cli\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "with keras_gated_cli.NativeLogFilter():\n"
        "    os.write(2, b'I0000 00:00:1796419377.053322   24293 port.cc:153] hidden\\n')\n"
        "    os.write(2, b'kept line\\n')\n"
        "    print('python stderr', file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["kept line", "python stderr"]


@pytest.mark.slow
def test_train_and_evaluate_in_a_log_file_are_quiet_and_end_with_a_summary(tmp_path):
    output = tmp_path / "run"
    train = [
        sys.executable, "-m", "keras_gated_cli", "train", "sentiment", "--data", "sample",
        "--max-examples", "300", "--hp", "units=8", "--hp", "embedding_dim=8",
        "--batch-size", "32", "--epochs", "2", "--output", str(output),
    ]
    result = subprocess.run(train, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert _native_lines(result.stdout + result.stderr) == [], result.stderr
    epoch_lines = [line for line in result.stdout.splitlines() if re.match(r"^\d+/\d+ - .*loss", line)]
    assert len(epoch_lines) == 2, result.stdout
    assert "\r" not in result.stdout and "━" not in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("keras-gated: done:")
    for path in ("best_model.keras", "results.json", "logs"):
        assert str(output / path) in summary

    evaluate = [
        sys.executable, "-m", "keras_gated_cli", "evaluate", "sentiment",
        "--model", str(output / "best_model.keras"), "--text", "not bad at all",
        "--output", str(tmp_path / "evaluation.json"),
    ]
    result = subprocess.run(evaluate, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert _native_lines(result.stdout + result.stderr) == [], result.stderr
    assert json.loads(result.stdout)["predictions"]  # stdout stays JSON alone
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("keras-gated: done:") and "evaluation.json" in summary
