"""benchmarks/time_to_quality.py: its targets' directions and the language model's throughput row."""

import pytest

from benchmarks import time_to_quality


def test_perplexity_targets_are_reached_from_above_scores_from_below():
    assert time_to_quality.reached("val_perplexity", 5.4, 5.5)
    assert not time_to_quality.reached("val_perplexity", 5.6, 5.5)
    assert time_to_quality.reached("val_bleu", 99.5, 99.0)
    assert not time_to_quality.reached("val_accuracy", 0.96, 0.97)
    assert all(
        (metric in time_to_quality.LOWER_IS_BETTER) == metric.endswith("perplexity")
        for metric, _ in time_to_quality.TARGETS.values()
    )


def test_the_language_model_is_measured_on_its_sample_only(tmp_path):
    with pytest.raises(ValueError, match="only its sample"):
        time_to_quality.corpus_arguments("lm", "short", str(tmp_path))


def test_language_model_throughput_counts_every_position_of_its_windows():
    row = time_to_quality.throughput(
        "lm", ["--data", "sample", "--hp", "units=8", "--hp", "embedding_dim=8"],
        window=0, steps=3, warmup=1, extra=[],
    )
    assert row["steps"] == 3 and row["real_share"] == 1.0
    assert row["real_tokens"] == 3 * row["batch_size"] * 35
    assert row["tokens_per_second"] > 0


def test_captioning_is_measured_on_its_rendered_sample_only(tmp_path):
    assert time_to_quality.TARGETS[("captioning", "sample")][0] == "val_cider"
    with pytest.raises(ValueError, match="only its rendered sample"):
        time_to_quality.corpus_arguments("captioning", "short", str(tmp_path))


def test_a_rerun_replaces_only_its_own_rows(tmp_path):
    import json

    path = tmp_path / "results.json"
    kept = {"task": "translation", "corpus": "short", "config": "after", "tokens_per_second": 1.0}
    stale = {"task": "lm", "corpus": "sample", "config": "before", "tokens_per_second": -1.0}
    path.write_text(json.dumps({"note": "kept", "throughput": [kept, stale], "quality": [kept]}))
    time_to_quality.main(["--parts", "throughput", "--tasks", "lm", "--corpora", "sample",
                          "--repeats", "1", "--steps", "2", "--warmup", "1",
                          "--output", str(path)])
    results = json.loads(path.read_text())
    assert results["note"] == "kept" and results["quality"] == [kept]
    assert results["throughput"][0] == kept and stale not in results["throughput"]
    assert [row["task"] for row in results["throughput"][1:]] == ["lm"]
