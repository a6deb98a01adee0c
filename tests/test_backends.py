"""Every block works on the JAX and PyTorch backends of Keras 3.

Each backend runs `backend_smoke.py` in its own process (Keras fixes its
backend at import): build, forward, layer vs `keras.layers.RNN(cell)` and
fused vs unfused with the same weights (masked too) for every case; for
one configuration per class also go_backwards, unroll, stateful,
Bidirectional, dropout, a fit step (plain, with dropout, stateful),
get_config and `.keras` round trips; Highway with both carry gates; and the
task pipelines' backend choices (compiled train steps, compiled decoding steps
that read the current weights, no widened first batch).
"""


import pytest

from backend_process import run_script

from gated_cases import RNN_CASES
from gated_cases import RNN_CLASSES



@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_block_on_backend(backend):
    result = run_script("backend_smoke.py", backend, timeout=900)
    output = result.stdout + result.stderr
    assert f"BACKEND {backend}" in result.stdout, output
    assert "FAIL" not in result.stdout, output
    assert result.returncode == 0, output
    trained = {param.id for param in RNN_CLASSES}
    for param in RNN_CASES:
        checks = 7 if param.id in trained else 2
        assert result.stdout.count(f"OK {param.id} ") == checks, (param.id, result.stdout)
    assert result.stdout.count("OK Highway") == 2, result.stdout
    assert result.stdout.count("OK Tasks: ") == 3, result.stdout
