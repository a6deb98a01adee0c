"""PyTorch fast path: one time loop under `torch.autograd.Function` with the cell's written backward step.

Why: PyTorch's autograd records every operation of every step of the
generic loop (each slice, broadcast, activation and `torch.where` of the
mask) and replays their gradients one by one, and each backward step
computes its own share of the recurrent weight gradient, `h_{t-1}^T dz_t`,
a product whose inner dimension is only the batch size.

What this module does instead, for a one-layer cell whose step reaches
`recurrent_kernel` only through `GatedCell.recurrent_product`
(`deferred_recurrent_product = True`):

* the input projection `P = X W + b` of all steps is one product before the
  loop (`cell.project_sequence`), which autograd differentiates itself;
* forward steps, recording nothing: `r_t = (h_{t-1} ⊙ mask_rd) U`,
  `z_t = p_t + r_t` in the recurrent blocks (`cell.full_preactivations`),
  then `cell.preactivation_step` on `z_t`; the loop keeps `z_t` and the
  states each step starts from (references, not copies), nothing else;
* backward steps, in reverse: the cell's hand-written `step_backward` gives
  `dz_t`, the state gradients and the step's share of the gradients of its
  weight vectors (peepholes, norms); `dh_{t-1}` gets `dz_t U^T` (on a
  transposed copy of U). For a cell or activation without a written step,
  the vector-Jacobian product of the element-wise step (`torch.autograd.
  grad` of `preactivation_step`) takes its place;
* after the backward loop: `dU = H^T dZ` over all steps and rows, one
  product, and the cell's `backward_weight_gradients` for weight matrices
  inside the step (the untied kernel M, the projection P).

The cell's weights enter the `autograd.Function` as tensor arguments (so
their gradients reach the Keras variables, whose values are the torch
Parameters), and a `keras.StatelessScope` maps the cell's variables to
those arguments while the loops run: the cell's own methods read them, in
the backward loop too, which autograd runs after the layer's call (and so
after any scope of a `stateless_call` has closed). Masking follows
`keras.src.backend.torch.rnn` (the loop without unrolling): a masked row
keeps its states and repeats the previous *masked output* (zeros before
its first real step) or zeros with `zero_output_for_mask`. `go_backwards`,
recurrent dropout (the mask drawn before the loop), zoneout (its keep masks
are columns of `project_sequence`), initial and stateful states follow it
too, so this path gives the numbers of the generic path.

A call that no gradient can reach (under `torch.no_grad()`, as `predict`
runs, or with no input and no weight requiring a gradient) runs the forward
loop alone and keeps nothing; any other call, `training=False` included,
runs the Function, so an inference call under autograd stays differentiable.
"""

import keras
import torch
from keras.src.backend.torch.core import convert_to_tensor

from keras_gated._fast.contract import FusedCell


def fused_rnn(
    cell: FusedCell,
    inputs,
    initial_state,
    mask=None,
    training=False,
    go_backwards=False,
    zero_output_for_mask=False,
    return_all_outputs=True,
):
    """Runs `cell` over `inputs`; same contract as `keras.src.backend.torch.rnn`.

    Args:
        cell: A built cell with `deferred_recurrent_product = True`, read
            through `keras_gated._fast.contract.FusedCell`.
        inputs: The layer's inputs after input dropout, (batch, time, D).
        initial_state: List of state tensors, `h` first.
        mask: Optional boolean (batch, time) mask.

    Returns:
        `(last_output, outputs, new_states)`, where `outputs` is
        (batch, time, H) if `return_all_outputs`, else (batch, 1, H), in the
        order the steps ran (reversed with `go_backwards`, as Keras does).
    """
    recurrent_mask = None
    if training and cell.recurrent_dropout > 0:
        recurrent_mask = convert_to_tensor(cell.get_recurrent_dropout_mask(initial_state[0]))
    projected = torch.transpose(convert_to_tensor(cell.project_sequence(inputs, training)), 0, 1)
    step_mask = None
    if mask is not None:
        mask = convert_to_tensor(mask)
        if mask.ndim == 3:
            mask = mask[..., 0]
        step_mask = torch.transpose(mask.to(torch.bool), 0, 1)[..., None]
    if go_backwards:
        projected = torch.flip(projected, (0,))
        if step_mask is not None:
            step_mask = torch.flip(step_mask, (0,))
    states = [convert_to_tensor(s) for s in initial_state]
    weights = _StepWeights.of(cell)
    values = weights.values()
    loop = _Loop(cell, weights, step_mask, recurrent_mask, zero_output_for_mask)
    differentiable = torch.is_grad_enabled() and any(
        t.requires_grad for t in [projected, *states, *values]
    )
    if differentiable:
        outputs, *final_states = _FusedLoop.apply(loop, len(states), projected, *states, *values)
    else:
        outputs, final_states, _ = loop.forward(projected, states, values, keep=False)
    last_output = outputs[-1]
    outputs = torch.transpose(outputs, 0, 1) if return_all_outputs else last_output[:, None, :]
    return last_output, outputs, list(final_states)


class _StepWeights:
    """The weights a cell's step reads, by the role their gradient plays.

    `recurrent_kernel` U (its gradient: one product after the loop),
    `summed` (weight vectors whose gradients `step_backward` returns summed
    over the batch) and `products` (weight matrices whose gradients
    `backward_weight_gradients` returns over many steps at once). The step
    must read no other weight: the tests compare every cell's gradients with
    the generic loop's.
    """

    def __init__(self, recurrent_kernel, summed, products):
        self.recurrent_kernel = recurrent_kernel
        self.summed = summed
        self.products = products

    @classmethod
    def of(cls, cell):
        return cls(cell.recurrent_kernel, list(cell.summed_weights()), list(cell.product_weights()))

    def variables(self):
        return [self.recurrent_kernel, *self.summed, *self.products]

    def values(self):
        # Inside a `stateless_call` these are the scope's tensors, else the
        # variables' Parameters: what autograd must send the gradients to.
        return [convert_to_tensor(variable.value) for variable in self.variables()]

    def split(self, values):
        """`(U, summed, products)` from the flat list `values()` returns."""
        count = len(self.summed)
        return values[0], list(values[1 : 1 + count]), list(values[1 + count :])

    def bound(self, values):
        """A scope in which the cell reads its listed weights as `values`."""
        return keras.StatelessScope(state_mapping=list(zip(self.variables(), values)))


class _FusedLoop(torch.autograd.Function):
    """`(projected, *states, *weight values) -> (outputs, *final states)` with the loop's backward."""

    @staticmethod
    def forward(ctx, loop, state_count, projected, *tensors):
        states, values = list(tensors[:state_count]), list(tensors[state_count:])
        outputs, final_states, kept = loop.forward(projected, states, values, keep=True)
        ctx.loop = loop
        ctx.kept = kept
        ctx.save_for_backward(*values)
        return (outputs, *final_states)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_outputs, *d_final_states):
        # The backward loop runs without recording: a second derivative
        # through it raises rather than silently coming out as zero.
        d_projected, d_states, d_values = ctx.loop.backward(
            ctx.kept, list(ctx.saved_tensors), d_outputs, list(d_final_states)
        )
        return (None, None, d_projected, *d_states, *d_values)


class _Loop:
    """The forward and backward time loops of one call (its masks fixed)."""

    def __init__(self, cell, weights, step_mask, recurrent_mask, zero_output_for_mask):
        self.cell = cell
        self.weights = weights
        self.step_mask = step_mask
        self.recurrent_mask = recurrent_mask
        self.zero_output_for_mask = zero_output_for_mask

    def forward(self, projected, states, values, keep):
        """Outputs (time-major), final states and, with `keep`, what the
        backward loop needs: each step's pre-activations and the states it
        starts from. Records nothing for autograd."""
        cell, step_mask, recurrent_mask = self.cell, self.step_mask, self.recurrent_mask
        recurrent_kernel = values[0]
        steps = projected.shape[0]
        # The initial states may be a stateful layer's variables, which the
        # layer assigns in place after the call: the loop keeps a copy.
        states = [s.clone() for s in states] if keep else list(states)
        pre_activations, states_in = [], []
        outputs = previous_output = None
        with torch.no_grad(), self.weights.bound(values):
            for t in range(steps):
                h_tm1 = states[0] if recurrent_mask is None else states[0] * recurrent_mask
                z_t = cell.full_preactivations(projected[t], torch.matmul(h_tm1, recurrent_kernel))
                output, new_states, _ = cell.preactivation_step(z_t, states)
                new_states = list(new_states)
                if outputs is None:
                    outputs = output.new_empty((steps, *output.shape))
                    previous_output = torch.zeros_like(output)
                if step_mask is not None:
                    mask_t = step_mask[t]
                    # Keras's torch loop: the previous masked output (zeros
                    # before a row's first real step), or zeros.
                    output = torch.where(mask_t, output, previous_output)
                    new_states = [torch.where(mask_t, new, old) for new, old in zip(new_states, states)]
                    if not self.zero_output_for_mask:
                        previous_output = output
                if keep:
                    pre_activations.append(z_t)
                    states_in.append(states)
                outputs[t] = output
                states = new_states
        return outputs, states, (pre_activations, states_in) if keep else None

    def backward(self, kept, values, d_outputs, d_final_states):
        """`(d projected, d initial states, d weight values)`."""
        cell, weights, step_mask = self.cell, self.weights, self.step_mask
        recurrent_mask, zero_output_for_mask = self.recurrent_mask, self.zero_output_for_mask
        pre_activations, states_in = kept
        written = cell.has_step_backward
        # With a norm on U h, dU = H^T dR where dR is no slice of dZ: the
        # loop keeps it (only written steps run such cells).
        keeps_recurrent_gradient = cell.separate_recurrent_gradient
        recurrent_kernel, summed, products = weights.split(values)
        recurrent_kernel_t = recurrent_kernel.t().contiguous()
        step_backward = self._written_step_backward if written else self._automatic_step_backward
        steps = len(pre_activations)
        d_carry = [
            torch.zeros_like(s) if d is None else d for d, s in zip(d_final_states, states_in[0])
        ]
        # The gradient of the previous masked output, handed back through
        # masked steps (Keras's torch loop repeats that output there).
        d_output_carry = None
        summed_totals = [torch.zeros_like(w) for w in summed]
        # A written step leaves the product weights to
        # backward_weight_gradients, after the loop.
        product_totals = [] if written else [torch.zeros_like(w) for w in products]
        d_projected = d_recurrent = None
        saved_steps = []
        with torch.no_grad(), weights.bound(values), cell.backward_loop_weights():
            for t in range(steps - 1, -1, -1):
                z_t, states_t = pre_activations[t], states_in[t]
                d_output = d_outputs[t]
                if step_mask is None:
                    d_new = list(d_carry)
                    d_new[0] = d_new[0] + d_output
                else:
                    mask_t = step_mask[t]
                    if d_output_carry is not None:
                        d_output = d_output + d_output_carry
                    d_new = [torch.where(mask_t, d, 0.0) for d in d_carry]
                    d_new[0] = d_new[0] + torch.where(mask_t, d_output, 0.0)
                    if not zero_output_for_mask:
                        d_output_carry = torch.where(mask_t, 0.0, d_output)
                d_z, d_r, d_states, saved, sums, product_sums = step_backward(
                    z_t, states_t, d_new, recurrent_kernel, summed, products
                )
                d_h = torch.matmul(d_r, recurrent_kernel_t)
                if recurrent_mask is not None:
                    d_h = d_h * recurrent_mask
                d_states[0] = d_states[0] + d_h
                if step_mask is not None:
                    # Where the row was masked the step handed its states through.
                    d_states = [torch.where(mask_t, d, passed) for d, passed in zip(d_states, d_carry)]
                if d_projected is None:
                    d_projected = d_z.new_empty((steps, *d_z.shape))
                    if keeps_recurrent_gradient:
                        d_recurrent = d_r.new_empty((steps, *d_r.shape))
                d_projected[t] = d_z
                if keeps_recurrent_gradient:
                    d_recurrent[t] = d_r
                if saved:
                    saved_steps.append(saved)
                for total, part in zip(summed_totals, sums):
                    total += part
                for total, part in zip(product_totals, product_sums):
                    total += part
                d_carry = d_states
            h_rows = torch.stack([s[0] for s in states_in])
            if recurrent_mask is not None:
                h_rows = h_rows * recurrent_mask
            h_rows = h_rows.reshape(-1, h_rows.shape[-1])
            if not keeps_recurrent_gradient:
                d_recurrent = convert_to_tensor(cell.recurrent_columns(d_projected))
            d_recurrent_kernel = torch.matmul(h_rows.t(), d_recurrent.reshape(h_rows.shape[0], -1))
            if written and products:
                # The backward loop ran from the last step: put the saved
                # tensors back in time order.
                saved_steps.reverse()
                stacked_saved = [torch.stack(parts) for parts in zip(*saved_steps)]
                stacked_states = [torch.stack(parts) for parts in zip(*states_in)]
                product_totals = [
                    convert_to_tensor(g)
                    for g in cell.backward_weight_gradients(d_projected, stacked_states, stacked_saved)
                ]
        return d_projected, d_carry, [d_recurrent_kernel, *summed_totals, *product_totals]

    def _written_step_backward(self, z_t, states_t, d_new, recurrent_kernel, summed, products):
        d_z, d_r, d_cell_states, saved, sums = self.cell.step_backward(z_t, list(states_t), d_new)
        d_states = [torch.zeros_like(s) if d is None else d for d, s in zip(d_cell_states, states_t)]
        return d_z, d_r, d_states, list(saved), list(sums), []

    def _automatic_step_backward(self, z_t, states_t, d_new, recurrent_kernel, summed, products):
        """The step's vector-Jacobian product by autograd, for steps without a written one."""
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_() for t in (z_t, *states_t, *summed, *products)]
            z_leaf = leaves[0]
            state_leaves = leaves[1 : 1 + len(states_t)]
            weight_leaves = leaves[1 + len(states_t) :]
            with self.weights.bound([recurrent_kernel, *weight_leaves]):
                _, new_states, _ = self.cell.preactivation_step(z_leaf, state_leaves)
            # The step's output is h, its first new state: the output's
            # gradient is already in d_new[0], as in the written steps.
            gradients = torch.autograd.grad(
                list(new_states), leaves, grad_outputs=d_new, allow_unused=True
            )
        gradients = [torch.zeros_like(leaf) if g is None else g for g, leaf in zip(gradients, leaves)]
        d_z = gradients[0]
        d_states = gradients[1 : 1 + len(states_t)]
        d_weights = gradients[1 + len(states_t) :]
        d_summed, d_products = d_weights[: len(summed)], d_weights[len(summed) :]
        return d_z, convert_to_tensor(self.cell.recurrent_columns(d_z)), d_states, [], d_summed, d_products
