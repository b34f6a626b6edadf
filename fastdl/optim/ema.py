"""Exponentially weighted averages: ``ewa`` over a sequence, and an EMA of model weights."""
from __future__ import annotations

import contextlib

import numpy as np

from ..tensor import Tensor


def ewa(values, beta: float, bias_correction: bool = True) -> np.ndarray:
    """v_t = beta v_{t-1} + (1 - beta) x_t with v_0 = 0; divided by (1 - beta^t) when ``bias_correction``."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"ewa: beta must be in [0, 1), got {beta}")
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    v = np.zeros(x.shape[1:])
    for t in range(len(x)):
        v = beta * v + (1 - beta) * x[t]
        out[t] = v / (1 - beta ** (t + 1)) if bias_correction else v
    return out


class ExponentialMovingAverage:
    """A shadow copy of parameters, s = decay s + (1 - decay) p after each ``update()``, for evaluation.

    >>> ema = ExponentialMovingAverage(model.parameters(), decay=0.999)
    >>> ...; optimizer.step(); ema.update()
    >>> with ema.average_parameters():   # evaluate with the averaged weights
    ...     evaluate(model, ...)
    """

    def __init__(self, parameters, decay: float = 0.999):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"ExponentialMovingAverage: decay must be in [0, 1], got {decay}")
        self.params = [p for p in parameters]
        if not all(isinstance(p, Tensor) for p in self.params):
            raise TypeError("ExponentialMovingAverage: parameters must be Tensors")
        self.decay = decay
        self.shadow = [p.data.copy() for p in self.params]
        self.num_updates = 0
        self._backup = None

    def update(self) -> None:
        d = self.decay
        for s, p in zip(self.shadow, self.params):
            s *= s.dtype.type(d)
            s += s.dtype.type(1 - d) * p.data
        self.num_updates += 1

    def copy_to(self, parameters=None) -> None:
        for s, p in zip(self.shadow, parameters or self.params):
            p.data = s.astype(p.dtype, copy=True)

    def store(self) -> None:
        self._backup = [p.data.copy() for p in self.params]

    def restore(self) -> None:
        if self._backup is None:
            raise RuntimeError("ExponentialMovingAverage.restore: nothing stored")
        for b, p in zip(self._backup, self.params):
            p.data = b
        self._backup = None

    @contextlib.contextmanager
    def average_parameters(self):
        self.store()
        self.copy_to()
        try:
            yield
        finally:
            self.restore()

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": [s.copy() for s in self.shadow]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["shadow"]) != len(self.params):
            raise ValueError("ExponentialMovingAverage.load_state_dict: wrong number of tensors")
        self.decay, self.num_updates = state["decay"], state["num_updates"]
        self.shadow = [np.array(s, dtype=p.dtype, copy=True) for s, p in zip(state["shadow"], self.params)]
