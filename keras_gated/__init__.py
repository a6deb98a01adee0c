"""keras-gated: gated recurrent building blocks for Keras 3.

    import keras_gated as kg
    layer = kg.PeepholeLSTM(256, return_sequences=True)
"""

from keras_gated import activations
from keras_gated import callbacks
from keras_gated import probe
from keras_gated.layers import CoupledLSTM
from keras_gated.layers import CoupledLSTMCell
from keras_gated.layers import DepthGatedLSTM
from keras_gated.layers import DepthGatedLSTMCell
from keras_gated.layers import GatedCell
from keras_gated.layers import GatedRNN
from keras_gated.layers import GridLSTM
from keras_gated.layers import GridLSTMCell
from keras_gated.layers import Highway
from keras_gated.layers import LSTM
from keras_gated.layers import LSTMCell
from keras_gated.layers import PeepholeLSTM
from keras_gated.layers import PeepholeLSTMCell
from keras_gated.layers import UntiedLSTM
from keras_gated.layers import UntiedLSTMCell

__version__ = "0.1.0"

__all__ = [
    "CoupledLSTM",
    "CoupledLSTMCell",
    "DepthGatedLSTM",
    "DepthGatedLSTMCell",
    "GatedCell",
    "GatedRNN",
    "GridLSTM",
    "GridLSTMCell",
    "Highway",
    "LSTM",
    "LSTMCell",
    "PeepholeLSTM",
    "PeepholeLSTMCell",
    "UntiedLSTM",
    "UntiedLSTMCell",
    "activations",
    "callbacks",
    "probe",
]
