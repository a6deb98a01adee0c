"""Train every keras-gated cell, and Keras's own LSTM and GRU, on the adding problem.

The adding problem (Hochreiter & Schmidhuber 1997): each step carries a value
in [0, 1] and a marker; two steps are marked, one in each half of the
sequence, and the target is the sum of their two values. A model must keep
the first value over many steps while ignoring the rest. Predicting the mean
gives an MSE of about 1/6 (0.167); a model that solved the task is near 0.

    python examples/quickstart.py            # the full run: about 70 s of CPU time, under 3 minutes on 2 cores
    python examples/quickstart.py --quick    # a tiny smoke run

It prints one row per model: parameters, test MSE, accuracy (the share of
test sequences whose sum is predicted within 0.1), and training seconds.
To add a block, add one line to `candidates()`.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Run from a checkout without installing: put the repository on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_gated as kg  # noqa: E402

TOLERANCE = 0.1  # a prediction within this of the true sum counts as correct


def adding_problem(n, timesteps, seed):
    """Inputs (n, T, 2) and targets (n, 1) of the adding problem."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n, timesteps)).astype("float32")
    markers = np.zeros((n, timesteps), "float32")
    rows = np.arange(n)
    markers[rows, rng.integers(0, timesteps // 2, n)] = 1.0
    markers[rows, rng.integers(timesteps // 2, timesteps, n)] = 1.0
    return np.stack([values, markers], axis=-1), (values * markers).sum(1, keepdims=True)


def optional(name, **kwargs):
    """A keras-gated layer that this installed version may not have yet."""
    layer_class = getattr(kg, name, None)
    return None if layer_class is None else (lambda units: [layer_class(units, **kwargs)])


def candidates():
    """Name -> function of `units` returning the recurrent part of the model."""
    models = {
        "PeepholeLSTM": lambda units: [kg.PeepholeLSTM(units)],
        "CoupledLSTM": lambda units: [kg.CoupledLSTM(units)],
        "UntiedLSTM": lambda units: [kg.UntiedLSTM(units)],
        "DepthGatedLSTM": optional("DepthGatedLSTM", num_layers=2),
        "GridLSTM": optional("GridLSTM"),
        "keras LSTM": lambda units: [keras.layers.LSTM(units)],
        "keras GRU": lambda units: [keras.layers.GRU(units)],
        "PeepholeLSTM + 2 Highway": lambda units: [
            kg.PeepholeLSTM(units),
            kg.Highway(activation="tanh"),
            kg.Highway(activation="tanh"),
        ],
    }
    return {name: build for name, build in models.items() if build is not None}


def train(build, data, args):
    x, y, x_test, y_test = data
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential(
        [keras.Input(x.shape[1:]), *build(args.units), keras.layers.Dense(1)]
    )
    # A tiny run spends most of its time tracing graphs; eager skips that.
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="mse",
        run_eagerly=args.quick,
    )
    epochs = max(1, args.steps * args.batch_size // len(x))
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    predictions = keras.ops.convert_to_numpy(model(x_test))
    mse = float(np.mean((predictions - y_test) ** 2))
    accuracy = float(np.mean(np.abs(predictions - y_test) < TOLERANCE))
    return model.count_params(), mse, accuracy, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds)")
    parser.add_argument("--timesteps", type=int, default=50)
    parser.add_argument("--units", type=int, default=24)
    parser.add_argument("--steps", type=int, default=640, help="optimizer steps per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="train only these models")
    args = parser.parse_args(argv)
    if args.quick:
        args.timesteps, args.units, args.steps = 10, 8, 16

    n_train = max(args.batch_size * 32, args.batch_size)
    if args.quick:
        n_train = args.batch_size * 8
    x, y = adding_problem(n_train, args.timesteps, seed=0)
    x_test, y_test = adding_problem(512, args.timesteps, seed=1)
    data = (x, y, x_test, y_test)

    mean_mse = float(np.mean((y_test - y.mean()) ** 2))
    mean_accuracy = float(np.mean(np.abs(y_test - y.mean()) < TOLERANCE))
    print(
        f"Adding problem, T={args.timesteps}, {args.steps} steps of batch "
        f"{args.batch_size}, {args.units} units (keras backend: {keras.backend.backend()})"
    )
    header = f"{'model':<26} {'params':>7} {'test MSE':>9} {'accuracy':>9} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    print(f"{'(predict the mean)':<26} {0:>7} {mean_mse:>9.4f} {mean_accuracy:>9.3f} {0:>8.1f}")
    for name, build in candidates().items():
        if args.only and name not in args.only:
            continue
        params, mse, accuracy, seconds = train(build, data, args)
        print(f"{name:<26} {params:>7} {mse:>9.4f} {accuracy:>9.3f} {seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
