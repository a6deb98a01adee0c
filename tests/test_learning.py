"""The blocks learn what their papers say they learn, on small fixed problems.

* The adding problem (Hochreiter & Schmidhuber 1997) at T = 50: every
  recurrent cell must bring the test MSE below `ADDING_THRESHOLD` within
  `ADDING_MAX_STEPS` optimizer steps. Predicting the mean scores about 1/6.
* Highway (Srivastava, Greff & Schmidhuber 2015): a 30-layer Highway stack
  trains where a plain 30-layer Dense stack of the same width and activation
  stalls at chance.
* `examples/quickstart.py --quick` runs.

Learning tests count optimizer steps, never time. Calibration on the
development machine (units 16, Adam 0.02, batch 64, test MSE checked every
32 steps): with seed 0 the cells went below 0.02 after 352 (peephole),
192 (coupled) and 256 (untied) steps; over seeds 0, 1, 2 the slowest took
608 steps (untied, seed 2). The bound of 1024 steps leaves a margin above
that; the threshold is 8 times below the mean predictor's MSE.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_gated as kg
from gated_cases import RNN_CLASSES

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ADDING_TIMESTEPS = 50
ADDING_THRESHOLD = 0.02  # test MSE; the mean predictor scores about 0.167
ADDING_MAX_STEPS = 1024  # seed 0 needs at most 352; any seed tried at most 608
ADDING_CHECK_EVERY = 32  # steps between two evaluations on the test set


def adding_problem(n, timesteps, seed):
    """Inputs (n, T, 2): a value in [0, 1] and a marker; two steps are marked,
    one in each half of the sequence; the target is the sum of their values."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n, timesteps)).astype("float32")
    markers = np.zeros((n, timesteps), "float32")
    rows = np.arange(n)
    markers[rows, rng.integers(0, timesteps // 2, n)] = 1.0
    markers[rows, rng.integers(timesteps // 2, timesteps, n)] = 1.0
    inputs = np.stack([values, markers], axis=-1)
    targets = (values * markers).sum(axis=1, keepdims=True)
    return inputs, targets


def test_adding_problem_mean_predictor_fails_the_threshold():
    _, train_targets = adding_problem(2048, ADDING_TIMESTEPS, seed=0)
    _, test_targets = adding_problem(512, ADDING_TIMESTEPS, seed=1)
    mean_mse = float(np.mean((test_targets - train_targets.mean()) ** 2))
    assert abs(mean_mse - 1.0 / 6.0) < 0.02
    assert mean_mse > 5 * ADDING_THRESHOLD


@pytest.mark.slow
@pytest.mark.parametrize("layer_class, cell_class, kwargs", RNN_CLASSES)
def test_adding_problem(layer_class, cell_class, kwargs):
    keras.utils.set_random_seed(0)
    x, y = adding_problem(2048, ADDING_TIMESTEPS, seed=0)
    x_test, y_test = adding_problem(512, ADDING_TIMESTEPS, seed=1)
    model = keras.Sequential(
        [
            keras.Input((ADDING_TIMESTEPS, 2)),
            layer_class(16, **kwargs),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    batch_size = 2048 // ADDING_CHECK_EVERY
    steps, history = 0, []
    while steps < ADDING_MAX_STEPS:
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
        steps += ADDING_CHECK_EVERY
        history.append(model.evaluate(x_test, y_test, batch_size=512, verbose=0))
        if history[-1] < ADDING_THRESHOLD:
            break
    assert history[-1] < ADDING_THRESHOLD, (
        f"{layer_class.__name__} did not reach MSE {ADDING_THRESHOLD} in "
        f"{ADDING_MAX_STEPS} steps; test MSE every {ADDING_CHECK_EVERY} steps: "
        f"{[round(h, 4) for h in history]}"
    )
    # It learned the task, not the mean: the start was at the mean's level.
    assert history[0] > 5 * ADDING_THRESHOLD


HIGHWAY_DEPTH = 30
HIGHWAY_WIDTH = 16
HIGHWAY_EPOCHS = 15  # 8 steps each: 120 optimizer steps


def quadrants(n, seed):
    """Is x1 * x2 > 0? A small problem no linear model solves."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2)).astype("float32")
    return x, (x[:, :1] * x[:, 1:] > 0).astype("float32")


def deep_stack(block):
    layers = [keras.Input((2,)), keras.layers.Dense(HIGHWAY_WIDTH, activation="relu")]
    layers += [block() for _ in range(HIGHWAY_DEPTH)]
    layers += [keras.layers.Dense(1, activation="sigmoid")]
    return keras.Sequential(layers)


def train_deep_stack(block):
    keras.utils.set_random_seed(0)
    x, y = quadrants(512, seed=0)
    model = deep_stack(block)
    model.compile(
        optimizer=keras.optimizers.Adam(0.005),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=64, epochs=HIGHWAY_EPOCHS, verbose=0)
    return history.history


@pytest.mark.slow
def test_deep_highway_stack_trains_where_a_plain_stack_stalls():
    chance = float(np.log(2.0))  # binary cross-entropy of a coin flip
    highway = train_deep_stack(lambda: kg.Highway(activation="relu"))
    plain = train_deep_stack(
        lambda: keras.layers.Dense(HIGHWAY_WIDTH, activation="relu")
    )
    # The plain stack stays at chance: 30 ReLU layers with Glorot weights
    # shrink signal and gradient; the Highway stack starts near the identity.
    assert min(plain["loss"]) > chance - 0.03, plain["loss"]
    assert plain["accuracy"][-1] < 0.65, plain["accuracy"]
    assert min(highway["loss"][-3:]) < 0.2, highway["loss"]
    assert highway["accuracy"][-1] > 0.9, highway["accuracy"]


@pytest.mark.slow
def test_quickstart_quick_runs():
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "examples", "quickstart.py"), "--quick"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("PeepholeLSTM", "CoupledLSTM", "UntiedLSTM", "LSTM", "GRU", "Highway"):
        assert name in result.stdout, result.stdout
    assert "params" in result.stdout and "seconds" in result.stdout
