"""Runnable chapters of the curriculum: ``fastdl demo NAME`` (``fastdl demo --list``).

Each demo module has ``run(quick=False, out=print) -> dict``: it trains on
real (MNIST-5k) or generated data, prints what it shows, and returns its
findings so the tests can check them (``quick`` shortens it for the tests).
"""
from __future__ import annotations

import importlib

DEMOS = {
    "init": "activation scale per layer of a deep ReLU net under tiny, large, Xavier and He init",
    "dropout": "train/test gap of an over-sized MLP with and without dropout and L2",
    "optimizers": "SGD, momentum, RMSprop and Adam on the same model and data",
    "lr-decay": "constant learning rate against step, exponential and inverse-time decay",
    "tune": "random search on a log scale for learning rate and beta, coarse to fine",
    "transfer": "pretrain on digits 0-4, fine-tune on a few 5-9s, against training from scratch",
    "multitask": "several binary labels per image, some missing, one shared trunk",
    "early-stopping": "stop when the validation loss stops improving and keep the best weights",
    "end-to-end": "a pipeline of hand-designed features against an end-to-end CNN as the data grows",
    "batchnorm": "the same deep net with and without batch normalization",
    "edges": "a fixed vertical-edge filter on an image, as the curriculum draws it",
    "padding": "output sizes of valid, same and strided convolutions",
    "many-to-one": "sequence classification with a GRU over variable-length digit sequences",
    "many-to-many": "per-step tagging with an LSTM (is this digit a new running record?)",
    "one-to-many": "generation: a start digit in the initial state, the sequence decoded step by step",
    "char-lm": "a character-level LSTM language model of first names, sampled with temperature",
    "date-translation": "attention seq2seq from human-readable dates to ISO: greedy vs beam, BLEU, a heat map",
    "word-vectors": "word2vec and GloVe on Python's documentation: neighbours, analogies, a PCA word map",
    "cnn-zoo": "LeNet-5, AlexNet, VGG-16, ResNet, GoogLeNet: parameter counts and a training step each",
}


ALIASES = {"nmt": "date-translation"}


def names() -> list:
    return sorted(n for n in DEMOS if _available(n))


def _module_name(name: str) -> str:
    return "fastdl.demos." + name.replace("-", "_")


def _available(name: str) -> bool:
    return importlib.util.find_spec(_module_name(name)) is not None


def run(name: str, quick: bool = False, out=print, **kw) -> dict:
    name = ALIASES.get(name, name)
    if name not in DEMOS or not _available(name):
        raise KeyError(f"unknown demo {name!r}; available: {', '.join(names())}")
    return importlib.import_module(_module_name(name)).run(quick=quick, out=out, **kw)
