"""Runs a test script under another Keras backend, in its own process (Keras fixes its backend at import)."""

import os
import subprocess
import sys

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)


def run_script(script, backend, timeout, **extra_env):
    """`subprocess.run` of `tests/<script>` with KERAS_BACKEND=backend, on the CPU."""
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join([REPO_ROOT, TESTS_DIR]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "JAX_PLATFORMS": "cpu",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, os.path.join(TESTS_DIR, script)],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )
