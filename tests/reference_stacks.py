"""NumPy float64 references of the depth-gated LSTM stack and the Grid LSTM.

Written from the equations of SPEC.md (and the papers), with no import from
keras_gated, so that the tests compare two independent implementations.
Weights are passed as plain dicts of arrays; gate blocks are concatenated in
the orders SPEC.md gives (depth-gated kernel: i, f, c, o, d; recurrent
kernel: i, f, c, o; grid kernels: i, f, o, g).
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def blocks(z, count):
    return np.split(z, count, axis=-1)


# -- depth-gated LSTM --------------------------------------------------------


def depth_gated_step(x, lower, h_prev, c_prev, w):
    """One depth-gated layer at one step (Yao et al. 2015, SPEC.md).

    x: the layer's input; lower: l_t, the memory of the layer below at this
    step (already of width H); w: dict with kernel (D x 5H), recurrent_kernel
    (H x 4H), bias (5H, optional), peepholes p_i, p_f, p_o (optional), w_cd,
    w_ld. Returns (h, c, gates).
    """
    zx = x @ w["kernel"] + w.get("bias", 0.0)
    xi, xf, xc, xo, xd = blocks(zx, 5)
    ui, uf, uc, uo = blocks(h_prev @ w["recurrent_kernel"], 4)
    p = {g: w.get("p_" + g, 0.0) for g in "ifo"}
    i = sigmoid(xi + ui + p["i"] * c_prev)
    f = sigmoid(xf + uf + p["f"] * c_prev)
    d = sigmoid(xd + w["w_cd"] * c_prev + w["w_ld"] * lower)
    c = d * lower + f * c_prev + i * np.tanh(xc + uc)
    o = sigmoid(xo + uo + p["o"] * c)
    h = o * np.tanh(c)
    return h, c, {"input": i, "forget": f, "depth": d, "output": o}


def depth_gated_stack(x, layers, states=None, lower_source="memory"):
    """A stack of depth-gated layers over a sequence, built layer by layer.

    x: (batch, T, D); layers: list of weight dicts, bottom first; the first
    may hold `projection` (D x H) for its l_t. states: [h_0, c_0, h_1, ...]
    or None for zeros. `lower_source` is what an upper layer gates on:
    "memory" (SPEC: c_t of the layer below, same step), or, to show what the
    tests rule out, "previous_memory" (c_{t-1} of the layer below) or
    "hidden" (h_t of the layer below). Returns (outputs (batch, T, H),
    final states).
    """
    batch, steps, _ = x.shape
    H = layers[0]["recurrent_kernel"].shape[0]
    if states is None:
        states = [np.zeros((batch, H)) for _ in range(2 * len(layers))]
    states = [np.array(s, dtype=np.float64) for s in states]
    outputs = []
    for t in range(steps):
        previous = list(states)
        below_h = x[:, t]
        projection = layers[0].get("projection")
        below_c = below_h if projection is None else below_h @ projection
        for k, w in enumerate(layers):
            if k > 0 and lower_source == "previous_memory":
                below_c = previous[2 * k - 1]
            elif k > 0 and lower_source == "hidden":
                below_c = below_h
            h, c, _ = depth_gated_step(
                below_h, below_c, previous[2 * k], previous[2 * k + 1], w
            )
            states[2 * k], states[2 * k + 1] = h, c
            below_h, below_c = h, c
        outputs.append(below_h)
    return np.stack(outputs, axis=1), states


def depth_gated_weights_from_keras(weights, num_layers, peepholes="ifo"):
    """Splits `layer.get_weights()` of a DepthGatedLSTM into reference dicts.

    Follows the weight order documented in SPEC.md / the docstring: kernel,
    recurrent_kernel, [depth_projection], bias, peepholes (i, f, o), w_cd,
    w_ld, layer after layer.
    """
    weights = list(weights)
    layers = []
    for k in range(num_layers):
        w = {"kernel": weights.pop(0), "recurrent_kernel": weights.pop(0)}
        H = w["recurrent_kernel"].shape[0]
        if k == 0 and w["kernel"].shape[0] != H:
            w["projection"] = weights.pop(0)
        w["bias"] = weights.pop(0)
        for gate in peepholes:
            w["p_" + gate] = weights.pop(0)
        w["w_cd"] = weights.pop(0)
        w["w_ld"] = weights.pop(0)
        layers.append(w)
    assert not weights, "unused weights"
    return layers


# -- Grid LSTM ---------------------------------------------------------------


def lstm_transform(hidden, memory, kernel, bias):
    """The LSTM transform of a grid block: [i; f; o; g] = [σ; σ; σ; tanh](W H + b)."""
    i, f, o, g = blocks(hidden @ kernel + bias, 4)
    i, f, o, g = sigmoid(i), sigmoid(f), sigmoid(o), np.tanh(g)
    memory = f * memory + i * g
    return o * np.tanh(memory), memory


def grid_block(hiddens, memories, transforms):
    """An N-dimensional grid block (Kalchbrenner et al. 2015, eq. 2).

    hiddens, memories: one (h_i, m_i) per dimension. transforms: one
    (kind, kernel, bias) per dimension, kind in "lstm", "tanh", "identity".
    Every dimension reads H = [h_1; ...; h_N]. Returns [(h'_i, m'_i)].
    """
    H = np.concatenate(hiddens, axis=-1)
    out = []
    for memory, (kind, kernel, bias) in zip(memories, transforms):
        if kind == "lstm":
            out.append(lstm_transform(H, memory, kernel, bias))
        elif kind == "tanh":
            out.append((np.tanh(H @ kernel + bias), np.zeros_like(memory)))
        else:
            out.append((H @ kernel + bias, np.zeros_like(memory)))
    return out


def grid_sequence(x, w, depth, transform="lstm", priority=None, states=None):
    """The 2-D time x depth Grid LSTM over a sequence: a loop over t and levels.

    w: dict with projection (D x H), time_kernel / depth_kernel (one per
    level: lists), time_bias / depth_bias (lists). Returns (outputs
    (batch, T, H), final [h^T_1, m^T_1, ...]).
    """
    batch, steps, _ = x.shape
    H = w["projection"].shape[1]
    if states is None:
        states = [np.zeros((batch, H)) for _ in range(2 * depth)]
    states = [np.array(s, dtype=np.float64) for s in states]
    outputs = []
    for t in range(steps):
        h_depth = x[:, t] @ w["projection"]
        m_depth = np.zeros_like(h_depth)
        for k in range(depth):
            time_t = ("lstm", w["time_kernel"][k], w["time_bias"][k])
            depth_t = (transform, w["depth_kernel"][k], w["depth_bias"][k])
            h_time, m_time = states[2 * k], states[2 * k + 1]
            if priority == "depth":
                # Prioritised grid: time first, then depth from the new h^T.
                [(h_time, m_time)] = grid_block([h_time, h_depth], [m_time], [time_t])
                [(h_depth, m_depth)] = grid_block(
                    [h_time, h_depth], [m_depth], [depth_t]
                )
            else:
                (h_time, m_time), (h_depth, m_depth) = grid_block(
                    [h_time, h_depth], [m_time, m_depth], [time_t, depth_t]
                )
            states[2 * k], states[2 * k + 1] = h_time, m_time
        outputs.append(h_depth)
    return np.stack(outputs, axis=1), states


def grid_weights_from_keras(weights, depth, tied, use_bias=True):
    """Splits `layer.get_weights()` of a GridLSTM into a reference dict."""
    weights = list(weights)
    w = {"projection": weights.pop(0)}
    names = ["time_kernel", "time_bias", "depth_kernel", "depth_bias"]
    for name in names:
        if name.endswith("bias") and not use_bias:
            width = w[name.replace("bias", "kernel")][0].shape[-1]
            w[name] = [np.zeros(width)] * depth
            continue
        value = weights.pop(0)
        w[name] = [value] * depth if tied else list(value)
    assert not weights, "unused weights"
    return w
