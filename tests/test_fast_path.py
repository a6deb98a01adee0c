"""The `fast_path` argument: which loop runs, why, and that the choice changes no number.

`fast_path="auto"` takes the fast path where it applies and falls back for
the documented reasons; `True` turns each reason into a `ValueError`;
`False` always runs the generic loop. `last_call_path` reports the loop.
"""

import ast
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gated as kg
from edge_cases import MIXED_PRECISION_CASES
from edge_cases import check_mixed_precision
from gated_cases import RNN_CASES

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TOLERANCE = 2e-5


@pytest.mark.parametrize("bad", ["fast", "yes", 1, 0, None, 0.5])
def test_fast_path_rejects_anything_but_auto_true_false(bad):
    with pytest.raises(ValueError) as error:
        kg.PeepholeLSTM(4, fast_path=bad)
    assert "`fast_path` must be 'auto'" in str(error.value)
    assert repr(bad) in str(error.value)


def test_fast_path_true_needs_the_fused_layer():
    with pytest.raises(ValueError, match="fast_path=True needs fused=True"):
        kg.CoupledLSTM(4, fused=False, fast_path=True)


@pytest.mark.parametrize("value", ["auto", True, False])
def test_fast_path_round_trips_through_the_config(value):
    layer = kg.UntiedLSTM(4, fast_path=value)
    config = layer.get_config()
    assert config["fast_path"] == value
    assert kg.UntiedLSTM.from_config(config).fast_path == value


def test_a_config_without_fast_path_loads_as_auto():
    config = kg.PeepholeLSTM(4).get_config()
    del config["fast_path"]
    assert kg.PeepholeLSTM.from_config(config).fast_path == "auto"


def _gradients(layer, x, mask):
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x, mask=mask, training=True)
        loss = sum(tf.reduce_sum(o * np.linspace(0.5, 1.5, o.shape[-1])) for o in outputs)
    grads = tape.gradient(loss, list(layer.trainable_weights) + [x])
    return [o.numpy() for o in outputs], [g.numpy() for g in grads]


@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CASES)
def test_every_layer_reports_its_path_and_gives_the_same_numbers(layer_class, cell_class, kwargs):
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32"))
    mask = tf.constant(np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool))
    results, paths = {}, {}
    reference = None
    for name, options in {
        "auto": {}, "generic": {"fast_path": False}, "cell": {"fused": False}
    }.items():
        layer = layer_class(
            6, return_sequences=True, return_state=True, **kwargs, **options
        )
        layer.build(x.shape)
        if reference is None:
            reference = layer
            rng = np.random.default_rng(1)
            for weight in layer.weights:
                weight.assign(0.5 * rng.normal(size=weight.shape).astype("float32"))
        else:
            layer.set_weights(reference.get_weights())
        results[name] = _gradients(layer, x, mask)
        paths[name] = layer.last_call_path
    expected_auto = "fast" if reference.fast_path_unavailable_reason() is None else "generic"
    assert paths == {"auto": expected_auto, "generic": "generic", "cell": "cell"}
    for name in ("auto", "generic"):
        for expected, actual in zip(results["cell"][0] + results["cell"][1],
                                    results[name][0] + results[name][1]):
            np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_every_one_layer_cell_and_stack_with_a_fast_form_takes_it_on_tensorflow():
    for layer in (kg.PeepholeLSTM(4), kg.CoupledLSTM(4), kg.UntiedLSTM(4),
                  kg.DepthGatedLSTM(4), kg.DepthGatedLSTM(4, num_layers=2),
                  kg.GridLSTM(4, depth=2)):
        layer(np.zeros((2, 3, 5), "float32"))
        assert layer.fast_path_unavailable_reason() is None
        assert layer.last_call_path == "fast"


def test_every_cell_with_a_fast_form_satisfies_the_contract_the_loops_read():
    from keras_gated._fast.contract import FusedCell

    for cell in (kg.PeepholeLSTMCell(4), kg.PeepholeLSTMCell(4, peepholes="ifo"),
                 kg.CoupledLSTMCell(4), kg.UntiedLSTMCell(4), kg.DepthGatedLSTMCell(4)):
        cell.build((None, 3))
        assert cell.deferred_recurrent_product, cell
        assert isinstance(cell, FusedCell), cell
        names = set(FusedCell.__annotations__) | {n for n in vars(FusedCell) if not n.startswith("_")}
        missing = [name for name in sorted(names) if not hasattr(cell, name)]
        assert not missing, (cell, missing)
    assert not isinstance(object(), FusedCell)


def test_every_fast_level_satisfies_the_level_contract_one_layer_cells_included():
    """A one-layer cell is the one-level stack `CellLevel(cell)`: the JAX loop
    reads both through `FusedLevel` only."""
    from keras_gated._fast.contract import CellLevel
    from keras_gated._fast.contract import FusedLevel

    names = set(FusedLevel.__annotations__) | {n for n in vars(FusedLevel) if not n.startswith("_")}
    levels = []
    for cell in (kg.DepthGatedLSTMCell(4, num_layers=3), kg.GridLSTMCell(4, num_layers=2),
                 kg.GridLSTMCell(4, num_layers=2, depth_transform="tanh")):
        cell.build((None, 3))
        levels += cell.fast_levels()
    one_layer = kg.UntiedLSTMCell(4)
    one_layer.build((None, 3))
    levels.append(CellLevel(one_layer, len(one_layer.state_size)))
    for level in levels:
        assert isinstance(level, FusedLevel), level
        missing = [name for name in sorted(names) if not hasattr(level, name)]
        assert not missing, (level, missing)
    # Above the bottom a level reads the level below through its input kernel.
    assert [level.input_kernel is None for level in levels[:3]] == [True, False, False]
    # The untied kernel M is a matrix inside the step.
    assert levels[-1].product_weights() == list(one_layer.product_weights()) and len(levels[-1].product_weights()) == 1
    assert not isinstance(object(), FusedLevel)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize(
    "layer_class, kwargs",
    [case[1:] for case in MIXED_PRECISION_CASES],
    ids=[case[0] for case in MIXED_PRECISION_CASES],
)
def test_mixed_precision_runs_the_fast_path(layer_class, kwargs, policy):
    # Half-type math with float32 weights, as close to float32 as the
    # generic loop (JAX and PyTorch: jax_fast_script.py, torch_fast_script.py).
    check_mixed_precision(layer_class, kwargs, policy)


def test_under_mixed_precision_fast_path_true_raises_no_error():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    layer = kg.PeepholeLSTM(4, fast_path=True)
    assert layer.fast_path_unavailable_reason() is None
    output = layer(np.zeros((2, 3, 5), "float32"))
    assert output.dtype == "bfloat16" and layer.last_call_path == "fast"


def test_a_cell_without_a_fast_form_raises_under_true():
    x = np.zeros((2, 3, 5), "float32")
    layer = kg.GridLSTM(4, depth=2, priority="depth")
    layer(x)
    assert layer.last_call_path == "generic"
    with pytest.raises(ValueError, match="no fast form"):
        kg.GridLSTM(4, depth=2, priority="depth", fast_path=True)(x)


def test_the_fast_paths_never_import_the_layers():
    """`layers` uses `_fast`, never the other way round: no import cycle."""
    for path in (REPO_ROOT / "keras_gated" / "_fast").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith("keras_gated.layers"), (path.name, name)


OTHER_BACKEND_SCRIPT = """
import numpy as np, keras, keras_gated as kg
x = np.zeros((2, 3, 5), "float32")
layer = kg.CoupledLSTM(4)
layer(x)
print("PATH", layer.last_call_path)
print("REASON", layer.fast_path_unavailable_reason())
try:
    kg.CoupledLSTM(4, fast_path=True)(x)
except ValueError as error:
    print("RAISED", error)
"""


def _run_other_backend(backend):
    env = {
        **os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO_ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND_SCRIPT], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_torch_takes_its_fast_path():
    out = _run_other_backend("torch")
    assert "PATH fast" in out and "REASON None" in out
    assert "RAISED" not in out


def test_jax_takes_its_fast_path():
    out = _run_other_backend("jax")
    assert "PATH fast" in out and "REASON None" in out
    assert "RAISED" not in out


def test_jax_fast_path_equals_the_generic_loop():
    """Initial states, dropout, inference, stateful, fit under jit, fallbacks (jax_fast_script.py)."""
    from backend_process import run_script

    result = run_script("jax_fast_script.py", "jax", timeout=900)
    output = result.stdout + result.stderr
    assert "BACKEND jax" in result.stdout, output[-3000:]
    assert "FAIL" not in result.stdout, output[-5000:]
    assert result.returncode == 0, output[-3000:]
    checks = int(result.stdout.split("CHECKS ")[1].split()[0])
    assert checks >= 30 and result.stdout.count("OK ") == checks, result.stdout


def test_torch_fast_path_equals_the_generic_loop():
    """Masks, initial states, dropout, inference, stateful, fit, fallbacks (torch_fast_script.py)."""
    from backend_process import run_script

    result = run_script("torch_fast_script.py", "torch", timeout=900)
    output = result.stdout + result.stderr
    assert "BACKEND torch" in result.stdout, output[-3000:]
    assert "FAIL" not in result.stdout, output[-5000:]
    assert result.returncode == 0, output[-3000:]
    checks = int(result.stdout.split("CHECKS ")[1].split()[0])
    assert checks >= 40 and result.stdout.count("OK ") == checks, result.stdout


def test_tensorflow_private_tape_api_is_where_the_fast_path_reads_it():
    """`_fast/tensorflow_tape.py` reads TensorFlow's private `record`
    module: this fails loudly if it moves."""
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.eager import record

    from keras_gated._fast.tensorflow_tape import watched

    assert callable(record.could_possibly_record) and callable(record.should_record_backprop)
    x, y = tf.constant([1.0]), tf.constant([2.0])
    assert watched([x]) is None
    with tf.GradientTape() as tape:
        tape.watch(x)
        assert watched([x]) is True
        assert watched([y]) is False
