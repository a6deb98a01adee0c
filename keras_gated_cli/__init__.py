"""The launcher of the `keras-gated` command: quiets the backend, then runs `keras_gated.cli`.

It lives outside the `keras_gated` package on purpose: importing
`keras_gated` imports Keras and with it TensorFlow, whose C++ start-up lines
(oneDNN, CUDA, CPU features) are written to the process's stderr while it is
imported and cannot be turned off afterwards. This module imports only the
standard library, so the command line can decide, before TensorFlow is
loaded, whether those lines are shown:

* by default they are dropped: `TF_CPP_MIN_LOG_LEVEL` defaults to 2, absl's
  Python logging to errors, and a filter on file descriptor 2 drops the lines
  in the native log formats (absl's `I0000 00:00:...` and TensorFlow's older
  `2026-01-01 12:00:00.000000: I ...`); every other line, tracebacks
  included, passes unchanged;
* `--verbose` given without a level shows everything (the filter is not
  installed and the environment is left alone).
"""

import os
import re
import sys
import threading

#: A line that TensorFlow's (or XLA's) C++ logging writes to stderr.
NATIVE_LOG_LINE = re.compile(
    r"^(?:"
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] "  # absl (seconds unbounded before absl::InitializeLog)
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "  # TensorFlow's own, before absl
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
    r")"
)


def wants_backend_logs(argv):
    """Whether `argv` holds a bare `--verbose` (no level after it): show the backend's logs."""
    for position, token in enumerate(argv):
        if token == "--verbose":
            following = argv[position + 1] if position + 1 < len(argv) else None
            return following is None or following.startswith("-")
    return False


class NativeLogFilter:
    """Drops the native log lines from what the process writes to file descriptor 2.

    C++ code writes to the descriptor, not to `sys.stderr`, so the filter
    replaces descriptor 2 with a pipe whose other end a thread reads line by
    line, forwarding to the real stderr every line that is not a native log
    line. `stop()` puts the real stderr back and forwards what is left.
    """

    def __init__(self, pattern=NATIVE_LOG_LINE):
        self.pattern = pattern
        self._real_stderr = None
        self._thread = None

    def start(self):
        sys.stderr.flush()
        self._real_stderr = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._forward, args=(read_end,), daemon=True)
        self._thread.start()
        return self

    def _forward(self, read_end):
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(os.dup(self._real_stderr), "wb", 0) as out:
            for line in pipe:
                if not self.pattern.match(line.decode("utf-8", "replace")):
                    out.write(line)

    def stop(self):
        sys.stderr.flush()
        # Closing the pipe's last write end ends the forwarding thread's loop.
        os.dup2(self._real_stderr, 2)
        self._thread.join(timeout=5)
        os.close(self._real_stderr)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def quiet_backend_logging():
    """Defaults that keep the backend's own log lines out (call before TensorFlow loads)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from absl import logging as absl_logging
    except ImportError:  # absl-py comes with Keras; without it there is nothing to quiet
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def main(argv=None):
    """Entry point of the `keras-gated` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_backend_logs(argv):
        from keras_gated.cli import main as run_command_line

        return run_command_line(argv)
    quiet_backend_logging()
    with NativeLogFilter():
        from keras_gated.cli import main as run_command_line

        return run_command_line(argv)
