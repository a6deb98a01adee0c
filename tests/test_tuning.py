"""The shared tuning machinery: cells by name, search space, hypermodel, tuners, TensorBoard."""

import glob
import os

import keras
import keras_tuner
import numpy as np
import pytest

import keras_gated as kg
from keras_gated.tuning import GatedHyperModel
from keras_gated.tuning import SearchSpace
from keras_gated.tuning import available_cells
from keras_gated.tuning import make_cell
from keras_gated.tuning import make_rnn_layer
from keras_gated.tuning import make_tuner
from keras_gated.tuning import recurrent_stack
from keras_gated.tuning import select_strategy
from keras_gated.tuning import set_mixed_precision
from keras_gated.tuning import trial_callbacks

X = np.random.RandomState(0).randn(3, 5, 4).astype("float32")


def test_available_cells_lists_baselines_and_package_cells():
    cells = available_cells()
    assert cells[:5] == ("lstm", "gru", "peephole", "coupled", "untied")
    assert ("depth_gated" in cells) == hasattr(kg, "DepthGatedLSTM")
    assert ("grid" in cells) == hasattr(kg, "GridLSTM")


@pytest.mark.parametrize("cell", available_cells())
def test_make_rnn_layer_every_cell(cell):
    layer = make_rnn_layer(cell, 6, return_sequences=True)
    assert layer(X).shape == (3, 5, 6)
    stacked = make_rnn_layer(cell, 6, num_layers=2, return_state=True)
    outputs = stacked(X)
    assert outputs[0].shape == (3, 6)
    # One state per level (GRU) or two (LSTM family), for both levels.
    assert len(outputs) - 1 >= 2


@pytest.mark.parametrize("cell", ["peephole", "gru"])
def test_make_cell_runs_in_rnn_and_stacks(cell):
    single = keras.layers.RNN(make_cell(cell, 4))
    assert single(X).shape == (3, 4)
    stacked = make_cell(cell, 4, num_layers=3, dropout=0.1)
    assert isinstance(stacked, keras.layers.StackedRNNCells)
    assert len(stacked.cells) == 3
    assert keras.layers.RNN(stacked)(X).shape == (3, 4)


def test_package_cell_classes_are_used():
    assert isinstance(make_rnn_layer("coupled", 3), kg.CoupledLSTM)
    assert isinstance(make_cell("untied", 3), kg.UntiedLSTMCell)
    assert isinstance(make_rnn_layer("lstm", 3), keras.layers.LSTM)


def test_recurrent_stack_bidirectional_functional():
    tokens = keras.Input((7,), dtype="int32")
    x = keras.layers.Embedding(20, 5, mask_zero=True)(tokens)
    y = recurrent_stack(x, "peephole", 4, num_layers=2, bidirectional=True)
    model = keras.Model(tokens, y)
    assert model(np.array([[1, 2, 3, 0, 0, 0, 0]])).shape == (1, 8)
    names = [layer.name for layer in model.layers]
    assert sum(isinstance(layer, keras.layers.Bidirectional) for layer in model.layers) == 2, names


def test_unknown_cell_and_bad_depth_are_value_errors():
    with pytest.raises(ValueError, match="Accepted values: lstm, gru, peephole"):
        make_rnn_layer("tree_lstm", 4)
    with pytest.raises(ValueError, match="num_layers"):
        make_cell("lstm", 4, num_layers=0)


def test_search_space_overrides():
    space = GatedHyperModel.default_space()
    space.override(["cell=peephole,coupled", "units=32:96:32", "learning_rate=1e-4:1e-2:log;num_layers=2"])
    hp = keras_tuner.HyperParameters()
    assert space.get(hp, "cell") == "peephole"
    assert hp.space[0].values == ["peephole", "coupled"]
    assert space.get(hp, "units") == 64  # the default survives a range that holds it
    units = hp.get_config()["space"][1]["config"]
    assert (units["min_value"], units["max_value"], units["step"]) == (32, 96, 32)
    assert space.get(hp, "learning_rate") == pytest.approx(3e-3)
    assert hp.space[-1].sampling == "log"
    assert space.get(hp, "num_layers") == 2  # fixed
    assert space.definitions["num_layers"].kind == "fixed"


@pytest.mark.parametrize(
    "item, message",
    [
        ("cell=tree", "Unknown `cell`"),
        ("colour=red", "Unknown hyperparameter 'colour'.*Known: cell, units"),
        ("units", "write name=value"),
        ("cell=1:3", "range"),
        ("units=64:32", "min <= max"),
    ],
)
def test_search_space_bad_overrides(item, message):
    with pytest.raises(ValueError, match=message):
        GatedHyperModel.default_space().override([item])


def test_fix_defaults_keeps_only_overrides_searchable():
    space = GatedHyperModel.default_space().override(["cell=lstm,gru"]).fix_defaults()
    kinds = {name: d.kind for name, d in space.definitions.items()}
    assert kinds.pop("cell") == "choice"
    assert set(kinds.values()) == {"fixed"}
    assert space.defaults()["units"] == 64


class TinyHyperModel(GatedHyperModel):
    def add_hparams(self, space):
        space.int("embedding_dim", 4, 8, step=4, default=4)
        space.int("units", 4, 8, step=4, default=4)

    def build(self, hp):
        hparams = self.recurrent_hparams(hp)
        tokens = keras.Input((6,), dtype="int32")
        x = keras.layers.Embedding(10, self.space.get(hp, "embedding_dim"), mask_zero=True)(tokens)
        x = self.recurrent_block(x, hparams)
        outputs = keras.layers.Dense(2, activation="softmax", dtype="float32")(x)
        return self.compile(keras.Model(tokens, outputs), hp, "sparse_categorical_crossentropy", ["accuracy"])


def test_hypermodel_optimizer_choices():
    model = TinyHyperModel(["optimizer=rmsprop", "clipnorm=5", "learning_rate=0.01"]).build(
        keras_tuner.HyperParameters()
    )
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert model.optimizer.clipnorm == 5.0
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    plain = TinyHyperModel(["clipnorm=0"]).build(keras_tuner.HyperParameters())
    assert plain.optimizer.clipnorm is None


def test_make_tuner_kinds_and_bad_kind(tmp_path):
    hypermodel = TinyHyperModel(["cell=lstm"])
    for kind, cls in [("random", keras_tuner.RandomSearch), ("bayesian", keras_tuner.BayesianOptimization),
                      ("hyperband", keras_tuner.Hyperband), ("grid", keras_tuner.Tuner)]:
        tuner = make_tuner(kind, hypermodel, "val_accuracy", str(tmp_path), kind, max_trials=2)
        assert isinstance(tuner, cls)
        if kind == "grid":
            assert isinstance(tuner.oracle, keras_tuner.oracles.GridSearchOracle)
    with pytest.raises(ValueError, match="random, bayesian, hyperband, grid"):
        make_tuner("evolution", hypermodel, "val_accuracy", str(tmp_path), "x")


class LogDirRecorder(keras.callbacks.Callback):
    """A callback with a `log_dir`: the tuner must give it one per trial."""

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir

    def on_train_begin(self, logs=None):
        os.makedirs(self.log_dir, exist_ok=True)
        open(os.path.join(self.log_dir, "seen"), "w").close()


def _data():
    rng = np.random.RandomState(0)
    x = rng.randint(1, 10, size=(32, 6)).astype("int32")
    y = (x[:, 0] > 5).astype("int32")
    return x, y


def test_search_logs_per_trial_and_hparams_and_resumes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = _data()
    log_dir = str(tmp_path / "logs")
    kwargs = dict(directory=str(tmp_path / "tuner"), project_name="tiny", max_trials=2, seed=1)
    hypermodel = TinyHyperModel(["cell=lstm,coupled"])
    hypermodel.space.fix_defaults()  # before the tuner sees the space: a grid over cells only
    tuner = make_tuner("grid", hypermodel, "val_accuracy", **kwargs)
    callbacks = trial_callbacks(log_dir, extra=[LogDirRecorder(str(tmp_path / "extra"))])
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=16, callbacks=callbacks, verbose=0)
    trials = sorted(tuner.oracle.trials)
    assert len(trials) == 2 and tuner.trials_run == trials
    cells = {tuner.oracle.trials[t].hyperparameters.get("cell") for t in trials}
    assert cells == {"lstm", "coupled"}
    for trial_id in trials:
        assert os.path.exists(tmp_path / "extra" / trial_id / "seen")
        validation = os.path.join(log_dir, trial_id, "execution0", "validation")
        events = EventAccumulator(validation)
        events.Reload()
        assert "epoch_accuracy" in events.Tags()["tensors"]
        train = EventAccumulator(os.path.join(log_dir, trial_id, "execution0"))
        train.Reload()
        # KerasTuner's HParams callback writes the trial's hyperparameters here.
        assert "_hparams_/session_start_info" in train.Tags()["tensors"]
    # Same directory again: resumes, nothing is re-run.
    hypermodel = TinyHyperModel(["cell=lstm,coupled"])
    hypermodel.space.fix_defaults()
    again = make_tuner("grid", hypermodel, "val_accuracy", **kwargs)
    again.search(x, y, validation_data=(x, y), epochs=1, batch_size=16, verbose=0)
    assert again.trials_run == []
    assert sorted(again.oracle.trials) == trials


def test_gate_monitor_flag(tmp_path):
    x, y = _data()
    try:
        from keras_gated.callbacks import GateMonitor
    except ImportError:
        with pytest.raises(ValueError, match="GateMonitor"):
            trial_callbacks(str(tmp_path), gate_monitor_sample=(x[:4], y[:4]))
    else:
        callbacks = trial_callbacks(str(tmp_path), gate_monitor_sample=(x[:4], y[:4]))
        assert isinstance(callbacks[-1], GateMonitor)
        assert callbacks[-1].log_dir == str(tmp_path)


def test_select_strategy_and_mixed_precision():
    import tensorflow as tf

    strategy = select_strategy(verbose=False)
    assert strategy.num_replicas_in_sync == 1
    assert strategy is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="auto, default, mirrored, multi-worker, tpu"):
        select_strategy("gpu")
    # No GPU here: on TensorFlow, bfloat16 (faster than float32 on a CPU, float16 slower).
    assert set_mixed_precision(True) == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert set_mixed_precision(False) == "float32"


def test_mixed_precision_is_float16_where_a_gpu_computes(monkeypatch):
    from keras_gated.tuning import hardware

    monkeypatch.setattr(hardware, "gpu_computes", lambda: True)
    assert set_mixed_precision(True) == "mixed_float16"
    assert set_mixed_precision(False) == "float32"


def test_mixed_precision_on_a_jax_cpu_is_float16(monkeypatch):
    from keras_gated.tuning import hardware

    monkeypatch.setattr(hardware.keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(hardware, "gpu_computes", lambda: False)
    assert set_mixed_precision(True) == "mixed_float16"
    assert set_mixed_precision(False) == "float32"


def test_warmup_schedule_rises_linearly_then_decays_and_survives_serialization():
    from keras_gated.tuning.hypermodel import WarmupInverseSqrt

    schedule = WarmupInverseSqrt(0.01, 100)
    values = [float(schedule(step)) for step in (0, 49, 99, 399)]
    assert values == pytest.approx([1e-4, 5e-3, 1e-2, 5e-3], rel=1e-5)
    copy = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(copy, WarmupInverseSqrt) and copy.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupInverseSqrt(0.01, 0)
