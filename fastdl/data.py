"""Datasets, mini-batch loading, input standardisation and splits."""
from __future__ import annotations

import numpy as np

from . import rng
from .tensor import Tensor


class Dataset:
    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Arrays (or Tensors) sharing their first dimension; item i is the tuple of their i-th rows."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: give at least one array")
        self.arrays = [a.data if isinstance(a, Tensor) else np.asarray(a) for a in arrays]
        n = len(self.arrays[0])
        for i, a in enumerate(self.arrays):
            if a.ndim == 0 or len(a) != n:
                raise ValueError(f"TensorDataset: array {i} has {a.shape[0] if a.ndim else 0} rows, "
                                 f"array 0 has {n}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)


class DataLoader:
    """Mini-batches of a dataset as tuples of Tensors.

    Each epoch visits every sample once (``drop_last`` drops a short final
    batch).  With ``shuffle`` the order comes from ``seed`` when given (a new
    permutation per epoch, the same sequence every run), else from the
    generator that :func:`fastdl.manual_seed` seeds.  ``sampler``: an iterable of
    indices with a length (e.g. ``distributed.DistributedSampler``) that
    gives the order instead (not with ``shuffle``).  ``pin_memory`` is accepted
    for PyTorch's sake and changes nothing on the CPU.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, sampler=None, pin_memory: bool = False):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if sampler is not None:
            if shuffle:
                raise ValueError("DataLoader: sampler and shuffle=True exclude each other (the sampler gives the order)")
            if not hasattr(sampler, "__iter__") or not hasattr(sampler, "__len__"):
                raise TypeError(f"DataLoader: sampler must be an iterable of indices with a length, "
                                f"got {type(sampler).__name__}")
        self.sampler = sampler
        self.pin_memory = bool(pin_memory)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._gen = np.random.default_rng(seed) if seed is not None else None

    def state_dict(self) -> dict:
        """The shuffling state (the own generator's, when ``seed`` was given): restoring it with
        :meth:`load_state_dict` replays the same epochs' orders."""
        return {"rng": self._gen.bit_generator.state if self._gen is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or "rng" not in state:
            raise ValueError("DataLoader.load_state_dict: state must be a dict from DataLoader.state_dict()")
        if state["rng"] is not None and self._gen is not None:
            self._gen.bit_generator.state = state["rng"]

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
            if order.size and (order.min() < 0 or order.max() >= n):
                raise IndexError(f"DataLoader: the sampler gave index {int(order.min() if order.min() < 0 else order.max())} "
                                 f"outside the dataset's {n} samples")
            return order
        if not self.shuffle:
            return np.arange(n)
        return (self._gen or rng.generator()).permutation(n)

    def __iter__(self):
        order = self._order()
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        fast = isinstance(self.dataset, TensorDataset)
        for s in range(0, stop, self.batch_size):
            idx = order[s:s + self.batch_size]
            if fast:
                yield tuple(Tensor(a[idx]) for a in self.dataset.arrays)
            else:
                items = [self.dataset[int(i)] for i in idx]
                yield tuple(Tensor(np.stack([np.asarray(it[k]) for it in items])) for k in range(len(items[0])))


class Standardizer:
    """Zero mean, unit variance per feature, fitted on the training set and reused on dev/test.

    ``axis`` lists the axes averaged over (default 0: the samples).
    """

    def __init__(self, eps: float = 1e-8, axis=0):
        self.eps, self.axis = eps, axis
        self.mean_ = self.std_ = None

    def fit(self, x) -> "Standardizer":
        x = np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float64)
        keep = self.axis is not None  # axis=None: one scalar mean/std, applicable to any shape
        self.mean_ = x.mean(axis=self.axis, keepdims=keep)
        self.std_ = x.std(axis=self.axis, keepdims=keep)
        return self

    def _check(self):
        if self.mean_ is None:
            raise RuntimeError("Standardizer: call fit() on the training data first")

    def transform(self, x, dtype=np.float32) -> np.ndarray:
        self._check()
        x = np.asarray(x.data if isinstance(x, Tensor) else x)
        return ((x - self.mean_) / (self.std_ + self.eps)).astype(dtype)

    def fit_transform(self, x, dtype=np.float32) -> np.ndarray:
        return self.fit(x).transform(x, dtype)

    def inverse_transform(self, x) -> np.ndarray:
        self._check()
        return np.asarray(x) * (self.std_ + self.eps) + self.mean_

    def state_dict(self) -> dict:
        self._check()
        return {"mean": self.mean_, "std": self.std_, "eps": self.eps}

    def load_state_dict(self, d: dict) -> None:
        self.mean_, self.std_, self.eps = np.asarray(d["mean"]), np.asarray(d["std"]), float(d["eps"])


def train_dev_test_split(*arrays, dev: float = 0.1, test: float = 0.1, seed: int | None = 0,
                         stratify=None):
    """Split arrays (same first dimension) into train/dev/test parts.

    ``dev``/``test`` are fractions (or counts when >= 1).  With ``stratify``
    (labels) every class keeps its proportion in each part.  Returns
    ``(train, dev, test)``, each a tuple with one array per input.
    """
    if not arrays:
        raise ValueError("train_dev_test_split: give at least one array")
    arrays = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("train_dev_test_split: arrays differ in length")
    gen = np.random.default_rng(seed)

    def count(f, m):
        if f < 0:
            raise ValueError(f"train_dev_test_split: fractions must be >= 0, got {f}")
        return int(round(f * m)) if f < 1 else int(f)

    if stratify is None:
        order = gen.permutation(n)
        nt, nd = count(test, n), count(dev, n)
        if nt + nd > n:
            raise ValueError("train_dev_test_split: dev + test exceed the data")
        parts = order[nt + nd:], order[nt:nt + nd], order[:nt]
    else:
        labels = np.asarray(stratify)
        tr, dv, te = [], [], []
        for c in np.unique(labels):
            idx = gen.permutation(np.flatnonzero(labels == c))
            m = len(idx)
            nt = int(round(test * m)) if test < 1 else int(round(test * m / n))
            nd = int(round(dev * m)) if dev < 1 else int(round(dev * m / n))
            te.append(idx[:nt]); dv.append(idx[nt:nt + nd]); tr.append(idx[nt + nd:])  # noqa: E702
        parts = tuple(gen.permutation(np.concatenate(p)) for p in (tr, dv, te))
    return tuple(tuple(a[p] for a in arrays) for p in parts)


def batchify(tokens, batch_size: int) -> np.ndarray:
    """A long token stream as (batch_size, L) parallel streams (the tail that does not fit is dropped)."""
    t = np.asarray(tokens)
    n = len(t) // batch_size
    if n < 2:
        raise ValueError(f"batchify: a stream of {len(t)} tokens is too short for batch_size {batch_size}")
    return t[:n * batch_size].reshape(batch_size, n)


def tbptt_batches(streams, seq_len: int):
    """Consecutive windows over (B, L) streams for truncated backpropagation through time:
    yields (x, y) of shape (B, <= seq_len) with y the next tokens; carry the hidden state from one
    window to the next (detached with ``nn.utils.detach_state``)."""
    s = np.asarray(streams)
    if seq_len < 1:
        raise ValueError(f"tbptt_batches: seq_len must be >= 1, got {seq_len}")
    for i in range(0, s.shape[1] - 1, seq_len):
        j = min(i + seq_len, s.shape[1] - 1)
        yield s[:, i:j], s[:, i + 1:j + 1]
