"""test_fuzz.py's property on the backend named by KERAS_BACKEND (FUZZ_EXAMPLES examples)."""

import os
import sys
import traceback

import keras
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings

from fuzz_cases import check_config
from fuzz_cases import configs


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "15")), deadline=None,
          derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs())
def fuzz(config):
    check_config(config)


if __name__ == "__main__":
    print("BACKEND", keras.backend.backend(), flush=True)
    try:
        fuzz()
    except Exception:
        print(f"FAIL fuzz\n{traceback.format_exc()}", flush=True)
        sys.exit(1)
    print("OK fuzz", flush=True)
