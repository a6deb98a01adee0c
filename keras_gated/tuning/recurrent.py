"""Deprecated: the cell registry moved to `keras_gated.cells`.

This module re-exports it so that `from keras_gated.tuning.recurrent import
make_rnn_layer` (and the other names) keeps working; new code imports
`keras_gated.cells`.
"""

from keras_gated.cells import _CELL_CLASSES  # noqa: F401
from keras_gated.cells import ALL_CELLS
from keras_gated.cells import NATIVE_STACKS
from keras_gated.cells import RecurrentStack
from keras_gated.cells import available_cells
from keras_gated.cells import check_cell
from keras_gated.cells import make_cell
from keras_gated.cells import make_rnn_layer
from keras_gated.cells import recurrent_stack
from keras_gated.cells import stack_layers
from keras_gated.cells import stack_size

__all__ = [
    "ALL_CELLS",
    "NATIVE_STACKS",
    "RecurrentStack",
    "available_cells",
    "check_cell",
    "make_cell",
    "make_rnn_layer",
    "recurrent_stack",
    "stack_layers",
    "stack_size",
]
