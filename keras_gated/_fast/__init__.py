"""Backend-specific fast paths of the recurrent layers.

The layers of `keras_gated` run everywhere through `GatedRNN.inner_loop`,
which uses `keras.ops` only: the input projection of all time steps is one
matrix product before the loop, and each step runs `cell.recurrent_step`
(one fused `h_{t-1} @ recurrent_kernel` product). That generic path is what
JAX and PyTorch run.

This sub-package holds what only pays on one backend. It is imported lazily,
so that a JAX or PyTorch user never imports TensorFlow:

* `keras_gated._fast.tensorflow.fused_rnn`: a time loop under
  `tf.custom_gradient`, cut into chunks of steps, that stores the per-step
  pre-activations, runs the backward steps over the cell's hand-written
  backward step (`GatedCell.step_backward`) and the product `dz_t U^T`
  only, and computes `[dW ; dU ; db]` with one product per chunk (see
  `docs/benchmarks.md` for the measurements behind it);
* `keras_gated._fast.tensorflow.fused_stack_rnn`: the same for cells that
  run several levels inside each step (`DepthGatedLSTMCell(num_layers > 1)`,
  `GridLSTMCell`), described by their `fast_levels()`.

Inference calls (`training=False`) run both loops' forward part alone.

`fast_loop(layer, ...)` picks the fast path that applies, or returns `None`
when none does (the layer then runs its generic path).
"""

from keras import backend


def fast_loop_supported(layer, training):
    """Whether `layer` can run a backend-specific fast path for this call.

    Training calls run the TensorFlow loop under its custom gradient.
    Calls with `training=False` (predict, evaluate, plain calls) run the
    same forward loop without it: nothing is kept for a backward loop, and
    should someone take gradients through such a call, TensorFlow
    differentiates the loop itself (exact, if slower than the fast backward).
    """
    if backend.backend() != "tensorflow":
        return False
    return _kind(layer.cell) is not None


def _kind(cell):
    """"cell" for a one-layer cell, "stack" for a stack with fast levels, else None."""
    if getattr(cell, "deferred_recurrent_product", False):
        return "cell"
    if getattr(cell, "has_fast_levels", False):
        return "stack"
    return None


def fast_loop(layer, inputs, initial_state, mask, training):
    """Runs the layer's time loop on a backend-specific fast path, or returns None.

    `inputs` are the layer's inputs after input dropout; the fast path
    projects them itself.
    """
    if not fast_loop_supported(layer, training):
        return None
    from keras_gated._fast import tensorflow as tf_fast

    run = tf_fast.fused_rnn if _kind(layer.cell) == "cell" else tf_fast.fused_stack_rnn
    return run(
        layer.cell,
        inputs,
        initial_state,
        mask=mask,
        training=training,
        go_backwards=layer.go_backwards,
        zero_output_for_mask=layer.zero_output_for_mask,
        return_all_outputs=layer.return_sequences,
        unroll=layer.unroll,
    )
