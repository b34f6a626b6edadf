"""Training checkpoints: everything needed to continue a :func:`fastdl.train.fit` run exactly.

Below both ``train`` (which resumes from one) and ``callbacks`` (whose ``ModelCheckpoint`` writes
them).  A *trainer* here is anything with ``model``, ``optimizer``, ``scheduler``,
``train_loader`` and ``history`` (``train.Trainer``).
"""
from __future__ import annotations

from . import rng
from .distributed import is_main_process, unwrap
from .serialization import load, save

KIND = "fastdl-training-state"


def save_checkpoint(path, trainer, epoch: int) -> None:
    """Weights, optimizer and scheduler state, the finished epoch, the RNG states (library and
    loader) and the history so far, written atomically to ``path``.

    In data-parallel training only rank 0 writes, and the model's state dict is the wrapped model's
    (no ``module.`` prefix), so the checkpoint loads on any number of ranks or into a plain model."""
    if not is_main_process():
        return
    loader = trainer.train_loader
    save({
        "kind": KIND,
        "epoch": int(epoch),
        "model": unwrap(trainer.model).state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "rng": rng.get_state(),
        "loader_rng": loader.state_dict()["rng"] if hasattr(loader, "state_dict") else None,
        "history": {"epoch": list(trainer.history.epoch), "metrics": trainer.history.history},
    }, path)


def resume(trainer, path) -> int:
    """Restore a checkpoint of :func:`save_checkpoint` into ``trainer``; returns the next epoch."""
    ck = load(path)
    if not isinstance(ck, dict) or ck.get("kind") != KIND:
        raise ValueError(f"fit: {path} is not a training checkpoint written by ModelCheckpoint/save_checkpoint")
    unwrap(trainer.model).load_state_dict(ck["model"])
    trainer.optimizer.load_state_dict(ck["optimizer"])
    if trainer.scheduler is not None and ck["scheduler"] is not None:
        trainer.scheduler.load_state_dict(ck["scheduler"])
    rng.set_state(ck["rng"])
    loader = trainer.train_loader
    if hasattr(loader, "load_state_dict"):
        loader.load_state_dict({"rng": ck["loader_rng"]})
    for e in ck["history"]["epoch"]:
        trainer.history.epoch.append(e)
    trainer.history.history = {k: list(v) for k, v in ck["history"]["metrics"].items()}
    return int(ck["epoch"]) + 1
