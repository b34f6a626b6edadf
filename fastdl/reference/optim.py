"""Fused optimizer updates, in place: SGD, Adam/AdamW, RMSprop (PyTorch's rules)."""
from __future__ import annotations

import numpy as np

from ._checks import _convertible, _float, _inplace, _scalars, _shape_str


def _param(param, fn):
    """The parameter: a writeable C-contiguous float NumPy array, updated in place."""
    if isinstance(param, np.ndarray):
        _float(param, fn, "param")
    return _inplace(param, param, fn, "param")


def _grad(grad, p, fn, maximize):
    """The gradient as p's dtype, with as many elements as the parameter; negated to maximize."""
    g = _convertible(grad, p.dtype, fn, "grad")
    _param_shape(g, p, fn, "grad")
    return -g if maximize else g


def _param_shape(a, p, fn, name):
    """A gradient or state buffer has the parameter's shape, not only its size."""
    if a is not None and a.shape != p.shape:
        raise ValueError(f"{fn}: {name} has shape {_shape_str(a.shape)}, the parameter has shape "
                         f"{_shape_str(p.shape)}")
    return a


def _hyper(fn, **values):
    """Hyperparameters finite, and in [0, 1] for the decay rates (alpha, beta1, beta2), as the native checks."""
    for name, v in values.items():
        if not np.isfinite(v):
            raise ValueError(f"{fn}: {name} must be finite, got {v}")
        if name in ("alpha", "beta1", "beta2") and not 0.0 <= v <= 1.0:
            raise ValueError(f"{fn}: {name} must be in [0, 1], got {v}")


def _lerp(a, b, w):
    """torch.lerp with a scalar weight."""
    return a + w * (b - a) if w < 0.5 else b - (b - a) * (1 - w)


@_scalars(lr="float", momentum="float", dampening="float", weight_decay="float", nesterov="bool",
          maximize="bool", first_step="bool")
def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    """PyTorch's SGD, in place: g += wd p; buf = g (first step) or momentum buf + (1 - dampening) g;
    g = g + momentum buf (Nesterov) or buf; p -= lr g."""
    fn = "sgd_step"
    p = _param(param, fn)
    g = _grad(grad, p, fn, maximize)
    buf = _param_shape(_inplace(momentum_buffer, p, fn, "momentum_buffer", optional=True), p, fn, "momentum_buffer")
    _hyper(fn, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    t = p.dtype.type
    if weight_decay != 0:
        g = g + t(weight_decay) * p
    if buf is not None:
        buf[...] = g if first_step else t(momentum) * buf + t(1 - dampening) * g
        g = g + t(momentum) * buf if nesterov else buf
    p -= t(lr) * g


@_scalars(lr="float", beta1="float", beta2="float", eps="float", weight_decay="float", decoupled="bool",
          maximize="bool", step="int")
def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
              maximize, step):
    """PyTorch's Adam (AdamW when ``decoupled``), in place; ``step`` counts from 1.

    m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2; vmax = max(vmax, v) (amsgrad);
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    """
    fn = "adam_step"
    p = _param(param, fn)
    g = _grad(grad, p, fn, maximize)
    m = _param_shape(_inplace(exp_avg, p, fn, "exp_avg"), p, fn, "exp_avg")
    v = _param_shape(_inplace(exp_avg_sq, p, fn, "exp_avg_sq"), p, fn, "exp_avg_sq")
    vmax = _param_shape(_inplace(max_exp_avg_sq, p, fn, "max_exp_avg_sq", optional=True), p, fn, "max_exp_avg_sq")
    if step < 1:
        raise ValueError(f"adam_step: step must be >= 1, got {step}")
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError("adam_step: betas must be in [0, 1)")
    _hyper(fn, lr=lr, eps=eps, weight_decay=weight_decay)
    t = p.dtype.type
    if weight_decay != 0:
        if decoupled:
            p *= t(1 - lr * weight_decay)
        else:
            g = g + t(weight_decay) * p
    m[...] = _lerp(m, g, t(1 - beta1))
    v[...] = v * t(beta2) + t(1 - beta2) * g * g
    vv = v
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        vv = vmax
    step_size = t(lr / (1 - beta1 ** step))
    denom = np.sqrt(vv) / t(np.sqrt(1 - beta2 ** step)) + t(eps)
    p += -step_size * (m / denom)


@_scalars(lr="float", alpha="float", eps="float", weight_decay="float", momentum="float", maximize="bool")
def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum, maximize):
    """PyTorch's RMSprop, in place: s = alpha s + (1 - alpha) g^2; (centered) ga = lerp(ga, g, 1 - alpha),
    avg = sqrt(max(s - ga^2, 0)) + eps; buf = momentum buf + g / avg, p -= lr buf (or p -= lr g / avg)."""
    fn = "rmsprop_step"
    p = _param(param, fn)
    g = _grad(grad, p, fn, maximize)
    sq = _param_shape(_inplace(square_avg, p, fn, "square_avg"), p, fn, "square_avg")
    ga = _param_shape(_inplace(grad_avg, p, fn, "grad_avg", optional=True), p, fn, "grad_avg")
    buf = _param_shape(_inplace(momentum_buffer, p, fn, "momentum_buffer", optional=True), p, fn, "momentum_buffer")
    _hyper(fn, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
    t = p.dtype.type
    if weight_decay != 0:
        g = g + t(weight_decay) * p
    sq[...] = sq * t(alpha) + t(1 - alpha) * g * g
    if ga is not None:
        ga[...] = _lerp(ga, g, t(1 - alpha))
        avg = np.sqrt(np.maximum(sq - ga * ga, 0))  # rounding can dip below 0 (alpha = 0)
    else:
        avg = np.sqrt(sq)
    avg = avg + t(eps)
    if buf is not None:
        buf[...] = buf * t(momentum) + g / avg
        p += -t(lr) * buf
    else:
        p += -t(lr) * (g / avg)


ADAPTIVE = ("adagrad", "adadelta", "adamax", "nadam", "radam")


def _adaptive_hyper(kind, lr, beta1, beta2, eps, weight_decay, step, extra, extra2):
    """adaptive_step's step and hyperparameters checked (the native kernels' checks)."""
    fn = "adaptive_step"
    if step < 1:
        raise ValueError(f"{fn}: step must be >= 1, got {step}")
    for name, v in dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, extra=extra,
                        extra2=extra2).items():
        if not np.isfinite(v):
            raise ValueError(f"{fn}: {name} must be finite, got {v}")
    if not (0 <= beta1 <= 1 and 0 <= beta2 < 1):
        raise ValueError(f"{fn}: beta1 must be in [0, 1] and beta2 in [0, 1)")
    if kind == "nadam" and not extra2 < 1:
        raise ValueError(f"{fn}: nadam's momentum product (extra2) must be < 1")


@_scalars(kind="str", lr="float", beta1="float", beta2="float", eps="float", weight_decay="float", decoupled="bool",
          maximize="bool", step="int", extra="float", extra2="float")
def adaptive_step(kind, param, grad, state_a, state_b, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step,
                  extra, extra2):
    """PyTorch's Adagrad, Adadelta, Adamax, NAdam and RAdam, in place (the table in csrc/optim.h):

    adagrad : s += g^2; p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)
    adadelta: v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g; u = rho u + (1 - rho) d^2; p -= lr d
    adamax  : m = lerp(m, g, 1 - b1); u = max(b2 u, |g| + eps); p -= lr / (1 - b1^t) m / u
    nadam   : mu_t = b1 (1 - 0.5 0.96^(t psi)); m, v as Adam; d = sqrt(v / (1 - b2^t)) + eps;
              p -= lr (1 - mu_t) / (1 - prod mu) g / d + lr mu_(t+1) / (1 - prod mu mu_(t+1)) m / d
    radam   : m, v as Adam; rho_t = rho_inf - 2 t b2^t / (1 - b2^t); p -= lr m_hat r_t sqrt(1 - b2^t) / (sqrt(v) + eps)
              when rho_t > 5 (r_t the rectification), else p -= lr m_hat
    """
    fn = "adaptive_step"
    if kind not in ADAPTIVE:
        raise ValueError(f"{fn}: unknown optimizer kind '{kind}'")
    p = _param(param, fn)
    g = _grad(grad, p, fn, maximize)
    a = _param_shape(_inplace(state_a, p, fn, "state_a"), p, fn, "state_a")
    b = _param_shape(_inplace(state_b, p, fn, "state_b", optional=True), p, fn, "state_b")
    if kind != "adagrad" and b is None:
        raise ValueError(f"{fn}: {kind} needs state_b")
    _adaptive_hyper(kind, lr, beta1, beta2, eps, weight_decay, step, extra, extra2)
    t = p.dtype.type
    if weight_decay != 0 and decoupled and kind in ("nadam", "radam"):
        p *= t(1 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + t(weight_decay) * p
    if kind == "adagrad":
        a += g * g
        p -= t(lr / (1 + (step - 1) * extra)) * (g / (np.sqrt(a) + t(eps)))
    elif kind == "adadelta":
        a[...] = a * t(beta1) + t(1 - beta1) * g * g
        d = np.sqrt(b + t(eps)) / np.sqrt(a + t(eps)) * g
        b[...] = b * t(beta1) + t(1 - beta1) * d * d
        p -= t(lr) * d
    elif kind == "adamax":
        a[...] = _lerp(a, g, t(1 - beta1))
        x, y = b * t(beta2), np.abs(g) + t(eps)
        b[...] = np.where((x > y) | np.isnan(x), x, y)
        p -= t(lr / (1 - beta1 ** step)) * (a / b)
    else:
        a[...] = _lerp(a, g, t(1 - beta1))
        b[...] = b * t(beta2) + t(1 - beta2) * g * g
        bc2 = 1 - beta2 ** step
        if kind == "nadam":
            mu = beta1 * (1 - 0.5 * 0.96 ** (step * extra))
            mu_next = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * extra))
            denom = np.sqrt(b / t(bc2)) + t(eps)
            p += t(-lr * (1 - mu) / (1 - extra2)) * (g / denom)
            p += t(-lr * mu_next / (1 - extra2 * mu_next)) * (a / denom)
        else:
            m_hat = a / t(1 - beta1 ** step)
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * step * beta2 ** step / bc2
            if rho_t > 5:
                r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                p += m_hat * t(lr) * (t(np.sqrt(bc2)) / (np.sqrt(b) + t(eps))) * t(r) * t(-1)
            else:
                p += m_hat * t(lr) * t(-1)
