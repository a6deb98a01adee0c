"""The gated cells and layers of keras-gated."""

from keras_gated.layers.base import GatedCell
from keras_gated.layers.base import GatedRNN
from keras_gated.layers.coupled_lstm import CoupledLSTM
from keras_gated.layers.coupled_lstm import CoupledLSTMCell
from keras_gated.layers.depth_gated_lstm import DepthGatedLSTM
from keras_gated.layers.depth_gated_lstm import DepthGatedLSTMCell
from keras_gated.layers.grid_lstm import GridLSTM
from keras_gated.layers.grid_lstm import GridLSTMCell
from keras_gated.layers.highway import Highway
from keras_gated.layers.lstm import LSTM
from keras_gated.layers.lstm import LSTMCell
from keras_gated.layers.peephole_lstm import PeepholeLSTM
from keras_gated.layers.peephole_lstm import PeepholeLSTMCell
from keras_gated.layers.untied_lstm import UntiedLSTM
from keras_gated.layers.untied_lstm import UntiedLSTMCell
