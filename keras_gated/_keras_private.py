"""The one module of keras-gated that reaches into Keras's private code.

Keras keeps these out of its public namespace, with no compatibility
promise; `tests/test_keras_private.py` fails loudly, naming the piece, the
day a Keras release moves one of them. Everything else in the package uses
public Keras only.

* `DropoutRNNCell`, the dropout-mask mixin of Keras's cells:
  `keras.layers.RNN` recognises cells by this class (to draw their masks
  once before the loop), so deriving from it is what makes the cells drop
  out exactly as `keras.layers.LSTMCell` does.
* `rnn`, the backend's time loop (`keras.src.backend.rnn`), which
  `keras.layers.RNN` runs: the generic path of the layers and the
  captioning decoder loop with it, so masking, `go_backwards` and `unroll`
  behave as Keras's own layers.
* `get_keras_mask` / `set_keras_mask`: the mask Keras attaches to a tensor,
  which is how a layer's mask reaches the next; the probe reads and
  attaches it when it walks a model.
* To run a model's graph with every layer call handed to a function of
  ours (the probe): `Sequential._functional`, the graph a built Sequential
  runs; `Functional._standardize_inputs`, `Functional._run_through_graph`
  and `Functional._nodes_by_depth`; `Layer._call_has_training_arg` and
  `Layer._call_has_mask_arg`, whether a layer's `call` takes `training` and
  `mask`.
* Keras's TensorFlow trainer, patched for multi-worker `fit`
  (`use_local_batch_to_build`, its docstring has why).
* `AutocastScope`, what a layer's call under a mixed-precision policy
  enters so that reading a float variable gives it in the compute dtype:
  the fast loops' backward passes run after the call has returned (when
  the gradient is asked for), and enter it again (`autocast`).
"""

import keras
from keras.src.backend import get_keras_mask
from keras.src.backend import rnn
from keras.src.backend import set_keras_mask
from keras.src.backend.common.variables import AutocastScope
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

__all__ = [
    "DropoutRNNCell",
    "autocast",
    "call_takes_mask",
    "call_takes_training",
    "functional_graph",
    "get_keras_mask",
    "rnn",
    "run_through_graph",
    "set_keras_mask",
    "use_local_batch_to_build",
]

# What the tests check for on a built Sequential, its graph and a layer.
SEQUENTIAL_NAMES = ("_functional",)
FUNCTIONAL_NAMES = ("_run_through_graph", "_standardize_inputs", "_nodes_by_depth")
LAYER_NAMES = ("_call_has_training_arg", "_call_has_mask_arg")


def autocast(dtype):
    """A context in which reading a float variable gives it cast to `dtype`,
    as inside a layer's call under a mixed-precision policy."""
    return AutocastScope(dtype)


def functional_graph(model):
    """The functional graph that runs `model`, or None (a subclassed model)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if hasattr(model, "_run_through_graph") and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def run_through_graph(graph, inputs, operation_fn):
    """Runs `graph` on `inputs` with each operation `op` replaced by
    `operation_fn(op)`; returns the graph's outputs."""
    return graph._run_through_graph(
        graph._standardize_inputs(inputs), operation_fn=operation_fn
    )


def call_takes_training(layer):
    """Whether `layer.call` takes a `training` argument."""
    return getattr(layer, "_call_has_training_arg", False)


def call_takes_mask(layer):
    """Whether `layer.call` takes a `mask` argument."""
    return getattr(layer, "_call_has_mask_arg", False)


def _trainer_module():
    from keras.src.backend.tensorflow import trainer

    return trainer


def use_local_batch_to_build():
    """Makes Keras's TensorFlow `fit` work under a multi-worker strategy.

    `model.fit` of Keras 3 on TensorFlow under a tf.distribute strategy
    builds the model from its first batch
    (`TensorFlowTrainer._maybe_symbolic_build`), which it first averages
    over the replicas with `strategy.reduce("MEAN", batch)`. Under
    `MultiWorkerMirroredStrategy` with more than one worker, `reduce` of a
    nested batch such as `(tokens, labels)` fails ("Attempt to convert a
    value (PerReplica...) with an unsupported type ... to a Tensor";
    keras-team/keras#20585), so `fit` cannot start. Only the shapes and
    dtypes of the batch matter there, which this process's first replica
    has without talking to the other workers.

    Then every training step reduces its logs (loss, metrics: one scalar
    per replica) with `strategy.reduce("MEAN", value, axis=0)` under a
    multi-worker strategy, which fails on a scalar ("Invalid reduction
    dimension 0 for input with 0 dimensions"). The mean over the replicas
    is `axis=None`.

    This makes the build take the first replica's batch and the
    multi-worker step logs take the mean over the replicas; it changes
    nothing else, and nothing at all without a multi-worker strategy.
    Idempotent; call once a multi-worker strategy exists.
    """
    module = _trainer_module()
    trainer = module.TensorFlowTrainer
    if getattr(trainer._maybe_symbolic_build, "builds_from_local_batch", False):
        return
    import tensorflow as tf
    from keras import tree

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                batch = next(batches)
                data_batch = tree.map_structure(
                    lambda value: self.distribute_strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues)
                    else value,
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    _maybe_symbolic_build.builds_from_local_batch = True
    trainer._maybe_symbolic_build = _maybe_symbolic_build

    keras_reduce = module.reduce_per_replica
    multi_worker = module._collective_all_reduce_multi_worker

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return keras_reduce(values, strategy, reduction=reduction)

    module.reduce_per_replica = reduce_per_replica
