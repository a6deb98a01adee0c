"""The recurrent blocks every protocol, error, backend and learning test runs over.

Each case is `(layer_class, cell_class, kwargs)`: `layer_class(units, **kwargs)`
and `keras.layers.RNN(cell_class(units, **kwargs))` must compute the same
thing. A new recurrent block joins every test by one line in `RNN_CASES`
(e.g. depth-gated and grid layers, with their own kwargs such as
`{"num_layers": 2}`). Tests only use `cell.state_size`, so cells with more
than two states work unchanged.
"""

import numpy as np
import pytest

import keras_gated as kg


def case(layer_class, cell_class, kwargs, id, variant=False):
    """One recurrent block; `variant=True` marks a second configuration of a
    class already listed (the slow tests run once per class only)."""
    return pytest.param(layer_class, cell_class, kwargs, id=id), variant


_CASES = [
    case(kg.PeepholeLSTM, kg.PeepholeLSTMCell, {}, "peephole"),
    case(kg.PeepholeLSTM, kg.PeepholeLSTMCell, {"peepholes": "fo"}, "peephole-fo", variant=True),
    case(kg.CoupledLSTM, kg.CoupledLSTMCell, {}, "coupled"),
    case(kg.CoupledLSTM, kg.CoupledLSTMCell, {"peepholes": "fo"}, "coupled-peep", variant=True),
    case(kg.UntiedLSTM, kg.UntiedLSTMCell, {}, "untied"),
    # Zoneout is left out here: the step-by-step path draws its keep masks
    # step by step, the fused one all at once, so the two differ in
    # training (tests/test_options.py and jax_fast_script.py test it).
    case(kg.LSTM, kg.LSTMCell,
         {"layer_norm": True, "projection_units": 3, "cell_clip": 1.0}, "lstm-options",
         variant=True),
]

# Every configuration: for the fast tests.
RNN_CASES = [param for param, _ in _CASES]
# One configuration per class: for the slow tests (training, subprocesses, export).
RNN_CLASSES = [param for param, variant in _CASES if not variant]


def randomize_weights(layer, seed=0, scale=0.5):
    """Gives every weight random values, so that no zero bias or zero
    peephole hides a difference between two computations."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [scale * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    )


def sequences(batch=3, timesteps=6, features=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, timesteps, features)).astype("float32")


def flat_state_sizes(cell):
    sizes = cell.state_size
    return [sizes] if isinstance(sizes, int) else list(sizes)
