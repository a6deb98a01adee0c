"""Weight names, order and shapes of every block, and unit_forget_bias, per SPEC.md.

Users port weights by these names and this order (`get_weights`/`set_weights`),
so they are public API.
"""

import keras
import numpy as np
import pytest

import keras_gated as kg

D, H = 3, 5
PEEP = {g: f"{g}_gate_peephole_weights" for g in ("input", "forget", "output")}

LAYOUTS = [
    ("peephole", kg.PeepholeLSTMCell, kg.PeepholeLSTM, {}, [
        ("kernel", (D, 4 * H)), ("recurrent_kernel", (H, 4 * H)), ("bias", (4 * H,)),
        (PEEP["input"], (H,)), (PEEP["forget"], (H,)), (PEEP["output"], (H,)),
    ]),
    # Peepholes given out of order are still created in the order i, f, o.
    ("peephole-of", kg.PeepholeLSTMCell, kg.PeepholeLSTM, {"peepholes": ("o", "f")}, [
        ("kernel", (D, 4 * H)), ("recurrent_kernel", (H, 4 * H)), ("bias", (4 * H,)),
        (PEEP["forget"], (H,)), (PEEP["output"], (H,)),
    ]),
    ("peephole-none-nobias", kg.PeepholeLSTMCell, kg.PeepholeLSTM,
     {"peepholes": (), "use_bias": False}, [
        ("kernel", (D, 4 * H)), ("recurrent_kernel", (H, 4 * H)),
    ]),
    ("coupled", kg.CoupledLSTMCell, kg.CoupledLSTM, {}, [
        ("kernel", (D, 3 * H)), ("recurrent_kernel", (H, 3 * H)), ("bias", (3 * H,)),
    ]),
    ("coupled-fo", kg.CoupledLSTMCell, kg.CoupledLSTM, {"peepholes": "fo"}, [
        ("kernel", (D, 3 * H)), ("recurrent_kernel", (H, 3 * H)), ("bias", (3 * H,)),
        (PEEP["forget"], (H,)), (PEEP["output"], (H,)),
    ]),
    ("untied", kg.UntiedLSTMCell, kg.UntiedLSTM, {}, [
        ("kernel", (D, 5 * H)), ("recurrent_kernel", (H, 4 * H)),
        ("untied_kernel", (H, H)), ("bias", (5 * H,)),
    ]),
]


def names_and_shapes(layer):
    return [(w.name, tuple(w.shape)) for w in layer.weights]


@pytest.mark.parametrize("case", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_cell_and_layer_weight_layout(case):
    _, cell_class, layer_class, kwargs, expected = case
    cell = cell_class(H, **kwargs)
    cell.build((None, D))
    assert names_and_shapes(cell) == expected
    assert [a.shape for a in cell.get_weights()] == [s for _, s in expected]
    layer = layer_class(H, **kwargs)
    layer.build((None, 7, D))
    assert names_and_shapes(layer) == expected
    wrapped = keras.layers.RNN(cell_class(H, **kwargs))
    wrapped.build((None, 7, D))
    assert names_and_shapes(wrapped) == expected


@pytest.mark.parametrize(
    "carry_gate, expected",
    [
        ("coupled", ["kernel", "bias", "transform_kernel", "transform_bias"]),
        ("free", ["kernel", "bias", "transform_kernel", "transform_bias",
                  "carry_kernel", "carry_bias"]),
    ],
)
def test_highway_weight_layout_and_gate_biases(carry_gate, expected):
    layer = kg.Highway(carry_gate=carry_gate)
    layer.build((None, H))
    assert [w.name for w in layer.weights] == expected
    for w in layer.weights:
        assert tuple(w.shape) == ((H, H) if w.name.endswith("kernel") else (H,))
    # SPEC: b_T starts negative (default -2) so a deep stack starts near identity.
    np.testing.assert_array_equal(layer.transform_bias.numpy(), np.full(H, -2.0))
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(H))


# (cell class, position of the forget block among the bias blocks, number of blocks)
FORGET_BLOCK = [
    (kg.PeepholeLSTMCell, 1, 4),
    (kg.CoupledLSTMCell, 0, 3),
    (kg.UntiedLSTMCell, 1, 5),
]


@pytest.mark.parametrize("unit_forget_bias", [True, False])
@pytest.mark.parametrize(
    "cell_class, forget_index, num_blocks", FORGET_BLOCK,
    ids=[c[0].__name__ for c in FORGET_BLOCK],
)
def test_unit_forget_bias_fills_the_forget_block(
    cell_class, forget_index, num_blocks, unit_forget_bias
):
    cell = cell_class(
        H, unit_forget_bias=unit_forget_bias,
        bias_initializer=keras.initializers.Constant(0.25),
    )
    cell.build((None, D))
    expected = np.full((num_blocks, H), 0.25)
    if unit_forget_bias:
        expected[forget_index] = 1.0
    np.testing.assert_array_equal(cell.bias.numpy(), expected.reshape(-1))


def test_unit_forget_bias_matches_keras_lstm_cell():
    ours = kg.PeepholeLSTMCell(H, bias_initializer="random_normal")
    theirs = keras.layers.LSTMCell(H)
    ours.build((None, D))
    theirs.build((None, D))
    forget = slice(H, 2 * H)
    np.testing.assert_array_equal(ours.bias.numpy()[forget], theirs.bias.numpy()[forget])
    # The other blocks come from bias_initializer, not ones.
    assert np.all(ours.bias.numpy()[:H] != 1.0)
