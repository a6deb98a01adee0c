"""The fast paths give the numbers of the cell path; the benchmark runs.

`fused=False` runs the cell step by step inside `keras.layers.RNN`'s loop
(the reference); `fused=True` (the default) runs the hoisted input
projection and, on TensorFlow, the custom-gradient loop of
`keras_gated._fast.tensorflow`. Values and gradients must agree to float32
round-off for every option that has a fast path.
"""

import json
import os
import subprocess
import sys

import keras
from keras import tree
import numpy as np
import pytest
import tensorflow as tf

import keras_gated as kg
from keras_gated._fast import tensorflow as tf_fast

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, STEPS, FEATURES, UNITS = 3, 5, 4, 6
TOLERANCE = 2e-5

# DepthGatedLSTM with its default num_layers=1: the stack takes the generic path.
LAYERS = [kg.PeepholeLSTM, kg.CoupledLSTM, kg.UntiedLSTM, kg.DepthGatedLSTM]

OPTIONS = {
    "plain": {},
    "go_backwards": {"go_backwards": True},
    "dropout": {"dropout": 0.3, "recurrent_dropout": 0.4, "seed": 7},
    "zero_output_for_mask": {"zero_output_for_mask": True},
    "unroll": {"unroll": True, "go_backwards": True},
    "last_output_only": {"return_sequences": False},
    # No written backward step for relu: the automatic derivative runs.
    "taped_backward": {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
    "linear_activation": {"activation": "linear"},
}


@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the calls of the TensorFlow fast loops (one-layer cells and stacks)."""
    calls = []
    original = tf_fast.fused_rnn

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(tf_fast, "fused_rnn", counting)
    return calls


def _data(masked=True, num_states=2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    mask = np.ones((BATCH, STEPS), bool)
    if masked:
        mask[0, 3:] = False  # right padding
        mask[1, :2] = False  # left padding: the output repeats, then starts
        mask[2, 2] = False  # a hole
    initial = [
        rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(num_states)
    ]
    return x, mask, initial


def _run(layer_class, fused, options, initial_state=None, graph=False, masked=True):
    """Output tensors and gradients (of the weights, inputs and initial state)."""
    options = {"return_sequences": True, **options}
    layer = layer_class(UNITS, fused=fused, return_state=True, **options)
    x, mask, initial = _data(masked, num_states=len(layer.cell.state_size))
    layer.build((BATCH, STEPS, FEATURES))
    rng = np.random.default_rng(1)
    for weight in layer.weights:
        weight.assign(0.5 * rng.normal(size=weight.shape).astype("float32"))
    x = tf.constant(x)
    states = [tf.constant(s) for s in initial] if initial_state else None

    def forward_backward(x, states):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if states is not None:
                tape.watch(states)
            outputs = layer(
                x,
                initial_state=states,
                mask=tf.constant(mask) if masked else None,
                training=True,
            )
            loss = sum(
                tf.reduce_sum(o * np.linspace(0.5, 1.5, o.shape[-1])) for o in outputs
            )
        sources = list(layer.trainable_weights) + [x] + (states or [])
        return outputs, tape.gradient(loss, sources)

    if graph:
        forward_backward = tf.function(forward_backward)
    keras.utils.set_random_seed(5)
    outputs, gradients = forward_backward(x, states)
    return [o.numpy() for o in outputs], [g.numpy() for g in gradients]


def _assert_same(reference, candidate):
    for expected, actual in zip(reference, candidate):
        np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.fixture(params=["one-chunk", "chunks-2-2-1"])
def chunking(request, monkeypatch):
    """Runs the fast path with its time loop in one chunk, or in uneven ones.

    At the test's batch of 3, CHUNK_ROWS = 6 makes chunks of 2 steps: the 5
    steps run as chunks of 2, 2 and 1, so the per-chunk products, the
    popped pre-activations and the chunk boundaries are all exercised.
    """
    if request.param == "chunks-2-2-1":
        monkeypatch.setattr(tf_fast, "CHUNK_ROWS", 2 * BATCH)
    return request.param


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("layer_class", LAYERS, ids=lambda c: c.__name__)
def test_fast_path_matches_cell_path(layer_class, option, chunking, fast_calls):
    _check_fast_matches_cell(layer_class, OPTIONS[option], option, fast_calls)


def _check_fast_matches_cell(layer_class, options, option, fast_calls):
    """Values and gradients of the fast path equal the cell path's."""
    initial_state = option in ("plain", "dropout")
    reference = _run(layer_class, False, options, initial_state)
    assert not fast_calls
    fast = _run(layer_class, True, options, initial_state)
    assert len(fast_calls) == 1, "the TensorFlow fast path did not run"
    _assert_same(reference[0], fast[0])
    _assert_same(reference[1], fast[1])
    assert all(np.isfinite(g).all() for g in fast[1])
    # Every weight, the inputs and the initial states get a gradient.
    assert all(np.abs(g).max() > 0 for g in fast[1])


# Stacks: several levels inside each step (the same `fused_rnn`, over `fast_levels()`).
STACKS = {
    "DepthGatedLSTM-3": (kg.DepthGatedLSTM, {"num_layers": 3}),
    "DepthGatedLSTM-2-same-width": (kg.DepthGatedLSTM, {"num_layers": 2}),
    # The norms and the clip on every level. Not zoneout, whose cell path
    # draws its masks step by step, nor the projection, whose h is narrower
    # than these initial states (both: tests/test_options.py on TensorFlow,
    # jax_fast_script.py and torch_fast_script.py on the other backends).
    "DepthGatedLSTM-3-layer-norm-clip": (
        kg.DepthGatedLSTM, {"num_layers": 3, "layer_norm": True, "cell_clip": 1.0},
    ),
    "GridLSTM-3": (kg.GridLSTM, {"depth": 3}),
    "GridLSTM-2-tanh": (kg.GridLSTM, {"depth": 2, "depth_transform": "tanh"}),
    "GridLSTM-2-identity-tied": (
        kg.GridLSTM, {"depth": 2, "depth_transform": "identity", "tied_weights": True}
    ),
}
STACK_OPTIONS = {k: v for k, v in OPTIONS.items() if k != "taped_backward"}


@pytest.mark.parametrize("option", sorted(STACK_OPTIONS))
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_stack_fast_path_matches_cell_path(stack, option, chunking, fast_calls, monkeypatch):
    layer_class, stack_options = STACKS[stack]
    if stack == "DepthGatedLSTM-2-same-width":
        # D == H: the bottom layer's l_t is x itself (no projection weight).
        monkeypatch.setattr(sys.modules[__name__], "FEATURES", UNITS)
    options = {**stack_options, **STACK_OPTIONS[option]}
    _check_fast_matches_cell(layer_class, options, option, fast_calls)


@pytest.mark.parametrize("layer_class", [kg.PeepholeLSTM, kg.UntiedLSTM],
                         ids=lambda c: c.__name__)
def test_fast_path_matches_cell_path_in_a_compiled_function(layer_class, fast_calls):
    options = {"dropout": 0.2, "recurrent_dropout": 0.3, "seed": 3}
    reference = _run(layer_class, False, options, initial_state=True, graph=True)
    fast = _run(layer_class, True, options, initial_state=True, graph=True)
    assert fast_calls
    _assert_same(reference[0], fast[0])
    _assert_same(reference[1], fast[1])


@pytest.mark.parametrize(
    "layer_class, options",
    [
        (kg.CoupledLSTM, {"peepholes": "fo"}),
        (kg.PeepholeLSTM, {"peepholes": "f"}),
        (kg.PeepholeLSTM, {"peepholes": ""}),
        (kg.DepthGatedLSTM, {"use_peepholes": False}),
        (kg.UntiedLSTM, {"use_bias": False}),
        (kg.DepthGatedLSTM, {"num_layers": 2, "layer_norm": True, "use_bias": False}),
    ],
    ids=["coupled-fo", "peephole-f", "peephole-none", "depth-no-peepholes", "untied-no-bias",
         "depth-stack-layer-norm-no-bias"],
)
def test_written_backward_step_with_other_weight_sets(layer_class, options, fast_calls):
    reference = _run(layer_class, False, options, initial_state=True)
    fast = _run(layer_class, True, options, initial_state=True)
    assert fast_calls
    _assert_same(reference[0], fast[0])
    _assert_same(reference[1], fast[1])


def test_chunks_with_unknown_batch_and_length_in_a_compiled_function(monkeypatch, fast_calls):
    """Batch and length unknown while tracing: the chunk bounds are tensors."""
    monkeypatch.setattr(tf_fast, "DYNAMIC_BATCH_CHUNK_STEPS", 2)
    x, mask, _ = _data()
    results = []
    for fused in (False, True):
        layer = kg.DepthGatedLSTM(UNITS, fused=fused, return_sequences=True)
        layer.build((None, None, FEATURES))
        rng = np.random.default_rng(1)
        for weight in layer.weights:
            weight.assign(0.5 * rng.normal(size=weight.shape).astype("float32"))

        @tf.function(input_signature=[
            tf.TensorSpec((None, None, FEATURES)), tf.TensorSpec((None, None), tf.bool)
        ])
        def forward_backward(x, mask, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, mask=mask, training=True) ** 3)
            return tape.gradient(loss, layer.trainable_weights + [x])

        results.append([g.numpy() for g in forward_backward(x, mask)])
    assert fast_calls
    _assert_same(results[0], results[1])


def test_input_gradient_is_skipped_only_where_no_tape_needs_it(fast_calls):
    """Fed straight from data, the layer skips dX = dZ W^T; the weights' gradients stay exact."""
    x, _, _ = _data(masked=False)
    x = tf.constant(x)
    gradients = []
    for fused in (False, True):
        layer = kg.PeepholeLSTM(UNITS, fused=fused)
        layer.build(x.shape)
        rng = np.random.default_rng(1)
        for weight in layer.weights:
            weight.assign(0.5 * rng.normal(size=weight.shape).astype("float32"))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        gradients.append(tape.gradient(loss, layer.trainable_weights + [x]))
    assert tf_fast._input_gradient_needed(x) is True  # no tape recording here
    with tf.GradientTape():
        assert not tf_fast._input_gradient_needed(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        assert tf_fast._input_gradient_needed(x)
    assert gradients[1][-1] is None and gradients[0][-1] is None  # not watched
    _assert_same(gradients[0][:-1], gradients[1][:-1])


@pytest.mark.parametrize(
    "layer_class, options",
    [(kg.DepthGatedLSTM, {"num_layers": 2}), (kg.GridLSTM, {"depth": 2}), (kg.PeepholeLSTM, {})],
    ids=["DepthGatedLSTM-stack", "GridLSTM", "PeepholeLSTM"],
)
def test_fit_at_a_benchmark_shape(layer_class, options, fast_calls):
    """A compiled train step at (32, 100, 128, 256), in six chunks of 16 steps and one of 4.

    At this size TensorFlow's graph optimizer once turned a chain of
    additions in the stack's backward step into an AccumulateNV2, which
    failed with AlreadyExistsError (see `add_gradients`); tiny shapes did
    not show it.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 100, 128)).astype("float32")
    y = rng.normal(size=(32, 100, 256)).astype("float32")
    model = keras.Sequential(
        [keras.Input((100, 128)), layer_class(256, return_sequences=True, **options)]
    )
    model.compile(keras.optimizers.SGD(0.01), "mse")
    losses = [float(model.train_on_batch(x, y)) for _ in range(2)]
    assert fast_calls
    assert np.isfinite(losses).all() and losses[1] < losses[0]


def test_written_backward_step_is_used_where_it_exists():
    assert kg.PeepholeLSTM(4).cell.has_step_backward
    assert kg.UntiedLSTM(4, activation="linear").cell.has_step_backward
    assert not kg.PeepholeLSTM(4, activation="relu").cell.has_step_backward
    assert not kg.CoupledLSTM(4, recurrent_activation="hard_sigmoid").cell.has_step_backward


def test_fast_path_without_mask(fast_calls):
    reference = _run(kg.CoupledLSTM, False, {"peepholes": "fo"}, masked=False)
    fast = _run(kg.CoupledLSTM, True, {"peepholes": "fo"}, masked=False)
    assert fast_calls and fast_calls[0]["mask"] is None
    _assert_same(reference[0], fast[0])
    _assert_same(reference[1], fast[1])


@pytest.mark.parametrize("fused", [False, True])
def test_stateful_layers_carry_the_same_state(fused, fast_calls):
    x, _, _ = _data()
    results = {}
    for path in (False, fused):
        keras.utils.set_random_seed(2)
        layer = kg.PeepholeLSTM(UNITS, stateful=True, fused=path)
        layer.build((BATCH, STEPS, FEATURES))
        first = layer(x, training=True)
        second = layer(x, training=True)
        results[path] = (first.numpy(), second.numpy(), layer.states[1].numpy())
    assert bool(fast_calls) == fused
    assert not np.allclose(results[fused][0], results[fused][1])
    for expected, actual in zip(results[False], results[fused]):
        np.testing.assert_allclose(actual, expected, atol=TOLERANCE)


def test_model_trains_through_the_fast_path(fast_calls):
    x, _, _ = _data(masked=False)
    y = np.linspace(-1, 1, BATCH * UNITS).reshape(BATCH, UNITS).astype("float32")
    model = keras.Sequential(
        [keras.Input((STEPS, FEATURES)), kg.UntiedLSTM(UNITS)]
    )
    model.compile(keras.optimizers.SGD(0.5), "mse")
    losses = [model.train_on_batch(x, y) for _ in range(8)]
    assert fast_calls
    assert losses[-1] < 0.8 * losses[0]


def test_mixed_precision_runs_the_fast_path(fast_calls):
    # Its numbers: test_fast_path.py::test_mixed_precision_runs_the_fast_path.
    x, _, _ = _data(masked=False)
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = kg.PeepholeLSTM(UNITS)
    output = layer(x, training=True)
    assert output.dtype == "float16"
    assert fast_calls


@pytest.mark.parametrize("taped", [True, False], ids=["taped", "tf.gradients"])
@pytest.mark.parametrize(
    "layer_class, options",
    [
        (kg.UntiedLSTM, {}),
        (kg.DepthGatedLSTM, {"num_layers": 2}),
        (kg.GridLSTM, {"depth": 2}),
    ],
    ids=["UntiedLSTM", "DepthGatedLSTM-2-layers", "GridLSTM"],
)
def test_inference_calls_run_the_fast_loop_with_exact_gradients(
    layer_class, options, taped, fast_calls, chunking, monkeypatch
):
    """`training=False` runs the fast loop too. Under a gradient tape it
    keeps its custom gradient; with no tape to announce a gradient it runs
    its forward loop alone, which TensorFlow then differentiates itself."""
    tapes_seen = []
    original_taped = tf_fast._taped

    def recording_taped(tensors):
        tapes_seen.append(original_taped(tensors))
        return tapes_seen[-1]

    monkeypatch.setattr(tf_fast, "_taped", recording_taped)
    x, mask, _ = _data(masked=True)
    x = tf.constant(x)
    reference = layer_class(UNITS, fused=False, go_backwards=True, **options)
    layer = layer_class(UNITS, go_backwards=True, **options)
    reference.build(x.shape)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    rng = np.random.default_rng(1)
    states = [
        tf.constant(rng.normal(size=(BATCH, size)).astype("float32"))
        for size in tree.flatten(layer.cell.state_size)
    ]

    def output_and_gradients(candidate):
        sources = [x] + states + candidate.trainable_weights
        if taped:
            with tf.GradientTape() as tape:
                tape.watch([x] + states)
                output = candidate(x, mask=mask, initial_state=states, training=False)
                loss = tf.reduce_sum(output**3)
            return [output] + tape.gradient(loss, sources)

        @tf.function
        def graph():
            output = candidate(x, mask=mask, initial_state=states, training=False)
            return [output] + tf.gradients(tf.reduce_sum(output**3), sources)

        return graph()

    results = [output_and_gradients(candidate) for candidate in (reference, layer)]
    assert [call["training"] for call in fast_calls] == [False]
    assert tapes_seen == [taped]
    assert all(value is not None for value in results[0] + results[1])
    _assert_same(results[0], results[1])


@pytest.mark.parametrize(
    "layer_class, options",
    [
        (kg.GridLSTM, {"depth": 2, "priority": "depth"}),
        (kg.GridLSTM, {"depth": 2, "activation": "relu"}),
        (kg.DepthGatedLSTM, {"num_layers": 2, "recurrent_activation": "hard_sigmoid"}),
    ],
    ids=["GridLSTM-prioritised", "GridLSTM-relu", "DepthGatedLSTM-hard-sigmoid"],
)
def test_stacks_without_a_fast_path_take_the_generic_path(layer_class, options, fast_calls):
    x, _, _ = _data(masked=False)
    reference = layer_class(UNITS, fused=False, **options)
    layer = layer_class(UNITS, **options)
    reference.build(x.shape)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    gradients = []
    for candidate in (reference, layer):
        with tf.GradientTape() as tape:
            output = candidate(x, training=True)
            loss = tf.reduce_sum(output**2)
        gradients.append(tape.gradient(loss, candidate.trainable_weights))
    assert not fast_calls
    np.testing.assert_allclose(layer(x), reference(x), atol=TOLERANCE)
    _assert_same(gradients[0], gradients[1])


def _subprocess_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra)
    return env


GENERIC_PATH_SCRIPT = """
import numpy as np, keras, keras_gated as kg
x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
mask = np.array([[1, 1, 1, 0], [0, 1, 1, 1]], bool)
for cls in (kg.PeepholeLSTM, kg.UntiedLSTM):
    a = cls(5, return_sequences=True, fused=False, go_backwards=True)
    b = cls(5, return_sequences=True, go_backwards=True)
    a.build(x.shape); b.build(x.shape); b.set_weights(a.get_weights())
    np.testing.assert_allclose(np.asarray(b(x, mask=mask)),
                               np.asarray(a(x, mask=mask)), atol=2e-5)
print("generic path ok on", keras.backend.backend())
"""


def test_generic_path_runs_on_jax():
    result = subprocess.run(
        [sys.executable, "-c", GENERIC_PATH_SCRIPT],
        capture_output=True, text=True, cwd=REPO_ROOT,
        env=_subprocess_env(KERAS_BACKEND="jax"), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "generic path ok on jax" in result.stdout


def test_benchmark_quick_run_writes_every_backends_figures(tmp_path):
    """`--backend tensorflow,jax`: one process per backend, one JSON, each row's path."""
    path = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.rnn", "--backend", "tensorflow,jax", "--quick",
         "--repeats", "1", "--warmup", "1", "--layers", "PeepholeLSTM,DepthGatedLSTM(num_layers=2),keras.LSTM",
         "--memory", "none", "--json", str(path)],
        capture_output=True, text=True, cwd=REPO_ROOT,
        # Users' programs are compiled with XLA's optimisations (conftest.py
        # turns them off for the other JAX checks).
        env=_subprocess_env(KERAS_BACKEND="tensorflow", JAX_DISABLE_MOST_OPTIMIZATIONS="0"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(path.read_text())["backends"]
    assert sorted(figures) == ["jax", "tensorflow"]
    assert "tf.function" in figures["tensorflow"]["compilation"]
    assert "jax.jit" in figures["jax"]["compilation"]
    for backend, results in figures.items():
        assert results["backend"] == backend
        (entry,) = results["shapes"]
        assert entry["shape"] == {"batch": 4, "steps": 6, "inputs": 8, "units": 16}
        assert entry["gemm_gflops"] > 0
        rows = {row["name"]: row for row in entry["rows"]}
        assert list(rows) == ["PeepholeLSTM", "DepthGatedLSTM(num_layers=2)", "keras.LSTM"]
        for row in rows.values():
            for phase in ("train", "inference"):
                assert row[phase]["ms"] > 0 and row[phase]["gflops"] > 0
                assert len(row[phase]["samples_ms"]) == 1
            assert "memory" not in row
        assert rows["keras.LSTM"]["train"]["vs_keras_lstm"] == pytest.approx(1.0)
        assert rows["keras.LSTM"]["train"]["vs_torch_lstm"] is None
        assert rows["keras.LSTM"]["path"] == "keras"
        assert rows["PeepholeLSTM"]["path"] == "fast"
    assert figures["tensorflow"]["shapes"][0]["rows"][1]["path"] == "fast"
    # The stacks have a fast loop on JAX too (`_fast.jax.fused_rnn` over their levels).
    assert figures["jax"]["shapes"][0]["rows"][1]["path"] == "fast"
    assert "## tensorflow" in result.stdout and "## jax" in result.stdout
    assert "| PeepholeLSTM | fast |" in result.stdout


def test_benchmark_policy_times_the_fast_path_in_the_half_type(tmp_path):
    """`--policy mixed_bfloat16`: the JSON names it, the layers run their fast
    loop under it, torch.nn.LSTM under torch.autocast."""
    path = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.rnn", "--quick", "--repeats", "1", "--warmup", "1",
         "--layers", "PeepholeLSTM,keras.LSTM,torch.LSTM", "--policy", "mixed_bfloat16",
         "--memory", "subprocess", "--json", str(path)],
        capture_output=True, text=True, cwd=REPO_ROOT,
        env=_subprocess_env(KERAS_BACKEND="tensorflow"), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(path.read_text())
    assert figures["policy"] == "mixed_bfloat16"
    rows = {row["name"]: row for row in figures["shapes"][0]["rows"]}
    assert rows["PeepholeLSTM"]["path"] == "fast"
    assert rows["torch.LSTM"]["path"] == "torch.nn.LSTM on cpu under torch.autocast(bfloat16)"
    # The memory subprocesses run under the same policy.
    assert all(row["memory"]["policy"] == "mixed_bfloat16" for row in rows.values())
    assert all(row["memory"]["training_mb"] > 0 for row in rows.values())


def test_benchmark_measures_peak_memory_in_a_fresh_process(monkeypatch):
    monkeypatch.syspath_prepend(REPO_ROOT)
    from benchmarks import rnn

    memory = rnn.measure_memory("CoupledLSTM", (2, 3, 4, 5), "none")
    assert memory["peak_rss_mb"] >= memory["baseline_rss_mb"] > 0
    assert memory["training_mb"] == pytest.approx(
        memory["peak_rss_mb"] - memory["baseline_rss_mb"]
    )
    assert memory["training_mb"] > 0
    # Inference gets its own peak, counted from where training left off.
    assert memory["inference_mb"] is None or memory["inference_mb"] >= 0


def test_benchmark_live_memory_runs_without_the_memory_pool(monkeypatch):
    monkeypatch.syspath_prepend(REPO_ROOT)
    from benchmarks import rnn

    memory = rnn.measure_memory("CoupledLSTM", (2, 3, 4, 5), "none", live=True)
    assert memory["environment"] == rnn.LIVE_MEMORY_ENVIRONMENT
    assert memory["training_mb"] > 0
    row = {"name": "CoupledLSTM", "levels": 1,
           "memory": {**memory, "vs_keras_lstm": 1.0,
                      "live_training_mb": 12.3, "live_vs_keras_lstm": 1.1}}
    for phase in ("train", "inference"):
        row[phase] = {"ms": 1.0, "gflops": 1.0, "gemm_fraction": 0.5,
                      "vs_keras_lstm": 1.0, "vs_torch_lstm": None}
    table = rnn.format_table({"shape": {"batch": 2, "steps": 3, "inputs": 4,
                                        "units": 5},
                              "gemm_gflops": 2.0, "rows": [row]})
    assert "| live MB | live vs keras LSTM |" in table
    assert table.splitlines()[-1].endswith("| 12 | 1.10 |")


def test_benchmark_rejects_a_malformed_shape():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.rnn", "--shapes", "32x100x128"],
        capture_output=True, text=True, cwd=REPO_ROOT,
        env=_subprocess_env(), timeout=120,
    )
    assert result.returncode == 2
    assert "BATCHxSTEPSxINPUTSxUNITS" in result.stderr


def test_device_script_parses_and_names_its_commands():
    """`benchmarks/device_run.sh` is run once on a lent GPU: at least it must parse."""
    script = os.path.join(REPO_ROOT, "benchmarks", "device_run.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    result = subprocess.run(["bash", script, "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "prepare|run" in result.stderr


def test_benchmark_layer_list_keeps_commas_inside_parentheses():
    from benchmarks.rnn import IMPLEMENTATIONS, _layer_names

    names = _layer_names("GridLSTM, DepthGatedLSTM(num_layers=2, fast_path=False),keras.LSTM")
    assert names == ["GridLSTM", "DepthGatedLSTM(num_layers=2, fast_path=False)", "keras.LSTM"]
    assert all(name in IMPLEMENTATIONS for name in names)
