"""JAX fast path: one `lax.scan` under `jax.custom_vjp` with the cell's written backward step.

Why: JAX differentiates the generic loop's `lax.scan` step by step, so each
backward step computes its own share of the recurrent weight gradient,
`h_{t-1}^T dz_t`, a product whose inner dimension is only the batch size,
and keeps every intermediate of the step as a residual of the scan.

What this module does instead, for a one-layer cell whose step reaches
`recurrent_kernel` only through `GatedCell.recurrent_product`
(`deferred_recurrent_product = True`):

* the input projection `P = X W + b` of all steps is one product before the
  loop, which JAX differentiates itself (`dX`, `dW`, `db` are then one
  product each);
* forward steps: `r_t = (h_{t-1} ⊙ mask_rd) U`, `z_t = p_t + r_t` in the
  recurrent blocks (`cell.full_preactivations`), then the rest of the step
  (`cell.preactivation_step` on `z_t`, the full pre-activations); the scan
  keeps `z_t` and the states each step starts from, nothing else;
* backward steps (a reverse scan): the cell's hand-written `step_backward`
  gives `dz_t`, the state gradients and the step's share of the gradients
  of its weight vectors (peepholes); `dh_{t-1}` gets `dz_t U^T`. For a cell
  or activation without a written step, the vector-Jacobian product of the
  element-wise step (`jax.vjp`) takes its place;
* after the reverse scan: `dU = H^T dZ` over all steps and rows, one
  product, and the cell's `backward_weight_gradients` for weight matrices
  inside the step (the untied kernel M).

The cell's weights enter the custom-VJP function as arguments: inside it,
a `keras.StatelessScope` maps the cell's variables to those arguments, so
the cell's own methods read them and the cell does not know which loop
runs it. Masking, `go_backwards`, recurrent dropout (masks drawn by the
layer before the loop), `zero_output_for_mask`, initial and stateful states
follow `keras.src.backend.jax.rnn` (the non-unrolled loop) exactly, so this
path gives the numbers of the generic path.
"""

import jax
import jax.numpy as jnp
import keras

from keras_gated._fast.contract import FusedCell

# Steps per iteration of the scans' loops (`lax.scan(unroll=...)`). On
# XLA:CPU four steps per iteration ran an inference scan of the peephole
# layer at (32, 100, 128, 256) in 25 ms against 36 ms, but slowed training
# (132 against 97 ms a step), whose scans keep per-step residuals.
INFERENCE_UNROLL = 4
TRAINING_UNROLL = 1


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
    """Runs `cell` over `inputs`; same contract as `keras.src.backend.jax.rnn`.

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
        recurrent_mask = jnp.asarray(cell.get_recurrent_dropout_mask(initial_state[0]))
    projected = jnp.swapaxes(jnp.asarray(cell.project_sequence(inputs, training)), 0, 1)
    step_mask = None
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.ndim == 3:
            mask = mask[..., 0]
        step_mask = jnp.swapaxes(mask.astype(bool), 0, 1)[..., None]
    if go_backwards:
        projected = jnp.flip(projected, 0)
        if step_mask is not None:
            step_mask = jnp.flip(step_mask, 0)
    weights = _StepWeights.of(cell)
    loop = _loop(cell, weights, step_mask, recurrent_mask, zero_output_for_mask)
    outputs, final_states = loop(
        projected, [jnp.asarray(s) for s in initial_state], weights.values()
    )
    last_output = outputs[-1]
    outputs = jnp.swapaxes(outputs, 0, 1) if return_all_outputs else last_output[:, None, :]
    return last_output, outputs, list(final_states)


class _StepWeights:
    """The weights a cell's step reads, by the role their gradient plays.

    `recurrent_kernel` U (its gradient: one product after the loop),
    `summed` (weight vectors whose gradients `step_backward` returns summed
    over the batch) and `products` (weight matrices whose gradients
    `backward_weight_gradients` returns over many steps at once). The step
    must read no other weight (as on the TensorFlow fast path, where
    `_match_variables` checks it): the tests compare every cell's gradients
    with the generic loop's.
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
        return [jnp.asarray(variable.value) for variable in self.variables()]

    def split(self, values):
        """`(U, summed, products)` from the flat list `values()` returns."""
        count = len(self.summed)
        return values[0], values[1 : 1 + count], values[1 + count :]

    def bound(self, values):
        """A scope in which the cell reads its listed weights as `values`."""
        return keras.StatelessScope(state_mapping=list(zip(self.variables(), values)))


def _loop(cell, weights, step_mask, recurrent_mask, zero_output_for_mask):
    """The custom-VJP loop `(projected, states, weight values) -> (outputs, final states)`."""
    written = cell.has_step_backward
    # With a norm on U h, dU = H^T dR where dR is no slice of dZ: the
    # reverse scan returns it too (only written steps run such cells).
    keeps_recurrent_gradient = cell.separate_recurrent_gradient

    def recurrent_input(h_tm1):
        return h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask

    def step(z_t, states):
        # The loop has applied the recurrent dropout mask itself.
        output, new_states, _ = cell.preactivation_step(z_t, list(states))
        return output, list(new_states)

    def masked(mask_t, output, new_states, states):
        """Keras's JAX masking: a masked row keeps its states and repeats h_{t-1} (or zeros)."""
        if mask_t is None:
            return output, new_states
        fallback = jnp.zeros_like(output) if zero_output_for_mask else states[0]
        return (
            jnp.where(mask_t, output, fallback),
            [jnp.where(mask_t, new, old) for new, old in zip(new_states, states)],
        )

    def forward(projected, states, values, keep):
        """The forward scan: outputs, final states and, with `keep`, what the
        backward scan needs (each step's pre-activations and the states it
        starts from); an inference call keeps nothing."""
        recurrent_kernel = values[0]

        def forward_step(states, xs):
            p_t, mask_t = xs
            r_t = recurrent_input(states[0]) @ recurrent_kernel
            z_t = cell.full_preactivations(p_t, r_t)
            output, new_states = masked(mask_t, *step(z_t, states), states)
            return new_states, ((output, z_t, states) if keep else output)

        with weights.bound(values):
            final_states, per_step = jax.lax.scan(
                forward_step, list(states), (projected, step_mask),
                unroll=TRAINING_UNROLL if keep else INFERENCE_UNROLL,
            )
        if not keep:
            return per_step, final_states, None
        outputs, z, states_in = per_step
        return outputs, final_states, (z, states_in)

    def written_step_backward(z_t, states_t, d_new, values):
        d_z, d_r, d_cell_states, saved, sums = cell.step_backward(z_t, list(states_t), d_new)
        d_states = [jnp.zeros_like(s) if d is None else d for d, s in zip(d_cell_states, states_t)]
        return d_z, d_r, d_states, list(saved), list(sums), []

    def automatic_step_backward(z_t, states_t, d_new, values):
        recurrent_kernel, summed, products = weights.split(values)

        def element_wise(z_t, states_t, summed, products):
            with weights.bound([recurrent_kernel, *summed, *products]):
                return step(z_t, states_t)[1]

        _, vjp = jax.vjp(element_wise, z_t, list(states_t), list(summed), list(products))
        # The step's output is h, its first new state: the output's gradient
        # is already in d_new[0], as in the written steps.
        d_z, d_states, d_summed, d_products = vjp(list(d_new))
        return d_z, cell.recurrent_columns(d_z), list(d_states), [], list(d_summed), list(d_products)

    step_backward = written_step_backward if written else automatic_step_backward

    def backward(residuals, cotangents):
        (z, states_in), values = residuals
        d_outputs, d_final_states = cotangents
        recurrent_kernel, summed, products = weights.split(values)
        recurrent_kernel_t = recurrent_kernel.T

        def backward_step(carry, xs):
            d_carry, summed_totals, product_totals = carry
            z_t, states_t, d_output, mask_t = xs
            if mask_t is None:
                d_new = list(d_carry)
                d_new[0] = d_new[0] + d_output
            else:
                d_new = [jnp.where(mask_t, d, 0.0) for d in d_carry]
                d_new[0] = d_new[0] + jnp.where(mask_t, d_output, 0.0)
            d_z, d_r, d_states, saved, sums, product_sums = step_backward(z_t, states_t, d_new, values)
            d_h = d_r @ recurrent_kernel_t
            if recurrent_mask is not None:
                d_h = d_h * recurrent_mask
            d_states[0] = d_states[0] + d_h
            if mask_t is not None:
                # Where the row was masked the step handed its states through.
                d_states = [jnp.where(mask_t, d, passed) for d, passed in zip(d_states, d_carry)]
                if not zero_output_for_mask:
                    d_states[0] = d_states[0] + jnp.where(mask_t, 0.0, d_output)
            summed_totals = [a + b for a, b in zip(summed_totals, sums)]
            product_totals = [a + b for a, b in zip(product_totals, product_sums)]
            return (d_states, summed_totals, product_totals), (
                d_z, saved, d_r if keeps_recurrent_gradient else None
            )

        with weights.bound(values):
            initial = (
                [jnp.zeros_like(s[0]) if d is None else d for d, s in zip(d_final_states, states_in)],
                [jnp.zeros_like(w) for w in summed],
                # A written step leaves the product weights to
                # backward_weight_gradients, after the scan.
                [] if written else [jnp.zeros_like(w) for w in products],
            )
            (d_initial_states, d_summed, d_products), (d_z, saved, d_r) = jax.lax.scan(
                backward_step, initial, (z, states_in, d_outputs, step_mask), reverse=True,
                unroll=TRAINING_UNROLL,
            )
            rows = z.shape[0] * z.shape[1]
            h_rows = recurrent_input(states_in[0]).reshape(rows, -1)
            d_recurrent = d_r if keeps_recurrent_gradient else cell.recurrent_columns(d_z)
            d_recurrent_kernel = h_rows.T @ d_recurrent.reshape(rows, -1)
            if written and products:
                d_products = list(cell.backward_weight_gradients(d_z, states_in, saved))
        return d_z, d_initial_states, [d_recurrent_kernel, *d_summed, *d_products]

    @jax.custom_vjp
    def loop(projected, states, values):
        outputs, final_states, _ = forward(projected, states, values, keep=False)
        return outputs, final_states

    def loop_forward(projected, states, values):
        outputs, final_states, kept = forward(projected, states, values, keep=True)
        return (outputs, final_states), (kept, values)

    loop.defvjp(loop_forward, backward)
    return loop
