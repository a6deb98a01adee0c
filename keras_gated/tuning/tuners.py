"""Tuners, per-trial TensorBoard logging and the table of trials.

`make_tuner("random" | "bayesian" | "hyperband", hypermodel, objective, ...)`
returns a KerasTuner tuner that

* resumes by default (`overwrite=False`): started again with the same
  `directory` and `project_name`, it reloads the oracle, skips completed
  trials and re-runs the one that was interrupted;
* gives every callback passed to `search` that has a `log_dir` attribute
  (other than `keras.callbacks.TensorBoard`, which KerasTuner already
  moves to `<log_dir>/<trial_id>/execution0` and pairs with the HParams
  dashboard callback) its own `<log_dir>/<trial_id>` directory, so
  callbacks such as `keras_gated.callbacks.GateMonitor` log per trial;
* records the trials this process ran (`tuner.trials_run`, useful with
  distributed tuning) and calls `tuner.trial_end_hooks` (functions
  `hook(tuner, trial)`) after each trial, e.g. to export the best model
  so far.

Distributed tuning is KerasTuner's own: set `KERASTUNER_TUNER_ID`
(`chief` for the oracle process, `tuner0`, `tuner1`, ... for workers),
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` in every process and
run the same command; `directory` must be shared by all processes.
"""

import copy
import os

import keras
import keras_tuner

from keras_gated.tuning import keras_tuner_private
from keras_gated.tuning.guards import NonFiniteLossError
from keras_gated.tuning.guards import StopOnNonFiniteLoss

TUNER_KINDS = ("random", "bayesian", "hyperband", "grid")


class _GatedTunerMixin:
    """Per-trial log dirs for `log_dir` callbacks, trial bookkeeping, hooks."""

    def __init__(self, *args, **kwargs):
        self.trials_run = []
        self.trial_end_hooks = []
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        callbacks = list(kwargs.get("callbacks") or [])
        if not any(isinstance(cb, StopOnNonFiniteLoss) for cb in callbacks):
            callbacks.append(StopOnNonFiniteLoss())
        kwargs["callbacks"] = [_for_trial(cb, trial.trial_id) for cb in callbacks]
        from keras_gated.tuning import cluster

        try:
            resumes = f"the search resumes at trial {trial.trial_id}"
            with cluster.peer_failures_explained(cluster.role_of(self.distribution_strategy), resumes):
                return super().run_trial(trial, *args, **kwargs)
        except NonFiniteLossError as error:
            # KerasTuner marks a trial that raises FailedTrialError as FAILED:
            # it gets no score and is never the best trial.
            raise keras_tuner.errors.FailedTrialError(f"Trial {trial.trial_id}: {error}") from error

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.trials_run.append(trial.trial_id)
        if trial.status == keras_tuner.engine.trial.TrialStatus.FAILED:
            reason = (trial.message or "").strip().splitlines()[-1:] or ["(no message)"]
            print(f"keras-gated: trial {trial.trial_id} FAILED: {reason[0]}", flush=True)
        for hook in self.trial_end_hooks:
            hook(self, trial)


def _for_trial(callback, trial_id):
    if isinstance(callback, keras.callbacks.TensorBoard) or not hasattr(callback, "log_dir"):
        return callback
    trial_callback = copy.deepcopy(callback)
    trial_callback.log_dir = os.path.join(str(callback.log_dir), str(trial_id))
    return trial_callback


class RandomSearch(_GatedTunerMixin, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch` with keras-gated's per-trial logging."""


class BayesianOptimization(_GatedTunerMixin, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` with keras-gated's per-trial logging."""


class Hyperband(_GatedTunerMixin, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` with keras-gated's per-trial logging."""


class ResumableGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
    """`GridSearchOracle` that can be reloaded.

    KerasTuner 1.4 does not save the grid oracle's ordered list of trials,
    so a reloaded grid search fails on its next trial (KeyError). After a
    reload this rebuilds the list from the trials' values; each trial's next
    combination is then tried unless it was tried already.
    """

    def reload(self):
        super().reload()
        keras_tuner_private.rebuild_grid_order(self)


class GridSearch(_GatedTunerMixin, keras_tuner.Tuner):
    """`keras_tuner.GridSearch` (resumable) with keras-gated's per-trial logging."""

    def __init__(
        self,
        hypermodel=None,
        objective=None,
        max_trials=None,
        seed=None,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        **kwargs,
    ):
        oracle = ResumableGridSearchOracle(
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle, hypermodel, **kwargs)


def make_tuner(
    kind,
    hypermodel,
    objective,
    directory,
    project_name,
    max_trials=10,
    distribution_strategy=None,
    overwrite=False,
    seed=None,
    executions_per_trial=1,
    max_epochs=10,
    **kwargs,
):
    """Builds a tuner by name.

    Args:
        kind: "random", "bayesian", "hyperband" or "grid" (every
            combination of the discrete values, in order; the runner fixes
            the hyperparameters the user did not set with `--hp` at their
            defaults first, so `--tuner grid --hp cell=lstm,peephole`
            trains exactly one model per cell).
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `GatedHyperModel`).
        objective: Name of the metric to optimise ("val_accuracy",
            "val_loss", ...; direction inferred as KerasTuner does) or a
            `keras_tuner.Objective`.
        directory, project_name: Where the oracle, trials and checkpoints
            live (`directory/project_name`); reused to resume.
        max_trials: Trials for random and bayesian search. For hyperband
            it is ignored; `max_epochs` bounds the budget instead.
        distribution_strategy: A `tf.distribute.Strategy` (TensorFlow
            backend) from `select_strategy()`, or None.
        overwrite: Start from scratch instead of resuming.
        seed: Seed of the oracle.
        executions_per_trial: Fits per trial (their objective is averaged).
        max_epochs: Hyperband's largest number of epochs per model.
        **kwargs: Other tuner arguments (e.g. `max_consecutive_failed_trials`).

    Example:
    >>> tuner = make_tuner("random", hypermodel, "val_accuracy", "runs/tuner",
    ...                    "sentiment", max_trials=4)
    >>> tuner.search(train_ds, validation_data=val_ds, epochs=3,
    ...              callbacks=trial_callbacks("runs"))
    """
    common = dict(
        hypermodel=hypermodel,
        objective=objective,
        directory=directory,
        project_name=project_name,
        distribution_strategy=distribution_strategy,
        overwrite=overwrite,
        seed=seed,
        executions_per_trial=executions_per_trial,
        **kwargs,
    )
    if kind == "random":
        return RandomSearch(max_trials=max_trials, **common)
    if kind == "bayesian":
        try:
            return BayesianOptimization(max_trials=max_trials, **common)
        except ImportError as error:
            raise ValueError(
                f"The bayesian tuner needs scipy and scikit-learn: pip install "
                f"'keras-tuner[bayesian]' (or choose --tuner random). ({error})"
            ) from None
    if kind == "grid":
        return GridSearch(max_trials=max_trials, **common)
    if kind == "hyperband":
        return Hyperband(max_epochs=max_epochs, **common)
    raise ValueError(f"Unknown tuner `kind`: {kind!r}. Accepted values: {', '.join(TUNER_KINDS)}.")


def trial_callbacks(log_dir, gate_monitor_sample=None, histogram_freq=0, extra=(), describe_batch=None):
    """The callbacks a task passes to `tuner.search` (or `model.fit`).

    Args:
        log_dir: TensorBoard root (e.g. "runs/sentiment"). In a search every
            trial writes `log_dir/<trial_id>/execution0/{train,validation}`
            (scalars) plus its hyperparameters for the HParams dashboard.
        gate_monitor_sample: If not None, a batch `(x, y)` (or `x`); adds
            `keras_gated.callbacks.GateMonitor(log_dir, sample)`, which
            writes the run "gates" (in a search: `log_dir/<trial_id>/gates`,
            beside the trial's `execution0`).
        histogram_freq: Passed to `keras.callbacks.TensorBoard`.
        extra: More callbacks (a callback with a `log_dir` attribute gets a
            per-trial directory).
        describe_batch: Given to `StopOnNonFiniteLoss` (always in the list),
            which raises `NonFiniteLossError` at a NaN or Inf loss.

    Raises:
        ValueError: `gate_monitor_sample` is given but this version of
            keras_gated has no `callbacks.GateMonitor`.
    """
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=histogram_freq),
        StopOnNonFiniteLoss(describe_batch),
    ]
    if gate_monitor_sample is not None:
        callbacks.append(make_gate_monitor(log_dir, gate_monitor_sample))
    callbacks.extend(extra)
    return callbacks


def make_gate_monitor(log_dir, sample):
    """`keras_gated.callbacks.GateMonitor(log_dir, sample)`, or a clear ValueError."""
    try:
        from keras_gated.callbacks import GateMonitor
    except ImportError:
        GateMonitor = None
    if GateMonitor is None:
        raise ValueError(
            "--gate-monitor needs keras_gated.callbacks.GateMonitor, which this "
            "version of keras_gated does not have. Run without --gate-monitor."
        )
    return GateMonitor(log_dir, sample)


def completed_trials(tuner):
    """The tuner's completed trials, best first (by its objective); failed ones are left out.

    (`oracle.get_best_trials` pads its answer with unfinished and failed
    trials when it has fewer completed ones than asked for.)
    """
    best = tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials))
    return [t for t in best if t.status == keras_tuner.engine.trial.TrialStatus.COMPLETED]


def failed_trials(tuner):
    """`(trial_id, message)` of the trials the oracle marked FAILED."""
    return [
        (t.trial_id, ((t.message or "").strip().splitlines() or [""])[-1])
        for t in tuner.oracle.trials.values()
        if t.status == keras_tuner.engine.trial.TrialStatus.FAILED
    ]


def write_hparams_config(log_dir, hypermodel_space, metrics):
    """Writes the HParams experiment config at `log_dir` (TensorFlow only).

    KerasTuner writes each trial's hyperparameter values; this adds the
    experiment's declared hyperparameters and metrics so the HParams
    dashboard shows the right columns (e.g. "epoch_accuracy" of the
    validation run) even before every trial has logged.

    Args:
        log_dir: The TensorBoard root given to `trial_callbacks`.
        hypermodel_space: A `SearchSpace`.
        metrics: `(tag, group, display_name)` tuples, e.g.
            `[("epoch_accuracy", "execution0/validation", "val accuracy")]`.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    hparams = []
    for name, definition in hypermodel_space.definitions.items():
        if definition.kind in ("choice",):
            domain = hparams_api.Discrete(list(definition.values))
        elif definition.kind == "boolean":
            domain = hparams_api.Discrete([False, True])
        elif definition.kind in ("int", "float"):
            domain = hparams_api.RealInterval(float(definition.min_value), float(definition.max_value))
        else:
            domain = None
        hparams.append(hparams_api.HParam(name, domain))
    metric_objects = [
        hparams_api.Metric(tag, group=group, display_name=display) for tag, group, display in metrics
    ]
    with tf.summary.create_file_writer(log_dir).as_default():
        hparams_api.hparams_config(hparams=hparams, metrics=metric_objects)
