"""Build a recurrent cell, layer or stack from a cell name.

Every task of keras-gated builds its recurrent part through these three
functions, so a cell name chosen by the tuner (or typed on the command line)
means the same thing everywhere:

* `make_cell(cell, units, ...)`: a cell for `keras.layers.RNN` (a decoder
  that runs one step at a time uses this);
* `make_rnn_layer(cell, units, ...)`: one recurrent layer (possibly a
  whole stack when the cell is a native stack or `num_layers > 1`), with
  `return_sequences` / `return_state` as in Keras;
* `recurrent_stack(inputs, cell, units, ...)`: the functional-API block
  used by encoders and classifiers: `num_layers` layers, optionally
  bidirectional.

Cell names (`available_cells()` lists those importable right now):

* `lstm`, `gru`: Keras's own `LSTM` / `GRU` (baselines);
* `peephole`, `coupled`, `untied`: this package's `PeepholeLSTM`,
  `CoupledLSTM`, `UntiedLSTM`;
* `depth_gated`, `grid`: `DepthGatedLSTM` and `GridLSTM`. They are native
  stacks: `num_layers` becomes their own depth (one layer whose levels are
  computed bottom-up inside each time step), not a pile of separate layers.
"""

import inspect

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

#: Cells whose layer is itself a stack of `num_layers` levels.
NATIVE_STACKS = ("depth_gated", "grid")

# The argument a native stack takes for its depth; the first one its
# constructor accepts is used (the SPEC names `num_layers`).
_DEPTH_ARGUMENTS = ("num_layers", "depth", "num_levels", "levels")


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


def _depth_kwargs(constructor, num_layers):
    parameters = dict(inspect.signature(constructor).parameters)
    # A GatedRNN layer forwards its cell's arguments through **kwargs, so
    # the depth argument is found on its `cell_class`.
    cell_class = getattr(constructor, "cell_class", None)
    if cell_class is not None:
        parameters.update(inspect.signature(cell_class).parameters)
    for name in _DEPTH_ARGUMENTS:
        if name in parameters:
            return {name: num_layers}
    raise ValueError(
        f"{constructor.__name__} takes none of {_DEPTH_ARGUMENTS}: cannot "
        f"build a native stack of num_layers={num_layers}."
    )


def _check_num_layers(num_layers):
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(
            "`num_layers` must be a positive integer, the number of stacked "
            f"recurrent layers. Received: num_layers={num_layers!r}"
        )
    return num_layers


def make_cell(cell, units, num_layers=1, dropout=0.0, recurrent_dropout=0.0, **kwargs):
    """Builds a recurrent *cell* (for `keras.layers.RNN`) by name.

    Args:
        cell: A name from `available_cells()`.
        units: Width of the hidden state.
        num_layers: Depth. A native stack (`depth_gated`, `grid`) gets it as
            its own depth; any other cell is repeated in a
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
    check_cell(cell)
    _check_num_layers(num_layers)
    _, cell_name, module = _CELL_CLASSES[cell]
    cell_class = getattr(module, cell_name)
    kwargs = dict(kwargs, dropout=dropout, recurrent_dropout=recurrent_dropout)
    if cell in NATIVE_STACKS:
        return cell_class(units, **_depth_kwargs(cell_class, num_layers), **kwargs)
    if num_layers == 1:
        return cell_class(units, **kwargs)
    return keras.layers.StackedRNNCells(
        [cell_class(units, **kwargs) for _ in range(num_layers)]
    )


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
    """Builds one recurrent *layer* by name.

    With `num_layers=1`, or a native stack, this is the cell's own layer
    class (`keras.layers.LSTM`, `keras_gated.PeepholeLSTM`,
    `keras_gated.DepthGatedLSTM(units, num_layers=...)`, ...), which runs
    fastest. With `num_layers > 1` for any other cell it is a
    `keras.layers.RNN` over `make_cell(...)` (a `StackedRNNCells`), so that
    a decoder can feed and return the states of all levels at once.

    Args:
        cell: A name from `available_cells()`.
        units: Width of the hidden state.
        num_layers: Depth (see above).
        return_sequences, return_state, go_backwards: As in Keras.
        dropout, recurrent_dropout: Passed to every cell.
        name: Layer name.
        **kwargs: Any other argument of the cell class.

    Example:
    >>> decoder = make_rnn_layer("coupled", 64, return_sequences=True,
    ...                          return_state=True)
    """
    check_cell(cell)
    _check_num_layers(num_layers)
    layer_name, _, module = _CELL_CLASSES[cell]
    layer_class = getattr(module, layer_name)
    common = dict(
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        name=name,
    )
    if cell in NATIVE_STACKS:
        return layer_class(
            units,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            **_depth_kwargs(layer_class, num_layers),
            **common,
            **kwargs,
        )
    if num_layers == 1:
        return layer_class(
            units, dropout=dropout, recurrent_dropout=recurrent_dropout, **common, **kwargs
        )
    return keras.layers.RNN(
        make_cell(cell, units, num_layers, dropout, recurrent_dropout, **kwargs),
        **common,
    )


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
    """Applies a stack of recurrent layers to `inputs` (functional API).

    A native stack (`depth_gated`, `grid`) is one layer of depth
    `num_layers`; other cells give `num_layers` separate layers, every one
    but the last returning sequences. With `bidirectional=True` each layer
    is wrapped in `keras.layers.Bidirectional` (outputs concatenated, so
    the width is `2 * units`).

    Args:
        inputs: A `(batch, time, features)` tensor (a Keras tensor in a
            functional model); a mask from `Embedding(mask_zero=True)` is
            honoured.
        cell, units, num_layers, dropout, recurrent_dropout, **kwargs: As
            in `make_rnn_layer`.
        bidirectional: Whether to read the sequence in both directions.
        return_sequences: Whether the top layer returns every step.
        name: Prefix of the layer names.

    Returns:
        The output tensor of the top layer.

    Example:
    >>> tokens = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(1000, 32, mask_zero=True)(tokens)
    >>> x = recurrent_stack(x, "peephole", 64, num_layers=2, bidirectional=True)
    """
    check_cell(cell)
    _check_num_layers(num_layers)
    if cell in NATIVE_STACKS:
        plan = [(num_layers, return_sequences)]
    else:
        plan = [(1, i < num_layers - 1 or return_sequences) for i in range(num_layers)]
    x = inputs
    for index, (depth, sequences) in enumerate(plan):
        layer = make_rnn_layer(
            cell,
            units,
            num_layers=depth,
            return_sequences=sequences,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name=f"{name}_{cell}_{index}" if not bidirectional else None,
            **kwargs,
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"{name}_bi{cell}_{index}")
        x = layer(x)
    return x
