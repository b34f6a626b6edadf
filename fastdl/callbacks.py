"""Callbacks for :func:`fastdl.train.fit`: early stopping, checkpoints, schedules, logs."""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np

from .checkpoint import save_checkpoint
from .optim.lr_scheduler import ReduceLROnPlateau

class Callback:
    """Hooks called by ``fit``; set ``trainer.stop_training = True`` to stop after this epoch."""

    def on_train_begin(self, trainer): ...
    def on_epoch_begin(self, trainer, epoch: int): ...
    def on_batch_end(self, trainer, batch: int, logs: dict): ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict): ...
    def on_train_end(self, trainer): ...


class _Monitor:
    """Tracks the best value of a logged metric ("min" or "max"; "auto": max for accuracies)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise KeyError(f"metric {self.monitor!r} is not logged; logged: {sorted(logs)}")
        return float(logs[self.monitor])

    def improved(self, v: float) -> bool:
        return v < self.best - self.min_delta if self.mode == "min" else v > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (as Keras);
    with ``restore_best_weights`` the model ends with the weights of its best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        self._m = _Monitor(monitor, mode, min_delta)
        self.monitor, self.mode, self.patience = monitor, self._m.mode, int(patience)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, trainer):
        self._m.reset()
        self.wait, self.best_epoch, self.stopped_epoch, self.best_state = 0, None, None, None

    @property
    def best(self):
        return self._m.best

    def on_epoch_end(self, trainer, epoch, logs):
        v = self._m.value(logs)
        if self._m.improved(v):
            self._m.best, self.best_epoch, self.wait = v, epoch, 0
            if self.restore_best_weights:
                self.best_state = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Write the whole training state (model, optimizer, scheduler, epoch, RNG, history) after an epoch.

    ``filepath`` may hold ``{epoch}`` (1-based) and metric names, e.g.
    ``"ck-{epoch:02d}-{val_loss:.3f}.npz"``.  With ``save_best_only`` only an
    epoch that improves ``monitor`` is written.  Files are written atomically
    without pickle (:func:`fastdl.save`); ``fit(..., resume_from=path)``
    continues from one exactly, and ``fastdl.load(path)["model"]`` is the
    model's state dict.
    """

    def __init__(self, filepath, monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = False):
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self._m = _Monitor(monitor, mode)
        self.saved: list = []

    def on_train_begin(self, trainer):
        self._m.reset()

    def on_epoch_end(self, trainer, epoch, logs):
        if self.save_best_only:
            v = self._m.value(logs)
            if not self._m.improved(v):
                return
            self._m.best = v
        path = self.filepath.format(epoch=epoch + 1, **logs)
        save_checkpoint(path, trainer, epoch)
        self.saved.append(path)


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler after every epoch (``ReduceLROnPlateau`` gets ``monitor``)."""

    def __init__(self, scheduler, monitor: str = "val_loss"):
        self.scheduler, self.monitor = scheduler, monitor

    def on_epoch_end(self, trainer, epoch, logs):
        logs["lr"] = trainer.optimizer.param_groups[0]["lr"]
        if isinstance(self.scheduler, ReduceLROnPlateau):
            if self.monitor not in logs:
                raise KeyError(f"LRSchedulerCallback: metric {self.monitor!r} is not logged")
            self.scheduler.step(logs[self.monitor])
        else:
            self.scheduler.step()


class CSVLogger(Callback):
    """Append one row per epoch (epoch and every logged metric) to a CSV file."""

    def __init__(self, filename, append: bool = False):
        self.filename, self.append = os.fspath(filename), append

    def on_train_begin(self, trainer):
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, trainer, epoch, logs):
        new = not os.path.exists(self.filename)
        with open(self.filename, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["epoch"] + list(logs))
            w.writerow([epoch + 1] + [float(v) for v in logs.values()])


class JSONLogger(Callback):
    """Keep ``{"epoch": [...], metric: [...]}`` in a JSON file, rewritten after each epoch."""

    def __init__(self, filename):
        self.filename = os.fspath(filename)

    def on_epoch_end(self, trainer, epoch, logs):
        h = trainer.history
        data = {"epoch": [e + 1 for e in h.epoch], **{k: [float(x) for x in v] for k, v in h.history.items()}}
        tmp = self.filename + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, default=lambda o: float(np.asarray(o)))
        os.replace(tmp, self.filename)


__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback", "CSVLogger", "JSONLogger"]
