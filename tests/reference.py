"""Float64 NumPy references for the blocks of keras-gated, written from SPEC.md.

Every step function has the form

    step(x, states, weights, **options) -> (output, new_states)

where `x` is one time step (batch, D), `states` a list of (batch, H) arrays and
`weights` a dict keyed by the weight names that SPEC.md gives (the names users
port weights with). A weight that a configuration does not create (a peephole
left out, `bias` with `use_bias=False`) is simply absent from the dict.

`run_sequence(step, inputs, states, weights, **options)` runs any step over a
(batch, T, D) sequence and returns all outputs and the final states.

This module is independent of the library on purpose: it does not import
keras_gated, so a shared mistake cannot hide. Other blocks add their own
`<block>_step` functions here in the same form.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def legacy_hard_sigmoid(x):
    """Keras 2's hard sigmoid: clip(0.2 x + 0.5, 0, 1)."""
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def linear(x):
    return x


def softsign(x):
    return x / (1.0 + np.abs(x))


def relu(x):
    return np.maximum(x, 0.0)


def gate_blocks(x, h, weights, num_blocks, recurrent_kernel="recurrent_kernel"):
    """The k gate blocks W x + U h + b, split as LSTMCell splits i, f, c, o."""
    z = x @ weights["kernel"]
    if h is not None:
        z = z + h @ weights[recurrent_kernel]
    if "bias" in weights:
        z = z + weights["bias"]
    return np.split(z, num_blocks, axis=-1)


def _peep(weights, name, c):
    """p ⊙ c for a peephole that exists, else nothing."""
    if name in weights:
        return weights[name] * c
    return 0.0


# ---------------------------------------------------------------- PeepholeLSTM
def peephole_lstm_step(
    x, states, weights, recurrent_activation=sigmoid, activation=np.tanh
):
    """SPEC PeepholeLSTMCell: blocks i, f, c, o; o peeps at the new cell."""
    h, c = states
    zi, zf, zc, zo = gate_blocks(x, h, weights, 4)
    i = recurrent_activation(zi + _peep(weights, "input_gate_peephole_weights", c))
    f = recurrent_activation(zf + _peep(weights, "forget_gate_peephole_weights", c))
    c_new = f * c + i * activation(zc)
    o = recurrent_activation(
        zo + _peep(weights, "output_gate_peephole_weights", c_new)
    )
    h_new = o * activation(c_new)
    return h_new, [h_new, c_new]


# ----------------------------------------------------------------- CoupledLSTM
def coupled_lstm_step(
    x, states, weights, recurrent_activation=sigmoid, activation=np.tanh
):
    """SPEC CoupledLSTMCell (CIFG): blocks f, c, o; the input gate is 1 - f."""
    h, c = states
    zf, zc, zo = gate_blocks(x, h, weights, 3)
    f = recurrent_activation(zf + _peep(weights, "forget_gate_peephole_weights", c))
    c_new = f * c + (1.0 - f) * activation(zc)
    o = recurrent_activation(
        zo + _peep(weights, "output_gate_peephole_weights", c_new)
    )
    h_new = o * activation(c_new)
    return h_new, [h_new, c_new]


# ------------------------------------------------------------------ UntiedLSTM
def untied_lstm_step(
    x, states, weights, recurrent_activation=sigmoid, activation=np.tanh
):
    """SPEC UntiedLSTMCell: kernel/bias blocks i, f, c, o, z; recurrent i, f, o, z."""
    h, c = states
    wx = x @ weights["kernel"]
    if "bias" in weights:
        wx = wx + weights["bias"]
    xi, xf, xc, xo, xz = np.split(wx, 5, axis=-1)
    hi, hf, ho, hz = np.split(h @ weights["recurrent_kernel"], 4, axis=-1)
    i = recurrent_activation(xi + hi)
    f = recurrent_activation(xf + hf)
    o = recurrent_activation(xo + ho)
    z = recurrent_activation(xz + hz)
    g = activation(xc + (z * activation(c)) @ weights["untied_kernel"])
    c_new = f * c + i * g
    h_new = o * activation(c_new)
    return h_new, [h_new, c_new]


# ------------------------------------------------ LSTM and the LSTM options
def lstm_step(x, states, weights, recurrent_activation=sigmoid, activation=np.tanh):
    """SPEC LSTMCell: blocks i, f, c, o, as keras.layers.LSTMCell."""
    h, c = states
    zi, zf, zc, zo = gate_blocks(x, h, weights, 4)
    i, f, o = recurrent_activation(zi), recurrent_activation(zf), recurrent_activation(zo)
    c_new = f * c + i * activation(zc)
    h_new = o * activation(c_new)
    return h_new, [h_new, c_new]


def layer_norm(values, gamma, beta, epsilon=1e-3):
    """Ba et al.'s normalisation over the last axis, as tfa's LayerNormLSTMCell."""
    mean = values.mean(axis=-1, keepdims=True)
    variance = ((values - mean) ** 2).mean(axis=-1, keepdims=True)
    return (values - mean) / np.sqrt(variance + epsilon) * gamma + beta


# Kernel and recurrent gate blocks of the cells that take the LSTM options.
OPTION_CELL_BLOCKS = {
    "lstm": ("ifco", "ifco"),
    "peephole": ("ifco", "ifco"),
    "coupled": ("fco", "fco"),
    "untied": ("ifcoz", "ifoz"),
    "depth_gated": ("ifcod", "ifco"),
}


def lstm_options_step(
    x, states, weights, cell="lstm", cell_clip=None, epsilon=1e-3, keep=(0.0, 0.0),
    lower=None,
):
    """SPEC "Options of the LSTM-family cells", for `cell` in OPTION_CELL_BLOCKS.

    layer_norm when `kernel_norm_gamma` is among the weights, projection when
    `projection_kernel` is; `cell_clip` as given; zoneout's `keep = (d_c,
    d_h)`: this step's keep masks in training, the rates at inference (0
    without zoneout). Peepholes (peephole, coupled and depth-gated cells)
    read the memory as carried. For the depth-gated layer (SPEC
    "DepthGatedLSTMCell") `lower` is l_t, the carried memory of the layer
    below; None for the first layer, whose l_t is `x depth_projection`, or
    x itself without that weight.
    """
    h, c = states
    kernel_blocks, recurrent_blocks = OPTION_CELL_BLOCKS[cell]
    wx = x @ weights["kernel"]
    uh = h @ weights["recurrent_kernel"]
    if "kernel_norm_gamma" in weights:
        wx = layer_norm(wx, weights["kernel_norm_gamma"], weights["kernel_norm_beta"], epsilon)
        uh = layer_norm(
            uh, weights["recurrent_norm_gamma"], weights["recurrent_norm_beta"], epsilon
        )
    if "bias" in weights:
        wx = wx + weights["bias"]
    z = dict(zip(kernel_blocks, np.split(wx, len(kernel_blocks), axis=-1)))
    for gate, block in zip(recurrent_blocks, np.split(uh, len(recurrent_blocks), axis=-1)):
        z[gate] = z[gate] + block
    sig, tanh = sigmoid, np.tanh
    if cell == "untied":
        i, f, o, zt = sig(z["i"]), sig(z["f"]), sig(z["o"]), sig(z["z"])
        update = f * c + i * tanh(z["c"] + (zt * tanh(c)) @ weights["untied_kernel"])
    elif cell == "depth_gated":
        if lower is None:
            lower = x @ weights["depth_projection"] if "depth_projection" in weights else x
        i = sig(z["i"] + _peep(weights, "input_gate_peephole_weights", c))
        f = sig(z["f"] + _peep(weights, "forget_gate_peephole_weights", c))
        d = sig(
            z["d"] + weights["depth_gate_cell_weights"] * c
            + weights["depth_gate_lower_weights"] * lower
        )
        update = d * lower + f * c + i * tanh(z["c"])
    elif cell == "coupled":
        f = sig(z["f"] + _peep(weights, "forget_gate_peephole_weights", c))
        update = f * c + (1.0 - f) * tanh(z["c"])
    else:
        i = sig(z["i"] + _peep(weights, "input_gate_peephole_weights", c))
        f = sig(z["f"] + _peep(weights, "forget_gate_peephole_weights", c))
        update = f * c + i * tanh(z["c"])
    if "state_norm_gamma" in weights:
        update = layer_norm(
            update, weights["state_norm_gamma"], weights["state_norm_beta"], epsilon
        )
    if cell_clip is not None:
        update = np.clip(update, -cell_clip, cell_clip)
    keep_c, keep_h = keep
    c_new = keep_c * c + (1.0 - keep_c) * update
    if cell != "untied":
        o = sig(z["o"] + _peep(weights, "output_gate_peephole_weights", c_new))
    h_new = o * tanh(c_new)
    if "projection_kernel" in weights:
        h_new = h_new @ weights["projection_kernel"]
    h_new = keep_h * h + (1.0 - keep_h) * h_new
    return h_new, [h_new, c_new]


# --------------------------------------------------------------------- Highway
def highway(x, weights, activation=relu, carry_gate="coupled", gate_activation=sigmoid):
    """SPEC Highway: y = T ⊙ act(W_H x + b_H) + C ⊙ x, C = 1 - T or σ(W_C x + b_C)."""
    h = x @ weights["kernel"]
    if "bias" in weights:
        h = h + weights["bias"]
    t = gate_activation(x @ weights["transform_kernel"] + weights["transform_bias"])
    if carry_gate == "coupled":
        carry = 1.0 - t
    elif carry_gate == "free":
        carry = gate_activation(x @ weights["carry_kernel"] + weights["carry_bias"])
    else:
        raise ValueError(f"carry_gate must be 'coupled' or 'free', got {carry_gate!r}")
    return t * activation(h) + carry * x


# -------------------------------------------------------------------- sequences
def run_sequence(step, inputs, states, weights, **options):
    """Run `step` over inputs (batch, T, D); return outputs (batch, T, H), final states."""
    outputs = []
    for t in range(inputs.shape[1]):
        output, states = step(inputs[:, t], states, weights, **options)
        outputs.append(output)
    return np.stack(outputs, axis=1), states


def numerical_gradient(fn, array, eps=1e-6, indices=None):
    """Central finite differences of the scalar `fn()` w.r.t. `array`, changed in place.

    `indices` (flat) limits the entries checked; the others stay NaN.
    """
    grad = np.full(array.shape, np.nan)
    flat = array.reshape(-1)  # a view: writing it perturbs `array`
    flat_grad = grad.reshape(-1)
    for k in range(flat.size) if indices is None else indices:
        saved = flat[k]
        flat[k] = saved + eps
        up = fn()
        flat[k] = saved - eps
        down = fn()
        flat[k] = saved
        flat_grad[k] = (up - down) / (2 * eps)
    return grad
