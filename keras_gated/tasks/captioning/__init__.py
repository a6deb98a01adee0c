"""Image captioning: Show, Attend and Tell with a gated-cell decoder.

Command line (through the shared `keras-gated` runner):

    keras-gated train captioning --data sample --hp cell=coupled
    keras-gated tune captioning --data Flickr8k/ --hp cell=lstm,peephole,coupled
    keras-gated evaluate captioning --model runs/captioning/best_model.keras --data sample
    keras-gated caption --model runs/captioning/best_model.keras photo.jpg

Python:

    from keras_gated.tasks import captioning as cap

    result = cap.train(cap.CaptionConfig(data="sample", cell="peephole", epochs=8))
    model = cap.load_model("runs/captioning/model.keras")
    print(cap.caption_files(model, ["photo.jpg"]))

See docs/captioning.md.
"""

from keras_gated.tasks.captioning.task import TASK
from keras_gated.tasks.captioning.task import CaptioningTask


def __getattr__(name):
    # The model and pipeline import Keras; keep `keras-gated --help` fast.
    from keras_gated.tasks.captioning import data
    from keras_gated.tasks.captioning import evaluation
    from keras_gated.tasks.captioning import model
    from keras_gated.tasks.captioning import pipeline
    from keras_gated.tasks.captioning import sample

    for module in (pipeline, model, data, evaluation, sample):
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'keras_gated.tasks.captioning' has no attribute {name!r}")


__all__ = [
    "CaptionConfig",
    "CaptionDataError",
    "CaptioningTask",
    "ImageCaptioner",
    "ImageEncoder",
    "CaptionDecoder",
    "TASK",
    "Vocabulary",
    "caption_files",
    "load_dataset",
    "load_model",
    "make_sample_dataset",
    "train",
    "write_sample_dataset",
]
