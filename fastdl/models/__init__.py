"""Ready-made models (``fastdl.models``)."""
from __future__ import annotations

from .. import nn


def mlp(in_features: int = 784, hidden=(256, 128), num_classes: int = 10, dropout: float = 0.0,
        activation: str = "relu") -> nn.Sequential:
    """A multilayer perceptron: Flatten, then [Linear, activation, Dropout] per hidden size, then Linear.

    Weights use He initialisation for ReLU (Xavier, the curriculum's 1/fan_in, for tanh/sigmoid).
    """
    from .. import init

    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    if activation not in acts:
        raise ValueError(f"mlp: activation must be one of {sorted(acts)}, got {activation!r}")
    layers, prev = [nn.Flatten()], in_features
    for h in hidden:
        lin = nn.Linear(prev, h)
        (init.he_normal_ if activation == "relu" else init.lecun_normal_)(lin.weight)
        init.zeros_(lin.bias)
        layers += [lin, acts[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        prev = h
    layers.append(nn.Linear(prev, num_classes))
    return nn.Sequential(*layers)


from .cnn import (AlexNet, BasicBlock, Bottleneck, GoogLeNet, Inception, ResNet, VGG, alexnet,  # noqa: E402
                  googlenet, inception_module, lenet5, resnet18, resnet34, resnet50, vgg16, vgg16_bn)

from .charlm import CharLM, CharVocab  # noqa: E402
from .seq2seq import Seq2Seq  # noqa: E402

__all__ = ["mlp", "CharLM", "CharVocab", "Seq2Seq", "lenet5", "alexnet", "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50", "googlenet",
           "inception_module", "AlexNet", "VGG", "ResNet", "BasicBlock", "Bottleneck", "Inception", "GoogLeNet"]
from .word2vec import SkipGramNegativeSampling  # noqa: E402
