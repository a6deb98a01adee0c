"""Smoke test of every block on the backend named by KERAS_BACKEND.

Run by `test_backends.py` in a subprocess (the backend is fixed when Keras is
first imported). Prints `OK <check>` for each check that passed and
`FAIL <check>` with the traceback for each that did not, then exits 1 if any
failed.
"""

import os
import sys
import tempfile
import time
import traceback

import keras
import numpy as np
from keras import ops

import keras_gated as kg
from gated_cases import RNN_CASES
from gated_cases import RNN_CLASSES
from gated_cases import randomize_weights
from gated_cases import sequences

UNITS = 5
ATOL = 1e-5
FAILED = []


def check(name):
    def run(function):
        start = time.perf_counter()
        try:
            function()
        except Exception:  # report every failure, then fail the process
            FAILED.append(name)
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"OK {name} ({time.perf_counter() - start:.1f} s)", flush=True)
        return function

    return run


def numpy(tensors):
    if isinstance(tensors, (list, tuple)):
        return [ops.convert_to_numpy(t) for t in keras.tree.flatten(tensors)]
    return [ops.convert_to_numpy(tensors)]


def close(a, b, atol=ATOL):
    a, b = numpy(a), numpy(b)
    assert len(a) == len(b), (len(a), len(b))
    for a_i, b_i in zip(a, b):
        np.testing.assert_allclose(a_i, b_i, atol=atol, rtol=atol)


def copy_of(layer, make, x):
    other = make()
    other(x)
    other.set_weights(layer.get_weights())
    return other


def smoke_rnn(case_id, layer_class, cell_class, kwargs, train=True):
    x = sequences()
    mask = np.ones((3, 6), bool)
    mask[1, 3:] = False
    mask[2, :2] = False
    options = {"return_sequences": True, "return_state": True}

    def make_layer(**more):
        return layer_class(UNITS, **options, **kwargs, **more)

    layer = make_layer()
    layer(x)
    randomize_weights(layer)

    @check(f"{case_id} layer equals RNN(cell), with and without mask")
    def _():
        rnn = copy_of(layer, lambda: keras.layers.RNN(cell_class(UNITS, **kwargs), **options), x)
        close(layer(x), rnn(x))
        close(layer(x, mask=mask), rnn(x, mask=mask))

    @check(f"{case_id} fused equals unfused")
    def _():
        unfused = copy_of(layer, lambda: make_layer(fused=False), x)
        close(layer(x), unfused(x))
        close(layer(x, mask=mask), unfused(x, mask=mask))

    if not train:  # a second configuration of a class checked in full
        return

    @check(f"{case_id} go_backwards, unroll")
    def _():
        backwards = copy_of(layer, lambda: make_layer(go_backwards=True), x)
        close(backwards(x), layer(x[:, ::-1]))
        unrolled = copy_of(layer, lambda: make_layer(unroll=True), x)
        close(unrolled(x), layer(x))

    @check(f"{case_id} stateful")
    def _():
        stateful = copy_of(layer, lambda: layer_class(UNITS, stateful=True, return_sequences=True, **kwargs), x)
        stateful.reset_state()
        first, second = stateful(x[:, :2]), stateful(x[:, 2:])
        whole = numpy(layer(x))[0]
        close(first, whole[:, :2])
        close(second, whole[:, 2:])

    @check(f"{case_id} Bidirectional")
    def _():
        ours = keras.layers.Bidirectional(layer_class(UNITS, return_sequences=True, **kwargs))
        ours(x)
        randomize_weights(ours)
        reference = copy_of(
            ours,
            lambda: keras.layers.Bidirectional(
                keras.layers.RNN(cell_class(UNITS, **kwargs), return_sequences=True)
            ),
            x,
        )
        close(ours(x, mask=mask), reference(x, mask=mask))

    @check(f"{case_id} dropout: inference deterministic, training differs")
    def _():
        dropped = copy_of(layer, lambda: make_layer(dropout=0.3, recurrent_dropout=0.3, seed=1), x)
        close(dropped(x), layer(x))
        assert not np.allclose(numpy(dropped(x, training=True))[0], numpy(layer(x))[0], atol=1e-3)

    @check(f"{case_id} fit step (with dropout, and stateful), get_config round trip, .keras round trip")
    def _():
        model = keras.Sequential(
            [
                keras.Input((6, x.shape[-1])),
                layer_class(UNITS, dropout=0.1, recurrent_dropout=0.1, seed=0, **kwargs),
                kg.Highway(),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer="adam", loss="mse")
        before = [w.copy() for w in model.get_weights()]
        history = model.fit(x, np.ones((3, 1), "float32"), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        rebuilt = keras.Sequential.from_config(model.get_config())
        rebuilt.set_weights(model.get_weights())
        close(rebuilt(x), model(x))
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.keras")
            model.save(path)
            close(keras.saving.load_model(path)(x), model(x))
        # A stateful layer trains too (PyTorch needs the step to copy states).
        stateful = keras.Sequential(
            [
                keras.Input((6, x.shape[-1]), batch_size=3),
                layer_class(UNITS, stateful=True, return_sequences=True, **kwargs),
                keras.layers.Dense(1),
            ]
        )
        stateful.compile(optimizer="adam", loss="mse")
        history = stateful.fit(
            x, np.ones((3, 6, 1), "float32"), batch_size=3, epochs=2, shuffle=False, verbose=0
        )
        assert np.all(np.isfinite(history.history["loss"]))


def smoke_highway():
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
    for carry_gate in ("coupled", "free"):

        @check(f"Highway carry_gate={carry_gate}: forward, fit, config")
        def _():
            layer = kg.Highway(carry_gate=carry_gate)
            out = numpy(layer(x))[0]
            assert out.shape == x.shape and np.all(np.isfinite(out))
            rebuilt = copy_of(layer, lambda: kg.Highway.from_config(layer.get_config()), x)
            close(rebuilt(x), layer(x))
            model = keras.Sequential([keras.Input((6,)), layer, kg.Highway()])
            model.compile(optimizer="adam", loss="mse")
            before = [w.copy() for w in layer.get_weights()]
            model.fit(x, x, epochs=1, verbose=0)
            assert all(not np.array_equal(a, b) for a, b in zip(before, layer.get_weights()))


def smoke_tasks():
    """What the task pipelines choose per backend: compiled train and decoding steps,
    no widened first batch."""
    from keras_gated.tasks import batches as kb
    from keras_gated.tuning.hypermodel import graph_without_xla
    from task_checks import check_compiled_decoding_reads_the_current_weights

    @check("Tasks: train steps compiled where the backend compiles")
    def _():
        expected = {"jax": "auto", "torch": "auto"}[keras.backend.backend()]
        assert graph_without_xla() == expected, graph_without_xla()

    @check("Tasks: the compiled decoding step reads the current weights")
    def _():
        check_compiled_decoding_reads_the_current_weights()

    @check("Tasks: the first bucketed batch is not widened")
    def _():
        assert not kb.widens_first_batch()
        tokens = np.zeros((40, 30), dtype="int32")
        lengths = np.arange(40) % 20 + 1
        for row, length in enumerate(lengths):
            tokens[row, :length] = 1
        batches = kb.BucketedArrayBatches((tokens,), (True,), batch_size=8, seed=0, window=2)
        first = batches[0][0]
        assert first.shape[1] == kb.padded_length(lengths[batches.rows(0)].max(), 30), first.shape


def main():
    keras.utils.set_random_seed(0)
    print("BACKEND", keras.backend.backend(), flush=True)
    trained = {param.id for param in RNN_CLASSES}
    for param in RNN_CASES:
        smoke_rnn(param.id, *param.values, train=param.id in trained)
    smoke_highway()
    smoke_tasks()
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
