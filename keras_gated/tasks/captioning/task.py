"""The captioning task on the shared machinery: `keras-gated train|tune|evaluate captioning`
and `keras-gated caption`.

The runner (`keras_gated.tasks.runner`) calls, in order: `load_data` (reads
and splits the data, fits the vocabulary on the training split, computes
and caches the features of a frozen backbone), `hypermodel` (a
`CaptionHyperModel`: the decoder cell and sizes are hyperparameters),
`fit_kwargs`, then `evaluate` (BLEU-1..4 and CIDEr-D on the test split) and
`export` (the `.keras` model, `captioning_metrics.json`, and the attention
pictures of a few validation images, also logged to TensorBoard).
"""

import dataclasses
import os

from keras_gated.tasks.base import Command
from keras_gated.tasks.base import Task

DECODE_CHOICES = ("greedy", "beam")


@dataclasses.dataclass
class CaptionData:
    """What `load_data` hands to the other methods."""

    config: object
    dataset: object
    parts: tuple          # train, validation, test CaptionDataset
    vocabulary: object
    inputs: tuple         # per part: (array, "images" | "features")
    encoder_weights: list = None   # weights of the encoder that made the cached features
    train_batches: object = None   # CaptionBatches, ordered by (seed, epoch)
    val_batches: object = None
    describe_batch: object = None  # (epoch, batch) -> the first images and captions of a batch


def make_batches(data, batch_size, seed):
    """Sets the training and validation `CaptionBatches` and `describe_batch` of `data`."""
    from keras_gated.tasks.batches import BatchNames
    from keras_gated.tasks.captioning.data import caption_pair_names
    from keras_gated.tasks.captioning.data import caption_pairs
    from keras_gated.tasks.captioning.pipeline import CaptionBatches

    config = data.config
    train, val, _ = data.parts
    (train_x, key), (val_x, _), _ = data.inputs
    pairs = caption_pairs(train, data.vocabulary, config.max_length)
    val_pairs = caption_pairs(val, data.vocabulary, config.max_length)
    data.train_batches = CaptionBatches(train_x, key, pairs, batch_size, seed=seed)
    data.val_batches = CaptionBatches(val_x, key, val_pairs, batch_size, shuffle=False)
    data.describe_batch = BatchNames(data.train_batches.batch_order, caption_pair_names(train))
    return data


def _add_data_arguments(parser):
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data", default="sample",
        help="'sample' (rendered scenes, no download), a Flickr8k/30k-style folder or "
             "captions file (image#n<TAB>caption lines, or CSV image,caption), a COCO "
             "captions JSON, or a tensorflow-datasets name (tfds:coco_captions; needs "
             "the network the first time).")
    group.add_argument("--images", default=None,
                       help="Folder of the image files (default: next to the captions file).")
    group.add_argument("--skip-bad", action="store_true",
                       help="Skip (with a warning) unreadable or missing images and bad "
                            "captions lines instead of stopping at the first.")
    group.add_argument("--sample-size", type=int, default=1200,
                       help="Number of scenes of --data sample.")
    group.add_argument("--limit", type=int, default=None,
                       help="Use at most this many images (quick runs).")
    group.add_argument("--image-size", type=int, default=48,
                       help="Images are resized to this square size in pixels.")
    group.add_argument("--validation-split", type=float, default=0.1,
                       help="Fraction of images held out for validation.")
    group.add_argument("--test-split", type=float, default=0.1,
                       help="Fraction of images held out for the test metrics (never tuned on).")
    group.add_argument("--max-length", type=int, default=20,
                       help="Captions are cut to this many words.")
    group.add_argument("--vocabulary-size", type=int, default=5000,
                       help="Most frequent training words kept; the rest become <unk>.")


def _add_decode_arguments(parser):
    group = parser.add_argument_group("decoding")
    group.add_argument("--decode", choices=DECODE_CHOICES, default="greedy",
                       help="Greedy or beam search (keras_gated.decoding).")
    group.add_argument("--beam-width", type=int, default=3, help="Beam width of --decode beam.")
    group.add_argument("--length-penalty", type=float, default=0.0,
                       help="GNMT length penalty alpha of --decode beam (0 = none).")


def _add_encoder_arguments(parser):
    group = parser.add_argument_group("encoder")
    group.add_argument(
        "--encoder", default="small_cnn",
        help="'small_cnn' (trained from scratch; the offline default) or a "
             "keras.applications model: MobileNetV3Small, EfficientNetB0, InceptionV3, ...")
    group.add_argument(
        "--encoder-weights", default="none",
        help="Backbone weights: 'imagenet' (downloads once, needs the network), 'none' "
             "(random) or the path of a weights file.")
    group.add_argument("--fine-tune-encoder", action="store_true",
                       help="Train the backbone too (no feature cache then).")
    group.add_argument("--encoder-filters", type=int, default=64,
                       help="Feature width of the small CNN.")
    group.add_argument("--cache-dir", default=None,
                       help="Where the features of a frozen backbone are cached "
                            "(default: OUTPUT/feature_cache).")
    group.add_argument("--num-examples", type=int, default=4,
                       help="Validation images whose captions and attention maps are saved.")


def config_from_args(args):
    from keras_gated.tasks.captioning.pipeline import CaptionConfig

    config = CaptionConfig()
    for field in dataclasses.fields(CaptionConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            setattr(config, field.name, value)
    config.images_dir = getattr(args, "images", None)
    config.output_dir = getattr(args, "output", None) or "runs/captioning"
    verbose = getattr(args, "verbose", 1)
    config.verbose = 1 if verbose == "auto" else int(verbose)
    return config


def _data_error(error):
    from keras_gated.tasks import DataError

    return DataError(str(error))


class CaptioningTask(Task):
    name = "captioning"
    description = (
        "Image captioning (Show, Attend and Tell): a CNN encoder gives a grid of image "
        "features, a decoder on the chosen gated cell writes the caption word by word "
        "with soft attention over the grid. Metrics: BLEU-1..4 (sacrebleu) and CIDEr-D."
    )
    objective = "val_loss"
    metric_names = ("test_bleu1", "test_bleu2", "test_bleu3", "test_bleu4", "test_cider")
    default_epochs = 10
    default_batch_size = 32

    def add_arguments(self, parser, command):
        _add_data_arguments(parser)
        _add_decode_arguments(parser)
        if command != "evaluate":
            _add_encoder_arguments(parser)
        else:
            parser.add_argument(
                "--seed", type=int, default=1,
                help="Seed of the data split: the --seed the model was trained with, so "
                     "that the test split is the one held out then.")
            parser.add_argument("--num-examples", type=int, default=4,
                                help="Test images whose captions are shown.")

    def load_data(self, args):
        from keras_gated.tasks.captioning.data import CaptionDataError
        from keras_gated.tasks.captioning.model import ImageEncoder
        from keras_gated.tasks.captioning.pipeline import cache_features
        from keras_gated.tasks.captioning.pipeline import prepare_data

        config = config_from_args(args)
        try:
            dataset, parts, vocabulary = prepare_data(config)
            encoder = ImageEncoder(
                config.encoder, image_size=config.image_size,
                weights=config.encoder_weights, fine_tune=config.fine_tune_encoder,
                filters=config.encoder_filters,
            )
        except CaptionDataError as error:
            raise _data_error(error) from None
        weights = None
        if encoder.cacheable:
            inputs = cache_features(encoder, parts, config)
            weights = encoder.get_weights()
        else:
            inputs = [(p.images, "images") for p in parts]
        for path, reason in dataset.skipped:
            print(f"keras-gated: skipped {path}: {reason}")
        data = CaptionData(config, dataset, tuple(parts), vocabulary, tuple(inputs), weights)
        return make_batches(data, args.batch_size, args.seed)

    def hypermodel(self, args, data):
        from keras_gated.tasks.captioning.tuning import CaptionHyperModel

        return CaptionHyperModel(data, overrides=args.hp)

    def fit_kwargs(self, args, data):
        # The batches order themselves by (seed, epoch); Keras's own shuffle
        # would draw on Python's global random state, which a resumed run lacks.
        return dict(x=data.train_batches, validation_data=data.val_batches, shuffle=False)

    def evaluate(self, model, data, args):
        from keras_gated.tasks.captioning.pipeline import describe

        _, _, test = data.parts
        (array, key) = data.inputs[2]
        _, metrics = describe(model, test, array, key, data.config)
        return {f"test_{name}": value for name, value in metrics.items()}

    def export(self, model, data, path, args):
        from keras_gated.tasks.captioning.pipeline import write_examples

        model.save(path)
        write_examples(model, data, os.path.dirname(os.path.abspath(path)))

    def evaluate_saved(self, args):
        from keras_gated.tasks.captioning.data import CaptionDataError
        from keras_gated.tasks.captioning.pipeline import evaluate_saved

        try:
            return evaluate_saved(args.model, config_from_args(args))
        except CaptionDataError as error:
            raise _data_error(error) from None

    def commands(self):
        from keras_gated.tasks.captioning.cli import add_caption_arguments
        from keras_gated.tasks.captioning.cli import run_caption

        return {
            "caption": Command(
                help="Caption image files with a saved captioning model.",
                add_arguments=add_caption_arguments,
                run=run_caption,
            )
        }


TASK = CaptioningTask()
