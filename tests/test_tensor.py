"""Tensor semantics and the autograd engine."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from helpers import check_op


def test_dtype_rules():
    assert fastdl.tensor(1.5).dtype == np.float32
    assert fastdl.tensor([1.0, 2.0]).dtype == np.float32
    assert fastdl.tensor(np.zeros(3)).dtype == np.float64  # NumPy arrays keep their dtype
    assert fastdl.tensor(np.zeros(3, np.int32)).dtype == np.int32
    assert fastdl.tensor([1, 2]).dtype == np.int64
    assert fastdl.tensor(np.array([True, False])).dtype == bool
    assert (fastdl.tensor(np.ones(2, np.float32)) * 2.5).dtype == np.float32
    assert fastdl.tensor([1.0], dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="floating-point"):
        fastdl.tensor([1, 2], requires_grad=True)


def test_tensor_copies_but_Tensor_wraps():
    a = np.zeros(3, np.float32)
    fastdl.tensor(a).data[0] = 1
    assert a[0] == 0


def test_api_basics():
    t = fastdl.tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.device == "cpu" and len(t) == 2
    assert np.asarray(t).shape == (2, 3)
    assert fastdl.tensor(3.0).item() == 3.0
    assert t.detach().requires_grad is False
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert "tensor(" in repr(t)
    assert (t > 2).dtype == bool and (t > 2).data.sum() == 3


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)),
                                   ((), (3,)), ((5,), ())])
def test_broadcasting_grads(rng, op, sa, sb):
    f = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "div": lambda a, b: a / b}[op]
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb) + (3.0 if op == "div" else 0.0)
    check_op(f, np.asarray(a), np.asarray(b) if sb else np.asarray(b), expected=f)


def test_scalar_and_reflected_ops(rng):
    a = rng.standard_normal((3, 2))
    check_op(lambda x: 2.0 - x * 3 + 1 / (x * x + 1) - (-x) ** 2, a)
    check_op(lambda x: (x * x + 1).sqrt().log().exp(), a)
    check_op(lambda x: abs(x) + x.clip(-0.5, 0.5), a + 0.01)
    y = np.ones((3, 2)) + fastdl.tensor(a.astype(np.float32))  # ndarray (op) Tensor goes to the Tensor
    assert isinstance(y, fastdl.Tensor) and y.dtype == np.float64  # NumPy promotion: float64 array wins


def test_pow_tensor_exponent(rng):
    check_op(lambda a, b: a ** b, rng.random((3, 2)) + 0.5, rng.standard_normal((3, 2)))


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(rng, axis, keepdims):
    x = rng.standard_normal((3, 4, 5))
    check_op(lambda t: t.sum(axis=axis, keepdims=keepdims), x,
             expected=lambda a: a.sum(axis=axis, keepdims=keepdims))
    check_op(lambda t: t.mean(axis=axis, keepdims=keepdims), x,
             expected=lambda a: a.mean(axis=axis, keepdims=keepdims))
    check_op(lambda t: t.amax(axis=axis, keepdims=keepdims), x,
             expected=lambda a: a.max(axis=axis, keepdims=keepdims))
    check_op(lambda t: t.var(axis=axis, keepdims=keepdims), x,  # unbiased by default, as PyTorch
             expected=lambda a: a.var(axis=axis, keepdims=keepdims, ddof=1))
    check_op(lambda t: t.var(axis=axis, keepdims=keepdims, ddof=0), x,
             expected=lambda a: a.var(axis=axis, keepdims=keepdims))


def test_torch_spellings_and_var_ddof(rng):
    x = rng.standard_normal((4, 5))
    t = fastdl.tensor(x)
    np.testing.assert_allclose(t.sum(dim=1, keepdim=True).data, x.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(t.var(ddof=1).data, x.var(ddof=1))
    np.testing.assert_allclose(t.var(unbiased=True).data, x.var(ddof=1))
    np.testing.assert_allclose(t.std(axis=0, correction=1).data, x.std(axis=0, ddof=1))
    np.testing.assert_array_equal(t.argmax(axis=1).data, x.argmax(axis=1))
    np.testing.assert_allclose(t.min(0).values.data, x.min(0))
    np.testing.assert_allclose(t.var(1, False).data, x.var(axis=1))


def test_max_ties_share_gradient():
    x = fastdl.tensor(np.array([1.0, 3.0, 3.0, 0.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.data, [0, 0.5, 0.5, 0])


def test_shape_ops(rng):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: t.reshape(6, 4).T, x, expected=lambda a: a.reshape(6, 4).T)
    check_op(lambda t: t.transpose(2, 0, 1), x, expected=lambda a: a.transpose(2, 0, 1))
    check_op(lambda t: t.permute(1, 2, 0), x, expected=lambda a: a.transpose(1, 2, 0))
    check_op(lambda t: t.transpose(0, 2), x, expected=lambda a: a.swapaxes(0, 2))  # PyTorch's two-axis form
    check_op(lambda t: t.swapaxes(1, 2).flatten(1), x, expected=lambda a: a.swapaxes(1, 2).reshape(2, -1))
    check_op(lambda t: t.unsqueeze(0).squeeze(0), x, expected=lambda a: a)


@pytest.mark.parametrize("idx", [
    1, (slice(None), 2), (Ellipsis, slice(1, 3)), (np.array([0, 1, 0]),), (slice(None), np.array([2, 2, 0])),
    (np.array([1, 0]), np.array([2, 2])), (None, 1),
])
def test_indexing_grads(rng, idx):
    x = rng.standard_normal((2, 3, 4))
    check_op(lambda t: t[idx], x, expected=lambda a: a[idx])


def test_boolean_mask_indexing(rng):
    x = rng.standard_normal((4, 3))
    m = x > 0
    check_op(lambda t: t[m], x, expected=lambda a: a[m])


def test_gradient_accumulates_and_zero_grad():
    x = fastdl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 4])
    x.zero_grad()
    assert x.grad is None


def test_reused_node_gets_summed_gradient():
    x = fastdl.tensor(np.array([2.0]), requires_grad=True)
    y = x * x
    z = y * y + y  # y used twice
    z.backward(np.ones(1))
    np.testing.assert_allclose(x.grad.data, [4 * 2 ** 3 + 2 * 2])


def test_no_grad_builds_no_graph():
    x = fastdl.tensor(np.ones(3), requires_grad=True)
    with fastdl.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    assert (x * 2).requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_long_chain_no_recursion_limit():
    x = fastdl.tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad.data, [1.0001 ** 10_000], rtol=1e-10)


def test_backward_needs_grad_for_nonscalar():
    x = fastdl.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(4))


def test_retain_grad_on_intermediate():
    x = fastdl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.data, 2 * y.data)


def test_astype_is_differentiable():
    x = fastdl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.astype(np.float32) * 2
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.data, [2, 2])


def test_gradcheck_catches_wrong_backward():
    from fastdl.tensor import _result

    def bad_square(t):
        return _result(t.data ** 2, (t,), lambda g: (g * t.data,))  # should be 2 * t
    x = fastdl.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    with pytest.raises(fastdl.GradcheckError, match="input 0"):
        fastdl.gradcheck(bad_square, (x,))
    assert fastdl.gradcheck(lambda t: t ** 2, (x,))
    with pytest.raises(TypeError, match="float64"):
        fastdl.gradcheck(lambda t: t * 2, (fastdl.tensor([1.0], requires_grad=True),))


def test_leaf_keeps_a_fresh_gradient_and_copies_a_shared_one(monkeypatch):
    """A gradient only the engine holds becomes .grad without a copy (PyTorch's AccumulateGrad steals
    it too); one the caller, another leaf or a saved array can still see is copied."""
    seen = []
    accumulate = fastdl.Tensor._accumulate_grad

    def spy(self, g, sole=False):
        seen.append(sole)
        accumulate(self, g, sole)
    monkeypatch.setattr(fastdl.Tensor, "_accumulate_grad", spy)
    x = fastdl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (x * 2).sum().backward()
    assert seen == [True]
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
    # the caller's gradient, straight through add (the same array for both inputs) and through a view
    g = np.ones((2, 3))
    y = fastdl.tensor(np.zeros((2, 3)), requires_grad=True)
    x.grad = None
    seen.clear()
    (x + y).backward(g)
    (y.reshape(6) * 1.0).reshape(2, 3).backward(g)
    x.backward(g)
    assert not any(seen[:2]) and not seen[-1]
    g[:] = 7.0  # the caller reuses its array: no .grad may change
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(y.grad.numpy(), np.full((2, 3), 2.0))
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
    # several views of one buffer (split's outputs' gradients land in one array) are not stolen
    z = fastdl.tensor(np.ones((4, 3)), requires_grad=True)
    w = fastdl.tensor(np.ones((4, 3)), requires_grad=True)
    a, b = (z * w).split(2)
    (a.sum() + 2 * b.sum()).backward()
    np.testing.assert_array_equal(z.grad.numpy(), np.repeat([[1.0], [2.0]], 2, axis=0) * np.ones((4, 3)))
    assert not np.shares_memory(z.grad.numpy(), w.grad.numpy())


def test_post_accumulate_grad_hook_fires_as_soon_as_a_leaf_is_final():
    """The last layer's weight is handed over while backward still works on the first layer's."""
    from fastdl import autograd
    w1 = fastdl.tensor(np.ones((3, 4)), requires_grad=True)
    w2 = fastdl.tensor(np.full((2, 3), 0.5), requires_grad=True)
    x = fastdl.tensor(np.arange(8.0).reshape(2, 4))
    calls = []

    def hook(p):
        calls.append((p is w1, None if w1.grad is None else w1.grad.numpy().copy(), p.grad.numpy().copy()))
        if len(calls) == 1:
            autograd.queue_callback(lambda: calls.append("end"))

    handles = [w.register_post_accumulate_grad_hook(hook) for w in (w2, w1)]
    ((x @ w1.T).tanh() @ w2.T).sum().backward()
    assert [c if c == "end" else c[0] for c in calls] == [False, True, "end"]
    assert calls[0][1] is None  # w1's gradient did not exist yet when w2's hook ran
    np.testing.assert_array_equal(calls[0][2], w2.grad.numpy())
    np.testing.assert_array_equal(calls[1][2], w1.grad.numpy())
    for h in handles:
        h.remove()
    calls.clear()
    ((x @ w1.T).tanh() @ w2.T).sum().backward()
    assert calls == []
    with pytest.raises(RuntimeError, match="no backward pass"):
        autograd.queue_callback(lambda: None)
    with pytest.raises(RuntimeError, match="only leaf"):
        (w1 * 2).register_post_accumulate_grad_hook(hook)
    with pytest.raises(TypeError, match="callable"):
        w1.register_post_accumulate_grad_hook(3)
