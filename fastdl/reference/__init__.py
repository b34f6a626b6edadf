"""NumPy reference of every native kernel: the readable maths, and the oracle.

One module per kernel family, mirroring ``csrc/`` file for file (gemm, elementwise, softmax,
loss, conv, pool, norm, embedding, rnn, optim, attention, wordvec).  Each function has the name, signature, result
and argument checks of its twin in the native module ``fastdl._C``, so
``fastdl.set_backend("reference")`` can swap one for the other.  Shapes are in the docstrings;
nothing here is tuned for speed.
"""
from __future__ import annotations

from .attention import (additive_attention_backward, additive_attention_forward, attention_backward,
                        attention_forward, masked_softmax_backward, masked_softmax_forward)
from .conv import conv2d_backward, conv2d_forward
from .elementwise import (activation_backward, activation_forward, dropout_apply, dropout_mask, relu_backward, relu_forward, sigmoid_backward,
                          sigmoid_forward, tanh_backward, tanh_forward)
from .embedding import embedding_backward, embedding_forward
from .gemm import linear_backward, linear_forward, matmul, matmul_backward
from .loss import (bce_with_logits_backward, bce_with_logits_forward, cross_entropy_backward,
                   cross_entropy_forward, mse_backward, mse_forward)
from .norm import (batch_norm_backward, batch_norm_forward, group_norm_backward, group_norm_forward,
                   layer_norm_backward, layer_norm_forward)
from .optim import adam_step, adaptive_step, rmsprop_step, sgd_step
from .pool import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
                   avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward)
from .rnn import rnn_backward, rnn_forward, rnn_forward_dirs
from .softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward
from .wordvec import glove_cooccur, glove_train, word2vec_train

OPS = (
    "matmul", "matmul_backward", "linear_forward", "linear_backward",
    "relu_forward", "relu_backward", "tanh_forward", "tanh_backward",
    "sigmoid_forward", "sigmoid_backward", "activation_forward", "activation_backward", "dropout_mask",
    "dropout_apply",
    "softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "bce_with_logits_forward", "bce_with_logits_backward", "mse_forward", "mse_backward",
    "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "batch_norm_forward", "batch_norm_backward", "layer_norm_forward", "layer_norm_backward",
    "group_norm_forward", "group_norm_backward",
    "rnn_forward", "rnn_backward", "embedding_forward", "embedding_backward",
    "sgd_step", "adam_step", "rmsprop_step", "adaptive_step",
    "attention_forward", "attention_backward", "masked_softmax_forward", "masked_softmax_backward",
    "additive_attention_forward", "additive_attention_backward",
)
"""The kernel table every backend provides."""

TRAINERS = ("word2vec_train", "glove_cooccur", "glove_train")
"""The word-vector trainers (``fastdl.text``): native, with these twins for checking."""

__all__ = [
    "OPS",
    "TRAINERS",
    "glove_cooccur",
    "glove_train",
    "word2vec_train",
    "activation_backward",
    "activation_forward",
    "adam_step",
    "adaptive_step",
    "adaptive_avg_pool2d_backward",
    "additive_attention_backward",
    "additive_attention_forward",
    "attention_backward",
    "attention_forward",
    "adaptive_avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm_backward",
    "batch_norm_forward",
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "dropout_apply",
    "dropout_mask",
    "embedding_backward",
    "embedding_forward",
    "group_norm_backward",
    "group_norm_forward",
    "layer_norm_backward",
    "layer_norm_forward",
    "linear_backward",
    "linear_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "masked_softmax_backward",
    "masked_softmax_forward",
    "matmul",
    "matmul_backward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "mse_backward",
    "mse_forward",
    "relu_backward",
    "relu_forward",
    "rmsprop_step",
    "rnn_backward",
    "rnn_forward",
    "rnn_forward_dirs",
    "sgd_step",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
]
