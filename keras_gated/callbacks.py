"""Keras callbacks of keras-gated: `GateMonitor`, gate activity in TensorBoard."""

import importlib.util
import math
import os
import weakref

import keras
import numpy as np
from keras import ops
from keras import tree

from keras_gated import plots
from keras_gated import probe

__all__ = ["GateMonitor"]


def _first_batch(sample):
    """A fixed sample: x, (x, y), (x, y, sample_weight), or a dataset's first batch."""
    if not isinstance(sample, (tuple, list, dict, np.ndarray)) and not hasattr(
        sample, "shape"
    ):
        try:
            sample = next(iter(sample))
        except TypeError:
            raise ValueError(
                "`sample` must be x, a tuple (x, y) or (x, y, sample_weight), "
                "or a dataset whose first batch is one of these; received "
                f"{type(sample).__name__}."
            ) from None
    if isinstance(sample, tuple):
        if not 1 <= len(sample) <= 3:
            raise ValueError(
                "`sample` as a tuple must be (x,), (x, y) or (x, y, "
                f"sample_weight); received a tuple of {len(sample)} items."
            )
        x, y, sample_weight = (tuple(sample) + (None, None))[:3]
    else:
        x, y, sample_weight = sample, None, None
    to_numpy = lambda v: None if v is None else np.asarray(ops.convert_to_numpy(v))
    return (
        tree.map_structure(to_numpy, x),
        None if y is None else tree.map_structure(to_numpy, y),
        None if sample_weight is None else tree.map_structure(to_numpy, sample_weight),
    )


class GateMonitor(keras.callbacks.Callback):
    """Logs what the gates of every gated layer do, to TensorBoard.

    Every `every_n_epochs` epochs (epochs 0, n, 2n, ... as
    `keras.callbacks.TensorBoard(histogram_freq=n)`), the model is run on a
    fixed `sample` with `keras_gated.probe` and, for every recurrent layer
    (this package's layers, keras LSTM, GRU, SimpleRNN, Bidirectional
    halves, nested models entered) it writes, under the layer's name:

    * `gate/<gate>`: histogram of the gate's activations (valid steps only);
    * `saturation/<gate>_left`, `saturation/<gate>_right`: the fraction of
      activations below `low` (0.1) and above `high` (0.9), as scalars;
    * `saturation`: image, Karpathy, Johnson & Fei-Fei (2015) Fig. 2: one
      panel per gate, one point per unit at (fraction left-saturated,
      fraction right-saturated), one colour per level of a stack;
    * `cell_state_norm` (`hidden_state_norm` for GRU and SimpleRNN): image,
      ||c_t|| over the steps of the sample (mean over the batch), one curve
      per level of a stack, and its mean over time as a scalar;
    * `gradient_flow`: image, ||dL/dh_t|| for every step t (log scale), one
      curve per level of a stack, where L is the compiled loss on the
      sample (see `keras_gated.probe.gradient_flow` for the method); the
      same values as scalars, tag `gradient_flow/epoch_<epoch>` (with
      `/level_<k>` for stacks) whose TensorBoard step is the time step t;
      and `gradient_flow/log10_ratio`, log10 of ||dL/dh|| at the step read
      first over the step read last, per epoch (very negative: vanishing).
      Needs targets in `sample`.

    For Highway layers (anything with `transform_gate(x)`): the histogram
    and saturation scalars of the transform gate, its mean per layer as a
    scalar `transform_gate_mean`, and the image `highway/transform_gate`:
    Srivastava, Greff & Schmidhuber (2015) Fig. 2, layers by units, the
    transform bias, the mean T(x) over the sample, and T(x) of its first
    example.

    Events go to `os.path.join(log_dir, run_name)` ("gates", beside the
    "train" and "validation" runs of `keras.callbacks.TensorBoard`). Each
    model trained with the callback gets its own run: "gates", then
    "gates_1", "gates_2", ... — so every trial of a KerasTuner search (which
    deep-copies callbacks) is a separate run, in trial order.

    Backends: writing uses `tf.summary`, so TensorFlow must be installed
    (it need not be the Keras backend). Gate reading and gradient flow run
    on TensorFlow, JAX and PyTorch. Pictures need matplotlib
    (`pip install keras-gated[examples]`; see `keras_gated.plots`).

    Args:
        log_dir: Directory of the TensorBoard logs.
        sample: A fixed batch: `x`, `(x, y)` or `(x, y, sample_weight)`, or a
            dataset (its first batch is taken once). Keep it small (e.g. 16
            to 64 sequences): everything is computed on it, step by step.
        every_n_epochs: Positive integer: log every n-th epoch.
        low, high: Saturation thresholds. Default: 0.1 and 0.9.
        gradient_flow: Whether to log the gradient flow (needs `y`).
        histograms: Whether to log histograms.
        images: Whether to log the pictures.
        run_name: Name of the run directory. Default: "gates".
        layers: Optional list of layer names to monitor (default: all).

    Example:

    >>> monitor = kg.callbacks.GateMonitor("logs", (x_val[:32], y_val[:32]))
    >>> model.fit(x, y, epochs=10, callbacks=[monitor])
    >>> # tensorboard --logdir logs
    """

    def __init__(
        self,
        log_dir,
        sample,
        every_n_epochs=1,
        low=probe.LEFT_SATURATION,
        high=probe.RIGHT_SATURATION,
        gradient_flow=True,
        histograms=True,
        images=True,
        run_name="gates",
        layers=None,
    ):
        super().__init__()
        if importlib.util.find_spec("tensorflow") is None:
            raise ImportError(
                "GateMonitor writes TensorBoard events with tf.summary and needs "
                "TensorFlow installed (any Keras backend may be used): "
                "`pip install keras-gated[examples]`."
            )
        if (
            isinstance(every_n_epochs, bool)
            or not isinstance(every_n_epochs, int)
            or every_n_epochs < 1
        ):
            raise ValueError(
                "`every_n_epochs` must be a positive integer (1 logs every "
                f"epoch). Received: every_n_epochs={every_n_epochs!r}"
            )
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(
                "`low` and `high` must satisfy 0 <= low < high <= 1 (defaults "
                f"0.1 and 0.9). Received: low={low!r}, high={high!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.x, self.y, self.sample_weight = _first_batch(sample)
        self.every_n_epochs = every_n_epochs
        self.low, self.high = float(low), float(high)
        self.gradient_flow = bool(gradient_flow)
        self.histograms = bool(histograms)
        self.images = bool(images)
        self.run_name = run_name
        self.layers = None if layers is None else list(layers)
        self.run_dir = None
        self._writer = None
        self._run_model = None

    def __getstate__(self):
        # KerasTuner deep-copies callbacks for every trial: a copy starts a
        # fresh run and never shares the writer or the model.
        state = dict(self.__dict__)
        state.update(_writer=None, _run_model=None, run_dir=None, _model=None)
        return state

    # -- Keras hooks -----------------------------------------------------

    def on_train_begin(self, logs=None):
        self._open_run()

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every_n_epochs == 0:
            self.write(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    # -- writing -----------------------------------------------------------

    def _open_run(self):
        model = self.model
        if self._writer is not None and self._run_model is not None:
            if self._run_model() is model:
                return
            self._writer.close()
        import tensorflow as tf

        name, k = self.run_name, 0
        while os.path.exists(os.path.join(self.log_dir, name)):
            k += 1
            name = f"{self.run_name}_{k}"
        self.run_dir = os.path.join(self.log_dir, name)
        os.makedirs(self.run_dir)
        self._writer = tf.summary.create_file_writer(self.run_dir)
        self._run_model = weakref.ref(model)

    def _wanted(self, name):
        if self.layers is None:
            return True
        return any(name == n or name.startswith(f"{n}/") for n in self.layers)

    def write(self, step):
        """Computes and writes everything for the model's current weights.

        Called by `fit` every `every_n_epochs` epochs; call it yourself to
        log a model outside `fit` (after `set_model(model)`), e.g. before
        training.
        """
        import tensorflow as tf

        self._open_run()
        model = self.model
        found = probe.inspect(
            model,
            self.x,
            self.y if self.gradient_flow else None,
            self.sample_weight,
            layers=self.layers,
        )
        traces, flows = found.traces, found.gradient_flow
        highways = {
            name: gates
            for name, gates in found.transform_gates.items()
            if self._wanted(name)
        }
        with self._writer.as_default(step=step):
            for name, trace in traces.items():
                self._write_gates(tf, name, trace, step)
                self._write_state_norms(tf, name, trace, step)
                if name in flows:
                    self._write_gradient_flow(tf, name, flows[name], trace, step)
            if highways:
                self._write_highway(tf, model, highways, step)
        self._writer.flush()

    def _write_gates(self, tf, name, trace, step, picture=True):
        panels = {}
        for gate in trace.gates:
            values = trace.values(gate)
            if self.histograms:
                tf.summary.histogram(f"{name}/gate/{gate}", values, step=step)
            left, right = trace.saturation(gate, self.low, self.high)
            tf.summary.scalar(f"{name}/saturation/{gate}_left", float(left.mean()), step=step)
            tf.summary.scalar(f"{name}/saturation/{gate}_right", float(right.mean()), step=step)
            # Stacks name gates "<level>/<gate>": one panel per gate, one
            # colour per level.
            level, _, short = gate.rpartition("/")
            panels.setdefault(short, []).append((level, left, right))
        if self.images and picture and panels:
            image = plots.saturation_scatter(list(panels.items()))
            tf.summary.image(f"{name}/saturation", image[None], step=step)

    def _write_state_norms(self, tf, name, trace, step):
        norms = trace.state_norms()
        kind = "cell_state_norm" if trace.cell_states else "hidden_state_norm"
        tf.summary.scalar(f"{name}/{kind}_mean", float(norms.mean()), step=step)
        if self.images:
            image = plots.curves(
                _per_level(norms),
                title=f"{name}: mean ||{'c' if trace.cell_states else 'h'}_t||",
                log_scale=False,
            )
            tf.summary.image(f"{name}/{kind}", image[None], step=step)

    def _write_gradient_flow(self, tf, name, flow, trace, step):
        backwards = trace.layer.go_backwards
        for level, norms in enumerate(flow):
            suffix = f"/level_{level}" if len(flow) > 1 else ""
            for t, value in enumerate(norms):
                tf.summary.scalar(
                    f"{name}/gradient_flow/epoch_{step}{suffix}", float(value), step=t
                )
            first, last = (norms[-1], norms[0]) if backwards else (norms[0], norms[-1])
            ratio = math.log10(max(first, 1e-30) / max(last, 1e-30))
            tf.summary.scalar(f"{name}/gradient_flow/log10_ratio{suffix}", ratio, step=step)
        if self.images:
            image = plots.curves(
                _per_level(flow),
                title=f"{name}: ||dL/dh_t|| (epoch {step})",
                log_scale=True,
            )
            tf.summary.image(f"{name}/gradient_flow", image[None], step=step)

    def _write_highway(self, tf, model, highways, step):
        layers = dict(probe.find_gated_layers(model))
        means, firsts, biases = [], [], []
        for name, gates in highways.items():
            units = gates.shape[-1]
            flat = gates.reshape(gates.shape[0], -1, units)
            trace = probe.GateTrace(
                name=name, layer=None, gates={"transform": flat}, hidden_states=[],
                cell_states=[], outputs=flat,
            )
            # One combined picture of all Highway layers below, not one each.
            self._write_gates(tf, name, trace, step, picture=False)
            tf.summary.scalar(f"{name}/transform_gate_mean", float(flat.mean()), step=step)
            means.append(flat.mean(axis=(0, 1)))
            firsts.append(flat[0].mean(axis=0))
            layer = layers.get(name)
            bias = getattr(layer, "transform_bias", None)
            biases.append(
                ops.convert_to_numpy(bias) if bias is not None else np.full(units, np.nan)
            )
        if self.images:
            bias_matrix = _ragged(biases)
            bound = float(np.nanmax(np.abs(bias_matrix))) if np.isfinite(bias_matrix).any() else 1.0
            image = plots.heatmaps(
                [
                    ("transform gate bias", bias_matrix, -max(bound, 1e-3), max(bound, 1e-3)),
                    ("mean T(x) over the sample", _ragged(means), 0.0, 1.0),
                    ("T(x), first example", _ragged(firsts), 0.0, 1.0),
                ]
            )
            tf.summary.image("highway_layers/transform_gate", image[None], step=step)


def _per_level(rows):
    rows = np.atleast_2d(rows)
    if len(rows) == 1:
        return {"": rows[0]}
    return {f"level {k}": row for k, row in enumerate(rows)}


def _ragged(rows):
    """Stack rows of different lengths into a NaN-padded matrix."""
    width = max(len(r) for r in rows)
    matrix = np.full((len(rows), width), np.nan)
    for k, row in enumerate(rows):
        matrix[k, : len(row)] = row
    return matrix
