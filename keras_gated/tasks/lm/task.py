"""The lm task on the shared machinery: `keras-gated train|tune|evaluate lm` and `keras-gated generate`.

The runner calls `load_data` (reads the corpus, fits the vocabulary on the
training split, cuts every split's stream into `--batch-size` rows),
`hypermodel` (a `LanguageModelHyperModel` for that batch size), `fit_kwargs`
(training windows of `--bptt` steps in order, `shuffle=False`, and the
`ResetStates` callback), then `evaluate` (perplexity of the validation and
test streams, states carried across windows) and `export` (the `.keras`
model and, beside it, a `.json` file with the vocabulary and data options).
"""

import dataclasses
import json
import math
import os
import sys

from keras_gated.tasks.base import Command
from keras_gated.tasks.base import DataError
from keras_gated.tasks.base import Task
from keras_gated.tasks.base import load_saved_model
from keras_gated.tasks.lm import data as lm_data

MADE_BY = "keras-gated train|tune lm"


@dataclasses.dataclass
class LmData:
    """What `load_data` hands to the other methods."""

    corpus: object
    vocabulary: object
    split: str
    streams: dict         # "train", "valid", "test" -> int32 token ids
    train_windows: object
    valid_windows: object
    metadata: dict


def metadata_path(model_path):
    """The `.json` file beside a saved model: vocabulary, token split, data options."""
    return os.path.splitext(model_path)[0] + ".json"


def _add_data_arguments(parser, command):
    group = parser.add_argument_group("data")
    evaluating = command == "evaluate"
    group.add_argument(
        "--data", default=None if evaluating else "sample",
        help="'sample' (this project's grammar with long-range agreement), a text file (one "
             "sentence or line per line), a folder with ptb.train.txt / ptb.valid.txt / "
             "ptb.test.txt, or a tensorflow-datasets text set (tiny_shakespeare, lm1b)."
             + (" Default: the test split of the data the model was trained on; a text file "
                "is evaluated whole." if evaluating else ""),
    )
    group.add_argument("--tfds-dir", default=None, help="tensorflow-datasets data directory (prepared sets).")
    group.add_argument("--text-feature", default=None, help="Text feature of a tfds set (default: its first string feature).")
    group.add_argument("--max-lines", type=int, default=None, help="Use at most this many lines per file or split.")
    group.add_argument("--bptt", type=int, default=35, help="Steps per window of truncated backpropagation through time.")
    if evaluating:
        return
    group.add_argument("--split", choices=lm_data.SPLITS, default="word",
                       help="Tokens: whitespace-separated words (PTB's <unk> kept) or characters.")
    group.add_argument("--sample-size", type=int, default=None,
                       help="Sentences generated for --data sample (default 4000).")
    group.add_argument("--val-fraction", type=float, default=0.1,
                       help="Share of lines for validation when the data has no validation split.")
    group.add_argument("--test-fraction", type=float, default=0.1,
                       help="Share of lines held out for test when the data has no test split.")
    group.add_argument("--split-seed", type=int, default=0,
                       help="Seed of the sample grammar and of the line split (independent of --seed).")
    group.add_argument("--vocab-size", type=int, default=None,
                       help="Most tokens kept (<eos> and <unk> included); rarer ones become <unk>.")
    group.add_argument("--min-count", type=int, default=1, help="Tokens seen fewer times in training become <unk>.")
    group.add_argument("--eval-batch-size", type=int, default=None,
                       help="Rows of the validation/test streams in the final evaluation (default: --batch-size).")


class LanguageModelTask(Task):
    name = "lm"
    description = (
        "Language modelling with a stateful recurrent stack trained by truncated "
        "backpropagation through time over one continuous stream (--bptt). Perplexity on "
        "validation (the tuner's objective) and test, bits per character with --split char. "
        "--data is 'sample', a text file, a PTB folder, or a tensorflow-datasets text set."
    )
    objective = "val_perplexity"
    metric_names = ("test_perplexity",)
    default_epochs = 6
    default_batch_size = 20

    def add_arguments(self, parser, command):
        _add_data_arguments(parser, command)

    def _data_options(self, args):
        return {
            "data": args.data, "tfds_dir": args.tfds_dir, "text_feature": args.text_feature,
            "sample_size": args.sample_size, "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction, "split_seed": args.split_seed,
            "max_lines": args.max_lines,
        }

    def load_data(self, args):
        if getattr(args, "replicas", 1) > 1:
            raise DataError(
                "The lm task trains stateful layers on one device; use --strategy default "
                f"on one process (this run has {args.replicas} replicas)."
            )
        if args.batch_size < 1:
            raise DataError(f"--batch-size must be at least 1; got {args.batch_size}.")
        options = self._data_options(args)
        corpus = lm_data.load_corpus(**options)
        if args.vocab_size is not None and args.vocab_size <= len(lm_data.SPECIAL_TOKENS):
            raise DataError(
                f"--vocab-size must be above {len(lm_data.SPECIAL_TOKENS)}; got {args.vocab_size}."
            )
        vocabulary = lm_data.Vocabulary.build(
            (lm_data.tokenize(line, args.split) for line in corpus.train), args.vocab_size, args.min_count
        )
        streams = {
            name: lm_data.encode_stream(lines, vocabulary, args.split)
            for name, lines in (("train", corpus.train), ("valid", corpus.valid), ("test", corpus.test))
        }
        train_windows = _windows(streams["train"], args.batch_size, args.bptt, "training", drop_partial=True)
        valid_windows = _windows(streams["valid"], args.batch_size, args.bptt, "validation")
        self.metric_names = ("test_perplexity",) + (("test_bits_per_char",) if args.split == "char" else ())
        unknown = {name: float((stream == lm_data.UNK_ID).mean()) for name, stream in streams.items()}
        print(
            f"keras-gated: {corpus.source}: {len(streams['train'])} training, {len(streams['valid'])} "
            f"validation, {len(streams['test'])} test tokens ({args.split}); vocabulary "
            f"{len(vocabulary)}; <unk> rate {', '.join(f'{n} {r:.1%}' for n, r in unknown.items())}; "
            f"{len(train_windows)} windows of {args.batch_size}x{args.bptt} per epoch",
            flush=True,
        )
        metadata = {
            "task": "lm", "split": args.split, "vocabulary": vocabulary.tokens,
            "bptt": args.bptt, "data_options": options, "source": corpus.source,
        }
        return LmData(corpus, vocabulary, args.split, streams, train_windows, valid_windows, metadata)

    def hypermodel(self, args, data):
        import keras_tuner

        from keras_gated.tasks.lm.model import LanguageModelHyperModel

        self.objective = keras_tuner.Objective("val_perplexity", direction="min")
        return LanguageModelHyperModel(len(data.vocabulary), args.batch_size, len(data.train_windows), args.hp)

    def fit_kwargs(self, args, data):
        from keras_gated.tasks.lm.model import ResetStates

        # The windows must come in order (row r of a batch continues row r of
        # the batch before); the states are reset at each epoch's start.
        return {
            "x": data.train_windows,
            "validation_data": data.valid_windows,
            "shuffle": False,
            "callbacks": [ResetStates()],
        }

    def evaluate(self, model, data, args):
        batch_size = args.eval_batch_size or args.batch_size
        results = {}
        for name in ("valid", "test"):
            prefix = "val" if name == "valid" else "test"
            windows = _windows(data.streams[name], batch_size, args.bptt, name)
            results.update(_stream_metrics(model, windows, prefix, data.split))
        return results

    def export(self, model, data, path, args):
        model.save(path)
        with open(metadata_path(path), "w", encoding="utf-8") as handle:
            json.dump(data.metadata, handle, indent=1, ensure_ascii=False)

    def evaluate_saved(self, args):
        model, metadata = load_language_model(args.model)
        split = metadata["split"]
        vocabulary = lm_data.Vocabulary(metadata["vocabulary"])
        if args.data is None:
            options = dict(metadata["data_options"])
            lines = lm_data.load_corpus(**options).test
            description = f"{options['data']} (test split)"
        elif os.path.isfile(args.data):
            lines = lm_data.read_lines(args.data)[: args.max_lines]
            description = args.data
        else:
            options = dict(metadata["data_options"], data=args.data, tfds_dir=args.tfds_dir,
                           text_feature=args.text_feature, max_lines=args.max_lines)
            lines = lm_data.load_corpus(**options).test
            description = f"{args.data} (test split)"
        stream = lm_data.encode_stream(lines, vocabulary, split)
        windows = _windows(stream, args.batch_size, args.bptt, "test")
        return {
            "model": args.model, "data": description, "tokens": windows.tokens,
            "unk_rate": float((stream == lm_data.UNK_ID).mean()),
            **_stream_metrics(model, windows, "test", split),
        }

    def monitor_sample(self, data):
        # One window of the validation stream: the model's own batch size.
        return data.valid_windows[0]

    def commands(self):
        return {
            "generate": Command(
                help="Continue a prompt with a saved language model (temperature, top-k sampling).",
                add_arguments=add_generate_arguments,
                run=run_generate,
            )
        }


def _windows(stream, batch_size, bptt, split, drop_partial=False):
    try:
        return lm_data.StreamWindows(stream, batch_size, bptt, drop_partial=drop_partial)
    except DataError as error:
        raise DataError(f"The {split} split: {error}") from None


def _stream_metrics(model, windows, prefix, split):
    from keras_gated.tasks.lm.model import evaluate_stream

    result = evaluate_stream(model, windows)
    metrics = {f"{prefix}_perplexity": result["perplexity"]}
    if split == "char":
        metrics[f"{prefix}_bits_per_char"] = result["cross_entropy"] / math.log(2.0)
    return metrics


def load_language_model(path):
    """`(model, metadata)` of a model saved by `keras-gated train|tune lm`.

    Raises:
        SavedModelError: not a loadable `.keras` model.
        DataError: the `.json` file beside it (vocabulary) is missing or not JSON.
    """
    import importlib

    import keras

    # Registers Perplexity and EpochDecay, which the saved compile config names.
    importlib.import_module("keras_gated.tasks.lm.model")
    model = load_saved_model(path, keras.Model, made_by=MADE_BY)
    meta_path = metadata_path(path)
    try:
        with open(meta_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except FileNotFoundError:
        raise DataError(
            f"{meta_path}: missing; it holds the vocabulary of {path} and is saved beside it by "
            f"`{MADE_BY}`. Copy it along with the model."
        ) from None
    except json.JSONDecodeError as error:
        raise DataError(f"{meta_path}: not JSON ({error}).") from None
    if metadata.get("task") != "lm" or "vocabulary" not in metadata:
        raise DataError(f"{meta_path}: not the metadata of a language model saved by `{MADE_BY}`.")
    return model, metadata


def add_generate_arguments(parser):
    parser.add_argument("--model", required=True, help="A .keras model saved by `keras-gated train|tune lm`.")
    parser.add_argument("--prompt", default="", help="Text to continue (words unknown to the model are read as <unk>).")
    parser.add_argument("--length", type=int, default=None, help="Tokens to generate (default: 30 words or 200 characters).")
    parser.add_argument("--temperature", type=float, default=1.0, help="Sampling temperature; 0 is greedy.")
    parser.add_argument("--top-k", type=int, default=0, help="Sample among the k most likely tokens (0: all; 1: greedy).")
    parser.add_argument("--count", type=int, default=1, help="Number of continuations to print.")
    parser.add_argument("--seed", type=int, default=None, help="Random seed of the sampler.")
    parser.add_argument("--stop-at-eos", action="store_true", help="End a continuation at the end of its line.")


def run_generate(args):
    """`keras-gated generate`: prints the prompt and its continuation(s)."""
    from keras_gated.tasks.lm.model import generate_ids

    if args.count < 1:
        raise DataError(f"--count must be at least 1; got {args.count}.")
    model, metadata = load_language_model(args.model)
    split = metadata["split"]
    vocabulary = lm_data.Vocabulary(metadata["vocabulary"])
    prompt_tokens = lm_data.tokenize(args.prompt, split)
    unknown = sorted({t for t in prompt_tokens if t not in vocabulary.index})
    if unknown:
        print(f"keras-gated: not in the model's vocabulary, read as <unk>: {' '.join(unknown)}",
              file=sys.stderr)
    length = args.length if args.length is not None else (200 if split == "char" else 30)
    for number in range(args.count):
        seed = None if args.seed is None else args.seed + number
        ids = generate_ids(
            model, vocabulary.encode(prompt_tokens), length, args.temperature, args.top_k, seed,
            stop_id=lm_data.EOS_ID if args.stop_at_eos else None,
        )
        tokens = prompt_tokens + vocabulary.decode(ids)
        print(lm_data.detokenize(tokens, split).rstrip("\n"), flush=True)
    return 0


TASK = LanguageModelTask()
