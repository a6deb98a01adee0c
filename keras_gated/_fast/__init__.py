"""Backend-specific fast paths of the recurrent layers.

The layers of `keras_gated` run everywhere through `GatedRNN.inner_loop`,
which uses `keras.ops` only: the input projection of all time steps is one
matrix product before the loop, and each step runs `cell.recurrent_step`
(one fused `h_{t-1} @ recurrent_kernel` product). That generic path is what
`unroll=True` runs on JAX and PyTorch, and every fallback.

This sub-package holds what only pays on one backend. Its modules are
imported lazily, so that a JAX or PyTorch user never imports TensorFlow:

* `keras_gated._fast.tensorflow.fused_rnn`: a time loop under
  `tf.custom_gradient` over a stack of levels (`contract.FusedLevel`; a
  one-layer cell is the one-level stack `contract.CellLevel(cell)`, a stack
  gives its `fast_levels()`), cut into chunks of steps, that stores the
  per-step pre-activations, runs the backward steps over the levels'
  hand-written backward steps and the products `dz_k R_k^T` only, and
  computes each level's `[dW ; dU ; db]` with one product per chunk (see
  `docs/benchmarks.md` for the measurements behind it). Inference calls
  (`training=False`) run its forward part alone.

* `keras_gated._fast.jax`: one loop for every fast layer on JAX, a
  `lax.scan` under `jax.custom_vjp` over a stack of levels
  (`contract.FusedLevel`) with their written backward steps and the
  recurrent weight gradients as one product each after the reverse scan;
  `fused_rnn` runs a one-layer cell as the one-level stack
  `contract.CellLevel(cell)` and a stack as its `fast_levels()`.
  `unroll=True` runs the generic loop on JAX.
* `keras_gated._fast.torch`: the same single loop over levels on PyTorch,
  an eager loop under `torch.autograd.Function` over the written backward
  steps (or autograd's VJP of one step for activations without one), the
  recurrent weight gradients as one product each after the backward loop;
  `fused_rnn` for one-layer cells and stacks alike. A call no
  gradient can reach (`torch.no_grad()`) runs its forward loop alone.
  `unroll=True` runs the generic loop on PyTorch.

As Keras's `backend.lstm` does for cuDNN, `fast_loop(layer, ...)` runs the
fast path that applies or raises `NotImplementedError` saying why none
does; the layer then runs its generic path (`fast_path="auto"`) or turns the
reason into a `ValueError` (`fast_path=True`). `unavailable_reason` gives the
same reason without running anything. This package never imports
`keras_gated.layers`: it reads the cell through the attributes named below.
"""

from keras import backend

FAST_BACKENDS = ("tensorflow", "jax", "torch")


def unavailable_reason(layer):
    """Why `layer` cannot run a fast path in this process, or None if it can.

    The reasons are the documented ones (`docs/benchmarks.md`, "Which path
    runs"): the backend has no fast loop, `fused=False`, or a cell
    without a fast form (a prioritised Grid, a stack whose activations have
    no written derivative).
    """
    if not layer.fused:
        return "fused=False runs the cell step by step inside keras.layers.RNN's loop"
    name = backend.backend()
    if name not in FAST_BACKENDS:
        return (
            f"the {name} backend has no fast loop yet (fast loops exist for: "
            f"{', '.join(FAST_BACKENDS)})"
        )
    cell = layer.cell
    if _kind(cell) is None:
        return (
            f"{cell.__class__.__name__} with these options has no fast form "
            "(a prioritised GridLSTM, a stack whose activations have no "
            "written derivative, "
            "or layer_norm with activations that have no written derivative)"
        )
    if name in ("jax", "torch"):
        if layer.unroll:
            return f"unroll=True writes the loop out in Python, which the {name} fast loop does not"
    return None


def _kind(cell):
    """"cell" for a one-layer cell, "stack" for a stack with fast levels, else None."""
    if getattr(cell, "deferred_recurrent_product", False):
        # The loops' automatic backward step takes dU from dZ's recurrent
        # columns, which a norm on U h makes wrong: such a cell needs its
        # written step (activations with a written derivative).
        if cell.separate_recurrent_gradient and not cell.has_step_backward:
            return None
        return "cell"
    if getattr(cell, "has_fast_levels", False):
        return "stack"
    return None


def fast_loop(layer, inputs, initial_state, mask, training):
    """Runs the layer's time loop on a backend-specific fast path.

    `inputs` are the layer's inputs after input dropout; the fast path
    projects them itself. Returns `(last_output, outputs, states)` as
    `keras.src.backend.rnn` does; raises `NotImplementedError` with the
    reason when no fast path applies.
    """
    reason = unavailable_reason(layer)
    if reason is not None:
        raise NotImplementedError(reason)
    options = dict(
        mask=mask,
        training=training,
        go_backwards=layer.go_backwards,
        zero_output_for_mask=layer.zero_output_for_mask,
        return_all_outputs=layer.return_sequences,
    )
    if backend.backend() == "jax":
        from keras_gated._fast import jax as jax_fast

        # unavailable_reason has ruled out unroll=True on JAX.
        return jax_fast.fused_rnn(layer.cell, inputs, initial_state, **options)
    if backend.backend() == "torch":
        from keras_gated._fast import torch as torch_fast

        # unavailable_reason has ruled out unroll=True on PyTorch.
        return torch_fast.fused_rnn(layer.cell, inputs, initial_state, **options)
    from keras_gated._fast import tensorflow as tf_fast

    return tf_fast.fused_rnn(layer.cell, inputs, initial_state, unroll=layer.unroll, **options)
