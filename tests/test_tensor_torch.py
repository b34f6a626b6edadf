"""The Tensor follows PyTorch's semantics: every method and module-level function PyTorch users reach
for, checked against PyTorch (forward and gradient) on random inputs, plus gradcheck in float64."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl

torch = pytest.importorskip("torch")


def _both(fn_f, fn_t, arrays, grad=True, idx_args=()):
    """Run ``fn_f`` on fastdl tensors and ``fn_t`` on torch tensors; compare outputs and gradients."""
    ft = [fastdl.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    tt = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    of, ot = fn_f(*ft), fn_t(*tt)
    of = of if isinstance(of, (tuple, list)) else (of,)
    ot = ot if isinstance(ot, (tuple, list)) else (ot,)
    assert len(of) == len(ot)
    for a, b in zip(of, ot):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-10, atol=1e-12)
        assert a.shape == tuple(b.shape)
    if grad and of[0].requires_grad:
        seed = np.random.default_rng(1).standard_normal(of[0].shape)
        of[0].backward(seed)
        ot[0].backward(torch.tensor(seed))
        for a, b in zip(ft, tt):
            if b.grad is not None:
                np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-12)
        if of[0].dtype.kind == "f":
            gts = [fastdl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
            assert fastdl.gradcheck(lambda *t: (lambda r: r[0] if isinstance(r, tuple) else r)(fn_f(*t)), gts)


R = np.random.default_rng(0)
X = R.standard_normal((3, 4, 5))
M = R.standard_normal((4, 5))
IDX = R.integers(0, 4, (3, 2, 5))

CASES = {
    "prod": (lambda x: x.prod(1), lambda x: x.prod(1), [X]),
    "prod_all": (lambda x: x.prod(), lambda x: x.prod(), [R.standard_normal((2, 3))]),
    "prod_zero": (lambda x: x.prod(0), lambda x: x.prod(0), [np.array([[0.0, 2.0], [3.0, 0.0], [1.5, 4.0]])]),
    "cumsum": (lambda x: x.cumsum(2), lambda x: x.cumsum(2), [X]),
    "norm": (lambda x: x.norm(), lambda x: x.norm(), [X]),
    "norm_dim": (lambda x: x.norm(dim=1, keepdim=True), lambda x: x.norm(dim=1, keepdim=True), [X]),
    "norm_p1": (lambda x: x.norm(1, dim=0), lambda x: x.norm(1, dim=0), [X]),
    "norm_p3": (lambda x: x.norm(3, dim=-1), lambda x: x.norm(3, dim=-1), [X]),
    "norm_inf": (lambda x: x.norm(float("inf"), dim=-1), lambda x: x.norm(float("inf"), dim=-1), [X]),
    "var": (lambda x: x.var(), lambda x: x.var(), [X]),
    "var_dim": (lambda x: x.var(1, keepdim=True), lambda x: x.var(1, keepdim=True), [X]),
    "var_biased": (lambda x: x.var(0, False), lambda x: x.var(0, False), [X]),
    "std_corr": (lambda x: x.std(dim=2, correction=0), lambda x: x.std(dim=2, correction=0), [X]),
    "max_dim": (lambda x: tuple(x.max(1)), lambda x: tuple(x.max(1)), [X]),
    "min_dim_keep": (lambda x: tuple(x.min(dim=-1, keepdim=True)), lambda x: tuple(x.min(dim=-1, keepdim=True)), [X]),
    "amax": (lambda x: x.amax((0, 2)), lambda x: x.amax((0, 2)), [X]),
    "logsumexp": (lambda x: x.logsumexp(1), lambda x: x.logsumexp(1), [X]),
    "sort": (lambda x: tuple(x.sort(1)), lambda x: tuple(x.sort(1)), [X]),
    "sort_desc": (lambda x: tuple(x.sort(-1, descending=True)), lambda x: tuple(x.sort(-1, descending=True)), [X]),
    "topk": (lambda x: tuple(x.topk(3)), lambda x: tuple(x.topk(3)), [X]),
    "topk_small": (lambda x: tuple(x.topk(2, dim=0, largest=False)), lambda x: tuple(x.topk(2, 0, False)), [X]),
    "t": (lambda x: x.t(), lambda x: x.t(), [M]),
    "mT": (lambda x: x.mT, lambda x: x.mT, [X]),
    "expand": (lambda x: x.expand(2, 4, 5), lambda x: x.expand(2, 4, 5), [R.standard_normal((4, 1))]),
    "expand_keep": (lambda x: x.expand(3, -1, 5), lambda x: x.expand(3, -1, 5), [R.standard_normal((1, 4, 1))]),
    "repeat": (lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3), [R.standard_normal((4, 2))]),
    "repeat_interleave": (lambda x: x.repeat_interleave(2, 1), lambda x: x.repeat_interleave(2, 1), [M]),
    "chunk": (lambda x: x.chunk(3, 2), lambda x: x.chunk(3, 2), [X]),
    "split": (lambda x: x.split(2, 1), lambda x: x.split(2, 1), [X]),
    "split_sizes": (lambda x: x.split([1, 3, 1], 2), lambda x: x.split([1, 3, 1], 2), [X]),
    "unbind": (lambda x: x.unbind(1), lambda x: x.unbind(1), [X]),
    "narrow": (lambda x: x.narrow(2, 1, 3), lambda x: x.narrow(2, 1, 3), [X]),
    "flip": (lambda x: x.flip(0, 2), lambda x: x.flip((0, 2)), [X]),
    "tril": (lambda x: x.tril(), lambda x: x.tril(), [X]),
    "triu": (lambda x: x.triu(1), lambda x: x.triu(1), [M]),
    "unflatten": (lambda x: x.unflatten(2, (5, 1)), lambda x: x.unflatten(2, (5, 1)), [X]),
    "squeeze_dims": (lambda x: x.squeeze((0, 2)), lambda x: x.squeeze((0, 2)), [R.standard_normal((1, 3, 1))]),
    "gather": (lambda x, i: x.gather(1, i), lambda x, i: x.gather(1, i), [X, IDX]),
    "gather_rep": (lambda x, i: x.gather(0, i), lambda x, i: x.gather(0, i), [M, np.array([[0, 0, 3, 1, 0]])]),
    "scatter": (lambda x, i, s: x.scatter(0, i, s), lambda x, i, s: x.scatter(0, i, s),
                [M, np.array([[0, 1, 2, 3, 0], [1, 2, 3, 0, 1]]), R.standard_normal((2, 5))]),
    "scatter_add": (lambda x, i, s: x.scatter_add(1, i, s), lambda x, i, s: x.scatter_add(1, i, s),
                    [M, R.integers(0, 5, (4, 7)), R.standard_normal((4, 7))]),
    "index_select": (lambda x, i: x.index_select(1, i), lambda x, i: x.index_select(1, i), [X, np.array([3, 0, 3])]),
    "masked_fill": (lambda x, m: x.masked_fill(m, -1.5), lambda x, m: x.masked_fill(m, -1.5), [X, X[0] > 0]),
    "where": (lambda x, y, c: fastdl.where(c, x, y), lambda x, y, c: torch.where(c, x, y), [M, M[0], M > 0]),
    "where_scalar": (lambda x, c: fastdl.where(c, 0.5, x), lambda x, c: torch.where(c, 0.5, x), [M, M < 0]),
    "method_where": (lambda x, c: x.where(c, 2.0), lambda x, c: x.where(c, 2.0), [M, M < 0]),
    "pow": (lambda x: x.abs().pow(1.5), lambda x: x.abs().pow(1.5), [M]),
    "lerp": (lambda x, y: x.lerp(y, 0.3), lambda x, y: x.lerp(y, 0.3), [M, M[::-1].copy()]),
    "lerp_t": (lambda x, y, w: x.lerp(y, w), lambda x, y, w: x.lerp(y, w), [M, M * 2, R.random((4, 5))]),
    "maximum": (lambda x, y: x.maximum(y), lambda x, y: x.maximum(y), [M, np.where(M > 0, M, 0.1)]),
    "minimum": (lambda x, y: fastdl.minimum(x, y), lambda x, y: torch.minimum(x, y), [M, M[0]]),
    "max_other": (lambda x, y: x.max(y), lambda x, y: x.max(y), [M, -M]),
    "nan_to_num": (lambda x: x.nan_to_num(0.5, 9.0, -9.0), lambda x: x.nan_to_num(0.5, 9.0, -9.0),
                   [np.array([1.0, np.nan, np.inf, -np.inf, -2.0])]),
    "maths": (lambda x: x.sin() * x.cos() + x.abs().log1p() + x.expm1() + x.square() + (x.abs() + 1).rsqrt(),
              lambda x: x.sin() * x.cos() + x.abs().log1p() + x.expm1() + x.square() + (x.abs() + 1).rsqrt(), [M]),
    "rounding": (lambda x: x.floor() + x.ceil() + x.round() + x.trunc() + x.sign() + x,
                 lambda x: x.floor() + x.ceil() + x.round() + x.trunc() + x.sign() + x, [M * 3]),
    "mm": (lambda a, b: a.mm(b), lambda a, b: a.mm(b), [M, M.T.copy()]),
    "bmm": (lambda a, b: fastdl.bmm(a, b), lambda a, b: torch.bmm(a, b), [X, R.standard_normal((3, 5, 2))]),
    "dot": (lambda a, b: a.dot(b), lambda a, b: a.dot(b), [M[0], M[1]]),
    "add_alpha": (lambda a, b: a.add(b, alpha=2.5).sub(a, alpha=0.5), lambda a, b: a.add(b, alpha=2.5).sub(a, alpha=0.5),
                  [M, M[1]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_methods_match_pytorch(name):
    fn_f, fn_t, arrays = CASES[name]
    _both(fn_f, fn_t, arrays)


EINSUM = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(4, 4)]),
          ("ii", [(3, 3)]), ("ij->", [(3, 4)]), ("ij,ij->ij", [(3, 4), (3, 4)]), ("i,j->ij", [(3,), (4,)]),
          ("...ij,...jk", [(2, 3, 4), (4, 5)]), ("bhld,bhsd->bhls", [(2, 3, 4, 5), (2, 3, 6, 5)]),
          ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]), ("ijk->kji", [(2, 3, 4)]), ("iij->j", [(3, 3, 2)]),
          ("ij,k->", [(2, 3), (4,)])]


@pytest.mark.parametrize("eq,shapes", EINSUM)
def test_einsum_matches_pytorch(eq, shapes):
    arrays = [R.standard_normal(s) for s in shapes]
    _both(lambda *t: fastdl.einsum(eq, *t), lambda *t: torch.einsum(eq, *t), arrays)


def test_size_numel_and_python_scalars():
    x = fastdl.zeros(2, 3)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2 and x.numel() == 6 and x.dim() == 2
    assert float(fastdl.tensor([[2.5]])) == 2.5 and int(fastdl.tensor(7)) == 7 and bool(fastdl.tensor([1]))
    assert [10, 20, 30][fastdl.tensor(1)] == 20  # __index__ for integer tensors
    with pytest.raises(TypeError, match="one element"):
        float(x)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x)
    with pytest.raises(TypeError, match="integer tensor"):
        [1, 2][fastdl.tensor(1.0)]
    t = fastdl.tensor([1.0, 2.0, 3.0, 4.0])
    assert abs(float(t.var()) - 1.6666666) < 1e-6  # unbiased, as PyTorch (NumPy gives 1.25)
    assert abs(float(t.var(ddof=0)) - 1.25) < 1e-6 and abs(float(t.var(unbiased=False)) - 1.25) < 1e-6


def test_named_tuples_and_dtypes():
    x = fastdl.tensor(np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]]))
    r = x.max(dim=1)
    assert type(r).__name__ == "max" and r._fields == ("values", "indices")
    values, indices = r
    assert values.tolist() == [5.0, 6.0] and indices.tolist() == [1, 2] and indices.dtype == np.int64
    assert x.max(axis=1, keepdims=True).values.shape == (2, 1)  # NumPy spellings mean the same
    assert float(x.max()) == 6.0 and x.amax(1).tolist() == [5.0, 6.0]
    s = x.sort(dim=1, descending=True)
    assert s.values.tolist() == [[5, 3, 1], [6, 4, 2]] and s.indices.tolist() == [[1, 2, 0], [2, 0, 1]]
    assert x.int().dtype == np.int32 and x.long().dtype == np.int64 and x.bool().dtype == bool
    assert x.type_as(fastdl.tensor([1])).dtype == np.int64
    assert x.new_zeros(2, 2).dtype == np.float64 and x.new_ones((3,)).tolist() == [1, 1, 1]
    assert x.new_full((2,), 7).tolist() == [7, 7] and x.contiguous() is x
    assert (x > 2).eq(x.gt(2)).all() and x.ne(x).any().item() is False
    assert x.isnan().any().item() is False and fastdl.tensor([np.inf]).isfinite().tolist() == [False]


def test_max_dim_nan_and_ties_follow_pytorch():
    a = np.array([[1.0, np.nan, 3.0], [2.0, 2.0, 0.0]])
    v, i = fastdl.tensor(a).max(1)
    tv, ti = torch.tensor(a).max(1)
    np.testing.assert_array_equal(v.data, tv.numpy())
    assert i.tolist()[0] == ti.tolist()[0] == 1
    x = fastdl.tensor(np.array([[1.0, 3.0, 3.0]]), requires_grad=True)
    x.max(1).values.sum().backward()
    assert x.grad.data.sum() == 1.0  # max(dim): the gradient goes to the one index, not shared


def test_creation_functions_match_pytorch():
    fastdl.manual_seed(0)
    cases = [(fastdl.arange(5), torch.arange(5)), (fastdl.arange(1, 7, 2), torch.arange(1, 7, 2)),
             (fastdl.arange(0.0, 1.0, 0.1), torch.arange(0.0, 1.0, 0.1)),
             (fastdl.linspace(-1, 1, 7), torch.linspace(-1, 1, 7)), (fastdl.full((2, 3), 1.5), torch.full((2, 3), 1.5)),
             (fastdl.full((2,), 4), torch.full((2,), 4)), (fastdl.eye(3, 4), torch.eye(3, 4)),
             (fastdl.zeros_like(fastdl.ones(2, dtype="float64")), torch.zeros_like(torch.ones(2, dtype=torch.float64))),
             (fastdl.ones_like(fastdl.arange(3)), torch.ones_like(torch.arange(3))),
             (fastdl.full_like(fastdl.zeros(2), 3), torch.full_like(torch.zeros(2), 3)),
             (fastdl.empty(2, 3), torch.zeros(2, 3)), (fastdl.tril(fastdl.ones(3, 3)), torch.tril(torch.ones(3, 3)))]
    for a, b in cases:
        assert a.shape == tuple(b.shape) and str(a.dtype) == str(b.dtype).replace("torch.", ""), (a, b)
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-6, atol=1e-7)
    r = fastdl.rand(1000)
    assert r.dtype == np.float32 and 0 <= float(r.min()) and float(r.max()) < 1 and abs(float(r.mean()) - 0.5) < 0.05
    k = fastdl.randint(3, 9, (500,))
    assert k.dtype == np.int64 and set(k.tolist()) == set(range(3, 9))
    assert fastdl.randint(4, (2, 2)).shape == (2, 2)
    fastdl.manual_seed(5)
    a = fastdl.randn(3)
    fastdl.manual_seed(5)
    assert np.array_equal(a.data, fastdl.randn_like(a).data)
    with pytest.raises(ValueError, match="sizes must be >= 0"):
        fastdl.zeros(2, -1)
    with pytest.raises(ValueError, match="step"):
        fastdl.arange(0, 3, 0)


def test_from_numpy_shares_memory():
    a = np.zeros((2, 2), np.float32)
    t = fastdl.from_numpy(a)
    t.add_(1.0)
    t[0, 1] = 5.0
    assert a.tolist() == [[1, 5], [1, 1]]
    a[1, 1] = -2.0
    assert t.tolist()[1][1] == -2.0
    with pytest.raises(ValueError, match="C-contiguous"):
        fastdl.from_numpy(a.T)
    with pytest.raises(TypeError, match="ndarray"):
        fastdl.from_numpy([1, 2])


def test_in_place_ops_follow_pytorch_rules():
    w = fastdl.randn(3, requires_grad=True)
    for op in (lambda t: t.add_(1), lambda t: t.zero_(), lambda t: t.mul_(2), lambda t: t.copy_(t.detach()),
               lambda t: t.fill_(0.0)):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            op(w)
    with fastdl.no_grad():  # allowed, and in place
        before = w.data
        w.mul_(0.5).add_(1.0)
        assert w.data is before
    # a non-leaf changed in place keeps a correct graph, as PyTorch's
    for f_op, t_op in [(lambda t: t.mul_(3.0), lambda t: t.mul_(3.0)), (lambda t: t.add_(t), lambda t: t.add_(t)),
                       (lambda t: t.clamp_(-0.2, 0.3), lambda t: t.clamp_(-0.2, 0.3)),
                       (lambda t: t.zero_(), lambda t: t.zero_()), (lambda t: t.fill_(2.0), lambda t: t.fill_(2.0)),
                       (lambda t: t.masked_fill_(t > 0, 0.0), lambda t: t.masked_fill_(t > 0, 0.0))]:
        a = np.random.default_rng(3).standard_normal(4)
        x, tx = fastdl.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        y, ty = x * 2, tx * 2
        assert f_op(y) is y
        t_op(ty)
        (y * y).sum().backward()
        (ty * ty).sum().backward()
        np.testing.assert_allclose(y.data, ty.detach().numpy())
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy())


def test_setitem_and_copy_carry_gradients():
    a, v = np.arange(6.0).reshape(2, 3), np.array([10.0, 20.0, 30.0])
    x, vv = fastdl.tensor(a, requires_grad=True), fastdl.tensor(v, requires_grad=True)
    tx, tv = torch.tensor(a, requires_grad=True), torch.tensor(v, requires_grad=True)
    y, ty = x * 1.0, tx * 1.0
    y[1] = vv * 2
    ty[1] = tv * 2
    y[:, 0] = 0.0
    ty[:, 0] = 0.0
    (y ** 2).sum().backward()
    (ty ** 2).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy())
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())
    np.testing.assert_allclose(vv.grad.data, tv.grad.numpy())
    z = fastdl.zeros(2, 3)
    src = fastdl.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    z.copy_(src)
    z.sum().backward()
    assert z.tolist() == [[1, 2, 3], [1, 2, 3]] and src.grad.tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="does not broadcast"):
        fastdl.zeros(2, 3).copy_(fastdl.zeros(4))


def test_changed_in_place_after_use_is_refused():
    x = fastdl.randn(3, requires_grad=True)
    y = x * 1.0
    z = y * y  # saves y
    y.mul_(2.0)
    with pytest.raises(RuntimeError, match="changed in place"):
        z.sum().backward()
    d = fastdl.randn(3)  # data, not requiring grad, saved by an op and then changed
    out = x * d
    d.add_(1.0)
    with pytest.raises(RuntimeError, match="changed in place"):
        out.sum().backward()


def test_bad_arguments_name_the_problem():
    x = fastdl.randn(2, 3)
    with pytest.raises(TypeError, match="mask must be a bool"):
        x.masked_fill(fastdl.tensor([1, 0, 1]), 0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        x.masked_fill(fastdl.ones(4, dtype=bool), 0.0)
    with pytest.raises(IndexError, match="outside"):
        x.gather(1, fastdl.tensor([[0, 3]]))
    with pytest.raises(TypeError, match="integers"):
        x.gather(1, fastdl.tensor([[0.0]]))
    with pytest.raises(ValueError, match="k must be"):
        x.topk(4)
    with pytest.raises(ValueError, match="cannot expand"):
        x.expand(3, 3)
    with pytest.raises(ValueError, match="sum to 3"):
        x.split([1, 1], 1)
    with pytest.raises(ValueError, match="at most 2"):
        fastdl.zeros(2, 2, 2).t()
    with pytest.raises(ValueError, match="do not match"):
        fastdl.einsum("ij,jk->ik", x, fastdl.randn(3))
    with pytest.raises(IndexError, match="out of range"):
        x.size(2)
    with pytest.raises(TypeError, match="out="):
        x.sum(out=x)


def test_nn_functional_and_init_are_the_same_modules():
    import fastdl.nn.functional as F
    import fastdl.nn.init as init
    assert F is fastdl.functional and init is fastdl.init and fastdl.nn.functional is F
    assert F.cross_entropy is fastdl.functional.cross_entropy and callable(init.kaiming_uniform_)
