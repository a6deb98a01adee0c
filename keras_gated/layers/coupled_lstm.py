"""Coupled input-forget gate LSTM, CIFG (Greff et al. 2017, "LSTM: A Search Space Odyssey")."""

import keras

from keras_gated.layers.base import GatedCell
from keras_gated.layers.base import add_gradients
from keras_gated.layers.base import GatedRNN


@keras.saving.register_keras_serializable(package="keras_gated")
class CoupledLSTMCell(GatedCell):
    """LSTM cell with the input gate coupled to the forget gate (CIFG).

    The cell writes exactly where it forgets: the input gate is `1 - f_t`.

        f_t = σ(W_f x_t + U_f h_{t-1} [+ p_f ⊙ c_{t-1}] + b_f)
        c_t = f_t ⊙ c_{t-1} + (1 - f_t) ⊙ φ(W_c x_t + U_c h_{t-1} + b_c)
        o_t = σ(W_o x_t + U_o h_{t-1} [+ p_o ⊙ c_t] + b_o)
        h_t = o_t ⊙ φ(c_t)

    Three gate blocks instead of four: a quarter fewer weights and
    multiply-adds than an LSTM, with the same accuracy on most tasks in
    Greff et al.'s study.

    Weights, in order: `kernel` (D x 3H, blocks f, c, o),
    `recurrent_kernel` (H x 3H), `bias` (3H), then the optional
    `forget_gate_peephole_weights` and `output_gate_peephole_weights`.
    `unit_forget_bias=True` starts b_f at 1.

    Args:
        units: Positive integer, width of h and c.
        peepholes: The gates that peep, a subset of `("f", "o")`. Default:
            none.
        **kwargs: The other arguments of `keras.layers.LSTMCell`, plus
            `peephole_initializer`, `peephole_regularizer`,
            `peephole_constraint`.

    Example:

    >>> encoder = keras.layers.Bidirectional(
    ...     keras.layers.RNN(CoupledLSTMCell(128), return_sequences=True))
    """

    kernel_gates = "fco"
    recurrent_gates = "fco"
    peephole_choices = "fo"
    default_peepholes = ""
    deferred_recurrent_product = True

    def activate(self, z, c_tm1, keep_c=None):
        """The equations from the pre-activations: `(f, g, memory, c, o, φ(c))`.

        `memory` is what `carry` makes of the cell's own update c̃_t,
        c = `memory.carried` the memory it carries.
        """
        σ, φ = self.recurrent_activation, self.activation
        f = σ(self.peep("f", z["f"], c_tm1))
        g = φ(z["c"])
        update = f * c_tm1 + (1.0 - f) * g
        memory = self.carry(update, c_tm1, keep_c)
        c = memory.carried
        o = σ(self.peep("o", z["o"], c))
        return f, g, memory, c, o, φ(c)

    def preactivation_step(self, preactivations, states):
        keep_c, keep_h = self.zoneout_keep(preactivations)
        c_tm1 = states[1]
        z = self.split_gates(preactivations)
        f, _, _, c, o, φc = self.activate(z, c_tm1, keep_c)
        h = self.hidden_state(o * φc, states[0], keep_h)
        return h, [h, c], {"forget": f, "output": o}

    def memory_backward(self, projected, states, d_new_states):
        keep_c, _ = self.zoneout_keep(projected)
        c_tm1 = states[1]
        dσ, dφ = self.activation_derivatives()
        f, g, memory, c, o, φc = self.activate(self.split_gates(projected), c_tm1, keep_c)
        d_m, d_c = d_new_states
        d_o = d_m * φc * dσ(o)
        d_c = add_gradients(d_c, d_m * o * dφ(φc), self.peep_backward("o", d_o))
        d_update, d_kept, option_sums = self.carried_cell_backward(memory, keep_c, d_c)
        d_f = d_update * (c_tm1 - g) * dσ(f)
        d_c_tm1 = add_gradients(d_update * f, self.peep_backward("f", d_f), d_kept)
        d_gates = {"f": d_f, "c": d_update * (1.0 - f) * dφ(g), "o": d_o}
        return (
            *self.join_gate_gradients(d_gates),
            [None, d_c_tm1],
            [],
            self.peephole_sums(d_gates, c_tm1, c) + option_sums,
            o * φc,
        )


@keras.saving.register_keras_serializable(package="keras_gated")
class CoupledLSTM(GatedRNN):
    """CIFG LSTM layer: `keras.layers.RNN` over a `CoupledLSTMCell`.

    Takes the arguments of `CoupledLSTMCell` and of `keras.layers.RNN`.

    Example:

    >>> layer = CoupledLSTM(64, return_sequences=True)
    """

    cell_class = CoupledLSTMCell
