"""Every block works on the JAX and PyTorch backends of Keras 3.

Each backend runs `backend_smoke.py` in its own process (Keras fixes its
backend at import): build, forward, layer vs `keras.layers.RNN(cell)` and
fused vs unfused with the same weights (masked too) for every case; for
one configuration per class also go_backwards, unroll, stateful,
Bidirectional, dropout, a fit step (plain, with dropout, stateful),
get_config and `.keras` round trips; Highway with both carry gates.
"""

import os
import subprocess
import sys

import pytest

from gated_cases import RNN_CASES
from gated_cases import RNN_CLASSES

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_block_on_backend(backend):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join([REPO_ROOT, TESTS_DIR]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, os.path.join(TESTS_DIR, "backend_smoke.py")],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )
    output = result.stdout + result.stderr
    assert f"BACKEND {backend}" in result.stdout, output
    assert "FAIL" not in result.stdout, output
    assert result.returncode == 0, output
    trained = {param.id for param in RNN_CLASSES}
    for param in RNN_CASES:
        checks = 7 if param.id in trained else 2
        assert result.stdout.count(f"OK {param.id} ") == checks, (param.id, result.stdout)
    assert result.stdout.count("OK Highway") == 2, result.stdout
