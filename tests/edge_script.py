"""The checks of test_masking_edges.py on the backend named by KERAS_BACKEND.

Prints `OK <check>` or `FAIL <check>` with the traceback; exits 1 on a failure.
"""

import sys
import traceback

import keras

from edge_cases import MASKS
from edge_cases import check_edges
from edge_cases import stateful_batch_error
from edge_cases import BACKEND_CASES


def main():
    print("BACKEND", keras.backend.backend(), flush=True)
    failed = 0
    for case_id, layer_class, kwargs in BACKEND_CASES:
        # Within the time of the suite: each pattern in one direction, both
        # directions over the patterns (TensorFlow runs every combination).
        checks = [(f"{case_id} {m} go_backwards={g}", check_edges, (layer_class, kwargs, m, g))
                  for k, m in enumerate(sorted(MASKS)) for g in [bool(k % 2)]]
        checks.append((f"{case_id} stateful batch size", stateful_batch_error,
                       (layer_class, kwargs)))
        for name, function, args in checks:
            try:
                keras.utils.set_random_seed(0)
                function(*args)
            except Exception:
                failed += 1
                print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
            else:
                print(f"OK {name}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
