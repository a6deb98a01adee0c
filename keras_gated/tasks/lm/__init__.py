"""Language modelling: the Penn Treebank experiment of the depth-gated and untied LSTM papers.

Command line (through the shared `keras-gated` runner):

    keras-gated train lm --data sample --hp cell=depth_gated --hp num_layers=2
    keras-gated tune lm --data ptb/ --hp cell=lstm,depth_gated,untied
    keras-gated evaluate lm --model runs/lm/best_model.keras
    keras-gated generate --model runs/lm/best_model.keras --prompt "the dogs that"

Training is truncated backpropagation through time (`--bptt`) over one
continuous stream with stateful layers; the metrics are perplexity (and
bits per character with `--split char`). See docs/lm.md.
"""

from keras_gated.tasks.lm.data import Corpus
from keras_gated.tasks.lm.data import StreamWindows
from keras_gated.tasks.lm.data import Vocabulary
from keras_gated.tasks.lm.data import load_corpus
from keras_gated.tasks.lm.task import TASK
from keras_gated.tasks.lm.task import LanguageModelTask
from keras_gated.tasks.lm.task import load_language_model

__all__ = [
    "Corpus",
    "LanguageModelTask",
    "StreamWindows",
    "TASK",
    "Vocabulary",
    "load_corpus",
    "load_language_model",
]
