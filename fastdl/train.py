"""Training loops: ``fit`` with callbacks and a progress bar, ``evaluate``, ``accuracy``."""
from __future__ import annotations

import time

import numpy as np

from .autograd import no_grad
from .callbacks import (Callback, CSVLogger, EarlyStopping, JSONLogger, LRSchedulerCallback,  # noqa: F401
                        ModelCheckpoint)
from .checkpoint import resume, save_checkpoint
from .progress import progress_bar
from .tensor import Tensor, as_tensor


def accuracy(logits, target) -> float:
    """Fraction of rows whose arg-max over the last axis equals the integer target."""
    x = logits._host() if isinstance(logits, Tensor) else np.asarray(logits)
    t = target._host() if isinstance(target, Tensor) else np.asarray(target)
    if x.shape[:-1] != t.shape:
        raise ValueError(f"accuracy: logits {x.shape} and target {t.shape} do not match")
    return float(np.mean(np.argmax(x, axis=-1) == t)) if t.size else float("nan")


class History:
    """Per-epoch metrics: ``history["loss"]``, ``history["val_accuracy"]``, ... and ``epoch``."""

    def __init__(self):
        self.history: dict = {}
        self.epoch: list = []

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, metrics={list(self.history)})"

    def plot(self, path, metrics=None) -> str:
        """Save the curves per epoch as an image (one panel per metric: training and ``val_`` side by side,
        the learning rate on a log scale); needs matplotlib (``pip install 'fastdl[plot]'``)."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'fastdl[plot]'") from None
        names = metrics or [k for k in self.history if not k.startswith("val_")]
        names = [k for k in names if k in self.history]
        if not names:
            raise ValueError(f"History.plot: nothing to plot (metrics {list(self.history)})")
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
        for ax, k in zip(axes[0], names):
            ax.plot(self.epoch, self.history[k], marker="o", ms=3, label="training" if k != "lr" else k)
            if "val_" + k in self.history:
                ax.plot(self.epoch, self.history["val_" + k], marker="o", ms=3, label="validation")
            if k == "lr":
                ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_title(k)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return str(path)


def _is_classification(out, target) -> bool:
    t = target if isinstance(target, Tensor) else np.asarray(target)
    return t.dtype.kind in "iu" and out.ndim == t.ndim + 1


def _model_device(model):
    """The device of the model's first parameter (None for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return None


def _to(batch, device):
    """Move a batch's tensors to ``device`` (data loaders yield CPU tensors)."""
    if device is None or device == "cpu":
        return batch
    return tuple(t.to(device) if isinstance(t, Tensor) else t for t in batch)


def evaluate(model, loss_fn, loader, metrics=("accuracy",)) -> dict:
    """Mean loss (weighted by batch size) and accuracy over a loader, in eval mode and without grad."""
    was_training = model.training
    model.eval()
    total, n, correct, classify = 0.0, 0, 0.0, False
    dev = _model_device(model)
    try:
        with no_grad():
            for x, y in (_to(b, dev) for b in loader):
                out = model(x)
                b = len(y)
                total += float(loss_fn(out, y).item()) * b
                if "accuracy" in metrics and _is_classification(out, y):
                    classify = True
                    correct += accuracy(out, y) * b
                n += b
    finally:
        model.train(was_training)
    logs = {"loss": total / n if n else float("nan")}
    if "accuracy" in metrics and classify:
        logs["accuracy"] = correct / n
    return logs


class Trainer:
    """State shared with callbacks during :func:`fit`."""

    def __init__(self, model, optimizer, scheduler=None, train_loader=None):
        self.model, self.optimizer, self.scheduler, self.train_loader = model, optimizer, scheduler, train_loader
        self.history = History()
        self.stop_training = False
        self.epoch = 0


def fit(model, loss_fn, optimizer, train_loader, val_loader=None, epochs: int = 1, callbacks=(),
        progress=None, verbose: bool = False, metrics=("accuracy",), log=print, scheduler=None,
        resume_from=None) -> History:
    """Train until epoch ``epochs``; returns a :class:`History` of per-epoch metrics.

    Each epoch logs ``loss`` (and ``accuracy`` for integer class targets) on
    the training batches, ``val_loss``/``val_accuracy`` from :func:`evaluate`
    when ``val_loader`` is given, and ``lr``.  ``scheduler`` is stepped after
    every epoch (``ReduceLROnPlateau`` with ``val_loss``).  ``resume_from``: a
    checkpoint of :class:`ModelCheckpoint` — training continues after its
    epoch exactly as if it had never stopped.  Batches are moved to the
    model's device (``model.to("cuda")`` is all a GPU run needs).  Under ``mpiexec`` with a
    ``distributed.DistributedDataParallel`` model and a ``DistributedSampler``
    (whose ``set_epoch`` is called here every epoch) it trains data-parallel
    unchanged; the training metrics are then each rank's own shard's.  ``progress``: a tqdm bar per
    epoch (None = only when stderr is a terminal; False = never).
    """
    if epochs < 0:
        raise ValueError(f"fit: epochs must be >= 0, got {epochs}")
    trainer = Trainer(model, optimizer, scheduler, train_loader)
    history = trainer.history
    callbacks = list(callbacks)
    if scheduler is not None:
        callbacks.insert(0, LRSchedulerCallback(scheduler))
    start = resume(trainer, resume_from) if resume_from is not None else 0
    dev = _model_device(model)  # batches follow the model to its device
    for cb in callbacks:
        cb.on_train_begin(trainer)
    for epoch in range(start, epochs):
        trainer.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_begin(trainer, epoch)
        sampler = getattr(train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler reshuffles per epoch, the same on every rank
            sampler.set_epoch(epoch)
        model.train()
        bar = progress_bar(len(train_loader), f"epoch {epoch + 1}/{epochs}", progress)
        total, n, correct, t0 = 0.0, 0, 0.0, time.perf_counter()
        classify = False
        for i, (x, y) in enumerate(_to(b, dev) for b in train_loader):
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            b = len(y)
            lv = float(loss.item())
            if not np.isfinite(lv):
                raise FloatingPointError(f"fit: the loss became {lv} at epoch {epoch + 1}, batch {i + 1}; "
                                         "try a smaller learning rate")
            total += lv * b
            n += b
            if "accuracy" in metrics and _is_classification(out, y):
                classify = True
                correct += accuracy(out, y) * b
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / n:.4f}")
            for cb in callbacks:
                cb.on_batch_end(trainer, i, {"loss": lv})
        if bar is not None:
            bar.close()
        logs = {"loss": total / n if n else float("nan")}
        if classify:
            logs["accuracy"] = correct / n
        if val_loader is not None:
            for k, v in evaluate(model, loss_fn, val_loader, metrics).items():
                logs["val_" + k] = v
        logs["lr"] = optimizer.param_groups[0]["lr"]
        logs["time"] = time.perf_counter() - t0
        history.append(epoch, logs)
        if verbose:
            log(f"epoch {epoch + 1:3d}/{epochs}  " + "  ".join(
                f"{v:.1f}s" if k == "time" else f"{k} {v:.4g}" if k == "lr" else f"{k} {v:.4f}"
                for k, v in logs.items()))
        for cb in callbacks:
            cb.on_epoch_end(trainer, epoch, logs)
        if trainer.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(trainer)
    return history


def predict(model, x, batch_size: int = 256) -> np.ndarray:
    """Model outputs for ``x`` in eval mode, batched, as a NumPy array."""
    x = np.asarray(x._host() if isinstance(x, Tensor) else x)
    was = model.training
    model.eval()
    dev = _model_device(model)
    try:
        with no_grad():
            outs = [model(_to((as_tensor(x[i:i + batch_size]),), dev)[0])._host()
                    for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    return np.concatenate(outs) if outs else np.empty((0,))


__all__ = ["fit", "evaluate", "predict", "accuracy", "History", "Trainer", "save_checkpoint", "Callback",
           "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback", "CSVLogger", "JSONLogger"]
