"""The `keras-gated` command line (also `python -m keras_gated`).

    keras-gated tune sentiment --data sample --max-trials 4
    keras-gated train sentiment --data reviews.csv --text-column review --label-column stars
    keras-gated evaluate sentiment --model runs/sentiment/best_model.keras --text "not bad at all"
    keras-gated TASK-COMMAND ...     (e.g. `translate`, added by a task)

`keras-gated COMMAND TASK --help` lists every option of that task.

The console script starts in `keras_gated_cli`, which hides the backend's
own log lines (unless `--verbose`) before this module, and TensorFlow with
it, is imported; `main` here runs the command.
"""

import argparse
import sys

from keras_gated import tasks as task_registry
from keras_gated.tasks import runner
from keras_gated.tasks.base import SavedModelError


def _top_parser():
    parser = argparse.ArgumentParser(
        prog="keras-gated",
        description=(
            "Train, tune and evaluate gated recurrent models (keras-gated). "
            "Run `keras-gated COMMAND TASK --help` for the options of a task."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(),
    )
    parser.add_argument("command", help="train, tune, evaluate, or a task's own command (below).")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _epilog():
    available = set(task_registry.available_tasks())
    lines = ["commands:"]
    lines.append("  train TASK     train one model (default or --hp-fixed hyperparameters)")
    lines.append("  tune TASK      run a KerasTuner search, evaluate and save the best model")
    lines.append("  evaluate TASK  evaluate a saved model or classify/translate given inputs")
    for command, task in task_registry.EXTRA_COMMANDS.items():
        note = "" if task in available else "  (not available in this version)"
        lines.append(f"  {command:<14} command of the {task} task{note}")
    lines.append("")
    lines.append("tasks:")
    for name in task_registry.REGISTRY:
        note = "" if name in available else "  (not available in this version)"
        lines.append(f"  {name}{note}")
    return "\n".join(lines)


def main(argv=None):
    """Entry point of the `keras-gated` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command in runner.COMMANDS:
            return _run_task_command(command, rest)
        if command in task_registry.EXTRA_COMMANDS:
            return _run_extra_command(command, rest)
    except (
        task_registry.DataError,
        task_registry.TaskUnavailableError,
        task_registry.TrainingFailedError,
        SavedModelError,
        ValueError,
    ) as error:
        print(f"keras-gated: error: {error}", file=sys.stderr)
        return 2
    top.error(
        f"unknown command {command!r}; choose from "
        f"{', '.join(runner.COMMANDS + tuple(task_registry.EXTRA_COMMANDS))}"
    )


def _run_task_command(command, rest):
    if not rest or rest[0] in ("-h", "--help"):
        print(
            f"usage: keras-gated {command} TASK [options]\n\n"
            f"tasks: {', '.join(task_registry.available_tasks())}\n"
            f"`keras-gated {command} TASK --help` lists the options of TASK."
        )
        return 0 if rest else 2
    task = task_registry.load_task(rest[0])
    parser = runner.build_parser(task, command)
    args = parser.parse_args(rest[1:])
    runner.run(task, command, args)
    return 0


def _run_extra_command(command, rest):
    task = task_registry.load_task(task_registry.EXTRA_COMMANDS[command])
    commands = task.commands()
    if command not in commands:
        raise task_registry.TaskUnavailableError(
            f"The {task.name} task does not provide the {command!r} command in this version."
        )
    spec = commands[command]
    parser = argparse.ArgumentParser(
        prog=f"keras-gated {command}",
        description=spec.help,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    spec.add_arguments(parser)
    status = spec.run(parser.parse_args(rest))
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
