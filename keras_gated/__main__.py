"""`python -m keras_gated ...` is the `keras-gated` command line.

Python imports the `keras_gated` package (and with it TensorFlow) before this
file runs, so TensorFlow's start-up lines are already out; the lines it logs
later are dropped like the console script's (`keras_gated_cli`, which is
quiet from the start).
"""

import sys

try:
    from keras_gated_cli import main
except ModuleNotFoundError as error:
    # An editable install made before keras_gated_cli existed does not map
    # it; the command line still runs, without the log filter.
    if error.name != "keras_gated_cli":
        raise
    from keras_gated.cli import main

sys.exit(main())
