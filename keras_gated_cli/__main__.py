"""`python -m keras_gated_cli ...` is the `keras-gated` command, quiet from the start."""

import sys

from keras_gated_cli import main

sys.exit(main())
