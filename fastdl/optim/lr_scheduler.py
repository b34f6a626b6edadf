"""Learning-rate schedules (``fastdl.optim.lr_scheduler``), as PyTorch's.

A scheduler sets ``group["lr"]`` of its optimizer; call ``step()`` once per epoch after
``optimizer.step()`` (once per batch for ``OneCycleLR``/``CyclicLR``).  Like PyTorch's, the
epoch schedules update the current lr recursively, so schedulers stepping one optimizer compose
(``ChainedScheduler``, or two ``step()`` calls), and ``SequentialLR`` hands over at milestones.
Closed forms, epoch e, initial lr0:

================================  ======================================================
StepLR(step_size, gamma)          lr0 * gamma ** (e // step_size)          (staircase)
MultiStepLR(milestones, gamma)    lr0 * gamma ** (number of milestones <= e)
ExponentialLR(gamma)              lr0 * gamma ** e
LambdaLR(lr_lambda)               lr0 * lr_lambda(e)   (e.g. lambda e: 1 / sqrt(e + 1))
MultiplicativeLR(lr_lambda)       lr0 * prod of lr_lambda(k) for k = 1..e
CosineAnnealingLR(T_max, eta_min) eta_min + (lr0 - eta_min) (1 + cos(pi e / T_max)) / 2
LinearLR(start, end, total)       lr0 * (start + (end - start) min(e, total) / total)
ConstantLR(factor, total)         lr0 * factor while e < total, then lr0
PolynomialLR(total, power)        lr0 * (1 - min(e, total) / total) ** power
InverseTimeDecay(decay_rate)      lr0 / (1 + decay_rate * e)  (the curriculum's 1/(1 + rate * epoch))
================================  ======================================================

Per-batch cycles: ``OneCycleLR``, ``CyclicLR``, ``CosineAnnealingWarmRestarts``; on a metric:
``ReduceLROnPlateau``.
"""
from __future__ import annotations

import bisect
import math

from .cyclic_lr import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from .scheduler_base import LRScheduler


def _lrs(self):
    return [g["lr"] for g in self.optimizer.param_groups]


class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _lrs(self)
        return [lr * self.gamma for lr in _lrs(self)]

    def lr_at(self, base, e, i):
        return base * self.gamma ** (e // self.step_size)


class MultiStepLR(LRScheduler):
    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        k = self.milestones.count(self.last_epoch)
        return [lr * self.gamma ** k for lr in _lrs(self)] if k else _lrs(self)

    def lr_at(self, base, e, i):
        return base * self.gamma ** bisect.bisect_right(self.milestones, e)


class ExponentialLR(LRScheduler):
    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return _lrs(self) if self.last_epoch == 0 else [lr * self.gamma for lr in _lrs(self)]

    def lr_at(self, base, e, i):
        return base * self.gamma ** e


class LambdaLR(LRScheduler):
    """lr = lr0 * lr_lambda(epoch); one function, or one per param group."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        n = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(self.lr_lambdas) != n:
            raise ValueError(f"LambdaLR: {len(self.lr_lambdas)} functions for {n} param groups")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base, e, i):
        return base * self.lr_lambdas[i](e)


class MultiplicativeLR(LambdaLR):
    """lr = lr * lr_lambda(epoch) at every step after the first."""

    def get_lr(self):
        if self.last_epoch > 0:
            return [lr * f(self.last_epoch) for lr, f in zip(_lrs(self), self.lr_lambdas)]
        return _lrs(self)

    def lr_at(self, base, e, i):
        raise NotImplementedError


class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, T = self.last_epoch, self.T_max
        if e == 0:
            return _lrs(self)
        if self._step_count == 1 and e > 0:
            return [self.lr_at(b, e, i) for i, b in enumerate(self.base_lrs)]
        if (e - 1 - T) % (2 * T) == 0:
            return [lr + (b - self.eta_min) * (1 - math.cos(math.pi / T)) / 2 for lr, b in zip(_lrs(self), self.base_lrs)]
        return [(1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - self.eta_min)
                + self.eta_min for lr in _lrs(self)]

    def lr_at(self, base, e, i):
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class LinearLR(LRScheduler):
    """The lr factor moves linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` steps (warm-up)."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
                 last_epoch: int = -1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, s, t = self.last_epoch, self.start_factor, self.end_factor
        if e == 0:
            return [lr * s for lr in _lrs(self)]
        if e > self.total_iters:
            return _lrs(self)
        return [lr * (1.0 + (t - s) / (self.total_iters * s + (e - 1) * (t - s))) for lr in _lrs(self)]

    def lr_at(self, base, e, i):
        s, t = self.start_factor, self.end_factor
        return base * (s + (t - s) * min(self.total_iters, e) / self.total_iters)


class ConstantLR(LRScheduler):
    """The lr is multiplied by ``factor`` until epoch ``total_iters``."""

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1):
        if not 0 <= factor <= 1:
            raise ValueError(f"ConstantLR: factor must be in [0, 1], got {factor}")
        self.factor, self.total_iters = factor, int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.factor for lr in _lrs(self)]
        if self.last_epoch != self.total_iters:
            return _lrs(self)
        return [lr * (1.0 / self.factor) for lr in _lrs(self)]

    def lr_at(self, base, e, i):
        return base * (self.factor + (e >= self.total_iters) * (1 - self.factor))


class PolynomialLR(LRScheduler):
    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1):
        self.total_iters, self.power = int(total_iters), power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, t = self.last_epoch, self.total_iters
        if e == 0 or e > t:
            return _lrs(self)
        f = ((1.0 - e / t) / (1.0 - (e - 1) / t)) ** self.power
        return [lr * f for lr in _lrs(self)]

    def lr_at(self, base, e, i):
        return base * (1.0 - min(self.total_iters, e) / self.total_iters) ** self.power


class InverseTimeDecay(LRScheduler):
    """lr = lr0 / (1 + decay_rate * e / decay_steps); with ``staircase`` the ratio is floored."""

    def __init__(self, optimizer, decay_rate: float, decay_steps: int = 1, staircase: bool = False,
                 last_epoch: int = -1):
        if decay_rate < 0 or decay_steps < 1:
            raise ValueError("InverseTimeDecay: decay_rate must be >= 0 and decay_steps >= 1")
        self.decay_rate, self.decay_steps, self.staircase = decay_rate, int(decay_steps), staircase
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base, e, i):
        r = e // self.decay_steps if self.staircase else e / self.decay_steps
        return base / (1 + self.decay_rate * r)


class SequentialLR(LRScheduler):
    """``schedulers[k]`` drives the lr from ``milestones[k - 1]`` on (each restarting at its epoch 0)."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        schedulers = list(schedulers)
        if not schedulers or any(s.optimizer is not optimizer for s in schedulers):
            raise ValueError("SequentialLR: give at least one scheduler, each of this optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected {len(schedulers) - 1} milestones, got {len(milestones)}")
        self.optimizer, self._schedulers, self._milestones = optimizer, schedulers, list(milestones)
        self.last_epoch = last_epoch + 1
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"]
        for s in schedulers:
            s.last_epoch -= 1
        schedulers[0]._initial_step()
        self._last_lr = schedulers[0].get_last_lr()

    def step(self, epoch=None) -> None:
        self.last_epoch += 1
        idx = bisect.bisect_right(self._milestones, self.last_epoch)
        s = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            s.step(0)
        else:
            s.step()
        self._last_lr = s.get_last_lr()

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "_last_lr": self._last_lr,
                "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch, self._last_lr = state["last_epoch"], state["_last_lr"]
        for s, st in zip(self._schedulers, state["_schedulers"]):
            s.load_state_dict(st)


class ChainedScheduler(LRScheduler):
    """Step several schedulers together: their recursive updates compose (e.g. a warm-up times a decay)."""

    def __init__(self, schedulers, optimizer=None):
        self._schedulers = list(schedulers)
        if not self._schedulers:
            raise ValueError("ChainedScheduler: give at least one scheduler")
        self.optimizer = optimizer if optimizer is not None else self._schedulers[0].optimizer
        if any(s.optimizer is not self.optimizer for s in self._schedulers):
            raise ValueError("ChainedScheduler: every scheduler must drive the same optimizer")
        self._last_lr = _lrs(self)

    def step(self, epoch=None) -> None:
        for s in self._schedulers:
            s.step()
        self._last_lr = _lrs(self)

    def state_dict(self) -> dict:
        return {"_last_lr": self._last_lr, "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state: dict) -> None:
        self._last_lr = state["_last_lr"]
        for s, st in zip(self._schedulers, state["_schedulers"]):
            s.load_state_dict(st)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when ``step(metric)`` sees no improvement for ``patience`` epochs."""

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0.0,
                 eps: float = 1e-8):
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau: factor must be < 1")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError("ReduceLROnPlateau: mode must be min|max and threshold_mode rel|abs")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.eps = threshold, threshold_mode, cooldown, eps
        n = len(optimizer.param_groups)
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = _lrs(self)

    def _better(self, a, best):
        if self.mode == "min":
            return a < (best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metrics, epoch=None) -> None:
        current = float(metrics)
        self.last_epoch += 1
        if self._better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, lo in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(g["lr"] * self.factor, lo)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = _lrs(self)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "LambdaLR", "MultiplicativeLR",
           "CosineAnnealingLR", "LinearLR", "ConstantLR", "PolynomialLR", "InverseTimeDecay", "SequentialLR",
           "ChainedScheduler", "ReduceLROnPlateau", "OneCycleLR", "CyclicLR", "CosineAnnealingWarmRestarts"]
