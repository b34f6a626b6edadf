"""Training loops, callbacks and the ``fastdl train`` command."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastdl
from fastdl import data, models, nn, optim, train
from helpers import run_cli


def _blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]])
    y = rng.integers(0, 3, n)
    x = (centers[y] + rng.standard_normal((n, 2)) * 0.6).astype(np.float32)
    return x, y


def test_fit_learns_and_reports_history():
    x, y = _blobs()
    model = models.mlp(2, (16,), 3)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=32, shuffle=True, seed=0)
    hist = train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loader,
                     val_loader=data.DataLoader(data.TensorDataset(*_blobs(100, 1)), 50), epochs=8, progress=False)
    assert hist.epoch == list(range(8))
    assert hist["loss"][-1] < hist["loss"][0] * 0.5
    assert hist["val_accuracy"][-1] > 0.9
    assert train.accuracy(train.predict(model, x), y) > 0.9


def test_fit_is_reproducible_with_seed():
    def run():
        fastdl.manual_seed(3)
        x, y = _blobs()
        model = models.mlp(2, (8,), 3, dropout=0.1)
        loader = data.DataLoader(data.TensorDataset(x, y), batch_size=16, shuffle=True)
        return train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.05), loader,
                         epochs=2, progress=False)["loss"]
    assert run() == run()


def test_early_stopping_stops_and_restores_best():
    class Scripted(train.Callback):  # feeds EarlyStopping a known val_loss sequence
        def __init__(self, seq):
            self.seq = seq

        def on_epoch_end(self, trainer, epoch, logs):
            logs["val_loss"] = self.seq[epoch]
    x, y = _blobs(64)
    model = models.mlp(2, (4,), 3)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=64)
    es = train.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    snapshots = []

    class Snap(train.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            snapshots.append(trainer.model.state_dict())
    hist = train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5), loader, epochs=20,
                     callbacks=[Scripted([5, 4, 3, 3.5, 3.2, 3.1, 1, 1, 1]), Snap(), es], progress=False)
    assert len(hist.epoch) == 5 and es.best_epoch == 2 and es.stopped_epoch == 4
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snapshots[2][k])


def test_diverging_loss_is_reported():
    x, y = _blobs(64)
    model = models.mlp(2, (4,), 3)
    model[1].weight.data[:] = np.nan
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=64)
    with pytest.raises(FloatingPointError, match="learning rate"):
        train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, progress=False)


@pytest.mark.slow
def test_cli_train_reaches_accuracy(tmp_path):
    ck = tmp_path / "mlp.npz"
    res = run_cli("train", "--no-progress", "--save", str(ck))
    assert res.returncode == 0, res.stderr
    acc = float(res.stdout.strip().splitlines()[-2].split()[2])
    assert "lenet5" in res.stdout and acc >= 0.96, res.stdout  # the default model: LeNet-5, 10 epochs
    out = run_cli("evaluate", str(ck), check=True).stdout
    assert f"accuracy {acc:.4f}" in out


def _setup(seed):
    fastdl.manual_seed(seed)
    x, y = _blobs(96)
    model = models.mlp(2, (16,), 3, dropout=0.2)
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.StepLR(opt, 1, 0.7)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=16, shuffle=True, seed=11)
    return model, opt, sched, loader


def test_resume_from_checkpoint_is_bitwise_identical(tmp_path):
    model, opt, sched, loader = _setup(0)
    full = train.fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=4, scheduler=sched, progress=False)
    want = model.state_dict()

    model, opt, sched, loader = _setup(0)
    ck = train.ModelCheckpoint(tmp_path / "ck-{epoch}.npz")
    train.fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=2, scheduler=sched, callbacks=[ck], progress=False)
    assert [os.path.basename(p) for p in ck.saved] == ["ck-1.npz", "ck-2.npz"]
    fastdl.manual_seed(123)  # the library RNG moves on in between: the checkpoint must restore it
    model, opt, sched, loader = _setup(99)  # different initial weights: all must come from the checkpoint
    hist = train.fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=4, scheduler=sched,
                     resume_from=tmp_path / "ck-2.npz", progress=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, want[k], err_msg=k)
    assert hist["loss"] == full["loss"] and hist["lr"] == full["lr"]
    assert fastdl.load(tmp_path / "ck-2.npz")["model"].keys() == want.keys()


def test_checkpoint_best_only_and_loggers(tmp_path):
    x, y = _blobs(64)
    model = models.mlp(2, (8,), 3)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=32)
    ck = train.ModelCheckpoint(tmp_path / "best.npz", monitor="loss", save_best_only=True)
    csvp, jsp = tmp_path / "h.csv", tmp_path / "h.json"
    train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader, epochs=3,
              callbacks=[ck, train.CSVLogger(csvp), train.JSONLogger(jsp)], progress=False)
    assert len(ck.saved) == 3  # the training loss falls every epoch here
    rows = csvp.read_text().strip().splitlines()
    assert rows[0].startswith("epoch,loss,accuracy,lr") and len(rows) == 4
    import json
    assert json.loads(jsp.read_text())["epoch"] == [1, 2, 3]


def test_resume_refuses_other_files(tmp_path):
    fastdl.save({"w": np.ones(2)}, tmp_path / "w.npz")
    x, y = _blobs(32)
    model = models.mlp(2, (4,), 3)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
                  data.DataLoader(data.TensorDataset(x, y), 32), epochs=2, resume_from=tmp_path / "w.npz",
                  progress=False)


def test_reduce_on_plateau_through_fit():
    x, y = _blobs(64)
    model = models.mlp(2, (4,), 3)
    opt = optim.SGD(model.parameters(), lr=1e-6)  # nothing improves by the 50% threshold
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.5)
    hist = train.fit(model, nn.CrossEntropyLoss(), opt, data.DataLoader(data.TensorDataset(x, y), 64),
                     val_loader=data.DataLoader(data.TensorDataset(x, y), 64), epochs=3, scheduler=sched,
                     progress=False)
    assert hist["lr"] == [1e-6, 1e-6, 5e-7]  # logged before each epoch-end step


def test_cli_refuses_bad_checkpoints_without_traceback(tmp_path):
    """evaluate: an absurd config, non-finite weights, a foreign file: a one-line error, exit 1."""
    from fastdl.cli import MODELS
    model = models.mlp(784, (256, 128), 10, dropout=0.2)
    sd = model.state_dict()
    cases = {
        "absurd": {"model": "mlp", "config": {"builder": "mlp", "kwargs": {"in_features": 784, "hidden": [40000, 30000],
                                                                        "num_classes": 10}}, "state_dict": sd},
        "builder": {"model": "mlp", "config": {"builder": "resnet50", "kwargs": {}}, "state_dict": sd},
        "nan": {"model": "mlp", "config": MODELS["mlp"],
                "state_dict": {k: np.full_like(v, np.nan) if k.endswith("weight") else v for k, v in sd.items()}},
    }
    for name, ck in cases.items():
        path = tmp_path / f"{name}.npz"
        fastdl.save(ck, path)
        res = run_cli("evaluate", str(path))
        assert res.returncode == 1 and "Traceback" not in res.stderr, (name, res.stderr)
        assert {"absurd": "asks for", "builder": "unknown model config", "nan": "non-finite"}[name] in res.stderr
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    res = run_cli("evaluate", str(tmp_path / "junk.npz"))
    assert res.returncode == 1 and "Traceback" not in res.stderr and "not a fastdl checkpoint" in res.stderr
