"""JAX fast path: one `lax.scan` under `jax.custom_vjp` with the cell's written backward step.

Why: JAX differentiates the generic loop's `lax.scan` step by step, so each
backward step computes its own share of the recurrent weight gradient,
`h_{t-1}^T dz_t`, a product whose inner dimension is only the batch size,
and keeps every intermediate of the step as a residual of the scan.

What this module does instead, for every fast layer as a stack of
levels (`keras_gated._fast.contract.FusedLevel`): a one-layer cell whose
step reaches `recurrent_kernel` only through `GatedCell.recurrent_product`
(`deferred_recurrent_product = True`) is the one-level stack
`CellLevel(cell)`; a stack (`has_fast_levels`) gives its `fast_levels()`.
One loop runs both:

* the bottom level's input projection `p_t = x_t W + b` is made inside
  each forward step, from the time-major inputs (faster on XLA:CPU than
  reading the rows of a projection of all steps made before the scan:
  `docs/benchmarks.md`); after the reverse scan `dX = dP W^T`, `dW = X^T dP`
  and `db` are one product or sum each over all steps. Where the projection
  is no such product (`projection` None: a norm on `W x`, zoneout's keep
  masks) the loop reads `cell.project_sequence` of all steps instead, which
  JAX differentiates;
* forward steps: level k computes `z_k = a_k V_k + b_k + h_k R_k` from
  what the level below passed up (for a one-layer cell `z_t = p_t +
  (h_{t-1} ⊙ mask_rd) U` in the recurrent blocks), then the rest of its
  step on `z_k`; the scan keeps the `z_k`, what each level read and the
  states each step starts from, nothing else;
* backward steps (a reverse scan), levels top-down: the level's
  hand-written backward step gives `dz_k`, its state gradients and the
  step's share of the gradients of its weight vectors (peepholes, norms);
  `dh_k` gets `dz_k R_k^T`, the level below `dz_k V_k^T`. For a one-layer
  cell or activation without a written step, the vector-Jacobian product
  of the element-wise step (`jax.vjp`) takes its place;
* after the reverse scan: `dR_k = H_k^T dZ_k` (and `dV_k`, `db_k`) over
  all steps and rows, one product each, and the levels'
  `backward_weight_gradients` for weight matrices inside the step (the
  untied kernel M, the projection P).

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

from keras_gated._fast.contract import AutomaticCellLevel
from keras_gated._fast.contract import levels_of
from keras_gated._fast.contract import LevelStepGradients
from keras_gated._fast.contract import weights_as_in_call

# Steps per iteration of the scans' loops (`lax.scan(unroll=...)`). On
# XLA:CPU four steps per iteration ran an inference scan of the peephole
# layer at (32, 100, 128, 256) in 25 ms against 36 ms, but slowed training
# (132 against 97 ms a step), whose scans keep per-step residuals.
INFERENCE_UNROLL = 4
TRAINING_UNROLL = 1


def fused_rnn(
    cell,
    inputs,
    initial_state,
    mask=None,
    training=False,
    go_backwards=False,
    zero_output_for_mask=False,
    return_all_outputs=True,
):
    """Runs `cell` over `inputs` as a stack of levels; same contract as `keras.src.backend.jax.rnn`.

    Args:
        cell: A built cell with a fast form: a one-layer `FusedCell`
            (`deferred_recurrent_product = True`), run as the one-level
            stack `CellLevel(cell)`, or a stack (`has_fast_levels`), run as
            its `fast_levels()` (`keras_gated._fast.contract.levels_of`).
        inputs: The layer's inputs after input dropout, (batch, time, D).
        initial_state: List of state tensors, `h` first.
        mask: Optional boolean (batch, time) mask.

    Returns:
        `(last_output, outputs, new_states)`, where `outputs` is
        (batch, time, H) if `return_all_outputs`, else (batch, 1, H), in the
        order the steps ran (reversed with `go_backwards`, as Keras does).
    """
    levels = levels_of(cell, len(initial_state), _AutomaticCellLevel)
    return _run(
        cell, levels, inputs, initial_state, mask,
        training, go_backwards, zero_output_for_mask, return_all_outputs,
    )


class _AutomaticCellLevel(AutomaticCellLevel):
    """`AutomaticCellLevel` on JAX: the step's VJP by `jax.vjp`."""

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        d_new = list(d_new_states)
        d_new[0] = d_new[0] + d_up_hidden
        weights = self.summed_weights()
        # Inside the loop's scope these are the loop's arguments.
        values = [jnp.asarray(weight.value) for weight in weights]

        def element_wise(z, states, values):
            with keras.StatelessScope(state_mapping=list(zip(weights, values))):
                return list(self.cell.preactivation_step(z, list(states))[1])

        _, vjp = jax.vjp(element_wise, z, list(states), values)
        # The step's output is h, its first new state: the output's
        # gradient is already in d_new[0], as in the written steps.
        d_z, d_states, d_values = vjp(d_new)
        return LevelStepGradients(
            d_z, self.cell.recurrent_columns(d_z), None, list(d_states), list(d_values), []
        )


def _run(cell, levels, inputs, initial_state, mask, training, go_backwards,
         zero_output_for_mask, return_all_outputs):
    """Projects the inputs, runs the loop over `levels` and shapes its outputs."""
    recurrent_masks = [None] * len(levels)
    if training and cell.recurrent_dropout > 0:
        # A stack's mask is one slice per level (`StackedGatedCell`).
        recurrent_masks = jnp.split(
            jnp.asarray(cell.get_recurrent_dropout_mask(initial_state[0])), len(levels), axis=-1
        )
    bottom_projection = levels[0].projection
    if bottom_projection is None:
        # The loop reads the projection of every step, made here (zoneout's
        # keep masks, a norm on W x: JAX differentiates them).
        sequence = jnp.asarray(cell.project_sequence(inputs, training))
        projection_weights = []
    else:
        # The loop projects each step's x_t itself (`project` in `_loop`).
        sequence = jnp.asarray(inputs)
        kernel, bias = bottom_projection
        projection_weights = [jnp.asarray(kernel)] + ([] if bias is None else [jnp.asarray(bias)])
    sequence = jnp.swapaxes(sequence, 0, 1)
    step_mask = _time_major_mask(mask)
    if go_backwards:
        sequence = jnp.flip(sequence, 0)
        if step_mask is not None:
            step_mask = jnp.flip(step_mask, 0)
    # The levels' kernels may be slices or joins of the cell's variables
    # (the Grid's): they enter the loop as arrays, and JAX differentiates
    # how they were made.
    level_weights = [
        [jnp.asarray(level.recurrent_kernel)]
        + ([] if level.input_kernel is None else [jnp.asarray(level.input_kernel)])
        + ([] if level.input_kernel is None or level.input_bias is None
           else [jnp.asarray(level.input_bias)])
        for level in levels
    ]
    bound = [w for level in levels for w in level.summed_weights()]
    bound += [w for level in levels for w in level.product_weights()]
    loop = _loop(levels, bound, step_mask, recurrent_masks, zero_output_for_mask,
                 lambda: weights_as_in_call(cell))
    outputs, final_states = loop(
        sequence,
        projection_weights,
        [jnp.asarray(s) for s in initial_state],
        level_weights,
        [jnp.asarray(w.value) for w in bound],
    )
    last_output = outputs[-1]
    outputs = jnp.swapaxes(outputs, 0, 1) if return_all_outputs else last_output[:, None, :]
    return last_output, outputs, list(final_states)


def _time_major_mask(mask):
    """A (time, batch, 1) boolean mask from a (batch, time[, 1]) one, or None."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    return jnp.swapaxes(mask.astype(bool), 0, 1)[..., None]


def _loop(levels, bound, step_mask, recurrent_masks, zero_output_for_mask, backward_scope):
    """The custom-VJP loop `(sequence, projection weights, states, level
    weights, bound values) -> (outputs, final states)` over `levels`
    (`FusedLevel`s, bottom first).

    `sequence` is time-major: the projected inputs when `projection weights`
    is empty, else the inputs x, which each forward step projects with
    `[W]` or `[W, b]` itself. On XLA:CPU a scan that reads x_t and computes
    `x_t W` ran faster than one reading the rows of a projection made before
    it (see `docs/benchmarks.md`); the backward pass then gives `dX = dP W^T`
    and `[dW ; db]` as one product each over all steps.

    `bound` are the weights the levels read inside the step (their
    `summed_weights`, then their `product_weights`), whose values are the
    loop's last argument. `backward_scope()` is the context the backward
    pass reads the cell's weights in (`weights_as_in_call`).
    """
    num_levels = len(levels)
    extra_columns = levels[0].extra_columns
    offsets = [0]
    for level in levels:
        offsets.append(offsets[-1] + level.state_count)
    own = [slice(offsets[k], offsets[k + 1]) for k in range(num_levels)]
    summed_count = sum(len(level.summed_weights()) for level in levels)

    def bound_to(values):
        # The levels read their weights (peepholes, norms, depth-gate
        # vectors, the untied M) through the cell: mapped to the arguments.
        return keras.StatelessScope(state_mapping=list(zip(bound, values)))

    def recurrent_input(k, h_tm1):
        return h_tm1 if recurrent_masks[k] is None else h_tm1 * recurrent_masks[k]

    def split_bottom(p_t):
        if not extra_columns:
            return p_t, None
        width = p_t.shape[-1] - extra_columns
        return p_t[..., :width], p_t[..., width:]

    def input_product(weights, a):
        product = a @ weights[1]
        return product + weights[2] if len(weights) > 2 else product

    def project(x_t, projection_weights):
        if not projection_weights:
            return x_t
        p_t = x_t @ projection_weights[0]
        return p_t + projection_weights[1] if len(projection_weights) > 1 else p_t

    def forward(sequence, projection_weights, states, level_weights, values, keep):
        """The forward scan: outputs, final states and, with `keep`, what the
        backward scan needs (each step's pre-activations, what each level
        read from below and the states each step starts from); an inference
        call keeps nothing."""

        def forward_step(states, xs):
            x_t, mask_t = xs
            p, e = split_bottom(project(x_t, projection_weights))
            a, new_states, z_all, reads = None, [], [], []
            for k, level in enumerate(levels):
                if k > 0:
                    p = input_product(level_weights[k], a)
                r = recurrent_input(k, states[own[k]][0]) @ level_weights[k][0]
                z = level.preactivations(p, r)
                reads.append((a, e))
                new_own, a, e = level.forward(z, e, states[own[k]])
                new_states += list(new_own)
                z_all.append(z)
            output = a
            if mask_t is not None:
                # Keras's JAX masking: a masked row keeps its states and
                # repeats the first state (or zeros).
                fallback = jnp.zeros_like(output) if zero_output_for_mask else states[0]
                output = jnp.where(mask_t, output, fallback)
                new_states = [jnp.where(mask_t, n, o) for n, o in zip(new_states, states)]
            if not keep:
                return new_states, output
            return new_states, (output, z_all, reads, states)

        with bound_to(values):
            final_states, per_step = jax.lax.scan(
                forward_step, list(states), (sequence, step_mask),
                unroll=TRAINING_UNROLL if keep else INFERENCE_UNROLL,
            )
        if not keep:
            return per_step, final_states, None
        outputs, z, reads, states_in = per_step
        return outputs, final_states, (z, reads, states_in)

    def backward(residuals, cotangents):
        # JAX traces this after the layer's call has returned.
        with backward_scope():
            return backward_pass(residuals, cotangents)

    def backward_pass(residuals, cotangents):
        (z, reads, states_in), sequence, projection_weights, level_weights, values = residuals
        d_outputs, d_final_states = cotangents
        transposed = [[w.T for w in weights[:2]] for weights in level_weights]

        def backward_step(carry, xs):
            d_carry, totals = carry
            z_t, reads_t, states_t, d_output, mask_t = xs
            if mask_t is None:
                d_new, d_top = list(d_carry), d_output
            else:
                d_new = [jnp.where(mask_t, d, 0.0) for d in d_carry]
                d_top = jnp.where(mask_t, d_output, 0.0)
            d_up = (d_top, None)
            d_prev = [None] * len(states_t)
            d_z_levels, d_r_levels, saved_levels = [None] * num_levels, [None] * num_levels, [None] * num_levels
            d_bottom_extra, sums_all = None, []
            for k in range(num_levels - 1, -1, -1):
                step = levels[k].backward(
                    z_t[k], reads_t[k][1], states_t[own[k]], d_new[own[k]], d_up[0], d_up[1]
                )
                sums_all = list(step.sums) + sums_all
                d_h = step.d_recurrent @ transposed[k][0]
                if recurrent_masks[k] is not None:
                    d_h = d_h * recurrent_masks[k]
                d_own = list(step.d_states)
                d_own[0] = d_h if d_own[0] is None else d_own[0] + d_h
                d_prev[own[k]] = d_own
                d_z_levels[k] = step.d_preactivations
                saved_levels[k] = list(step.saved)
                if levels[k].separate_recurrent_gradient:
                    d_r_levels[k] = step.d_recurrent
                if k > 0:
                    d_up = (step.d_preactivations @ transposed[k][1], step.d_extra)
                else:
                    d_bottom_extra = step.d_extra
            d_prev = [jnp.zeros_like(s) if d is None else d for d, s in zip(d_prev, states_t)]
            if mask_t is not None:
                # Where the row was masked the step handed its states through.
                d_prev = [jnp.where(mask_t, d, passed) for d, passed in zip(d_prev, d_carry)]
                if not zero_output_for_mask:
                    d_prev[0] = d_prev[0] + jnp.where(mask_t, 0.0, d_output)
            totals = [a + b.astype(a.dtype) for a, b in zip(totals, sums_all)]
            d_projected = d_z_levels[0]
            if extra_columns:
                d_projected = jnp.concatenate([d_projected, d_bottom_extra], axis=-1)
            return (d_prev, totals), (d_projected, d_z_levels, d_r_levels, saved_levels)

        with bound_to(values):
            initial = (
                [jnp.zeros_like(s[0]) if d is None else d for d, s in zip(d_final_states, states_in)],
                # At least float32 under a mixed-precision policy: one
                # rounding per step, not two.
                [jnp.zeros(w.shape, jnp.promote_types(w.dtype, jnp.float32))
                 for w in values[:summed_count]],
            )
            (d_initial_states, d_summed), (d_projected, d_z, d_r, saved) = jax.lax.scan(
                backward_step, initial, (z, reads, states_in, d_outputs, step_mask),
                reverse=True, unroll=TRAINING_UNROLL,
            )
            d_summed = [d.astype(w.dtype) for d, w in zip(d_summed, values)]
            d_level_weights, d_products = [], []
            for k, (level, weights) in enumerate(zip(levels, level_weights)):
                d_z_rows = d_z[k].reshape(-1, d_z[k].shape[-1])
                h_rows = recurrent_input(k, states_in[own[k]][0])
                h_rows = h_rows.reshape(-1, h_rows.shape[-1])
                if level.separate_recurrent_gradient:
                    d_recurrent_rows = d_r[k].reshape(h_rows.shape[0], -1)
                else:
                    d_recurrent_rows = level.recurrent_columns(d_z_rows)
                gradients = [h_rows.T @ d_recurrent_rows]
                if len(weights) > 1:
                    a_rows = reads[k][0].reshape(-1, reads[k][0].shape[-1])
                    gradients.append(a_rows.T @ d_z_rows)
                    if len(weights) > 2:
                        gradients.append(d_z_rows.sum(axis=0))
                d_level_weights.append(gradients)
                if level.product_weights():
                    d_products += level.backward_weight_gradients(
                        d_z[k], list(states_in[own[k]]), saved[k]
                    )
        d_sequence, d_projection_weights = d_projected, []
        if projection_weights:
            rows = sequence.reshape(-1, sequence.shape[-1])
            d_rows = d_projected.reshape(rows.shape[0], -1)
            d_sequence = (d_rows @ projection_weights[0].T).reshape(sequence.shape)
            d_projection_weights = [rows.T @ d_rows]
            if len(projection_weights) > 1:
                d_projection_weights.append(d_rows.sum(axis=0))
        return (
            d_sequence, d_projection_weights, d_initial_states, d_level_weights,
            [*d_summed, *d_products],
        )

    @jax.custom_vjp
    def loop(sequence, projection_weights, states, level_weights, values):
        outputs, final_states, _ = forward(
            sequence, projection_weights, states, level_weights, values, False
        )
        return outputs, final_states

    def loop_forward(sequence, projection_weights, states, level_weights, values):
        outputs, final_states, kept = forward(
            sequence, projection_weights, states, level_weights, values, True
        )
        return (outputs, final_states), (
            kept, sequence, projection_weights, level_weights, values,
        )

    loop.defvjp(loop_forward, backward)
    return loop
