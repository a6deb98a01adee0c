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
instead, each a `FusedLevel`. On every backend one loop runs every fast
layer as a stack of levels (`levels_of`): a one-layer cell is the one-level
stack `CellLevel(cell)`.

Under a mixed-precision policy the loops compute in the cell's
`compute_dtype` with weights of its `variable_dtype`: the weights enter the
loop cast, as the layer's call reads them, and the backward passes, which
run after the call has returned, read them under `weights_as_in_call`.
"""

import contextlib
import typing

from keras_gated._keras_private import autocast


@typing.runtime_checkable
class FusedCell(typing.Protocol):
    """The attributes and methods of a cell that a fused loop uses."""

    recurrent_kernel: typing.Any  # U, (H, len(recurrent_gates) * H)
    compute_dtype: str  # the dtype of the step's math (Keras's dtype policy)
    variable_dtype: str  # the dtype of the weights
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


class LevelStepGradients(typing.NamedTuple):
    """What a level's backward step returns (`FusedLevel.backward`)."""

    d_preactivations: typing.Any  # dz_t, the level's pre-activation width
    d_recurrent: typing.Any  # the gradient of `h_{t-1} R`: dz_t's recurrent blocks, or dR_t under a norm
    d_extra: typing.Any  # the gradient of the extra vector the level read (None if none)
    d_states: list  # of the level's own states at t-1 (None entries: zero)
    sums: list  # this step's shares of the gradients of `summed_weights()`
    saved: list  # per-step tensors for `backward_weight_gradients`


@typing.runtime_checkable
class FusedLevel(typing.Protocol):
    """One level of a stack as a fused loop runs it, bottom level first.

    Inside every step level k reads what level k-1 passed up (a hidden
    vector a_k through its input kernel V_k, and an extra vector e_k such as
    the memory below) and its own past h_k through R_k:
    `z_k = preactivations(a_k V_k + b_k, h_k R_k)`. The bottom level's input
    product is the projection of x with its `projection` `(W, b)`, which each
    loop makes where it measured fastest (TensorFlow per chunk of steps, JAX
    inside each step, PyTorch once before the loop), or the cell's
    `project_sequence` of all steps where `projection` is None; its last
    `extra_columns` columns are e_0.
    """

    recurrent_kernel: typing.Any  # R_k
    input_kernel: typing.Any  # V_k; None for the bottom level
    input_bias: typing.Any  # b_k or None
    projection: typing.Any  # bottom level: (kernel, bias) or None; above: None
    extra_columns: int  # bottom level: columns of e_0 at the end of the projection
    # Bottom level with a projection: columns at the end of z that are the
    # projection's own (z = [p_rec + h R ; p_rest]); a loop may project them
    # again in its backward pass rather than keep them for every step.
    input_only_columns: int
    state_count: int  # the level's own states, h first
    separate_recurrent_gradient: bool  # `d_recurrent` is no slice of `d_preactivations`
    step_saves: int  # per-step tensors `backward` returns in `saved`
    # What the level above reads: the new states (h, c) of this level
    # (`up_from_states`), or what `forward` passes up, with its extra vector
    # only if `passes_extra_up`. A loop may keep the reads apart or not.
    up_from_states: bool
    passes_extra_up: bool
    up_extra_width: int  # columns of the extra vector passed up (0 if none)

    def preactivations(self, input_product, recurrent_product):
        """`z_k` from the input and recurrent products."""

    def forward(self, z, extra, states):
        """`(new_states, up_hidden, up_extra)`: what the level passes up."""

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        """The step's vector-Jacobian product, a `LevelStepGradients`."""

    def summed_weights(self):
        """Weight vectors whose gradients `backward` returns as batch sums."""

    def product_weights(self):
        """Weight matrices inside the step; gradients by `backward_weight_gradients`."""

    def backward_weight_gradients(self, d_preactivations, states_in, saved):
        """Gradients of `product_weights` over all steps at once."""

    def recurrent_columns(self, rows):
        """The recurrent blocks of a pre-activation-width tensor."""


class CellLevel:
    """A one-layer `FusedCell` as the one level of a stack.

    The level reads the whole projected input (zoneout's keep masks
    included, `extra_columns = 0`); what it passes up is the cell's output.
    Its backward step is the cell's written `step_backward`, to which the
    gradient arriving from above is the gradient of the output, h, the
    cell's first new state.
    """

    input_kernel = None
    input_bias = None
    extra_columns = 0
    up_from_states = False
    passes_extra_up = False
    up_extra_width = 0

    def __init__(self, cell: FusedCell, state_count):
        self.cell = cell
        self.recurrent_kernel = cell.recurrent_kernel
        self.state_count = state_count
        self.separate_recurrent_gradient = cell.separate_recurrent_gradient
        self.step_saves = cell.step_backward_saves
        # `(W, b)` where the projection is that product (not with layer_norm
        # or zoneout's keep masks: then `project_sequence`).
        self.projection = cell.projection_weights()
        self.input_only_columns = 0
        if self.projection is not None and cell.kernel_gates.startswith(cell.recurrent_gates):
            # The gate blocks without a recurrent part follow those with one
            # (the depth-gated cell's depth gate, and its lower memory).
            self.input_only_columns = (
                self.projection[0].shape[-1] - self.recurrent_kernel.shape[-1]
            )

    def preactivations(self, input_product, recurrent_product):
        return self.cell.full_preactivations(input_product, recurrent_product)

    def forward(self, z, extra, states):
        output, new_states, _ = self.cell.preactivation_step(z, list(states))
        return list(new_states), output, None

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        d_new = list(d_new_states)
        d_new[0] = d_up_hidden if d_new[0] is None else d_new[0] + d_up_hidden
        d_z, d_r, d_states, saved, sums = self.cell.step_backward(z, list(states), d_new)
        return LevelStepGradients(d_z, d_r, None, list(d_states), list(sums), list(saved))

    def summed_weights(self):
        return list(self.cell.summed_weights())

    def product_weights(self):
        return list(self.cell.product_weights())

    def backward_weight_gradients(self, d_preactivations, states_in, saved):
        return list(self.cell.backward_weight_gradients(d_preactivations, states_in, saved))

    def recurrent_columns(self, rows):
        return self.cell.recurrent_columns(rows)


class AutomaticCellLevel(CellLevel):
    """A one-layer cell without a written backward step (an activation with
    no written derivative): each backend's loop takes its own automatic
    vector-Jacobian product of the element-wise step (`backward`). The
    weight matrices inside the step then get their gradients step by step,
    as batch sums, like the weight vectors."""

    def __init__(self, cell: FusedCell, state_count):
        super().__init__(cell, state_count)
        self.step_saves = 0

    def summed_weights(self):
        return list(self.cell.summed_weights()) + list(self.cell.product_weights())

    def product_weights(self):
        return []

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        raise NotImplementedError


def weights_as_in_call(cell):
    """The context of a loop's backward pass: reading `cell`'s weights there
    gives them in its compute dtype, as inside the layer's call (a
    mixed-precision policy), or as they are."""
    if cell.compute_dtype == cell.variable_dtype:
        return contextlib.nullcontext()
    return autocast(cell.compute_dtype)


def levels_of(cell, state_count, automatic_level):
    """The levels a loop runs for `cell`, bottom first.

    A stack's `fast_levels()`; for a one-layer cell
    (`deferred_recurrent_product`), the one-level stack `CellLevel(cell)`, or
    `automatic_level(cell)` (the backend's automatic derivative of the step)
    for activations without a written backward step.
    """
    if not cell.deferred_recurrent_product:
        return cell.fast_levels()
    level_class = CellLevel if cell.has_step_backward else automatic_level
    return [level_class(cell, state_count)]
