"""TensorFlow fast path: a chunked time loop with a hand-written backward pass.

Why: TensorFlow differentiates a `tf.while_loop` step by step. Each backward
step then computes its own share of the recurrent weight gradient,
`h_{t-1}^T dz_t`, a product whose inner dimension is only the batch size,
and the loop pushes and pops every intermediate of the step on stacks.

What this module does instead, in one loop skeleton for every fast layer
as a stack of levels (`keras_gated._fast.contract.FusedLevel`): a one-layer
cell whose step reaches `recurrent_kernel` only through
`GatedCell.recurrent_product` (`deferred_recurrent_product = True`) is the
one-level stack `CellLevel(cell)`; a stack (`has_fast_levels`) gives its
`fast_levels()`. For a one-layer cell:

* time is cut into chunks of about `CHUNK_ROWS` rows (steps x batch); the
  inputs of a chunk are projected with one product, `P = X W + b`, just
  before its steps run, so the projection of the whole sequence never
  exists at once;
* forward steps: `r_t = (h_{t-1} ⊙ mask_rd) U` (one fused product for all
  gate blocks), `z_t = p_t + r_t` in the recurrent blocks
  (`cell.full_preactivations`), then the rest of the step
  (`cell.preactivation_step` on `z_t`, the full pre-activations);
  the loop keeps `z_t` and the states each step starts from;
* backward steps: the cell's hand-written `step_backward` gives `dz_t`, the
  state gradients and the step's share of the gradients of the cell's
  weight vectors, summed over the batch; for cells or activations without
  one, the vector-Jacobian product of the element-wise step is recomputed
  under a `tf.GradientTape`. `dh_{t-1}` gets `dz_t U^T`, on a transposed
  copy of U. Each `z_t` is popped off its list as it is used, freeing it;
* after the backward steps of a chunk: `[dW ; dU ; db] += [X | H | 1]^T dZ`
  over the chunk's rows, one product for the three weight gradients, and
  the input gradient `dX = dZ W^T` of the chunk when some tape needs it. So
  `dZ` never exists for the whole sequence either, and the products of a
  chunk can run while the next chunk's steps do.

A stack's levels run bottom-up inside each forward step and top-down inside
each backward step, each with one input product of what the level below
passed up and one recurrent product (see `fused_rnn`).

Masking, `go_backwards`, recurrent dropout (masks drawn by the layer before
the loop, as `keras.layers.RNN` does), `zero_output_for_mask`, initial and
stateful states and `unroll` follow `keras.src.backend.tensorflow.rnn`
exactly, so this path gives the numbers of the cell path.
"""

import tensorflow as tf

from keras_gated._fast.contract import AutomaticCellLevel
from keras_gated._fast.contract import LevelStepGradients
from keras_gated._fast.contract import levels_of
from keras_gated._fast.contract import weights_as_in_call
from keras_gated._fast.tensorflow_tape import watched
from keras_gated.backward import add_gradients

# Rows (steps x batch) per chunk. Products over 512 to 4096 rows ran within
# 6% of one product over all 6400 rows at (batch, steps, inputs, units) =
# (128, 50, 256, 512), and train steps over 512 and 1024 ran alike within
# the machine's noise; 512 keeps the per-chunk buffers small (untied layer:
# 138 -> 126 MB of training memory at (32, 100, 128, 256), 315 -> 300 MB at
# the larger shape).
CHUNK_ROWS = 512
# Steps per chunk when the batch size is not known while tracing.
DYNAMIC_BATCH_CHUNK_STEPS = 16


def _for(count, body, carry, reverse=False, unroll=False, parallel_iterations=10):
    """`carry = body(i, carry)` for i in 0..count-1 (count-1..0 if `reverse`).

    `unroll=True` writes the loop out in Python (needs a static `count`);
    otherwise it is one `tf.while_loop`. `carry` is any nest of tensors and
    `tf.TensorArray`s. The loops over chunks run one iteration at a time
    (`parallel_iterations=1`): with more, TensorFlow projects chunks ahead
    of their steps, and a 2-level GridLSTM at (128, 50, 256, 512) peaked
    at 980 MB against 665 MB; over steps, 10 let each step's reads run
    ahead, 15% faster than 1.
    """
    if unroll:
        order = range(count - 1, -1, -1) if reverse else range(count)
        for i in order:
            carry = body(i, carry)
        return carry

    def loop_body(i, carry):
        index = count - 1 - i if reverse else i
        return i + 1, body(index, carry)

    _, carry = tf.while_loop(
        lambda i, _: i < count,
        loop_body,
        (tf.constant(0), carry),
        swap_memory=True,
        parallel_iterations=parallel_iterations,
    )
    return carry


def _input_gradient_needed(tensor):
    """False only when some gradient tape is recording and none watches `tensor`.

    A layer fed straight from the data needs no input gradient, and its
    product `dZ W^T` is then skipped. When nobody can tell (`tf.gradients`),
    the gradient is computed, as it may be asked for.
    """
    return watched([tensor]) is not False


def _taped(tensors):
    """Whether a gradient tape is known to record any of `tensors`.

    An inference call under a tape (a custom training loop that calls the
    model without `training=True`) then still gets the fast backward loop;
    otherwise TensorFlow differentiates the forward loop, should it have to.
    """
    return watched(tensors) is True


def _run(loop, run_forward, tensors, training, return_all_outputs):
    """Training (or a watched inference call) runs `loop`, the custom-gradient
    loop; inference runs `run_forward(tensors, keep=False)` alone, which keeps
    nothing for a backward loop and which TensorFlow can still differentiate."""
    if training or _taped(tensors):
        return _finish(loop(*tensors), return_all_outputs)
    outputs, final_states = run_forward(tensors, False)[:2]
    return _finish([outputs] + list(final_states), return_all_outputs)


def fused_rnn(
    cell,
    inputs,
    initial_state,
    mask=None,
    training=False,
    go_backwards=False,
    zero_output_for_mask=False,
    return_all_outputs=True,
    unroll=False,
):
    """Runs `cell` over `inputs` as a stack of levels; same contract as `keras.src.backend.rnn`.

    `contract.levels_of(cell)` describes the stack: a one-layer `FusedCell`
    is the one-level stack `CellLevel(cell)` (`_AutomaticCellLevel` for
    activations without a written backward step), a stack
    (`has_fast_levels`) gives its `fast_levels()`. Inside every step, level
    k reads what level k-1 passed up at that step (a hidden vector `a_k`,
    through its input kernel V_k, and an extra vector `e_k` such as the
    memory below) and its own past states (h_k through its recurrent
    kernel R_k): `z_k = a_k V_k + b_k + h_k R_k`, two products, and no
    concatenation of `[h_k ; a_k]`. The bottom level's input product is the
    projection of x, made for a chunk of steps at once. The backward step
    runs the levels top-down with their written backward steps (`dh_k`
    gets `dz_k R_k^T`, the level below `dz_k V_k^T`), and after a chunk
    `[dV_k ; dR_k ; db_k] = [A_k | H_k | 1]^T dZ_k` is one product per
    level (for the bottom level `[dW ; dU ; db] = [X | H | 1]^T dZ`), and
    the levels' `backward_weight_gradients` give the gradients of the
    weight matrices inside the step. States are the levels' own, bottom
    first (`[h_0, c_0, h_1, c_1, ...]`); the output is what the top level
    passes up.

    Args:
        cell: A built cell with a fast form (`keras_gated._fast._kind`).
        inputs: The layer's inputs after input dropout, (batch, time, D).
        initial_state: List of state tensors, `h` first.
        mask: Optional boolean (batch, time) mask.

    Returns:
        `(last_output, outputs, new_states)`, where `outputs` is
        (batch, time, H) if `return_all_outputs`, else (batch, 1, H).
    """
    levels = levels_of(cell, len(initial_state), _AutomaticCellLevel)
    num_levels = len(levels)
    num_states = len(initial_state)
    offsets = [0]
    for level in levels:
        offsets.append(offsets[-1] + level.state_count)
    own = [slice(offsets[k], offsets[k + 1]) for k in range(num_levels)]
    inputs = tf.convert_to_tensor(inputs)
    time_major_inputs, step_mask = _time_major(inputs, mask, go_backwards)
    recurrent_masks = [None] * num_levels
    if training and cell.recurrent_dropout > 0:
        # A stack's mask is one slice per level (`StackedGatedCell`).
        recurrent_masks = tf.split(
            tf.convert_to_tensor(cell.get_recurrent_dropout_mask(initial_state[0])),
            num_levels,
            axis=-1,
        )
    bottom_level = levels[0]
    projection = bottom_level.projection
    loop_inputs, input_gradient = _loop_inputs(
        cell, projection, time_major_inputs, inputs, go_backwards, training
    )
    # Every level's weights enter as tensors: TensorFlow differentiates how
    # the levels sliced or joined them from the variables.
    level_weights = [
        [level.recurrent_kernel]
        + ([] if level.input_kernel is None else [level.input_kernel])
        + ([] if level.input_kernel is None or level.input_bias is None else [level.input_bias])
        for level in levels
    ]
    level_weights = [[tf.convert_to_tensor(w) for w in ws] for ws in level_weights]
    num_weights = sum(len(ws) for ws in level_weights)
    length, chunk, num_chunks = _chunking(time_major_inputs, inputs.shape[0], unroll)
    num_inputs = len(loop_inputs)
    # prev_output is only part of the step when masked steps repeat it.
    carries_output = step_mask is not None and not zero_output_for_mask
    extra_columns = bottom_level.extra_columns
    # Columns at the end of the bottom level's z that are its projection's
    # own (the depth-gated layer's depth gate and lower memory, 2H): the
    # backward loop projects them again from x, chunk by chunk, rather than
    # keep them for every step.
    recomputed = bottom_level.input_only_columns if projection is not None else 0
    # What the forward step keeps of what the levels read from below, for
    # the backward step: (level, "a") and (level, "e"). A level that reads
    # the new states of the level below finds them among the kept states.
    kept_reads = [(0, "e")] if extra_columns else []
    for k in range(1, num_levels):
        if not levels[k - 1].up_from_states:
            kept_reads.append((k, "a"))
            if levels[k - 1].passes_extra_up:
                kept_reads.append((k, "e"))

    def recurrent_input(k, h_tm1):
        return h_tm1 if recurrent_masks[k] is None else h_tm1 * recurrent_masks[k]

    def read_width(key, state_shape):
        k, kind = key
        if kind == "a":
            return state_shape[-1]
        return extra_columns if k == 0 else levels[k - 1].up_extra_width

    def split_bottom(projected):
        """The bottom level's input product and extra vector (or None)."""
        if not extra_columns:
            return projected, None
        width = projected.shape[-1] - extra_columns
        return tuple(tf.split(projected, [width, extra_columns], axis=-1))

    def run_forward(tensors, keep):
        """The forward loop: `(outputs, final states, per-level weights,
        bottom projection, kept)`; with `keep`, `kept` is what the backward
        loop reads: `(z_tas, read_tas, states_tas, z_shapes)`, the
        pre-activations of every level and step (as the loop's own per-step
        lists, which the backward loop pops step by step; the bottom level's
        without its `recomputed` columns), what the levels read from below
        and the states every step returns."""
        loop_in = list(tensors[:num_inputs])
        weights_in = list(tensors[num_inputs : num_inputs + num_weights])
        states = list(tensors[num_inputs + num_weights :])
        per_level = []
        for ws in level_weights:
            per_level.append(weights_in[: len(ws)])
            weights_in = weights_in[len(ws) :]
        dtype = states[0].dtype
        zero_output = tf.zeros_like(states[0])

        def input_product(k, a):
            p = tf.matmul(a, per_level[k][1])
            return p + per_level[k][2] if len(per_level[k]) > 2 else p

        projection_in = _BottomProjection(loop_in, projection is not None, input_gradient)

        def forward_chunk(c, carry):
            start, end = _chunk_bounds(c, chunk, length)
            projected = projection_in.chunk(start, end)
            if recomputed:
                projected, input_only = tf.split(projected, [-1, recomputed], -1)
            bottom, bottom_extra = split_bottom(projected)

            def forward_step(s, carry):
                states, prev_output, outputs_ta, z_tas, read_tas, states_tas = carry
                t = start + s
                new_states, z_all, reads = [], [], {}
                a, e = None, None if bottom_extra is None else bottom_extra[s]
                for k, level in enumerate(levels):
                    level_states = states[own[k]]
                    r = tf.matmul(recurrent_input(k, level_states[0]), per_level[k][0])
                    if k == 0 and recomputed:
                        kept_z = bottom[s] + r
                        z = tf.concat([kept_z, input_only[s]], axis=-1)
                    else:
                        p = bottom[s] if k == 0 else input_product(k, a)
                        z = kept_z = level.preactivations(p, r)
                    reads[(k, "a")], reads[(k, "e")] = a, e
                    new_own, a, e = level.forward(z, e, level_states)
                    new_states += list(new_own)
                    z_all.append(kept_z)
                    z_shapes[k] = kept_z.shape
                output, new_states = _masked_outputs(
                    None if step_mask is None else step_mask[t],
                    a, new_states, states, prev_output, carries_output,
                )
                if keep:
                    z_tas = [ta.write(t, z) for ta, z in zip(z_tas, z_all)]
                    read_tas = [
                        ta.write(t, reads[key]) for ta, key in zip(read_tas, kept_reads)
                    ]
                    states_tas = [
                        ta.write(t + 1, v) for ta, v in zip(states_tas, new_states)
                    ]
                return (
                    new_states, output, outputs_ta.write(t, output),
                    z_tas, read_tas, states_tas,
                )

            return _for(end - start, forward_step, carry, unroll=unroll)

        # Static shapes, so that the backward step's tensors have them too:
        # Grappler rewrites a sum of tensors of unknown shape inside a loop
        # into an AccumulateNV2 over a temporary variable, whose name then
        # collides between chunks (AlreadyExistsError, TensorFlow #37740).
        state_shape = states[0].shape
        z_shapes = [None] * num_levels
        outputs_ta = tf.TensorArray(dtype, size=length, element_shape=state_shape)
        z_tas, read_tas, states_tas = [], [], []
        if keep:
            z_tas = [tf.TensorArray(dtype, size=length) for _ in levels]
            # The bottom level's extra vector is as wide as its columns (the
            # depth-gated l_t and zoneout's masks, where h may be P wide), an
            # upper level's as the level below passes up; the hidden
            # vectors read are as wide as a state.
            read_tas = [
                tf.TensorArray(
                    dtype, size=length,
                    element_shape=state_shape[:-1] + [read_width(key, state_shape)],
                )
                for key in kept_reads
            ]
            states_tas = [
                tf.TensorArray(dtype, size=length + 1, element_shape=s.shape).write(0, s)
                for s in states
            ]
        final_states, _, outputs_ta, z_tas, read_tas, states_tas = _for(
            num_chunks,
            forward_chunk,
            (states, zero_output, outputs_ta, z_tas, read_tas, states_tas),
            unroll=unroll,
            parallel_iterations=1,
        )
        kept = (z_tas, read_tas, states_tas, z_shapes) if keep else None
        return outputs_ta.stack(), final_states, per_level, projection_in, kept

    @tf.custom_gradient
    def loop(*tensors):
        outputs, final_states, per_level, projection_in, kept = run_forward(tensors, True)
        z_tas, read_tas, states_tas, z_shapes = kept
        dtype = outputs.dtype
        zero_output = tf.zeros_like(final_states[0])
        # Step t starts from state_steps[t] and returns state_steps[t + 1].
        state_steps = [ta.stack() for ta in states_tas]
        read_steps = dict(zip(kept_reads, [ta.stack() for ta in read_tas]))

        def reads_at(k, index, next_index):
            """(a_k, e_k) of step(s) `index`, as the forward step read them.

            `next_index` indexes the states those steps returned.
            """
            if k > 0 and levels[k - 1].up_from_states:
                below = offsets[k - 1]
                return state_steps[below][next_index], state_steps[below + 1][next_index]
            return tuple(
                read_steps[(k, kind)][index] if (k, kind) in read_steps else None
                for kind in ("a", "e")
            )

        def grad(d_outputs, *d_final_states, variables=None):
            with weights_as_in_call(cell):
                d_tensors, weight_gradients = backward_pass(d_outputs, d_final_states)
            return d_tensors, _match_variables(list(variables or []), weight_gradients)

        def backward_pass(d_outputs, d_final_states):
            """The gradients of the loop's tensors, and `(weight, gradient)`
            pairs for the weights the steps read from the cell."""
            d_outputs = _zeros_if_none(d_outputs, outputs)
            d_states = [
                _zeros_if_none(d, s) for d, s in zip(d_final_states, final_states)
            ]
            # Transposed copies, outside the loop: oneDNN runs the thin
            # products dz R^T and dz V^T about 3x slower with
            # `transpose_b=True` than on a transposed copy (measured at
            # 4H = 1024 columns).
            transposed = [[tf.transpose(w) for w in ws[:2]] for ws in per_level]
            projection_in.prepare_backward(
                per_level[0][0].shape[-1] if recomputed else None
            )
            summed_weights = [w for level in levels for w in level.summed_weights()]
            product_weights = [level.product_weights() for level in levels]
            z_stores = [_StepStore(ta, shape) for ta, shape in zip(z_tas, z_shapes)]
            # Per chunk and level: dz_k, the level's saved tensors, and dR_k
            # where that is no slice of dz_k (a norm on the recurrent product).
            arrays_per_level = [
                1 + level.step_saves + int(level.separate_recurrent_gradient)
                for level in levels
            ]

            def backward_step(t, z_handles, input_only_t, d_carry, d_prev, totals):
                mask_t = step_mask[t] if step_mask is not None else None
                d_output, d_new, d_prev = _masked_gradients(
                    mask_t, d_outputs[t], d_carry, d_prev, carries_output
                )
                states_t = [s[t] for s in state_steps]
                d_up = (d_output, None)
                d_prev_states = [None] * num_states
                kept_levels, d_bottom_extra, sums_all = [None] * num_levels, None, []
                z_handles = list(z_handles)
                for k in range(num_levels - 1, -1, -1):
                    level = levels[k]
                    _, e = reads_at(k, t, t + 1)
                    z_handles[k], z = z_stores[k].take(t, z_handles[k])
                    if k == 0 and recomputed:
                        z = tf.concat([z, input_only_t], axis=-1)
                    step = level.backward(
                        z, e, states_t[own[k]], d_new[own[k]], d_up[0], d_up[1],
                    )
                    sums_all = list(step.sums) + sums_all
                    d_h = tf.matmul(step.d_recurrent, transposed[k][0])
                    if recurrent_masks[k] is not None:
                        d_h = d_h * recurrent_masks[k]
                    d_own = list(step.d_states)
                    d_own[0] = add_gradients(d_own[0], d_h)
                    d_prev_states[own[k]] = d_own
                    kept_levels[k] = (
                        [step.d_preactivations] + list(step.saved)
                        + ([step.d_recurrent] if level.separate_recurrent_gradient else [])
                    )
                    if k > 0:
                        d_up = (tf.matmul(step.d_preactivations, transposed[k][1]), step.d_extra)
                    else:
                        d_bottom_extra = step.d_extra
                d_prev_states = _pass_masked(
                    mask_t,
                    [_zeros_if_none(d, s) for d, s in zip(d_prev_states, states_t)],
                    d_carry,
                )
                totals = [a + tf.cast(b, a.dtype) for a, b in zip(totals, sums_all)]
                written = [v for kept in kept_levels for v in kept]
                written += [d_bottom_extra] if extra_columns else []
                return z_handles, written, d_prev_states, d_prev, totals

            def backward_chunk(c, carry):
                start, end = _chunk_bounds(c, chunk, length)
                (z_handles, d_carry, d_prev, totals, products, product_grads,
                 d_inputs_ta) = carry
                n = end - start
                chunk_arrays = [
                    tf.TensorArray(dtype, size=n)
                    for _ in range(sum(arrays_per_level) + (1 if extra_columns else 0))
                ]
                input_only = projection_in.input_only(start, end) if recomputed else None

                def step_in_chunk(s, inner):
                    z_handles, d_carry, d_prev, totals, chunk_arrays = inner
                    z_handles, written, d_carry, d_prev, totals = backward_step(
                        start + s, z_handles, None if input_only is None else input_only[s],
                        d_carry, d_prev, totals,
                    )
                    chunk_arrays = [a.write(s, v) for a, v in zip(chunk_arrays, written)]
                    return z_handles, d_carry, d_prev, totals, chunk_arrays

                z_handles, d_carry, d_prev, totals, chunk_arrays = _for(
                    n, step_in_chunk, (z_handles, d_carry, d_prev, totals, chunk_arrays),
                    reverse=True, unroll=unroll,
                )
                products, product_grads = list(products), list(product_grads)
                position = 0
                for k, level in enumerate(levels):
                    level_arrays = chunk_arrays[position : position + arrays_per_level[k]]
                    position += arrays_per_level[k]
                    d_z = level_arrays[0].stack()
                    h_rows = _flat(recurrent_input(k, state_steps[offsets[k]][start:end]))
                    if k == 0:
                        d_projected = d_z
                        if extra_columns:
                            d_projected = tf.concat([d_z, chunk_arrays[-1].stack()], axis=-1)
                        d_r = (
                            level_arrays[-1].stack() if level.separate_recurrent_gradient
                            else None
                        )
                        products[0], d_inputs_ta = projection_in.accumulate(
                            c, start, end, h_rows, d_projected, level.recurrent_columns,
                            products[0], d_inputs_ta, d_r,
                        )
                    elif level.separate_recurrent_gradient:
                        # A norm on h R: dR from its own gradient, apart
                        # from [dV ; db] (dZ's columns are V's, not R's).
                        a_rows = reads_at(k, slice(start, end), slice(start + 1, end + 1))[0]
                        input_rows = _weight_rows(_flat(a_rows), None, len(per_level[k]) > 2)
                        products[k] = (
                            products[k][0]
                            + tf.matmul(input_rows, _flat(d_z), transpose_a=True),
                            products[k][1]
                            + tf.matmul(h_rows, _flat(level_arrays[-1].stack()), transpose_a=True),
                        )
                    else:
                        a_rows = reads_at(k, slice(start, end), slice(start + 1, end + 1))[0]
                        products[k] = products[k] + tf.matmul(
                            _weight_rows(_flat(a_rows), h_rows, len(per_level[k]) > 2),
                            _flat(d_z),
                            transpose_a=True,
                        )
                    if product_weights[k]:
                        gradients = level.backward_weight_gradients(
                            d_z,
                            [s[start:end] for s in state_steps[own[k]]],
                            [a.stack() for a in level_arrays[1 : 1 + level.step_saves]],
                        )
                        product_grads[k] = [a + g for a, g in zip(product_grads[k], gradients)]
                return (z_handles, d_carry, d_prev, totals, products, product_grads,
                        d_inputs_ta)

            products = [projection_in.zero_products(per_level[0][0], dtype)] + [
                (
                    tf.zeros((ws[1].shape[0] + int(len(ws) > 2), ws[1].shape[1]), dtype),
                    tf.zeros_like(ws[0]),
                )
                if level.separate_recurrent_gradient
                else tf.zeros(
                    (ws[1].shape[0] + ws[0].shape[0] + int(len(ws) > 2), ws[1].shape[1]),
                    dtype,
                )
                for level, ws in zip(levels[1:], per_level[1:])
            ]
            initial_carry = (
                [store.handle() for store in z_stores],
                d_states,
                tf.zeros_like(zero_output),
                # At least float32, as an optimizer keeps its sums, under a
                # mixed-precision policy too: one rounding per step, not two.
                [tf.zeros(w.shape, _accumulation_dtype(dtype)) for w in summed_weights],
                products,
                [[tf.zeros_like(w) for w in ws] for ws in product_weights],
                tf.TensorArray(dtype, size=num_chunks, infer_shape=False),
            )
            with cell.backward_loop_weights():
                _, d_carry, _, totals, products, product_grads, d_inputs_ta = _for(
                    num_chunks, backward_chunk, initial_carry,
                    reverse=True, unroll=unroll, parallel_iterations=1,
                )
            weight_gradients = (
                list(zip(summed_weights, totals))
                + [
                    pair
                    for ws, gs in zip(product_weights, product_grads)
                    for pair in zip(ws, gs)
                ]
            )
            d_loop_inputs, d_bottom_recurrent = projection_in.gradients(
                products[0], d_inputs_ta, per_level[0][0].shape[0],
                bottom_level.recurrent_columns,
            )
            d_weights = [d_bottom_recurrent]
            for k in range(1, num_levels):
                ws = per_level[k]
                if levels[k].separate_recurrent_gradient:
                    d_input_rows, d_recurrent = products[k]
                    d_input_kernel, _, d_bias = _split_weight_rows(
                        d_input_rows, ws[1].shape[0], 0, len(ws) > 2
                    )
                    d_weights += [d_recurrent, d_input_kernel]
                else:
                    d_input_kernel, d_recurrent, d_bias = _split_weight_rows(
                        products[k], ws[1].shape[0], ws[0].shape[0], len(ws) > 2
                    )
                    d_weights += [levels[k].recurrent_columns(d_recurrent), d_input_kernel]
                d_weights += [d_bias] if d_bias is not None else []
            return d_loop_inputs + d_weights + list(d_carry), weight_gradients

        return [outputs] + list(final_states), grad

    tensors = [*loop_inputs, *(w for ws in level_weights for w in ws), *initial_state]
    return _run(loop, run_forward, tensors, training, return_all_outputs)


class _AutomaticCellLevel(AutomaticCellLevel):
    """`AutomaticCellLevel` on TensorFlow: the step's VJP under a `tf.GradientTape`."""

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        d_new = list(d_new_states)
        # The step's output is h, its first new state: the output's gradient
        # joins h's, as in the written steps.
        d_new[0] = d_new[0] + d_up_hidden
        # The loop's custom gradient sees the weights as TensorFlow variables.
        weights = [getattr(w, "value", w) for w in self.summed_weights()]
        states = list(states)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([z, *states, *weights])
            new_states = self.cell.preactivation_step(z, list(states))[1]
        gradients = tape.gradient(
            list(new_states),
            [z, *states, *weights],
            output_gradients=d_new,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        d_z = gradients[0]
        count = len(states)
        return LevelStepGradients(
            d_z, self.cell.recurrent_columns(d_z), None,
            list(gradients[1 : 1 + count]), list(gradients[1 + count :]), [],
        )


def _masked_outputs(mask_t, output, new_states, states, prev_output, carries_output):
    """Keras's masking rules for one step: a masked step keeps its states and
    repeats the previous output (zeros with `zero_output_for_mask`)."""
    new_states = list(new_states)
    if mask_t is None:
        return output, new_states
    fallback = prev_output if carries_output else tf.zeros_like(output)
    output = tf.where(mask_t, output, fallback)
    return output, [tf.where(mask_t, n, s) for n, s in zip(new_states, states)]


def _masked_gradients(mask_t, d_output, d_states, d_prev, carries_output):
    """Keras's masking rules, backwards, for one step: what reaches the step.

    Returns `(d_output, d_new_states, d_prev)`: the gradients that reach the
    step's own output and new states, and the gradient of the previous
    output. A masked step hands its incoming states (and, unless
    `zero_output_for_mask`, the previous output) through unchanged, so
    nothing reaches it there; `_pass_masked` then hands the gradients of
    its states through.
    """
    if carries_output:
        d_output = d_output + d_prev
    if mask_t is None:
        return d_output, list(d_states), d_prev
    d_new = [tf.where(mask_t, d, 0.0) for d in d_states]
    if carries_output:
        d_prev = tf.where(mask_t, 0.0, d_output)
    return tf.where(mask_t, d_output, 0.0), d_new, d_prev


def _pass_masked(mask_t, d_from_step, d_states):
    """The gradients of the states a step started from.

    Where the step ran, those its backward step computed; where it was
    masked, the gradients of the states it handed through (its own are zero
    there). A selection rather than a sum of the two, which also keeps the
    backward step free of addition chains (see `add_gradients`).
    """
    if mask_t is None:
        return d_from_step
    return [tf.where(mask_t, a, b) for a, b in zip(d_from_step, d_states)]


class _BottomProjection:
    """The projection of the inputs, chunk by chunk, forward and backward.

    Made inside a loop's custom gradient from its input tensors: with the
    cell's `projection_weights()`, `loop_in = [x, W]` or `[x, W, b]` and
    the loop projects each chunk itself, and gives the gradients of x, W
    and b; without, `loop_in = [P]`, the whole projection, which TensorFlow
    differentiates, and the loop gives the gradient of P.
    """

    def __init__(self, loop_in, projected_here, input_gradient):
        self.loop_in = loop_in
        self.projected_here = projected_here
        self.input_gradient = input_gradient
        self.has_bias = len(loop_in) > 2
        self.kernel_t = None
        self.input_only_weights = None

    def prepare_backward(self, input_only_from=None):
        """Transposes W once, before the backward loop, for `dZ W^T`.

        With `input_only_from`, also takes the columns of W and b from that
        one on, for `input_only`.
        """
        if self.projected_here and self.input_gradient:
            self.kernel_t = tf.transpose(self.loop_in[1])
        if input_only_from is not None:
            self.input_only_weights = [
                w[..., input_only_from:] for w in self.loop_in[1:]
            ]

    def input_only(self, start, end):
        """The projection of steps start..end-1 in the columns `prepare_backward` named."""
        x_chunk = self.loop_in[0][start:end]
        projected = tf.matmul(_flat(x_chunk), self.input_only_weights[0])
        if self.has_bias:
            projected = projected + self.input_only_weights[1]
        return _unflatten(projected, x_chunk)

    def chunk(self, start, end):
        """The projected inputs of steps start..end-1, time-major."""
        if not self.projected_here:
            return self.loop_in[0][start:end]
        x_chunk = self.loop_in[0][start:end]
        projected = tf.matmul(_flat(x_chunk), self.loop_in[1])
        if self.has_bias:
            projected = projected + self.loop_in[2]
        return _unflatten(projected, x_chunk)

    def zero_products(self, recurrent_kernel, dtype):
        """The accumulator of `accumulate`'s products."""
        units, recurrent_width = recurrent_kernel.shape
        if not self.projected_here:
            return tf.zeros((units, recurrent_width), dtype)
        features, width = self.loop_in[1].shape
        return tf.zeros((features + units + int(self.has_bias), width), dtype)

    def accumulate(self, c, start, end, h_rows, d_z_chunk, recurrent_columns,
                   products, d_inputs_ta, d_r_chunk=None):
        """Adds chunk c's weight gradients to `products`; keeps its input gradient.

        `d_r_chunk`, where the cell's `d_recurrent` is no slice of dZ (a
        norm on U h), is the gradient of U h for `dU = H^T dR`; such a cell
        has no `projection_weights`, so the projection is not made here.

        With the projection made here, `[dW ; dU ; db] += [X | H | 1]^T dZ`.
        Where the recurrent blocks are not all the projected columns
        (untied, depth-gated) this also computes H^T dZ of the others,
        which costs less than gathering the recurrent columns of dZ into a
        copy. The input gradient `dZ W^T` runs on a transposed copy of W
        (85 ms with `transpose_b=True` against 40 ms at the large shape).
        """
        d_z_rows = _flat(d_z_chunk)
        if not self.projected_here:
            d_r_rows = recurrent_columns(d_z_rows) if d_r_chunk is None else _flat(d_r_chunk)
            products = products + tf.matmul(h_rows, d_r_rows, transpose_a=True)
            return products, d_inputs_ta.write(c, d_z_chunk)
        rows = _weight_rows(_flat(self.loop_in[0][start:end]), h_rows, self.has_bias)
        products = products + tf.matmul(rows, d_z_rows, transpose_a=True)
        if self.input_gradient:
            d_inputs_ta = d_inputs_ta.write(
                c, _unflatten(tf.matmul(d_z_rows, self.kernel_t), d_z_chunk)
            )
        return products, d_inputs_ta

    def gradients(self, products, d_inputs_ta, units, recurrent_columns):
        """`(gradients of loop_in, gradient of the recurrent kernel)`."""
        if not self.projected_here:
            return [d_inputs_ta.concat()], products
        d_kernel, d_recurrent, d_bias = _split_weight_rows(
            products, self.loop_in[1].shape[0], units, self.has_bias
        )
        d_x = d_inputs_ta.concat() if self.input_gradient else None
        d_loop_in = [d_x, d_kernel] + ([d_bias] if self.has_bias else [])
        return d_loop_in, recurrent_columns(d_recurrent)


class _StepStore:
    """A loop's per-step tensors kept for its backward steps, freed as they are used.

    In a graph the backward steps pop them off the end of the forward
    loop's list, so each is freed once used; eagerly a TensorArray is a
    Python list, which is read instead.
    """

    def __init__(self, array, shape):
        self.array = array
        self.shape = shape
        self.pop = not tf.executing_eagerly()

    def handle(self):
        """The loop variable the backward steps carry (the list, when popping)."""
        return self.array.flow if self.pop else tf.constant(0.0)

    def take(self, t, handle):
        """`(handle, tensor of step t)`; steps must be taken last first."""
        if not self.pop:
            return handle, self.array.read(t)
        handle, value = tf.raw_ops.TensorListPopBack(
            input_handle=handle,
            element_shape=tf.constant(-1, tf.int32),
            element_dtype=self.array.dtype,
        )
        value.set_shape(self.shape)
        return handle, value


def _weight_rows(input_rows, hidden_rows, has_bias):
    """`[A | H | 1]`: its product with dZ gives `[dV ; dR ; db]` at once.

    The row of ones sums dZ over the rows, so the bias needs no reduction
    of its own. Measured at (batch, steps, inputs, units) = (128, 50, 256,
    512): 93 ms against 110 ms for the two products and the reduction apart.
    Without `hidden_rows` (None: dR comes from a gradient of its own),
    `[A | 1]` for `[dV ; db]`.
    """
    rows = [input_rows] + ([] if hidden_rows is None else [hidden_rows])
    if has_bias:
        rows.append(tf.ones_like(input_rows[:, :1]))
    if len(rows) == 1:
        return input_rows
    return tf.concat(rows, axis=1)


def _split_weight_rows(products, features, units, has_bias):
    """`(dV, dR, db)` from `[A | H | 1]^T dZ` (db None without a bias)."""
    d_bias = products[features + units] if has_bias else None
    return products[:features], products[features : features + units], d_bias


def _time_major(inputs, mask, go_backwards):
    """The inputs as (T, B, D) and the mask as (T, B, 1), in the order the loop runs.

    Transposed before the projection, where they are D wide rather than kH:
    the projection then comes out time-major, as the loop reads it.
    """
    step_mask = None
    if mask is not None:
        mask = tf.convert_to_tensor(mask)
        if len(mask.shape) == 3:
            mask = mask[..., 0]
        step_mask = tf.transpose(tf.cast(mask, tf.bool))[..., None]
    time_major_inputs = tf.transpose(inputs, [1, 0, 2])
    if go_backwards:
        time_major_inputs = tf.reverse(time_major_inputs, [0])
        if step_mask is not None:
            step_mask = tf.reverse(step_mask, [0])
    return time_major_inputs, step_mask


def _loop_inputs(cell, projection, time_major_inputs, inputs, go_backwards, training):
    """What the loop takes in for the inputs, and whether their gradient is needed.

    With `projection = (kernel, bias)` the loop projects each chunk itself
    and returns the gradients of x, kernel and bias. Without, TensorFlow
    differentiates `cell.project_sequence`, made whole here from the
    batch-major `inputs` (so that any per-step columns it draws, zoneout's
    masks, are those of the generic loop) and put in the loop's order, and
    the loop returns the gradient of its result.
    """
    if projection is None:
        projected = tf.convert_to_tensor(cell.project_sequence(inputs, training))
        return [_time_major(projected, None, go_backwards)[0]], True
    kernel, bias = (None if w is None else tf.convert_to_tensor(w) for w in projection)
    loop_inputs = [time_major_inputs, kernel] + ([bias] if bias is not None else [])
    return loop_inputs, _input_gradient_needed(time_major_inputs)


def _chunking(time_major_inputs, batch, unroll):
    """`(length, steps per chunk, number of chunks)`, static where the shapes are."""
    length = time_major_inputs.shape[0]
    if length is None:
        if unroll:
            raise ValueError("unroll=True needs a known number of time steps.")
        length = tf.shape(time_major_inputs)[0]
    if batch is not None:
        chunk = max(1, CHUNK_ROWS // batch)
    elif unroll:
        chunk = length
    else:
        chunk = DYNAMIC_BATCH_CHUNK_STEPS
    if isinstance(length, int):
        chunk = min(chunk, length)
    return length, chunk, (length + chunk - 1) // chunk


def _chunk_bounds(c, chunk, length):
    """First and past-the-last step of chunk c."""
    start = c * chunk
    end = start + chunk
    if isinstance(end, int) and isinstance(length, int):
        return start, min(end, length)
    return start, tf.minimum(end, length)


def _finish(results, return_all_outputs):
    """`(last_output, outputs, new_states)` from the loop's time-major results."""
    outputs, new_states = results[0], list(results[1:])
    last_output = outputs[-1]
    if return_all_outputs:
        outputs = tf.transpose(outputs, [1, 0, 2])
    else:
        outputs = last_output[:, None, :]
    return last_output, outputs, new_states


def _flat(tensor):
    """(steps, batch, width) -> (steps * batch, width)."""
    return tf.reshape(tensor, [-1, tensor.shape[-1]])


def _unflatten(rows, like):
    """(steps * batch, width) -> (steps, batch, width), steps and batch as in `like`."""
    shape = tf.shape(like)
    return tf.reshape(rows, [shape[0], shape[1], rows.shape[-1]])


def _match_variables(variables, gradients):
    """Orders the cell's `(variable, gradient)` pairs as `tf.custom_gradient`'s `variables`."""
    by_variable = {}
    for variable, gradient in gradients:
        native = getattr(variable, "value", variable)
        by_variable[native.ref()] = gradient
    ordered = []
    for variable in variables:
        if variable.ref() not in by_variable:
            raise RuntimeError(
                f"The fast path's written backward step has no gradient for "
                f"the weight {variable.name!r} that the step reads. The cell's "
                "`summed_weights` or `product_weights` must list every weight "
                "the step uses besides `recurrent_kernel`."
            )
        # Under a mixed-precision policy the steps' gradients come in the
        # compute dtype; the variable takes its own.
        ordered.append(tf.cast(by_variable[variable.ref()], variable.dtype))
    return ordered


def _accumulation_dtype(dtype):
    """The dtype the backward loop sums the steps' weight gradients in: float32 for a half type."""
    return tf.float32 if dtype.size < 4 else dtype


def _zeros_if_none(gradient, like):
    return tf.zeros_like(like) if gradient is None else gradient
