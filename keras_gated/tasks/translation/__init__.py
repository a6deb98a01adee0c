"""Translation task: attention encoder-decoder, beam search, BLEU and chrF.

    keras-gated tune translation --data sample --max-trials 4
    keras-gated train translation --data pairs.tsv --source-column 1 --target-column 0
    keras-gated evaluate translation --model runs/translation/best_model.keras
    keras-gated translate --model runs/translation/best_model.keras < sentences.txt

Data (`--data`):

* `sample`: the embedded travel-phrase corpus (English -> Kelvan, a
  language made up for this project with verb-final order, postpositions and
  adjectives after nouns; see `keras_gated.tasks.translation.sample`);
* a local file of sentence pairs, one pair per line, tab-separated
  (`source<TAB>target`; extra columns, such as the attribution columns of
  Tatoeba / Anki exports, are ignored). `--source-column` and
  `--target-column` pick the columns, so they also choose the direction;
* a tensorflow-datasets translation set by name (e.g.
  `ted_hrlr_translate/pt_to_en`); the columns are then its language codes
  (default: its supervised keys). Without network and without the prepared
  dataset in `--tfds-dir`, this fails at once with a message.

Sentence pairs are grouped by source sentence (several translations of one
sentence become several references) and the groups split into train,
validation and test; the test split never reaches the tuner.

The Python API:

    from keras_gated.tasks.translation import Translator
    translator = Translator.load("runs/translation/best_model.keras")
    translator.translate(["Where is the station?"], beam_width=4)

The package: `data` (pairs, splits, tokenizers, arrays), `model` (the
hypermodel, `Translator`, BLEU/chrF), `sample` (the travel phrases) and
`task` (the command-line wiring, `TASK`, `keras-gated translate`). The
names below are re-exported here, where they were when the task was one
module.
"""

from keras_gated.tasks.translation.data import Splits
from keras_gated.tasks.translation.data import TextSide
from keras_gated.tasks.translation.data import TranslationData
from keras_gated.tasks.translation.data import load_pairs
from keras_gated.tasks.translation.data import make_arrays
from keras_gated.tasks.translation.data import make_train_batches
from keras_gated.tasks.translation.data import pad
from keras_gated.tasks.translation.data import pairs_within
from keras_gated.tasks.translation.data import prepare_data
from keras_gated.tasks.translation.data import read_pairs
from keras_gated.tasks.translation.data import read_tfds_pairs
from keras_gated.tasks.translation.data import split_pairs
from keras_gated.tasks.translation.model import BLEU_TOKENIZERS
from keras_gated.tasks.translation.model import BleuCallback
from keras_gated.tasks.translation.model import TranslationHyperModel
from keras_gated.tasks.translation.model import Translator
from keras_gated.tasks.translation.model import bleu_callback
from keras_gated.tasks.translation.model import corpus_scores
from keras_gated.tasks.translation.model import evaluate_translator
from keras_gated.tasks.translation.task import TASK
from keras_gated.tasks.translation.task import TranslationTask
from keras_gated.tasks.translation.task import add_translate_arguments
from keras_gated.tasks.translation.task import run_translate

__all__ = [
    "BLEU_TOKENIZERS",
    "BleuCallback",
    "Splits",
    "TASK",
    "TextSide",
    "TranslationData",
    "TranslationHyperModel",
    "TranslationTask",
    "Translator",
    "add_translate_arguments",
    "bleu_callback",
    "corpus_scores",
    "evaluate_translator",
    "load_pairs",
    "make_arrays",
    "make_train_batches",
    "pad",
    "pairs_within",
    "prepare_data",
    "read_pairs",
    "read_tfds_pairs",
    "run_translate",
    "split_pairs",
]
