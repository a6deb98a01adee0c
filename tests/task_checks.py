"""Checks of the task pipelines shared by the TensorFlow tests and the other backends' scripts."""

import numpy as np
from keras import ops

from keras_gated import decoding
from keras_gated.seq2seq import END_ID
from keras_gated.seq2seq import START_ID
from keras_gated.seq2seq import Seq2Seq
from keras_gated.tasks.common.compiled import compiled_inference


def _close(a, b):
    np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), rtol=1e-5, atol=1e-5)


def check_compiled_decoding_reads_the_current_weights():
    """The compiled encoder and decoding step equal the eager ones, before and after new weights."""
    model = Seq2Seq(11, 13, cell="coupled", units=6, embedding_dim=4)
    model.build()
    source = np.array([[3, 4, 5, 0], [6, 7, 0, 0]], dtype="int32")
    start = np.full((2,), START_ID, "int32")
    step = compiled_inference(model, Seq2Seq.step_fn)
    assert compiled_inference(model, Seq2Seq.step_fn) is step
    for _round in range(2):
        encoded = compiled_inference(model, Seq2Seq.encode)(source)
        eager = model.encode(source)
        _close(encoded["memory"], eager["memory"])
        compiled_tokens, _ = decoding.greedy_search(step, encoded, 2, START_ID, END_ID, 6)
        eager_tokens, _ = decoding.greedy_search(model.step_fn, eager, 2, START_ID, END_ID, 6)
        np.testing.assert_array_equal(compiled_tokens, eager_tokens)
        log_probs, _ = step(start, encoded)
        _close(log_probs, model.step_fn(start, eager)[0])
        # PyTorch: decoding records no autograd graph.
        assert not getattr(log_probs, "requires_grad", False)
        # New weights: a step that had kept the first call's values fails here.
        model.set_weights([w + 0.3 * np.sign(w + 1e-3) for w in model.get_weights()])
