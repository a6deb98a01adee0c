"""Deprecated: moved to `keras_gated.tasks.translation.sample`; this module re-exports it."""

from keras_gated.tasks.translation.sample import *  # noqa: F401,F403
from keras_gated.tasks.translation.sample import SAMPLE_SIZE  # noqa: F401
from keras_gated.tasks.translation.sample import generate  # noqa: F401
