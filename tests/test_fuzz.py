"""Fuzzing: drawn configurations agree on every path and with the float64 references.

`fuzz_cases.configs` draws the cell (peephole, coupled, untied, depth-gated
with 1-2 layers, grid with depth 1-2), units 2-6, features 1-5, batch 1-3,
1-6 steps, peephole sets, dropout, mask patterns (none, all True, random,
left and right padding, a fully masked row), float32/float64,
go_backwards, return_sequences and return_state. Budgets: TF_EXAMPLES on
TensorFlow here, BACKEND_EXAMPLES on JAX and on PyTorch in a subprocess
(`fuzz_script.py`); derandomized, so every run draws the same examples.
"""


import pytest

from backend_process import run_script
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings

from fuzz_cases import check_config
from fuzz_cases import configs

TF_EXAMPLES = 60
BACKEND_EXAMPLES = 15


@settings(max_examples=TF_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(config=configs())
def test_fuzz_paths_and_references_on_tensorflow(config):
    check_config(config)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fuzz_on_backend(backend):
    result = run_script("fuzz_script.py", backend, timeout=600, FUZZ_EXAMPLES=str(BACKEND_EXAMPLES))
    output = result.stdout + result.stderr
    assert f"BACKEND {backend}" in result.stdout, output
    assert "FAIL" not in result.stdout, output
    assert result.returncode == 0, output
    assert "OK fuzz" in result.stdout, output
