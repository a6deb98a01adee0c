"""What a one-layer cell gives a fused loop: the contract the fast loops consume.

The loops of `keras_gated._fast` (TensorFlow's, JAX's and PyTorch's
`fused_rnn`) read a cell through this protocol and nothing else; the cells
implement it without knowing which loop runs them (`keras_gated.layers.base.
GatedCell` holds the defaults). All of it is `keras.ops` math, so one cell
serves every backend's loop. `tests/test_fast_path.py` checks that every
cell with a fast form satisfies it.

A cell opts in with `deferred_recurrent_product = True`: its step is the one
product `U h_{t-1}` (`recurrent_kernel`), then `preactivation_step` on the
full pre-activations `z_t = p_t + U h_{t-1}` (`full_preactivations`), whose
vector-Jacobian product is `step_backward`. The step may read, besides U,
only the weights listed by `summed_weights` (vectors whose gradients
`step_backward` sums over the batch) and `product_weights` (matrices whose
gradients `backward_weight_gradients` computes over many steps at once).
With `separate_recurrent_gradient` (a norm on `U h_{t-1}`), the gradient of
U is `H^T dR` from `step_backward`'s `d_recurrent`, which the loops keep.

Stacks (`has_fast_levels`) describe their levels with `fast_levels()`
instead; only TensorFlow's `fused_stack_rnn` runs them.
"""

import typing


@typing.runtime_checkable
class FusedCell(typing.Protocol):
    """The attributes and methods of a cell that a fused loop uses."""

    recurrent_kernel: typing.Any  # U, (H, len(recurrent_gates) * H)
    kernel_gates: str  # gate blocks of W x + b, in order
    recurrent_gates: str  # the blocks that also have a part U h
    recurrent_dropout: float
    deferred_recurrent_product: bool
    has_step_backward: bool  # step_backward written for these activations
    step_backward_saves: int  # per-step tensors step_backward returns in `saved`
    separate_recurrent_gradient: bool  # d_recurrent is no slice of d_projected (a norm on U h)

    def project_inputs(self, inputs):
        """`W x + b` (and any extra columns) for a step or a whole sequence."""

    def project_sequence(self, inputs, training):
        """`project_inputs` and the per-step columns the step reads (zoneout's
        masks), for a whole batch-major sequence: what a loop projects when
        `projection_weights()` is None."""

    def projection_weights(self):
        """`(kernel, bias)` with `project_inputs(x) = x kernel + bias`, or None."""

    def get_recurrent_dropout_mask(self, h_tm1):
        """The recurrent dropout mask of this call (drawn before the loop)."""

    def full_preactivations(self, projected, recurrent):
        """`z_t`: the projected inputs plus `U h_{t-1}` in its blocks."""

    def preactivation_step(self, preactivations, states):
        """`(output, new_states, gates)` from the full pre-activations."""

    def step_backward(self, projected, states, d_new_states):
        """`(d_projected, d_recurrent, d_states, saved, sums)`: the step's VJP."""

    def recurrent_columns(self, d_projected):
        """The recurrent blocks of a projected-width tensor."""

    def summed_weights(self):
        """Weight vectors whose gradients `step_backward` returns as batch sums."""

    def product_weights(self):
        """Weight matrices inside the step, besides `recurrent_kernel`."""

    def backward_weight_gradients(self, d_projected, states_in, saved):
        """Gradients of `product_weights` over a run of steps at once."""

    def backward_loop_weights(self):
        """A context entered around the backward loop (loop invariants)."""
