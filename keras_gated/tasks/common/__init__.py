"""What the tasks share: errors, the tensorflow-datasets loader, saved models, BLEU/chrF.

* `DataError`, `SavedModelError` (`errors`): errors whose message the command
  line prints alone;
* `prepared_tfds_builder`, `network_available` (`tfds`): the one
  tensorflow-datasets loader and its offline rule;
* `load_saved_model` (`saved_models`): a `.keras` file with clear messages;
* `corpus_bleu`, `corpus_chrf`, `reference_streams` (`scores`): sacrebleu.

Cheap to import: TensorFlow, tensorflow-datasets and sacrebleu are imported
inside the functions that need them.
"""

from keras_gated.tasks.common.errors import DataError
from keras_gated.tasks.common.errors import SavedModelError
from keras_gated.tasks.common.saved_models import load_saved_model
from keras_gated.tasks.common.scores import corpus_bleu
from keras_gated.tasks.common.scores import corpus_chrf
from keras_gated.tasks.common.scores import reference_streams
from keras_gated.tasks.common.tfds import network_available
from keras_gated.tasks.common.tfds import offline_message
from keras_gated.tasks.common.tfds import prepared_tfds_builder

__all__ = [
    "DataError",
    "SavedModelError",
    "corpus_bleu",
    "corpus_chrf",
    "load_saved_model",
    "network_available",
    "offline_message",
    "prepared_tfds_builder",
    "reference_streams",
]
