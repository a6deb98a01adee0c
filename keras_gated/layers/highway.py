"""Highway layer (Srivastava, Greff & Schmidhuber 2015, "Training Very Deep Networks")."""

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_gated.layers.base import check_units
from keras_gated.layers.base import get_activation
from keras_gated.layers.base import get_initializer

CARRY_GATES = ("coupled", "free")


@keras.saving.register_keras_serializable(package="keras_gated")
class Highway(keras.layers.Layer):
    """Dense layer with an adaptive gate between transforming and carrying.

        T(x) = σ(W_T x + b_T)                          # transform gate
        y    = T(x) ⊙ act(W_H x + b_H) + C(x) ⊙ x

    with the carry gate C(x) = 1 - T(x) (`carry_gate="coupled"`, the
    paper's default) or its own C(x) = σ(W_C x + b_C) (`carry_gate="free"`).
    The transform bias b_T starts negative (-2 by default) so that a deep
    stack starts close to the identity and trains; the paper used -1 to -3.

    The output width equals the input width, which the layer infers; it
    works on the last axis of inputs of any rank >= 2.

    Weights, in order: `kernel` (W_H), `bias` (b_H), `transform_kernel`
    (W_T), `transform_bias` (b_T), and for a free carry gate
    `carry_kernel` (W_C), `carry_bias` (b_C).

    Args:
        units: Optional width; if given it must equal the input width.
        activation: act, the transform's activation. Default: `"relu"`.
        carry_gate: `"coupled"` (C = 1 - T) or `"free"`.
        kernel_initializer, bias_initializer: for W_H and b_H.
        transform_kernel_initializer: for W_T. Default: `"glorot_uniform"`.
        transform_bias_initializer: for b_T, an initializer or a number.
            Default: -2.0.
        carry_kernel_initializer: for W_C. Default: `"glorot_uniform"`.
        carry_bias_initializer: for b_C, an initializer or a number.
            Default: 2.0 (a free gate also starts near the identity).
        kernel_regularizer, bias_regularizer, transform_kernel_regularizer,
        transform_bias_regularizer, carry_kernel_regularizer,
        carry_bias_regularizer, and the matching `*_constraint` arguments.

    Example:

    >>> x = keras.Input((64,))
    >>> y = x
    >>> for _ in range(10):
    ...     y = Highway()(y)
    >>> keras.Model(x, y).output_shape
    (None, 64)
    """

    def __init__(
        self,
        units=None,
        activation="relu",
        carry_gate="coupled",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        transform_kernel_initializer="glorot_uniform",
        transform_bias_initializer=-2.0,
        carry_kernel_initializer="glorot_uniform",
        carry_bias_initializer=2.0,
        kernel_regularizer=None,
        bias_regularizer=None,
        transform_kernel_regularizer=None,
        transform_bias_regularizer=None,
        carry_kernel_regularizer=None,
        carry_bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        transform_kernel_constraint=None,
        transform_bias_constraint=None,
        carry_kernel_constraint=None,
        carry_bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = None if units is None else check_units(units)
        self.activation = get_activation(activation, "activation")
        if carry_gate not in CARRY_GATES:
            raise ValueError(
                f"`carry_gate` must be one of {CARRY_GATES}: 'coupled' uses "
                f"C = 1 - T, 'free' learns its own C. Received: "
                f"carry_gate={carry_gate!r}"
            )
        self.carry_gate = carry_gate
        self._weight_args = {}
        for weight, initializer, regularizer, constraint in (
            ("kernel", kernel_initializer, kernel_regularizer, kernel_constraint),
            ("bias", bias_initializer, bias_regularizer, bias_constraint),
            ("transform_kernel", transform_kernel_initializer,
             transform_kernel_regularizer, transform_kernel_constraint),
            ("transform_bias", transform_bias_initializer,
             transform_bias_regularizer, transform_bias_constraint),
            ("carry_kernel", carry_kernel_initializer,
             carry_kernel_regularizer, carry_kernel_constraint),
            ("carry_bias", carry_bias_initializer,
             carry_bias_regularizer, carry_bias_constraint),
        ):
            self._weight_args[weight] = {
                "initializer": get_initializer(initializer),
                "regularizer": regularizers.get(regularizer),
                "constraint": constraints.get(constraint),
            }
        self.supports_masking = True

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "carry_gate": self.carry_gate,
        }
        for weight, args in self._weight_args.items():
            config[f"{weight}_initializer"] = initializers.serialize(
                args["initializer"]
            )
            config[f"{weight}_regularizer"] = regularizers.serialize(
                args["regularizer"]
            )
            config[f"{weight}_constraint"] = constraints.serialize(
                args["constraint"]
            )
        return {**super().get_config(), **config}

    def build(self, input_shape):
        width = input_shape[-1]
        if len(input_shape) < 2 or width is None:
            raise ValueError(
                "Highway needs inputs of shape (..., features) with a known "
                f"feature width; received shape {tuple(input_shape)}."
            )
        if self.units is not None and self.units != width:
            raise ValueError(
                f"Highway keeps the width of its input, so `units` must equal "
                f"the input width {width}; received units={self.units}. Leave "
                "`units` out, or put a Dense layer before the Highway layer to "
                "change the width."
            )
        self.units = int(width)
        weights = ["kernel", "bias", "transform_kernel", "transform_bias"]
        if self.carry_gate == "free":
            weights += ["carry_kernel", "carry_bias"]
        for weight in weights:
            shape = (width, width) if weight.endswith("kernel") else (width,)
            setattr(
                self,
                weight,
                self.add_weight(shape=shape, name=weight, **self._weight_args[weight]),
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: width})

    def transform_gate(self, inputs):
        """T(x), the fraction of each unit that is transformed."""
        return ops.sigmoid(ops.matmul(inputs, self.transform_kernel) + self.transform_bias)

    def carry(self, inputs, transform):
        """C(x): 1 - T(x) for a coupled gate, else its own sigmoid gate."""
        if self.carry_gate == "coupled":
            return 1.0 - transform
        return ops.sigmoid(ops.matmul(inputs, self.carry_kernel) + self.carry_bias)

    def call(self, inputs):
        transform = self.transform_gate(inputs)
        hidden = self.activation(ops.matmul(inputs, self.kernel) + self.bias)
        return transform * hidden + self.carry(inputs, transform) * inputs

    def compute_output_shape(self, input_shape):
        return input_shape
