"""The sentiment task on the command line: `keras-gated train|tune|evaluate sentiment`."""

import os

from keras_gated.tasks.base import Task
from keras_gated.tasks.common import DataError
from keras_gated.tasks.sentiment.data import SentimentData
from keras_gated.tasks.sentiment.data import count_empty_texts
from keras_gated.tasks.sentiment.data import load_splits
from keras_gated.tasks.sentiment.data import make_batches
from keras_gated.tasks.sentiment.data import make_train_batches
from keras_gated.tasks.sentiment.data import make_vectorizer
from keras_gated.tasks.sentiment.model import SentimentHyperModel
from keras_gated.tasks.sentiment.model import export_classifier
from keras_gated.tasks.sentiment.model import load_classifier


class SentimentTask(Task):
    """Text classification of reviews (binary or multi-class)."""

    name = "sentiment"
    description = (
        "Sentiment classification with a tuned recurrent model. --data is 'sample' "
        "(embedded generated reviews), a tensorflow-datasets name (imdb_reviews, glue/sst2) "
        "or a .csv/.tsv/.jsonl file. The test split is held out of the search; the best "
        "model is saved with its TextVectorization and classifies raw strings."
    )
    objective = "val_accuracy"
    metric_names = ("test_accuracy",)
    default_epochs = 3
    default_batch_size = 64

    def add_arguments(self, parser, command):
        data = parser.add_argument_group("data")
        data.add_argument(
            "--data",
            default=None if command == "evaluate" else "sample",
            help=(
                "'sample', a tensorflow-datasets name (imdb_reviews, glue/sst2) or a .csv/.tsv/.jsonl "
                "file." + (" Default for evaluate: the data the model was trained on." if command == "evaluate" else "")
            ),
        )
        data.add_argument("--text-column", default=None, help="Text column: header name, JSON key or 0-based index (default: text/sentence/review, else 0).")
        data.add_argument("--label-column", default=None, help="Label column: header name, JSON key or 0-based index (default: label/sentiment/stars, else 1).")
        data.add_argument("--format", dest="file_format", choices=("csv", "tsv", "jsonl"), default=None, help="File format (default: from the extension).")
        data.add_argument("--header", choices=("auto", "yes", "no"), default="auto", help="Whether a CSV/TSV file has a header line.")
        data.add_argument("--delimiter", default=None, help="Field delimiter of a CSV/TSV file (default: ',' or tab).")
        data.add_argument("--tfds-dir", default=None, help="tensorflow-datasets data directory (prepared datasets).")
        data.add_argument("--val-fraction", type=float, default=0.1, help="Fraction of the training data used for validation (the tuner's objective).")
        data.add_argument("--test-fraction", type=float, default=0.1, help="Fraction held out for the test split when the data has no test split.")
        data.add_argument("--split-seed", type=int, default=0, help="Seed of the train/validation/test split (independent of --seed).")
        data.add_argument("--max-examples", type=int, default=None, help="Use at most this many examples per split (quick runs).")
        if command == "evaluate":
            data.add_argument("--text", action="append", default=[], help="Classify this text (repeatable).")
            data.add_argument("--input", default=None, help="Classify every line of this file.")
            data.add_argument("--split", choices=("test", "all"), default="test", help="Evaluate on the test split or on all of --data.")
            return
        model = parser.add_argument_group("text model")
        model.add_argument("--max-tokens", type=int, default=20000, help="Vocabulary size (TextVectorization max_tokens).")
        model.add_argument("--sequence-length", type=int, default=None, help="Tokens per text, padded or cut (default: 40 for the sample, 200 otherwise).")

    def _data_options(self, args):
        return {
            "data": args.data,
            "text_column": args.text_column,
            "label_column": args.label_column,
            "file_format": args.file_format,
            "header": args.header,
            "delimiter": args.delimiter,
            "tfds_dir": args.tfds_dir,
            "val_fraction": args.val_fraction,
            "test_fraction": args.test_fraction,
            "split_seed": args.split_seed,
            "max_examples": args.max_examples,
        }

    def load_data(self, args):
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(args, name) < 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in (0, 1); got {getattr(args, name)}.")
        splits = load_splits(**self._data_options(args))
        sequence_length = args.sequence_length or (40 if args.data == "sample" else 200)
        args.sequence_length = sequence_length
        vectorizer = make_vectorizer(splits.train_texts, args.max_tokens, sequence_length)
        print(
            f"keras-gated: {splits.source}: {len(splits.train_texts)} train, {len(splits.val_texts)} "
            f"validation, {len(splits.test_texts)} test examples, classes {splits.class_names}, "
            f"vocabulary {vectorizer.vocabulary_size()}",
            flush=True,
        )
        empty = {
            name: count_empty_texts(texts, vectorizer)
            for name, texts in (("train", splits.train_texts), ("validation", splits.val_texts),
                                ("test", splits.test_texts))
        }
        if any(empty.values()):
            # Kept: their tokens are all padding, which every model here handles
            # (the bag of words averages no words to zeros).
            print(
                "keras-gated: texts empty after standardisation (kept, read as no words): "
                + ", ".join(f"{count} {name}" for name, count in empty.items()),
                flush=True,
            )
        even = getattr(args, "replicas", 1) > 1
        if even and len(splits.val_texts) < args.batch_size:
            raise DataError(
                f"With {args.replicas} replicas the validation split ({len(splits.val_texts)}) "
                f"must hold a whole batch ({args.batch_size}): lower --batch-size."
            )
        window = args.bucket_window
        train, describe_batch = make_train_batches(
            splits.train_texts, splits.train_labels, vectorizer, args.batch_size, args.seed, even,
            window,
        )
        (real, padded), = train.token_counts(0)
        print(
            f"keras-gated: texts cut or padded to {sequence_length} tokens; real tokens fill "
            f"{100 * real / padded:.0f}% of the training batches (--bucket-window {window}), "
            f"{100 * real / (len(splits.train_texts) * sequence_length):.0f}% at "
            f"{sequence_length} tokens a text",
            flush=True,
        )
        # Vectorized once here, not by a tf.data map every epoch.
        return SentimentData(
            splits,
            vectorizer,
            train,
            make_batches(splits.val_texts, splits.val_labels, vectorizer, args.batch_size, None, even,
                         window),
            make_batches(splits.test_texts, splits.test_labels, vectorizer, args.batch_size,
                         window=window),
            describe_batch,
        )

    def hypermodel(self, args, data):
        return SentimentHyperModel(
            data.vectorizer.vocabulary_size(), args.sequence_length, len(data.class_names), args.hp
        )

    def fit_kwargs(self, args, data):
        # The batches order themselves by (seed, epoch); Keras's own shuffle
        # would draw on Python's global random state, which a resumed run lacks.
        return {"x": data.train, "validation_data": data.validation, "shuffle": False}

    def evaluate(self, model, data, args):
        # Batch by batch, outside `model.evaluate`: every test example counts,
        # also under a MirroredStrategy (see `make_batches`).
        import numpy as np

        correct = total = 0
        for batch in range(len(data.test)):
            tokens, labels = data.test[batch]
            predicted = np.asarray(model(tokens, training=False)).argmax(-1)
            correct += int((predicted == np.asarray(labels)).sum())
            total += len(predicted)
        return {"test_accuracy": correct / total}

    def export(self, model, data, path, args):
        export_classifier(model, data.vectorizer, data.class_names, path, self._data_options(args))

    def monitor_sample(self, data):
        import numpy as np

        x = np.asarray(data.vectorizer(data.splits.val_texts[:16]))
        return x, np.asarray(data.splits.val_labels[:16])

    def evaluate_saved(self, args):
        classifier = load_classifier(args.model)
        texts = list(args.text)
        if args.input:
            if not os.path.isfile(args.input):
                raise DataError(f"{args.input}: no such file.")
            with open(args.input, encoding="utf-8") as handle:
                texts += [line.rstrip("\n") for line in handle if line.strip()]
        if texts:
            return {
                "predictions": [
                    {"text": text, "label": label, "probability": round(probability, 4)}
                    for text, (label, probability) in zip(texts, classifier.predict(texts, args.batch_size))
                ]
            }
        options = dict(classifier.metadata.get("data", {}))
        if args.data is not None:
            options = self._data_options(args)
        if not options.get("data"):
            raise DataError("Nothing to evaluate: pass --text, --input or --data.")
        splits = load_splits(**options, class_names=classifier.class_names)
        if args.split == "all":
            texts = splits.train_texts + splits.val_texts + splits.test_texts
            labels = splits.train_labels + splits.val_labels + splits.test_labels
        else:
            texts, labels = splits.test_texts, splits.test_labels
        return {
            "data": options["data"],
            "split": args.split,
            "examples": len(texts),
            "accuracy": classifier.accuracy(texts, labels, args.batch_size),
        }


TASK = SentimentTask()
