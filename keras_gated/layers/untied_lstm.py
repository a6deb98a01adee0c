"""Untied LSTM, ULSTM (Gao & Oates, "On Finer Control of Information Flow in LSTMs", 2018)."""

import contextlib

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_gated.layers.base import GatedCell
from keras_gated.layers.base import add_gradients
from keras_gated.layers.base import GatedRNN
from keras_gated.layers.base import get_initializer


@keras.saving.register_keras_serializable(package="keras_gated")
class UntiedLSTMCell(GatedCell):
    """LSTM cell whose candidate reads the old memory through its own gate.

    In a standard LSTM the candidate sees the past only through
    h_{t-1} = o_{t-1} ⊙ φ(c_{t-1}), so the previous output gate decides both
    what leaves the cell and what flows back into the next candidate. The
    untied cell adds a fifth gate z_t, computed at step t, for the second job:

        i_t = σ(W_i x_t + U_i h_{t-1} + b_i)
        f_t = σ(W_f x_t + U_f h_{t-1} + b_f)
        o_t = σ(W_o x_t + U_o h_{t-1} + b_o)
        z_t = σ(W_z x_t + U_z h_{t-1} + b_z)
        g_t = φ(W_c x_t + M (z_t ⊙ φ(c_{t-1})) + b_c)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ φ(c_t)

    Weights, in order: `kernel` (D x 5H, blocks i, f, c, o, z),
    `recurrent_kernel` (H x 4H, blocks i, f, o, z: the candidate has no
    U_c h_{t-1} term), `untied_kernel` M (H x H), `bias` (5H, blocks
    i, f, c, o, z).

    Args:
        units: Positive integer, width of h and c.
        untied_initializer, untied_regularizer, untied_constraint: for M.
            Default initializer: `"orthogonal"`, like `recurrent_kernel`.
        **kwargs: The other arguments of `keras.layers.LSTMCell`.

    Example:

    >>> layer = keras.layers.RNN(UntiedLSTMCell(64))
    """

    kernel_gates = "ifcoz"
    recurrent_gates = "ifoz"
    deferred_recurrent_product = True
    memory_backward_saves = 1

    def __init__(
        self,
        units,
        untied_initializer="orthogonal",
        untied_regularizer=None,
        untied_constraint=None,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.untied_initializer = get_initializer(untied_initializer)
        self.untied_regularizer = regularizers.get(untied_regularizer)
        self.untied_constraint = constraints.get(untied_constraint)

    def get_config(self):
        return {
            **super().get_config(),
            "untied_initializer": initializers.serialize(self.untied_initializer),
            "untied_regularizer": regularizers.serialize(self.untied_regularizer),
            "untied_constraint": constraints.serialize(self.untied_constraint),
        }

    def build_extra_kernels(self):
        self.untied_kernel = self.add_weight(
            shape=(self.units, self.units),
            name="untied_kernel",
            initializer=self.untied_initializer,
            regularizer=self.untied_regularizer,
            constraint=self.untied_constraint,
        )

    def activate(self, z, c_tm1, keep_c=None):
        """The equations from the pre-activations.

        Returns `(i, f, o, z_t, φ(c_{t-1}), read, g, memory, c, φ(c))`, where
        `read = z_t ⊙ φ(c_{t-1})` is what the candidate reads through M, `memory`
        what `carry` makes of the cell's own update c̃_t and c the memory it carries.
        """
        σ, φ = self.recurrent_activation, self.activation
        i, f, o, untied = σ(z["i"]), σ(z["f"]), σ(z["o"]), σ(z["z"])
        φc_tm1 = φ(c_tm1)
        read = untied * φc_tm1
        g = φ(z["c"] + ops.matmul(read, self.untied_kernel))
        update = f * c_tm1 + i * g
        memory = self.carry(update, c_tm1, keep_c)
        c = memory.carried
        return i, f, o, untied, φc_tm1, read, g, memory, c, φ(c)

    def preactivation_step(self, preactivations, states):
        keep_c, keep_h = self.zoneout_keep(preactivations)
        c_tm1 = states[1]
        z = self.split_gates(preactivations)
        i, f, o, untied, _, _, _, _, c, φc = self.activate(z, c_tm1, keep_c)
        h = self.hidden_state(o * φc, states[0], keep_h)
        return h, [h, c], {"input": i, "forget": f, "output": o, "untied": untied}

    def memory_backward(self, projected, states, d_new_states):
        keep_c, _ = self.zoneout_keep(projected)
        c_tm1 = states[1]
        dσ, dφ = self.activation_derivatives()
        # The untied product, the one matrix product inside the step, is
        # recomputed here rather than kept from the forward loop.
        i, f, o, untied, φc_tm1, read, g, memory, _, φc = self.activate(
            self.split_gates(projected), c_tm1, keep_c
        )
        d_m, d_c = d_new_states
        d_c = add_gradients(d_c, d_m * o * dφ(φc))
        d_update, d_kept, option_sums = self.carried_cell_backward(memory, keep_c, d_c)
        d_g = d_update * i * dφ(g)
        d_read = ops.matmul(d_g, self._untied_kernel_transposed())
        d_gates = {
            "i": d_update * g * dσ(i),
            "f": d_update * c_tm1 * dσ(f),
            "c": d_g,
            "o": d_m * φc * dσ(o),
            "z": d_read * φc_tm1 * dσ(untied),
        }
        d_c_tm1 = add_gradients(d_update * f + d_read * untied * dφ(φc_tm1), d_kept)
        return (
            *self.join_gate_gradients(d_gates), [None, d_c_tm1], [read], option_sums, o * φc,
        )

    def _untied_kernel_transposed(self):
        # Set by `backward_loop_weights` so that the backward loop reads a
        # loop invariant rather than transposing M at every step.
        transposed = getattr(self, "_untied_kernel_t", None)
        if transposed is None:
            return ops.transpose(self.untied_kernel)
        return transposed

    @contextlib.contextmanager
    def backward_loop_weights(self):
        self._untied_kernel_t = ops.transpose(self.untied_kernel)
        try:
            yield
        finally:
            self._untied_kernel_t = None

    def memory_product_weights(self):
        return [self.untied_kernel]

    def memory_weight_gradients(self, d_projected, states_in, saved):
        (read,) = saved
        d_g = d_projected[..., self._block("c")]
        return [
            ops.matmul(
                ops.transpose(ops.reshape(read, (-1, self.units))),
                ops.reshape(d_g, (-1, self.units)),
            )
        ]


@keras.saving.register_keras_serializable(package="keras_gated")
class UntiedLSTM(GatedRNN):
    """Untied LSTM layer: `keras.layers.RNN` over an `UntiedLSTMCell`.

    Takes the arguments of `UntiedLSTMCell` and of `keras.layers.RNN`.

    Example:

    >>> layer = UntiedLSTM(256)
    """

    cell_class = UntiedLSTMCell
