"""Gradient flow: dL/dh_t of every step of every probed layer, per backend.

Method: the model is run on `x` with each probed layer replayed by its own
cell step by step (`replay`), and a zero perturbation tensor e_t added to
the hidden state h_t of each step and level wherever h_t goes. The loss L
is the model's compiled loss (`model.compute_loss`, as in training, without
dropout); its gradient with respect to e_t is exactly dL/dh_t, all paths
included, and zero perturbations leave every number unchanged.

Differentiating needs each backend's own API, so this module holds one
function per backend: `tf.GradientTape`, `torch.autograd.grad` and
`jax.grad` (which needs the perturbations' shapes first, so JAX runs the
model twice).
"""

import keras
import numpy as np
from keras import ops

from keras_gated.probe.replay import replayed_run, selector
from keras_gated.probe.trace import hidden_widths, state_slots
from keras_gated.probe.walk import as_tensors

def _zero_perturbations(rnn, inputs):
    """One zero (batch, T, width) tensor per level of `rnn`, in its weights' dtype."""
    return [
        ops.zeros(
            (ops.shape(inputs)[0], inputs.shape[1], width),
            dtype=rnn.cell.variable_dtype,
        )
        for width in hidden_widths(rnn.cell)
    ]


def _tensorflow_gradients(model, x, selected, loss_of):
    import tensorflow as tf

    created = []
    with tf.GradientTape() as tape:

        def perturbations_for(name, rnn, inputs):
            perturbations = _zero_perturbations(rnn, inputs)
            tape.watch(perturbations)
            created.extend((name, p) for p in perturbations)
            return perturbations

        y_pred, records, highways = replayed_run(model, x, selected, perturbations_for)
        loss = loss_of(y_pred)
    grads = tape.gradient(loss, [p for _, p in created]) if created else []
    return records, highways, created, grads


def _torch_gradients(model, x, selected, loss_of):
    import torch

    created = []

    def perturbations_for(name, rnn, inputs):
        perturbations = [p.requires_grad_(True) for p in _zero_perturbations(rnn, inputs)]
        created.extend((name, p) for p in perturbations)
        return perturbations

    y_pred, records, highways = replayed_run(model, x, selected, perturbations_for)
    loss = loss_of(y_pred)
    grads = (
        torch.autograd.grad(loss, [p for _, p in created], allow_unused=True)
        if created
        else []
    )
    return records, highways, created, grads


def _jax_gradients(model, x, selected, loss_of):
    import jax

    # jax.grad differentiates a function of the perturbations, whose shapes
    # come from a first, unperturbed run.
    created = []
    _, records, highways = replayed_run(model, x, selected)
    for name, rnn, run, _ in records:
        batch = ops.shape(run["outputs"][0])[0]
        created.extend(
            (name, ops.zeros((batch, len(run["outputs"]), width), dtype=run["outputs"][0].dtype))
            for width in hidden_widths(rnn.cell)
        )

    def loss_fn(perturbations):
        remaining = iter(perturbations)

        def perturbations_for(name, rnn, inputs):
            return [next(remaining) for _ in state_slots(rnn.cell)[0]]

        y_pred, _, _ = replayed_run(model, x, selected, perturbations_for)
        return loss_of(y_pred)

    grads = jax.grad(loss_fn)([p for _, p in created]) if created else []
    return records, highways, created, grads


_DIFFERENTIATE = {
    "tensorflow": _tensorflow_gradients,
    "torch": _torch_gradients,
    "jax": _jax_gradients,
}


def replay_with_hidden_gradients(model, x, y, sample_weight, selected):
    """One replayed run of `model` on (x, y), differentiated.

    Returns (records, highways, gradients): the replay's records and
    Highway calls (see `replay.replayed_run`) and a dict name -> one float64
    array (batch, T, units) per level: dL/dh_t, t in input order.
    """
    backend = keras.backend.backend()
    if backend not in _DIFFERENTIATE:
        raise ValueError(
            "The gradient flow supports the tensorflow, jax and torch "
            f"backends; the current backend is {backend!r}."
        )

    def loss_of(y_pred):
        return model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )

    records, highways, created, grads = _DIFFERENTIATE[backend](model, x, selected, loss_of)
    gradients = {}
    for (name, perturbation), grad in zip(created, grads):
        if grad is None:
            grad = np.zeros(tuple(perturbation.shape))
        gradients.setdefault(name, []).append(
            ops.convert_to_numpy(grad).astype("float64")
        )
    return records, highways, gradients


def flow_norms(gradients):
    """Dict name -> array (levels, T): ||dL/dh_t|| over batch and units."""
    return {
        name: np.stack([np.sqrt((g**2).sum(axis=(0, 2))) for g in levels])
        for name, levels in gradients.items()
    }


def gradient_flow(model, x, y, sample_weight=None, layers=None):
    """||dL/dh_t|| for every step t of every recurrent layer of `model`.

    Method: the model is run on `x` with each probed layer recomputed by
    its own cell, step by step, and a zero perturbation tensor e_t added to
    the hidden state h_t of each step (for stacks, to the h_t of every
    level) wherever h_t goes: into the next step and, when it is the
    layer's output, out of the layer. The loss L is the model's compiled
    loss (`model.compute_loss`, as in training, without dropout) on (x, y);
    its gradient with respect to e_t is exactly dL/dh_t, all paths
    included. Zero perturbations leave every number unchanged.

    For a stack (several levels inside one step), a cell that is a
    `PerturbableStack` (`DepthGatedLSTMCell`, `GridLSTMCell`: a
    `perturbed_step(projected, states, hidden_perturbations)` method) adds
    e_k to level k's h_t where it computes it, so the curve of every level
    is the full dL/dh^k_t, the path up through the levels above at the same
    step included. For any other stacked cell the probe only sees the
    states that leave the step, so e_t of a level is added to that level's
    h_t as it goes into the next step: the curve of a lower level is then
    dL/dh_t along the time path only (0 at the last step when the loss
    reads only the top).

    Args:
        model: A compiled Sequential or functional model.
        x, y, sample_weight: One batch.
        layers: Optional list of layer names, paths or layers to probe;
            default all readable recurrent layers.

    Returns:
        A dict name -> array (levels, T): the Frobenius norm over batch and
        units of dL/dh_t, t in input order (see `keras_gated.probe` for
        backward layers). Names as in `gate_activations`.

    Works on the TensorFlow, JAX and PyTorch backends (differentiated with
    tf.GradientTape, jax.grad, torch.autograd.grad).
    """
    sample_weight = None if sample_weight is None else as_tensors(sample_weight)
    _, _, gradients = replay_with_hidden_gradients(
        model, as_tensors(x), as_tensors(y), sample_weight, selector(layers)
    )
    return flow_norms(gradients)
