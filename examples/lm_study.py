"""The papers' comparison: LSTM vs depth-gated vs untied stacks of 1-3 layers at equal size.

Yao et al. (2015) report that a depth-gated LSTM stack beats an LSTM stack
of the same depth on Penn Treebank language modelling (and on BTEC
translation), and Gao & Oates (2018) that the untied LSTM beats the LSTM on
PTB. This script trains every (cell, depth) pair over several seeds, with
the units of each cell chosen so that its whole model has about as many
parameters as the LSTM model of that depth, and prints mean ± standard
deviation over the seeds.

    python examples/lm_study.py                          # sample grammar, a few minutes on a CPU
    python examples/lm_study.py --data ptb/ --units 200 --epochs 13 --seeds 3 \
        --bptt 35 --batch-size 20 --hp dropout=0.0 --hp optimizer=sgd \
        --hp learning_rate=1.0 --hp lr_decay=0.5 --hp lr_decay_start=5
    python examples/lm_study.py --translation            # BLEU on the package's translation sample

`--data ptb/` is a folder with ptb.train.txt, ptb.valid.txt, ptb.test.txt
(Mikolov's preprocessed Penn Treebank, as the papers used; not shipped).
Each run is `keras-gated train lm` (or `train translation`) with the
options given here; `--hp NAME=VALUE` and other options are passed on.
Results: a table on standard output and `OUTPUT/study.json`.
"""

import argparse
import json
import os
import statistics
import sys
import time

import keras
import keras_tuner
import numpy as np

from keras_gated.tasks import load_task
from keras_gated.tasks import runner


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="lstm,depth_gated,untied", help="Cells to compare.")
    parser.add_argument("--layers", default="1,2,3", help="Depths to compare.")
    parser.add_argument("--seeds", type=int, default=3, help="Weight seeds per (cell, depth).")
    parser.add_argument("--units", type=int, default=48,
                        help="Units of the LSTM; the other cells get the units that match its size.")
    parser.add_argument("--translation", action="store_true",
                        help="Compare on the translation task (BLEU) instead of language modelling.")
    parser.add_argument("--output", default="runs/lm_study", help="Run folders and study.json.")
    known, passed_on = parser.parse_known_args(argv)
    return known, passed_on


def task_arguments(study, passed_on):
    """The `keras-gated train TASK` options of every run (before --hp cell/units/num_layers)."""
    if study.translation:
        defaults = ["--data", "sample", "--epochs", "10", "--beam-width", "1", "--examples", "0"]
    else:
        defaults = ["--data", "sample", "--sample-size", "3000", "--epochs", "5", "--batch-size", "20",
                    "--bptt", "20", "--hp", "learning_rate=0.005", "--hp", "embedding_dim=48"]
    # Later options win (argparse keeps the last value; a later --hp overrides an earlier one).
    return defaults + ["--verbose", "0"] + passed_on


def parse_task_args(task, arguments, output):
    parser = runner.build_parser(task, "train")
    args = parser.parse_args(arguments + ["--output", output])
    return args


def parameter_count(task, args, data, cell, units, layers):
    """Parameters of the model `train` builds for (cell, units, layers)."""
    base_hp = list(args.hp)
    args.hp = base_hp + [f"cell={cell}", f"units={units}", f"num_layers={layers}"]
    try:
        model = task.hypermodel(args, data).build(keras_tuner.HyperParameters())
        count = model.count_params()
    finally:
        args.hp = base_hp
    keras.backend.clear_session()
    return count


def matching_units(task, args, data, cell, layers, target):
    """The units whose model size is closest to `target` (sizes grow with units)."""
    low, high = 2, 8
    while parameter_count(task, args, data, cell, high, layers) < target:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if parameter_count(task, args, data, cell, middle, layers) < target:
            low = middle
        else:
            high = middle
    counts = {u: parameter_count(task, args, data, cell, u, layers) for u in (low, high)}
    return min(counts, key=lambda u: abs(counts[u] - target)), counts


def agreement_accuracy(model_path, cases=300):
    """Share of sample-grammar sentences where the model prefers the verb that agrees.

    Every prefix (up to the main verb, 3+ words after the subject) is read
    after a run of `<eos>`; the model must give the verb in the subject's
    number a higher probability than the same verb in the other number.
    """
    from keras_gated.tasks.lm import data as lm_data
    from keras_gated.tasks.lm import sample
    from keras_gated.tasks.lm.model import reset_states
    from keras_gated.tasks.lm.model import with_batch_size
    from keras_gated.tasks.lm.task import load_language_model

    model, metadata = load_language_model(model_path)
    vocabulary = lm_data.Vocabulary(metadata["vocabulary"])
    tests = sample.agreement_cases(cases, seed=12345)
    width = max(len(prefix) for prefix, _, _ in tests) + 1
    rows = np.zeros((len(tests), width), dtype="int32")  # left-padded with <eos> (id 0)
    for row, (prefix, _, _) in enumerate(tests):
        ids = vocabulary.encode(prefix)
        rows[row, width - len(ids):] = ids
    batch = with_batch_size(model, len(tests))
    reset_states(batch)
    logits = np.asarray(batch.predict_on_batch(rows))[:, -1]
    correct = [vocabulary.index[c] for _, c, _ in tests]
    wrong = [vocabulary.index[w] for _, _, w in tests]
    rows_index = np.arange(len(tests))
    return float(np.mean(logits[rows_index, correct] > logits[rows_index, wrong]))


def main(argv):
    study, passed_on = parse_args(argv)
    task_name = "translation" if study.translation else "lm"
    metric = "test_bleu" if study.translation else "test_perplexity"
    task = load_task(task_name)
    arguments = task_arguments(study, passed_on)
    cells = study.cells.split(",")
    depths = [int(d) for d in study.layers.split(",")]
    os.makedirs(study.output, exist_ok=True)
    probe_args = parse_task_args(task, arguments, os.path.join(study.output, "probe"))
    probe_args.replicas = 1
    data = task.load_data(probe_args)
    runs = []
    started = time.time()
    for layers in depths:
        target = parameter_count(task, probe_args, data, "lstm", study.units, layers)
        for cell in cells:
            if cell == "lstm":
                units, counts = study.units, {study.units: target}
            else:
                units, counts = matching_units(task, probe_args, data, cell, layers, target)
            for seed in range(1, study.seeds + 1):
                output = os.path.join(study.output, f"{cell}_{layers}_{seed}")
                args = parse_task_args(
                    task,
                    arguments + ["--hp", f"cell={cell}", "--hp", f"units={units}",
                                 "--hp", f"num_layers={layers}", "--seed", str(seed)],
                    output,
                )
                results = runner.run(task, "train", args)
                run = {"cell": cell, "layers": layers, "units": units, "parameters": counts[units],
                       "seed": seed, metric: results[metric]}
                if not study.translation:
                    run["val_perplexity"] = results["val_perplexity"]
                    if "--data" not in passed_on or passed_on[passed_on.index("--data") + 1] == "sample":
                        run["agreement"] = agreement_accuracy(results["model"])
                runs.append(run)
                keras.backend.clear_session()
                print(f"lm_study: {run} ({time.time() - started:.0f} s so far)", file=sys.stderr, flush=True)
    table = summarise(runs, metric)
    print(table)
    with open(os.path.join(study.output, "study.json"), "w") as handle:
        json.dump({"arguments": arguments, "units": study.units, "runs": runs, "table": table,
                   "seconds": time.time() - started}, handle, indent=1)
    return 0


def _mean_spread(values):
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def summarise(runs, metric):
    """A Markdown table: one row per (depth, cell), mean ± sample standard deviation over seeds."""
    columns = [metric] + [m for m in ("val_perplexity", "agreement") if m in runs[0]]
    lines = ["| layers | cell | units | parameters | seeds | " + " | ".join(columns) + " |",
             "|---|---|---|---|---|" + "---|" * len(columns)]
    keys = []
    for run in runs:
        if (run["layers"], run["cell"]) not in keys:
            keys.append((run["layers"], run["cell"]))
    for layers, cell in keys:
        group = [r for r in runs if r["layers"] == layers and r["cell"] == cell]
        cells = [_mean_spread([r[c] for r in group]) for c in columns]
        lines.append(f"| {layers} | {cell} | {group[0]['units']} | {group[0]['parameters']} | "
                     f"{len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
