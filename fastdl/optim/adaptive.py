"""Adagrad, Adadelta, Adamax, NAdam and RAdam with PyTorch's signatures and update rules, each one fused
native kernel (``adaptive_step``; the rules are in ``fastdl/reference/optim.py``)."""
from __future__ import annotations

import numpy as np

from ..shapes import float_arg
from .adam import _check_betas
from .optimizer import Optimizer


class _Adaptive(Optimizer):
    kind = ""
    _two_states = ("exp_avg", "exp_avg_sq")

    def _state(self, p, group):
        st = self.state.setdefault(id(p), {})
        if not st:
            st["step"] = 0
            for name in self._two_states:
                st[name] = self._zeros(p)
        return st

    def _run(self, group, p, kern, st, a, b, beta1=0.0, beta2=0.0, decoupled=False, extra=0.0, extra2=0.0):
        st["step"] += 1
        kern.adaptive_step(self.kind, p.data, p.grad.data, st[a], None if b is None else st[b], group["lr"], beta1,
                           beta2, group["eps"], group["weight_decay"], decoupled, group["maximize"], st["step"],
                           extra, extra2)


class Adagrad(_Adaptive):
    """Adagrad (Duchi et al.): s += g^2; p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)."""

    kind = "adagrad"

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, maximize: bool = False):
        lr_decay = float_arg(lr_decay, "lr_decay", "Adagrad", 0.0)
        initial_accumulator_value = float_arg(initial_accumulator_value, "initial_accumulator_value", "Adagrad", 0.0)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))

    def _update(self, group, p, kern):
        st = self.state.setdefault(id(p), {})
        if not st:
            st["step"] = 0
            st["sum"] = self._zeros(p, group["initial_accumulator_value"])
        self._run(group, p, kern, st, "sum", None, extra=group["lr_decay"])


class Adadelta(_Adaptive):
    """Adadelta (Zeiler): v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g;
    u = rho u + (1 - rho) d^2; p -= lr d."""

    kind = "adadelta"
    _two_states = ("square_avg", "acc_delta")

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0,
                 maximize: bool = False):
        rho = float_arg(rho, "rho", "Adadelta", 0.0, 1.0)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, group, p, kern):
        self._run(group, p, kern, self._state(p, group), "square_avg", "acc_delta", beta1=group["rho"])


class Adamax(_Adaptive):
    """Adamax (Kingma & Ba, the infinity norm): m = lerp(m, g, 1 - b1); u = max(b2 u, |g| + eps);
    p -= lr / (1 - b1^t) m / u."""

    kind = "adamax"
    _two_states = ("exp_avg", "exp_inf")

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 maximize: bool = False):
        _check_betas("Adamax", betas, eps)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, group, p, kern):
        b1, b2 = group["betas"]
        self._run(group, p, kern, self._state(p, group), "exp_avg", "exp_inf", b1, b2)


class NAdam(_Adaptive):
    """NAdam (Dozat): Adam with Nesterov momentum and the momentum schedule
    mu_t = b1 (1 - 0.5 0.96^(t momentum_decay)); ``decoupled_weight_decay`` gives NAdamW."""

    kind = "nadam"

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, maximize: bool = False):
        _check_betas("NAdam", betas, eps)
        momentum_decay = float_arg(momentum_decay, "momentum_decay", "NAdam", 0.0)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=bool(decoupled_weight_decay),
                                      maximize=maximize))

    def _update(self, group, p, kern):
        st = self._state(p, group)
        b1, b2 = group["betas"]
        t = st["step"] + 1
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * group["momentum_decay"]))
        # the running product is kept in float32, as PyTorch's (its default scalar dtype)
        st["mu_product"] = float(np.float32(st.get("mu_product", 1.0)) * np.float32(mu))
        self._run(group, p, kern, st, "exp_avg", "exp_avg_sq", b1, b2, group["decoupled_weight_decay"],
                  group["momentum_decay"], st["mu_product"])


class RAdam(_Adaptive):
    """RAdam (Liu et al.): Adam whose adaptive step is switched on, rectified, once the variance of the
    adaptive learning rate is tractable (rho_t > 5); ``decoupled_weight_decay`` gives RAdamW."""

    kind = "radam"

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False, maximize: bool = False):
        _check_betas("RAdam", betas, eps)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=bool(decoupled_weight_decay), maximize=maximize))

    def _update(self, group, p, kern):
        b1, b2 = group["betas"]
        self._run(group, p, kern, self._state(p, group), "exp_avg", "exp_avg_sq", b1, b2,
                  group["decoupled_weight_decay"])
