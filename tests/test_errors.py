"""Bad input raises a clear Python exception naming the argument; it never crashes.  The kernel table's
argument checks, case by case on both backends, are in test_contract.py."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
import fastdl.functional as F
from fastdl import _C

f32 = lambda *s: np.ones(s, np.float32)  # noqa: E731


def test_none_and_garbage_arguments_do_not_crash():
    with pytest.raises(TypeError):
        _C.matmul(None, f32(2, 2))
    with pytest.raises(TypeError):
        _C.relu_forward(object())
    with pytest.raises(TypeError):
        _C.softmax_forward(f32(2, 2), "x")
    with pytest.raises(ValueError, match="at least 1"):
        _C.softmax_forward(np.float32(1.0).reshape(()), 0)


def test_non_contiguous_inputs_are_handled():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    b = np.arange(12, dtype=np.float32).reshape(3, 4).T.copy().T
    np.testing.assert_allclose(_C.matmul(a, b), a @ b, rtol=1e-6)
    np.testing.assert_allclose(_C.relu_forward(a.T), np.maximum(a.T, 0))


def test_empty_arrays():
    assert _C.matmul(f32(0, 3), f32(3, 2)).shape == (0, 2)
    np.testing.assert_array_equal(_C.matmul(f32(2, 0), f32(0, 3)), np.zeros((2, 3)))
    assert _C.relu_forward(f32(0)).shape == (0,)
    assert _C.softmax_forward(f32(0, 4), -1).shape == (0, 4)


def test_functional_errors_name_arguments():
    x = fastdl.tensor(f32(3, 4), requires_grad=True)
    with pytest.raises(ValueError, match="target has shape"):
        F.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(TypeError, match="dtypes differ"):
        x @ fastdl.tensor(np.ones((4, 2)))
    with pytest.raises(ValueError, match="inner dimensions"):
        x @ fastdl.tensor(f32(3, 2))
    with pytest.raises(ValueError, match="p must be in"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match="mask has shape"):
        F.binary_cross_entropy_with_logits(x, f32(3, 4), mask=np.ones(4))
    with pytest.raises(ValueError, match=">= 1"):
        fastdl.set_num_threads(0)
    with pytest.raises(ValueError, match="set_backend"):
        fastdl.set_backend("gpu")
    with pytest.raises(RuntimeError, match="CUDA"):
        x.to("cuda")


def test_nan_propagates_through_losses():
    x = np.array([[np.nan, 1.0], [0.0, 1.0]], np.float32)
    loss = F.cross_entropy(fastdl.tensor(x), np.array([0, 1]), reduction="none").data
    assert np.isnan(loss[0]) and np.isfinite(loss[1])
    assert np.isnan(F.mse_loss(fastdl.tensor(x), np.zeros((2, 2), np.float32)).item())
