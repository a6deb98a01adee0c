"""Backend-agnostic pieces of the masking, stateful and fuzz tests.

Imported by the TensorFlow tests and by `edge_script.py`, which runs the same
checks on JAX and PyTorch in a subprocess (Keras fixes its backend at import).

`PATHS` is the one place that names the computations compared: every path
must give the numbers of every other. Add a variant here (e.g.
`"generic": {"fast_path": False}`) and every test compares it too.
"""

import keras
import numpy as np
from keras import ops

import keras_gated as kg
from gated_cases import RNN_CASES
from gated_cases import RNN_CLASSES

PATHS = {"fast": {}, "generic": {"fast_path": False}, "cell": {"fused": False}}
UNITS, FEATURES = 4, 3
ATOL = 1e-5

# Every layer of gated_cases plus the stacks.
LAYER_CASES = [(p.id, p.values[0], p.values[2]) for p in RNN_CASES] + [
    ("depth-gated-2", kg.DepthGatedLSTM, {"num_layers": 2}),
    ("grid-2", kg.GridLSTM, {"depth": 2}),
]
LAYER_IDS = [case[0] for case in LAYER_CASES]
# On JAX and PyTorch (a subprocess, slower): one configuration per class.
BACKEND_CASES = [(p.id, p.values[0], p.values[2]) for p in RNN_CLASSES] + LAYER_CASES[-2:]


def _mask(batch, steps, fill):
    mask = np.ones((batch, steps), bool)
    fill(mask)
    return mask


def _fully_masked(m):
    m[0] = False


def _left(m):
    m[:, :2] = False
    m[-1] = True


def _right(m):
    m[:, -2:] = False
    m[0] = True


# name -> (batch, steps, mask or None); row 0 of "fully-masked" is all False.
MASKS = {
    "fully-masked-row": (3, 5, _mask(3, 5, _fully_masked)),
    "left-padded": (3, 5, _mask(3, 5, _left)),
    "right-padded": (3, 5, _mask(3, 5, _right)),
    "all-true": (3, 5, np.ones((3, 5), bool)),
    "batch-of-one": (1, 5, np.array([[0, 1, 1, 1, 0]], bool)),
    "length-one": (3, 1, np.array([[1], [0], [1]], bool)),
}


def make_layer(layer_class, kwargs, path, **more):
    layer = layer_class(
        UNITS, return_sequences=True, return_state=True, **kwargs, **PATHS[path], **more
    )
    return layer


def set_weights(layer, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    values = [scale * rng.standard_normal(w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(values)
    return values


def data(batch, steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, steps, FEATURES)).astype("float32")


def loss_weights(outputs):
    """Fixed, uneven weights so every output element matters to the loss."""
    return [np.linspace(0.5, 1.5, int(np.prod(o.shape))).reshape(o.shape).astype("float32")
            for o in outputs]


def numpy(tensors):
    # float32 for comparisons: a mixed-precision layer's outputs are half types.
    return [
        np.asarray(ops.convert_to_numpy(ops.cast(t, "float32")))
        for t in keras.tree.flatten(tensors)
    ]


def relative_difference(expected, actual):
    """The largest difference of the arrays, each relative to its largest value (at least 1)."""
    return max(
        float(np.abs(a - b).max()) / max(1.0, float(np.abs(a).max())) if a.size else 0.0
        for a, b in zip(expected, actual)
    )


def assert_close(expected, actual, what, atol=ATOL):
    assert len(expected) == len(actual), (what, len(expected), len(actual))
    for k, (a, b) in enumerate(zip(expected, actual)):
        assert np.all(np.isfinite(b)), f"{what}[{k}] not finite"
        scale = max(1.0, float(np.abs(a).max()) if a.size else 1.0)
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        assert diff <= atol * scale, f"{what}[{k}]: max difference {diff:.3g}"


def values_and_gradients(layer, x, mask, training=True, initial_state=None):
    """Outputs, final states and gradients w.r.t. inputs and every weight, on any backend."""
    backend = keras.backend.backend()
    weights = list(layer.trainable_weights)
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, mask=mask, training=training, initial_state=initial_state)
            loss = sum(
                tf.reduce_sum(tf.cast(o, "float32") * w)
                for o, w in zip(outputs, loss_weights(outputs))
            )
        sources = [x] + weights
        grads = tape.gradient(loss, sources)
        # A source the loss does not reach (no gradient) counts as zeros.
        return numpy(outputs), [np.zeros(s.shape, s.dtype.name if hasattr(s.dtype, "name") else s.dtype)
                                if g is None else np.asarray(g) for s, g in zip(sources, grads)]
    if backend == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        outputs = layer(xt, mask=None if mask is None else torch.tensor(mask),
                        training=training, initial_state=initial_state)
        loss = sum((o.float() * torch.tensor(w)).sum() for o, w in zip(outputs, loss_weights(outputs)))
        sources = [xt] + [w.value for w in weights]
        # A weight the step never reads (a 1-level Grid's depth kernel, say)
        # has a zero gradient, as TensorFlow and JAX report it.
        grads = torch.autograd.grad(loss, sources, allow_unused=True)
        return numpy(outputs), [
            np.zeros(tuple(s.shape), "float64" if s.dtype == torch.float64 else "float32")
            if g is None else g.detach().cpu().numpy()
            for g, s in zip(grads, sources)
        ]
    import jax

    trainable = [w.value for w in weights]
    others = [v.value for v in layer.non_trainable_variables]

    def loss_fn(x, trainable):
        if layer.compute_dtype != layer.variable_dtype:
            # `stateless_call` runs `call`, without the autocast of `__call__`
            # that a mixed-precision policy needs.
            mapping = list(zip(weights, trainable)) + list(zip(layer.non_trainable_variables, others))
            with keras.StatelessScope(state_mapping=mapping):
                outputs = layer(x, mask=mask, training=training, initial_state=initial_state)
        else:
            outputs, _ = layer.stateless_call(trainable, others, x, mask=mask, training=training,
                                              initial_state=initial_state)
        loss = sum((o.astype("float32") * w).sum() for o, w in zip(outputs, loss_weights(outputs)))
        return loss, outputs

    (_, outputs), (gx, gw) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
        x, trainable)
    return numpy(outputs), [np.asarray(gx)] + [np.asarray(g) for g in gw]


def fast_path_checks(cases, compare):
    """The four comparisons of a backend's fast loop with its generic one, per case.

    `cases` are `(case_id, layer_class, kwargs)`; `compare(layer_class,
    kwargs, **options)` is the backend script's comparison. Returns
    `(name, function, args, options)` checks: a mask, initial states with
    `go_backwards`, recurrent dropout with input dropout, inference.
    """
    checks = []
    for case_id, layer_class, kwargs in cases:
        checks += [
            (f"{case_id} mask", compare, (layer_class, kwargs), {}),
            (f"{case_id} initial state backwards", compare, (layer_class, kwargs),
             {"initial": True, "go_backwards": True}),
            (f"{case_id} recurrent dropout", compare, (layer_class, kwargs),
             {"recurrent_dropout": 0.3, "dropout": 0.2, "seed": 2}),
            (f"{case_id} inference", compare, (layer_class, kwargs), {"training": False}),
        ]
    return checks


# Under a mixed-precision policy, the largest difference between the fast
# and the generic loop allowed, relative to the largest value (as
# `assert_close`): the two round to the half type (bfloat16: 8 bits,
# float16: 11) at different places, and a 2-level layer-normalised stack
# differs by up to 0.09 (bfloat16) and 0.008 (float16). Against float32 the
# fast loop must be as close as the generic one (within 25%), or within
# this. (A clip on c_t that values sit near flips with the rounding: the
# cases clip wide.)
MIXED_PRECISION_ATOL = {"mixed_bfloat16": 0.15, "mixed_float16": 0.015}

# One case per kind of step the loops run: a one-layer cell of each class,
# the options, a stack with all of them, the Grid.
MIXED_PRECISION_CASES = [
    ("lstm", kg.LSTM, {}),
    ("peephole", kg.PeepholeLSTM, {}),
    ("coupled", kg.CoupledLSTM, {}),
    ("untied", kg.UntiedLSTM, {}),
    ("depth-gated-1", kg.DepthGatedLSTM, {}),
    ("lstm-layer-norm-projection-wide-clip", kg.LSTM,
     {"layer_norm": True, "projection_units": 3, "cell_clip": 5.0}),
    ("peephole-zoneout", kg.PeepholeLSTM, {"zoneout": (0.3, 0.2)}),
    ("depth-gated-2-all-options", kg.DepthGatedLSTM,
     {"num_layers": 2, "layer_norm": True, "zoneout": (0.3, 0.2), "projection_units": 3,
      "cell_clip": 5.0}),
    ("depth-gated-2-layer-norm-projection", kg.DepthGatedLSTM,
     {"num_layers": 2, "layer_norm": True, "projection_units": 3}),
    ("grid-2", kg.GridLSTM, {"depth": 2}),
]


def check_mixed_precision(layer_class, kwargs, policy):
    """The fast loop under `policy`: it runs, computes in the half type with
    float32 weights, gives the generic loop's values and gradients (under
    the same policy) within `MIXED_PRECISION_ATOL`, and is as close to the
    float32 computation as the generic loop (within 25%) or within that
    tolerance. Zoneout's masks are drawn in the compute dtype, so with
    zoneout only the two loops under the policy are compared."""
    batch, steps = 3, 5
    x = data(batch, steps)
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    results, paths = {}, {}
    try:
        for name, layer_policy, path in (
            ("float32", "float32", "generic"),
            ("fast", policy, "fast"),
            ("generic", policy, "generic"),
        ):
            keras.mixed_precision.set_global_policy(layer_policy)
            layer = make_layer(layer_class, kwargs, path, seed=4)
            layer.build((batch, steps, x.shape[-1]))
            set_weights(layer)
            keras.utils.set_random_seed(3)
            results[name] = values_and_gradients(layer, x, mask, training=True)
            paths[name] = layer.last_call_path
            if name == "fast":
                half = keras.backend.standardize_dtype(layer.compute_dtype)
                assert half == policy.split("_")[1], (half, policy)
                assert all(w.dtype == "float32" for w in layer.weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert paths["fast"] == "fast" and paths["generic"] == "generic", paths
    atol = MIXED_PRECISION_ATOL[policy]
    for part, what in ((0, "values"), (1, "gradients")):
        assert_close(
            results["generic"][part], results["fast"][part],
            f"{policy} fast against generic: {what}", atol=atol,
        )
        if kwargs.get("zoneout"):
            continue
        fast_error = relative_difference(results["float32"][part], results["fast"][part])
        generic_error = relative_difference(results["float32"][part], results["generic"][part])
        assert fast_error <= max(atol, 1.25 * generic_error), (
            f"{policy} {what}: the fast loop is {fast_error:.3g} from float32, "
            f"the generic loop {generic_error:.3g}"
        )


def mixed_precision_checks(case_ids=None):
    """`(name, function, args, options)` checks of `check_mixed_precision` for
    the backend scripts: the cases `case_ids` (all if None) under
    mixed_bfloat16, a one-layer cell and a stack under mixed_float16 too
    (TensorFlow's tests run every case under both)."""
    checks = []
    for case_id, layer_class, kwargs in MIXED_PRECISION_CASES:
        if case_ids is not None and case_id not in case_ids:
            continue
        policies = ["mixed_bfloat16"]
        if case_id in ("peephole", "depth-gated-2-all-options"):
            policies.append("mixed_float16")
        checks += [
            (f"{case_id} {policy}", check_mixed_precision, (layer_class, kwargs, policy), {})
            for policy in policies
        ]
    return checks


def edge_results(layer_class, kwargs, mask_name, go_backwards):
    """{path: (values, gradients)} for one layer, one mask pattern."""
    batch, steps, mask = MASKS[mask_name]
    x = data(batch, steps)
    results = {}
    for path in PATHS:
        layer = make_layer(layer_class, kwargs, path, go_backwards=go_backwards)
        layer.build((batch, steps, FEATURES))
        set_weights(layer)
        keras.utils.set_random_seed(3)
        results[path] = values_and_gradients(layer, x, mask)
        if path == "fast" and layer.fast_path_unavailable_reason() is None:
            assert layer.last_call_path == "fast", f"the fast path did not run: {layer.last_call_path}"
    return results


def check_edges(layer_class, kwargs, mask_name, go_backwards):
    results = edge_results(layer_class, kwargs, mask_name, go_backwards)
    reference = results["cell"]
    for path, (values, grads) in results.items():
        assert_close(reference[0], values, f"{path} values")
        assert_close(reference[1], grads, f"{path} gradients")
        if mask_name == "fully-masked-row":
            # Keras: a row masked throughout keeps its initial (zero) states
            # and outputs; its inputs get zero gradient.
            for v in values:
                assert np.all(v[0] == 0.0), f"{path}: fully masked row not zero"
            assert np.all(grads[0][0] == 0.0), f"{path}: masked inputs get a gradient"


def stateful_batch_error(layer_class, kwargs):
    """The message of the error a stateful layer raises on a new batch size."""
    layer = layer_class(UNITS, stateful=True, **kwargs)
    layer(data(3, 4))
    try:
        layer(data(2, 4))
    except ValueError as error:
        message = str(error)
    else:
        raise AssertionError("no ValueError for batch 2 on states of batch 3")
    for text in ("batch of 3", "batch size of 2", "reset_states()", "batch_size="):
        assert text in message, (text, message)
    # reset_states() zeroes the states and the layer runs again at batch 3.
    layer.reset_states()
    assert all(np.all(v == 0) for v in numpy([s.value for s in layer.states]))
    layer(data(3, 4))
    return message
