"""The steps of Keras's built-in cells, re-derived from their weights.

`keras.layers.LSTMCell`, `GRUCell` and `SimpleRNNCell` return only their
new states, not their gates, so the probe recomputes one of their steps
from the layer's own weights, with Keras's layouts:

* `LSTMCell`: the gate blocks of `kernel`, `recurrent_kernel` and `bias`
  are concatenated in the order **i, f, c, o** (input, forget, candidate,
  output);
* `GRUCell`: blocks **z, r, h** (update, reset, candidate); with
  `reset_after=True` (the default) `bias` is (2, 3H), an input and a
  recurrent bias, and the reset gate multiplies the recurrent product;
  with `reset_after=False` it multiplies h_{t-1} before the product;
* `SimpleRNNCell`: no gates, only `h_t = act(W x_t + U h_{t-1} + b)`.

Each reader returns `(project, step)` as the cells of this package offer
them (`project_inputs`, `gated_step`): `project(inputs)` is the input half
`W x + b` of every block for a whole sequence, and `step(projected_t,
states) -> (output, new_states, gates)` one step without dropout.
"""

import keras
from keras import ops


def keras_cell_steps(cell):
    """(project, step) for a Keras built-in cell, or None for any other cell."""
    if isinstance(cell, keras.layers.LSTMCell):
        return _dense_projection(cell), _lstm_step(cell)
    if isinstance(cell, keras.layers.GRUCell):
        return _gru_projection(cell), _gru_step(cell)
    if isinstance(cell, keras.layers.SimpleRNNCell):
        return _dense_projection(cell), _simple_rnn_step(cell)
    return None


def _dense_projection(cell):
    def project(inputs):
        projected = ops.matmul(inputs, cell.kernel)
        return projected + cell.bias if cell.use_bias else projected

    return project


def _lstm_step(cell):
    σ, φ = cell.recurrent_activation, cell.activation

    def step(projected, states):
        h_tm1, c_tm1 = states[0], states[1]
        z = projected + ops.matmul(h_tm1, cell.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i, f, o = σ(z_i), σ(z_f), σ(z_o)
        c = f * c_tm1 + i * φ(z_c)
        h = o * φ(c)
        return h, [h, c], {"input": i, "forget": f, "output": o}

    return step


def _gru_projection(cell):
    def project(inputs):
        projected = ops.matmul(inputs, cell.kernel)
        if not cell.use_bias:
            return projected
        input_bias = cell.bias[0] if cell.reset_after else cell.bias
        return projected + input_bias

    return project


def _gru_step(cell):
    σ, φ = cell.recurrent_activation, cell.activation
    H = cell.units

    def step(projected, states):
        h_tm1 = states[0]
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        if cell.reset_after:
            inner = ops.matmul(h_tm1, cell.recurrent_kernel)
            if cell.use_bias:
                inner = inner + cell.bias[1]
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z, r = σ(x_z + r_z), σ(x_r + r_r)
            candidate = φ(x_h + r * r_h)
        else:
            kernel = cell.recurrent_kernel
            z = σ(x_z + ops.matmul(h_tm1, kernel[:, :H]))
            r = σ(x_r + ops.matmul(h_tm1, kernel[:, H : 2 * H]))
            candidate = φ(x_h + ops.matmul(r * h_tm1, kernel[:, 2 * H :]))
        h = z * h_tm1 + (1.0 - z) * candidate
        return h, [h], {"update": z, "reset": r}

    return step


def _simple_rnn_step(cell):
    def step(projected, states):
        h = projected + ops.matmul(states[0], cell.recurrent_kernel)
        if cell.activation is not None:
            h = cell.activation(h)
        return h, [h], {}

    return step
