"""What every LSTM-family cell of keras-gated does the same way.

A cell here is split in two halves so that its layer can run fast:

* `project_inputs(x)` computes the input half of every gate block,
  `W x + b`. It is one matrix product and works on a single step
  `(batch, D)` or on a whole sequence `(batch, T, D)`.
* `recurrent_step(projected_t, states)` does everything that depends on the
  previous state: `U h_{t-1}`, the peepholes and the gate non-linearities.

`GatedCell.call` chains the two for one step, which is what
`keras.layers.RNN(cell)` runs. `GatedRNN`, the base of this package's
layers, projects the whole sequence with one large product before the time
loop and then loops over `recurrent_step` only. Both paths run the same
`recurrent_step`, so they compute the same numbers.
"""

import contextlib
import inspect
import numbers
import re
import typing

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers
from keras import tree
from keras.layers import InputSpec

from keras_gated import _fast
from keras_gated._keras_private import DropoutRNNCell
from keras_gated._keras_private import rnn as backend_rnn
from keras_gated.backward import add_gradients  # noqa: F401  (cells import it from here)

GATE_NAMES = {
    "i": "input",
    "f": "forget",
    "c": "candidate",
    "o": "output",
    "z": "untied",
    "d": "depth",
    "g": "candidate",
}


def check_units(units, name="units"):
    """Raises a ValueError unless `units` is a positive integer.

    NumPy integers (e.g. from a hyperparameter grid) are accepted and
    returned as a Python int, so that configs stay JSON-serializable.
    """
    if (
        isinstance(units, bool)
        or not isinstance(units, numbers.Integral)
        or units <= 0
    ):
        raise ValueError(
            f"`{name}` must be a positive integer, the width of the layer's "
            f"state. Received: {name}={units!r}"
        )
    return int(units)


def check_rate(rate, name):
    """Raises a ValueError unless `rate` is a float in [0, 1)."""
    if (
        isinstance(rate, bool)
        or not isinstance(rate, numbers.Real)
        or not 0.0 <= rate < 1.0
    ):
        raise ValueError(
            f"`{name}` must be a float in [0, 1), the fraction of units to "
            f"drop. Received: {name}={rate!r}"
        )
    return float(rate)


def get_activation(identifier, name):
    """`keras.activations.get` with an error that names the argument."""
    try:
        return activations.get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Unknown activation for `{name}`: {identifier!r}. Pass the name "
            "of a Keras activation (e.g. 'tanh', 'sigmoid', 'hard_sigmoid', "
            f"'relu') or a callable. ({error})"
        ) from None


def get_initializer(identifier):
    """`keras.initializers.get` that also takes a plain number as a constant."""
    if isinstance(identifier, (int, float)) and not isinstance(identifier, bool):
        return initializers.Constant(float(identifier))
    return initializers.get(identifier)


def check_step_input(layer, inputs):
    """Raises a clear error when a cell receives the wrong feature width."""
    width = inputs.shape[-1]
    if len(inputs.shape) != 2:
        raise ValueError(
            f"{layer.__class__.__name__} '{layer.name}' takes one time step of "
            f"shape (batch, features); received shape {tuple(inputs.shape)}. "
            "To run it over a sequence wrap it in keras.layers.RNN."
        )
    if width is not None and width != layer.input_dim:
        raise ValueError(
            f"{layer.__class__.__name__} '{layer.name}' was built for inputs "
            f"with {layer.input_dim} features, but received an input of "
            f"shape {tuple(inputs.shape)} (expected (batch, {layer.input_dim}))."
        )


def _derivative_from_output(activation):
    """y ↦ activation'(x) for y = activation(x), when it exists; else None."""
    if activation is activations.sigmoid:
        return lambda y: y * (1.0 - y)
    if activation is activations.tanh:
        return lambda y: 1.0 - y * y
    if activation is activations.linear:
        return lambda y: ops.ones_like(y)
    return None


class Memory(typing.NamedTuple):
    """A step's new memory (`GatedCell.carry`): what the cell carries, and
    the parts of the state norm and the clip its backward step reads."""

    carried: typing.Any
    normalized: typing.Any = None  # x̂ of the update, with layer_norm
    inverse_deviation: typing.Any = None  # 1/σ of the update, with layer_norm
    clipped_from: typing.Any = None  # what the clip acted on


def _normalized(values, epsilon):
    """`(x̂, 1/σ)` of layer normalisation over the last axis (σ² with epsilon)."""
    mean = ops.mean(values, axis=-1, keepdims=True)
    centered = values - mean
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    inverse_deviation = ops.rsqrt(variance + epsilon)
    return centered * inverse_deviation, inverse_deviation


def _normalized_backward(d_normed, normalized, inverse_deviation, gamma):
    """dx for `y = γ x̂ + β`, from dy, x̂ and 1/σ (dγ = Σ dy ⊙ x̂, dβ = Σ dy)."""
    d_normalized = d_normed * gamma
    return inverse_deviation * (
        d_normalized
        - ops.mean(d_normalized, axis=-1, keepdims=True)
        - normalized * ops.mean(d_normalized * normalized, axis=-1, keepdims=True)
    )


def _check_zoneout(zoneout):
    """`(z_c, z_h)` from a rate or a pair of rates in [0, 1); a ValueError otherwise."""
    rates = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout, zoneout)
    if len(rates) != 2 or not all(
        isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0.0 <= rate < 1.0
        for rate in rates
    ):
        raise ValueError(
            "`zoneout` must be a rate in [0, 1), the probability that a unit "
            "keeps its previous value, for both the memory and the output, or "
            f"a pair (z_c, z_h) of such rates. Received: zoneout={zoneout!r}"
        )
    return tuple(float(rate) for rate in rates)


def _check_flag(value, name):
    """Raises a ValueError unless `value` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def _check_positive(value, name):
    """Raises a ValueError unless `value` is a positive number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(
            f"`{name}` must be a positive number. Received: {name}={value!r}"
        )
    return float(value)


class GatedCell(keras.layers.Layer, DropoutRNNCell):
    """Base class of the LSTM-family cells: gate blocks, dropout, config.

    A subclass names its gate blocks and writes `recurrent_step`:

    * `kernel_gates`: the blocks of `kernel` (D x kH) and `bias` (kH), in
      order, one letter each (e.g. `"ifco"`, as `keras.layers.LSTMCell`).
    * `recurrent_gates`: the blocks of `recurrent_kernel` (H x rH); a block
      missing here gets no `U h_{t-1}` term.
    * `peephole_choices`: the gates that may peep at the memory cell; the
      ones chosen get a weight vector `{gate}_gate_peephole_weights`.
    * `gated_step(projected, states, training)`: the cell's equations; it
      returns `(h_t, new_states, gates)`, where `gates` maps gate names
      ("input", "forget", "output", ...) to their activations, so that
      tools can look inside (see `keras_gated.probe`) at no cost to training.

    Args:
        units: Positive integer, width of the hidden state h and memory c.
        activation: φ, applied to the candidate and the memory cell output.
            Default: `"tanh"`.
        recurrent_activation: σ, the gate activation. Default: `"sigmoid"`.
        use_bias: Whether the gate blocks have a bias. Default: `True`.
        kernel_initializer: Initializer of `kernel`. Default:
            `"glorot_uniform"`.
        recurrent_initializer: Initializer of `recurrent_kernel`. Default:
            `"orthogonal"`.
        bias_initializer: Initializer of `bias`. Default: `"zeros"`.
        unit_forget_bias: If `True`, the forget-gate block of the bias starts
            at 1 (Jozefowicz et al. 2015), as in `keras.layers.LSTMCell`.
        peepholes: The gates that peep at the memory cell, a string or a
            sequence of gate letters among `peephole_choices`.
        peephole_initializer: Initializer of the peephole vectors. Default:
            `"glorot_uniform"`, as TensorFlow's old `PeepholeLSTMCell`.
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        peephole_regularizer: Regularizers of those weights.
        kernel_constraint, recurrent_constraint, bias_constraint,
        peephole_constraint: Constraints of those weights.
        dropout: Float in [0, 1): fraction of the input units dropped (one
            mask per sequence, as `keras.layers.LSTMCell`).
        recurrent_dropout: Float in [0, 1): fraction of the units of
            h_{t-1} dropped before the recurrent products.
        seed: Random seed for dropout.
    """

    kernel_gates = "ifco"
    recurrent_gates = "ifco"
    peephole_choices = ""
    default_peepholes = ""
    # True when the step is `preactivation_step` after the one product
    # `recurrent_product` (the default `gated_step`): a fused loop
    # (`keras_gated._fast`) can then compute `U h_{t-1}` itself, run
    # `preactivation_step` on the full pre-activations and go backwards
    # with `step_backward` (or automatically, for a cell without one). A
    # cell that uses `recurrent_kernel` any other way must leave this False.
    deferred_recurrent_product = False
    # Whether the cell takes the LSTM options (layer_norm, projection_units,
    # cell_clip, zoneout): its equations then run through `carry` and
    # `hidden_state`, and its backward step is `memory_backward`.
    supports_lstm_options = True

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        peepholes=None,
        peephole_initializer="glorot_uniform",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        peephole_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        peephole_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        layer_norm=False,
        norm_epsilon=1e-3,
        norm_gamma_initializer="ones",
        norm_beta_initializer="zeros",
        projection_units=None,
        projection_initializer="glorot_uniform",
        projection_regularizer=None,
        projection_constraint=None,
        cell_clip=None,
        zoneout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.layer_norm = _check_flag(layer_norm, "layer_norm")
        self.norm_epsilon = _check_positive(norm_epsilon, "norm_epsilon")
        self.norm_gamma_initializer = get_initializer(norm_gamma_initializer)
        self.norm_beta_initializer = get_initializer(norm_beta_initializer)
        self.projection_units = (
            None if projection_units is None
            else check_units(projection_units, "projection_units")
        )
        self.projection_initializer = get_initializer(projection_initializer)
        self.projection_regularizer = regularizers.get(projection_regularizer)
        self.projection_constraint = constraints.get(projection_constraint)
        self.cell_clip = None if cell_clip is None else _check_positive(cell_clip, "cell_clip")
        self.zoneout = _check_zoneout(zoneout)
        self._check_options_supported()
        # Made by `build_options`.
        self.norms = {}
        self.projection_kernel = None
        self.activation = get_activation(activation, "activation")
        self.recurrent_activation = get_activation(
            recurrent_activation, "recurrent_activation"
        )
        self.use_bias = bool(use_bias)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.peepholes = self._check_peepholes(peepholes)

        self.kernel_initializer = get_initializer(kernel_initializer)
        self.recurrent_initializer = get_initializer(recurrent_initializer)
        self.bias_initializer = get_initializer(bias_initializer)
        self.peephole_initializer = get_initializer(peephole_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.peephole_regularizer = regularizers.get(peephole_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.peephole_constraint = constraints.get(peephole_constraint)

        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)

        self.state_size = [self.output_units, self.units]
        self.output_size = self.output_units

    @property
    def output_units(self):
        """Width of h, the output and what the recurrent kernel reads: P or H."""
        return self.projection_units or self.units

    def _check_options_supported(self):
        """Raises a ValueError for an option this cell does not have (yet)."""
        if self.supports_lstm_options:
            return
        chosen = [
            name for name, value in (
                ("layer_norm", self.layer_norm),
                ("projection_units", self.projection_units),
                ("cell_clip", self.cell_clip),
                ("zoneout", any(self.zoneout)),
            ) if value
        ]
        if chosen:
            raise ValueError(
                f"{self.__class__.__name__} does not take {', '.join(chosen)} yet: "
                "the LSTM options (docs/options.md) apply to LSTMCell, "
                "PeepholeLSTMCell, CoupledLSTMCell, UntiedLSTMCell and "
                "DepthGatedLSTMCell. Leave "
                f"{' and '.join(chosen)} at the default or use one of those cells."
            )

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(
                self.recurrent_activation
            ),
            "use_bias": self.use_bias,
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(
                self.recurrent_regularizer
            ),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(
                self.recurrent_constraint
            ),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        if self.supports_lstm_options:
            config.update(
                {
                    "layer_norm": self.layer_norm,
                    "norm_epsilon": self.norm_epsilon,
                    "norm_gamma_initializer": initializers.serialize(
                        self.norm_gamma_initializer
                    ),
                    "norm_beta_initializer": initializers.serialize(
                        self.norm_beta_initializer
                    ),
                    "projection_units": self.projection_units,
                    "projection_initializer": initializers.serialize(
                        self.projection_initializer
                    ),
                    "projection_regularizer": regularizers.serialize(
                        self.projection_regularizer
                    ),
                    "projection_constraint": constraints.serialize(
                        self.projection_constraint
                    ),
                    "cell_clip": self.cell_clip,
                    "zoneout": list(self.zoneout),
                }
            )
        if self.peephole_choices:
            config.update(
                {
                    "peepholes": self.peepholes,
                    "peephole_initializer": initializers.serialize(
                        self.peephole_initializer
                    ),
                    "peephole_regularizer": regularizers.serialize(
                        self.peephole_regularizer
                    ),
                    "peephole_constraint": constraints.serialize(
                        self.peephole_constraint
                    ),
                }
            )
        return {**super().get_config(), **config}

    def _check_peepholes(self, peepholes):
        received = peepholes
        if peepholes is None:
            peepholes = self.default_peepholes
        if isinstance(peepholes, bool):
            peepholes = self.peephole_choices if peepholes else ""
        if isinstance(peepholes, str):
            peepholes = tuple(peepholes)
        try:
            chosen = tuple(peepholes)
        except TypeError:
            chosen = (peepholes,)
        unknown = [g for g in chosen if g not in tuple(self.peephole_choices)]
        if unknown or len(set(chosen)) != len(chosen):
            allowed = tuple(self.peephole_choices) or "none"
            raise ValueError(
                f"Unknown or repeated peephole gate in `peepholes`: "
                f"{received!r}. {self.__class__.__name__} accepts a subset of "
                f"the gate letters {allowed} (e.g. peepholes={tuple(self.peephole_choices)!r})."
            )
        # Canonical order, so that weights are always created i, f, o.
        return tuple(g for g in self.peephole_choices if g in chosen)

    # -- weights ---------------------------------------------------------

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{self.__class__.__name__} needs a known feature width; "
                f"received input shape {tuple(input_shape)}."
            )
        self.input_dim = int(input_dim)
        H = self.units
        self.kernel = self.add_weight(
            shape=(self.input_dim, len(self.kernel_gates) * H),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.output_units, len(self.recurrent_gates) * H),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.build_extra_kernels()
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(len(self.kernel_gates) * H,),
                name="bias",
                initializer=self._gate_bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.peephole_weights = {
            gate: self.add_weight(
                shape=(H,),
                name=f"{GATE_NAMES[gate]}_gate_peephole_weights",
                initializer=self.peephole_initializer,
                regularizer=self.peephole_regularizer,
                constraint=self.peephole_constraint,
            )
            for gate in self.peepholes
        }
        for gate, weight in self.peephole_weights.items():
            setattr(self, f"{GATE_NAMES[gate]}_gate_peephole_weights", weight)
        self.build_options()
        self.built = True

    def build_extra_kernels(self):
        """Hook for weights that sit between `recurrent_kernel` and `bias`."""

    def build_options(self):
        """The weights of the LSTM options, after the cell's own (tfa's order).

        `layer_norm`: `kernel_norm_gamma`, `kernel_norm_beta` (kH),
        `recurrent_norm_gamma`, `recurrent_norm_beta` (rH), `state_norm_gamma`,
        `state_norm_beta` (H); `projection_units`: `projection_kernel` (H x P).
        """
        self.norms = {}
        if self.layer_norm:
            widths = {
                "kernel": len(self.kernel_gates) * self.units,
                "recurrent": len(self.recurrent_gates) * self.units,
                "state": self.units,
            }
            for place, width in widths.items():
                self.norms[place] = (
                    self.add_weight(
                        shape=(width,), name=f"{place}_norm_gamma",
                        initializer=self.norm_gamma_initializer,
                    ),
                    self.add_weight(
                        shape=(width,), name=f"{place}_norm_beta",
                        initializer=self.norm_beta_initializer,
                    ),
                )
        self.projection_kernel = None
        if self.projection_units:
            self.projection_kernel = self.add_weight(
                shape=(self.units, self.projection_units),
                name="projection_kernel",
                initializer=self.projection_initializer,
                regularizer=self.projection_regularizer,
                constraint=self.projection_constraint,
            )

    def _gate_bias_initializer(self, shape, dtype=None):
        H = self.units
        blocks = []
        for gate in self.kernel_gates:
            if gate == "f" and self.unit_forget_bias:
                blocks.append(ops.ones((H,), dtype=dtype))
            else:
                blocks.append(self.bias_initializer((H,), dtype=dtype))
        return ops.concatenate(blocks, axis=0)

    # -- computation -----------------------------------------------------

    def project_inputs(self, inputs):
        """The input half of every gate block, `W x + b`, for a step or a sequence."""
        projected = ops.matmul(inputs, self.kernel)
        if self.layer_norm:
            return self.normalized_input(projected)[0]
        if self.use_bias:
            projected = projected + self.bias
        return projected

    def normalized_input(self, product):
        """`(LN_x(W x) + β_h + b, x̂, 1/σ)` from the input product `W x`, under `layer_norm`.

        LN_h's beta is a constant of every step: added here, with the
        inputs, where a loop can take its gradient as one sum. x̂ and 1/σ
        are what `normalized_input_backward` reads.
        """
        normalized, inverse_deviation = _normalized(product, self.norm_epsilon)
        gamma, beta = self.norms["kernel"]
        projected = self._add_recurrent(normalized * gamma + beta, self.norms["recurrent"][1])
        if self.use_bias:
            projected = projected + self.bias
        return projected, normalized, inverse_deviation

    def normalized_input_weights(self):
        """The weight vectors `normalized_input` reads: LN_x's gamma and beta, LN_h's beta, b."""
        return [*self.norms["kernel"], self.norms["recurrent"][1]] + (
            [self.bias] if self.use_bias else []
        )

    def normalized_input_backward(self, d_projected, normalized, inverse_deviation):
        """`(d(W x), sums)`: the gradient through `normalized_input`, and the
        gradients of `normalized_input_weights` summed over the batch."""
        gamma, _ = self.norms["kernel"]
        d_beta = ops.sum(d_projected, axis=0)
        sums = [
            ops.sum(d_projected * normalized, axis=0),
            d_beta,
            ops.sum(self.recurrent_columns(d_projected), axis=0),
        ] + ([d_beta] if self.use_bias else [])
        return _normalized_backward(d_projected, normalized, inverse_deviation, gamma), sums

    def recurrent_norm_backward(self, norm_columns, d_recurrent):
        """`(d(U h), γ_h's share)`: the gradient of the recurrent product
        through LN_h, from the columns `full_preactivations` puts after the
        gate blocks (x̂ and 1/σ) and the gradient of `LN_h(U h)`."""
        width = len(self.recurrent_gates) * self.units
        normalized, inverse_deviation = ops.split(norm_columns, [width], axis=-1)
        gamma, _ = self.norms["recurrent"]
        d_gamma = ops.sum(d_recurrent * normalized, axis=0)
        return _normalized_backward(d_recurrent, normalized, inverse_deviation, gamma), d_gamma

    #: Columns of the projected inputs that the cell's own equations read
    #: after its gate blocks, before zoneout's keep masks (the depth-gated
    #: cell's lower memory l_t: H); 0 for most cells.
    own_extra_width = 0

    @property
    def zoneout_width(self):
        """Columns of zoneout's keep masks after the gate blocks: H + P, or 0."""
        return self.units + self.output_units if any(self.zoneout) else 0

    @property
    def zoneout_levels(self):
        """How many layers' keep masks `project_sequence` draws: 1 (a stack: its layers)."""
        return 1

    def project_sequence(self, inputs, training=False):
        """`project_inputs(inputs)` and the per-step columns the step reads.

        With `zoneout`, the keep masks `[d_c ; d_h]` (H + P columns) follow
        the gate blocks: in training drawn for every step and unit from the
        cell's seed generator (`d ~ Bernoulli(z)`, 1 keeps the previous
        value), at inference the rates themselves (the expectation). The
        loops call this once for a whole batch-major sequence, before their
        time loop; `call` calls it for one step.
        """
        projected = self.project_inputs(inputs)
        if not any(self.zoneout):
            return projected
        rate_c, rate_h = self.zoneout
        rates = ops.concatenate(
            [ops.full((self.units,), rate_c, dtype=projected.dtype),
             ops.full((self.output_units,), rate_h, dtype=projected.dtype)]
            * self.zoneout_levels
        )
        shape = tuple(ops.shape(projected)[:-1]) + (self.zoneout_width * self.zoneout_levels,)
        if training:
            draws = keras.random.uniform(shape, dtype=projected.dtype, seed=self.seed_generator)
            keep = ops.cast(ops.less(draws, rates), projected.dtype)
        else:
            keep = ops.broadcast_to(rates, shape)
        return ops.concatenate([projected, keep], axis=-1)

    def zoneout_keep(self, preactivations):
        """`(d_c, d_h)`, the keep masks of a step from its pre-activations, or (None, None)."""
        if not any(self.zoneout):
            return None, None
        start = len(self.kernel_gates) * self.units + self.own_extra_width
        keep = preactivations[..., start : start + self.zoneout_width]
        return tuple(ops.split(keep, [self.units], axis=-1))

    def projection_weights(self):
        """`(kernel, bias)` such that `project_inputs(x) = x kernel + bias`, or None.

        The TensorFlow fast path uses it to take the projection into its
        custom gradient, where the gradients of `kernel`, `recurrent_kernel`
        and `bias` come from one product over all steps. `bias` may be None.
        A cell whose projection is not of that form returns None (the fast
        path then lets TensorFlow differentiate `project_inputs`), as does a
        cell with `layer_norm`, whose `LN_x(W x)` is no such product, or
        with `zoneout`, whose keep masks `project_sequence` appends.
        """
        if self.layer_norm or any(self.zoneout):
            return None
        return self.kernel, self.bias

    def recurrent_product(self, h_tm1):
        """`U h_{t-1}`, the one recurrent matrix product of a step."""
        return ops.matmul(h_tm1, self.recurrent_kernel)

    def split_gates(self, projected, recurrent=None):
        """{gate: pre-activation} from `W x + b` and the product `U h_{t-1}`.

        Without `recurrent`, `projected` are the full pre-activations.
        """
        k = len(self.kernel_gates)
        if recurrent is None:
            # Wider pre-activations carry columns after the gate blocks
            # (`full_preactivations` with `layer_norm`).
            gates = projected[..., : k * self.units]
            return dict(zip(self.kernel_gates, ops.split(gates, k, axis=-1)))
        if self.recurrent_gates == self.kernel_gates:
            return dict(
                zip(self.kernel_gates, ops.split(projected + recurrent, k, axis=-1))
            )
        blocks = dict(zip(self.kernel_gates, ops.split(projected, k, axis=-1)))
        recurrent_blocks = ops.split(recurrent, len(self.recurrent_gates), axis=-1)
        for gate, block in zip(self.recurrent_gates, recurrent_blocks):
            blocks[gate] = blocks[gate] + block
        return blocks

    def full_preactivations(self, projected, recurrent):
        """`projected` (with any extra columns) plus `U h_{t-1}` in its blocks.

        With `layer_norm` the recurrent part is `LN_h(U h_{t-1})` (its beta
        is already in `projected`, see `project_inputs`), and the
        normalised product and its reciprocal deviation follow the gate
        blocks as `rH + 1` extra columns: what `step_backward` reads to take
        the gradient back through the norm, so a fused loop that keeps the
        pre-activations keeps them too.
        """
        if not self.layer_norm:
            return self._add_recurrent(projected, recurrent)
        gamma, _ = self.norms["recurrent"]
        normalized, inverse_deviation = _normalized(recurrent, self.norm_epsilon)
        gates = self._add_recurrent(projected, normalized * gamma)
        return ops.concatenate([gates, normalized, inverse_deviation], axis=-1)

    def _add_recurrent(self, projected, recurrent):
        width = len(self.kernel_gates) * self.units
        if self.recurrent_gates == self.kernel_gates and projected.shape[-1] == width:
            return projected + recurrent
        recurrent_width = len(self.recurrent_gates) * self.units
        if self.kernel_gates.startswith(self.recurrent_gates):
            head, tail = ops.split(projected, [recurrent_width], axis=-1)
            return ops.concatenate([head + recurrent, tail], axis=-1)
        gate_part, extra = ops.split(projected, [width], axis=-1)
        blocks = self.split_gates(gate_part, recurrent)
        pieces = [blocks[gate] for gate in self.kernel_gates]
        if projected.shape[-1] > width:
            pieces.append(extra)
        return ops.concatenate(pieces, axis=-1)

    def recurrent_columns(self, d_projected):
        """The recurrent blocks of a projected-width tensor, in `recurrent_gates` order."""
        if self.recurrent_gates == self.kernel_gates and (
            d_projected.shape[-1] == len(self.kernel_gates) * self.units
        ):
            return d_projected
        if self.kernel_gates.startswith(self.recurrent_gates):
            return d_projected[..., : len(self.recurrent_gates) * self.units]
        blocks = {
            gate: d_projected[..., self._block(gate)] for gate in self.recurrent_gates
        }
        return ops.concatenate([blocks[g] for g in self.recurrent_gates], axis=-1)

    def join_gate_gradients(self, d_gates, extra=()):
        """`(d_projected, d_recurrent)` from the gradients of the pre-activations.

        `d_gates` maps every kernel gate to the gradient of its
        pre-activation; `extra` holds the gradients of any projected columns
        after the gate blocks. `d_recurrent`, the gradient of `U h_{t-1}`,
        is the same tensor as `d_projected` when the two have the same blocks.
        """
        d_projected = ops.concatenate(
            [d_gates[gate] for gate in self.kernel_gates] + list(extra), axis=-1
        )
        if self.recurrent_gates == self.kernel_gates and not extra:
            return d_projected, d_projected
        d_recurrent = ops.concatenate(
            [d_gates[gate] for gate in self.recurrent_gates], axis=-1
        )
        return d_projected, d_recurrent

    # -- the LSTM options (docs/options.md) -------------------------------

    def carry(self, update, c_tm1, keep_c):
        """The memory the cell carries, from its own update c̃_t, as a `Memory`.

        LN_c, then the clip, then zoneout: `d_c ⊙ c_{t-1} + (1 - d_c) ⊙ c̃_t`
        with the keep mask `keep_c` (None without zoneout). The `Memory`
        keeps the state norm's parts, so a backward step need not
        normalise again.
        """
        normalized = inverse_deviation = None
        memory = update
        if self.layer_norm:
            gamma, beta = self.norms["state"]
            normalized, inverse_deviation = _normalized(update, self.norm_epsilon)
            memory = normalized * gamma + beta
        clipped_from = memory
        if self.cell_clip is not None:
            memory = ops.clip(memory, -self.cell_clip, self.cell_clip)
        if keep_c is not None:
            memory = keep_c * c_tm1 + (1.0 - keep_c) * memory
        return Memory(memory, normalized, inverse_deviation, clipped_from)

    def carried_cell_backward(self, memory, keep_c, d_carried):
        """`(d c̃_t, d c_{t-1}, sums)`: the gradient through `carry`.

        `memory` is what `carry` returned; `d c_{t-1}` is the part zoneout
        hands straight back (None without it); `sums` are this step's
        gradients of the state norm's gamma and beta, summed over the batch
        (none without `layer_norm`).
        """
        sums = []
        d_kept = None
        if keep_c is not None:
            d_kept = keep_c * d_carried
            d_carried = (1.0 - keep_c) * d_carried
        if self.cell_clip is not None:
            inside = ops.less_equal(ops.abs(memory.clipped_from), self.cell_clip)
            d_carried = ops.where(inside, d_carried, ops.zeros_like(d_carried))
        if self.layer_norm:
            gamma, _ = self.norms["state"]
            sums = [
                ops.sum(d_carried * memory.normalized, axis=0), ops.sum(d_carried, axis=0)
            ]
            d_carried = _normalized_backward(
                d_carried, memory.normalized, memory.inverse_deviation, gamma
            )
        return d_carried, d_kept, sums

    def hidden_state(self, output, h_tm1, keep_h):
        """h_t from m_t = o_t ⊙ φ(c_t): `m_t P` with `projection_units`, else m_t;
        then zoneout, `d_h ⊙ h_{t-1} + (1 - d_h) ⊙ h̃_t` (`keep_h` None without)."""
        if self.projection_kernel is not None:
            output = ops.matmul(output, self.projection_kernel)
        if keep_h is not None:
            output = keep_h * h_tm1 + (1.0 - keep_h) * output
        return output

    def hidden_state_backward(self, d_hidden, keep_h):
        """`(d m_t, d h̃_t, d h_{t-1})`: the gradient through `hidden_state`.

        `d h̃_t` is the gradient of the output before zoneout (what `dP`
        reads with a projection); `d h_{t-1}` the part zoneout hands
        straight back (None without it).
        """
        d_h_tm1 = None
        if keep_h is not None:
            d_h_tm1 = keep_h * d_hidden
            d_hidden = (1.0 - keep_h) * d_hidden
        d_output = d_hidden
        if self.projection_kernel is not None:
            d_output = ops.matmul(d_hidden, ops.transpose(self.projection_kernel))
        return d_output, d_hidden, d_h_tm1

    def peep(self, gate, preactivation, memory):
        """Adds the peephole term `p ⊙ c` of `gate`, if that gate peeps."""
        if gate in self.peephole_weights:
            return preactivation + self.peephole_weights[gate] * memory
        return preactivation

    def drop_inputs(self, inputs, training):
        """Applies the input dropout mask (drawn once per sequence)."""
        if not training or self.dropout == 0.0:
            return inputs
        step = inputs if len(inputs.shape) == 2 else inputs[:, 0, :]
        mask = self.get_dropout_mask(step)
        if len(inputs.shape) == 3:
            mask = ops.expand_dims(mask, axis=1)
        return inputs * mask

    def drop_recurrent(self, h_tm1, training):
        """Applies the recurrent dropout mask to h_{t-1}."""
        if not training or self.recurrent_dropout == 0.0:
            return h_tm1
        return h_tm1 * self.get_recurrent_dropout_mask(h_tm1)

    def loop_weights(self):
        """Context entered around a layer's time loop; a no-op by default.

        A cell whose step reads parts of its weights (slices of a stacked
        weight, say) can prepare them here once, so that inside the loop
        they are loop invariants rather than per-step reads.
        """
        return contextlib.nullcontext()

    # -- hand-written backward step (TensorFlow fast path) ---------------
    #
    # Automatic differentiation of one step records every slice, broadcast
    # and activation of the step and replays its gradient op by op; a cell
    # whose equations are written out backwards below needs about half the
    # operations per backward step. The gradients of its weight vectors
    # (peepholes, depth-gate vectors) are summed over the batch inside the
    # step, from gate gradients it holds anyway; a weight matrix inside the
    # step (the untied kernel M) gets its gradient from one product over
    # all steps after the loop.

    # The number of per-step tensors `memory_backward` returns in `saved`.
    memory_backward_saves = 0

    @property
    def step_backward_saves(self):
        """The number of per-step tensors `step_backward` returns in `saved`."""
        return self.memory_backward_saves + (2 if self.projection_kernel is not None else 0)

    @property
    def separate_recurrent_gradient(self):
        """Whether `d_recurrent` is not a slice of `d_projected` (`layer_norm`).

        A fused loop then keeps `d_recurrent` for the gradient of U rather
        than take `recurrent_columns(d_projected)`.
        """
        return self.layer_norm

    def step_backward(self, projected, states, d_new_states):
        """Vector-Jacobian product of one `preactivation_step`, written by hand.

        The cell's own equations go backwards in `memory_backward`; this
        adds the options around them: the projection `h = m P` (its
        gradient `d_m = d_h P^T`, and m and d_h kept for `dP`) and the
        recurrent norm `LN_h(U h_{t-1})`.

        Args:
            projected: The step's full pre-activations `W x + U h + b`, with
                any extra columns (see `full_preactivations`).
            states: The states the step starts from.
            d_new_states: Gradients of the loss with respect to the states
                the step returns (the output's gradient added to h's).

        Returns:
            `(d_projected, d_recurrent, d_states, saved, sums)`: the
            gradients with respect to the projected inputs and to the
            recurrent product `U h` (see `join_gate_gradients`), with
            respect to `states` other than through `U h` (None where there
            is none), a list of `step_backward_saves` per-step tensors that
            `backward_weight_gradients` needs, and this step's gradients of
            the `summed_weights`, summed over the batch, in their order.
        """
        d_hidden, *d_rest = d_new_states
        _, keep_h = self.zoneout_keep(projected)
        d_output, d_hidden, d_h_tm1 = self.hidden_state_backward(d_hidden, keep_h)
        d_projected, d_recurrent, d_states, saved, sums, output = self.memory_backward(
            projected, states, [d_output, *d_rest]
        )
        saved, sums, d_states = list(saved), list(sums), list(d_states)
        d_states[0] = add_gradients(d_states[0], d_h_tm1)
        masks_start = len(self.kernel_gates) * self.units + self.own_extra_width
        if self.zoneout_width:
            # The keep masks are no function of the weights: zero gradient.
            masks = projected[..., masks_start : masks_start + self.zoneout_width]
            d_projected = ops.concatenate([d_projected, ops.zeros_like(masks)], axis=-1)
        if self.layer_norm:
            d_recurrent, d_gamma = self.recurrent_norm_backward(
                projected[..., masks_start + self.zoneout_width :], d_recurrent
            )
            sums.append(d_gamma)
        if self.projection_kernel is not None:
            saved += [output, d_hidden]
        return d_projected, d_recurrent, d_states, saved, sums

    def memory_backward(self, projected, states, d_new_states):
        """The cell's own equations backwards, from z_t to m_t and c_t.

        Like `step_backward` but `d_new_states[0]` is the gradient of
        `m_t = o_t ⊙ φ(c_t)` (before any projection), `d_recurrent` that of
        the recurrent part of z_t (after any norm), and it returns a sixth
        value, m_t itself. `carried_cell_backward` takes the gradient of
        the carried memory back to the cell's own update.
        """
        raise NotImplementedError

    def summed_weights(self):
        """The weights whose gradients `step_backward` returns as per-step sums.

        The cell's own (`memory_summed_weights`), then the state norm's
        gamma and beta and the recurrent norm's gamma (its beta enters with
        the projected inputs): the order of the sums `memory_backward` and
        `step_backward` return.
        """
        weights = list(self.memory_summed_weights())
        if self.layer_norm:
            weights += [*self.norms["state"], self.norms["recurrent"][0]]
        return weights

    def memory_summed_weights(self):
        """The weight vectors of the cell's own equations: the peepholes, in the order of `peepholes`."""
        return [self.peephole_weights[gate] for gate in self.peepholes]

    def peephole_sums(self, d_gates, c_tm1, c):
        """This step's peephole-vector gradients, summed over the batch.

        `d_gates` maps gates to the gradients of their pre-activations; the
        output gate peeps at the new cell `c`, the others at `c_tm1`.
        """
        return [
            ops.sum(d_gates[gate] * (c if gate == "o" else c_tm1), axis=0)
            for gate in self.peepholes
        ]

    def product_weights(self):
        """Weight matrices used inside the step, besides `recurrent_kernel` (none by default).

        Their gradients come from `backward_weight_gradients`, one product
        over many steps rather than a thin one per step: the cell's own
        (`memory_product_weights`), then `projection_kernel`.
        """
        weights = list(self.memory_product_weights())
        if self.projection_kernel is not None:
            weights.append(self.projection_kernel)
        return weights

    def memory_product_weights(self):
        """The weight matrices of the cell's own equations inside the step (none)."""
        return []

    def backward_weight_gradients(self, d_projected, states_in, saved):
        """Gradients of the `product_weights`, over a run of steps at once.

        Every argument is stacked over those steps (leading axis):
        `d_projected` from `step_backward`, `states_in` the states each step
        starts from, `saved` the per-step tensors of `step_backward`.
        Returns one gradient per weight of `product_weights`, in order;
        `dP = Σ_t m_t^T dh_t` is one product over all those steps and rows.
        """
        own = self.memory_backward_saves
        gradients = list(self.memory_weight_gradients(d_projected, states_in, saved[:own]))
        if self.projection_kernel is not None:
            output, d_hidden = saved[own:]
            gradients.append(
                ops.matmul(
                    ops.transpose(ops.reshape(output, (-1, self.units))),
                    ops.reshape(d_hidden, (-1, self.projection_units)),
                )
            )
        return gradients

    def memory_weight_gradients(self, d_projected, states_in, saved):
        """Gradients of `memory_product_weights`, as `backward_weight_gradients`."""
        return []

    def backward_loop_weights(self):
        """Context entered around the fast path's backward loop (no-op default).

        Like `loop_weights`: a place to prepare loop invariants, such as a
        transposed kernel, once.
        """
        return contextlib.nullcontext()

    @property
    def has_step_backward(self):
        """Whether `step_backward` is written for this cell and its activations.

        Written only for activations whose derivative follows from their
        output (sigmoid, tanh, linear); other ones take the automatic
        derivative of the step.
        """
        written = (
            type(self).memory_backward is not GatedCell.memory_backward
            # The stacks write their whole step backwards themselves.
            or type(self).step_backward is not GatedCell.step_backward
        )
        return (
            written
            and _derivative_from_output(self.recurrent_activation) is not None
            and _derivative_from_output(self.activation) is not None
        )

    def activation_derivatives(self):
        """`(σ', φ')` as functions of the activations' outputs."""
        return (
            _derivative_from_output(self.recurrent_activation),
            _derivative_from_output(self.activation),
        )

    def peep_backward(self, gate, d_preactivation):
        """The gradient a peeping `gate` sends back to the memory it reads."""
        if gate in self.peephole_weights:
            return self.peephole_weights[gate] * d_preactivation
        return None

    def _block(self, gate):
        """The slice of a kernel-gate block in `projected`."""
        k = self.kernel_gates.index(gate)
        return slice(k * self.units, (k + 1) * self.units)

    def gated_step(self, projected, states, training=False):
        """One step: returns `(output, new_states, gates)`.

        `gates` is a dict from gate name to its activation at this step. By
        default the one recurrent product `U h_{t-1}` (after recurrent
        dropout), then `preactivation_step`.
        """
        recurrent = self.recurrent_product(self.drop_recurrent(states[0], training))
        return self.preactivation_step(self.full_preactivations(projected, recurrent), states)

    def preactivation_step(self, preactivations, states):
        """The rest of a step from its full pre-activations `W x + U h + b`.

        `preactivations` has any extra projected columns after the gate
        blocks (see `full_preactivations`). Returns `(output, new_states,
        gates)` as `gated_step`; `step_backward` is its derivative.
        """
        raise NotImplementedError

    def recurrent_step(self, projected, states, training=False):
        """One step from the projected inputs and the previous states."""
        output, new_states, _ = self.gated_step(projected, states, training)
        return output, new_states

    def call(self, inputs, states, training=False):
        check_step_input(self, inputs)
        if training and any(self.zoneout) and keras.backend.backend() == "jax":
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}': zoneout in training draws "
                "new keep masks at every step, which JAX cannot do inside the "
                "lax.scan of keras.layers.RNN(cell) (the draw would update the seed "
                "generator inside the scan). Use the layer instead, e.g. "
                f"kg.{self.__class__.__name__[:-4]}(..., zoneout=...) with fused=True, "
                "which draws the masks of all steps before its loop."
            )
        inputs = self.drop_inputs(inputs, training)
        return self.recurrent_step(self.project_sequence(inputs, training), states, training)

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, size), dtype=self.compute_dtype)
            for size in tree.flatten(self.state_size)
        ]


def _cell_parameters(cell_class):
    """Names of the keyword arguments a cell class and its cell bases accept."""
    names = set()
    for klass in cell_class.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, GatedCell)):
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names.update(
            p.name
            for p in parameters
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


_LAYER_KEYS = ("name", "trainable", "dtype")


class GatedRNN(keras.layers.RNN):
    """Base of this package's recurrent layers: a `keras.layers.RNN` over one cell.

    A subclass sets `cell_class`; every keyword argument that cell takes is
    passed to it, the rest go to `keras.layers.RNN`. The layer gives the same
    numbers as `keras.layers.RNN(cell)` with the same weights, but runs the
    input projection of all time steps as one matrix product before the
    loop (`fused=True`, the default); `fused=False` runs the cell step by
    step exactly as `keras.layers.RNN` does.

    On the TensorFlow backend, a layer whose cell defers its recurrent
    product (`GatedCell.deferred_recurrent_product`), or describes its
    levels (`fast_levels()`, for stacks), runs the custom-gradient loops of
    `keras_gated._fast.tensorflow`, which compute the weight gradients with
    one product per chunk of steps; `training=False` calls run their
    forward loop alone. On JAX and PyTorch, one-layer cells run the fused
    loops of `keras_gated._fast.jax` and `keras_gated._fast.torch`.

    `fast_path` chooses, as `use_cudnn` does for `keras.layers.LSTM`:
    `"auto"` (default) takes the fast path where it applies and otherwise
    falls back to the generic loop above, for the documented reasons
    (another backend, `fused=False`, a cell without a fast form,
    `unroll=True` on JAX and PyTorch; `docs/benchmarks.md`); `True` raises a
    `ValueError` naming the reason when it cannot apply; `False` always
    runs the generic loop. `last_call_path` says which loop the last call
    ran: `"fast"`, `"generic"` or `"cell"` (`fused=False`), and
    `fast_path_unavailable_reason()` why the fast path would not run.
    """

    cell_class = None

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        fused=True,
        fast_path="auto",
        activity_regularizer=None,
        **kwargs,
    ):
        cell_keys = _cell_parameters(self.cell_class) - {"units"}
        unknown = set(kwargs) - cell_keys - {
            "name", "trainable", "dtype", "input_shape", "batch_size", "input_dim"
        }
        if unknown:
            raise TypeError(
                f"{self.__class__.__name__} got unexpected keyword argument(s) "
                f"{sorted(unknown)}. It accepts the arguments of "
                f"{self.cell_class.__name__} and of keras.layers.RNN."
            )
        cell_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in cell_keys}
        cell = self.cell_class(
            units,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=f"{_snake(self.cell_class.__name__)}",
            **cell_kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.fused = bool(fused)
        self.fast_path = _check_fast_path(fast_path)
        if self.fast_path is True and not self.fused:
            raise ValueError(
                f"{self.__class__.__name__}: fast_path=True needs fused=True "
                "(fused=False runs the cell step by step). Pass fused=True, "
                "or fast_path='auto'."
            )
        # Which loop the last call ran ("fast", "generic" or "cell"), for
        # tests and users who want to check; set while tracing in a graph.
        self.last_call_path = None
        self.input_spec = InputSpec(ndim=3)

    def get_config(self):
        base_config = super().get_config()
        del base_config["cell"]
        cell_config = self.cell.get_config()
        for key in _LAYER_KEYS:
            cell_config.pop(key, None)
        config = {
            **base_config, **cell_config, "fused": self.fused, "fast_path": self.fast_path
        }
        config["activity_regularizer"] = regularizers.serialize(
            self.activity_regularizer
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def build(self, sequences_shape, initial_state_shape=None):
        if len(sequences_shape) != 3:
            raise ValueError(
                f"{self.__class__.__name__} expects inputs of shape "
                f"(batch, timesteps, features); received shape "
                f"{tuple(sequences_shape)}."
            )
        if sequences_shape[-1] is None:
            raise ValueError(
                f"{self.__class__.__name__} needs a known feature width, the "
                "last axis of its input (batch, timesteps, features); "
                f"received shape {tuple(sequences_shape)}."
            )
        super().build(sequences_shape, initial_state_shape)
        self.input_spec = InputSpec(ndim=3, axes={-1: sequences_shape[-1]})

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        if not self.fused:
            self.last_call_path = "cell"
            return super().inner_loop(sequences, initial_state, mask, training)
        cell = self.cell
        inputs = cell.drop_inputs(sequences, training)
        initial_state = (
            list(initial_state) if tree.is_nested(initial_state) else [initial_state]
        )
        if self.fast_path is not False:
            try:
                # The fast path projects the inputs itself, time-major.
                result = _fast.fast_loop(self, inputs, initial_state, mask, training)
            except NotImplementedError as reason:
                if self.fast_path is True:
                    raise ValueError(
                        f"{self.__class__.__name__} '{self.name}' was built with "
                        f"fast_path=True, but no fast path applies: {reason}. Pass "
                        "fast_path='auto' to fall back to the generic loop."
                    ) from None
            else:
                self.last_call_path = "fast"
                return result

        self.last_call_path = "generic"
        projected = cell.project_sequence(inputs, training)
        with cell.loop_weights():
            return self._generic_loop(projected, initial_state, mask, training)

    def fast_path_unavailable_reason(self):
        """Why this layer would not run a fast path now, or None if it would.

        The reason `fast_path="auto"` falls back, and the message of the
        `ValueError` that `fast_path=True` raises.
        """
        return _fast.unavailable_reason(self)

    def _generic_loop(self, projected, initial_state, mask, training):
        """The fused loop in `keras.ops` terms: what runs where no fast loop applies
        (`unroll=True` on JAX and PyTorch, the fallbacks everywhere)."""
        cell = self.cell
        copy_states = keras.backend.backend() == "torch" and self.stateful

        def step(projected_t, states):
            if copy_states:
                # As keras.layers.RNN: the stateful layer assigns the final
                # states to its variables in place, which would corrupt the
                # autograd graph of PyTorch unless the step works on copies.
                states = tree.map_structure(ops.copy, states)
            output, new_states = cell.recurrent_step(projected_t, states, training)
            return output, list(new_states)

        return backend_rnn(
            step,
            projected,
            initial_state,
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=projected.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if self.stateful:
            self._check_stateful_batch(sequences, initial_state)
        if mask is not None:
            self._check_mask_shape(sequences, mask)
        return super().call(
            sequences, mask=mask, training=training, initial_state=initial_state
        )

    def reset_states(self):
        """Sets the states of a stateful layer back to zeros (as `reset_state`).

        A stateful layer (`stateful=True`) starts each call from the final
        states of the previous one, row by row: row k of a batch continues
        row k of the batch before. Call `reset_states()` between independent
        sequences, e.g. at the end of each epoch of truncated
        backpropagation through time (`docs/stateful.md`). The states keep
        the batch size they were built for; a call with another batch size
        raises a `ValueError`. A layer that is not stateful has nothing to
        reset.
        """
        self.reset_state()

    def _check_mask_shape(self, sequences, mask):
        """Raises unless `mask` is (batch, timesteps) of `sequences`.

        `keras.layers.RNN` slices whatever mask it is given, so a mask of the
        wrong length would mask the wrong steps without a word. Only static
        sizes are compared; an unknown size is the caller's to keep right.
        """
        mask_shape = tuple(tree.flatten(mask)[0].shape)
        expected = tuple(tree.flatten(sequences)[0].shape[:2])
        if len(mask_shape) != 2 or any(
            given is not None and wanted is not None and given != wanted
            for given, wanted in zip(mask_shape, expected)
        ):
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}': the mask has shape {mask_shape}, but the "
                f"input sequences are {expected} (batch, timesteps). Pass a boolean mask of "
                "shape (batch, timesteps), True where a step is real."
            )

    def _check_stateful_batch(self, sequences, initial_state):
        """Raises unless a stateful call's batch size is the states' batch size.

        `keras.layers.RNN` checks only the static batch size and only
        against the states, so a batch of 1 traced with an unknown batch
        size broadcasts the states silently (keras-team/keras#21183). Static
        sizes raise a `ValueError` here; an unknown one (a TensorFlow graph
        traced for any batch size) is checked when the graph runs.
        """
        if self.states is None:
            return
        expected = tree.flatten(self.states)[0].shape[0]
        given = [("input sequences", sequences)]
        if initial_state is not None:
            given.append(("initial_state", tree.flatten(initial_state)[0]))
        for what, tensor in given:
            actual = tensor.shape[0]
            message = (
                f"{self.__class__.__name__} '{self.name}' is stateful and holds "
                f"states for a batch of {expected} sequences, but its {what} "
                f"have {{}}. Each row of a stateful layer "
                f"continues the same row of the previous batch, so every "
                f"batch must have {expected} rows: feed batches of {expected} "
                f"(drop or pad the last one), or build the layer for the new "
                f"batch size (e.g. a model with keras.Input(..., "
                f"batch_size=NEW) given the same weights with set_weights). "
                f"reset_states() sets the states to zeros but keeps their "
                f"batch size of {expected}."
            )
            if actual is not None:
                if int(actual) != int(expected):
                    raise ValueError(message.format(f"a batch size of {int(actual)}"))
            elif keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.debugging.assert_equal(
                    tf.shape(tensor)[0], int(expected),
                    message=message.format("another batch size"),
                )


def _check_fast_path(fast_path):
    """`fast_path` as "auto", True or False; a ValueError for anything else."""
    if isinstance(fast_path, str) and fast_path.lower() == "auto":
        return "auto"
    if isinstance(fast_path, bool):
        return fast_path
    raise ValueError(
        "`fast_path` must be 'auto' (take the fast path where it applies), "
        "True (take it or raise a ValueError saying why not) or False (always "
        f"the generic loop). Received: fast_path={fast_path!r}"
    )


def _snake(name):
    """"PeepholeLSTMCell" -> "peephole_lstm_cell"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _delegate(name):
    return property(
        lambda self: getattr(self.cell, name),
        doc=f"The cell's `{name}`.",
    )


for _attribute in (
    "units", "activation", "recurrent_activation", "use_bias",
    "unit_forget_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
    "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "peepholes",
):
    setattr(GatedRNN, _attribute, _delegate(_attribute))
del _attribute
