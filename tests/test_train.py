"""Training loops, callbacks and the ``fastdl train`` command."""
from __future__ import annotations

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
    assert acc >= 0.93, res.stdout
    out = run_cli("evaluate", str(ck), check=True).stdout
    assert f"accuracy {acc:.4f}" in out
