"""The captioning task on the shared machinery: `keras-gated train|tune|evaluate captioning`
and `keras-gated caption`.

The runner (`keras_gated.tasks.runner`) calls, in order: `load_data` (reads
and splits the data, fits the vocabulary on the training split, computes
and caches the features of a frozen backbone), `hypermodel` (a
`CaptionHyperModel`: the decoder cell and sizes are hyperparameters),
`fit_kwargs`, then `evaluate` (BLEU-1..4 and CIDEr-D on the test split) and
`export` (the `.keras` model, `captioning_metrics.json`, and the attention
pictures of a few validation images, also logged to TensorBoard).

It also holds the Python API the task runs on (`CaptionConfig`, `train`,
`load_model`, `caption_files`, ...; formerly `captioning.pipeline`) and the
`keras-gated caption` command (formerly `captioning.cli`):

    from keras_gated.tasks import captioning as cap

    config = cap.CaptionConfig(data="sample", cell="coupled", epochs=10)
    result = cap.train(config)            # trains, evaluates, saves
    print(result["test"])                 # {"bleu1": ..., "bleu4": ..., "cider": ...}
    model = cap.load_model("runs/captioning/model.keras")
    model.caption(cap.read_images(["photo.jpg"], model.image_size))

    keras-gated caption --model runs/captioning/best_model.keras photo1.jpg photos/
    keras-gated caption --model M.keras --decode beam --beam-width 5 --attention maps/ *.png
"""

import dataclasses
import json
import os
import sys

import keras
import numpy as np

from keras_gated.tasks.base import Command
from keras_gated.tasks.base import Task
from keras_gated.tasks.batches import BatchNames
from keras_gated.tasks.batches import BUCKET_WINDOW
from keras_gated.tasks.batches import BucketedBatchOrder
from keras_gated.tasks.batches import EpochBatches
from keras_gated.tasks.batches import EpochSeeding
from keras_gated.tasks.batches import cut_or_pad
from keras_gated.tasks.batches import padded_length
from keras_gated.tasks.batches import sequence_lengths
from keras_gated.tasks.batches import widens_first_batch
from keras_gated.tasks.batches import widest_first
from keras_gated.tasks.captioning import evaluation
from keras_gated.tasks.captioning.data import IMAGE_EXTENSIONS
from keras_gated.tasks.captioning.data import Vocabulary
from keras_gated.tasks.captioning.data import caption_pair_names
from keras_gated.tasks.captioning.data import caption_pairs
from keras_gated.tasks.captioning.data import load_dataset
from keras_gated.tasks.captioning.data import read_images as read_image_files
from keras_gated.tasks.captioning.data import tokenize
from keras_gated.tasks.captioning.features import cached_features
from keras_gated.tasks.captioning.model import CaptionHyperModel
from keras_gated.tasks.captioning.model import ImageCaptioner
from keras_gated.tasks.captioning.model import ImageEncoder
from keras_gated.tasks.captioning.model import caption_loss
from keras_gated.tasks.common import DataError
from keras_gated.tasks.common.progress import keras_verbosity
from keras_gated.tuning.hypermodel import graph_without_xla


DECODE_CHOICES = ("greedy", "beam")


@dataclasses.dataclass
class CaptionConfig:
    """Everything one captioning run depends on (the CLI's options)."""

    data: str = "sample"
    images_dir: str = None
    skip_bad: bool = False
    sample_size: int = 1200
    limit: int = None
    image_size: int = 48
    encoder: str = "small_cnn"
    encoder_weights: str = "none"
    fine_tune_encoder: bool = False
    encoder_filters: int = 64
    cache_dir: str = None
    cell: str = "lstm"
    units: int = 128
    embedding_dim: int = 64
    attention_units: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    vocabulary_size: int = 5000
    max_length: int = 20
    batch_size: int = 32
    epochs: int = 10
    steps_per_epoch: int = None
    learning_rate: float = 2e-3
    clipnorm: float = 5.0
    validation_split: float = 0.1
    test_split: float = 0.1
    seed: int = 0
    decode: str = "greedy"
    beam_width: int = 3
    length_penalty: float = 0.0
    output_dir: str = "runs/captioning"
    log_dir: str = None
    num_examples: int = 4
    verbose: int = 1


class CaptionBatches(EpochBatches):
    """Batches of (image or features, caption prefix) -> next words.

    Each reference caption is one example; images are looked up by index,
    so an image with five captions is stored once. With `shuffle`, epoch `k`
    visits the captions in the length-bucketed order of
    `keras_gated.tasks.batches.BucketedBatchOrder(seed, k)` (`window`
    batches per sorting window; 0: `epoch_permutation(seed, k, count)`):
    give `fit` `shuffle=False` and an `EpochSeeding(batches)` callback,
    which tells the batches the epoch. Each batch's captions are cut to its
    longest one (rounded up to a multiple of `LENGTH_MULTIPLE`): the
    decoder is causal and the loss ignores `<pad>`, so the cut changes
    only the time a step takes.
    """

    def __init__(self, inputs, key, pairs, batch_size, shuffle=True, seed=0,
                 steps=None, window=BUCKET_WINDOW, **kwargs):
        self.inputs, self.key = inputs, key
        self.image_index, self.tokens = pairs
        self.lengths = sequence_lengths(self.tokens) if len(self.tokens) else np.zeros(0, "int64")
        order = BucketedBatchOrder(self.lengths, batch_size, seed if shuffle else None,
                                   steps=steps, window=window)
        super().__init__(order, **kwargs)

    def __getitem__(self, batch):
        return self.batch_of(self.rows(batch), first=batch == 0)

    def target_steps(self, rows, first=False):
        """The width of the batch of `rows`: its inputs `<start> w1 .. wn`
        and targets `w1 .. wn <end>` are one step shorter than its longest
        `<start> .. <end>`. The first batch of an epoch is wider than any
        (see `widest_first`)."""
        steps = self.tokens.shape[1] - 1
        if self.batch_order.window and first and widens_first_batch():
            return widest_first(self.lengths - 1, steps)
        if self.batch_order.window and len(rows):
            return padded_length(self.lengths[rows].max() - 1, steps)
        return steps

    def batch_token_counts(self, rows, first=False):
        """`[(real, padded)]` of the targets of the batch of `rows` (as
        `BucketedArrayBatches.batch_token_counts`)."""
        steps = self.target_steps(rows, first)
        return [(int(np.minimum(self.lengths[rows] - 1, steps).sum()), steps * len(rows))]

    def batch_of(self, rows, first=False):
        steps = self.target_steps(rows, first)
        tokens = cut_or_pad(self.tokens[rows], steps + 1)
        x = {self.key: self.inputs[self.image_index[rows]], "tokens": tokens[:, :steps]}
        return x, tokens[:, 1:]


def build_model(config, vocabulary):
    return ImageCaptioner(
        vocabulary,
        image_size=config.image_size,
        encoder=config.encoder,
        encoder_weights=config.encoder_weights,
        fine_tune_encoder=config.fine_tune_encoder,
        encoder_filters=config.encoder_filters,
        cell=config.cell,
        units=config.units,
        embedding_dim=config.embedding_dim,
        attention_units=config.attention_units,
        num_layers=config.num_layers,
        dropout=config.dropout,
        max_length=config.max_length,
    )


def compile_model(model, learning_rate=2e-3, clipnorm=5.0, optimizer=None,
                  jit_compile=None):
    model.compile(
        optimizer=optimizer
        or keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
        loss=caption_loss(),
        jit_compile=graph_without_xla() if jit_compile is None else jit_compile,
    )
    return model


def prepare_data(config):
    """Loads and splits the data and fits the vocabulary on the train split."""
    dataset = load_dataset(
        config.data, config.image_size, images_dir=config.images_dir,
        skip_bad=config.skip_bad, sample_size=config.sample_size,
        seed=config.seed, limit=config.limit,
    )
    train, val, test = dataset.split(config.validation_split, config.test_split, config.seed)
    train_captions = [c for refs in train.captions for c in refs]
    vocabulary = Vocabulary.fit(train_captions, max_size=config.vocabulary_size)
    # Padding every caption to --max-length costs decoder steps for nothing
    # when the captions are shorter.
    longest = max(len(tokenize(c)) for c in train_captions)
    config.max_length = min(int(config.max_length), longest)
    return dataset, (train, val, test), vocabulary


def cache_features(encoder, parts, config):
    """Per split, `(features, "features")` from the cache of a frozen backbone."""
    cache_dir = config.cache_dir or os.path.join(config.output_dir, "feature_cache")
    out = []
    for part in parts:
        features, path, hit = cached_features(
            encoder, part, cache_dir, weights_source=config.encoder_weights
        )
        if config.verbose:
            print(f"Features {'read from' if hit else 'cached in'} {path}")
        out.append((features, "features"))
    return out


def model_inputs(model, parts, config):
    """Per split, (array, key): cached features for a frozen backbone, else images."""
    if not model.encoder.cacheable:
        return [(p.images, "images") for p in parts]
    return cache_features(model.encoder, parts, config)


def describe(model, part, inputs, key, config, count=None):
    """Captions of a split's images; returns (hypotheses, metrics)."""
    arrays = inputs if count is None else inputs[:count]
    options = dict(method=config.decode, beam_width=config.beam_width,
                   length_penalty=config.length_penalty)
    if key == "features":
        hypotheses = model.caption(features=arrays, **options)
    else:
        hypotheses = model.caption(images=arrays, **options)
    references = part.captions[: len(hypotheses)]
    return hypotheses, evaluation.caption_metrics(hypotheses, references)


def attention_examples(model, images, inputs, key, hypotheses, references, out_dir,
                       log_dir=None):
    """PNG (and TensorBoard image) of each word's attention for a few images."""
    os.makedirs(out_dir, exist_ok=True)
    pictures, paths = [], []
    for n, caption in enumerate(hypotheses):
        ids = model.vocabulary.encode(caption, model.max_length)
        words = caption.split()
        prefix = np.asarray([ids[: len(words) + 1]], np.int32)
        _, attention = model.attend({key: inputs[n : n + 1], "tokens": prefix})
        attention = keras.ops.convert_to_numpy(attention)[0]
        # Row t is the attention while writing word t (the prefix ends with it).
        picture = evaluation.attention_figure(
            images[n], words, attention[: len(words)], model.encoder.grid_shape,
            references=references[n],
        )
        path = os.path.join(out_dir, f"attention_{n:02d}.png")
        from PIL import Image

        Image.fromarray(picture).save(path)
        paths.append(path)
        pictures.append((f"attention_{n:02d}", picture))
    if log_dir:
        evaluation.log_images_to_tensorboard(log_dir, pictures)
    return paths


def fit(model, config, train_inputs, train_pairs, val_inputs=None, val_pairs=None,
        callbacks=()):
    (train_array, key) = train_inputs
    batches = CaptionBatches(train_array, key, train_pairs, config.batch_size,
                             seed=config.seed, steps=config.steps_per_epoch)
    validation = None
    if val_inputs is not None and len(val_pairs[1]):
        validation = CaptionBatches(val_inputs[0], val_inputs[1], val_pairs,
                                    config.batch_size, shuffle=False)
    # The batches order themselves by (seed, epoch); Keras's own shuffle
    # would draw on Python's global random state.
    return model.fit(batches, validation_data=validation, epochs=config.epochs,
                     callbacks=[EpochSeeding(batches), *callbacks], verbose=config.verbose,
                     shuffle=False)


def train(config, callbacks=()):
    """Trains on `config.data`, evaluates on the test split, saves the model.

    Writes to `config.output_dir`: `model.keras`, `metrics.json` (BLEU-1..4
    and CIDEr-D on validation and test, skipped items), and
    `attention/attention_NN.png` for `num_examples` validation images (also
    logged to TensorBoard under `log_dir`).

    Returns a dict with the model, the history and the metrics.
    """
    keras.utils.set_random_seed(config.seed)
    dataset, (train_part, val_part, test_part), vocabulary = prepare_data(config)
    model = build_model(config, vocabulary)
    compile_model(model, config.learning_rate, config.clipnorm)
    (train_in, val_in, test_in) = model_inputs(model, (train_part, val_part, test_part), config)
    train_pairs = caption_pairs(train_part, vocabulary, config.max_length)
    val_pairs = caption_pairs(val_part, vocabulary, config.max_length)
    log_dir = config.log_dir or os.path.join(config.output_dir, "logs")
    all_callbacks = list(callbacks)
    if log_dir:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir))
    history = fit(model, config, train_in, train_pairs, val_in, val_pairs, all_callbacks)
    result = finish(model, config, val_part, val_in, test_part, test_in, log_dir)
    result.update(model=model, history=history.history,
                  skipped=[list(s) for s in dataset.skipped])
    evaluation.write_json(os.path.join(config.output_dir, "metrics.json"),
                          {k: v for k, v in result.items() if k not in ("model", "history")})
    return result


def finish(model, config, val_part, val_in, test_part, test_in, log_dir):
    """Evaluates, writes the attention pictures, saves; prints a summary."""
    os.makedirs(config.output_dir, exist_ok=True)
    val_hyp, val_metrics = describe(model, val_part, *val_in, config)
    test_hyp, test_metrics = describe(model, test_part, *test_in, config)
    count = min(config.num_examples, len(val_part))
    pictures = attention_examples(
        model, val_part.images, val_in[0], val_in[1], val_hyp[:count],
        val_part.captions[:count], os.path.join(config.output_dir, "attention"),
        log_dir=log_dir,
    ) if count else []
    model_path = os.path.join(config.output_dir, "model.keras")
    model.save(model_path)
    examples = [{"generated": h, "references": r}
                for h, r in zip(val_hyp[:count], val_part.captions[:count])]
    if config.verbose:
        for split, metrics in (("validation", val_metrics), ("test", test_metrics)):
            print(f"{split}: " + "  ".join(f"{k}={v:.2f}" for k, v in metrics.items()))
        for e in examples:
            print(f"  generated: {e['generated']}\n  reference: {e['references'][0]}")
        print(f"Saved {model_path}")
    return {"validation": val_metrics, "test": test_metrics, "examples": examples,
            "attention_pngs": pictures, "model_path": model_path,
            "config": dataclasses.asdict(config)}


def write_examples(model, data, out_dir, log_dir=None):
    """Captions, references and attention PNGs of a few validation images.

    Writes `out_dir/attention/attention_NN.png`, logs them to TensorBoard
    under `out_dir/logs/attention` and writes `out_dir/captioning_examples.json`
    (generated caption, references and validation BLEU/CIDEr).
    """
    config = data.config
    _, val, _ = data.parts
    (array, key) = data.inputs[1]
    count = min(config.num_examples, len(val))
    hypotheses, metrics = describe(model, val, array, key, config)
    paths = attention_examples(
        model, val.images, array, key, hypotheses[:count], val.captions[:count],
        os.path.join(out_dir, "attention"),
        log_dir=log_dir or os.path.join(out_dir, "logs"),
    ) if count else []
    examples = [{"generated": h, "references": r, "attention_png": p}
                for h, r, p in zip(hypotheses, val.captions, paths)]
    evaluation.write_json(os.path.join(out_dir, "captioning_examples.json"),
                          {"validation": metrics, "examples": examples})
    return examples


def evaluate_saved(model_path, config):
    """BLEU/CIDEr of a saved model on the test split of `config.data`.

    The split is the one `train` made with the same data, seed and split
    fractions; the model's own vocabulary and image size are used.
    """
    model = load_model(model_path)
    config.image_size = model.image_size
    dataset = load_dataset(
        config.data, config.image_size, images_dir=config.images_dir,
        skip_bad=config.skip_bad, sample_size=config.sample_size,
        seed=config.seed, limit=config.limit,
    )
    _, _, test = dataset.split(config.validation_split, config.test_split, config.seed)
    hypotheses, metrics = describe(model, test, test.images, "images", config)
    return {
        "model": model_path,
        "data": config.data,
        "test_images": len(test),
        **{f"test_{k}": v for k, v in metrics.items()},
        "examples": [{"generated": h, "references": r}
                     for h, r in zip(hypotheses[: config.num_examples], test.captions)],
    }


def load_model(path):
    """A saved `ImageCaptioner` (`.keras`)."""
    from keras_gated.tasks.base import load_saved_model

    return load_saved_model(path, ImageCaptioner, made_by="keras-gated train|tune captioning")


def read_images(paths, image_size, skip_bad=False):
    """Reads image files for captioning; returns (images, kept_paths)."""
    paths = list(paths)
    images, kept = read_image_files(paths, image_size, skip_bad)
    if not images:
        raise DataError("No readable image among: " + ", ".join(map(str, paths)))
    return np.stack(images), [paths[n] for n in kept]


def caption_files(model, paths, skip_bad=False, **options):
    """Captions for image files: list of (path, caption)."""
    images, kept = read_images(paths, model.image_size, skip_bad=skip_bad)
    return list(zip(kept, model.caption(images=images, **options)))


def add_caption_arguments(parser):
    parser.add_argument("images", nargs="+",
                        help="Image files, or folders whose images are all captioned.")
    parser.add_argument("--model", required=True,
                        help="A model saved by `keras-gated train|tune captioning` "
                             "(best_model.keras).")
    parser.add_argument("--decode", choices=DECODE_CHOICES, default="greedy",
                        help="Greedy or beam search.")
    parser.add_argument("--beam-width", type=int, default=3, help="Beam width of --decode beam.")
    parser.add_argument("--length-penalty", type=float, default=0.0,
                        help="GNMT length penalty alpha of --decode beam (0 = none).")
    parser.add_argument("--max-length", type=int, default=None,
                        help="Most words per caption (default: the model's).")
    parser.add_argument("--skip-bad", action="store_true",
                        help="Skip unreadable or missing images with a warning instead of "
                             "stopping.")
    parser.add_argument("--attention", default=None, metavar="DIR",
                        help="Also save each image's per-word attention maps as PNG here.")
    parser.add_argument("--output", default=None,
                        help="Also write the captions as JSON to this file.")


def expand_image_paths(items):
    """Files as given; folders replaced by their image files, sorted."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            paths += sorted(
                os.path.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
        else:
            paths.append(item)
    return paths


def run_caption(args):
    if not os.path.isfile(args.model):
        raise ValueError(f"--model {args.model}: no such file.")
    model = load_model(args.model)
    images, kept = read_images(expand_image_paths(args.images), model.image_size,
                               skip_bad=args.skip_bad)
    captions = model.caption(images=images, method=args.decode, beam_width=args.beam_width,
                             length_penalty=args.length_penalty, max_length=args.max_length)
    for path, caption in zip(kept, captions):
        print(f"{path}\t{caption}")
    records = [{"image": p, "caption": c} for p, c in zip(kept, captions)]
    if args.attention:
        pngs = attention_examples(model, images, images, "images", captions,
                                  [[] for _ in captions], args.attention)
        for record, png in zip(records, pngs):
            record["attention_png"] = png
    skipped = len(expand_image_paths(args.images)) - len(kept)
    if skipped:
        print(f"keras-gated: skipped {skipped} unreadable image(s)", file=sys.stderr)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(records, handle, indent=2)
    return 0


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


def make_batches(data, batch_size, seed, window=BUCKET_WINDOW):
    """Sets the training and validation `CaptionBatches` (length-bucketed) and `describe_batch`."""

    config = data.config
    train, val, _ = data.parts
    (train_x, key), (val_x, _), _ = data.inputs
    pairs = caption_pairs(train, data.vocabulary, config.max_length)
    val_pairs = caption_pairs(val, data.vocabulary, config.max_length)
    data.train_batches = CaptionBatches(train_x, key, pairs, batch_size, seed=seed, window=window)
    data.val_batches = CaptionBatches(val_x, key, val_pairs, batch_size, shuffle=False,
                                      window=window)
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
    config = CaptionConfig()
    for field in dataclasses.fields(CaptionConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            setattr(config, field.name, value)
    config.images_dir = getattr(args, "images", None)
    config.output_dir = getattr(args, "output", None) or "runs/captioning"
    config.verbose = keras_verbosity(getattr(args, "verbose", "auto"))
    return config


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
        config = config_from_args(args)
        dataset, parts, vocabulary = prepare_data(config)
        encoder = ImageEncoder(
            config.encoder, image_size=config.image_size,
            weights=config.encoder_weights, fine_tune=config.fine_tune_encoder,
            filters=config.encoder_filters,
        )
        weights = None
        if encoder.cacheable:
            inputs = cache_features(encoder, parts, config)
            weights = encoder.get_weights()
        else:
            inputs = [(p.images, "images") for p in parts]
        for path, reason in dataset.skipped:
            print(f"keras-gated: skipped {path}: {reason}")
        data = CaptionData(config, dataset, tuple(parts), vocabulary, tuple(inputs), weights)
        return make_batches(data, args.batch_size, args.seed, args.bucket_window)

    def hypermodel(self, args, data):
        return CaptionHyperModel(data, overrides=args.hp)

    def fit_kwargs(self, args, data):
        # The batches order themselves by (seed, epoch); Keras's own shuffle
        # would draw on Python's global random state, which a resumed run lacks.
        return dict(x=data.train_batches, validation_data=data.val_batches, shuffle=False)

    def evaluate(self, model, data, args):
        _, _, test = data.parts
        (array, key) = data.inputs[2]
        _, metrics = describe(model, test, array, key, data.config)
        return {f"test_{name}": value for name, value in metrics.items()}

    def export(self, model, data, path, args):
        model.save(path)
        write_examples(model, data, os.path.dirname(os.path.abspath(path)))

    def evaluate_saved(self, args):
        return evaluate_saved(args.model, config_from_args(args))

    def commands(self):
        return {
            "caption": Command(
                help="Caption image files with a saved captioning model.",
                add_arguments=add_caption_arguments,
                run=run_caption,
            )
        }


TASK = CaptioningTask()
