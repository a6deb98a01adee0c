"""The cell registry: a recurrent cell, layer or stack from a cell name.

Every task of keras-gated builds its recurrent part from here, so a cell name
chosen by the tuner (or typed on the command line) means the same thing
everywhere. There is one stack builder, `stack_layers`; the other builders
call it:

* `stack_layers(cell, units, num_layers, ...)`: the layers of a stack, one
  of this package's (or Keras's) fused layers per level, so every level keeps
  its fast path; a native stack (`depth_gated`, `grid`) is one layer whose
  levels are computed inside each time step;
* `make_rnn_layer(cell, units, ...)`: the stack as one layer (a
  `RecurrentStack` when it has several), with `return_sequences` /
  `return_state` as in Keras;
* `recurrent_stack(inputs, cell, units, ...)`: the stack applied to a tensor
  (functional API), optionally bidirectional;
* `make_cell(cell, units, ...)`: a *cell* for `keras.layers.RNN` or for a
  decoder that runs one step at a time (no fast path: one step has no loop to
  fuse).

Cell names (`available_cells()` lists those importable right now):

* `lstm`, `gru`: Keras's own `LSTM` / `GRU` (baselines);
* `peephole`, `coupled`, `untied`: this package's `PeepholeLSTM`,
  `CoupledLSTM`, `UntiedLSTM`;
* `depth_gated`, `grid`: `DepthGatedLSTM` and `GridLSTM`, native stacks that
  take `num_layers` as their own depth.

This module sits at the top of the package rather than in `keras_gated.layers`
because it names Keras's cells as well as this package's, and the tasks and
the tuning code both read it; `keras_gated.tuning.recurrent` re-exports it.
"""

import keras

import keras_gated

#: Cell name -> (layer class name, cell class name, module of both).
_CELL_CLASSES = {
    "lstm": ("LSTM", "LSTMCell", keras.layers),
    "gru": ("GRU", "GRUCell", keras.layers),
    "peephole": ("PeepholeLSTM", "PeepholeLSTMCell", keras_gated),
    "coupled": ("CoupledLSTM", "CoupledLSTMCell", keras_gated),
    "untied": ("UntiedLSTM", "UntiedLSTMCell", keras_gated),
    "depth_gated": ("DepthGatedLSTM", "DepthGatedLSTMCell", keras_gated),
    "grid": ("GridLSTM", "GridLSTMCell", keras_gated),
}

#: Every cell name this module knows, in display order.
ALL_CELLS = tuple(_CELL_CLASSES)

#: Cells whose layer is itself a stack of `num_layers` levels (its own
#: `num_layers` argument).
NATIVE_STACKS = ("depth_gated", "grid")

#: Cells whose layers take the LSTM options (docs/options.md). "lstm" with an
#: option is keras_gated.LSTM: Keras's LSTM has no such options, and
#: keras_gated.LSTM is the same LSTM with them.
OPTION_CELLS = ("lstm", "peephole", "coupled", "untied", "depth_gated")

#: The arguments of the LSTM options.
LSTM_OPTIONS = ("layer_norm", "projection_units", "cell_clip", "zoneout")


def lstm_options(cell, units, layer_norm=False, projection=0.0, zoneout=0.0):
    """The layer arguments of the tuner's LSTM options, for a cell that takes them.

    `projection` is a fraction of `units` (0 for none: `projection_units =
    round(projection * units)`). Returns {} for a cell outside
    `OPTION_CELLS` and for options all off, so a model without them is
    built exactly as before.
    """
    if cell not in OPTION_CELLS:
        return {}
    options = {}
    if layer_norm:
        options["layer_norm"] = True
    if projection:
        options["projection_units"] = max(1, round(projection * units))
    if zoneout:
        options["zoneout"] = float(zoneout)
    return options


def available_cells():
    """The cell names whose classes can be imported now, in `ALL_CELLS` order."""
    return tuple(
        name
        for name, (layer, cell, module) in _CELL_CLASSES.items()
        if getattr(module, layer, None) is not None
        and getattr(module, cell, None) is not None
    )


def check_cell(cell):
    """Returns `cell` if it is an available cell name, else raises ValueError."""
    cells = available_cells()
    if cell not in cells:
        missing = [c for c in ALL_CELLS if c not in cells]
        hint = (
            f" ({', '.join(missing)} not available in this version of "
            "keras_gated)"
            if cell in missing
            else ""
        )
        raise ValueError(
            f"Unknown `cell`: {cell!r}{hint}. Accepted values: "
            f"{', '.join(cells)}."
        )
    return cell


def _check_num_layers(num_layers):
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(
            "`num_layers` must be a positive integer, the number of stacked "
            f"recurrent layers. Received: num_layers={num_layers!r}"
        )
    return num_layers


def stack_size(cell, num_layers):
    """How many layers `stack_layers(cell, units, num_layers)` builds."""
    check_cell(cell)
    _check_num_layers(num_layers)
    return 1 if cell in NATIVE_STACKS else num_layers


def _classes(cell, arguments):
    """`(layer class, cell class)` of `cell` for these constructor arguments.

    "lstm" with an LSTM option is keras_gated's LSTM: Keras's has no options.
    """
    if cell == "lstm" and any(key in arguments for key in LSTM_OPTIONS):
        return keras_gated.LSTM, keras_gated.LSTMCell
    layer_name, cell_name, module = _CELL_CLASSES[cell]
    return getattr(module, layer_name), getattr(module, cell_name)


def stack_layers(
    cell,
    units,
    num_layers=1,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    names=None,
    **cell_options,
):
    """The layers of a `num_layers`-deep recurrent stack of `cell`: the one builder.

    A native stack (`depth_gated`, `grid`) is one layer given `num_layers` as
    its own depth. Any other cell gives `num_layers` of its own layer class
    (`keras.layers.LSTM`, `keras_gated.PeepholeLSTM`, ...), each with its
    fused projection and fast path; every level but the top returns sequences
    (the next level reads them), the top returns them if `return_sequences`.

    Args:
        cell: A name from `available_cells()`.
        units: Width of the hidden state of every level.
        num_layers: Depth of the stack.
        return_sequences: Whether the top level returns every step.
        return_state: Whether every level also returns its final states
            (a decoder feeds them back in).
        go_backwards: Passed to every level.
        dropout, recurrent_dropout: Passed to every level.
        names: The layers' names, one per layer built (`stack_size`), or None.
        **cell_options: Any other argument of the layer class (e.g.
            `peepholes="fo"`, `stateful=True`).

    Returns:
        A list of layers, bottom first, to apply in turn.
    """
    size = stack_size(cell, num_layers)
    if names is not None and len(names) != size:
        raise ValueError(f"`names` needs {size} names for this stack; received {list(names)!r}.")
    layer_class, _ = _classes(cell, cell_options)
    options = dict(
        cell_options,
        return_state=return_state,
        go_backwards=go_backwards,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
    )
    if cell in NATIVE_STACKS:
        options["num_layers"] = num_layers
    names = list(names) if names is not None else [None] * size
    return [
        layer_class(
            units,
            return_sequences=index < size - 1 or return_sequences,
            name=names[index],
            **options,
        )
        for index in range(size)
    ]


@keras.saving.register_keras_serializable(package="keras_gated")
class RecurrentStack(keras.layers.Layer):
    """Recurrent layers applied in turn, as one layer.

    What `make_rnn_layer(cell, units, num_layers > 1)` returns for a cell that
    is not a native stack: each level is the cell's own fused layer (so it
    keeps its fast path), where `keras.layers.RNN(StackedRNNCells)` would run
    the cells step by step.

    With `return_state`, every level returns its states and the stack returns
    `[output, *states of level 0, *states of level 1, ...]`, flat, bottom
    first; `initial_state` takes the same flat list.

    Args:
        layers: The levels, bottom first (from `stack_layers`).
    """

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.levels = list(layers)
        self.return_state = bool(self.levels[-1].return_state)
        self.return_sequences = bool(self.levels[-1].return_sequences)
        self.supports_masking = True

    def build(self, sequences_shape, initial_state_shape=None):
        shape = tuple(sequences_shape)
        for level in self.levels:
            level.build(shape)
            output_shape = level.compute_output_shape(shape)
            # A level that returns its states gives [output shape, state shapes...].
            shape = tuple(output_shape[0] if level.return_state else output_shape)
        self.built = True

    def _state_counts(self):
        return [len(keras.tree.flatten(level.cell.state_size)) for level in self.levels]

    def call(self, sequences, initial_state=None, mask=None, training=None):
        starts = [0]
        for count in self._state_counts():
            starts.append(starts[-1] + count)
        x = sequences
        states = []
        for index, level in enumerate(self.levels):
            level_state = (
                None if initial_state is None
                else list(initial_state[starts[index]:starts[index + 1]])
            )
            outputs = level(x, initial_state=level_state, mask=mask, training=training)
            if level.return_state:
                x, level_states = outputs[0], list(outputs[1:])
                states.extend(level_states)
            else:
                x = outputs
        return [x, *states] if self.return_state else x

    def compute_mask(self, sequences, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * sum(self._state_counts())
        return output_mask

    def get_config(self):
        return {
            **super().get_config(),
            "layers": [keras.saving.serialize_keras_object(level) for level in self.levels],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layers = [keras.saving.deserialize_keras_object(level) for level in config.pop("layers")]
        return cls(layers, **config)


def make_rnn_layer(
    cell,
    units,
    num_layers=1,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    name=None,
    **kwargs,
):
    """Builds one recurrent *layer* by name: `stack_layers` as one layer.

    With `num_layers=1`, or a native stack, this is the cell's own layer
    class (`keras.layers.LSTM`, `keras_gated.PeepholeLSTM`,
    `keras_gated.DepthGatedLSTM(units, num_layers=...)`, ...). With
    `num_layers > 1` for any other cell it is a `RecurrentStack` of that
    many of those layers, whose states (with `return_state`) are those of
    all levels, flat, bottom first.

    Args:
        cell: A name from `available_cells()`.
        units: Width of the hidden state.
        num_layers: Depth (see above).
        return_sequences, return_state, go_backwards: As in Keras.
        dropout, recurrent_dropout: Passed to every level.
        name: Layer name.
        **kwargs: Any other argument of the cell's layer class.

    Example:
    >>> decoder = make_rnn_layer("coupled", 64, return_sequences=True,
    ...                          return_state=True)
    """
    size = stack_size(cell, num_layers)
    layers = stack_layers(
        cell,
        units,
        num_layers,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        names=[name] if size == 1 else None,
        **kwargs,
    )
    return layers[0] if size == 1 else RecurrentStack(layers, name=name)


def recurrent_stack(
    inputs,
    cell,
    units,
    num_layers=1,
    bidirectional=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    return_sequences=False,
    name="recurrent",
    **kwargs,
):
    """Applies `stack_layers(...)` to `inputs` (functional API).

    With `bidirectional=True` each layer is wrapped in
    `keras.layers.Bidirectional` (outputs concatenated, so the width is
    `2 * units`).

    Args:
        inputs: A `(batch, time, features)` tensor (a Keras tensor in a
            functional model); a mask from `Embedding(mask_zero=True)` is
            honoured.
        cell, units, num_layers, dropout, recurrent_dropout, **kwargs: As
            in `stack_layers`.
        bidirectional: Whether to read the sequence in both directions.
        return_sequences: Whether the top layer returns every step.
        name: Prefix of the layer names (`{name}_{cell}_{index}`).

    Returns:
        The output tensor of the top layer.

    Example:
    >>> tokens = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(1000, 32, mask_zero=True)(tokens)
    >>> x = recurrent_stack(x, "peephole", 64, num_layers=2, bidirectional=True)
    """
    size = stack_size(cell, num_layers)
    layers = stack_layers(
        cell,
        units,
        num_layers,
        return_sequences=return_sequences,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        # Bidirectional names its two copies itself; the wrapper gets the name.
        names=None if bidirectional else [f"{name}_{cell}_{index}" for index in range(size)],
        **kwargs,
    )
    x = inputs
    for index, layer in enumerate(layers):
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"{name}_bi{cell}_{index}")
        x = layer(x)
    return x


def make_cell(cell, units, num_layers=1, dropout=0.0, recurrent_dropout=0.0, **kwargs):
    """Builds a recurrent *cell* (for `keras.layers.RNN`, or one step at a time) by name.

    Prefer `stack_layers` / `make_rnn_layer` for whole sequences: a cell in
    `keras.layers.RNN` runs step by step, without the fused layers' fast path.

    Args:
        cell: A name from `available_cells()`.
        units: Width of the hidden state.
        num_layers: Depth. A native stack (`depth_gated`, `grid`) gets it as
            its own `num_layers`; any other cell is repeated in a
            `keras.layers.StackedRNNCells`.
        dropout, recurrent_dropout: Passed to every cell.
        **kwargs: Any other argument of the cell class (e.g.
            `peepholes="fo"`, `unit_forget_bias=False`).

    Returns:
        A cell object. Its `state_size` tells how many state tensors a
        decoder must carry (two per LSTM-family level, one for GRU).

    Example:
    >>> cell = make_cell("peephole", 32, num_layers=2)
    >>> layer = keras.layers.RNN(cell, return_state=True)
    """
    size = stack_size(cell, num_layers)
    _, cell_class = _classes(cell, kwargs)
    kwargs = dict(kwargs, dropout=dropout, recurrent_dropout=recurrent_dropout)
    if cell in NATIVE_STACKS:
        return cell_class(units, num_layers=num_layers, **kwargs)
    if size == 1:
        return cell_class(units, **kwargs)
    return keras.layers.StackedRNNCells([cell_class(units, **kwargs) for _ in range(size)])


__all__ = [
    "ALL_CELLS",
    "NATIVE_STACKS",
    "RecurrentStack",
    "available_cells",
    "check_cell",
    "make_cell",
    "make_rnn_layer",
    "recurrent_stack",
    "stack_layers",
    "stack_size",
]
