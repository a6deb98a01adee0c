"""Read what the gates of a recurrent layer do, step by step.

Every cell of keras-gated computes one step with
`gated_step(projected, states, training) -> (output, new_states, gates)`,
where `gates` maps gate names ("input", "forget", "output", ...) to their
activations, and `project_inputs(x)` computes the input half of every gate
block for a whole sequence. The layers use the same two methods (and throw
the gates away), so the probe re-runs exactly the cell's own equations with
the layer's own weights, in a Python loop over time, and keeps what the
layer discards. Nothing is patched and nothing runs unless you call the
probe, so it costs nothing when unused.

What it reads:

* the layers of this package (`PeepholeLSTM`, `CoupledLSTM`, `UntiedLSTM`,
  and any cell with `gated_step` and `project_inputs`, such as the
  depth-gated and Grid LSTM stacks, whose states are (h, c) for every
  layer/level), also inside a plain `keras.layers.RNN(cell)`;
* `keras.layers.LSTM` / `LSTMCell`: the gates are recomputed from the
  layer's weights. Keras concatenates the gate blocks of `kernel`,
  `recurrent_kernel` and `bias` in the order **i, f, c, o** (input, forget,
  candidate, output);
* `keras.layers.GRU` / `GRUCell`: recomputed from the weights, blocks in
  the order **z, r, h** (update, reset, candidate); both `reset_after=True`
  (the default, with a separate recurrent bias, `bias` of shape (2, 3H))
  and `reset_after=False` are handled. A GRU keeps no separate memory cell,
  so its trace has no `cell_states`;
* `keras.layers.SimpleRNN`: it has no gates, but its hidden states and its
  gradient flow are read the same way (the baseline that vanishes);
* `keras.layers.Bidirectional` over any of these: two traces, named
  `"<name>/forward"` and `"<name>/backward"`;
* models (`keras.Sequential` and functional models, nested ones
  included): the model is run once on the inputs and the input of every
  supported layer is taken on the way, with its mask, so a layer deep inside
  the model is probed on exactly what it receives there.

All arrays are indexed by the position of the input step, also for layers
that run backwards (`go_backwards=True`, the backward half of a
`Bidirectional`): index t holds what the layer computed when it read x_t.

Example:

>>> model = keras.Sequential([
...     keras.Input((20, 8)),
...     kg.PeepholeLSTM(16, return_sequences=True),
...     keras.layers.LSTM(16),
...     keras.layers.Dense(1)])
>>> traces = kg.probe.gate_activations(model, x)
>>> trace = traces["peephole_lstm"]
>>> trace.gates["forget"].shape               # (batch, T, units)
>>> left, right = trace.saturation("forget")  # per unit, in [0, 1]
>>> flows = kg.probe.gradient_flow(model, x, y)
>>> flows["lstm"].shape                       # (levels, T): ||dL/dh_t||

The package's parts:

* `trace`: `GateTrace` and `trace_layer`, one layer's cell re-run step by
  step (this package's cells through `gated_step`, stacks through
  `perturbed_step`, see `PerturbableStack`);
* `keras_cells`: the steps of Keras's LSTMCell, GRUCell and SimpleRNNCell,
  re-derived from their weights;
* `walk`: running a model with every layer call routed through a hook
  (the only module that uses Keras's private API);
* `replay`: one pass through a model with its recurrent layers replayed;
* `gradients`: the gradient flow, differentiated per backend;
* `inspection`: `inspect`, `gate_activations`, `transform_gates`.
"""

from keras_gated.probe.gradients import gradient_flow
from keras_gated.probe.inspection import (
    Inspection,
    gate_activations,
    inspect,
    transform_gates,
)
from keras_gated.probe.trace import (
    LEFT_SATURATION,
    RIGHT_SATURATION,
    GateTrace,
    PerturbableStack,
    is_recurrent,
    trace_layer,
)
from keras_gated.probe.walk import find_gated_layers

__all__ = [
    "GateTrace",
    "Inspection",
    "PerturbableStack",
    "find_gated_layers",
    "gate_activations",
    "gradient_flow",
    "inspect",
    "is_recurrent",
    "trace_layer",
    "transform_gates",
]
