"""The lm task: the sample grammar, readers, TBPTT batches, perplexity, states, the CLI."""

import json
import math
import os

import keras
import keras_tuner
import numpy as np
import pytest

from keras_gated.cli import main
from keras_gated.tasks import DataError
from keras_gated.tasks.lm import data as lm_data
from keras_gated.tasks.lm import model as lm_model
from keras_gated.tasks.lm import sample

# A small run: 600 sample sentences (about 5600 training tokens), 16 units.
TINY = [
    "--data", "sample", "--sample-size", "600", "--batch-size", "8", "--bptt", "12",
    "--hp", "units=24", "--hp", "embedding_dim=24", "--hp", "learning_rate=0.01",
    "--verbose", "0",
]


# --------------------------------------------------------------------- sample grammar


def test_sample_is_deterministic_under_its_seed():
    assert sample.generate(50, seed=3) == sample.generate(50, seed=3)
    assert sample.generate(50, seed=3) != sample.generate(50, seed=4)


def test_sample_verbs_agree_with_their_subject_across_clauses():
    triples = sample.generate_with_structure(500, seed=2)
    distances = []
    attracted = 0
    for tokens, subject, verb in triples:
        assert sample.NOUN_NUMBER[tokens[subject]] == sample.VERB_NUMBER[tokens[verb]], tokens
        distances.append(verb - subject)
        between = [sample.NOUN_NUMBER[t] for t in tokens[subject + 1:verb] if t in sample.NOUN_NUMBER]
        attracted += any(n != sample.NOUN_NUMBER[tokens[subject]] for n in between)
    # Long-range: many verbs are several words after their subject, past a
    # noun of the other number.
    assert max(distances) >= 8 and sum(d >= 4 for d in distances) > 100
    assert attracted > 50


def test_agreement_cases_pair_a_verb_with_its_other_number():
    for prefix, correct, wrong in sample.agreement_cases(30, seed=5):
        assert sample.VERB_NUMBER[correct] != sample.VERB_NUMBER[wrong]
        assert prefix[-1] not in sample.VERB_NUMBER or len(prefix) > 3


# --------------------------------------------------------------------- reading


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_ptb_folder_keeps_unk_as_the_unknown_token(tmp_path):
    _write(tmp_path / "ptb.train.txt", " the <unk> cat sat \n the dog sat \n")
    _write(tmp_path / "ptb.valid.txt", " the cat \n")
    _write(tmp_path / "ptb.test.txt", " a <unk> zebra sat \n")
    corpus = lm_data.load_corpus(str(tmp_path))
    assert corpus.train == ["the <unk> cat sat", "the dog sat"] and corpus.valid == ["the cat"]
    vocabulary = lm_data.Vocabulary.build(lm_data.tokenize(line) for line in corpus.train)
    assert vocabulary.tokens[:2] == ["<eos>", "<unk>"] and vocabulary.tokens.count("<unk>") == 1
    stream = lm_data.encode_stream(corpus.test, vocabulary)
    # "a" and "zebra" are unknown, like the corpus's own <unk>; the line ends in <eos>.
    assert stream.tolist() == [1, 1, 1, vocabulary.index["sat"], 0]


def test_folder_without_ptb_files_and_a_folder_with_train_only(tmp_path):
    with pytest.raises(DataError, match="ptb.train.txt"):
        lm_data.load_corpus(str(tmp_path))
    _write(tmp_path / "ptb.train.txt", "".join(f"line {i}\n" for i in range(40)))
    corpus = lm_data.load_corpus(str(tmp_path), val_fraction=0.1, test_fraction=0.2)
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (28, 4, 8)


def test_bad_text_files_name_the_file_and_line(tmp_path):
    with pytest.raises(DataError, match="empty"):
        lm_data.read_lines(_write(tmp_path / "empty.txt", "\n  \n"))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"latin1.txt, line 2: not UTF-8"):
        lm_data.read_lines(str(bad))
    with pytest.raises(DataError, match="no such text file"):
        lm_data.load_corpus(str(tmp_path / "missing.txt"))


def test_a_text_file_gets_a_seeded_held_out_split(tmp_path):
    path = _write(tmp_path / "lines.txt", "".join(f"sentence {i}\n" for i in range(100)))
    first = lm_data.load_corpus(path, split_seed=7)
    assert first == lm_data.load_corpus(path, split_seed=7)
    assert first.test != lm_data.load_corpus(path, split_seed=8).test
    assert sorted(first.train + first.valid + first.test) == sorted(f"sentence {i}" for i in range(100))
    assert len(first.test) == 10 and first.test == sorted(first.test, key=lambda s: int(s.split()[1]))


def test_char_tokens_round_trip():
    tokens = lm_data.tokenize("the  cat", "char")
    assert tokens == ["t", "h", "e", "▁", "c", "a", "t"]
    assert lm_data.detokenize(tokens + ["<eos>"] + list("ok"), "char") == "the cat\nok"


# --------------------------------------------------------------------- TBPTT batches


def test_windows_continue_row_by_row_and_targets_are_shifted_by_one():
    stream = np.arange(103)
    windows = lm_data.StreamWindows(stream, batch_size=4, bptt=5, drop_partial=True)
    # 102 usable steps / 4 rows = 25 per row: 5 full windows.
    assert len(windows) == 5 and windows.tokens == 100
    for k in range(len(windows) - 1):
        inputs, targets = windows[k]
        following, _ = windows[k + 1]
        np.testing.assert_array_equal(inputs[:, -1] + 1, following[:, 0])
        np.testing.assert_array_equal(targets, inputs + 1)
    np.testing.assert_array_equal(windows[0][0][:, 0], [0, 25, 50, 75])


def test_evaluation_windows_pad_the_last_window_with_weight_zero():
    windows = lm_data.StreamWindows(np.arange(51), batch_size=2, bptt=10)
    assert len(windows) == 3  # 25 steps per row: 10, 10 and 5
    inputs, targets, weights = windows[2]
    assert inputs.shape == (2, 10) and weights[:, :5].all() and not weights[:, 5:].any()
    assert windows.tokens == 50


def test_a_split_too_short_for_the_batch_is_a_clear_error():
    with pytest.raises(DataError, match="lower --batch-size"):
        lm_data.StreamWindows(np.arange(5), batch_size=8, bptt=3)
    with pytest.raises(DataError, match="lower --bptt"):
        lm_data.StreamWindows(np.arange(21), batch_size=4, bptt=10, drop_partial=True)


# --------------------------------------------------------------------- model


def test_perplexity_is_exp_of_the_mean_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 7, 11)).astype("float32")
    targets = rng.integers(0, 11, size=(3, 7))
    weights = (rng.random((3, 7)) > 0.3).astype("float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    metric = lm_model.Perplexity()
    metric.update_state(targets[:2], logits[:2], weights[:2])
    metric.update_state(targets[2:], logits[2:], weights[2:])  # accumulates tokens, not batch means
    expected = np.exp((cross_entropy * weights).sum() / weights.sum())
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)
    unweighted = lm_model.Perplexity()
    unweighted.update_state(targets, logits)
    np.testing.assert_allclose(float(unweighted.result()), np.exp(cross_entropy.mean()), rtol=1e-5)


def _build(cell="lstm", batch_size=3, **hp_values):
    values = {"cell": cell, "units": 8, "embedding_dim": 8, **hp_values}
    hypermodel = lm_model.LanguageModelHyperModel(13, batch_size, 4, [f"{k}={v}" for k, v in values.items()])
    return hypermodel.build(keras_tuner.HyperParameters())


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("depth_gated", 2)])
def test_states_carry_across_windows_and_reset_at_epoch_start(cell, layers):
    model = _build(cell, num_layers=layers)
    tokens = np.random.default_rng(1).integers(0, 13, size=(3, 12)).astype("int32")
    whole = np.asarray(model.predict_on_batch(tokens))
    lm_model.reset_states(model)
    windowed = np.concatenate(
        [np.asarray(model.predict_on_batch(tokens[:, i:i + 4])) for i in range(0, 12, 4)], axis=1
    )
    # Windows read in order continue each other exactly.
    np.testing.assert_allclose(windowed, whole, atol=1e-5)
    layers_with_state = lm_model.stateful_layers(model)
    assert layers_with_state and all(
        np.abs(keras.ops.convert_to_numpy(v)).sum() > 0 for layer in layers_with_state for v in layer.states
    )
    callback = lm_model.ResetStates()
    callback.set_model(model)
    callback.on_epoch_begin(1)
    assert all(not keras.ops.convert_to_numpy(v).any() for layer in layers_with_state for v in layer.states)
    np.testing.assert_allclose(np.asarray(model.predict_on_batch(tokens[:, :4])), whole[:, :4], atol=1e-5)


def test_tied_embeddings_share_one_matrix():
    tied = _build(tie_embeddings="true", units=16)
    untied = _build(tie_embeddings="false", units=16)
    assert [w.shape for w in tied.weights].count((13, 8)) == 1
    assert not any(w.shape in ((16, 13), (8, 13)) for w in tied.weights)
    assert any(w.shape == (16, 13) for w in untied.weights)
    assert tied.count_params() < untied.count_params()


def test_copy_for_another_batch_size_keeps_the_weights():
    model = _build(batch_size=4)
    tokens = np.random.default_rng(2).integers(0, 13, size=(4, 6)).astype("int32")
    expected = np.asarray(model.predict_on_batch(tokens))
    single = lm_model.with_batch_size(model, 1)
    assert single.inputs[0].shape[0] == 1
    np.testing.assert_allclose(np.asarray(single.predict_on_batch(tokens[2:3])), expected[2:3], atol=1e-5)


def test_epoch_decay_schedule():
    schedule = lm_model.EpochDecay(1.0, steps_per_epoch=10, decay=0.5, start_epoch=3)
    rates = [float(schedule(step)) for step in (0, 19, 20, 29, 30, 45)]
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]  # epochs 1, 2, 3, 3, 4, 5


def test_top_k_one_is_greedy_and_top_k_limits_the_choice():
    logits = np.array([0.1, 3.0, 2.9, -1.0])
    rng = np.random.default_rng(0)
    assert {lm_model.sample_token(logits, 1.5, 1, rng) for _ in range(20)} == {1}
    assert {lm_model.sample_token(logits, 5.0, 2, rng) for _ in range(200)} == {1, 2}


# --------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("lm"))
    assert main(["train", "lm", *TINY, "--epochs", "3", "--output", out]) == 0
    with open(os.path.join(out, "results.json")) as handle:
        return out, json.load(handle)


def test_train_writes_val_and_test_perplexity_better_than_uniform(trained):
    out, results = trained
    with open(os.path.join(out, "best_model.json")) as handle:
        vocabulary_size = len(json.load(handle)["vocabulary"])
    for name in ("val_perplexity", "test_perplexity"):
        assert math.isfinite(results[name]) and 1.0 < results[name] < vocabulary_size / 2, results
    assert os.listdir(os.path.join(out, "logs", "train"))  # TensorBoard curves


def test_evaluate_rebuilds_the_test_split(trained, capsys):
    out, results = trained
    model = os.path.join(out, "best_model.keras")
    assert main(["evaluate", "lm", "--model", model, "--batch-size", "8", "--bptt", "12"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test_perplexity"] == pytest.approx(results["test_perplexity"], rel=1e-4)


def test_generate_prints_text_and_top_k_one_is_deterministic(trained, capsys):
    out, _ = trained
    model = os.path.join(out, "best_model.keras")
    runs = []
    for seed in ("1", "2"):
        assert main(["generate", "--model", model, "--prompt", "the dogs that", "--top-k", "1",
                     "--length", "8", "--seed", seed]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1] and runs[0].startswith("the dogs that ")
    assert len(runs[0].split()) >= 8
    assert main(["generate", "--model", model, "--prompt", "the zebras", "--length", "3"]) == 0
    captured = capsys.readouterr()
    assert "read as <unk>: zebras" in captured.err and captured.out.startswith("the zebras")


def test_generate_without_the_vocabulary_file_is_a_clear_error(trained, tmp_path, capsys):
    out, _ = trained
    copy = tmp_path / "copy.keras"
    copy.write_bytes(open(os.path.join(out, "best_model.keras"), "rb").read())
    assert main(["generate", "--model", str(copy)]) == 2
    assert "copy.json: missing" in capsys.readouterr().err


def test_char_split_reports_bits_per_char(tmp_path):
    out = str(tmp_path)
    assert main(["train", "lm", "--data", "sample", "--sample-size", "150", "--split", "char",
                 "--batch-size", "8", "--bptt", "20", "--hp", "units=16", "--hp", "embedding_dim=16",
                 "--epochs", "1", "--verbose", "0", "--output", out]) == 0
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    assert results["test_bits_per_char"] == pytest.approx(math.log2(results["test_perplexity"]))


def test_bidirectional_language_model_is_refused(capsys):
    assert main(["train", "lm", *TINY, "--hp", "bidirectional=true"]) == 2
    assert "must not read ahead" in capsys.readouterr().err


def test_tune_minimises_val_perplexity(tmp_path):
    out = str(tmp_path)
    assert main(["tune", "lm", *TINY, "--sample-size", "300", "--hp", "cell=lstm,untied", "--tuner", "grid",
                 "--epochs", "1", "--output", out]) == 0
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    assert results["objective"] == "val_perplexity" and len(results["trials"]) == 2
    scores = [trial["val_perplexity"] for trial in results["trials"]]
    assert results["best"]["val_perplexity"] == min(scores)
    assert os.path.isfile(os.path.join(out, "best_model.json"))
