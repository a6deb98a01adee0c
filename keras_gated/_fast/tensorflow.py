"""TensorFlow fast path: a time loop with a hand-written backward pass.

Why: TensorFlow differentiates a `tf.while_loop` step by step. Each backward
step then computes its own share of the recurrent weight gradient,
`h_{t-1}^T dz_t`, a product whose inner dimension is only the batch size,
and the loop pushes and pops every intermediate of the step on stacks.

What this module does instead, for a cell whose step reaches
`recurrent_kernel` only through `GatedCell.recurrent_product`
(`deferred_recurrent_product = True`):

* the inputs are projected time-major, `P = X W + b`, after transposing
  X (D wide) rather than P (kH wide);
* forward loop: `r_t = (h_{t-1} ⊙ mask_rd) U` (one fused product for all
  gate blocks), `z_t = p_t + r_t` (`cell.full_preactivations`), then the
  rest of the step (`cell.recurrent_step` with `z_t` handed in as its
  full pre-activations); the loop keeps `z_t` and the states it starts from;
* backward loop: for each step, the cell's hand-written
  `step_backward` gives `dz_t` and the state gradients, or, for cells or
  activations without one, the vector-Jacobian product of the element-wise
  step recomputed under a `tf.GradientTape`; `dh_{t-1}` gets `dz_t U^T`.
  The loop pops each `z_t` off its list, freeing it once used;
* after the loop: `dU = H^T dZ` with `H` and `dZ` the stacked `h_{t-1}` and
  `dz_t` of all steps: one large product instead of T thin ones, and the
  cell's small weights get theirs from one reduction over all steps
  (`cell.backward_weight_gradients`). `dZ` leaves the loop as one tensor, so
  `dW = X^T dZ` is one large product too (TensorFlow's own gradient of
  `cell.project_inputs`).

Masking, `go_backwards`, recurrent dropout (masks drawn by the layer before
the loop, as `keras.layers.RNN` does), `zero_output_for_mask`, initial and
stateful states and `unroll` follow `keras.src.backend.tensorflow.rnn`
exactly, so this path gives the numbers of the cell path.
"""

import tensorflow as tf

from keras_gated.layers.base import add_gradients


def _scan(
    step, sequences, carry, length, num_outputs, reverse=False, unroll=False,
    unstacked=(),
):
    """Loops `step` over the leading axis of `sequences`.

    `step(t, items, carry) -> (outputs, carry)`, with `items` the slices of
    `sequences` at step t. Returns the per-step outputs stacked along a new
    leading axis (index t holds step t, whatever the order of the loop) and
    the final carry. Outputs whose index is in `unstacked` come back as the
    loop's per-step store instead (a `tf.TensorArray`, or a list when
    unrolled), which another `_scan` takes as a sequence without the copies
    of stacking and unstacking.
    `unroll=True` writes the loop out in Python (needs a static length);
    otherwise it is one `tf.while_loop`.
    """
    if unroll:
        collected = [[None] * length for _ in range(num_outputs)]
        order = range(length - 1, -1, -1) if reverse else range(length)
        for t in order:
            outputs, carry = step(t, [s[t] for s in sequences], carry)
            for slot, value in zip(collected, outputs):
                slot[t] = value
        return [
            slot if i in unstacked else tf.stack(slot)
            for i, slot in enumerate(collected)
        ], carry

    dtype = carry[0].dtype
    outputs_ta = [tf.TensorArray(dtype, size=length) for _ in range(num_outputs)]
    # A loop that runs backwards over a TensorArray that an earlier loop
    # filled pops its steps off the end instead of reading them, so that each
    # step's buffer is freed once used rather than when the loop ends.
    popped = [
        position for position, sequence in enumerate(sequences)
        if reverse and isinstance(sequence, tf.TensorArray)
        and not tf.executing_eagerly()
    ]
    lists = [sequences[position].flow for position in popped]

    def read(sequence, t):
        # A tensor is sliced in place rather than unstacked into a
        # TensorArray first, which would copy it whole.
        if isinstance(sequence, tf.TensorArray):
            return sequence.read(t)
        return sequence[t]

    def body(i, carry, outputs_ta, lists):
        t = length - 1 - i if reverse else i
        items = [read(s, t) if k not in popped else None for k, s in enumerate(sequences)]
        remaining = []
        for position, handle in zip(popped, lists):
            handle, items[position] = tf.raw_ops.TensorListPopBack(
                input_handle=handle,
                element_shape=tf.constant(-1, tf.int32),
                element_dtype=sequences[position].dtype,
            )
            items[position].set_shape(sequences[position].element_shape)
            remaining.append(handle)
        outputs, carry = step(t, items, carry)
        outputs_ta = [ta.write(t, v) for ta, v in zip(outputs_ta, outputs)]
        return i + 1, carry, outputs_ta, remaining

    _, carry, outputs_ta, _ = tf.while_loop(
        lambda i, *_: i < length,
        body,
        (tf.constant(0), carry, outputs_ta, lists),
        maximum_iterations=length,
        swap_memory=True,
    )
    return [
        ta if i in unstacked else ta.stack() for i, ta in enumerate(outputs_ta)
    ], carry


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
        # TensorFlow differentiates this projection itself.
        loop_inputs = [tf.convert_to_tensor(cell.project_inputs(time_major_inputs))]
    else:
        # Projected inside the custom gradient, which then takes the
        # gradients of kernel, recurrent kernel and bias with one product.
        kernel, bias = (None if w is None else tf.convert_to_tensor(w) for w in projection)
        loop_inputs = [time_major_inputs, kernel] + ([bias] if bias is not None else [])
    length = time_major_inputs.shape[0]
    if length is None:
        if unroll:
            raise ValueError("unroll=True needs a known number of time steps.")
        length = tf.shape(time_major_inputs)[0]
    num_inputs = len(loop_inputs)
    num_states = len(initial_state)
    units = recurrent_kernel.shape[0]
    width = recurrent_kernel.shape[1]
    # prev_output is only part of the step when masked steps repeat it.
    carries_output = step_mask is not None and not zero_output_for_mask
    written = cell.has_step_backward

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

    def project(inputs, kernel, bias=None):
        """`x kernel + bias` of all steps as one 2-D product, time-major."""
        flat = tf.matmul(tf.reshape(inputs, [-1, inputs.shape[-1]]), kernel)
        if bias is not None:
            flat = flat + bias
        return tf.reshape(flat, tf.concat([tf.shape(inputs)[:-1], [-1]], 0))

    @tf.custom_gradient
    def loop(*tensors):
        inputs = list(tensors[:num_inputs])
        recurrent_kernel = tensors[num_inputs]
        states = list(tensors[num_inputs + 1 :])
        projected = inputs[0] if projection is None else project(*inputs)
        zero_output = tf.zeros_like(states[0])
        sequences = [projected] + ([step_mask] if step_mask is not None else [])

        def forward_step(t, items, carry):
            p_t = items[0]
            mask_t = items[1] if step_mask is not None else None
            states, prev_output = carry[:num_states], carry[num_states]
            r_t = tf.matmul(recurrent_input(states[0]), recurrent_kernel)
            z_t = cell.full_preactivations(p_t, r_t)
            output, new_states = masked_step(z_t, mask_t, states, prev_output)
            return [output, z_t] + list(states), list(new_states) + [output]

        # Kept for the backward loop: the full pre-activations z_t (as the
        # loop's own per-step store, freed step by step as the backward loop
        # reads it), the states each step starts from and the outputs. The
        # projected inputs are not needed again, so they are freed.
        stacked, carry = _scan(
            forward_step,
            sequences,
            list(states) + [zero_output],
            length,
            num_outputs=2 + num_states,
            unroll=unroll,
            unstacked=(1,),
        )
        outputs, preactivations = stacked[0], stacked[1]
        states_in = stacked[2:]
        final_states = carry[:num_states]

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

            def read_items(items):
                z_t, d_out_t = items[0], items[1]
                states_t = items[2 : 2 + num_states]
                rest = items[2 + num_states :]
                mask_t = rest.pop(0) if step_mask is not None else None
                prev_output = rest.pop(0) if carries_output else zero_output
                return z_t, d_out_t, states_t, mask_t, prev_output

            def through_recurrent_product(d_r, d_states_prev):
                d_h = tf.matmul(d_r, recurrent_kernel_t)
                if recurrent_mask is not None:
                    d_h = d_h * recurrent_mask
                d_states_prev[0] = d_states_prev[0] + d_h
                return d_states_prev

            def written_backward_step(t, items, carry):
                """The cell's own `step_backward`, with Keras's masking rules."""
                z_t, d_out_t, states_t, mask_t, _ = read_items(items)
                d_states_t = carry[:num_states]
                d_output = d_out_t + carry[num_states] if carries_output else d_out_t
                d_new = [d_states_t[0] + d_output] + list(d_states_t[1:])
                d_prev = carry[num_states]
                passed = [None] * num_states
                if mask_t is not None:
                    # A masked step hands its incoming states (and output)
                    # through unchanged, so their gradients pass it by.
                    d_new = [tf.where(mask_t, d, 0.0) for d in d_new]
                    passed = [tf.where(mask_t, 0.0, d) for d in d_states_t]
                    if carries_output:
                        d_prev = tf.where(mask_t, 0.0, d_output)
                d_z, d_r, d_cell_states, saved = cell.step_backward(
                    z_t, list(states_t), d_new
                )
                d_states_prev = [
                    _zeros_if_none(add_gradients(a, b), like)
                    for a, b, like in zip(d_cell_states, passed, states_t)
                ]
                d_states_prev = through_recurrent_product(d_r, d_states_prev)
                return [d_z] + list(saved), d_states_prev + [d_prev]

            def taped_backward_step(t, items, carry):
                """Automatic derivative of the step, for cells without one written."""
                z_t, d_out_t, states_t, mask_t, prev_output = read_items(items)
                d_states_t = carry[:num_states]
                d_prev = carry[num_states]
                d_vars = carry[num_states + 1 :]
                watched = [z_t] + list(states_t) + (
                    [prev_output] if carries_output else []
                )
                with tf.GradientTape() as tape:
                    tape.watch(watched)
                    output, new_states = masked_step(z_t, mask_t, states_t, prev_output)
                grads = tape.gradient(
                    [output] + list(new_states),
                    watched + variables,
                    output_gradients=[d_out_t + d_prev] + list(d_states_t),
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
                d_vars = [a + g for a, g in zip(d_vars, grads[position:])]
                d_states_prev = through_recurrent_product(
                    cell.recurrent_columns(d_z), d_states_prev
                )
                return [d_z], d_states_prev + [d_prev] + d_vars

            items = [preactivations, d_outputs] + list(states_in)
            if step_mask is not None:
                items.append(step_mask)
            if carries_output:
                items.append(prev_outputs)
            initial_carry = d_states + [tf.zeros_like(zero_output)]
            if written:
                with cell.backward_loop_weights():
                    stacked, carry = _scan(
                        written_backward_step,
                        items,
                        initial_carry,
                        length,
                        num_outputs=1 + cell.step_backward_saves,
                        reverse=True,
                        unroll=unroll,
                    )
                d_variables = _match_variables(
                    variables,
                    cell.backward_weight_gradients(
                        stacked[0],
                        states_in,
                        # The state a step returns is the one the next
                        # starts from (graph pruning drops unused ones).
                        [
                            tf.concat([s[1:], f[None]], axis=0)
                            for s, f in zip(states_in, final_states)
                        ],
                        stacked[1:],
                    ),
                )
            else:
                stacked, carry = _scan(
                    taped_backward_step,
                    items,
                    initial_carry + [tf.zeros_like(v) for v in variables],
                    length,
                    num_outputs=1,
                    reverse=True,
                    unroll=unroll,
                )
                d_variables = carry[num_states + 1 :]
            d_projected = stacked[0]
            d_initial_states = carry[:num_states]
            h_in = tf.reshape(recurrent_input(states_in[0]), [-1, units])
            if projection is None:
                d_recurrent_kernel = tf.matmul(
                    h_in,
                    tf.reshape(cell.recurrent_columns(d_projected), [-1, width]),
                    transpose_a=True,
                )
                d_inputs = [d_projected]
            else:
                d_inputs, d_recurrent_kernel = _projection_gradients(
                    cell, inputs, h_in, d_projected
                )
            return d_inputs + [d_recurrent_kernel] + list(d_initial_states), d_variables

        return [outputs] + list(final_states), grad

    results = loop(*loop_inputs, recurrent_kernel, *initial_state)
    outputs, new_states = results[0], list(results[1:])
    last_output = outputs[-1]
    if return_all_outputs:
        outputs = tf.transpose(outputs, [1, 0, 2])
    else:
        outputs = last_output[:, None, :]
    return last_output, outputs, new_states


def _projection_gradients(cell, inputs, h_in, d_projected):
    """Gradients of the inputs, kernel, bias and recurrent kernel.

    `[dW ; dU ; db] = [X | H | 1]^T dZ`: one product over all steps gives
    the kernel, recurrent-kernel and bias gradients (the row of ones sums
    dZ over steps and batch). Measured at (batch, steps, inputs, units) =
    (128, 50, 256, 512): 93 ms against 110 ms for the two products and the
    reduction apart. Where the recurrent blocks are not all the projected
    columns (untied, depth-gated), the product also computes `H^T dZ` for
    the other columns, which costs less than gathering the recurrent
    columns of dZ into a copy.
    """
    x, kernel = inputs[0], inputs[1]
    has_bias = len(inputs) > 2
    features = kernel.shape[0]
    units = h_in.shape[-1]
    d_flat = tf.reshape(d_projected, [-1, kernel.shape[1]])
    x_flat = tf.reshape(x, [-1, features])
    columns = [x_flat, h_in]
    if has_bias:
        columns.append(tf.ones_like(x_flat[:, :1]))
    products = tf.matmul(tf.concat(columns, axis=1), d_flat, transpose_a=True)
    d_kernel = products[:features]
    d_recurrent_kernel = cell.recurrent_columns(products[features : features + units])
    d_x = tf.reshape(tf.matmul(d_flat, kernel, transpose_b=True), tf.shape(x))
    d_inputs = [d_x, d_kernel]
    if has_bias:
        d_inputs.append(products[features + units])
    return d_inputs, d_recurrent_kernel


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
                "`backward_weight_gradients` must return every weight the step "
                "uses besides `recurrent_kernel`."
            )
        ordered.append(tf.convert_to_tensor(by_variable[variable.ref()]))
    return ordered


def _zeros_if_none(gradient, like):
    return tf.zeros_like(like) if gradient is None else gradient
