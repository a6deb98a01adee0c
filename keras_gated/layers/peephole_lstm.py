"""Peephole LSTM (Gers & Schmidhuber 2000; Gers, Schraudolph & Schmidhuber 2002)."""

import keras

from keras_gated.layers.base import GatedCell
from keras_gated.layers.base import add_gradients
from keras_gated.layers.base import GatedRNN


@keras.saving.register_keras_serializable(package="keras_gated")
class PeepholeLSTMCell(GatedCell):
    """LSTM cell whose gates also look at the memory cell ("peepholes").

    Equations (σ = `recurrent_activation`, φ = `activation`):

        i_t = σ(W_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
        f_t = σ(W_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ φ(W_c x_t + U_c h_{t-1} + b_c)
        o_t = σ(W_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)
        h_t = o_t ⊙ φ(c_t)

    The output gate peeps at the new cell c_t, the input and forget gates at
    the old one. The peephole weights p are vectors (diagonal connections).

    Weights, in order: `kernel` (D x 4H, blocks i, f, c, o),
    `recurrent_kernel` (H x 4H), `bias` (4H), then
    `input_gate_peephole_weights`, `forget_gate_peephole_weights`,
    `output_gate_peephole_weights` (H each) for the gates in `peepholes`.
    This is the layout of TensorFlow's old `PeepholeLSTMCell`, so its
    weights load with `set_weights` unchanged. With zero peephole vectors
    the cell equals `keras.layers.LSTMCell`.

    Args:
        units: Positive integer, width of h and c.
        peepholes: The gates that peep, a subset of `("i", "f", "o")` as a
            tuple or a string such as `"fo"`. Default: all three. Missing
            vectors are not created.
        **kwargs: Every other argument of `keras.layers.LSTMCell`
            (activation, recurrent_activation, use_bias, initializers,
            regularizers, constraints, unit_forget_bias, dropout,
            recurrent_dropout, seed), plus `peephole_initializer`,
            `peephole_regularizer` and `peephole_constraint`.

    Example:

    >>> cell = PeepholeLSTMCell(32)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(np.zeros((2, 5, 8), "float32")).shape
    (2, 5, 32)
    """

    kernel_gates = "ifco"
    recurrent_gates = "ifco"
    peephole_choices = "ifo"
    default_peepholes = "ifo"
    deferred_recurrent_product = True

    def activate(self, z, c_tm1, keep_c=None):
        """The equations from the pre-activations: `(i, f, g, memory, c, o, φ(c))`.

        `memory` is what `carry` makes of the cell's own update c̃_t,
        c = `memory.carried` the memory it carries.
        """
        σ, φ = self.recurrent_activation, self.activation
        i = σ(self.peep("i", z["i"], c_tm1))
        f = σ(self.peep("f", z["f"], c_tm1))
        g = φ(z["c"])
        update = f * c_tm1 + i * g
        memory = self.carry(update, c_tm1, keep_c)
        c = memory.carried
        o = σ(self.peep("o", z["o"], c))
        return i, f, g, memory, c, o, φ(c)

    def preactivation_step(self, preactivations, states):
        keep_c, keep_h = self.zoneout_keep(preactivations)
        c_tm1 = states[1]
        z = self.split_gates(preactivations)
        i, f, _, _, c, o, φc = self.activate(z, c_tm1, keep_c)
        h = self.hidden_state(o * φc, states[0], keep_h)
        return h, [h, c], {"input": i, "forget": f, "output": o}

    def memory_backward(self, projected, states, d_new_states):
        keep_c, _ = self.zoneout_keep(projected)
        c_tm1 = states[1]
        dσ, dφ = self.activation_derivatives()
        i, f, g, memory, c, o, φc = self.activate(self.split_gates(projected), c_tm1, keep_c)
        d_m, d_c = d_new_states
        d_o = d_m * φc * dσ(o)
        d_c = add_gradients(d_c, d_m * o * dφ(φc), self.peep_backward("o", d_o))
        d_update, d_kept, option_sums = self.carried_cell_backward(memory, keep_c, d_c)
        d_i = d_update * g * dσ(i)
        d_f = d_update * c_tm1 * dσ(f)
        d_c_tm1 = add_gradients(
            d_update * f, self.peep_backward("i", d_i), self.peep_backward("f", d_f), d_kept
        )
        d_gates = {"i": d_i, "f": d_f, "c": d_update * i * dφ(g), "o": d_o}
        return (
            *self.join_gate_gradients(d_gates),
            [None, d_c_tm1],
            [],
            self.peephole_sums(d_gates, c_tm1, c) + option_sums,
            o * φc,
        )


@keras.saving.register_keras_serializable(package="keras_gated")
class PeepholeLSTM(GatedRNN):
    """Peephole LSTM layer: `keras.layers.RNN` over a `PeepholeLSTMCell`.

    Takes the arguments of `PeepholeLSTMCell` (units, peepholes, activations,
    initializers, regularizers, constraints, dropout, ...) and of
    `keras.layers.RNN` (return_sequences, return_state, go_backwards,
    stateful, unroll, zero_output_for_mask). `fused=False` runs the cell step
    by step instead of projecting all inputs in one product first.

    Example:

    >>> model = keras.Sequential([
    ...     keras.layers.Embedding(1000, 16, mask_zero=True),
    ...     PeepholeLSTM(32),
    ...     keras.layers.Dense(1),
    ... ])
    """

    cell_class = PeepholeLSTMCell
