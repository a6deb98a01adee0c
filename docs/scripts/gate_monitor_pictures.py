"""Makes the pictures of docs/gate_monitor.md from a real (small) run.

    KERAS_BACKEND=tensorflow python docs/scripts/gate_monitor_pictures.py

Trains, with `GateMonitor` attached, (1) a peephole LSTM on the adding
problem (Hochreiter & Schmidhuber 1997: sum the two marked numbers of a
sequence) and (2) a 10-layer Highway network on a synthetic classification
task, then takes the PNGs `GateMonitor` wrote from the event files and
saves them under docs/images/. It also draws the gradient flow of a
SimpleRNN and of a peephole LSTM at two forget-gate biases on 100-step
sequences. Takes a few minutes on a laptop CPU.
"""

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_gated as kg  # noqa: E402
from keras_gated import plots  # noqa: E402

IMAGES = os.path.join(ROOT, "docs", "images")


def adding_problem(n, timesteps, rng):
    values = rng.uniform(size=(n, timesteps))
    markers = np.zeros((n, timesteps))
    for row in range(n):
        first = rng.integers(0, timesteps // 2)
        second = rng.integers(timesteps // 2, timesteps)
        markers[row, [first, second]] = 1.0
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = (values * markers).sum(axis=1, keepdims=True).astype("float32")
    return x, y


def save_logged_images(run_dir, wanted):
    """Writes the PNG logged under `tag` at epoch `step`, for each (tag, file, step)."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    events.Reload()
    for tag, file_name, step in wanted:
        chosen = [e for e in events.Tensors(tag) if step is None or e.step == step][-1]
        png = tf.make_ndarray(chosen.tensor_proto)[2]
        with open(os.path.join(IMAGES, file_name), "wb") as f:
            f.write(png)
        print(f"{file_name}: {tag} at epoch {chosen.step}, {len(png)} bytes")


def lstm_run(log_dir, epochs=12):
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x, y = adding_problem(2000, 40, rng)
    x_val, y_val = adding_problem(64, 40, rng)
    model = keras.Sequential(
        [keras.Input((40, 2)), kg.PeepholeLSTM(24, name="peephole_lstm"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    monitor = kg.callbacks.GateMonitor(log_dir, (x_val, y_val), every_n_epochs=epochs - 1)
    history = model.fit(x, y, batch_size=50, epochs=epochs, verbose=2, callbacks=[monitor])
    print("adding problem, final loss", history.history["loss"][-1], "(predicting the mean: ~0.17)")
    last = epochs - 1
    save_logged_images(
        monitor.run_dir,
        [
            ("peephole_lstm/saturation", "gate_saturation_epoch0.png", 0),
            ("peephole_lstm/saturation", "gate_saturation.png", last),
            ("peephole_lstm/cell_state_norm", "cell_state_norm.png", last),
            ("peephole_lstm/gradient_flow", "gradient_flow_epoch0.png", 0),
            ("peephole_lstm/gradient_flow", "gradient_flow.png", last),
        ],
    )


def highway_run(log_dir, epochs=15):
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    x = rng.normal(size=(2000, 32)).astype("float32")
    y = (np.sin(x[:, :8].sum(axis=1)) > 0).astype("float32")[:, None]
    inputs = keras.Input((32,))
    hidden = inputs
    for k in range(10):
        hidden = kg.Highway(name=f"highway_{k}")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="binary_crossentropy", metrics=["accuracy"])
    monitor = kg.callbacks.GateMonitor(log_dir, (x[:256], y[:256]), every_n_epochs=epochs - 1)
    history = model.fit(x, y, batch_size=50, epochs=epochs, verbose=2, callbacks=[monitor])
    print("highway, final accuracy", history.history["accuracy"][-1])
    save_logged_images(
        monitor.run_dir,
        [("highway_layers/transform_gate", "highway_transform_gate.png", epochs - 1)],
    )


def gradient_flow_comparison():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 100, 4)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    curves = {}
    for label, make, forget_bias in (
        ("SimpleRNN", lambda: keras.layers.SimpleRNN(16), None),
        ("PeepholeLSTM, b_f = 1", lambda: kg.PeepholeLSTM(16), 1.0),
        ("PeepholeLSTM, b_f = 3", lambda: kg.PeepholeLSTM(16), 3.0),
    ):
        keras.utils.set_random_seed(1)
        layer = make()
        model = keras.Sequential([keras.Input((100, 4)), layer, keras.layers.Dense(1)])
        model.compile(loss="mse")
        if forget_bias is not None:
            bias = keras.ops.convert_to_numpy(layer.cell.bias).copy()
            bias[layer.units : 2 * layer.units] = forget_bias  # blocks i, f, c, o
            layer.cell.bias.assign(bias)
        curves[label] = kg.probe.gradient_flow(model, x, y)[layer.name][0]
        print(label, "log10 ||dL/dh_99|| / ||dL/dh_0|| =", np.log10(curves[label][-1] / curves[label][0]))
    figure = plots.curves_figure(curves, title="||dL/dh_t||, untrained, T = 100", log_scale=True)
    figure.savefig(os.path.join(IMAGES, "gradient_flow_comparison.png"))


if __name__ == "__main__":
    os.makedirs(IMAGES, exist_ok=True)
    with tempfile.TemporaryDirectory() as logs:
        gradient_flow_comparison()
        lstm_run(os.path.join(logs, "lstm"))
        highway_run(os.path.join(logs, "highway"))
