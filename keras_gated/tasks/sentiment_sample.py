"""Deprecated: moved to `keras_gated.tasks.sentiment.sample`; this module re-exports it."""

from keras_gated.tasks.sentiment.sample import *  # noqa: F401,F403
from keras_gated.tasks.sentiment.sample import SAMPLE_SIZE  # noqa: F401
from keras_gated.tasks.sentiment.sample import generate  # noqa: F401
from keras_gated.tasks.sentiment.sample import read  # noqa: F401
