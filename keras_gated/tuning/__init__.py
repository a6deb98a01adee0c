"""Shared training and tuning machinery of keras-gated's tasks.

Needs keras-tuner (the `examples` extra). See `docs/tasks.md`.

* `make_cell`, `make_rnn_layer`, `recurrent_stack`, `available_cells`:
  recurrent parts by cell name, re-exported from `keras_gated.cells` (the
  registry lives there; it needs no keras-tuner);
* `GatedHyperModel`, `SearchSpace`: the hypermodel base and its
  overridable search space (`--hp cell=peephole,coupled --hp units=32:128`);
* `make_tuner`, `trial_callbacks`: tuners with resume and per-trial
  TensorBoard (scalars + HParams);
* `select_strategy`, `set_mixed_precision`: hardware.
"""

from keras_gated.tuning.hardware import select_strategy
from keras_gated.tuning.hardware import set_mixed_precision
from keras_gated.tuning.hypermodel import GatedHyperModel
from keras_gated.cells import ALL_CELLS
from keras_gated.cells import NATIVE_STACKS
from keras_gated.cells import available_cells
from keras_gated.cells import check_cell
from keras_gated.cells import make_cell
from keras_gated.cells import make_rnn_layer
from keras_gated.cells import recurrent_stack
from keras_gated.tuning.space import SearchSpace
from keras_gated.tuning.tuners import TUNER_KINDS
from keras_gated.tuning.tuners import completed_trials
from keras_gated.tuning.tuners import make_gate_monitor
from keras_gated.tuning.tuners import make_tuner
from keras_gated.tuning.tuners import trial_callbacks
from keras_gated.tuning.tuners import write_hparams_config

__all__ = [
    "ALL_CELLS",
    "GatedHyperModel",
    "NATIVE_STACKS",
    "SearchSpace",
    "TUNER_KINDS",
    "available_cells",
    "check_cell",
    "completed_trials",
    "make_cell",
    "make_gate_monitor",
    "make_rnn_layer",
    "make_tuner",
    "recurrent_stack",
    "select_strategy",
    "set_mixed_precision",
    "trial_callbacks",
    "write_hparams_config",
]
