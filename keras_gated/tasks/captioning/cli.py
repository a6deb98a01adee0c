"""Deprecated: `keras-gated caption` moved to `keras_gated.tasks.captioning.task`;
this module re-exports it."""

from keras_gated.tasks.captioning.task import add_caption_arguments  # noqa: F401
from keras_gated.tasks.captioning.task import expand_image_paths  # noqa: F401
from keras_gated.tasks.captioning.task import run_caption  # noqa: F401
