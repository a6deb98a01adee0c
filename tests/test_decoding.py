"""Greedy and beam search of keras_gated.decoding on small synthetic models."""

import itertools

import numpy as np
import pytest
from keras import ops

from keras_gated import decoding

PAD, START, END = 0, 1, 2


def make_recurrent_model(vocab_size, hidden, seed, batch_size, sharpness=2.0):
    """A random recurrent language model conditioned on a per-row source.

    The state is a dict with a hidden vector (updated from the previous token,
    so reordering beams matters), the row's batch index (to check that
    beam search tiles and reorders rows within their batch item) and a
    per-row source vector (as encoder outputs would be).
    """
    rng = np.random.default_rng(seed)
    embed = rng.normal(size=(vocab_size, hidden)).astype("float32")
    recur = (rng.normal(size=(hidden, hidden)) / np.sqrt(hidden)).astype("float32")
    out = (sharpness * rng.normal(size=(hidden, vocab_size))).astype("float32")
    source = rng.normal(size=(batch_size, hidden)).astype("float32")
    initial_state = {
        "h": np.zeros((batch_size, hidden), "float32"),
        "row": np.arange(batch_size, dtype="int32"),
        "source": source,
    }

    def step_fn(prev_tokens, state):
        prev = ops.convert_to_numpy(prev_tokens)
        h = np.tanh(
            ops.convert_to_numpy(state["h"]) @ recur
            + embed[prev]
            + ops.convert_to_numpy(state["source"])
        )
        logits = h @ out
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        new_state = {"h": h, "row": state["row"], "source": state["source"]}
        return log_probs, new_state

    return step_fn, initial_state


def penalised(tokens, log_prob_sums, alpha):
    lengths = np.array(
        [list(row).index(END) + 1 if END in list(row) else len(row) for row in tokens]
    )
    return log_prob_sums / decoding.length_penalty(lengths, alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_one_equals_greedy(alpha, seed):
    step_fn, state = make_recurrent_model(9, 6, seed, batch_size=5)
    greedy_tokens, greedy_scores = decoding.greedy_search(
        step_fn, state, 5, START, END, max_length=12
    )
    beam_tokens, beam_scores = decoding.beam_search(
        step_fn, state, 5, START, END, max_length=12, beam_width=1,
        length_penalty=alpha,
    )
    np.testing.assert_array_equal(beam_tokens, greedy_tokens)
    np.testing.assert_allclose(
        beam_scores, penalised(greedy_tokens, greedy_scores, alpha), rtol=1e-9
    )


@pytest.mark.parametrize("alpha", [0.0, 0.6])
@pytest.mark.parametrize("width", [2, 3, 5])
def test_beam_never_scores_below_greedy_under_the_model(alpha, width):
    for seed in range(6):
        step_fn, state = make_recurrent_model(8, 5, 100 + seed, batch_size=4)
        greedy_tokens, _ = decoding.greedy_search(
            step_fn, state, 4, START, END, max_length=10
        )
        beam_tokens, beam_scores = decoding.beam_search(
            step_fn, state, 4, START, END, max_length=10, beam_width=width,
            length_penalty=alpha,
        )
        # Rescore both outputs independently with teacher forcing.
        greedy_rescored = penalised(
            greedy_tokens,
            decoding.sequence_log_prob(step_fn, state, greedy_tokens, START, END),
            alpha,
        )
        beam_rescored = penalised(
            beam_tokens,
            decoding.sequence_log_prob(step_fn, state, beam_tokens, START, END),
            alpha,
        )
        np.testing.assert_allclose(beam_scores, beam_rescored, rtol=1e-6)
        assert np.all(beam_rescored >= greedy_rescored - 1e-9), (
            seed, beam_rescored, greedy_rescored
        )


def test_beam_finds_better_hypothesis_than_greedy():
    """The textbook case: the greedy first token leads to a poor sentence."""
    # Tokens: 3 = "a", 4 = "b". After START: a 0.6, b 0.4. After a: every
    # continuation 0.25 (END among them); after b: END 0.9.
    vocab = 5

    def step_fn(prev_tokens, state):
        prev = ops.convert_to_numpy(prev_tokens)
        probs = np.full((prev.shape[0], vocab), 1e-6)
        for row, token in enumerate(prev):
            if token == START:
                probs[row, 3], probs[row, 4] = 0.6, 0.4
            elif token == 3:
                probs[row, [2, 3, 4, 0]] = 0.25
            else:
                probs[row, END] = 0.9
        return np.log(probs), state

    greedy_tokens, greedy_scores = decoding.greedy_search(
        step_fn, None, 1, START, END, max_length=3
    )
    beam_tokens, beam_scores = decoding.beam_search(
        step_fn, None, 1, START, END, max_length=3, beam_width=2,
        keep_greedy=False,
    )
    assert decoding.strip_special(greedy_tokens, END)[0][0] == 3
    assert decoding.strip_special(beam_tokens, END) == [[4]]
    np.testing.assert_allclose(beam_scores, [np.log(0.4) + np.log(0.9)], rtol=1e-6)
    assert beam_scores[0] > greedy_scores[0]


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_wide_beam_finds_the_exhaustive_optimum(alpha):
    vocab, max_length = 5, 4
    step_fn, state = make_recurrent_model(vocab, 4, 7, batch_size=2, sharpness=1.0)
    # Every sequence of up to max_length tokens that ends at its first END
    # (or runs out at max_length) is a hypothesis.
    best = np.full((2,), -np.inf)
    for length in range(1, max_length + 1):
        for body in itertools.product(range(vocab), repeat=length):
            if END in body[:-1] or (body[-1] != END and length < max_length):
                continue
            tokens = np.array([body, body], dtype="int32")
            total = decoding.sequence_log_prob(step_fn, state, tokens, START, END)
            best = np.maximum(best, penalised(tokens, total, alpha))
    _, scores = decoding.beam_search(
        step_fn, state, 2, START, END, max_length=max_length,
        beam_width=vocab ** (max_length - 1), length_penalty=alpha,
    )
    np.testing.assert_allclose(scores, best, rtol=1e-9)


def test_rows_stay_with_their_batch_item():
    step_fn, state = make_recurrent_model(7, 4, 3, batch_size=3)
    width = 4

    def checking_step(prev_tokens, state):
        rows = ops.convert_to_numpy(state["row"])
        np.testing.assert_array_equal(rows, np.repeat(np.arange(3), width))
        return step_fn(prev_tokens, state)

    tokens, scores = decoding.beam_search(
        checking_step, state, 3, START, END, max_length=8, beam_width=width,
        keep_greedy=False, return_all=True,
    )
    assert tokens.shape[:2] == (3, width)
    assert np.all(np.diff(scores, axis=1) <= 0), "hypotheses are best first"


def test_decoding_stops_when_every_row_has_ended():
    calls = []

    def step_fn(prev_tokens, state):
        calls.append(1)
        n = ops.convert_to_numpy(prev_tokens).shape[0]
        log_probs = np.full((n, 6), -5.0)
        # Row r emits token 3 for r steps, then END.
        count = ops.convert_to_numpy(state)
        log_probs[np.arange(n), np.where(count > 0, 3, END)] = -0.1
        return log_probs, count - 1

    state = np.array([0, 2, 1], dtype="int32")
    tokens, _ = decoding.greedy_search(step_fn, state, 3, START, END, max_length=50)
    assert tokens.shape == (3, 3)
    assert len(calls) == 3
    np.testing.assert_array_equal(tokens, [[END, PAD, PAD], [3, 3, END], [3, END, PAD]])
    assert decoding.strip_special(tokens, END) == [[], [3, 3], [3]]

    calls.clear()
    beam_tokens, _ = decoding.beam_search(
        step_fn, state, 3, START, END, max_length=50, beam_width=2
    )
    np.testing.assert_array_equal(beam_tokens[:, :3], tokens)
    assert len(calls) < 50


def test_max_length_bounds_the_output():
    step_fn, state = make_recurrent_model(6, 4, 11, batch_size=2)

    def never_ends(prev_tokens, state):
        log_probs, state = step_fn(prev_tokens, state)
        log_probs = np.array(log_probs)
        log_probs[:, END] = -1e4
        return log_probs, state

    tokens, _ = decoding.greedy_search(never_ends, state, 2, START, END, max_length=5)
    assert tokens.shape == (2, 5)
    tokens, _ = decoding.beam_search(never_ends, state, 2, START, END, max_length=5)
    assert tokens.shape == (2, 5) and not np.any(tokens == END)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"beam_width": 0}, "beam_width"),
        ({"length_penalty": -1.0}, "length_penalty"),
        ({"max_length": 0}, "max_length"),
        ({"batch_size": 0}, "batch_size"),
        ({"end_id": -1}, "end_id"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    step_fn, state = make_recurrent_model(6, 4, 0, batch_size=2)
    args = dict(batch_size=2, start_id=START, end_id=END, max_length=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        decoding.beam_search(step_fn, state, **args)


def test_wrong_log_prob_shape_is_reported():
    def step_fn(prev_tokens, state):
        return np.zeros((1, 5)), state

    with pytest.raises(ValueError, match="rows"):
        decoding.greedy_search(step_fn, None, 3, START, END, max_length=4)
