"""PyTorch fast path: one time loop under `torch.autograd.Function` with the cell's written backward step.

Why: PyTorch's autograd records every operation of every step of the
generic loop (each slice, broadcast, activation and `torch.where` of the
mask) and replays their gradients one by one, and each backward step
computes its own share of the recurrent weight gradient, `h_{t-1}^T dz_t`,
a product whose inner dimension is only the batch size.

What this module does instead, for every fast layer as a stack of levels
(`keras_gated._fast.contract.FusedLevel`; a one-layer cell whose step
reaches `recurrent_kernel` only through `GatedCell.recurrent_product` is
the one-level stack `CellLevel(cell)`, a stack gives its `fast_levels()`),
one loop for both:

* the bottom level's input projection `P = X W + b` of all steps is one
  product before the loop (the bottom level's `projection`, or
  `cell.project_sequence` where that is None), which autograd
  differentiates itself;
* forward steps, recording nothing: level k computes
  `z_k = a_k V_k + b_k + h_k R_k` from what the level below passed up (for
  a one-layer cell `z_t = p_t + (h_{t-1} ⊙ mask_rd) U` in the recurrent
  blocks, `cell.full_preactivations`), then the rest of its step; the loop
  keeps the `z_k`, what each level read and the states each step starts
  from (references, not copies), nothing else;
* backward steps, in reverse, levels top-down: the level's hand-written
  backward step gives `dz_k`, the state gradients and the step's share of
  the gradients of its weight vectors (peepholes, norms); `dh_k` gets
  `dz_k R_k^T` and the level below `dz_k V_k^T` (on transposed copies).
  For a one-layer cell or activation without a written step, the
  vector-Jacobian product of the element-wise step (`torch.autograd.grad`
  of `preactivation_step`) takes its place;
* after the backward loop: `dR_k = H_k^T dZ_k` (and `dV_k`, `db_k`) over
  all steps and rows, one product each, and the levels'
  `backward_weight_gradients` for weight matrices inside the step (the
  untied kernel M, the projection P).

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

Each step of both loops (every level's products and element-wise step,
the masking) is a function of tensors only, which `_CompiledSteps` traces
into a TorchScript graph once per cell and signature: the same ATen
operations, without the Python of `keras.ops` between them, which at the
batch sizes of a recurrent layer costs more than the arithmetic.

A call that no gradient can reach (under `torch.no_grad()`, as `predict`
runs, or with no input and no weight requiring a gradient) runs the forward
loop alone and keeps nothing; any other call, `training=False` included,
runs the Function, so an inference call under autograd stays differentiable.
"""

import warnings
import weakref

import keras
import torch
from keras.ops import convert_to_tensor

from keras_gated._fast.contract import AutomaticCellLevel
from keras_gated._fast.contract import levels_of
from keras_gated._fast.contract import LevelStepGradients
from keras_gated._fast.contract import weights_as_in_call


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
    """Runs `cell` over `inputs` as a stack of levels; same contract as `keras.src.backend.torch.rnn`.

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
    """`AutomaticCellLevel` on PyTorch: the step's VJP by `torch.autograd.grad`."""

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        d_new = list(d_new_states)
        d_new[0] = d_new[0] + d_up_hidden
        weights = self.summed_weights()
        with torch.enable_grad():
            # Inside the loop's scope the weights' values are the loop's arguments.
            leaves = [
                t.detach().requires_grad_()
                for t in (z, *states, *[convert_to_tensor(w.value) for w in weights])
            ]
            state_leaves = leaves[1 : 1 + len(states)]
            with keras.StatelessScope(state_mapping=list(zip(weights, leaves[1 + len(states):]))):
                _, new_states, _ = self.cell.preactivation_step(leaves[0], state_leaves)
            # The step's output is h, its first new state: the output's
            # gradient is already in d_new[0], as in the written steps.
            gradients = torch.autograd.grad(
                list(new_states), leaves, grad_outputs=d_new, allow_unused=True
            )
        gradients = [torch.zeros_like(leaf) if g is None else g for g, leaf in zip(gradients, leaves)]
        d_z = gradients[0]
        return LevelStepGradients(
            d_z, convert_to_tensor(self.cell.recurrent_columns(d_z)), None,
            gradients[1 : 1 + len(states)], gradients[1 + len(states):], [],
        )


def _run(cell, levels, inputs, initial_state, mask, training, go_backwards,
         zero_output_for_mask, return_all_outputs):
    """Projects the inputs, runs the loop over `levels` and shapes its outputs."""
    recurrent_masks = [None] * len(levels)
    if training and cell.recurrent_dropout > 0:
        # A stack's mask is one slice per level (`StackedGatedCell`).
        recurrent_masks = list(torch.chunk(
            convert_to_tensor(cell.get_recurrent_dropout_mask(initial_state[0])), len(levels), dim=-1
        ))
    bottom_projection = levels[0].projection
    if bottom_projection is None:
        projected = convert_to_tensor(cell.project_sequence(inputs, training))
    else:
        kernel, bias = bottom_projection
        projected = torch.matmul(convert_to_tensor(inputs), convert_to_tensor(kernel))
        if bias is not None:
            projected = projected + convert_to_tensor(bias)
    projected = torch.transpose(projected, 0, 1)
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
    # The levels' kernels may be slices or joins of the cell's variables
    # (the Grid's): autograd differentiates how they were made.
    level_weights = [
        [convert_to_tensor(level.recurrent_kernel)]
        + ([] if level.input_kernel is None else [convert_to_tensor(level.input_kernel)])
        + ([] if level.input_kernel is None or level.input_bias is None
           else [convert_to_tensor(level.input_bias)])
        for level in levels
    ]
    bound = [w for level in levels for w in level.summed_weights()]
    bound += [w for level in levels for w in level.product_weights()]
    # Inside a `stateless_call` these are the scope's tensors, else the
    # variables' Parameters: what autograd must send the gradients to.
    values = [convert_to_tensor(w.value) for w in bound]
    flat_weights = [w for weights in level_weights for w in weights]
    loop = _Loop(cell, levels, bound, [len(w) for w in level_weights], step_mask,
                 recurrent_masks, zero_output_for_mask)
    differentiable = torch.is_grad_enabled() and any(
        t.requires_grad for t in [projected, *states, *flat_weights, *values]
    )
    if differentiable:
        outputs, *final_states = _FusedLoop.apply(
            loop, len(states), len(flat_weights), projected, *states, *flat_weights, *values
        )
    else:
        outputs, final_states, _ = loop.forward(projected, states, flat_weights, values, keep=False)
    last_output = outputs[-1]
    outputs = torch.transpose(outputs, 0, 1) if return_all_outputs else last_output[:, None, :]
    return last_output, outputs, list(final_states)


class _FusedLoop(torch.autograd.Function):
    """`(projected, *states, *level weights, *bound values) -> (outputs, *final states)`
    with the loop's backward."""

    @staticmethod
    def forward(ctx, loop, state_count, weight_count, projected, *tensors):
        states = list(tensors[:state_count])
        weights = list(tensors[state_count : state_count + weight_count])
        values = list(tensors[state_count + weight_count :])
        outputs, final_states, kept = loop.forward(projected, states, weights, values, keep=True)
        ctx.loop = loop
        ctx.kept = kept
        ctx.weight_count = weight_count
        ctx.save_for_backward(*weights, *values)
        return (outputs, *final_states)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_outputs, *d_final_states):
        # The backward loop runs without recording: a second derivative
        # through it raises rather than silently coming out as zero.
        saved = list(ctx.saved_tensors)
        weights, values = saved[: ctx.weight_count], saved[ctx.weight_count :]
        # Autograd runs this after the layer's call has returned.
        with weights_as_in_call(ctx.loop.cell):
            d_projected, d_states, d_weights, d_values = ctx.loop.backward(
                ctx.kept, weights, values, d_outputs, list(d_final_states)
            )
        return (None, None, None, d_projected, *d_states, *d_weights, *d_values)


class _Loop:
    """The forward and backward time loops of one call over `levels` (its masks fixed).

    `bound` are the weights the levels read inside the step (their
    `summed_weights`, then their `product_weights`), bound to the loop's
    `values` while it runs; `weight_counts[k]` is how many of the flat level
    weights (R_k, then V_k and b_k above the bottom) are level k's.
    """

    def __init__(self, cell, levels, bound, weight_counts, step_mask, recurrent_masks,
                 zero_output_for_mask):
        self.cell = cell
        self.levels = levels
        self.bound = bound
        self.weight_counts = weight_counts
        self.step_mask = step_mask
        self.recurrent_masks = recurrent_masks
        self.zero_output_for_mask = zero_output_for_mask
        offsets = [0]
        for level in levels:
            offsets.append(offsets[-1] + level.state_count)
        self.own = [slice(offsets[k], offsets[k + 1]) for k in range(len(levels))]
        self.summed_counts = [len(level.summed_weights()) for level in levels]

    def _bound_to(self, values):
        # The levels read their weights (peepholes, norms, depth-gate
        # vectors, the untied M) through the cell: mapped to the arguments.
        return keras.StatelessScope(state_mapping=list(zip(self.bound, values)))

    def _level_weights(self, flat_weights):
        weights, start = [], 0
        for count in self.weight_counts:
            weights.append(flat_weights[start : start + count])
            start += count
        return weights

    def compiled_step(self, step, kind):
        """`step` run through `_CompiledSteps` (its traced graph from the
        second call of a signature on), or as it is for a level without a
        written backward step, whose VJP is autograd's, or under
        `torch.compile`."""
        if kind == "backward" and any(isinstance(l, AutomaticCellLevel) for l in self.levels):
            return step
        if torch.compiler.is_compiling():
            # Under `torch.compile` Dynamo traces the Python step itself.
            return step
        return _CompiledSteps.of(self.cell, (kind, self.zero_output_for_mask)).runner(step)

    def forward(self, projected, states, flat_weights, values, keep):
        """Outputs (time-major), final states and, with `keep`, what the
        backward loop needs: each step's pre-activations, what each level
        read from below and the states the step starts from. Records
        nothing for autograd."""
        step_mask = self.step_mask
        steps = projected.shape[0]
        # The initial states may be a stateful layer's variables, which the
        # layer assigns in place after the call: the loop keeps a copy.
        states = [s.clone() for s in states] if keep else list(states)
        pre_activations, reads_in, states_in = [], [], []
        outputs = previous_output = None
        forward_step = self.compiled_step(self._forward_step, "forward")
        with torch.no_grad():
            for t in range(steps):
                mask_t = None if step_mask is None else step_mask[t]
                output, new_states, z_levels, reads, previous_output = forward_step(
                    projected[t], states, flat_weights, values, self.recurrent_masks,
                    mask_t, previous_output,
                )
                if outputs is None:
                    outputs = output.new_empty((steps, *output.shape))
                if keep:
                    pre_activations.append(z_levels)
                    reads_in.append(reads)
                    states_in.append(states)
                outputs[t] = output
                states = new_states
        return outputs, states, (pre_activations, reads_in, states_in) if keep else None

    def _forward_step(self, p, states, flat_weights, values, recurrent_masks, mask_t,
                      previous_output):
        """One forward step of every level: `(output, new states, the levels'
        pre-activations, what each level read, the previous masked output)`."""
        levels, own = self.levels, self.own
        level_weights = self._level_weights(flat_weights)
        extra_columns = levels[0].extra_columns
        with self._bound_to(values):
            e = None
            if extra_columns:
                p, e = p[..., :-extra_columns], p[..., -extra_columns:]
            a, new_states, z_levels, reads = None, [], [], []
            for k, level in enumerate(levels):
                weights = level_weights[k]
                if k > 0:
                    p = torch.matmul(a, weights[1])
                    if len(weights) > 2:
                        p = p + weights[2]
                r = torch.matmul(_dropped(states[own[k]][0], recurrent_masks[k]), weights[0])
                z = level.preactivations(p, r)
                reads.append((a, e))
                new_own, a, e = level.forward(z, e, states[own[k]])
                new_states += list(new_own)
                z_levels.append(z)
            output = a
            if mask_t is not None:
                if previous_output is None:
                    previous_output = torch.zeros_like(output)
                # Keras's torch loop: the previous masked output (zeros
                # before a row's first real step), or zeros.
                output = torch.where(mask_t, output, previous_output)
                new_states = [torch.where(mask_t, new, old) for new, old in zip(new_states, states)]
                if not self.zero_output_for_mask:
                    previous_output = output
        return output, new_states, z_levels, reads, previous_output

    def backward(self, kept, flat_weights, values, d_outputs, d_final_states):
        """`(d projected, d initial states, d flat level weights, d bound values)`."""
        levels, own = self.levels, self.own
        step_mask = self.step_mask
        level_weights = self._level_weights(flat_weights)
        transposed = [[w.t().contiguous() for w in weights[:2]] for weights in level_weights]
        extra_columns = levels[0].extra_columns
        pre_activations, reads_in, states_in = kept
        steps = len(pre_activations)
        d_carry = [
            torch.zeros_like(s) if d is None else d for d, s in zip(d_final_states, states_in[0])
        ]
        # The gradient of the previous masked output, handed back through
        # masked steps (Keras's torch loop repeats that output there).
        d_output_carry = None
        # At least float32 under a mixed-precision policy: one rounding per
        # step, not two.
        summed_totals = [
            torch.zeros_like(w, dtype=torch.promote_types(w.dtype, torch.float32))
            for w in values[: sum(self.summed_counts)]
        ]
        d_projected = None
        d_z = [None] * len(levels)
        d_r = [None] * len(levels)
        saved_steps = [[] for _ in levels]
        backward_step = self.compiled_step(self._backward_step, "backward")
        with torch.no_grad(), self._bound_to(values):
            for t in range(steps - 1, -1, -1):
                mask_t = None if step_mask is None else step_mask[t]
                d_carry, d_output_carry, d_preactivations, d_recurrent, saved, sums, d_bottom_extra = (
                    backward_step(
                        pre_activations[t], reads_in[t], states_in[t], d_outputs[t], d_carry,
                        d_output_carry, mask_t, transposed, self.recurrent_masks, values,
                    )
                )
                for k, level in enumerate(levels):
                    if d_z[k] is None:
                        d_z[k] = d_preactivations[k].new_empty((steps, *d_preactivations[k].shape))
                        if level.separate_recurrent_gradient:
                            d_r[k] = d_recurrent[k].new_empty((steps, *d_recurrent[k].shape))
                    d_z[k][t] = d_preactivations[k]
                    if level.separate_recurrent_gradient:
                        d_r[k][t] = d_recurrent[k]
                    if saved[k]:
                        saved_steps[k].append(saved[k])
                for total, part in zip(summed_totals, sums):
                    total += part
                if extra_columns:
                    # The bottom level's extra columns (l_t) are no part of
                    # its pre-activations: d_projected is a buffer of its own.
                    d_projected_t = torch.cat([d_z[0][t], d_bottom_extra], dim=-1)
                    if d_projected is None:
                        d_projected = d_projected_t.new_empty((steps, *d_projected_t.shape))
                    d_projected[t] = d_projected_t
            d_weights, d_products = [], []
            for k, (level, weights) in enumerate(zip(levels, level_weights)):
                h_rows = torch.stack([s[own[k]][0] for s in states_in])
                h_rows = _dropped(h_rows, self.recurrent_masks[k]).reshape(-1, h_rows.shape[-1])
                d_z_rows = d_z[k].reshape(h_rows.shape[0], -1)
                if level.separate_recurrent_gradient:
                    d_recurrent_rows = d_r[k].reshape(h_rows.shape[0], -1)
                else:
                    d_recurrent_rows = convert_to_tensor(level.recurrent_columns(d_z_rows))
                d_weights.append(torch.matmul(h_rows.t(), d_recurrent_rows))
                if len(weights) > 1:
                    a_rows = torch.stack([reads[k][0] for reads in reads_in])
                    a_rows = a_rows.reshape(h_rows.shape[0], -1)
                    d_weights.append(torch.matmul(a_rows.t(), d_z_rows))
                    if len(weights) > 2:
                        d_weights.append(d_z_rows.sum(dim=0))
                if level.product_weights():
                    # The backward loop ran from the last step: put the
                    # saved tensors back in time order.
                    saved = saved_steps[k][::-1]
                    stacked_saved = [torch.stack(parts) for parts in zip(*saved)]
                    stacked_states = [
                        torch.stack(parts) for parts in zip(*[s[own[k]] for s in states_in])
                    ]
                    d_products += [
                        convert_to_tensor(g)
                        for g in level.backward_weight_gradients(d_z[k], stacked_states, stacked_saved)
                    ]
        if not extra_columns:
            d_projected = d_z[0]
        summed_totals = [t.to(w.dtype) for t, w in zip(summed_totals, values)]
        return d_projected, d_carry, d_weights, [*summed_totals, *d_products]

    def _backward_step(self, z_t, reads_t, states_t, d_output, d_carry, d_output_carry, mask_t,
                       transposed, recurrent_masks, values):
        """One backward step of every level, top-down: `(d states at t-1, the
        carried output gradient, each level's dz and dR (None where dR is
        dz's recurrent blocks) and saved tensors, the weight vectors'
        shares, the bottom level's d extra)`."""
        levels, own = self.levels, self.own
        with self._bound_to(values), self.cell.backward_loop_weights():
            if mask_t is None:
                d_new, d_top = list(d_carry), d_output
            else:
                if d_output_carry is not None:
                    d_output = d_output + d_output_carry
                d_new = [torch.where(mask_t, d, 0.0) for d in d_carry]
                d_top = torch.where(mask_t, d_output, 0.0)
                if not self.zero_output_for_mask:
                    d_output_carry = torch.where(mask_t, 0.0, d_output)
            d_up = (d_top, None)
            d_prev = [None] * len(states_t)
            d_bottom_extra = None
            d_preactivations, d_recurrent, saved = [None] * len(levels), [None] * len(levels), [None] * len(levels)
            sums_by_level = [None] * len(levels)
            for k in range(len(levels) - 1, -1, -1):
                level = levels[k]
                step = level.backward(
                    z_t[k], reads_t[k][1], states_t[own[k]], d_new[own[k]], d_up[0], d_up[1]
                )
                d_h = _dropped(torch.matmul(step.d_recurrent, transposed[k][0]), recurrent_masks[k])
                d_own = list(step.d_states)
                d_own[0] = d_h if d_own[0] is None else d_own[0] + d_h
                d_prev[own[k]] = d_own
                sums_by_level[k] = step.sums
                d_preactivations[k] = step.d_preactivations
                if level.separate_recurrent_gradient:
                    d_recurrent[k] = step.d_recurrent
                saved[k] = list(step.saved)
                if k > 0:
                    d_up = (torch.matmul(step.d_preactivations, transposed[k][1]), step.d_extra)
                else:
                    d_bottom_extra = step.d_extra
            d_prev = [torch.zeros_like(s) if d is None else d for d, s in zip(d_prev, states_t)]
            if mask_t is not None:
                # Where the row was masked the step handed its states through.
                d_prev = [torch.where(mask_t, d, passed) for d, passed in zip(d_prev, d_carry)]
        sums = [part for level_sums in sums_by_level for part in level_sums]
        return d_prev, d_output_carry, d_preactivations, d_recurrent, saved, sums, d_bottom_extra


def _dropped(h, recurrent_mask):
    return h if recurrent_mask is None else h * recurrent_mask



class _CompiledSteps:
    """The loops' step functions of one cell, traced into TorchScript graphs.

    Why: a step is some 30 (forward) to 80 (backward) small element-wise
    operations, each of which costs more in Python (`keras.ops`' dispatch
    and conversions) than on the CPU at the batch sizes of a recurrent
    layer; a traced graph runs the same ATen operations without the Python.

    The graph of a step is traced (`torch.jit.trace`) the second time the
    loops call it with one signature (which tensors are None, their shapes,
    dtypes and devices), so a one-off call such as the first step of a loop,
    which starts the carried tensors, runs as it is; then it is kept per cell
    for later calls. The step functions take every tensor they read as an
    argument (the weights through the `StatelessScope` they open), so a graph
    holds no tensor of the call that traced it; a trace that captured one
    anyway is dropped and that signature runs untraced.
    """

    _of_cell = weakref.WeakKeyDictionary()
    # Signatures kept per cell and kind: batch sizes and masks vary little
    # within one training run.
    _capacity = 32

    def __init__(self):
        self._entries = {}

    @classmethod
    def of(cls, cell, kind):
        per_cell = cls._of_cell.setdefault(cell, {})
        if kind not in per_cell:
            per_cell[kind] = cls()
        return per_cell[kind]

    def runner(self, step):
        def run(*args):
            leaves, arg_spec = _flatten(args)
            key = (arg_spec, tuple((t.shape, t.dtype, t.device) for t in leaves))
            entry = self._entries.get(key, 0)
            if entry == 1:
                entry = _trace(step, arg_spec, leaves)
                if len(self._entries) >= self._capacity:
                    self._entries.clear()
                self._entries[key] = entry
            elif isinstance(entry, int):
                self._entries[key] = entry + 1
            if isinstance(entry, int) or entry is None:
                return step(*args)
            graph, out_spec = entry
            outputs = graph(*leaves)
            if isinstance(outputs, torch.Tensor):
                outputs = (outputs,)
            return _unflatten(out_spec, iter(outputs))
        return run


def _trace(step, arg_spec, leaves):
    """`(graph, output spec)` of `step` at these arguments, or None where
    the graph would hold a tensor of this call."""
    out_specs = []
    # The traced function keeps the Python function it was traced from;
    # `step` (a loop's bound method, holding the loop and its cell) is let
    # go once traced, or the per-cell cache would keep every cell alive.
    traced_from = [step]

    def flat_step(*flat_args):
        outputs, out_spec = _flatten(traced_from[0](*_unflatten(arg_spec, iter(flat_args))))
        out_specs.append(out_spec)
        return tuple(outputs)

    with warnings.catch_warnings():
        # The trace notes the Python branches it fixes (Keras's own shape
        # checks); the signature, shapes included, keys the graph.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            graph = torch.jit.trace(flat_step, tuple(leaves), check_trace=False)
        finally:
            traced_from.clear()
    if _holds_tensors(graph.graph):
        return None
    return graph, out_specs[0]


def _holds_tensors(graph):
    """Whether a traced graph holds a tensor constant that is not a scalar:
    a tensor its step read other than through its arguments."""
    return any(
        node.kindOf("value") == "t" and node.t("value").dim() > 0
        for node in graph.findAllNodes("prim::Constant")
        if node.hasAttribute("value")
    )


def _flatten(tree):
    """The tensors of nested lists and tuples of tensors and None, and the
    spec that `_unflatten` rebuilds the structure from."""
    if tree is None:
        return [], None
    if isinstance(tree, torch.Tensor):
        return [tree], "tensor"
    leaves, specs = [], []
    for item in tree:
        item_leaves, item_spec = _flatten(item)
        leaves += item_leaves
        specs.append(item_spec)
    return leaves, (type(tree).__name__, tuple(specs))


def _unflatten(spec, leaves):
    if spec is None:
        return None
    if spec == "tensor":
        return next(leaves)
    kind, specs = spec
    items = [_unflatten(item, leaves) for item in specs]
    return tuple(items) if kind == "tuple" else items
