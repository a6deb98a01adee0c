"""GateMonitor: TensorBoard events read back with TensorBoard's EventAccumulator."""

import io
import os

import numpy as np
import pytest

import keras

import keras_gated as kg
from keras_gated.callbacks import GateMonitor

T = 12


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def _value(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, 3)).astype("float32")
    y = x[:, :4, 0].sum(axis=1, keepdims=True)
    return x, y


def _model(units=6):
    inputs = keras.Input((T, 3))
    hidden = keras.layers.Bidirectional(
        kg.PeepholeLSTM(units, return_sequences=True), name="bi"
    )(inputs)
    hidden = keras.layers.GRU(5, return_sequences=True, name="gru")(hidden)
    hidden = kg.CoupledLSTM(units, name="cifg")(hidden)
    for k in range(3):
        hidden = kg.Highway(name=f"highway_{k}")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    # Eager: a few batches run faster than tracing the training step.
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", run_eagerly=True)
    return model


def _png(event):
    from PIL import Image

    width, height, *images = _value(event)
    image = Image.open(io.BytesIO(images[0]))
    assert image.format == "PNG"
    assert image.size == (int(width), int(height))
    return image


def test_fit_logs_gates_saturation_states_gradient_flow_and_highway(tmp_path):
    x, y = _data()
    model = _model()
    monitor = GateMonitor(str(tmp_path), (x[:8], y[:8]))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[monitor])

    assert monitor.run_dir == os.path.join(str(tmp_path), "gates")
    events = _events(monitor.run_dir)
    tags = set(events.Tags()["tensors"])
    gates = {
        "bi/forward": ("input", "forget", "output"),
        "bi/backward": ("input", "forget", "output"),
        "gru": ("update", "reset"),
        "cifg": ("forget", "output"),
    }
    for layer, names in gates.items():
        for gate in names:
            histograms = events.Tensors(f"{layer}/gate/{gate}")
            assert [e.step for e in histograms] == [0, 1]
            counts = _value(histograms[-1])[:, 2]
            assert counts.sum() == 8 * T * (5 if layer == "gru" else 6)
            for side in ("left", "right"):
                fractions = [float(_value(e)) for e in events.Tensors(f"{layer}/saturation/{gate}_{side}")]
                assert len(fractions) == 2
                assert all(0.0 <= f <= 1.0 for f in fractions)
        _png(events.Tensors(f"{layer}/saturation")[-1])
        _png(events.Tensors(f"{layer}/gradient_flow")[-1])
        norm = "hidden_state_norm" if layer == "gru" else "cell_state_norm"
        _png(events.Tensors(f"{layer}/{norm}")[-1])
        assert float(_value(events.Tensors(f"{layer}/{norm}_mean")[-1])) > 0
        for epoch in (0, 1):
            flow = events.Tensors(f"{layer}/gradient_flow/epoch_{epoch}")
            assert [e.step for e in flow] == list(range(T))
            values = np.array([float(_value(e)) for e in flow])
            assert np.all(np.isfinite(values)) and np.all(values > 0)
        ratios = events.Tensors(f"{layer}/gradient_flow/log10_ratio")
        assert [e.step for e in ratios] == [0, 1]
    # The last recurrent layer feeds the loss at its last step only: the
    # gradient reaching its first step is smaller.
    flow = [float(_value(e)) for e in events.Tensors("cifg/gradient_flow/epoch_1")]
    assert flow[0] < flow[-1]

    for k in range(3):
        mean = [float(_value(e)) for e in events.Tensors(f"highway_{k}/transform_gate_mean")]
        assert len(mean) == 2 and all(0.0 < m < 1.0 for m in mean)
        assert f"highway_{k}/gate/transform" in tags
    picture = _png(events.Tensors("highway_layers/transform_gate")[-1])
    assert picture.size[0] > picture.size[1]
    assert all(os.path.getsize(os.path.join(monitor.run_dir, f)) > 0 for f in os.listdir(monitor.run_dir))


def test_every_n_epochs_and_a_sample_without_targets(tmp_path):
    x, y = _data(16)
    inputs = keras.Input((T, 3))
    model = keras.Model(inputs, keras.layers.Dense(1)(kg.UntiedLSTM(4, name="ulstm")(inputs)))
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    monitor = GateMonitor(str(tmp_path), x[:4], every_n_epochs=2, images=False)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[monitor])
    events = _events(monitor.run_dir)
    tags = set(events.Tags()["tensors"])
    assert [e.step for e in events.Tensors("ulstm/saturation/untied_left")] == [0, 2]
    assert "ulstm/gate/untied" in tags
    assert not any("gradient_flow" in tag for tag in tags)
    assert "ulstm/saturation" not in tags


def test_every_trial_of_a_tuner_search_gets_its_own_run(tmp_path):
    import keras_tuner

    x, y = _data(16)

    def build(hp):
        inputs = keras.Input((T, 3))
        units = hp.Choice("units", [3, 4])
        hidden = kg.PeepholeLSTM(units, name="peephole")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
        model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
        return model

    tuner = keras_tuner.GridSearch(
        build, objective="loss", max_trials=2,
        directory=str(tmp_path / "tuner"), project_name="probe", seed=1,
    )
    logs = tmp_path / "logs"
    monitor = GateMonitor(str(logs), (x[:4], y[:4]), images=False)
    tuner.search(x, y, epochs=1, verbose=0, callbacks=[monitor])
    assert sorted(os.listdir(logs)) == ["gates", "gates_1"]
    for run in ("gates", "gates_1"):
        events = _events(str(logs / run))
        assert len(events.Tensors("peephole/gradient_flow/epoch_0")) == T
    # The callback given to search() is only copied, never used itself.
    assert monitor.run_dir is None


def test_sample_from_a_dataset_and_argument_errors(tmp_path):
    import tensorflow as tf

    x, y = _data(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    monitor = GateMonitor(str(tmp_path), dataset)
    assert monitor.x.shape == (4, T, 3) and monitor.y.shape == (4, 1)
    with pytest.raises(ValueError, match="every_n_epochs"):
        GateMonitor(str(tmp_path), x, every_n_epochs=0)
    with pytest.raises(ValueError, match="low"):
        GateMonitor(str(tmp_path), x, low=0.9, high=0.1)
    with pytest.raises(ValueError, match="sample"):
        GateMonitor(str(tmp_path), (x, y, None, None))
