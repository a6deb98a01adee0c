"""`python -m keras_gated ...` is the `keras-gated` command line."""

import os
import sys

# Before TensorFlow is imported: keep its C++ start-up chatter out of the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_gated.cli import main  # noqa: E402


sys.exit(main())
