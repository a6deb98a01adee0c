"""Grid LSTM over time and depth (Kalchbrenner, Danihelka & Graves 2015, arXiv:1507.01526)."""

import contextlib
import itertools
import warnings

import keras
from keras import ops

from keras_gated._fast.contract import LevelStepGradients
from keras_gated.layers._stack import StackedGatedCell
from keras_gated.layers._stack import check_count
from keras_gated.layers.base import GatedRNN
from keras_gated.layers.base import add_gradients

DEPTH_TRANSFORMS = ("lstm", "tanh", "identity")
PRIORITIES = (None, "depth")


@keras.saving.register_keras_serializable(package="keras_gated")
def _deprecated_depth(depth, num_layers):
    """`num_layers` from the deprecated `depth=` argument (old code and configs)."""
    warnings.warn(
        "GridLSTM/GridLSTMCell: `depth=` is deprecated; use `num_layers=` (the same "
        "number of levels, the name DepthGatedLSTM uses).",
        DeprecationWarning,
        stacklevel=3,
    )
    if num_layers not in (1, depth):
        raise ValueError(
            "Pass the number of levels once: `num_layers` (or the deprecated `depth`). "
            f"Received: num_layers={num_layers!r}, depth={depth!r}"
        )
    # The error names the argument the caller wrote.
    return check_count(depth, "depth", "the number of levels K")


class GridLSTMCell(StackedGatedCell):
    """The 2-D Grid LSTM block over time and depth ("2-LSTM"), K levels deep.

    At step t and level k = 1..K the block receives a hidden and a memory
    vector along time, (h^T_k, m^T_k) from (t-1, k), and along depth,
    (h^D_{k-1}, m^D_{k-1}) from (t, k-1). It concatenates the hidden vectors,
    H = [h^T_k ; h^D_{k-1}], and applies one LSTM transform per dimension,
    each with its own weights:

        (h^T_k', m^T_k') = LSTM(H, m^T_k; W^T_k)        # along time
        (h^D_k,  m^D_k ) = LSTM(H, m^D_{k-1}; W^D_k)    # along depth

        LSTM(H, m; W):  [i; f; o; g] = [σ; σ; σ; φ](W H + b)
                        m' = f ⊙ m + i ⊙ g
                        h' = o ⊙ φ(m')

    The input enters at the bottom: h^D_0 = x_t P (weight
    `input_projection`), m^D_0 = 0. The output at step t is h^D_K, the depth
    hidden vector of the top level. The recurrent state is the time
    dimension of every level, `[h^T_1, m^T_1, ..., h^T_K, m^T_K]` (2K
    tensors of width H, bottom level first).

    `depth_transform="tanh"` or `"identity"` replaces the LSTM along depth
    by h^D_k = tanh(V_k H + b) or h^D_k = V_k H + b (the paper's non-LSTM
    dimensions): no depth memory, a quarter of the depth weights.
    `priority="depth"` is the paper's prioritised grid: the depth dimension
    is computed after the time dimension, from H' = [h^T_k' ; h^D_{k-1}].

    Weights, in order (the leading K axis is absent with `tied_weights=True`,
    where all levels share one set):

    * `input_projection`: P, D x H.
    * `time_kernel`: W^T, (K, 2H, 4H), blocks i, f, o, g along the last
      axis; rows 0..H-1 act on h^T_k, rows H..2H-1 on h^D_{k-1}.
    * `time_bias`: (K, 4H), blocks i, f, o, g.
    * `depth_kernel`: W^D, (K, 2H, 4H) for "lstm", (K, 2H, H) otherwise;
      same row layout.
    * `depth_bias`: (K, 4H) for "lstm", (K, H) otherwise.

    The rows of the kernels that read h^T are initialised with
    `recurrent_initializer` and those that read h^D with
    `kernel_initializer`, level by level; P with `kernel_initializer`.

    Args:
        units: Positive integer, width H of every hidden and memory vector.
        num_layers: Positive integer K, the number of levels (the name
            `DepthGatedLSTM` uses too). Default: 1.
        tied_weights: Share the weights of all levels (the paper's tied
            Grid LSTM). Default: `False`.
        depth_transform: `"lstm"` (default), `"tanh"` or `"identity"`.
        priority: `None` (default, both dimensions read the same H) or
            `"depth"` (the depth dimension reads the new time hidden vector).
        depth: Deprecated name of `num_layers` (a `DeprecationWarning`;
            configs saved with it still load).
        dropout: Fraction of the input x_t dropped (one mask per sequence).
        recurrent_dropout: Fraction of h^T_k(t-1) dropped, an independent
            mask for every level.
        **kwargs: activation (φ), recurrent_activation (σ), use_bias,
            unit_forget_bias (the f blocks of the biases start at 1),
            kernel/recurrent/bias initializers, regularizers and constraints
            (the kernel ones also apply to P, the recurrent ones to the
            level kernels), seed.

    Example:

    >>> cell = GridLSTMCell(32, num_layers=3)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(np.zeros((2, 5, 8), "float32")).shape
    (2, 5, 32)
    """

    def __init__(
        self,
        units,
        num_layers=1,
        tied_weights=False,
        depth_transform="lstm",
        priority=None,
        depth=None,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        if depth is not None:
            num_layers = _deprecated_depth(depth, num_layers)
        self.num_layers = check_count(num_layers, "num_layers", "the number of levels K")
        if not isinstance(tied_weights, bool):
            raise ValueError(
                "`tied_weights` must be True (all levels share one set of "
                "weights) or False (every level has its own). "
                f"Received: tied_weights={tied_weights!r}"
            )
        if depth_transform not in DEPTH_TRANSFORMS:
            raise ValueError(
                f"`depth_transform` must be one of {DEPTH_TRANSFORMS}. "
                f"Received: depth_transform={depth_transform!r}"
            )
        if priority not in PRIORITIES:
            raise ValueError(
                f"`priority` must be one of {PRIORITIES}: None computes both "
                "dimensions from the same hidden vectors, 'depth' computes "
                "the depth dimension after the time dimension. "
                f"Received: priority={priority!r}"
            )
        self.tied_weights = tied_weights
        self.depth_transform = depth_transform
        self.priority = priority
        self.recurrent_levels = self.num_layers
        self.state_size = [self.units] * (2 * self.num_layers)

    @property
    def depth(self):
        """Deprecated name of `num_layers`, the number of levels K."""
        return self.num_layers

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "tied_weights": self.tied_weights,
            "depth_transform": self.depth_transform,
            "priority": self.priority,
        }

    # -- weights ---------------------------------------------------------

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"{self.__class__.__name__} needs a known feature width; "
                f"received input shape {tuple(input_shape)}."
            )
        self.input_dim = int(input_shape[-1])
        self._draw_count = itertools.count(1)
        H = self.units
        depth_width = 4 * H if self.depth_transform == "lstm" else H
        self.input_projection = self.add_weight(
            shape=(self.input_dim, H),
            name="input_projection",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.time_kernel = self._add_level_kernel("time_kernel", 4 * H)
        self.time_bias = self._add_level_bias("time_bias", 4 * H)
        self.depth_kernel = self._add_level_kernel("depth_kernel", depth_width)
        self.depth_bias = self._add_level_bias("depth_bias", depth_width)
        self.built = True

    def _draw(self, initializer, shape, dtype):
        """Initial values that differ from draw to draw.

        A Keras initializer seeded with an int (or unseeded) returns the
        same values at every call; levels and dimensions must not start
        equal, so each draw gets its own seed offset.
        """
        seed = getattr(initializer, "seed", None)
        if isinstance(seed, int) and not isinstance(seed, bool):
            config = {**initializer.get_config(), "seed": seed + next(self._draw_count)}
            initializer = initializer.__class__.from_config(config)
        return initializer(shape, dtype=dtype)

    def _level_shape(self, *shape):
        return shape if self.tied_weights else (self.depth, *shape)

    def _add_level_kernel(self, name, width):
        H = self.units
        levels = 1 if self.tied_weights else self.depth

        def initializer(shape, dtype=None):
            kernels = [
                ops.concatenate(
                    [
                        self._draw(self.recurrent_initializer, (H, width), dtype),
                        self._draw(self.kernel_initializer, (H, width), dtype),
                    ],
                    axis=0,
                )
                for _ in range(levels)
            ]
            return ops.reshape(ops.stack(kernels), shape)

        return self.add_weight(
            shape=self._level_shape(2 * H, width),
            name=name,
            initializer=initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )

    def _add_level_bias(self, name, width):
        if not self.use_bias:
            return None
        H = self.units
        levels = 1 if self.tied_weights else self.depth
        lstm_blocks = width == 4 * H

        def initializer(shape, dtype=None):
            # Blocks i, f, o, g: the forget block is the second one.
            blocks = [self.bias_initializer((width,), dtype=dtype)]
            if lstm_blocks and self.unit_forget_bias:
                blocks = [
                    ops.concatenate(
                        [
                            self.bias_initializer((H,), dtype=dtype),
                            ops.ones((H,), dtype=dtype),
                            self.bias_initializer((2 * H,), dtype=dtype),
                        ]
                    )
                ]
            return ops.reshape(ops.stack(blocks * levels), shape)

        return self.add_weight(
            shape=self._level_shape(width),
            name=name,
            initializer=initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def _level(self, weight, k):
        if weight is None or self.tied_weights:
            return weight
        slices = getattr(self, "_level_slices", None)
        if slices is not None:
            return slices[id(weight)][k]
        return weight[k]

    @contextlib.contextmanager
    def loop_weights(self):
        """Slices every level's weights once, before the layer's time loop.

        A slice of a stacked (K, ...) weight taken inside a `tf.while_loop`
        body makes every backward step build a dense gradient of the whole
        stack; slices taken before the loop are loop invariants whose
        gradients add up once.
        """
        if self.tied_weights:
            yield
            return
        weights = (self.time_kernel, self.time_bias, self.depth_kernel, self.depth_bias)
        self._level_slices = {
            id(w): [w[k] for k in range(self.depth)] for w in weights if w is not None
        }
        try:
            yield
        finally:
            self._level_slices = None

    # -- computation -----------------------------------------------------

    def project_inputs(self, inputs):
        """h^D_0 = x P, for a step or a whole sequence."""
        return ops.matmul(inputs, self.input_projection)

    def lstm_transform(self, hidden, memory, kernel, bias):
        """One LSTM transform of the grid block: returns (h', m', gates)."""
        z = ops.matmul(hidden, kernel)
        if bias is not None:
            z = z + bias
        i, f, o, g, memory, φm = self.lstm_activate(z, memory)
        return o * φm, memory, {"input": i, "forget": f, "output": o}

    def lstm_activate(self, z, memory):
        """The transform from its pre-activations `W H + b`: `(i, f, o, g, m', φ(m'))`."""
        σ, φ = self.recurrent_activation, self.activation
        i, f, o, g = ops.split(z, 4, axis=-1)
        i, f, o, g = σ(i), σ(f), σ(o), φ(g)
        memory = f * memory + i * g
        return i, f, o, g, memory, φ(memory)

    def lstm_backward(self, z, memory, d_hidden, d_memory):
        """The transform backwards: `(dz, dm)` from the gradients of h' and m'."""
        dσ, dφ = self.activation_derivatives()
        i, f, o, g, _, φm = self.lstm_activate(z, memory)
        d_o = d_hidden * φm * dσ(o)
        d_memory = add_gradients(d_memory, d_hidden * o * dφ(φm))
        d_z = ops.concatenate(
            [d_memory * g * dσ(i), d_memory * memory * dσ(f), d_o, d_memory * i * dφ(g)],
            axis=-1,
        )
        return d_z, d_memory * f

    # -- fast paths (keras_gated._fast: levels, `FusedLevel`) --

    @property
    def has_fast_levels(self):
        """Whether the fast loops run this grid: not the prioritised grid,
        whose depth transform reads the new h^T_k (a third dependent product
        per level), and only activations with a written derivative."""
        return self.priority is None and all(
            d is not None for d in self.activation_derivatives()
        )

    def fast_levels(self):
        """The levels as the fast loops run them, bottom first.

        Each level's two transforms share one product: the rows of
        `[W^T_k | W^D_k]` that read h^T_k are its recurrent kernel, the rows
        that read h^D_{k-1} its input kernel, so the block's concatenation
        `[h^T_k ; h^D_{k-1}]` is never formed. The bottom level's input
        product is `x (P V_1)`, hoisted out of the time loop.
        """
        return [_GridLevel(self, k) for k in range(self.depth)]

    def perturbed_step(self, projected, states, hidden_perturbations, training=False):
        """One step of the grid: levels 1..K bottom-up (`gated_step` with None).

        `hidden_perturbations` (see `StackedGatedCell.perturbed_step`) are
        added to each level's time hidden vector where it is computed,
        before the prioritised depth transform reads it.
        """
        h_depth = projected
        m_depth = ops.zeros_like(h_depth)
        h_time_past = self.drop_recurrent_levels(states[0::2], training)
        new_states, gates = [], {}
        for k in range(self.depth):
            hidden = ops.concatenate([h_time_past[k], h_depth], axis=-1)
            h_time, m_time, time_gates = self.lstm_transform(
                hidden,
                states[2 * k + 1],
                self._level(self.time_kernel, k),
                self._level(self.time_bias, k),
            )
            if hidden_perturbations is not None:
                h_time = h_time + hidden_perturbations[k]
            new_states += [h_time, m_time]
            if self.priority == "depth":
                hidden = ops.concatenate([h_time, h_depth], axis=-1)
            depth_kernel = self._level(self.depth_kernel, k)
            depth_bias = self._level(self.depth_bias, k)
            if self.depth_transform == "lstm":
                h_depth, m_depth, depth_gates = self.lstm_transform(
                    hidden, m_depth, depth_kernel, depth_bias
                )
            else:
                h_depth = ops.matmul(hidden, depth_kernel)
                if depth_bias is not None:
                    h_depth = h_depth + depth_bias
                if self.depth_transform == "tanh":
                    h_depth = ops.tanh(h_depth)
                depth_gates = {}
            for dimension, dimension_gates in (
                ("time", time_gates),
                ("depth", depth_gates),
            ):
                for name, gate in dimension_gates.items():
                    gates[f"level_{k}/{dimension}_{name}"] = gate
        return h_depth, new_states, gates


class _GridLevel:
    """Level k of a `GridLSTMCell` as the fast loops run it.

    Pre-activations `z = h^D_{k-1} V_k + h^T_k R_k + b_k` hold the time
    transform's blocks i, f, o, g, then the depth transform's.
    """

    up_from_states = False
    extra_columns = 0
    projection = None  # the bottom level's is set in __init__
    input_only_columns = 0
    step_saves = 0
    state_count = 2
    separate_recurrent_gradient = False

    def __init__(self, cell, k):
        H = cell.units
        self.cell = cell
        # The depth memory m^D_k goes up only with an LSTM along depth.
        self.passes_extra_up = cell.depth_transform == "lstm"
        self.up_extra_width = H if self.passes_extra_up else 0
        time_kernel = cell._level(cell.time_kernel, k)
        depth_kernel = cell._level(cell.depth_kernel, k)
        self.recurrent_kernel = ops.concatenate([time_kernel[:H], depth_kernel[:H]], axis=1)
        input_kernel = ops.concatenate([time_kernel[H:], depth_kernel[H:]], axis=1)
        bias = None
        if cell.use_bias:
            bias = ops.concatenate(
                [cell._level(cell.time_bias, k), cell._level(cell.depth_bias, k)], axis=0
            )
        if k == 0:
            # h^D_0 = x P, so the bottom input product is x (P V_1): one
            # product of every step before the loop.
            self.input_kernel, self.input_bias = None, None
            self.projection = (ops.matmul(cell.input_projection, input_kernel), bias)
        else:
            self.input_kernel, self.input_bias = input_kernel, bias

    def preactivations(self, input_product, recurrent_product):
        return input_product + recurrent_product

    def _split(self, z):
        return ops.split(z, [4 * self.cell.units], axis=-1)

    def forward(self, z, extra, states):
        cell = self.cell
        z_time, z_depth = self._split(z)
        _, _, o, _, m_time, φm = cell.lstm_activate(z_time, states[1])
        h_time = o * φm
        if cell.depth_transform == "lstm":
            m_in = ops.zeros_like(m_time) if extra is None else extra
            _, _, o, _, m_depth, φm = cell.lstm_activate(z_depth, m_in)
            return [h_time, m_time], o * φm, m_depth
        if cell.depth_transform == "tanh":
            return [h_time, m_time], ops.tanh(z_depth), None
        return [h_time, m_time], z_depth, None

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        cell = self.cell
        z_time, z_depth = self._split(z)
        d_z_time, d_m_tm1 = cell.lstm_backward(
            z_time, states[1], d_new_states[0], d_new_states[1]
        )
        d_extra = None
        if cell.depth_transform == "lstm":
            m_in = ops.zeros_like(states[1]) if extra is None else extra
            d_z_depth, d_extra = cell.lstm_backward(z_depth, m_in, d_up_hidden, d_up_extra)
        elif cell.depth_transform == "tanh":
            h_depth = ops.tanh(z_depth)
            d_z_depth = d_up_hidden * (1.0 - h_depth * h_depth)
        else:
            d_z_depth = d_up_hidden
        d_z = ops.concatenate([d_z_time, d_z_depth], axis=-1)
        return LevelStepGradients(d_z, d_z, d_extra, [None, d_m_tm1], [], [])

    def summed_weights(self):
        return []

    def product_weights(self):
        return []

    def backward_weight_gradients(self, d_preactivations, states_in, saved):
        return []

    def recurrent_columns(self, rows):
        return rows


@keras.saving.register_keras_serializable(package="keras_gated")
class GridLSTM(GatedRNN):
    """2-D Grid LSTM layer (time x depth): a `keras.layers.RNN` over a `GridLSTMCell`.

    `GridLSTM(units, num_layers=K)` runs K grid levels inside every time step.
    Every level keeps its own time-dimension (h, m) and passes its
    depth-dimension (h, m) upward within the step; the output is the top
    level's depth hidden vector. With `return_state=True` the states that
    follow are `h^T_1, m^T_1, ..., h^T_K, m^T_K`, bottom level first.

    Takes the arguments of `GridLSTMCell` (units, num_layers, tied_weights,
    depth_transform, priority, activations, initializers, regularizers,
    constraints, dropout, ...) and of `keras.layers.RNN`. The default
    `fused=True` projects the input of all time steps in one product before
    the loop.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((None, 16)),
    ...     GridLSTM(64, num_layers=3),
    ...     keras.layers.Dense(1),
    ... ])
    """

    cell_class = GridLSTMCell

    @property
    def num_layers(self):
        """The number of grid levels K."""
        return self.cell.num_layers

    @property
    def depth(self):
        """Deprecated name of `num_layers`, the number of grid levels K."""
        return self.cell.num_layers
