"""What the cells that run several layers inside one time step share."""

import keras
from keras import ops

from keras_gated.layers.base import GatedCell


def check_count(value, name, what):
    """Raises a ValueError unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer, {what}. "
            f"Received: {name}={value!r}"
        )
    return value


class StackedGatedCell(GatedCell):
    """A `GatedCell` that runs `recurrent_levels` layers inside one step.

    Its states are one (h, memory) pair per layer, h first:
    `[h_0, m_0, h_1, m_1, ...]`, layer 0 at the bottom.

    Recurrent dropout: `keras.layers.RNN` draws a cell's recurrent mask once
    per sequence from the first state, which is one layer's h (batch, H).
    Sharing that mask between the layers would drop the same units in every
    layer, so the mask here is `recurrent_levels` times wider and each layer
    gets its own slice (`drop_recurrent_levels`).
    """

    recurrent_levels = 1
    # The LSTM options are not written for the stacks' levels yet.
    supports_lstm_options = False

    def get_recurrent_dropout_mask(self, step_input):
        if (
            getattr(self, "_recurrent_dropout_mask", None) is None
            and self.recurrent_dropout > 0
        ):
            ones = ops.ones_like(
                ops.concatenate([step_input] * self.recurrent_levels, axis=-1)
            )
            self._recurrent_dropout_mask = keras.random.dropout(
                ones, rate=self.recurrent_dropout, seed=self.seed_generator
            )
        return getattr(self, "_recurrent_dropout_mask", None)

    def drop_recurrent_levels(self, hidden_states, training):
        """Applies each layer's recurrent dropout mask to its h_{t-1}."""
        hidden_states = list(hidden_states)
        if not training or self.recurrent_dropout == 0.0:
            return hidden_states
        mask = self.get_recurrent_dropout_mask(hidden_states[0])
        masks = ops.split(mask, self.recurrent_levels, axis=-1)
        return [h * m for h, m in zip(hidden_states, masks)]

    def gated_step(self, projected, states, training=False):
        """One step of the whole stack: `perturbed_step` without perturbations."""
        return self.perturbed_step(projected, states, None, training)

    def perturbed_step(self, projected, states, hidden_perturbations, training=False):
        """One step with `hidden_perturbations[k]` added to layer k's h_t.

        The perturbations (one tensor per layer, or None for none) are added
        where each layer's h_t is computed, before the layer above reads it,
        so that the gradient with respect to them is the full dL/dh_t of
        every layer, the path up through the stack included.
        `keras_gated.probe` computes its gradient flow this way (the cell
        is a `keras_gated.probe.PerturbableStack`); the layers call
        `gated_step`. Returns `(output, new_states, gates)` as `gated_step`.
        """
        raise NotImplementedError
