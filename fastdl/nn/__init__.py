"""Layers and containers (``fastdl.nn``), shaped like ``torch.nn``."""
from __future__ import annotations

import sys

from . import utils
from .. import functional, init

# ``fastdl.nn.functional`` and ``fastdl.nn.init`` are the same modules as ``fastdl.functional`` and
# ``fastdl.init``, where PyTorch users look for them (``import fastdl.nn.functional as F`` works)
sys.modules[__name__ + ".functional"] = functional
sys.modules[__name__ + ".init"] = init
from .layers import (BCEWithLogitsLoss, Bilinear, CrossEntropyLoss, Dropout, Dropout1d, Dropout2d, Flatten,
                     Identity, Linear, LogSoftmax, MSELoss, NLLLoss, ReLU, Sigmoid, Softmax, Tanh, Unflatten)
from .activation import (CELU, ELU, GELU, GLU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid, Mish, PReLU,
                         ReLU6, SELU, SiLU, Softplus, Softsign, Tanhshrink)
from .containers import ModuleDict, ParameterDict, ParameterList
from .conv_more import (AdaptiveAvgPool1d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d, Conv1d, ConvTranspose1d,
                        ConvTranspose2d, EmbeddingBag, GroupNorm, MaxPool1d)
from .transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
                          TransformerEncoderLayer)
from .loss import (BCELoss, CosineEmbeddingLoss, GaussianNLLLoss, HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss,
                   MarginRankingLoss, PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss)
from .attention import AdditiveAttention, MultiheadAttention
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, GlobalAvgPool2d, MaxPool2d
from .module import Module, ModuleList, Parameter, Sequential
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .rnn import GRU, LSTM, RNN, Embedding, GRUCell, LSTMCell, RNNCell

__all__ = [
    "Module", "ModuleList", "Parameter", "Sequential", "Identity", "Linear", "ReLU", "Tanh", "Sigmoid",
    "Softmax", "LogSoftmax", "Dropout", "Flatten", "CrossEntropyLoss", "NLLLoss", "MSELoss",
    "BCEWithLogitsLoss", "utils", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell", "Embedding",
    "MultiheadAttention", "AdditiveAttention", "functional", "init", "Bilinear", "Dropout1d", "Dropout2d",
    "Unflatten", "CELU", "ELU", "GELU", "GLU", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU", "LogSigmoid",
    "Mish", "PReLU", "ReLU6", "SELU", "SiLU", "Softplus", "Softsign", "Tanhshrink", "ModuleDict", "ParameterDict",
    "ParameterList", "BCELoss", "CosineEmbeddingLoss", "GaussianNLLLoss", "HingeEmbeddingLoss", "HuberLoss",
    "KLDivLoss", "L1Loss", "MarginRankingLoss", "PoissonNLLLoss", "SmoothL1Loss", "SoftMarginLoss",
    "AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AvgPool1d", "Conv1d", "ConvTranspose1d",
    "ConvTranspose2d", "EmbeddingBag", "GroupNorm", "MaxPool1d", "Transformer", "TransformerDecoder",
    "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer",
]
