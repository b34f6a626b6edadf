"""The learning-rate scheduler base, as PyTorch's ``LRScheduler``.

``step()`` advances ``last_epoch`` and sets each group's ``lr`` from ``get_lr()``, which most schedules
compute from the group's *current* lr (PyTorch's recursive, chainable form: two schedulers stepping
one optimizer compose, e.g. a linear warm-up with an exponential decay).  ``step(epoch)`` jumps to an
epoch through the closed form ``lr_at(base_lr, epoch, i)`` where a schedule has one.
"""
from __future__ import annotations


class LRScheduler:
    def __init__(self, optimizer, last_epoch: int = -1):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            if last_epoch == -1:
                g.setdefault("initial_lr", g["lr"])
            elif "initial_lr" not in g:
                raise KeyError("initial_lr is not set in a param group when resuming (last_epoch != -1)")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self.step()

    def lr_at(self, base_lr: float, epoch: int, i: int) -> float:
        """The closed form: the lr of group ``i`` at ``epoch`` when this schedule alone drives it."""
        raise NotImplementedError

    def get_lr(self) -> list:
        """The next lrs (by default the closed form at ``last_epoch``)."""
        return [self.lr_at(b, self.last_epoch, i) for i, b in enumerate(self.base_lrs)]

    def step(self, epoch: int | None = None) -> None:
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = int(epoch)
            try:
                lrs = [self.lr_at(b, self.last_epoch, i) for i, b in enumerate(self.base_lrs)]
            except NotImplementedError:
                lrs = self.get_lr()
        self._last_lr = [float(v) for v in lrs]
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def get_last_lr(self) -> list:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)
                and not (isinstance(v, list) and v and callable(v[0]))}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr
