"""TensorFlow fast path: a chunked time loop with a hand-written backward pass.

Why: TensorFlow differentiates a `tf.while_loop` step by step. Each backward
step then computes its own share of the recurrent weight gradient,
`h_{t-1}^T dz_t`, a product whose inner dimension is only the batch size,
and the loop pushes and pops every intermediate of the step on stacks.

What this module does instead, for a cell whose step reaches
`recurrent_kernel` only through `GatedCell.recurrent_product`
(`deferred_recurrent_product = True`):

* time is cut into chunks of about `CHUNK_ROWS` rows (steps x batch); the
  inputs of a chunk are projected with one product, `P = X W + b`, just
  before its steps run, so the projection of the whole sequence never
  exists at once;
* forward steps: `r_t = (h_{t-1} ⊙ mask_rd) U` (one fused product for all
  gate blocks), `z_t = p_t + r_t` in the recurrent blocks
  (`cell.full_preactivations`), then the rest of the step
  (`cell.recurrent_step` with `z_t` handed in as its full pre-activations);
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

Masking, `go_backwards`, recurrent dropout (masks drawn by the layer before
the loop, as `keras.layers.RNN` does), `zero_output_for_mask`, initial and
stateful states and `unroll` follow `keras.src.backend.tensorflow.rnn`
exactly, so this path gives the numbers of the cell path.
"""

import tensorflow as tf
from tensorflow.python.eager import record

from keras_gated.layers.base import add_gradients

# Rows (steps x batch) per chunk. Products over 2048 rows ran within 6% of
# one product over all 6400 rows at (batch, steps, inputs, units) =
# (128, 50, 256, 512); much smaller chunks make thin products.
CHUNK_ROWS = 1024
# Steps per chunk when the batch size is not known while tracing.
DYNAMIC_BATCH_CHUNK_STEPS = 16


def _for(count, body, carry, reverse=False, unroll=False):
    """`carry = body(i, carry)` for i in 0..count-1 (count-1..0 if `reverse`).

    `unroll=True` writes the loop out in Python (needs a static `count`);
    otherwise it is one `tf.while_loop`. `carry` is any nest of tensors and
    `tf.TensorArray`s.
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
    )
    return carry


def _input_gradient_needed(tensor):
    """False only when some gradient tape is recording and none watches `tensor`.

    A layer fed straight from the data needs no input gradient, and its
    product `dZ W^T` is then skipped. With no tape at all (`tf.gradients`),
    the gradient is computed, as it may be asked for.
    """
    try:
        if not record.could_possibly_record():
            return True
        return bool(record.should_record_backprop([tensor]))
    except Exception:  # A private API: if it moves, stay exact.
        return True


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
    """Runs `cell` over `inputs`; same contract as `keras.src.backend.rnn`.

    Args:
        cell: A built `GatedCell` with `deferred_recurrent_product = True`.
        inputs: The layer's inputs after input dropout, (batch, time, D).
        initial_state: List of state tensors, `h` first.
        mask: Optional boolean (batch, time) mask.

    Returns:
        `(last_output, outputs, new_states)`, where `outputs` is
        (batch, time, H) if `return_all_outputs`, else (batch, 1, H).
    """
    inputs = tf.convert_to_tensor(inputs)
    recurrent_kernel = tf.convert_to_tensor(cell.recurrent_kernel)
    recurrent_mask = None
    if training and cell.recurrent_dropout > 0:
        recurrent_mask = cell.get_recurrent_dropout_mask(initial_state[0])
    step_mask = None
    if mask is not None:
        mask = tf.convert_to_tensor(mask)
        if len(mask.shape) == 3:
            mask = mask[..., 0]
        step_mask = tf.transpose(tf.cast(mask, tf.bool))[..., None]  # (T, B, 1)
    # Transposed before the projection, where it is D wide rather than kH:
    # the projection then comes out time-major, as the loop reads it.
    time_major_inputs = tf.transpose(inputs, [1, 0, 2])
    if go_backwards:
        time_major_inputs = tf.reverse(time_major_inputs, [0])
        if step_mask is not None:
            step_mask = tf.reverse(step_mask, [0])
    projection = cell.projection_weights()
    if projection is None:
        # TensorFlow differentiates this projection itself, so it is made
        # whole, and the loop returns its whole gradient.
        loop_inputs = [tf.convert_to_tensor(cell.project_inputs(time_major_inputs))]
        input_gradient = True
    else:
        kernel, bias = (None if w is None else tf.convert_to_tensor(w) for w in projection)
        loop_inputs = [time_major_inputs, kernel] + ([bias] if bias is not None else [])
        input_gradient = _input_gradient_needed(time_major_inputs)
    length = time_major_inputs.shape[0]
    if length is None:
        if unroll:
            raise ValueError("unroll=True needs a known number of time steps.")
        length = tf.shape(time_major_inputs)[0]
    batch = inputs.shape[0]
    if batch is not None:
        chunk = max(1, CHUNK_ROWS // batch)
    elif unroll:
        chunk = length
    else:
        chunk = DYNAMIC_BATCH_CHUNK_STEPS
    if isinstance(length, int):
        chunk = min(chunk, length)
    num_chunks = (length + chunk - 1) // chunk
    num_inputs = len(loop_inputs)
    num_states = len(initial_state)
    units = recurrent_kernel.shape[0]
    # prev_output is only part of the step when masked steps repeat it.
    carries_output = step_mask is not None and not zero_output_for_mask
    written = cell.has_step_backward

    def chunk_bounds(c):
        start = c * chunk
        end = start + chunk
        end = min(end, length) if isinstance(end, int) and isinstance(length, int) else tf.minimum(end, length)
        return start, end

    def masked_step(z_t, mask_t, states, prev_output):
        """The step from its full pre-activations, with Keras's masking rules."""
        # training=False: the loop applies the recurrent dropout mask itself
        # (recurrent_input) and hands the cell its pre-activations. Asking
        # the cell for its mask here would draw a fresh one in the backward
        # loop, which runs after keras.layers.RNN has reset the cached masks.
        with cell.preactivations_given():
            output, new_states = cell.recurrent_step(z_t, list(states), False)
        new_states = list(new_states)
        if mask_t is not None:
            fallback = prev_output if carries_output else tf.zeros_like(output)
            output = tf.where(mask_t, output, fallback)
            new_states = [tf.where(mask_t, n, s) for n, s in zip(new_states, states)]
        return output, new_states

    def recurrent_input(h_tm1):
        return h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask

    def flat(tensor):
        """(steps, batch, width) -> (steps * batch, width)."""
        return tf.reshape(tensor, [-1, tensor.shape[-1]])

    @tf.custom_gradient
    def loop(*tensors):
        loop_in = list(tensors[:num_inputs])
        recurrent_kernel = tensors[num_inputs]
        states = list(tensors[num_inputs + 1 :])
        dtype = states[0].dtype
        zero_output = tf.zeros_like(states[0])

        def chunk_projection(start, end):
            if projection is None:
                return loop_in[0][start:end]
            x_chunk = loop_in[0][start:end]
            p = tf.matmul(flat(x_chunk), loop_in[1])
            if len(loop_in) > 2:
                p = p + loop_in[2]
            return _unflatten(p, x_chunk)

        def forward_chunk(c, carry):
            start, end = chunk_bounds(c)
            projected = chunk_projection(start, end)

            def forward_step(s, carry):
                states, prev_output, outputs_ta, z_ta, states_ta = carry
                t = start + s
                mask_t = step_mask[t] if step_mask is not None else None
                r_t = tf.matmul(recurrent_input(states[0]), recurrent_kernel)
                z_t = cell.full_preactivations(projected[s], r_t)
                output, new_states = masked_step(z_t, mask_t, states, prev_output)
                return (
                    list(new_states),
                    output,
                    outputs_ta.write(t, output),
                    z_ta.write(t, z_t),
                    [ta.write(t, v) for ta, v in zip(states_ta, states)],
                )

            return _for(end - start, forward_step, carry, unroll=unroll)

        new_array = lambda: tf.TensorArray(dtype, size=length)  # noqa: E731
        states, _, outputs_ta, z_ta, states_ta = _for(
            num_chunks,
            forward_chunk,
            (states, zero_output, new_array(), new_array(), [new_array() for _ in states]),
            unroll=unroll,
        )
        outputs = outputs_ta.stack()
        # Kept for the backward loop: the full pre-activations z_t (as the
        # loop's own per-step list, popped step by step by the backward
        # loop) and the states each step starts from.
        states_in = [ta.stack() for ta in states_ta]
        final_states = states

        def grad(d_outputs, *d_final_states, variables=None):
            variables = list(variables or [])
            d_outputs = _zeros_if_none(d_outputs, outputs)
            d_states = [
                _zeros_if_none(d, s) for d, s in zip(d_final_states, final_states)
            ]
            prev_outputs = None
            if carries_output:
                prev_outputs = tf.concat([zero_output[None], outputs[:-1]], 0)
            # Transposed once, outside the loop: oneDNN runs the thin product
            # d_r U^T about 3x slower with `transpose_b=True` than on a
            # transposed copy (measured at 4H = 1024 columns).
            recurrent_kernel_t = tf.transpose(recurrent_kernel)
            kernel_t = tf.transpose(loop_in[1]) if projection is not None else None
            summed_weights = cell.summed_weights() if written else []
            product_weights = cell.product_weights() if written else []
            # Eagerly a TensorArray is a Python list; in a graph its list is
            # popped from the end, so each step's z_t is freed once used.
            pop = not tf.executing_eagerly()
            z_element_shape = z_ta.element_shape

            def step_items(t, z_handle):
                if pop:
                    z_handle, z_t = tf.raw_ops.TensorListPopBack(
                        input_handle=z_handle,
                        element_shape=tf.constant(-1, tf.int32),
                        element_dtype=dtype,
                    )
                    z_t.set_shape(z_element_shape)
                else:
                    z_t = z_ta.read(t)
                return z_handle, z_t, [s[t] for s in states_in]

            def through_recurrent_product(d_r, d_states_prev):
                d_h = tf.matmul(d_r, recurrent_kernel_t)
                if recurrent_mask is not None:
                    d_h = d_h * recurrent_mask
                d_states_prev[0] = d_states_prev[0] + d_h
                return d_states_prev

            def written_backward_step(t, z_t, states_t, mask_t, d_carry, d_prev, totals):
                """The cell's own `step_backward`, with Keras's masking rules."""
                d_output = d_outputs[t] + d_prev if carries_output else d_outputs[t]
                d_new = [d_carry[0] + d_output] + list(d_carry[1:])
                passed = [None] * num_states
                if mask_t is not None:
                    # A masked step hands its incoming states (and output)
                    # through unchanged, so their gradients pass it by.
                    d_new = [tf.where(mask_t, d, 0.0) for d in d_new]
                    passed = [tf.where(mask_t, 0.0, d) for d in d_carry]
                    if carries_output:
                        d_prev = tf.where(mask_t, 0.0, d_output)
                d_z, d_r, d_cell_states, saved, sums = cell.step_backward(
                    z_t, list(states_t), d_new
                )
                d_states_prev = [
                    _zeros_if_none(add_gradients(a, b), like)
                    for a, b, like in zip(d_cell_states, passed, states_t)
                ]
                totals = [a + b for a, b in zip(totals, sums)]
                return d_z, list(saved), d_r, d_states_prev, d_prev, totals

            def taped_backward_step(t, z_t, states_t, mask_t, d_carry, d_prev, totals):
                """Automatic derivative of the step, for cells without one written."""
                prev_output = prev_outputs[t] if carries_output else zero_output
                watched = [z_t] + list(states_t) + ([prev_output] if carries_output else [])
                with tf.GradientTape() as tape:
                    tape.watch(watched)
                    output, new_states = masked_step(z_t, mask_t, states_t, prev_output)
                grads = tape.gradient(
                    [output] + list(new_states),
                    watched + variables,
                    output_gradients=[d_outputs[t] + d_prev] + list(d_carry),
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                d_z = grads[0]
                d_states_prev = list(grads[1 : 1 + num_states])
                position = 1 + num_states
                if carries_output:
                    d_prev = grads[position]
                    position += 1
                else:
                    d_prev = tf.zeros_like(d_prev)
                totals = [a + g for a, g in zip(totals, grads[position:])]
                return d_z, [], cell.recurrent_columns(d_z), d_states_prev, d_prev, totals

            backward_step = written_backward_step if written else taped_backward_step
            num_saves = cell.step_backward_saves if written else 0
            totals_like = summed_weights if written else variables
            if projection is None:
                weight_rows = units
                products_width = recurrent_kernel.shape[1]
            else:
                weight_rows = loop_in[1].shape[0] + units + (1 if len(loop_in) > 2 else 0)
                products_width = loop_in[1].shape[1]

            def backward_chunk(c, carry):
                start, end = chunk_bounds(c)
                (z_handle, d_carry, d_prev, totals, products, product_grads,
                 d_inputs_ta) = carry
                chunk_arrays = [
                    tf.TensorArray(dtype, size=end - start) for _ in range(1 + num_saves)
                ]

                def backward_step_in_chunk(s, inner):
                    z_handle, d_carry, d_prev, totals, arrays = inner
                    t = start + s
                    z_handle, z_t, states_t = step_items(t, z_handle)
                    mask_t = step_mask[t] if step_mask is not None else None
                    d_z, saved, d_r, d_states_prev, d_prev, totals = backward_step(
                        t, z_t, states_t, mask_t, d_carry, d_prev, totals
                    )
                    d_states_prev = through_recurrent_product(d_r, d_states_prev)
                    arrays = [a.write(s, v) for a, v in zip(arrays, [d_z] + saved)]
                    return z_handle, d_states_prev, d_prev, totals, arrays

                z_handle, d_carry, d_prev, totals, chunk_arrays = _for(
                    end - start,
                    backward_step_in_chunk,
                    (z_handle, d_carry, d_prev, totals, chunk_arrays),
                    reverse=True,
                    unroll=unroll,
                )
                d_z_chunk = chunk_arrays[0].stack()
                d_z_flat = flat(d_z_chunk)
                h_rows = flat(recurrent_input(states_in[0][start:end]))
                if projection is None:
                    products = products + tf.matmul(
                        h_rows, cell.recurrent_columns(d_z_flat), transpose_a=True
                    )
                    d_inputs_ta = d_inputs_ta.write(c, d_z_chunk)
                else:
                    # [dW ; dU ; db] = [X | H | 1]^T dZ: the row of ones sums
                    # dZ over the rows, so the bias needs no reduction of its
                    # own. Where the recurrent blocks are not all the
                    # projected columns (untied, depth-gated) this also
                    # computes H^T dZ of the others, which costs less than
                    # gathering the recurrent columns of dZ into a copy.
                    x_rows = flat(loop_in[0][start:end])
                    rows = [x_rows, h_rows]
                    if len(loop_in) > 2:
                        rows.append(tf.ones_like(x_rows[:, :1]))
                    products = products + tf.matmul(
                        tf.concat(rows, axis=1), d_z_flat, transpose_a=True
                    )
                    if input_gradient:
                        d_inputs_ta = d_inputs_ta.write(
                            c,
                            _unflatten(tf.matmul(d_z_flat, kernel_t), d_z_chunk),
                        )
                if product_weights:
                    chunk_states = [s[start:end] for s in states_in]
                    gradients = cell.backward_weight_gradients(
                        d_z_chunk, chunk_states, [a.stack() for a in chunk_arrays[1:]]
                    )
                    product_grads = [a + g for a, g in zip(product_grads, gradients)]
                return (z_handle, d_carry, d_prev, totals, products, product_grads,
                        d_inputs_ta)

            initial_carry = (
                z_ta.flow if pop else tf.constant(0.0),
                d_states,
                tf.zeros_like(zero_output),
                [tf.zeros_like(w) for w in totals_like],
                tf.zeros((weight_rows, products_width), dtype),
                [tf.zeros_like(w) for w in product_weights],
                tf.TensorArray(dtype, size=num_chunks, infer_shape=False),
            )
            with cell.backward_loop_weights():
                carry = _for(
                    num_chunks, backward_chunk, initial_carry, reverse=True, unroll=unroll
                )
            _, d_initial_states, _, totals, products, product_grads, d_inputs_ta = carry
            if written:
                d_variables = _match_variables(
                    variables,
                    list(zip(summed_weights, totals))
                    + list(zip(product_weights, product_grads)),
                )
            else:
                d_variables = totals
            if projection is None:
                d_loop_inputs = [d_inputs_ta.concat()]
                d_recurrent_kernel = products
            else:
                features = loop_in[1].shape[0]
                d_x = d_inputs_ta.concat() if input_gradient else None
                d_loop_inputs = [d_x, products[:features]]
                if len(loop_in) > 2:
                    d_loop_inputs.append(products[features + units])
                d_recurrent_kernel = cell.recurrent_columns(
                    products[features : features + units]
                )
            return (
                d_loop_inputs + [d_recurrent_kernel] + list(d_initial_states),
                d_variables,
            )

        return [outputs] + list(final_states), grad

    results = loop(*loop_inputs, recurrent_kernel, *initial_state)
    outputs, new_states = results[0], list(results[1:])
    last_output = outputs[-1]
    if return_all_outputs:
        outputs = tf.transpose(outputs, [1, 0, 2])
    else:
        outputs = last_output[:, None, :]
    return last_output, outputs, new_states


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
        ordered.append(tf.convert_to_tensor(by_variable[variable.ref()]))
    return ordered


def _zeros_if_none(gradient, like):
    return tf.zeros_like(like) if gradient is None else gradient
