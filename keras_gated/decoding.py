"""Greedy and beam-search decoding for any step-by-step sequence model.

Both searches know nothing about the model: they drive a `step_fn` that
takes the previous token of every row and the decoder state, and returns
the log-probabilities of the next token and the new state.

    step_fn(prev_tokens, state) -> (log_probs, new_state)

* `prev_tokens`: int32 array of shape `(N,)`; at the first step every entry
  is `start_id`.
* `state`: a nested structure (tuple, list, dict, or `None`) of arrays whose
  leading dimension is `N`: recurrent states, but also anything the step
  needs per row, such as the encoder outputs an attention decoder reads, or
  an attention mask. Arrays may be NumPy arrays or tensors of the Keras
  backend; the searches only index them along axis 0 with `keras.ops`.
* `log_probs`: float array `(N, V)` of log-probabilities (apply
  `log_softmax` to logits first). Rows need not be normalised exactly, but
  the scores returned are sums of these numbers.

`N` is `batch_size` for greedy search and `batch_size * beam_width` for beam
search: beam search repeats every row of `initial_state` `beam_width` times
(rows `b * beam_width .. b * beam_width + beam_width - 1` belong to batch
item `b`) and reorders the rows after every step, so a `step_fn` written for
greedy search works unchanged.

Both return `(tokens, scores)`:

* `tokens`: int32 NumPy array `(batch_size, L)`, `L <= max_length`, without
  the start token. A finished row contains its `end_id` and `pad_id` after
  it; a row that reached `max_length` without `end_id` has none.
  `strip_special(tokens, end_id)` turns it into lists of token ids.
* `scores`: float NumPy array `(batch_size,)`. Greedy: the sum of the log-
  probabilities of the returned tokens (the end token included). Beam: that
  sum divided by the length penalty (see `length_penalty`), the number the
  beam ranks hypotheses by; with `length_penalty=0.0` it is the plain sum.

Example:

>>> def step_fn(prev_tokens, state):
...     logits = decoder_step_model([prev_tokens, *state])  # your model
...     return keras.ops.log_softmax(logits[0]), logits[1:]
>>> tokens, scores = beam_search(step_fn, encoder_states, batch_size=8,
...                              start_id=1, end_id=2, max_length=40,
...                              beam_width=4, length_penalty=0.6)
>>> sentences = strip_special(tokens, end_id=2)
"""

import math

import numpy as np
from keras import ops
from keras import tree

# Stands in for -inf: an impossible candidate must still compare and add
# without producing NaN (-inf - -inf), so it is a large finite number.
NEG_INF = -1.0e9


def _check_search_args(batch_size, max_length, start_id, end_id):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(
            f"`batch_size` must be a positive integer, the number of "
            f"sequences decoded at once. Received: batch_size={batch_size!r}"
        )
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0:
        raise ValueError(
            "`max_length` must be a positive integer, the most tokens a "
            f"hypothesis may have (end token included). Received: "
            f"max_length={max_length!r}"
        )
    for name, value in (("start_id", start_id), ("end_id", end_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(
                f"`{name}` must be a non-negative integer token id. "
                f"Received: {name}={value!r}"
            )


def _log_probs_to_numpy(log_probs, rows):
    log_probs = np.asarray(ops.convert_to_numpy(log_probs), dtype="float64")
    if log_probs.ndim != 2 or log_probs.shape[0] != rows:
        raise ValueError(
            "`step_fn` must return log-probabilities of shape (N, vocab_size) "
            f"with N={rows} rows (one per hypothesis); it returned shape "
            f"{log_probs.shape}."
        )
    return log_probs


def _take_rows(state, indices):
    if state is None:
        return None
    indices = ops.convert_to_tensor(np.asarray(indices, dtype="int32"))
    return tree.map_structure(lambda x: ops.take(x, indices, axis=0), state)


def length_penalty(lengths, alpha):
    """GNMT length penalty `((5 + length) / 6) ** alpha` (Wu et al. 2016).

    Beam search ranks a hypothesis by `log P(y | x) / length_penalty(|y|,
    alpha)`. `alpha=0` gives 1 for every length: plain log-probability,
    which favours short outputs. `alpha=1` is close to dividing by the
    length (per-token average log-probability); 0.6 to 1.0 is usual for
    translation. `lengths` count the generated tokens, end token included.
    """
    lengths = np.asarray(lengths, dtype="float64")
    return ((5.0 + lengths) / 6.0) ** float(alpha)


def strip_special(tokens, end_id, pad_id=None):
    """Lists of token ids of every row of `tokens`, cut before `end_id`.

    `pad_id`, if given, is also removed wherever it occurs before the end.
    """
    sequences = []
    for row in np.asarray(tokens):
        out = []
        for token in row.tolist():
            if token == end_id:
                break
            if pad_id is not None and token == pad_id:
                continue
            out.append(int(token))
        sequences.append(out)
    return sequences


def greedy_search(
    step_fn, initial_state, batch_size, start_id, end_id, max_length, pad_id=0
):
    """Decodes by taking the most probable token at every step.

    Stops as soon as every row has produced `end_id`, or after `max_length`
    tokens. See the module docstring for `step_fn` and the outputs.

    Args:
        step_fn: `step_fn(prev_tokens (N,), state) -> (log_probs (N, V),
            new_state)`.
        initial_state: Nested structure of arrays with leading dimension
            `batch_size`, or `None`.
        batch_size: Number of sequences decoded together.
        start_id: Token fed at the first step.
        end_id: End-of-sentence token.
        max_length: Most tokens generated per row (end token included).
        pad_id: Token written after the end of a finished row.

    Returns:
        `(tokens, scores)`: int32 `(batch_size, L)` and float
        `(batch_size,)`, the sum of the log-probabilities of each row's
        tokens.
    """
    _check_search_args(batch_size, max_length, start_id, end_id)
    prev = np.full((batch_size,), start_id, dtype="int32")
    state = initial_state
    finished = np.zeros((batch_size,), dtype=bool)
    scores = np.zeros((batch_size,), dtype="float64")
    steps = []
    for _ in range(max_length):
        log_probs, state = step_fn(ops.convert_to_tensor(prev), state)
        log_probs = _log_probs_to_numpy(log_probs, batch_size)
        best = np.argmax(log_probs, axis=-1).astype("int32")
        best_log_probs = log_probs[np.arange(batch_size), best]
        scores = np.where(finished, scores, scores + best_log_probs)
        emitted = np.where(finished, pad_id, best).astype("int32")
        steps.append(emitted)
        finished = finished | (best == end_id)
        prev = emitted
        if finished.all():
            break
    return np.stack(steps, axis=1), scores


def beam_search(
    step_fn,
    initial_state,
    batch_size,
    start_id,
    end_id,
    max_length,
    beam_width=4,
    length_penalty=0.0,
    pad_id=0,
    keep_greedy=True,
    return_all=False,
):
    """Decodes with a beam of `beam_width` hypotheses per batch item.

    At every step each live hypothesis is extended by every token, and the
    `beam_width` best of the `beam_width * V` candidates survive, ranked by

        score(y) = log P(y | x) / ((5 + |y|) / 6) ** length_penalty

    (GNMT, Wu et al. 2016; `|y|` counts the end token). A hypothesis that
    produced `end_id` is finished: it stays in the beam with a frozen score
    and competes with the live ones, so it is dropped only when
    `beam_width` better hypotheses exist. The search stops when every
    hypothesis in the beam of every batch item is finished, or after
    `max_length` steps.

    With `beam_width=1` this is exactly greedy search (all candidates at a
    step have the same length, so the penalty does not change their order).
    A beam wider than one can in general lose the greedy path and return a
    worse hypothesis; with `keep_greedy=True` (the default) the greedy
    hypothesis is decoded too (one extra row per batch item) and returned
    instead whenever it scores higher, so the result never scores below
    greedy search's under the model.

    Args:
        step_fn: `step_fn(prev_tokens (N,), state) -> (log_probs (N, V),
            new_state)` with `N = batch_size * beam_width`.
        initial_state: Nested structure of arrays with leading dimension
            `batch_size` (tiled here to `batch_size * beam_width`), or
            `None`.
        batch_size: Number of source sequences decoded together.
        start_id: Token fed at the first step.
        end_id: End-of-sentence token.
        max_length: Most tokens generated per hypothesis (end included).
        beam_width: Hypotheses kept per batch item, a positive integer.
        length_penalty: `alpha` of the GNMT penalty, a float >= 0; 0 ranks by
            plain log-probability.
        pad_id: Token written after the end of a finished hypothesis.
        keep_greedy: Also decode greedily and return the greedy hypothesis
            where it scores higher than the beam's best.
        return_all: Return every hypothesis of the final beam, best first:
            tokens `(batch_size, beam_width, L)`, scores
            `(batch_size, beam_width)`.

    Returns:
        `(tokens, scores)`: int32 `(batch_size, L)` and float
        `(batch_size,)` (see `return_all`); scores are the penalised
        log-probabilities above.
    """
    _check_search_args(batch_size, max_length, start_id, end_id)
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width <= 0:
        raise ValueError(
            "`beam_width` must be a positive integer, the number of "
            f"hypotheses kept per input. Received: beam_width={beam_width!r}"
        )
    if (
        isinstance(length_penalty, bool)
        or not isinstance(length_penalty, (int, float))
        or not math.isfinite(length_penalty)
        or length_penalty < 0
    ):
        raise ValueError(
            "`length_penalty` must be a float >= 0, the GNMT alpha (0: no "
            "penalty, 0.6-1.0: usual for translation). Received: "
            f"length_penalty={length_penalty!r}"
        )
    alpha = float(length_penalty)
    k = beam_width
    rows = batch_size * k

    state = _take_rows(initial_state, np.repeat(np.arange(batch_size), k))
    prev = np.full((rows,), start_id, dtype="int32")
    # Only the first copy of each batch item is live at the start, so the
    # beam does not fill up with k copies of the same hypothesis.
    log_prob_sums = np.tile(
        np.array([0.0] + [NEG_INF] * (k - 1), dtype="float64"), batch_size
    )
    lengths = np.zeros((rows,), dtype="int64")
    finished = np.zeros((rows,), dtype=bool)
    history = np.zeros((rows, 0), dtype="int32")

    for step in range(max_length):
        log_probs, state = step_fn(ops.convert_to_tensor(prev), state)
        log_probs = _log_probs_to_numpy(log_probs, rows)
        vocab_size = log_probs.shape[1]
        # A finished hypothesis has one continuation, free of cost, which
        # keeps its sum and length unchanged.
        frozen = np.full((vocab_size,), NEG_INF)
        frozen[pad_id if pad_id < vocab_size else 0] = 0.0
        log_probs = np.where(finished[:, None], frozen[None, :], log_probs)

        cand_sums = log_prob_sums[:, None] + log_probs  # (rows, V)
        cand_lengths = np.where(finished, lengths, lengths + 1)
        cand_scores = cand_sums / length_penalty_fn(cand_lengths, alpha)[:, None]
        # Impossible candidates keep NEG_INF whatever the penalty.
        cand_scores = np.where(cand_sums <= NEG_INF / 2, NEG_INF, cand_scores)

        flat = cand_scores.reshape(batch_size, k * vocab_size)
        # Stable sort: among equal scores the lower beam / token index wins,
        # which is what makes beam_width=1 agree with greedy's argmax.
        top = np.argsort(-flat, axis=1, kind="stable")[:, :k]
        parent = top // vocab_size + (np.arange(batch_size) * k)[:, None]
        token = (top % vocab_size).astype("int32")
        parent, token = parent.reshape(-1), token.reshape(-1)

        was_finished = finished[parent]
        log_prob_sums = cand_sums[parent, token]
        lengths = cand_lengths[parent]
        emitted = np.where(was_finished, pad_id, token).astype("int32")
        history = np.concatenate([history[parent], emitted[:, None]], axis=1)
        finished = was_finished | (token == end_id)
        state = _take_rows(state, parent)
        prev = emitted
        if finished.all():
            break

    scores = log_prob_sums / length_penalty_fn(lengths, alpha)
    scores = np.where(log_prob_sums <= NEG_INF / 2, NEG_INF, scores)
    tokens = history.reshape(batch_size, k, -1)
    scores = scores.reshape(batch_size, k)
    order = np.argsort(-scores, axis=1, kind="stable")
    tokens = np.take_along_axis(tokens, order[:, :, None], axis=1)
    scores = np.take_along_axis(scores, order, axis=1)

    if keep_greedy and k > 1:
        greedy_tokens, greedy_sums = greedy_search(
            step_fn, initial_state, batch_size, start_id, end_id, max_length,
            pad_id=pad_id,
        )
        greedy_lengths = np.array(
            [_hypothesis_length(row, end_id) for row in greedy_tokens]
        )
        greedy_scores = greedy_sums / length_penalty_fn(greedy_lengths, alpha)
        width = max(tokens.shape[2], greedy_tokens.shape[1])
        tokens = _pad_to(tokens, width, pad_id)
        greedy_tokens = _pad_to(greedy_tokens, width, pad_id)
        better = greedy_scores > scores[:, 0]
        if better.any():
            # The greedy hypothesis takes the first place; the rest shift.
            shifted_tokens = np.concatenate(
                [greedy_tokens[:, None, :], tokens[:, :-1]], axis=1
            )
            shifted_scores = np.concatenate(
                [greedy_scores[:, None], scores[:, :-1]], axis=1
            )
            tokens = np.where(better[:, None, None], shifted_tokens, tokens)
            scores = np.where(better[:, None], shifted_scores, scores)

    if return_all:
        return tokens, scores
    return tokens[:, 0], scores[:, 0]


# `beam_search` has an argument named `length_penalty`; the function is
# reached under this second name inside it.
length_penalty_fn = length_penalty


def _hypothesis_length(row, end_id):
    row = np.asarray(row).tolist()
    return row.index(end_id) + 1 if end_id in row else len(row)


def _pad_to(tokens, width, pad_id):
    missing = width - tokens.shape[-1]
    if missing <= 0:
        return tokens
    pad_shape = tokens.shape[:-1] + (missing,)
    return np.concatenate(
        [tokens, np.full(pad_shape, pad_id, dtype=tokens.dtype)], axis=-1
    )


def sequence_log_prob(step_fn, initial_state, tokens, start_id, end_id):
    """Sum of log-probabilities the model gives each row of `tokens`.

    Feeds `tokens` (teacher forcing, as returned by the searches) through
    `step_fn` and adds the log-probability of every token up to and
    including the first `end_id`. Useful to rescore hypotheses, and to check
    a search's scores.
    """
    tokens = np.asarray(tokens, dtype="int32")
    batch_size, steps = tokens.shape
    prev = np.full((batch_size,), start_id, dtype="int32")
    state = initial_state
    done = np.zeros((batch_size,), dtype=bool)
    totals = np.zeros((batch_size,), dtype="float64")
    for t in range(steps):
        log_probs, state = step_fn(ops.convert_to_tensor(prev), state)
        log_probs = _log_probs_to_numpy(log_probs, batch_size)
        token = tokens[:, t]
        totals += np.where(done, 0.0, log_probs[np.arange(batch_size), token])
        done = done | (token == end_id)
        prev = token
        if done.all():
            break
    return totals
