"""Pick the distribution strategy and the precision policy in one call.

`select_strategy()`:

* TensorFlow backend: `tf.distribute.TPUStrategy` when
  `TPUClusterResolver` finds a TPU (on a Cloud TPU VM, or with `tpu=` /
  the `TPU_NAME` environment variable), `tf.distribute.MirroredStrategy`
  when there are several GPUs (or several logical CPU devices and
  `prefer="mirrored"`), `tf.distribute.MultiWorkerMirroredStrategy` from
  `TF_CONFIG` with `prefer="multi-worker"` (or "auto" when `TF_CONFIG`
  names several workers; see `keras_gated.tuning.cluster`), the default
  strategy otherwise. The strategy is
  given to the tuner (`distribution_strategy=`) or used as
  `with strategy.scope(): model = build()`.
* JAX backend: sets `keras.distribution.DataParallel` over all devices as
  the global distribution when there is more than one, and returns None
  (the tuner takes no strategy on JAX). In a JAX cluster (several
  processes, `keras_gated.tuning.cluster.start_jax_cluster`) the devices
  are those of all processes and each process feeds its own slice of the
  batches (`auto_shard_dataset=False`).
* PyTorch backend: None (single device).

`set_mixed_precision(True)` sets the "mixed_float16" policy where a GPU
computes, "mixed_bfloat16" on TPU, and on a CPU the half type that CPU math
of the backend runs fastest, measured on the 2-core AVX-512 machine of
docs/benchmarks.md ("Mixed precision"): "mixed_bfloat16" on TensorFlow
(oneDNN) and PyTorch, where it is faster than float32 and float16 slower (a
`keras.layers.LSTM` train step at (32, 100, 128, 256) on TensorFlow: 72-96 ms,
float32 112-145 ms, float16 182-186 ms), "mixed_float16" on JAX, whose
XLA:CPU runs bfloat16 1.5-2.0x slower than float32 and float16 at about
float32's speed.
"""

import os

import keras

STRATEGIES = ("auto", "default", "mirrored", "multi-worker", "tpu")


def _find_tpu(tpu=None):
    import tensorflow as tf

    if tpu is None and not (
        os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio")
    ):
        return None  # No TPU in sight: don't let the resolver probe a metadata server.
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None


def select_strategy(prefer="auto", tpu=None, verbose=True):
    """Returns the distribution strategy for this machine (see module doc).

    Args:
        prefer: "auto" (several workers in TF_CONFIG: multi-worker; else
            TPU, else several GPUs mirrored, else default), "default",
            "mirrored" (all GPUs, or all logical CPU devices when there is
            no GPU), "multi-worker" (MultiWorkerMirroredStrategy from
            TF_CONFIG) or "tpu" (raise if none is found).
        tpu: TPU name or address for `TPUClusterResolver` (optional).
        verbose: Print which strategy was chosen.

    Returns:
        A `tf.distribute.Strategy` on TensorFlow, None on other backends.
    """
    if prefer not in STRATEGIES:
        raise ValueError(f"Unknown `prefer`: {prefer!r}. Accepted values: {', '.join(STRATEGIES)}.")
    backend = keras.backend.backend()
    from keras_gated.tuning import cluster

    cluster.check_cluster_arguments(backend, prefer, None)
    if backend == "jax":
        import jax

        devices = jax.devices()
        if jax.process_count() > 1:
            # Each process feeds its slice of every global batch
            # (keras_gated.tuning.cluster.ProcessShard), so Keras must not
            # shard the data again.
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
            )
            _say(verbose, f"JAX DataParallel over {len(devices)} devices of {jax.process_count()} processes "
                          f"(this is process {jax.process_index()})")
        elif len(devices) > 1 and prefer != "default":
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            _say(verbose, f"JAX DataParallel over {len(devices)} devices")
        else:
            _say(verbose, f"JAX on {devices[0].platform}")
        return None
    if backend != "tensorflow":
        _say(verbose, f"{backend} backend: single device")
        return None

    if cluster.wants_multi_worker(prefer):
        strategy = cluster.multi_worker_strategy()
        role = cluster.role_of(strategy)
        _say(verbose, f"MultiWorkerMirroredStrategy over {strategy.num_replicas_in_sync} replicas of "
                      f"{role.process_count} workers (this is {role.name})")
        return strategy

    import tensorflow as tf

    if prefer in ("auto", "tpu"):
        resolver = _find_tpu(tpu)
        if resolver is not None:
            strategy = tf.distribute.TPUStrategy(resolver)
            _say(verbose, f"TPUStrategy over {strategy.num_replicas_in_sync} cores")
            return strategy
        if prefer == "tpu":
            raise ValueError("--strategy tpu: no TPU found by TPUClusterResolver (set TPU_NAME or --tpu).")
    gpus = tf.config.list_logical_devices("GPU")
    if prefer == "mirrored" or (prefer == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        _say(verbose, f"MirroredStrategy over {len(devices)} devices")
        return strategy
    _say(verbose, f"default strategy ({'GPU' if gpus else 'CPU'})")
    return tf.distribute.get_strategy()


def on_tpu(strategy):
    """Whether `strategy` is a TPUStrategy."""
    return strategy is not None and "TPU" in type(strategy).__name__


def set_mixed_precision(enabled, strategy=None):
    """Sets the global dtype policy: mixed precision or float32.

    Models built afterwards compute in float16 on a GPU, in bfloat16 on TPU,
    on a CPU in the half type the backend runs fastest there (see the
    module's docstring), with float32 weights; keep the last layer's output in float32
    (`dtype="float32"`), as the task models do.
    """
    if not enabled:
        keras.mixed_precision.set_global_policy("float32")
        return "float32"
    if on_tpu(strategy):
        policy = "mixed_bfloat16"
    elif gpu_computes() or keras.backend.backend() == "jax":
        policy = "mixed_float16"
    else:
        policy = "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def gpu_computes():
    """Whether the active Keras backend computes on a GPU."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if name == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if name == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def _say(verbose, text):
    if verbose:
        print(f"keras-gated: {text}", flush=True)
