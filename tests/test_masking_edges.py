"""Masking at the edges and stateful batch sizes, on every path and backend.

For every layer (`edge_cases.LAYER_CASES`: gated_cases.RNN_CASES plus
DepthGatedLSTM(num_layers=2) and GridLSTM) and every mask pattern of
`edge_cases.MASKS` (a fully masked row, left and right padding, an all-True
mask, a batch of one, sequences of length one), forwards and with
`go_backwards`: values and gradients (inputs and every weight) are finite and
equal on every path of `edge_cases.PATHS`. JAX and PyTorch run the same
checks in `edge_script.py` (one configuration per class and the stacks,
each mask pattern in one direction, to stay within the suite's time).
"""


import pytest

from backend_process import run_script

from edge_cases import BACKEND_CASES
from edge_cases import LAYER_CASES
from edge_cases import LAYER_IDS
from edge_cases import MASKS
from edge_cases import check_edges
from edge_cases import stateful_batch_error



@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the calls of the TensorFlow fast loops (as in test_fused.py)."""
    from keras_gated._fast import tensorflow as tf_fast

    calls = []
    original = tf_fast.fused_rnn

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(tf_fast, "fused_rnn", counting)
    return calls


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_mask_edges_equal_on_every_path(case, mask_name, go_backwards, fast_calls):
    _, layer_class, kwargs = case
    check_edges(layer_class, kwargs, mask_name, go_backwards)
    assert len(fast_calls) == 1, "the TensorFlow fast path did not run"


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_stateful_layer_rejects_another_batch_size(case):
    _, layer_class, kwargs = case
    stateful_batch_error(layer_class, kwargs)


def test_stateful_batch_checked_when_a_graph_runs_for_any_batch_size():
    """Traced with an unknown batch size, Keras cannot check it: the graph does."""
    import numpy as np
    import tensorflow as tf

    import keras_gated as kg

    layer = kg.PeepholeLSTM(4, stateful=True)
    layer(np.zeros((3, 2, 3), "float32"))
    run = tf.function(layer, input_signature=[tf.TensorSpec((None, 2, 3))])
    assert run(np.zeros((3, 2, 3), "float32")).shape == (3, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch of 3"):
        run(np.zeros((1, 2, 3), "float32"))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_mask_edges_and_stateful_on_backend(backend):
    result = run_script("edge_script.py", backend, timeout=600)
    output = result.stdout + result.stderr
    assert f"BACKEND {backend}" in result.stdout, output
    assert "FAIL" not in result.stdout, output
    assert result.returncode == 0, output
    expected = len(BACKEND_CASES) * (len(MASKS) + 1)
    assert result.stdout.count("OK ") == expected, result.stdout
