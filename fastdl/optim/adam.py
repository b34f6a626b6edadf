"""Adam, AdamW and RMSprop with PyTorch's update rules, each one fused native kernel."""
from __future__ import annotations

from ..shapes import float_arg
from .optimizer import Optimizer


def _check_betas(name, betas, eps):
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"{name}: betas must be a pair of numbers in [0, 1), got {betas!r}"[:200])
    for b in betas:
        float_arg(b, "betas", name, 0.0, 1.0, hi_open=True)
    float_arg(eps, "eps", name, 0.0)


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``; per parameter, with t the step::

        g = g + weight_decay p                  (L2, coupled)
        m = beta1 m + (1 - beta1) g             v = beta2 v + (1 - beta2) g^2
        v_hat = max(v_hat, v) if amsgrad else v
        p = p - lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)

    The curriculum's hyperparameters map one to one: alpha -> ``lr``, beta1,
    beta2 -> ``betas`` (defaults 0.9, 0.999), epsilon -> ``eps`` (1e-8); its
    bias-corrected V_corrected / S_corrected are the two (1 - beta^t) factors.
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False):
        _check_betas(type(self).__name__, betas, eps)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, group, p, kern):
        st = self.state.setdefault(id(p), {})
        if not st:
            st["step"] = 0
            st["exp_avg"] = self._zeros(p)
            st["exp_avg_sq"] = self._zeros(p)
            if group["amsgrad"]:
                st["max_exp_avg_sq"] = self._zeros(p)
        st["step"] += 1
        b1, b2 = group["betas"]
        kern.adam_step(p.data, p.grad.data, st["exp_avg"], st["exp_avg_sq"], st.get("max_exp_avg_sq"),
                       group["lr"], b1, b2, group["eps"], group["weight_decay"], self._decoupled,
                       group["maximize"], st["step"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay before the
    Adam step, instead of adding weight_decay * p to the gradient.  Default weight_decay 1e-2."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``::

        s = alpha s + (1 - alpha) g^2
        ga = alpha ga + (1 - alpha) g;  denom = sqrt(s - ga^2) + eps    (centered)
        denom = sqrt(s) + eps                                           (otherwise)
        b = momentum b + g / denom;  p -= lr b      (momentum > 0)
        p -= lr g / denom                           (otherwise)

    The curriculum's beta is ``alpha`` and its epsilon ``eps``.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, maximize: bool = False):
        alpha = float_arg(alpha, "alpha", "RMSprop", 0.0, 1.0, hi_open=True)
        momentum, eps = float_arg(momentum, "momentum", "RMSprop", 0.0), float_arg(eps, "eps", "RMSprop", 0.0)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, group, p, kern):
        st = self.state.setdefault(id(p), {})
        if not st:
            st["step"] = 0
            st["square_avg"] = self._zeros(p)
            if group["momentum"] > 0:
                st["momentum_buffer"] = self._zeros(p)
            if group["centered"]:
                st["grad_avg"] = self._zeros(p)
        st["step"] += 1
        kern.rmsprop_step(p.data, p.grad.data, st["square_avg"], st.get("grad_avg"), st.get("momentum_buffer"),
                          group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"],
                          group["maximize"])
