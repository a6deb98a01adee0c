"""The tasks of keras-gated and the registry the command line reads.

`REGISTRY` maps a task name to the module that defines it; the module
exposes `TASK`, an instance of `keras_gated.tasks.base.Task`. Modules are
imported only when their task is used, and a registered module that is not
present in this version is reported clearly instead of crashing.

`EXTRA_COMMANDS` maps a top-level subcommand a task contributes (through
`Task.commands()`) to the task's name.
"""

import importlib

from keras_gated.tasks.base import Command
from keras_gated.tasks.base import DataError
from keras_gated.tasks.base import Task

REGISTRY = {
    "sentiment": "keras_gated.tasks.sentiment",
    "translation": "keras_gated.tasks.translation",
    "captioning": "keras_gated.tasks.captioning",
    "lm": "keras_gated.tasks.lm",
}

EXTRA_COMMANDS = {
    "translate": "translation",
    "caption": "captioning",
    "generate": "lm",
}


class TrainingFailedError(RuntimeError):
    """Training or a search could not produce a model (e.g. a NaN loss); the message says why."""


class TaskUnavailableError(Exception):
    """A registered task whose module is not part of this installation."""


def load_task(name):
    """Imports and returns the `TASK` object registered as `name`.

    Raises:
        ValueError: `name` is not registered (lists the registered names).
        TaskUnavailableError: the task's module is missing.
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown task {name!r}. Registered tasks: {', '.join(REGISTRY)}.")
    module_name = REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise TaskUnavailableError(
                f"The {name!r} task is registered but not available in this "
                f"version of keras-gated ({module_name} is missing)."
            ) from None
        raise
    return module.TASK


def available_tasks():
    """Names of the registered tasks whose module can be found."""
    import importlib.util

    return [name for name, module in REGISTRY.items() if importlib.util.find_spec(module) is not None]


__all__ = [
    "Command",
    "DataError",
    "EXTRA_COMMANDS",
    "REGISTRY",
    "Task",
    "TaskUnavailableError",
    "TrainingFailedError",
    "available_tasks",
    "load_task",
]
