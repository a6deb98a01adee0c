"""The translation task on the command line: `keras-gated train|tune|evaluate translation`
and `keras-gated translate`."""

import os
import sys

from keras_gated.tasks.base import Command
from keras_gated.tasks.base import Task
from keras_gated.tasks.common import DataError
from keras_gated.tasks.translation.data import load_pairs
from keras_gated.tasks.translation.data import make_train_batches
from keras_gated.tasks.translation.data import padding_report
from keras_gated.tasks.translation.data import prepare_data
from keras_gated.tasks.translation.data import split_pairs
from keras_gated.tasks.translation.model import TranslationHyperModel
from keras_gated.tasks.translation.model import Translator
from keras_gated.tasks.translation.model import evaluate_translator


def _add_data_arguments(parser, evaluating=False):
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        default=None if evaluating else "sample",
        help=(
            "'sample' (embedded English/Kelvan travel phrases), a file of "
            "source<TAB>target lines (extra columns ignored), or a "
            "tensorflow-datasets translation set (e.g. ted_hrlr_translate/pt_to_en)."
            + (" Default: the test split of the data the model was trained on"
               " (sample only); a file is evaluated whole." if evaluating else "")
        ),
    )
    group.add_argument(
        "--source-column", default=None,
        help="Source column: an index from 0 for a file (default 0), a language "
             "code for tfds (default: its supervised keys). Swap the columns to "
             "translate the other way.",
    )
    group.add_argument(
        "--target-column", default=None,
        help="Target column: index for a file (default 1), language code for tfds.",
    )
    group.add_argument("--tfds-dir", default=None, help="tensorflow-datasets data directory.")
    group.add_argument("--max-pairs", type=int, default=None, help="Use at most this many pairs.")
    if evaluating:
        return
    group.add_argument(
        "--sample-size", type=int, default=None,
        help="Pairs generated for --data sample (default 6000).",
    )
    group.add_argument(
        "--source-split", choices=("word", "char"), default="word",
        help="Source tokens: words and punctuation, or characters (Chinese, Japanese).",
    )
    group.add_argument(
        "--target-split", choices=("word", "char"), default="word",
        help="Target tokens: words and punctuation, or characters.",
    )
    group.add_argument("--lowercase", action="store_true", help="Lowercase both sides.")
    group.add_argument(
        "--source-vocab-size", type=int, default=8000,
        help="Source vocabulary size (4 special tokens included); rarer tokens are unknown.",
    )
    group.add_argument(
        "--target-vocab-size", type=int, default=8000, help="Target vocabulary size."
    )
    group.add_argument(
        "--max-length", type=int, default=64,
        help="Training pairs with a side longer than this many tokens are dropped.",
    )
    group.add_argument("--val-fraction", type=float, default=0.1, help="Validation share.")
    group.add_argument("--test-fraction", type=float, default=0.1, help="Held-out test share.")


def _add_decoding_arguments(parser):
    group = parser.add_argument_group("decoding")
    group.add_argument(
        "--beam-width", type=int, default=4, help="Beam width (1 = greedy search)."
    )
    group.add_argument(
        "--length-penalty", type=float, default=0.6,
        help="GNMT length-penalty alpha: score = log P / ((5 + length) / 6) ** alpha; 0 = none.",
    )
    group.add_argument(
        "--examples", type=int, default=5, help="Example translations to print."
    )


class TranslationTask(Task):
    name = "translation"
    description = (
        "Sentence-pair translation with an attention encoder-decoder on the chosen "
        "gated cell; greedy/beam-search decoding; BLEU and chrF (sacrebleu) on a "
        "held-out test split."
    )
    objective = "val_loss"
    metric_names = ("test_bleu", "test_chrf")
    default_epochs = 15
    # 32, not 64: on the short-sentence corpus of benchmarks/time_to_quality.py a
    # bucketed step of 32 pairs takes about as long as one of 64, and twice the
    # updates per epoch reach a validation BLEU of 50 in about 0.6x the time
    # (docs/benchmarks.md, "Time to quality").
    default_batch_size = 32

    def add_arguments(self, parser, command):
        _add_data_arguments(parser, evaluating=command == "evaluate")
        _add_decoding_arguments(parser)
        if command != "evaluate":
            parser.add_argument(
                "--objective", choices=("val_loss", "val_bleu"), default="val_loss",
                help="Tuner objective: validation loss, or validation BLEU "
                     "(greedy decoding of --bleu-sentences sentences every epoch).",
            )
            parser.add_argument(
                "--bleu-sentences", type=int, default=500,
                help="Validation sentences decoded for val_bleu.",
            )

    def load_data(self, args):
        pairs, description = load_pairs(
            args.data, args.source_column, args.target_column, args.tfds_dir,
            args.max_pairs, args.sample_size,
        )
        data = prepare_data(
            pairs, description, args.source_split, args.target_split, args.lowercase,
            args.source_vocab_size, args.target_vocab_size, args.max_length,
            args.val_fraction, args.test_fraction, args.seed,
        )
        data.metadata["data_options"] = {
            "data": args.data, "source_column": args.source_column,
            "target_column": args.target_column, "sample_size": args.sample_size,
            "max_pairs": args.max_pairs, "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction, "seed": args.seed,
        }
        make_train_batches(data, args.batch_size, args.seed, args.bucket_window)
        splits = data.splits
        print(
            f"keras-gated: {description}: {len(splits.train)} train, {len(splits.val)} "
            f"validation, {len(splits.test)} test pairs; vocabularies "
            f"{len(data.source.vocabulary)} / {len(data.target.vocabulary)}",
            flush=True,
        )
        print(f"keras-gated: {padding_report(data, args.max_length)}", flush=True)
        return data

    def hypermodel(self, args, data):
        if args.objective == "val_bleu":
            import keras_tuner

            self.objective = keras_tuner.Objective("val_bleu", direction="max")
            bleu_data = (
                data.splits.val_sources[: args.bleu_sentences],
                data.splits.val_references[: args.bleu_sentences],
            )
        else:
            self.objective = "val_loss"
            bleu_data = None
        return TranslationHyperModel(
            len(data.source.vocabulary), len(data.target.vocabulary), data.metadata,
            args.hp, bleu_data,
        )

    def fit_kwargs(self, args, data):
        # The batches order themselves by (seed, epoch); Keras's own shuffle
        # would draw on Python's global random state, which a resumed run lacks.
        return {
            "x": data.train_batches,
            "validation_data": data.val_batches,
            "shuffle": False,
        }

    def evaluate(self, model, data, args):
        result = evaluate_translator(
            Translator(model), data.splits.test_sources, data.splits.test_references,
            args.beam_width, args.length_penalty, args.examples, args.batch_size,
        )
        _print_examples(result["examples"])
        return {"test_bleu": result["bleu"], "test_chrf": result["chrf"]}

    def export(self, model, data, path, args):
        model.save(path)

    def evaluate_saved(self, args):
        translator = Translator.load(args.model)
        if args.data is None:
            options = translator.model.metadata.get("data_options") or {}
            if options.get("data") != "sample":
                raise DataError(
                    "Give --data: the model was not trained on the embedded sample, "
                    "so its test split cannot be rebuilt here."
                )
            pairs, description = load_pairs(
                "sample", options["source_column"], options["target_column"],
                max_pairs=options.get("max_pairs"), sample_size=options.get("sample_size"),
            )
            splits = split_pairs(
                pairs, options["val_fraction"], options["test_fraction"], options["seed"],
            )
            sources, references = splits.test_sources, splits.test_references
            description += " (test split)"
        else:
            pairs, description = load_pairs(
                args.data, args.source_column, args.target_column, args.tfds_dir,
                args.max_pairs,
            )
            groups = {}
            for source, target in pairs:
                groups.setdefault(source, []).append(target)
            sources, references = list(groups), list(groups.values())
        result = evaluate_translator(
            translator, sources, references, args.beam_width, args.length_penalty,
            args.examples, args.batch_size,
        )
        _print_examples(result["examples"])
        return {"model": args.model, "data": description, **result}

    def monitor_sample(self, data):
        (source, decoder_inputs), decoder_targets = data.val_arrays
        return (source[:32], decoder_inputs[:32]), decoder_targets[:32]

    def commands(self):
        return {
            "translate": Command(
                help="Translate sentences (a file, or standard input) with a saved model.",
                add_arguments=add_translate_arguments,
                run=run_translate,
            )
        }


def _print_examples(examples):
    for example in examples:
        print(f"  source:      {example['source']}")
        print(f"  reference:   {' | '.join(example['references'])}")
        print(f"  translation: {example['translation']}\n")


def add_translate_arguments(parser):
    parser.add_argument("--model", required=True, help="A .keras model saved by train or tune.")
    parser.add_argument(
        "--input", default="-",
        help="File with one source sentence per line; '-' reads standard input.",
    )
    parser.add_argument(
        "--output", default="-", help="Where to write the translations; '-' is standard output."
    )
    parser.add_argument("--beam-width", type=int, default=4, help="Beam width (1 = greedy).")
    parser.add_argument(
        "--length-penalty", type=float, default=0.6, help="GNMT length-penalty alpha (0 = none)."
    )
    parser.add_argument(
        "--max-length", type=int, default=None,
        help="Most target tokens (default: the model's training limit + 10).",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="Sentences decoded together.")


def run_translate(args):
    """`keras-gated translate`: one translation per input line, in order.

    Typed at a terminal, each line is translated as soon as it is entered;
    a file or a pipe is translated in batches.
    """
    if args.input == "-" and args.output == "-" and sys.stdin.isatty():
        return _translate_interactively(args)
    if args.input == "-":
        lines = sys.stdin.read().splitlines()
    else:
        if not os.path.isfile(args.input):
            raise DataError(f"{args.input}: no such input file.")
        with open(args.input, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    translator = Translator.load(args.model)
    keep = [i for i, line in enumerate(lines) if line.strip()]
    translated = translator.translate(
        [lines[i] for i in keep], beam_width=args.beam_width,
        length_penalty=args.length_penalty, max_length=args.max_length,
        batch_size=args.batch_size,
    )
    output = [""] * len(lines)
    for i, text in zip(keep, translated):
        output[i] = text
    text = "".join(line + "\n" for line in output)
    if args.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


def _translate_interactively(args):
    translator = Translator.load(args.model)
    print("Type a sentence and press Enter (Ctrl-D to quit).", file=sys.stderr)
    for line in sys.stdin:
        if line.strip():
            (text,) = translator.translate(
                [line.strip()], beam_width=args.beam_width,
                length_penalty=args.length_penalty, max_length=args.max_length,
            )
        else:
            text = ""
        print(text, flush=True)
    return 0


TASK = TranslationTask()
