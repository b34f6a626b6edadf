"""Numerical gradient checking (central differences in float64)."""
from __future__ import annotations

import numpy as np

from . import backend
from .tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree; the message names the worst entry."""


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Compare autograd's Jacobian of ``fn(*inputs)`` with central differences.

    ``inputs`` are Tensors (or one Tensor); those with ``requires_grad`` are
    checked and must be float64.  A non-scalar output is checked through its
    full Jacobian (one backward per output element).  Returns True, or raises
    :class:`GradcheckError` naming the input, the entry and both values.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64, got {inputs[i].dtype}")

    def run():
        out = fn(*inputs)
        if not isinstance(out, Tensor):
            raise TypeError("gradcheck: fn must return a Tensor")
        return out

    out = run()
    n_out = out.data.size
    # analytic Jacobian, one row per output element
    analytic = {i: np.zeros((n_out, inputs[i].data.size)) for i in checked}
    for k in range(n_out):
        for i in checked:
            inputs[i].grad = None
        out = run()
        seed = np.zeros(out.shape, dtype=out.dtype)
        seed.reshape(-1)[k] = 1.0
        if out.requires_grad:
            out.backward(Tensor(seed).to(out.device))  # the seed on the output's device
        for i in checked:
            g = inputs[i].grad
            if g is not None:
                analytic[i][k] = g._host().reshape(-1)
    for i in checked:
        inputs[i].grad = None
    # numerical Jacobian by central differences
    for i in checked:
        t = inputs[i]
        original = t.data
        host = type(original) is np.ndarray  # on another device, perturb a host copy and move it there
        x = original if host else t._host().copy()
        flat = x.reshape(-1)
        numeric = np.zeros_like(analytic[i])
        dev = t.device

        def at(value, j):
            flat[j] = value
            if not host:
                t.data = backend.to_device(x, dev)
            return np.array(run()._host(), dtype=np.float64).reshape(-1)
        try:
            for j in range(flat.size):
                old = flat[j]
                plus, minus = at(old + eps, j), at(old - eps, j)
                flat[j] = old
                numeric[:, j] = (plus - minus) / (2 * eps)
        finally:
            t.data = original
        err = np.abs(analytic[i] - numeric) - (atol + rtol * np.abs(numeric))
        bad = ~(err <= 0)
        if bad.any():
            k, j = np.unravel_index(int(np.argmax(np.where(np.isnan(err), np.inf, err))), err.shape)
            raise GradcheckError(
                f"gradcheck: input {i}, output entry {k}, input entry {np.unravel_index(j, x.shape)}: "
                f"analytic {analytic[i][k, j]:.8g} vs numerical {numeric[k, j]:.8g} "
                f"(atol={atol}, rtol={rtol}; {int(bad.sum())} of {bad.size} entries differ)")
    return True
