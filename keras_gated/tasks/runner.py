"""The generic `train`, `tune` and `evaluate` commands, for any `Task`.

Files of a run, under `--output` (default `runs/TASK`):

    runs/TASK/logs/<trial>/execution0/{train,validation}   TensorBoard scalars + HParams
    runs/TASK/logs/train/...                               (`train` command)
    runs/TASK/tuner/TASK/                                  KerasTuner oracle, trials, checkpoints
    runs/TASK/best_model.keras                             the best model, self-contained
    runs/TASK/results.json                                 trials, best, test metrics
    runs/TASK/tuner-<KERASTUNER_TUNER_ID>.json             trials this process ran
    runs/TASK/workers/<role>.json                          multi-process training: a non-chief's record

Under `--strategy multi-worker` or a JAX cluster only the chief writes the
files above; the others write to a temporary directory (docs/scaling.md).
"""

import argparse
import json
import os
import sys
import warnings

from keras_gated.tasks.batches import BUCKET_WINDOW
from keras_gated.tasks.common.progress import SHOW_EVERYTHING
from keras_gated.tasks.common.progress import keras_verbosity
from keras_gated.tuning.hardware import STRATEGIES
from keras_gated.tuning.tuners import TUNER_KINDS

COMMANDS = ("train", "tune", "evaluate")


def add_common_arguments(parser, task, command):
    """The options every task shares, for `command` in COMMANDS."""
    if command == "evaluate":
        parser.add_argument(
            "--model",
            required=True,
            help="Path of a model saved by `train` or `tune` (best_model.keras).",
        )
        parser.add_argument("--output", default=None, help="Write the results JSON here (optional).")
        parser.add_argument("--batch-size", type=int, default=task.default_batch_size, help="Batch size.")
        _add_verbose_argument(parser)
        return
    group = parser.add_argument_group("training")
    group.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help=(
            "Fix or narrow a hyperparameter; repeatable. NAME=v fixes it, "
            "NAME=v1,v2 narrows a choice, NAME=min:max[:step|:log] a range. "
            "E.g. --hp cell=peephole,coupled --hp units=32:128. "
            "`train` uses each hyperparameter's default (first value). "
            "See --list-hp for the names and default ranges."
        ),
    )
    group.add_argument(
        "--list-hp",
        action="store_true",
        help="Print the search space (after --hp) and exit.",
    )
    group.add_argument(
        "--epochs", type=int, default=task.default_epochs, help="Epochs per model (per trial)."
    )
    group.add_argument(
        "--batch-size", type=int, default=task.default_batch_size, help="Global batch size."
    )
    group.add_argument("--seed", type=int, default=1, help="Random seed (data splits, weights, oracle).")
    group.add_argument(
        "--bucket-window",
        type=int,
        default=BUCKET_WINDOW,
        metavar="BATCHES",
        help=(
            "Length bucketing of the training batches: each epoch's shuffled examples are sorted "
            "by length within windows of this many batches and every batch is padded to its own "
            f"longest sequence (a multiple of 8); 0 pads every batch to the split's longest. "
            f"Default {BUCKET_WINDOW}. The language-model task reads a continuous stream and "
            "ignores it."
        ),
    )
    group.add_argument(
        "--output",
        default=None,
        help=f"Run directory (default: runs/{task.name}): logs, tuner state, best model, results.",
    )
    _add_verbose_argument(group)
    group.add_argument(
        "--gate-monitor",
        action="store_true",
        help="Log gate activity and gradient flow to TensorBoard (keras_gated.callbacks.GateMonitor).",
    )
    hardware = parser.add_argument_group("hardware")
    hardware.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help=(
            "Distribution: auto = MultiWorkerMirroredStrategy if TF_CONFIG names several "
            "workers, else TPU if found, else all GPUs mirrored if several, else one device; "
            "multi-worker = MultiWorkerMirroredStrategy from TF_CONFIG (TensorFlow, every "
            "worker runs the same command); JAX uses keras.distribution.DataParallel. "
            "See docs/scaling.md."
        ),
    )
    hardware.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="JAX cluster: address of process 0, the same on every process "
             "(default: $JAX_COORDINATOR_ADDRESS); calls jax.distributed.initialize.",
    )
    hardware.add_argument(
        "--num-processes", type=int, default=None,
        help="JAX cluster: number of processes (default: $JAX_NUM_PROCESSES).",
    )
    hardware.add_argument(
        "--process-id", type=int, default=None,
        help="JAX cluster: this process's index, 0 to N-1 (default: $JAX_PROCESS_ID).",
    )
    hardware.add_argument("--tpu", default=None, help="TPU name or grpc:// address for TPUClusterResolver.")
    hardware.add_argument(
        "--mixed-precision",
        action="store_true",
        help="Compute in float16 on a GPU, bfloat16 on TPU, on a CPU bfloat16 "
        "(float16 on JAX), with float32 weights.",
    )
    if command == "tune":
        search = parser.add_argument_group("search")
        search.add_argument(
            "--tuner",
            choices=TUNER_KINDS,
            default="random",
            help=(
                "Search algorithm. grid: every combination of the values given with --hp, "
                "other hyperparameters at their defaults (e.g. one model per cell)."
            ),
        )
        search.add_argument("--max-trials", type=int, default=10, help="Most trials (random, bayesian, grid).")
        search.add_argument(
            "--max-epochs",
            type=int,
            default=None,
            help="Hyperband: most epochs a model gets (default: --epochs).",
        )
        search.add_argument(
            "--executions-per-trial", type=int, default=1, help="Fits per trial, objective averaged."
        )
        search.add_argument(
            "--project-name", default=task.name, help="Name of the search; the same name resumes it."
        )
        search.add_argument(
            "--overwrite",
            action="store_true",
            help="Start the search from scratch. Without it, the same command resumes.",
        )


def _add_verbose_argument(parser):
    parser.add_argument(
        "--verbose",
        nargs="?",
        const=SHOW_EVERYTHING,
        default="auto",
        metavar="LEVEL",
        help="Keras progress output: auto (a progress bar in a terminal, one line per epoch "
             "in a log file), 0 (silent), 1 (progress bar) or 2 (one line per epoch). "
             "--verbose alone also shows the backend's own log lines (TensorFlow's C++ "
             "messages), hidden otherwise.",
    )


def build_parser(task, command, prog="keras-gated"):
    """The argparse parser of `keras-gated COMMAND TASK`."""
    parser = argparse.ArgumentParser(
        prog=f"{prog} {command} {task.name}",
        description=task.description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_arguments(parser, task, command)
    task.add_arguments(parser, command)
    return parser


def run(task, command, args):
    """Runs `command` ("train", "tune", "evaluate") for `task`; returns a dict."""
    if command == "evaluate":
        results = task.evaluate_saved(args)
        _print_json(results)
        if args.output:
            _write_json(args.output, results)
        # On stderr: stdout stays the JSON that scripts parse.
        print(_summary(args.model, args.output), file=sys.stderr, flush=True)
        return results
    import keras

    from keras_gated.tuning.hardware import select_strategy
    from keras_gated.tuning.hardware import set_mixed_precision

    from keras_gated.tuning import cluster

    args.output = args.output or os.path.join("runs", task.name)
    args.verbose = _verbosity(args.verbose)
    os.makedirs(args.output, exist_ok=True)
    jax_options = cluster.jax_cluster_options(args.coordinator, args.num_processes, args.process_id)
    cluster.check_cluster_arguments(keras.backend.backend(), args.strategy, jax_options)
    if jax_options is not None:
        cluster.start_jax_cluster(*jax_options)
    # First, before any other TensorFlow operation: MultiWorkerMirroredStrategy
    # configures the collective ops of the process.
    strategy = select_strategy(args.strategy, tpu=args.tpu)
    role = cluster.role_of(strategy)
    keras.utils.set_random_seed(args.seed)
    # Tasks read this to keep batches even: Keras under MirroredStrategy fails
    # on a last batch that does not split evenly over the replicas.
    args.replicas = getattr(strategy, "num_replicas_in_sync", 1)
    if role.engine == "jax":
        import jax

        args.replicas = len(jax.devices())
    cluster.check_global_batch(args.batch_size, args.replicas, role)
    set_mixed_precision(args.mixed_precision, strategy)
    data = task.load_data(args)
    hypermodel = task.hypermodel(args, data)
    if args.list_hp:
        print("\n".join(hypermodel.space.describe()))
        return {}
    with cluster.WorkerFiles(args.output, role) as files:
        if command == "train":
            return _train(task, args, data, hypermodel, strategy, files)
        return _tune(task, args, data, hypermodel, strategy, files)


def _callbacks(task, args, data, log_dir, fit_kwargs):
    from keras_gated.tasks.batches import epoch_seeding_callbacks
    from keras_gated.tuning.tuners import trial_callbacks

    sample = task.monitor_sample(data) if args.gate_monitor else None
    describe = getattr(data, "describe_batch", None)
    # The batch order and the dropout seeds of an epoch depend on the epoch
    # number only, so a resumed fit repeats the epochs of an uninterrupted one.
    seeding = epoch_seeding_callbacks(fit_kwargs)
    return seeding + trial_callbacks(log_dir, gate_monitor_sample=sample, describe_batch=describe)


def _train(task, args, data, hypermodel, strategy, files):
    import keras_tuner

    from keras_gated.tuning import cluster

    hp = keras_tuner.HyperParameters()
    if strategy is not None:
        with strategy.scope():
            model = hypermodel.build(hp)
    else:
        model = hypermodel.build(hp)
    values = dict(hp.values)
    print(f"keras-gated: training {task.name} with {_format_hparams(values)}", flush=True)
    log_dir = files.path("logs", "train")
    backup = _backup_and_restore(task, args, values, files)
    fit_kwargs, task_callbacks = _split_callbacks(task.fit_kwargs(args, data))
    fit_kwargs = cluster.shard_fit_kwargs(fit_kwargs, files.role)
    resumes = f"training resumes after the last epoch in the chief's backup ({files.shared_path('backup', 'train')})"
    with cluster.peer_failures_explained(files.role, resumes):
        history = model.fit(
            **fit_kwargs,
            epochs=args.epochs,
            callbacks=task_callbacks + _callbacks(task, args, data, log_dir, fit_kwargs) + [backup],
            verbose=args.verbose,
        )
    # Every process evaluates on the whole test split, with a model of its own
    # in a JAX cluster (see `cluster.local_copy`).
    metrics = task.evaluate(cluster.local_copy(model, files.role), data, args)
    # Every process saves (TensorFlow's guide: saving may need all workers);
    # only the chief's file is under --output, the others' are removed.
    model_path = files.path("best_model.keras")
    task.export(model, data, model_path, args)
    results = {"task": task.name, "hyperparameters": values, **metrics, "model": model_path}
    if files.role.is_distributed:
        results["cluster"] = _cluster_record(files.role, model, history)
    if not files.role.writes_shared_files:
        _write_json(files.record_path(), results)
        print(f"keras-gated: {files.role.name} done; the chief writes the model and results "
              f"({files.record_path()})", flush=True)
        return results
    results_path = os.path.join(args.output, "results.json")
    _write_json(results_path, results)
    _print_json(results)
    print(_summary(model_path, results_path, os.path.join(args.output, "logs")), flush=True)
    return results


def _cluster_record(role, model, history):
    """What a process of a multi-process run did: its role, steps and a digest of its final weights."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, dtype="float32").tobytes())
    return {
        "engine": role.engine,
        "role": role.name,
        "process_index": role.process_index,
        "process_count": role.process_count,
        "epochs_run": len(history.epoch),
        "first_epoch": history.epoch[0] if history.epoch else None,
        "weights_sha256": digest.hexdigest(),
    }


def _split_callbacks(fit_kwargs):
    """`(fit_kwargs without "callbacks", the task's callbacks)`: they run before the runner's own."""
    fit_kwargs = dict(fit_kwargs)
    return fit_kwargs, list(fit_kwargs.pop("callbacks", ()))


def _backup_and_restore(task, args, values, files):
    """`keras.callbacks.BackupAndRestore` in `OUTPUT/backup/train`.

    Killed mid-fit, the same command resumes after the last completed epoch.
    A backup of another run (other hyperparameters, batch size or seed) is
    removed rather than loaded. Keras deletes the backup when fit ends.

    The backup holds the weights and the optimizer state; the batch order
    and the dropout seed counters are functions of (seed, epoch) set by
    `keras_gated.tasks.batches.EpochSeeding`, so a seeded resumed run ends
    with the model of an uninterrupted one.

    In a multi-process run only the chief keeps its backup there; every
    other process backs up to its temporary directory, first seeded with a
    copy of the chief's backup of the same run, so that all restart from
    the same epoch when the whole cluster is started again.
    """
    import shutil

    import keras

    from keras_gated.tuning import cluster

    backup_dir = files.path("backup", "train")
    run = {"task": task.name, "hyperparameters": values, "batch_size": args.batch_size, "seed": args.seed}
    run = json.loads(json.dumps(run, default=_jsonable))
    if not files.role.writes_shared_files:
        if cluster.seed_backup_from_chief(files.shared_path("backup", "train"), backup_dir, run):
            _say_resuming(backup_dir)
        os.makedirs(backup_dir, exist_ok=True)
        return keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True)
    stamp = os.path.join(backup_dir, "run.json")
    if os.path.isdir(backup_dir):
        try:
            with open(stamp) as handle:
                previous = json.load(handle)
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != run:
            print(f"keras-gated: removing the backup of another run in {backup_dir}", flush=True)
            shutil.rmtree(backup_dir)
        else:
            _say_resuming(backup_dir)
    os.makedirs(backup_dir, exist_ok=True)
    _write_json(stamp, run)
    return keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True)


def _say_resuming(backup_dir):
    try:
        with open(os.path.join(backup_dir, "training_metadata.json")) as handle:
            epoch = json.load(handle)["epoch"]
        print(f"keras-gated: resuming from the backup after epoch {epoch} in {backup_dir}", flush=True)
    except (OSError, json.JSONDecodeError, KeyError):
        pass


def _tune(task, args, data, hypermodel, strategy, files):
    from keras_gated.tuning import cluster
    from keras_gated.tuning.tuners import completed_trials
    from keras_gated.tuning.tuners import make_tuner

    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    distributed = "KERASTUNER_ORACLE_IP" in os.environ
    is_chief = distributed and "chief" in tuner_id
    if args.tuner == "grid":
        hypermodel.space.fix_defaults()
    cluster.check_tuner_kind(args.tuner, files.role)
    tuner_dir = files.path("tuner")
    if not files.role.writes_shared_files:
        # Every process of the cluster runs the same trials together, each with
        # its own oracle, which starts from a copy of the chief's (resume).
        cluster.copy_chief_state(files.shared_path("tuner", args.project_name),
                                 os.path.join(tuner_dir, args.project_name))
    cluster.barrier(strategy, files.role)
    tuner = make_tuner(
        args.tuner,
        hypermodel,
        task.objective,
        directory=tuner_dir,
        project_name=args.project_name,
        max_trials=args.max_trials,
        distribution_strategy=strategy,
        overwrite=args.overwrite,
        seed=args.seed,
        executions_per_trial=args.executions_per_trial,
        max_epochs=args.max_epochs or args.epochs,
    )
    model_path = files.path("best_model.keras")
    if not distributed and files.role.writes_shared_files:
        tuner.trial_end_hooks.append(_export_best_so_far(task, data, args, model_path))
    log_dir = files.path("logs")
    try:
        from keras_gated.tuning.tuners import write_hparams_config

        if (not distributed or is_chief) and files.role.writes_shared_files:
            write_hparams_config(
                log_dir,
                hypermodel.space,
                # keras.callbacks.TensorBoard writes `val_x` as `epoch_x` in
                # the validation run, so the tag drops the `val_` prefix.
                [
                    (
                        "epoch_" + _metric(task.objective).removeprefix("val_"),
                        "execution0/validation",
                        "validation",
                    )
                ],
            )
    except ImportError:  # TensorBoard's hparams plugin needs TensorFlow
        pass
    from keras_gated.tuning.guards import TrainingFailedError

    try:
        fit_kwargs, task_callbacks = _split_callbacks(task.fit_kwargs(args, data))
        fit_kwargs = cluster.shard_fit_kwargs(fit_kwargs, files.role)
        tuner.search(
            **fit_kwargs,
            epochs=args.epochs,
            callbacks=task_callbacks + _callbacks(task, args, data, log_dir, fit_kwargs),
            verbose=args.verbose,
        )
    except RuntimeError as error:
        # The oracle stops the search after max_consecutive_failed_trials.
        if "consecutive failures" not in str(error):
            raise
        raise TrainingFailedError(f"The search stopped: {error} {_failures(tuner)}") from None
    if distributed and not is_chief:
        record = {"tuner_id": tuner_id, "trials": tuner.trials_run}
        _write_json(os.path.join(args.output, f"tuner-{tuner_id}.json"), record)
        print(f"keras-gated: {tuner_id} ran trials {', '.join(tuner.trials_run) or '(none)'}")
        return record
    if not files.role.writes_shared_files:
        # The chief alone evaluates the trials and exports the best model.
        record = {"task": task.name, "trained_by_this_run": list(tuner.trials_run),
                  "cluster": {"engine": files.role.engine, "role": files.role.name,
                              "process_index": files.role.process_index,
                              "process_count": files.role.process_count}}
        _write_json(files.record_path(), record)
        print(f"keras-gated: {files.role.name} ran trials {', '.join(tuner.trials_run) or '(none)'} "
              f"with the chief ({files.record_path()})", flush=True)
        return record
    return _report(task, args, data, hypermodel, tuner, completed_trials(tuner), model_path, files)


def _export_best_so_far(task, data, args, model_path):
    def hook(tuner, trial):
        best = tuner.oracle.get_best_trials(1)
        if best and best[0].trial_id == trial.trial_id and trial.status == "COMPLETED":
            task.export(_load_trial_model(tuner, trial), data, model_path, args)
            print(f"keras-gated: trial {trial.trial_id} is the best so far -> {model_path}", flush=True)

    return hook


def _load_trial_model(tuner, trial):
    # A trial checkpoint holds the optimizer state that a freshly built
    # model lacks; Keras warns about it, but only the weights matter here.
    from keras_gated.tuning import cluster

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        if not cluster_strategy(tuner.distribution_strategy):
            # In a JAX cluster the chief evaluates alone: a model on its own devices.
            with cluster.local_scope(cluster.role_of(None)):
                return tuner.load_model(trial)
        # Under a multi-worker strategy a model built in its scope creates
        # its variables with a broadcast that every worker must join; the
        # chief evaluates and exports alone, so it builds a local model.
        from keras_gated.tuning.keras_tuner_private import trial_checkpoint_path

        model = tuner.hypermodel.build(trial.hyperparameters)
        model.load_weights(trial_checkpoint_path(tuner, trial.trial_id))
        return model


def cluster_strategy(strategy):
    """Whether `strategy` trains over several processes (MultiWorkerMirroredStrategy)."""
    from keras_gated.tuning import cluster

    return cluster.role_of(strategy).engine == "tensorflow"


def _report(task, args, data, hypermodel, tuner, trials, model_path, files):
    objective = _metric(task.objective)
    rows = []
    for trial in trials:
        model = _load_trial_model(tuner, trial)
        metrics = task.evaluate(model, data, args)
        rows.append(
            {
                "trial": trial.trial_id,
                "hyperparameters": hypermodel.hparams_summary(trial.hyperparameters.values),
                objective: trial.score,
                **metrics,
            }
        )
    from keras_gated.tuning.guards import TrainingFailedError
    from keras_gated.tuning.tuners import failed_trials

    if not rows:
        raise TrainingFailedError(f"The search completed no trial. {_failures(tuner)}")
    best = rows[0]
    task.export(_load_trial_model(tuner, trials[0]), data, model_path, args)
    results = {
        "task": task.name,
        "objective": objective,
        "best": best,
        "model": model_path,
        "trials": rows,
        # Trials that stopped at a non-finite loss: no score, never the best.
        "failed_trials": [{"trial": t, "message": m} for t, m in failed_trials(tuner)],
        # Trials this process trained; fewer than `trials` after a resume.
        "trained_by_this_run": list(tuner.trials_run),
    }
    if files.role.is_distributed:
        results["cluster"] = {"engine": files.role.engine, "role": files.role.name,
                              "process_index": files.role.process_index,
                              "process_count": files.role.process_count}
    _write_json(os.path.join(args.output, "results.json"), results)
    print(format_table(rows, objective, task.metric_names))
    print(
        f"\nBest: trial {best['trial']} ({_format_hparams(best['hyperparameters'])}) "
        f"{objective}={best[objective]:.4f} "
        + " ".join(f"{m}={best[m]:.4f}" for m in task.metric_names)
    )
    print(_summary(model_path, os.path.join(args.output, "results.json"),
                   os.path.join(args.output, "logs")), flush=True)
    return results


def _failures(tuner):
    from keras_gated.tuning.tuners import failed_trials

    failed = failed_trials(tuner)
    return " ".join(f"Trial {t} failed: {m}" for t, m in failed) or "See the messages above."


def format_table(rows, objective, metric_names):
    """A plain-text table: trial, the hyperparameters that vary, objective, test metrics."""
    names = []
    for row in rows:
        for name in row["hyperparameters"]:
            if name not in names:
                names.append(name)
    varying = [n for n in names if len({repr(r["hyperparameters"].get(n)) for r in rows}) > 1]
    shown = ["cell"] + [n for n in varying if n != "cell"]
    header = ["trial"] + shown + [objective] + list(metric_names)
    table = [header]
    for row in rows:
        hps = row["hyperparameters"]
        table.append(
            [row["trial"]]
            + [_short(hps.get(n)) for n in shown]
            + [f"{row[objective]:.4f}"]
            + [f"{row[m]:.4f}" for m in metric_names]
        )
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _format_hparams(values):
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items() if not k.startswith("tuner/"))


def _metric(objective):
    return objective if isinstance(objective, str) else objective.name


def _verbosity(value):
    return keras_verbosity(value)


def _summary(model_path, results_path, log_dir=None):
    """The last line of a command: where its outputs went."""
    where = [f"model {model_path}", f"results {results_path or 'printed above (--output FILE saves them)'}"]
    if log_dir is not None:
        where.append(f"TensorBoard logs {log_dir} (tensorboard --logdir {log_dir})")
    return "keras-gated: done: " + "; ".join(where)


def _write_json(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2, default=_jsonable)


def _print_json(payload):
    json.dump(payload, sys.stdout, indent=2, default=_jsonable)
    print()


def _jsonable(value):
    try:
        return value.item()
    except AttributeError:
        return str(value)
