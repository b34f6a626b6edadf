"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""
from __future__ import annotations

from ..shapes import float_arg
from .optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's update rule, per parameter p with gradient g (one fused native kernel)::

        g = g + weight_decay * p
        b = g                                   (first step)
        b = momentum * b + (1 - dampening) * g  (later steps)
        g = g + momentum * b if nesterov else b
        p = p - lr * g

    The curriculum's momentum (v = beta v + (1 - beta) dW; W -= alpha v) is
    exactly ``SGD(lr=alpha * (1 - beta), momentum=beta)``: its velocity is
    PyTorch's buffer times (1 - beta).  (``dampening=beta`` is not the same,
    because PyTorch does not damp the first step.)
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False):
        momentum = float_arg(momentum, "momentum", "SGD", 0.0)
        dampening = float_arg(dampening, "dampening", "SGD")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _update(self, group, p, kern):
        st = self.state.setdefault(id(p), {})
        first = False
        buf = None
        if group["momentum"] != 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = self._zeros(p)
                first = True
        kern.sgd_step(p.data, p.grad.data, buf, group["lr"], group["momentum"], group["dampening"],
                      group["weight_decay"], group["nesterov"], group["maximize"], first)
