"""Test configuration: quiet TensorFlow, deterministic seeds, the repo on sys.path."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The JAX checks run in subprocesses (which inherit this) and compile a new
# XLA program for nearly every call, so compiling is most of their time:
# without XLA's optimisation passes the suite's JAX scripts ran 104 s
# against 161 s (jax_fast_script.py, 71 checks), with the same results.
# The optimised programs are what users run: the benchmark's quick-run test
# (tests/test_fused.py) sets this back to 0 for its process.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts in float32 with a fixed seed, whatever the last one set."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")
