"""The plain LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000)."""

import keras

from keras_gated.layers.base import GatedCell
from keras_gated.layers.base import add_gradients
from keras_gated.layers.base import GatedRNN


@keras.saving.register_keras_serializable(package="keras_gated")
class LSTMCell(GatedCell):
    """The LSTM cell of `keras.layers.LSTMCell`, with the package's options.

    Equations (σ = `recurrent_activation`, φ = `activation`):

        i_t = σ(W_i x_t + U_i h_{t-1} + b_i)
        f_t = σ(W_f x_t + U_f h_{t-1} + b_f)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ φ(W_c x_t + U_c h_{t-1} + b_c)
        o_t = σ(W_o x_t + U_o h_{t-1} + b_o)
        h_t = o_t ⊙ φ(c_t)

    Weights, in order: `kernel` (D x 4H, blocks i, f, c, o),
    `recurrent_kernel` (H x 4H), `bias` (4H): `keras.layers.LSTMCell`'s
    layout and names, so its weights load with `set_weights` unchanged and
    the two give the same numbers. What this cell adds is the options of
    every LSTM-family cell of the package (`docs/options.md`), on the fused
    loops: `layer_norm` (TF Addons' `LayerNormLSTMCell`), `projection_units`
    (`torch.nn.LSTM(proj_size=...)`) and `cell_clip`
    (`tf.contrib.rnn.LSTMCell`).

    Args:
        units: Positive integer, width of c (and of h without a projection).
        **kwargs: Every other argument of `keras.layers.LSTMCell`
            (activation, recurrent_activation, use_bias, initializers,
            regularizers, constraints, unit_forget_bias, dropout,
            recurrent_dropout, seed), and the options `layer_norm`,
            `norm_epsilon`, `norm_gamma_initializer`, `norm_beta_initializer`,
            `projection_units`, `projection_initializer`,
            `projection_regularizer`, `projection_constraint`, `cell_clip`.

    Example:

    >>> cell = LSTMCell(32, layer_norm=True)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(np.zeros((2, 5, 8), "float32")).shape
    (2, 5, 32)
    """

    kernel_gates = "ifco"
    recurrent_gates = "ifco"
    deferred_recurrent_product = True

    def activate(self, z, c_tm1, keep_c=None):
        """The equations from the pre-activations: `(i, f, g, memory, c, o, φ(c))`.

        `memory` is what `carry` makes of the update c̃_t (what the options
        do to it), c = `memory.carried` the memory the cell carries.
        """
        σ, φ = self.recurrent_activation, self.activation
        i, f, o = σ(z["i"]), σ(z["f"]), σ(z["o"])
        g = φ(z["c"])
        update = f * c_tm1 + i * g
        memory = self.carry(update, c_tm1, keep_c)
        c = memory.carried
        return i, f, g, memory, c, o, φ(c)

    def preactivation_step(self, preactivations, states):
        keep_c, keep_h = self.zoneout_keep(preactivations)
        i, f, _, _, c, o, φc = self.activate(self.split_gates(preactivations), states[1], keep_c)
        h = self.hidden_state(o * φc, states[0], keep_h)
        return h, [h, c], {"input": i, "forget": f, "output": o}

    def memory_backward(self, projected, states, d_new_states):
        keep_c, _ = self.zoneout_keep(projected)
        c_tm1 = states[1]
        dσ, dφ = self.activation_derivatives()
        i, f, g, memory, _, o, φc = self.activate(self.split_gates(projected), c_tm1, keep_c)
        d_m, d_c = d_new_states
        d_c = add_gradients(d_c, d_m * o * dφ(φc))
        d_update, d_kept, option_sums = self.carried_cell_backward(memory, keep_c, d_c)
        d_gates = {
            "i": d_update * g * dσ(i),
            "f": d_update * c_tm1 * dσ(f),
            "c": d_update * i * dφ(g),
            "o": d_m * φc * dσ(o),
        }
        return (
            *self.join_gate_gradients(d_gates),
            [None, add_gradients(d_update * f, d_kept)],
            [],
            option_sums,
            o * φc,
        )


@keras.saving.register_keras_serializable(package="keras_gated")
class LSTM(GatedRNN):
    """LSTM layer: `keras.layers.LSTM`'s numbers on this package's fast loops.

    Takes the arguments of `LSTMCell` (units, activations, initializers,
    regularizers, constraints, dropout, the options `layer_norm`,
    `projection_units`, `cell_clip`, ...) and of `keras.layers.RNN`
    (return_sequences, return_state, go_backwards, stateful, unroll,
    zero_output_for_mask), plus `fused` and `fast_path`.

    Example:

    >>> model = keras.Sequential([
    ...     keras.layers.Embedding(1000, 16, mask_zero=True),
    ...     LSTM(32, layer_norm=True, projection_units=16),
    ...     keras.layers.Dense(1),
    ... ])
    """

    cell_class = LSTMCell
