"""Data loading, standardisation, splits and the shipped data sets."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import data, datasets


def _ds(n=10):
    return data.TensorDataset(np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("bs,drop_last", [(3, False), (3, True), (10, False), (32, False), (1, True)])
def test_epoch_covers_every_sample_once(shuffle, bs, drop_last):
    loader = data.DataLoader(_ds(10), batch_size=bs, shuffle=shuffle, drop_last=drop_last, seed=0)
    ys = [y.data for _, y in loader]
    assert len(ys) == len(loader)
    seen = np.concatenate(ys) if ys else np.array([])
    expect = 10 - (10 % bs) if drop_last else 10
    assert len(seen) == expect and len(set(seen.tolist())) == expect
    assert all(len(y) == bs for y in ys[:-1])


def test_shuffle_reproducible_and_changes_per_epoch():
    a = data.DataLoader(_ds(50), batch_size=50, shuffle=True, seed=3)
    b = data.DataLoader(_ds(50), batch_size=50, shuffle=True, seed=3)
    e1, e2 = [next(iter(a))[1].data for _ in range(2)]
    assert not np.array_equal(e1, e2)
    np.testing.assert_array_equal(e1, next(iter(b))[1].data)
    fastdl.manual_seed(5)
    c1 = next(iter(data.DataLoader(_ds(50), 50, shuffle=True)))[1].data
    fastdl.manual_seed(5)
    np.testing.assert_array_equal(c1, next(iter(data.DataLoader(_ds(50), 50, shuffle=True)))[1].data)


def test_generic_dataset_collates():
    class Squares(data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], np.float32), i
    xs, ys = next(iter(data.DataLoader(Squares(), batch_size=5)))
    assert xs.shape == (5, 2) and ys.data.tolist() == [0, 1, 2, 3, 4]


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(_ds(), batch_size=0)
    with pytest.raises(ValueError, match="rows"):
        data.TensorDataset(np.zeros((3, 2)), np.zeros(4))


def test_standardizer_fit_on_train_reuse_on_test(rng):
    tr = rng.normal(5, 3, (1000, 4))
    te = rng.normal(5, 3, (200, 4))
    s = data.Standardizer().fit(tr)
    z = s.transform(tr)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(s.transform(te), ((te - tr.mean(0)) / tr.std(0)).astype(np.float32), rtol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z), tr, rtol=1e-5, atol=1e-5)  # z is float32
    s2 = data.Standardizer()
    s2.load_state_dict(s.state_dict())
    np.testing.assert_array_equal(s2.transform(te), s.transform(te))
    with pytest.raises(RuntimeError, match="fit"):
        data.Standardizer().transform(te)


def test_split_stratified(rng):
    x = np.arange(1000)
    y = np.repeat(np.arange(4), 250)
    (xtr, ytr), (xdv, ydv), (xte, yte) = data.train_dev_test_split(x, y, dev=0.1, test=0.2, stratify=y)
    assert len(xtr) + len(xdv) + len(xte) == 1000
    assert sorted(np.concatenate([xtr, xdv, xte]).tolist()) == x.tolist()
    assert np.bincount(yte).tolist() == [50] * 4 and np.bincount(ydv).tolist() == [25] * 4
    np.testing.assert_array_equal(y[xte], yte)


def test_mnist_5k():
    (xtr, ytr), (xte, yte) = datasets.mnist_5k()
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int64
    assert np.bincount(ytr).tolist() == [400] * 10 and np.bincount(yte).tolist() == [100] * 10
    assert xtr.max() == 255 and xtr.min() == 0
    (xtr2, _), _ = datasets.mnist_5k()
    np.testing.assert_array_equal(xtr, xtr2)  # a fixed split


def test_names():
    names = datasets.names()
    assert 5000 < len(names) < 5300
    assert all(n.isalpha() and n.islower() for n in names)
    assert "james" in names and "mary" in names
