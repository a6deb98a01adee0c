"""The label-smoothed next-token loss against a NumPy float64 reference, forward and gradient."""

import keras
import numpy as np
import pytest

from keras_gated.losses import SmoothedSparseCrossentropy
from keras_gated.losses import sparse_crossentropy


def reference_loss(targets, logits, smoothing, ignore_class):
    """Mean over the non-ignored positions of -Σ_k q_k log p_k, q = (1-ε) one_hot + ε/V."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    classes = logits.shape[-1]
    q = np.full(logits.shape, smoothing / classes)
    np.put_along_axis(q, np.maximum(targets, 0)[..., None],
                      1.0 - smoothing + smoothing / classes, axis=-1)
    per_position = -(q * log_p).sum(-1)
    valid = np.ones(targets.shape, bool) if ignore_class is None else targets != ignore_class
    return per_position[valid].sum() / valid.sum(), (q, log_p, valid)


def reference_gradient(logits, q, valid):
    """d loss / d logits = (softmax(z) - q) / count at the real positions, 0 at padding."""
    p = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p - q) * valid[..., None] / valid.sum()


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 7, 11)).astype("float32") * 3
    targets = rng.integers(1, 11, size=(4, 7))
    targets[0, 4:] = 0
    targets[2, 1:] = 0
    return targets, logits


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
@pytest.mark.parametrize("ignore_class", [0, None])
def test_smoothed_loss_and_its_gradient_equal_the_float64_reference(batch, smoothing, ignore_class):
    targets, logits = batch
    loss = SmoothedSparseCrossentropy(smoothing, ignore_class=ignore_class)
    expected, (q, _, valid) = reference_loss(targets, logits, smoothing, ignore_class)
    np.testing.assert_allclose(float(loss(targets, logits)), expected, rtol=1e-5)
    gradient = _gradient(loss, targets, logits)
    np.testing.assert_allclose(gradient, reference_gradient(logits, q, valid), atol=1e-6)
    if ignore_class is not None:
        # Padding gets no gradient at all.
        assert np.all(gradient[targets == ignore_class] == 0)


def test_it_equals_keras_categorical_crossentropy_with_label_smoothing_on_one_hot_targets(batch):
    targets, logits = batch
    one_hot = np.eye(logits.shape[-1], dtype="float32")[targets]
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    ours = SmoothedSparseCrossentropy(0.2, ignore_class=None)
    np.testing.assert_allclose(float(ours(targets, logits)), float(keras_loss(one_hot, logits)),
                               rtol=1e-5)


def test_without_smoothing_it_is_keras_sparse_crossentropy(batch):
    targets, logits = batch
    loss = sparse_crossentropy(0.0, ignore_class=0)
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    expected, _ = reference_loss(targets, logits, 0.0, 0)
    np.testing.assert_allclose(float(loss(targets, logits)), expected, rtol=1e-5)


def test_it_round_trips_through_its_config():
    loss = SmoothedSparseCrossentropy(0.15, ignore_class=0)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, SmoothedSparseCrossentropy)
    assert (again.label_smoothing, again.ignore_class, again.from_logits) == (0.15, 0, True)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1])
def test_a_smoothing_outside_the_open_interval_names_the_fix(value):
    with pytest.raises(ValueError, match="label_smoothing.*SparseCategoricalCrossentropy"):
        SmoothedSparseCrossentropy(value)


def _gradient(loss, targets, logits):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        z = tf.constant(logits)
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(targets, z)
        return tape.gradient(value, z).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda z: loss(targets, z))(logits))
    import torch

    z = torch.tensor(logits, requires_grad=True)
    loss(torch.tensor(targets), z).backward()
    return z.grad.numpy()
