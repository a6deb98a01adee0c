"""The one place where keras-gated reaches into Keras's private code; tests/test_scaling.py checks it.

`model.fit` of Keras 3 on TensorFlow under a tf.distribute strategy builds
the model from its first batch (`TensorFlowTrainer._maybe_symbolic_build`),
which it first averages over the replicas with `strategy.reduce("MEAN",
batch)`. Under `MultiWorkerMirroredStrategy` with more than one worker,
`reduce` of a nested batch such as `(tokens, labels)` fails ("Attempt to
convert a value (PerReplica...) with an unsupported type ... to a Tensor";
keras-team/keras#20585), so `fit` cannot start. Only the shapes and dtypes
of the batch matter there, which this process's first replica has without
talking to the other workers.

Then every training step reduces its logs (loss, metrics: one scalar per
replica) with `strategy.reduce("MEAN", value, axis=0)` under a multi-worker
strategy, which fails on a scalar ("Invalid reduction dimension 0 for input
with 0 dimensions"). The mean over the replicas is `axis=None`.

`use_local_batch_to_build()` makes the build take the first replica's
batch and the multi-worker step logs take the mean over the replicas; it
changes nothing else, and nothing at all without a multi-worker strategy.
"""


def _trainer_module():
    from keras.src.backend.tensorflow import trainer

    return trainer


def _trainer_class():
    return _trainer_module().TensorFlowTrainer


def use_local_batch_to_build():
    """Makes Keras's TensorFlow `fit` build from this worker's first replica batch (see module doc).

    Idempotent; call once a multi-worker strategy exists.
    """
    trainer = _trainer_class()
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

    module = _trainer_module()
    keras_reduce = module.reduce_per_replica
    multi_worker = module._collective_all_reduce_multi_worker

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return keras_reduce(values, strategy, reduction=reduction)

    module.reduce_per_replica = reduce_per_replica


def trial_checkpoint_path(tuner, trial_id):
    """The weights file KerasTuner keeps for a trial (`Tuner._get_checkpoint_fname`).

    Under a multi-worker strategy KerasTuner keeps it on the chief alone
    (the others save to a temporary directory and remove it).
    """
    return tuner._get_checkpoint_fname(trial_id)
