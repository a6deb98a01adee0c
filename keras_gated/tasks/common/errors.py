"""The errors a task raises for the user: the command line prints the message alone."""


class DataError(Exception):
    """Data cannot be loaded; the message tells the user what to do.

    The command line prints the message alone (no stack trace) and exits
    with status 2. Also `keras_gated.tasks.DataError`.
    """


class SavedModelError(ValueError):
    """A `.keras` file cannot be loaded as the model a command expects.

    The command line prints the message alone and exits with status 2.
    """
