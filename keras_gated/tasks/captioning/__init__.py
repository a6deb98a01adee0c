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

The package: `data` (vocabulary, image files, loaders), `model` (encoder,
decoder, captioner, hypermodel), `sample` (rendered scenes), `task` (the
Python API and the command-line wiring, `TASK`, `keras-gated caption`), and
two helpers: `features` (the cache of a frozen backbone's features) and
`evaluation` (BLEU, CIDEr-D and attention pictures). `cli`, `pipeline` and
`tuning` are deprecated re-exports of `task` and `model`.

See docs/captioning.md.
"""

from keras_gated.tasks.captioning.data import CaptionDataError
from keras_gated.tasks.captioning.data import Vocabulary
from keras_gated.tasks.captioning.data import load_dataset
from keras_gated.tasks.captioning.model import CaptionDecoder
from keras_gated.tasks.captioning.model import ImageCaptioner
from keras_gated.tasks.captioning.model import ImageEncoder
from keras_gated.tasks.captioning.sample import make_sample_dataset
from keras_gated.tasks.captioning.sample import write_sample_dataset
from keras_gated.tasks.captioning.task import TASK
from keras_gated.tasks.captioning.task import CaptionConfig
from keras_gated.tasks.captioning.task import CaptioningTask
from keras_gated.tasks.captioning.task import caption_files
from keras_gated.tasks.captioning.task import load_model
from keras_gated.tasks.captioning.task import read_images
from keras_gated.tasks.captioning.task import train

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
    "read_images",
    "make_sample_dataset",
    "train",
    "write_sample_dataset",
]
