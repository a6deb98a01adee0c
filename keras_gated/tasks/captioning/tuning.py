"""Deprecated: `CaptionHyperModel` moved to `keras_gated.tasks.captioning.model`."""

from keras_gated.tasks.captioning.model import CaptionHyperModel  # noqa: F401
