"""Time to quality of the task pipelines: real tokens per second of a training step, and the
wall-clock training time to a stated validation score, with and without length bucketing.

    python -m benchmarks.time_to_quality                      # everything (about an hour on 2 cores)
    python -m benchmarks.time_to_quality --parts throughput   # tokens/s only (minutes)
    python -m benchmarks.time_to_quality --parts quality --tasks translation

"Before" is the pipeline before length bucketing (`--bucket-window 0`: every
batch padded to its split's longest sequence); "after" is the default
(`--bucket-window 20`). Both run in one process, interleaved, so their ratio
is taken under the same load; the script repeats each measurement
`--repeats` times and writes every figure, so a reader sees the spread.

The language model (`lm`) reads one continuous stream in full windows of
`--bptt` steps: it has no padding to remove, so length bucketing does not
apply to it and only its defaults are compared (`before` is the pipeline and
defaults of today; the candidates the defaults were chosen from run with
`--configs`); its throughput counts every position, all of them real.

Corpora:

* `sample`: the task's embedded sample (`--data sample`);
* `short`: a generated corpus whose lengths follow a short-sentence
  distribution (log-normal, median 9 tokens, a long tail cut at 60; the
  shape of everyday-phrase sets such as Tatoeba's), learnable (translation:
  a word-for-word code with pairwise reordering; sentiment: more positive
  than negative words), written to a temporary file and read with
  `--data FILE`, so it goes through the pipeline a user's file does.

Quality (`--parts quality`): each configuration trains epoch by epoch; after
every epoch the validation score is measured (translation: greedy corpus
BLEU of the validation sentences; sentiment: validation accuracy) and the
cumulative training time (the time inside `fit`, the score's own decoding
excluded) is recorded (language model: validation perplexity, lower is
better). The time to quality is the training time of the first
epoch whose score reaches the stated target.

Results go to `benchmarks/results/time_to_quality.json` (see
docs/benchmarks.md, "Time to quality").
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

#: Validation CIDEr-D of the captioning sample's target (greedy captions of the
#: validation images).
CAPTIONING_CIDER_TARGET = 5.0

#: Validation targets of the quality runs: (task, corpus) -> (metric, target).
TARGETS = {
    ("translation", "sample"): ("val_bleu", 99.0),
    ("translation", "short"): ("val_bleu", 50.0),
    ("sentiment", "sample"): ("val_accuracy", 0.97),
    ("sentiment", "short"): ("val_accuracy", 0.99),
    ("lm", "sample"): ("val_perplexity", 5.5),
    ("captioning", "sample"): ("val_cider", CAPTIONING_CIDER_TARGET),
}

#: Metrics whose target is reached from above.
LOWER_IS_BETTER = {"val_perplexity"}


def reached(metric, score, target):
    """Whether `score` meets `target` for `metric`."""
    return score <= target if metric in LOWER_IS_BETTER else score >= target

# ------------------------------------------------------------ generated corpora


def short_lengths(count, rng, median=9.0, sigma=0.5, longest=60):
    """Lengths of short everyday sentences: log-normal around `median` tokens, cut to [1, longest]."""
    lengths = np.exp(rng.normal(np.log(median), sigma, size=count)).round().astype(int)
    # A handful of long ones, as in real sets, set the split's longest length.
    lengths[rng.choice(count, size=max(1, count // 500), replace=False)] = longest
    return np.clip(lengths, 1, longest)


def write_short_translation_corpus(path, count=8000, seed=0, vocabulary=400):
    """`source<TAB>target` pairs: target word i is a fixed code of source word i, pairs swapped."""
    rng = np.random.default_rng(seed)
    source_words = [f"s{n}" for n in range(vocabulary)]
    code = rng.permutation(vocabulary)
    with open(path, "w", encoding="utf-8") as handle:
        for length in short_lengths(count, rng):
            # Zipf-like word frequencies, as in text.
            ids = np.minimum(rng.zipf(1.3, size=length) - 1, vocabulary - 1)
            target = [f"t{code[i]}" for i in ids]
            for n in range(0, len(target) - 1, 2):
                target[n], target[n + 1] = target[n + 1], target[n]
            handle.write(" ".join(source_words[i] for i in ids) + "\t" + " ".join(target) + "\n")
    return path


def write_short_sentiment_corpus(path, count=8000, seed=0, vocabulary=2000):
    """`text<TAB>label` rows: label 1 when the text has more positive than negative words."""
    rng = np.random.default_rng(seed)
    positive, negative = set(range(10, 60)), set(range(60, 110))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("text\tlabel\n")
        for length in short_lengths(count, rng, median=12.0):
            ids = np.minimum(rng.zipf(1.2, size=length) + 5, vocabulary - 1)
            score = sum((i in positive) - (i in negative) for i in ids)
            if score == 0:
                ids[0] = 10 + rng.integers(0, 50) if rng.random() < 0.5 else 60 + rng.integers(0, 50)
                score = 1 if ids[0] < 60 else -1
            handle.write(" ".join(f"w{i}" for i in ids) + f"\t{int(score > 0)}\n")
    return path


# ------------------------------------------------------------ task setup


def corpus_arguments(task, corpus, folder):
    """The `keras-gated train TASK` arguments that select `corpus`."""
    if corpus == "sample":
        return ["--data", "sample"]
    if task == "captioning":
        raise ValueError(
            "Captioning reads images: only its rendered sample is measured (--tasks captioning "
            "--corpora sample)."
        )
    if task == "lm":
        raise ValueError(
            "The language model reads one stream, whatever its sentence lengths: only its sample "
            "is measured (--tasks lm --corpora sample)."
        )
    if task == "translation":
        path = write_short_translation_corpus(os.path.join(folder, "short_pairs.tsv"))
    else:
        path = write_short_sentiment_corpus(os.path.join(folder, "short_texts.tsv"))
    return ["--data", path]


#: Which sequence arrays of a task's training batches hold its real tokens
#: (translation: the source and the decoder targets, not the decoder inputs,
#: which repeat the targets; captioning: the targets of its captions).
COUNTED_SEQUENCES = {"translation": (0, 2), "sentiment": (0,), "captioning": (0,)}


def setup(task_name, argv):
    """`(task, args, data, model, fit_kwargs)` as `keras-gated train` would build them."""
    import keras
    import keras_tuner

    from keras_gated.tasks import load_task
    from keras_gated.tasks import runner

    task = load_task(task_name)
    args = runner.build_parser(task, "train").parse_args(argv)
    args.replicas = 1
    keras.utils.set_random_seed(args.seed)
    data = task.load_data(args)
    model = task.hypermodel(args, data).build(keras_tuner.HyperParameters())
    return task, args, data, model, task.fit_kwargs(args, data)


def token_counts(task_name, batches, rows, first):
    """`(real tokens, positions)` of the counted sequences in the batch of `rows`."""
    counts = batches.batch_token_counts(rows, first)
    counted = [counts[i] for i in COUNTED_SEQUENCES[task_name]]
    return sum(real for real, _ in counted), sum(padded for _, padded in counted)


class StepClock:
    """Times every training step (data fetch included) and counts its real tokens."""

    def __init__(self, task_name, batches):
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                outer.begin = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                seconds = time.perf_counter() - outer.begin
                rows = batches.rows(batch)
                outer.steps.append(
                    (seconds, *token_counts(task_name, batches, rows, batch == 0))
                )

        self.steps = []
        self.callback = Callback()


class WindowClock:
    """Times every training step of the language model: every position is a real token."""

    def __init__(self, windows):
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                outer.begin = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                tokens = windows.batch_size * windows.bptt
                outer.steps.append((time.perf_counter() - outer.begin, tokens, tokens))

        self.steps = []
        self.callback = Callback()


def throughput(task_name, corpus_argv, window, steps, warmup, extra):
    """Real tokens per second over `steps` training steps after `warmup` (traces) steps."""
    from keras_gated.tasks.batches import EpochSeeding

    _, _, data, model, fit_kwargs = setup(
        task_name, [*corpus_argv, "--bucket-window", str(window), *extra]
    )
    if task_name == "lm":
        windows = fit_kwargs["x"]
        clock = WindowClock(windows)
        epochs = max(1, -(-(warmup + steps) // len(windows)))
        model.fit(windows, epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[*fit_kwargs["callbacks"], clock.callback])
        timed = clock.steps[warmup : warmup + steps]
        seconds = sum(step[0] for step in timed)
        tokens = sum(step[1] for step in timed)
        return {"window": None, "extra": list(extra), "batch_size": windows.batch_size,
                "steps": len(timed), "seconds": round(seconds, 3), "real_tokens": tokens,
                "padded_positions": tokens, "real_share": 1.0,
                "tokens_per_second": round(tokens / seconds, 1)}
    batches = fit_kwargs["x"]
    batches.batch_order.steps = warmup + steps
    clock = StepClock(task_name, batches)
    model.fit(batches, epochs=1, shuffle=False, verbose=0,
              callbacks=[EpochSeeding(batches), clock.callback])
    timed = clock.steps[warmup:]
    seconds = sum(s for s, _, _ in timed)
    tokens = sum(t for _, t, _ in timed)
    positions = sum(p for _, _, p in timed)
    return {
        "window": window,
        "extra": list(extra),
        "batch_size": batches.batch_order.batch_size,
        "steps": len(timed),
        "seconds": round(seconds, 3),
        "real_tokens": tokens,
        "padded_positions": positions,
        "real_share": round(tokens / positions, 3),
        "tokens_per_second": round(tokens / seconds, 1),
    }


def validation_score(task_name, model, data, sentences):
    if task_name == "lm":
        from keras_gated.tasks.lm.model import evaluate_stream

        return evaluate_stream(model, data.valid_windows)["perplexity"]
    if task_name == "captioning":
        from keras_gated.tasks.captioning.task import describe

        _, validation, _ = data.parts
        array, key = data.inputs[1]
        return describe(model, validation, array, key, data.config)[1]["cider"]
    if task_name == "translation":
        from keras_gated.tasks.translation.model import Translator
        from keras_gated.tasks.translation.model import evaluate_translator

        result = evaluate_translator(
            Translator(model), data.splits.val_sources[:sentences],
            data.splits.val_references[:sentences], beam_width=1, examples=0,
        )
        return result["bleu"]
    correct = total = 0
    for batch in range(len(data.validation)):
        tokens, labels = data.validation[batch]
        predicted = np.asarray(model(tokens, training=False)).argmax(-1)
        correct += int((predicted == labels).sum())
        total += len(labels)
    return correct / total


def time_to_quality(task_name, corpus, corpus_argv, window, max_epochs, extra, sentences,
                    full=False):
    """Trains epoch by epoch to the target of (task, corpus); returns the curve and the time.

    `full`: go on after the target, to the task's `--epochs` (at most
    `max_epochs`), for the final score and time of a whole default run.
    """
    from keras_gated.tasks.batches import EpochSeeding

    metric, target = TARGETS[(task_name, corpus)]
    _, args, data, model, fit_kwargs = setup(
        task_name, [*corpus_argv, "--bucket-window", str(window), *extra]
    )
    callbacks = list(fit_kwargs.pop("callbacks", []))
    if task_name != "lm":
        callbacks.append(EpochSeeding(fit_kwargs["x"]))
    curve, trained = [], 0.0
    for epoch in range(min(max_epochs, args.epochs) if full else max_epochs):
        start = time.perf_counter()
        model.fit(**fit_kwargs, initial_epoch=epoch, epochs=epoch + 1, verbose=0,
                  callbacks=callbacks)
        trained += time.perf_counter() - start
        score = validation_score(task_name, model, data, sentences)
        curve.append({"epoch": epoch + 1, "train_seconds": round(trained, 1), metric: round(score, 4)})
        print(f"  {task_name}/{corpus} window {window} {' '.join(extra)}: epoch {epoch + 1} "
              f"{trained:.0f} s {metric} {score:.4f}", flush=True)
        if reached(metric, score, target) and not full:
            break
    seconds = next(
        (point["train_seconds"] for point in curve if reached(metric, point[metric], target)), None
    )
    return {"window": window, "extra": list(extra), "metric": metric, "target": target,
            "batch_size": args.batch_size, "seconds_to_target": seconds,
            "full_run_seconds": round(trained, 1) if full else None, "curve": curve}


#: Configurations of the quality runs: name -> (window, extra train arguments).
#: "before" is today's pipeline and defaults; "bucketed" changes only the
#: pipeline; "after" is the pipeline and the defaults of this version.
QUALITY_CONFIGS = {
    "translation": {
        "before": (0, ["--epochs", "15", "--batch-size", "64", "--hp", "label_smoothing=0",
                       "--hp", "cell=lstm"]),
        "bucketed": (20, ["--epochs", "15", "--batch-size", "64", "--hp", "label_smoothing=0",
                          "--hp", "cell=lstm"]),
        "after": (20, []),
        # The defaults of this version with Keras's LSTM, the default cell before.
        "lstm": (20, ["--hp", "cell=lstm"]),
        # The candidates the defaults were chosen from (run with --configs);
        # those without --hp cell ran on Keras's LSTM, the default cell then.
        "lr_1e-2": (20, ["--batch-size", "64", "--hp", "learning_rate=0.01"]),
        "lr_5e-3": (20, ["--batch-size", "64", "--hp", "learning_rate=0.005"]),
        "batch_128_lr_1e-2": (20, ["--batch-size", "128", "--hp", "learning_rate=0.01"]),
        "lr_1e-2_warmup_100": (20, ["--batch-size", "64", "--hp", "learning_rate=0.01",
                                    "--hp", "warmup_steps=100"]),
        "lr_2e-2_warmup_100": (20, ["--batch-size", "64", "--hp", "learning_rate=0.02",
                                    "--hp", "warmup_steps=100"]),
        "lr_2e-2_warmup_200": (20, ["--batch-size", "64", "--hp", "learning_rate=0.02",
                                    "--hp", "warmup_steps=200"]),
        "batch_32_lr_5e-3": (20, ["--batch-size", "32", "--hp", "learning_rate=0.005"]),
        "batch_32_lr_1e-2": (20, ["--batch-size", "32", "--hp", "learning_rate=0.01"]),
        "coupled_lr_5e-3": (20, ["--hp", "cell=coupled", "--hp", "learning_rate=0.005"]),
        "label_smoothing_0.1": (20, ["--hp", "label_smoothing=0.1"]),
        "lr_5e-3_label_smoothing_0.1": (20, ["--batch-size", "64", "--hp", "learning_rate=0.005",
                                             "--hp", "label_smoothing=0.1"]),
        "lr_7e-3": (20, ["--batch-size", "64", "--hp", "learning_rate=0.007"]),
        "lr_7e-3_label_smoothing_0.1": (20, ["--batch-size", "64", "--hp", "learning_rate=0.007",
                                             "--hp", "label_smoothing=0.1"]),
        "label_smoothing_0.2": (20, ["--hp", "label_smoothing=0.2"]),
        "no_label_smoothing": (20, ["--hp", "label_smoothing=0"]),
        "units_128": (20, ["--hp", "units=128"]),
        "embedding_32": (20, ["--hp", "embedding_dim=32"]),
        "embedding_128": (20, ["--hp", "embedding_dim=128"]),
        "embedding_128_lr_5e-3": (20, ["--hp", "embedding_dim=128", "--hp", "learning_rate=0.005"]),
        "embedding_128_label_smoothing_0.2": (20, ["--hp", "embedding_dim=128",
                                                   "--hp", "label_smoothing=0.2"]),
    },
    "sentiment": {
        "before": (0, []),
        "after": (20, []),
        "batch_32": (20, ["--batch-size", "32"]),
    },
    # The defaults of today and their candidates (bucketing changes only the
    # pipeline: "before" pads every batch to the split's longest caption).
    "captioning": {
        "before": (0, []),
        "after": (20, []),
        "lr_5e-3": (20, ["--hp", "learning_rate=0.005"]),
        "lr_1e-2": (20, ["--hp", "learning_rate=0.01"]),
        "batch_64": (20, ["--batch-size", "64"]),
        "batch_16": (20, ["--batch-size", "16"]),
        "units_64": (20, ["--hp", "units=64"]),
    },
    # No padding in the language model's windows: `before` is its whole
    # default run; the candidates change one default each.
    "lm": {
        "before": (0, []),
        "lr_1e-2": (0, ["--hp", "learning_rate=0.01"]),
        "batch_10": (0, ["--batch-size", "10"]),
        "bptt_20": (0, ["--bptt", "20"]),
    },
}

#: Configurations of the throughput runs, interleaved in each repeat.
THROUGHPUT_CONFIGS = {
    "translation": {
        "before": (0, ["--batch-size", "64", "--hp", "label_smoothing=0", "--hp", "cell=lstm"]),
        "bucketed": (20, ["--batch-size", "64", "--hp", "label_smoothing=0", "--hp", "cell=lstm"]),
        "after": (20, []),
        "lstm": (20, ["--hp", "cell=lstm"]),
    },
    "sentiment": {"before": (0, []), "after": (20, [])},
    "captioning": {"before": (0, []), "after": (20, [])},
    "lm": {"before": (0, [])},
}

#: The configurations a run without --configs measures.
DEFAULT_CONFIGS = ("before", "bucketed", "after")



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="throughput,quality", help="throughput, quality or both.")
    parser.add_argument("--tasks", default="translation,sentiment")
    parser.add_argument("--corpora", default="sample,short")
    parser.add_argument("--repeats", type=int, default=3, help="Repeats of each throughput measurement.")
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per throughput measurement.")
    parser.add_argument("--warmup", type=int, default=6, help="Untimed first steps (tracing).")
    parser.add_argument("--max-epochs", type=int, default=15, help="Most epochs of a quality run.")
    parser.add_argument("--bleu-sentences", type=int, default=300, help="Validation sentences decoded for BLEU.")
    parser.add_argument("--configs", default=None, help="Quality configurations to run (default: all).")
    parser.add_argument("--output", default="benchmarks/results/time_to_quality.json")
    options = parser.parse_args(argv)
    import keras

    previous = {}
    if os.path.exists(options.output):
        with open(options.output) as handle:
            previous = json.load(handle)
    # Rows not rerun (other tasks, corpora, configurations) and notes keep
    # their earlier figures.
    results = {"throughput": [], "quality": [], **previous,
               "backend": keras.backend.backend(), "keras": keras.__version__,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "argv": sys.argv[1:]}
    with tempfile.TemporaryDirectory() as folder:
        for task_name in options.tasks.split(","):
            for corpus in options.corpora.split(","):
                corpus_argv = corpus_arguments(task_name, corpus, folder)
                if "throughput" in options.parts:
                    results["throughput"] = [
                        r for r in results["throughput"]
                        if (r["task"], r["corpus"]) != (task_name, corpus)
                    ]
                    for repeat in range(options.repeats):
                        for name, (window, extra) in THROUGHPUT_CONFIGS[task_name].items():
                            row = throughput(task_name, corpus_argv, window, options.steps,
                                             options.warmup, extra)
                            row.update(task=task_name, corpus=corpus, config=name, repeat=repeat)
                            print(json.dumps(row), flush=True)
                            results["throughput"].append(row)
                if "quality" in options.parts:
                    chosen = options.configs.split(",") if options.configs else None
                    for name, (window, extra) in QUALITY_CONFIGS[task_name].items():
                        if (chosen and name not in chosen) or (not chosen and name not in DEFAULT_CONFIGS):
                            continue
                        # Today's whole default run on the sample: its final score
                        # and time are what the targets of issue 20 are stated against.
                        full = name == "before" and corpus == "sample"
                        row = time_to_quality(task_name, corpus, corpus_argv, window,
                                              options.max_epochs, extra, options.bleu_sentences,
                                              full)
                        row.update(task=task_name, corpus=corpus, config=name)
                        results["quality"] = [
                            r for r in results["quality"]
                            if (r["task"], r["corpus"], r["config"]) != (task_name, corpus, name)
                        ] + [row]
                        _write(options.output, results)
                _write(options.output, results)
    return results


def _write(path, results):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
