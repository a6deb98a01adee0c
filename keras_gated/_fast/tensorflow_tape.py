"""The one place the fast path reads TensorFlow's private tape API.

TensorFlow has no public way to ask whether a recording `GradientTape`
watches a tensor; `tensorflow.python.eager.record` answers it (the
functions `tf.custom_gradient` itself consults). `tests/test_fast_path.py`
fails loudly if they move, rather than the fast path silently computing
input gradients nobody asked for.
"""

from tensorflow.python.eager import record


def watched(tensors):
    """Whether a recording gradient tape watches any of `tensors`.

    None when no tape could be recording (`tf.gradients` announces none):
    then nobody can tell.
    """
    if not record.could_possibly_record():
        return None
    return bool(record.should_record_backprop(tensors))
