"""Deprecated: the captioning Python API moved to `keras_gated.tasks.captioning.task`
(and is re-exported by `keras_gated.tasks.captioning`); this module re-exports it."""

from keras_gated.tasks.captioning.task import CaptionBatches  # noqa: F401
from keras_gated.tasks.captioning.task import CaptionConfig  # noqa: F401
from keras_gated.tasks.captioning.task import attention_examples  # noqa: F401
from keras_gated.tasks.captioning.task import build_model  # noqa: F401
from keras_gated.tasks.captioning.task import cache_features  # noqa: F401
from keras_gated.tasks.captioning.task import caption_files  # noqa: F401
from keras_gated.tasks.captioning.task import compile_model  # noqa: F401
from keras_gated.tasks.captioning.task import describe  # noqa: F401
from keras_gated.tasks.captioning.task import evaluate_saved  # noqa: F401
from keras_gated.tasks.captioning.task import finish  # noqa: F401
from keras_gated.tasks.captioning.task import fit  # noqa: F401
from keras_gated.tasks.captioning.task import load_model  # noqa: F401
from keras_gated.tasks.captioning.task import model_inputs  # noqa: F401
from keras_gated.tasks.captioning.task import prepare_data  # noqa: F401
from keras_gated.tasks.captioning.task import read_images  # noqa: F401
from keras_gated.tasks.captioning.task import train  # noqa: F401
from keras_gated.tasks.captioning.task import write_examples  # noqa: F401
