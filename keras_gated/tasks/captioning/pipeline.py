"""Training, evaluation and captioning of files: the Python API.

    from keras_gated.tasks import captioning as cap

    config = cap.CaptionConfig(data="sample", cell="coupled", epochs=10)
    result = cap.train(config)            # trains, evaluates, saves
    print(result["test"])                 # {"bleu1": ..., "bleu4": ..., "cider": ...}
    model = cap.load_model("runs/captioning/model.keras")
    model.caption(cap.read_images(["photo.jpg"], model.image_size))
"""

import dataclasses
import os

import keras
import numpy as np

from keras_gated.tasks.batches import BatchOrder
from keras_gated.tasks.batches import EpochBatches
from keras_gated.tasks.batches import EpochSeeding
from keras_gated.tasks.captioning import evaluation
from keras_gated.tasks.captioning.data import CaptionDataError
from keras_gated.tasks.captioning.data import Vocabulary
from keras_gated.tasks.captioning.data import caption_pairs
from keras_gated.tasks.captioning.data import load_dataset
from keras_gated.tasks.captioning.data import read_images as read_image_files
from keras_gated.tasks.captioning.data import tokenize
from keras_gated.tasks.captioning.features import cached_features
from keras_gated.tasks.captioning.model import ImageCaptioner
from keras_gated.tasks.captioning.model import caption_loss


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
    visits the captions in the order `epoch_permutation(seed, k, count)`
    (`keras_gated.tasks.batches`): give `fit` `shuffle=False` and an
    `EpochSeeding(batches)` callback, which tells the batches the epoch.
    """

    def __init__(self, inputs, key, pairs, batch_size, shuffle=True, seed=0,
                 steps=None, **kwargs):
        self.inputs, self.key = inputs, key
        self.image_index, self.tokens = pairs
        order = BatchOrder(len(self.tokens), batch_size, seed if shuffle else None, steps=steps)
        super().__init__(order, **kwargs)

    def batch_of(self, rows):
        tokens = self.tokens[rows]
        x = {self.key: self.inputs[self.image_index[rows]], "tokens": tokens[:, :-1]}
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
                  jit_compile=False):
    model.compile(
        optimizer=optimizer
        or keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
        loss=caption_loss(),
        # XLA compiles the unrolled decoder loop far slower than it runs it
        # on small captioning models; plain graphs start in seconds.
        jit_compile=jit_compile,
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
        raise CaptionDataError("No readable image among: " + ", ".join(map(str, paths)))
    return np.stack(images), [paths[n] for n in kept]


def caption_files(model, paths, skip_bad=False, **options):
    """Captions for image files: list of (path, caption)."""
    images, kept = read_images(paths, model.image_size, skip_bad=skip_bad)
    return list(zip(kept, model.caption(images=images, **options)))
