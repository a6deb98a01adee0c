"""Depth-gated LSTM (Yao, Cohn, Vylomova, Duh & Dyer 2015, arXiv:1508.03790)."""

import keras
from keras import ops

from keras_gated._fast.contract import LevelStepGradients
from keras_gated.layers._stack import StackedGatedCell
from keras_gated.layers._stack import check_count
from keras_gated.layers.base import GatedRNN
from keras_gated.layers.base import add_gradients

# Arguments that belong to the whole stack, not to one of its layers.
_STACK_ONLY_KEYS = ("name", "num_layers", "dropout", "recurrent_dropout", "seed")


@keras.saving.register_keras_serializable(package="keras_gated")
class DepthGatedLSTMCell(StackedGatedCell):
    """A stack of LSTM layers whose memory cells are linked through depth gates.

    Each layer's memory cell c_t is connected linearly to the memory cell
    l_t of the layer below at the same step, through a depth gate d_t. For
    a layer with input x_t (the hidden output of the layer below, or the
    sequence input for the first layer):

        i_t = σ(W_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
        f_t = σ(W_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
        d_t = σ(W_d x_t + w_cd ⊙ c_{t-1} + w_ld ⊙ l_t + b_d)
        c_t = d_t ⊙ l_t + f_t ⊙ c_{t-1} + i_t ⊙ φ(W_c x_t + U_c h_{t-1} + b_c)
        o_t = σ(W_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)
        h_t = o_t ⊙ φ(c_t)

    The `num_layers` layers are computed bottom-up inside one time step, so
    l_t of layer k is c_t of layer k - 1 at the same step. For the first
    layer l_t is the input x_t itself when D == H, and `x_t P` (weight
    `depth_projection`, D x H) when the widths differ; w_ld acts on the
    projected vector. The depth gate has no recurrent-kernel term.

    Weights of one layer, in order: `kernel` (D x 5H, blocks i, f, c, o, d),
    `recurrent_kernel` (H x 4H, blocks i, f, c, o), `depth_projection`
    (D x H, first layer only and only when D != H), `bias` (5H, blocks i, f,
    c, o, d), `input_gate_peephole_weights`, `forget_gate_peephole_weights`,
    `output_gate_peephole_weights` (H each, for the gates in `peepholes`),
    `depth_gate_cell_weights` w_cd (H), `depth_gate_lower_weights` w_ld (H).
    With `num_layers=1` the cell holds these weights itself. With
    `num_layers=N > 1` it holds N one-layer cells named `layer_0` (bottom)
    to `layer_{N-1}` (top), so the weights are `layer_0/kernel`, ...,
    `layer_{N-1}/depth_gate_lower_weights`.

    States, in order: `[h_0, c_0, h_1, c_1, ..., h_{N-1}, c_{N-1}]`, layer
    0 at the bottom; the output is h of the top layer. `gated_step` returns
    the gates "input", "forget", "depth", "output" (prefixed `layer_k/` when
    N > 1).

    Only the first layer's input projection depends on the input alone:
    `project_inputs(x)` returns `[W x + b ; l]` (6H wide) for the first
    layer, and the upper layers project the h of the layer below inside the
    step.

    Args:
        units: Positive integer, width H of h and c of every layer.
        num_layers: Positive integer, the number of depth-gated layers
            computed inside each time step. Default: 1.
        use_peepholes: Whether the input, forget and output gates peep at
            the memory cell (the paper's model). Default: `True`.
        peepholes: Instead of `use_peepholes`, a subset of `("i", "f", "o")`.
        dropout: Fraction of the input x_t of the first layer dropped (one
            mask per sequence). Between layers nothing is dropped.
        recurrent_dropout: Fraction of h_{t-1} dropped before U h_{t-1}, with
            an independent mask for every layer.
        layer_norm, projection_units, cell_clip, zoneout: The LSTM options
            (docs/options.md), on every layer around its own update
            c̃_t = d_t ⊙ l_t + f_t ⊙ c_{t-1} + i_t ⊙ φ(·); an upper layer
            reads the carried c_t below as its l_t and the (projected) h
            below as its input. The one-layer cell and the stack run
            them all on the fast loops.
        **kwargs: The other arguments of `keras.layers.LSTMCell`
            (activation, recurrent_activation, use_bias, initializers,
            regularizers, constraints, unit_forget_bias, seed), plus
            `peephole_initializer`, `peephole_regularizer` and
            `peephole_constraint`, which also apply to w_cd and w_ld. The
            kernel initializer, regularizer and constraint also apply to
            `depth_projection`. All layers share these settings.

    Example:

    >>> cell = DepthGatedLSTMCell(32, num_layers=3)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    >>> layer(np.zeros((2, 5, 8), "float32")).shape
    (2, 5, 32)
    """

    kernel_gates = "ifcod"
    recurrent_gates = "ifco"
    peephole_choices = "ifo"
    default_peepholes = "ifo"
    # Every layer of the stack takes the LSTM options (docs/options.md).
    supports_lstm_options = True

    def __init__(
        self, units, num_layers=1, use_peepholes=True, peepholes=None, **kwargs
    ):
        if not isinstance(use_peepholes, bool):
            raise ValueError(
                "`use_peepholes` must be True or False. "
                f"Received: use_peepholes={use_peepholes!r}"
            )
        if peepholes is None:
            peepholes = use_peepholes
        elif not use_peepholes and len(tuple(peepholes)) > 0:
            raise ValueError(
                f"`use_peepholes=False` contradicts `peepholes={peepholes!r}`. "
                "Pass one of them: use_peepholes=False for no peepholes, or "
                "peepholes=('f', 'o') (for example) for some."
            )
        super().__init__(units, peepholes=peepholes, **kwargs)
        self.num_layers = check_count(
            num_layers, "num_layers", "the number of layers in the stack"
        )
        self.recurrent_levels = self.num_layers
        # Whether l_t is this cell's input (projected when D != H): the
        # one-layer cell and a stack's bottom layer; set once, before build.
        self.lower_is_input = True
        self.state_size = [self.output_units, self.units] * self.num_layers
        if self.num_layers > 1:
            layer_config = {
                key: value
                for key, value in self.get_config().items()
                if key not in _STACK_ONLY_KEYS
            }
            self.layer_cells = [
                DepthGatedLSTMCell.from_config({**layer_config, "name": f"layer_{k}"})
                for k in range(self.num_layers)
            ]
            for upper in self.layer_cells[1:]:
                # An upper layer's l_t is the memory below, H wide whatever
                # its input's width (P under a projection): no depth_projection.
                upper.lower_is_input = False

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "use_peepholes": bool(self.peepholes),
        }

    @property
    def own_extra_width(self):
        """l_t, the lower memory of the first layer, follows its gate blocks."""
        return self.units

    @property
    def zoneout_levels(self):
        """Zoneout's keep masks of every layer follow l_t, bottom layer first."""
        return self.num_layers

    @property
    def deferred_recurrent_product(self):
        """One layer reaches `recurrent_kernel` only through `gate_inputs`,
        so the TensorFlow fast path applies; in a stack the upper layers run
        their own products inside the step, so it does not."""
        return self.num_layers == 1

    def _stack(self):
        """The one-layer cells, bottom first (the cell itself when N = 1)."""
        return [self] if self.num_layers == 1 else self.layer_cells

    # -- weights ---------------------------------------------------------

    def build(self, input_shape):
        if self.num_layers == 1:
            super().build(input_shape)
            return
        if input_shape[-1] is None:
            raise ValueError(
                f"{self.__class__.__name__} needs a known feature width; "
                f"received input shape {tuple(input_shape)}."
            )
        self.input_dim = int(input_shape[-1])
        for k, layer in enumerate(self.layer_cells):
            # An upper layer reads the h of the layer below: P wide with a projection.
            layer.build((None, self.input_dim if k == 0 else self.output_units))
        self.built = True

    def build_extra_kernels(self):
        if self.input_dim == self.units or not self.lower_is_input:
            self.depth_projection = None
            return
        self.depth_projection = self.add_weight(
            shape=(self.input_dim, self.units),
            name="depth_projection",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def build_options(self):
        # The depth-gate vectors are the cell's own weights: before the options'.
        self.depth_gate_cell_weights = self._add_depth_vector("depth_gate_cell_weights")
        self.depth_gate_lower_weights = self._add_depth_vector("depth_gate_lower_weights")
        super().build_options()

    def _add_depth_vector(self, name):
        return self.add_weight(
            shape=(self.units,),
            name=name,
            initializer=self.peephole_initializer,
            regularizer=self.peephole_regularizer,
            constraint=self.peephole_constraint,
        )

    # -- computation -----------------------------------------------------

    def project_gate_inputs(self, inputs):
        """`W x + b` of one layer (5H: blocks i, f, c, o, d)."""
        return super().project_inputs(inputs)

    def project_lower(self, inputs):
        """l_t of the first layer: the input, projected when D != H."""
        if self.depth_projection is None:
            return inputs
        return ops.matmul(inputs, self.depth_projection)

    def project_inputs(self, inputs):
        """`[W x + b ; l]` of the first layer, for a step or a whole sequence."""
        first = self._stack()[0]
        return ops.concatenate(
            [first.project_gate_inputs(inputs), first.project_lower(inputs)],
            axis=-1,
        )

    def projection_weights(self):
        """`[W | P]` and `[b ; 0]` when l is a learned projection (D != H).

        When D == H, l is the input itself, which is no product: None; so
        with `layer_norm` or `zoneout` (see `GatedCell.projection_weights`).
        """
        first = self._stack()[0]
        if first.depth_projection is None or self.layer_norm or any(self.zoneout):
            return None
        kernel = ops.concatenate([first.kernel, first.depth_projection], axis=1)
        bias = None
        if first.use_bias:
            bias = ops.concatenate(
                [first.bias, ops.zeros((self.units,), first.bias.dtype)], axis=0
            )
        return kernel, bias

    def activate(self, z, lower, c_tm1, keep_c=None):
        """One layer's equations from its pre-activations and l_t.

        Returns `(i, f, d, g, memory, c, o, φ(c))`: `memory` is what `carry`
        makes of the layer's own update c̃_t (the LSTM options), c =
        `memory.carried` the memory it carries and the layer above reads.
        """
        σ, φ = self.recurrent_activation, self.activation
        i = σ(self.peep("i", z["i"], c_tm1))
        f = σ(self.peep("f", z["f"], c_tm1))
        d = σ(
            z["d"]
            + self.depth_gate_cell_weights * c_tm1
            + self.depth_gate_lower_weights * lower
        )
        g = φ(z["c"])
        memory = self.carry(d * lower + f * c_tm1 + i * g, c_tm1, keep_c)
        c = memory.carried
        o = σ(self.peep("o", z["o"], c))
        return i, f, d, g, memory, c, o, φ(c)

    def layer_step(self, gate_inputs, lower, h_tm1, c_tm1, keep=(None, None)):
        """One layer at one step, from `W x + b`, l_t and its own past state.

        `h_tm1` is what U reads and zoneout keeps (the stack's step passes
        U the h after recurrent dropout, zoneout the state itself). Returns
        `(h, c, gates)`.
        """
        preactivations = self.full_preactivations(gate_inputs, self.recurrent_product(h_tm1))
        return self.layer_preactivation_step(preactivations, lower, [h_tm1, c_tm1], keep)

    def layer_preactivation_step(self, preactivations, lower, states, keep=(None, None)):
        """One layer at one step from its full gate pre-activations and l_t.

        `preactivations` are `W x + U h + b` (5H, with the recurrent norm's
        columns after them under `layer_norm`), `states` the layer's own
        `(h_{t-1}, c_{t-1})` and `keep` zoneout's `(d_c, d_h)` of this
        layer and step. Returns `(h, c, gates)`.
        """
        keep_c, keep_h = keep
        i, f, d, _, _, c, o, φc = self.activate(
            self.split_gates(preactivations), lower, states[1], keep_c
        )
        h = self.hidden_state(o * φc, states[0], keep_h)
        return h, c, {"input": i, "forget": f, "depth": d, "output": o}

    def _lower_of(self, projected):
        """l_t: the H columns after the gate blocks."""
        start = len(self.kernel_gates) * self.units
        return projected[..., start : start + self.units]

    def preactivation_step(self, preactivations, states):
        """The one-layer cell's step from `[W x + U h + b ; l_t ; keep masks ; ...]`."""
        h, c, gates = self.layer_preactivation_step(
            preactivations, self._lower_of(preactivations), states,
            self.zoneout_keep(preactivations),
        )
        return h, [h, c], gates

    def memory_backward(self, projected, states, d_new_states):
        d_gates, d_lower, d_c_tm1, sums, output = self.layer_backward(
            projected, self._lower_of(projected), states[1], d_new_states,
            self.zoneout_keep(projected)[0],
        )
        return (
            *self.join_gate_gradients(d_gates, extra=[d_lower]),
            [None, d_c_tm1],
            [],
            sums,
            output,
        )

    def layer_backward(self, preactivations, lower, c_tm1, d_new_states, keep_c=None):
        """One layer's equations backwards, from its pre-activations and l_t.

        `d_new_states` are the gradients of `m_t = o_t ⊙ φ(c_t)` (before any
        projection or zoneout of h) and of the carried c_t. Returns
        `(d_gates, d_lower, d_c_tm1, sums, m_t)`: the gradients of the gate
        pre-activations (a dict), of l_t, of c_{t-1} other than through
        U h, this step's gradients of `memory_summed_weights` and of the
        state norm (summed over the batch), and m_t.
        """
        dσ, dφ = self.activation_derivatives()
        i, f, d, g, memory, c, o, φc = self.activate(
            self.split_gates(preactivations), lower, c_tm1, keep_c
        )
        d_m, d_c = d_new_states
        d_o = d_m * φc * dσ(o)
        d_c = add_gradients(d_c, d_m * o * dφ(φc), self.peep_backward("o", d_o))
        d_update, d_kept, option_sums = self.carried_cell_backward(memory, keep_c, d_c)
        d_i = d_update * g * dσ(i)
        d_f = d_update * c_tm1 * dσ(f)
        d_d = d_update * lower * dσ(d)
        d_lower = d_update * d + self.depth_gate_lower_weights * d_d
        d_c_tm1 = add_gradients(
            d_update * f,
            self.peep_backward("i", d_i),
            self.peep_backward("f", d_f),
            self.depth_gate_cell_weights * d_d,
            d_kept,
        )
        d_gates = {"i": d_i, "f": d_f, "c": d_update * i * dφ(g), "o": d_o, "d": d_d}
        sums = self.peephole_sums(d_gates, c_tm1, c) + [
            ops.sum(d_d * c_tm1, axis=0),
            ops.sum(d_d * lower, axis=0),
        ] + option_sums
        return d_gates, d_lower, d_c_tm1, sums, o * φc

    def memory_summed_weights(self):
        return super().memory_summed_weights() + [
            self.depth_gate_cell_weights,
            self.depth_gate_lower_weights,
        ]

    @property
    def has_fast_levels(self):
        """Whether a stack runs the fast loops (`FusedLevel`s): `num_layers > 1`
        and activations with a written derivative. Every LSTM option has a
        written level form: `cell_clip` acts inside the level's own memory
        update, which its backward step takes back through
        (`carried_cell_backward`); `projection_units` is the level's output
        `h = m P` (`d_m = d_h P^T`, and `dP = Σ m^T d_h` one product per run
        of steps); zoneout's keep masks, drawn before the loop, ride up the
        levels with the memory; `layer_norm`'s parts ride in each level's z
        (`_DepthGatedLevel`)."""
        return self.num_layers > 1 and self.has_step_backward

    def fast_levels(self):
        """The layers of the stack as the fast loops run them, bottom first."""
        # With zoneout every layer's keep masks follow l_t, bottom first; a
        # level passes those of the layers above it up with its memory.
        widths = [layer.zoneout_width for layer in self.layer_cells]
        masks_above = [sum(widths[k + 1 :]) for k in range(self.num_layers)]
        bottom = _DepthGatedLevel(
            self.layer_cells[0], bottom_projection=self.projection_weights(),
            masks_above=masks_above[0],
        )
        return [bottom] + [
            _DepthGatedLevel(layer, masks_above=above)
            for layer, above in zip(self.layer_cells[1:], masks_above[1:])
        ]

    def perturbed_step(self, projected, states, hidden_perturbations, training=False):
        """One step of the whole stack, bottom-up (`gated_step` with None).

        `hidden_perturbations` (see `StackedGatedCell.perturbed_step`) are
        added to each layer's h_t before the layer above reads it.
        """
        gate_width = len(self.kernel_gates) * self.units
        gate_inputs, lower = projected[..., :gate_width], self._lower_of(projected)
        keeps = self._level_keep_masks(projected)
        hidden = self.drop_recurrent_levels(states[0::2], training)
        new_states, gates = [], {}
        for k, layer in enumerate(self._stack()):
            if k > 0:
                # The layer reads the h of the layer below and gates its
                # carried c, both from this very step.
                gate_inputs, lower = layer.project_gate_inputs(h), c
            preactivations = layer.full_preactivations(
                gate_inputs, layer.recurrent_product(hidden[k])
            )
            h, c, layer_gates = layer.layer_preactivation_step(
                preactivations, lower, states[2 * k : 2 * k + 2], keeps[k]
            )
            if hidden_perturbations is not None:
                h = h + hidden_perturbations[k]
            new_states += [h, c]
            prefix = f"layer_{k}/" if self.num_layers > 1 else ""
            gates.update({prefix + name: g for name, g in layer_gates.items()})
        return h, new_states, gates


    def _level_keep_masks(self, projected):
        """Zoneout's `(d_c, d_h)` of every layer, bottom first, from the
        columns after l_t; `(None, None)` each without zoneout."""
        if not any(self.zoneout):
            return [(None, None)] * self.num_layers
        start = len(self.kernel_gates) * self.units + self.units
        masks = projected[..., start : start + self.zoneout_width * self.num_layers]
        levels = ops.split(masks, self.num_layers, axis=-1)
        return [tuple(ops.split(level, [self.units], axis=-1)) for level in levels]


class _DepthGatedLevel:
    """One layer of a `DepthGatedLSTMCell` stack as the fast loops run it.

    Its input product is `W x + b` (blocks i, f, c, o, d) of the h of the
    layer below; its extra input is l_t, the c of the layer below (for the
    bottom layer, the H columns after its gate blocks in the projected
    input). Without zoneout what it passes up, (h_t, c_t), are its own new
    states. With zoneout the keep masks of every layer are drawn before the
    loop (`project_sequence`: the columns after l_t, bottom layer first) and
    ride up the levels with the memory: level k reads `[c_{k-1} ; d_k ;
    d_{k+1} ; ...]`, uses its own `d_k = (d_c, d_h)` and passes
    `[c_k ; d_{k+1} ; ...]` up.

    With `layer_norm` the level's z carries the norms' parts after its gate
    blocks: `[z (5H) ; x̂_h ; 1/σ_h]` (`full_preactivations`, LN_h of the
    recurrent product), and above the bottom level, whose input product is
    the loop's `a V_k` without a bias, also `[x̂_x ; 1/σ_x]` of LN_x, which
    the level applies itself (`normalized_input`: LN_x, LN_h's beta and b).
    The bottom level's LN_x is in the projected input (`project_sequence`).
    """

    input_only_columns = 0
    state_count = 2
    passes_extra_up = True

    def __init__(self, layer, bottom_projection=False, masks_above=0):
        """`bottom_projection`: the stack's `projection_weights()` (possibly
        None) for the bottom layer; False for the layers above.
        `masks_above`: the columns of the keep masks of the layers above
        this one (0 without zoneout)."""
        bottom = bottom_projection is not False
        self.layer = layer
        self.recurrent_kernel = layer.recurrent_kernel
        self.projection = bottom_projection if bottom else None
        self.keep_width = layer.zoneout_width
        self.masks_above = masks_above
        # With zoneout the masks of the levels above go up with c: the
        # level above reads a wider vector than this level's states.
        self.up_from_states = not self.keep_width
        self.up_extra_width = layer.units + masks_above
        self.extra_columns = layer.units + self.keep_width + masks_above if bottom else 0
        self.input_kernel = None if bottom else layer.kernel
        # Above the bottom level LN_x acts on a V_k before b is added.
        self.normalizes_input = layer.layer_norm and not bottom
        self.input_bias = (
            layer.bias if not bottom and layer.use_bias and not self.normalizes_input else None
        )
        # A norm on h R: dR_k comes from the level's own d_recurrent.
        self.separate_recurrent_gradient = layer.layer_norm
        # With a projection h = m P: m_t and dh_t of every step, for dP.
        self.step_saves = layer.step_backward_saves

    def _split_extra(self, extra):
        """`(l_t, (d_c, d_h), masks of the levels above)` from what the level read."""
        if not self.keep_width:
            return extra, (None, None), None
        units = self.layer.units
        # The top level reads no masks of levels above: no empty piece.
        bounds = [units, 2 * units, units + self.keep_width][: 3 if self.masks_above else 2]
        lower, keep_c, keep_h, *above = ops.split(extra, bounds, axis=-1)
        return lower, (keep_c, keep_h), above[0] if above else None

    def preactivations(self, input_product, recurrent_product):
        if not self.normalizes_input:
            return self.layer.full_preactivations(input_product, recurrent_product)
        projected, normalized, inverse_deviation = self.layer.normalized_input(input_product)
        return ops.concatenate(
            [self.layer.full_preactivations(projected, recurrent_product),
             normalized, inverse_deviation],
            axis=-1,
        )

    def forward(self, z, extra, states):
        lower, keep, above = self._split_extra(extra)
        h, c, _ = self.layer.layer_preactivation_step(z, lower, states, keep)
        up = c if above is None else ops.concatenate([c, above], axis=-1)
        return [h, c], h, up

    def backward(self, z, extra, states, d_new_states, d_up_hidden, d_up_extra):
        lower, (keep_c, keep_h), above = self._split_extra(extra)
        d_m, d_hidden, d_h_tm1 = self.layer.hidden_state_backward(
            add_gradients(d_new_states[0], d_up_hidden), keep_h
        )
        # d_c stays a list of terms, summed with the cell's own in one
        # reduction (see `add_gradients`). The level above hands back the
        # gradient of the memory it read (its masks have none).
        d_gates, d_lower, d_c_tm1, sums, m = self.layer.layer_backward(
            z, lower, states[1], [d_m, [d_new_states[1], d_up_extra]], keep_c
        )
        d_input, d_recurrent = self.layer.join_gate_gradients(d_gates)
        sums = list(sums)
        if self.layer.layer_norm:
            gate_width = len(self.layer.kernel_gates) * self.layer.units
            norm_end = gate_width + len(self.layer.recurrent_gates) * self.layer.units + 1
            d_recurrent, d_gamma = self.layer.recurrent_norm_backward(
                z[..., gate_width:norm_end], d_recurrent
            )
            sums.append(d_gamma)
            if self.normalizes_input:
                normalized, inverse_deviation = ops.split(
                    z[..., norm_end:], [gate_width], axis=-1
                )
                d_input, input_sums = self.layer.normalized_input_backward(
                    d_input, normalized, inverse_deviation
                )
                sums += input_sums
        d_extra = d_lower
        if self.extra_columns > self.layer.units:
            # The bottom level's extra columns are part of the projected
            # input: the keep masks, no function of the weights, get zeros.
            d_extra = ops.concatenate(
                [d_lower, ops.zeros_like(extra[..., self.layer.units :])], axis=-1
            )
        # What the layer's `backward_weight_gradients` reads (its own
        # equations keep nothing: `memory_backward_saves` is 0).
        saved = [] if self.layer.projection_kernel is None else [m, d_hidden]
        return LevelStepGradients(
            d_input, d_recurrent, d_extra, [d_h_tm1, d_c_tm1], sums, saved
        )

    def summed_weights(self):
        extra = self.layer.normalized_input_weights() if self.normalizes_input else []
        return self.layer.summed_weights() + extra

    def product_weights(self):
        return self.layer.product_weights()

    def backward_weight_gradients(self, d_preactivations, states_in, saved):
        return self.layer.backward_weight_gradients(d_preactivations, states_in, saved)

    def recurrent_columns(self, rows):
        return self.layer.recurrent_columns(rows)


@keras.saving.register_keras_serializable(package="keras_gated")
class DepthGatedLSTM(GatedRNN):
    """Depth-gated LSTM layer: a `keras.layers.RNN` over a `DepthGatedLSTMCell`.

    `DepthGatedLSTM(units, num_layers=N)` runs the whole stack of N
    depth-gated layers in one pass over time, computing the layers
    bottom-up inside every step, so each layer's depth gate sees the memory
    cell of the layer below at the same step. It returns the top layer's
    outputs; with `return_state=True` the states that follow are the (h, c)
    of every layer, bottom first: `h_0, c_0, h_1, c_1, ...`.

    Two separate `DepthGatedLSTM` layers stacked in a `Sequential` model are
    not a depth-gated stack: the upper one only sees the lower one's hidden
    outputs, so each gates on its own input. Use `num_layers` to connect
    the memory cells.

    Takes the arguments of `DepthGatedLSTMCell` (units, num_layers,
    use_peepholes, activations, initializers, regularizers, constraints,
    dropout, ...) and of `keras.layers.RNN` (return_sequences, return_state,
    go_backwards, stateful, unroll, zero_output_for_mask). The default
    `fused=True` projects the first layer's input for all time steps in one
    product before the loop.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((None, 16)),
    ...     DepthGatedLSTM(64, num_layers=3),
    ...     keras.layers.Dense(1),
    ... ])
    """

    cell_class = DepthGatedLSTMCell

    @property
    def num_layers(self):
        """The number of depth-gated layers in the stack."""
        return self.cell.num_layers
