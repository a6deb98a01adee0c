"""Helpers of the cells' written backward steps, shared with the fast loops.

A module of its own so that the fast paths (`keras_gated._fast`) and the
cells (`keras_gated.layers`) both use it without importing each other.
"""

from keras import ops


def add_gradients(*terms):
    """The sum of the terms that are not None (None if all are).

    A term may be a list of terms. Three or more are summed as one
    reduction over their stack rather than a chain of additions: inside the
    fast path's nested loops, TensorFlow's graph optimizer turns a chain of
    three or more additions into an `AccumulateNV2` over a temporary
    variable, whose name then collides between two runs of the inner loop
    (AlreadyExistsError; seen with a depth-gated stack at (32, 100, 128,
    256), cf. TensorFlow issue #37740).
    """
    present = []
    for term in terms:
        if isinstance(term, (list, tuple)):
            present += [t for t in term if t is not None]
        elif term is not None:
            present.append(term)
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    if len(present) == 2:
        return present[0] + present[1]
    return ops.sum(ops.stack(present), axis=0)
