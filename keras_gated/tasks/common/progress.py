"""How much Keras prints while it trains: `--verbose`."""

import sys

#: What a bare `--verbose` stands for: automatic progress, and the backend's
#: own log lines shown (see `keras_gated_cli`).
SHOW_EVERYTHING = "all"


def keras_verbosity(value, stream=None):
    """The `verbose=` of `model.fit` for a `--verbose` value.

    `"auto"` (and a bare `--verbose`) is a progress bar in a terminal and one
    line per epoch otherwise: a bar redrawn with carriage returns reads as
    one long garbled line in a log file. `0`, `1`, `2` are Keras's own.
    """
    if value in ("auto", SHOW_EVERYTHING):
        stream = sys.stdout if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        return 1 if isatty is not None and isatty() else 2
    return int(value)
