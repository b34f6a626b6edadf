"""The Python side of the CUDA kernel table (fastdl/cuda/ops.py), on any machine: NumPy stands in for
CuPy, and a NumPy emulation of ``fastdl._C_cuda``, which finds arrays by their pointers, stands in for
the kernels.  This checks the glue against the CPU kernels: argument and index-range checks, the axis
moves and the rows and columns handed to the kernels, in-place updates, and that the table is complete.
The CUDA kernels themselves are compared with the CPU kernels in test_cuda.py, on a GPU."""
from __future__ import annotations

import contextlib
import importlib
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

import fastdl
from fastdl import backend, reference
from fastdl.reference.elementwise import ACTIVATIONS
from fastdl.reference.optim import ADAPTIVE


class EmulatedKernels(types.ModuleType):
    """``fastdl._C_cuda``'s functions computed by NumPy on the arrays behind the pointers they are given."""

    def __init__(self):
        super().__init__("fastdl._C_cuda")
        self.arrays, self.architectures = {}, "emulated"

    def ptr(self, a):
        self.arrays[a.ctypes.data] = a
        return a.ctypes.data

    def _a(self, p, shape=None):
        a = self.arrays[p]
        return a if shape is None else a.reshape(shape)

    def act_forward(self, act, dtype, x, y, n, stream):
        v = self._a(x, -1)
        self._a(y, -1)[...] = [np.maximum(v, 0), np.tanh(v), 1 / (1 + np.exp(-v))][act]

    def act_backward(self, act, dtype, gy, y, gx, n, stream):
        g, o = self._a(gy, -1), self._a(y, -1)
        self._a(gx, -1)[...] = [np.where(o > 0, g, 0), g * (1 - o * o), g * o * (1 - o)][act]

    def softmax_forward(self, log, dtype, x, y, rows, cols, stream):
        fn = reference.log_softmax_forward if log else reference.softmax_forward
        self._a(y, (rows, cols))[...] = fn(self._a(x, (rows, cols)), -1)

    def softmax_backward(self, log, dtype, gy, y, gx, rows, cols, stream):
        fn = reference.log_softmax_backward if log else reference.softmax_backward
        self._a(gx, (rows, cols))[...] = fn(self._a(gy, (rows, cols)), self._a(y, (rows, cols)), -1)

    def dropout_mask(self, out, n, p, seed, stream):
        self._a(out, -1)[...] = reference.dropout_mask((n,), p, seed)

    def dropout_apply(self, dtype, x, mask, y, n, scale, stream):
        self._a(y, -1)[...] = reference.dropout_apply(self._a(x, -1), self._a(mask, -1), scale)

    def activation_forward(self, kind, dtype, x, y, n, alpha, beta, stream):
        self._a(y, -1)[...] = reference.activation_forward(self._a(x, -1), ACTIVATIONS[kind], alpha, beta)

    def activation_backward(self, kind, dtype, gy, x, gx, n, alpha, beta, stream):
        self._a(gx, -1)[...] = reference.activation_backward(self._a(gy, -1), self._a(x, -1), ACTIVATIONS[kind],
                                                             alpha, beta)

    def masked_softmax_forward(self, dtype, x, mask, y, rows, cols, scale, stream):
        self._a(y, (rows, cols))[...] = reference.masked_softmax_forward(
            self._a(x, (rows, cols)), self._a(mask, (rows, cols)) if mask else None, scale)

    def masked_softmax_backward(self, dtype, gy, y, gx, rows, cols, scale, stream):
        self._a(gx, (rows, cols))[...] = reference.masked_softmax_backward(self._a(gy, (rows, cols)),
                                                                           self._a(y, (rows, cols)), scale)

    def cross_entropy_forward(self, dtype, x, t, loss, lse, rows, cols, ignore, eps, stream):
        self._a(loss)[...], self._a(lse)[...] = reference.cross_entropy_forward(self._a(x), self._a(t), ignore, eps)

    def cross_entropy_backward(self, dtype, gloss, x, t, lse, gx, rows, cols, ignore, eps, stream):
        self._a(gx)[...] = reference.cross_entropy_backward(self._a(gloss), self._a(x), self._a(t), self._a(lse),
                                                            ignore, eps)

    def sgd_step(self, dtype, p, g, buf, n, *hyper):
        reference.sgd_step(self._a(p), self._a(g), self._a(buf) if buf else None, *hyper[:-1])

    def adam_step(self, dtype, p, g, m, v, vmax, n, *hyper):
        reference.adam_step(self._a(p), self._a(g), self._a(m), self._a(v), self._a(vmax) if vmax else None,
                            *hyper[:-1])

    def rmsprop_step(self, dtype, p, g, sq, gavg, buf, n, *hyper):
        reference.rmsprop_step(self._a(p), self._a(g), self._a(sq), self._a(gavg) if gavg else None,
                               self._a(buf) if buf else None, *hyper[:-1])

    def adaptive_step(self, kind, dtype, p, g, a, b, n, *hyper):
        reference.adaptive_step(ADAPTIVE[kind], self._a(p), self._a(g), self._a(a), self._a(b) if b else None,
                                *hyper[:-1])

    def embedding_forward(self, dtype, w, idx, y, n, d, stream):
        self._a(y, (n, d))[...] = self._a(w)[self._a(idx, -1)]

    def embedding_backward(self, dtype, gy, idx, gw, n, d, v, padding_idx, stream):
        self._a(gw)[...] = reference.embedding_backward(self._a(gy), self._a(idx), v, padding_idx)

    # the convolution's columns and the pools, cell by cell from the geometry the glue passes
    @staticmethod
    def _taps(geom):
        n, c, h, w, kh, kw, oh, ow, sh, sw, pt, pl, dh, dw = geom
        for i in range(kh):
            for j in range(kw):
                for y in range(oh):
                    for x in range(ow):
                        ih, iw = y * sh - pt + i * dh, x * sw - pl + j * dw
                        if 0 <= ih < h and 0 <= iw < w:
                            yield i, j, y, x, ih, iw

    def im2col(self, dtype, x, cols, geom, stream):
        n, c, h, w, kh, kw, oh, ow = geom[:8]
        src, out = self._a(x), self._a(cols, (c, kh, kw, n, oh, ow))
        out[...] = 0
        for i, j, y, x_, ih, iw in self._taps(geom):
            out[:, i, j, :, y, x_] = src[:, :, ih, iw].T

    def col2im(self, dtype, cols, gx, geom, stream):
        n, c, h, w, kh, kw, oh, ow = geom[:8]
        src, out = self._a(cols, (c, kh, kw, n, oh, ow)), self._a(gx)
        out[...] = 0
        for i, j, y, x_, ih, iw in self._taps(geom):
            out[:, :, ih, iw] += src[:, i, j, :, y, x_].T

    def max_pool2d_forward(self, dtype, x, y, idx, geom, stream):
        p, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw = geom
        src, vals, ids = self._a(x, (p, h * w)), self._a(y, (p, oh, ow)), self._a(idx, (p, oh, ow))
        for a in range(oh):
            for b in range(ow):
                cells = [((a * sh - ph + i * dh), (b * sw - pw + j * dw)) for i in range(kh) for j in range(kw)]
                flat = [r * w + q if 0 <= r < h and 0 <= q < w else -1 for r, q in cells]
                v = np.stack([src[:, f] if f >= 0 else np.full(p, -np.inf) for f in flat], 1)
                nan = np.isnan(v)
                k = np.where(nan.any(1), nan.argmax(1), np.argmax(np.where(nan, -np.inf, v), 1))
                vals[:, a, b], ids[:, a, b] = v[np.arange(p), k], np.array(flat)[k]

    def max_pool2d_backward(self, dtype, gy, idx, gx, geom, stream):
        p, h, w, oh, ow = geom[:5]
        g, ids, out = self._a(gy, (p, oh * ow)), self._a(idx, (p, oh * ow)), self._a(gx, (p, h * w))
        out[...] = 0
        for r in range(p):
            hit = ids[r] >= 0
            np.add.at(out[r], ids[r][hit], g[r][hit])

    def avg_pool2d_forward(self, dtype, x, y, geom, count_include_pad, stream):
        p, h, w, oh, ow, kh, kw, sh, sw, ph, pw = geom[:11]
        self._a(y, (p, oh, ow))[...] = reference.avg_pool2d_forward(
            self._a(x, (p, h, w)), (kh, kw), (sh, sw), (ph, pw), self._ceil(h, oh, kh, sh, ph), count_include_pad)

    def avg_pool2d_backward(self, dtype, gy, gx, geom, count_include_pad, stream):
        p, h, w, oh, ow, kh, kw, sh, sw, ph, pw = geom[:11]
        self._a(gx, (p, h, w))[...] = reference.avg_pool2d_backward(
            self._a(gy, (p, oh, ow)), (h, w), (kh, kw), (sh, sw), (ph, pw), self._ceil(h, oh, kh, sh, ph),
            count_include_pad)

    def batch_norm_forward(self, dtype, x, w, b, rm, rv, y, mean, rstd, n, c, sp, training, momentum, eps, stream):
        xs = self._a(x, (n, c, sp))
        opt = lambda p: self._a(p) if p else None  # noqa: E731
        out = reference.batch_norm_forward(xs, opt(w), opt(b), opt(rm), opt(rv), training, momentum, eps)
        self._a(y, (n, c, sp))[...], self._a(mean)[...], self._a(rstd)[...] = out

    def batch_norm_backward(self, dtype, gy, x, w, mean, rstd, gx, gw, gb, n, c, sp, training, stream):
        out = reference.batch_norm_backward(self._a(gy, (n, c, sp)), self._a(x, (n, c, sp)), self._a(w) if w else None,
                                            self._a(mean), self._a(rstd), training)
        for p, v, shape in zip((gx, gw, gb), out, ((n, c, sp), (c,), (c,))):
            if p:
                self._a(p, shape)[...] = v

    def layer_norm_forward(self, dtype, x, w, b, y, mean, rstd, rows, d, eps, stream):
        opt = lambda p: self._a(p, -1) if p else None  # noqa: E731
        out = reference.layer_norm_forward(self._a(x, (rows, d)), (d,), opt(w), opt(b), eps)
        self._a(y, (rows, d))[...], self._a(mean, -1)[...], self._a(rstd, -1)[...] = out

    def layer_norm_backward(self, dtype, gy, x, w, mean, rstd, gx, gw, gb, rows, d, stream):
        out = reference.layer_norm_backward(self._a(gy, (rows, d)), self._a(x, (rows, d)), (d,),
                                            self._a(w, -1) if w else None, self._a(mean, -1), self._a(rstd, -1))
        for p, v in zip((gx, gw, gb), out):
            if p:
                self._a(p, -1)[...] = v.reshape(-1)

    def adaptive_avg_pool2d_forward(self, dtype, x, y, p, h, w, oh, ow, stream):
        self._a(y, (p, oh, ow))[...] = reference.adaptive_avg_pool2d_forward(self._a(x, (p, h, w)), (oh, ow))

    def adaptive_avg_pool2d_backward(self, dtype, gy, gx, p, h, w, oh, ow, stream):
        # the kernel's gather, cell by cell: the windows holding input row r run from r * OH // H up to
        # the first that starts past r (so its bounds are checked here against the reference's scatter)
        lo = lambda i, n, o: i * n // o  # noqa: E731
        hi = lambda i, n, o: -(-(i + 1) * n // o)  # noqa: E731
        g, out = self._a(gy, (p, oh, ow)), self._a(gx, (p, h, w))
        for r in range(h):
            for c in range(w):
                s = np.zeros(p)
                i = r * oh // h
                while i < oh and lo(i, h, oh) <= r:
                    if hi(i, h, oh) > r:
                        j = c * ow // w
                        while j < ow and lo(j, w, ow) <= c:
                            if hi(j, w, ow) > c:
                                s += g[:, i, j] / ((hi(i, h, oh) - lo(i, h, oh)) * (hi(j, w, ow) - lo(j, w, ow)))
                            j += 1
                    i += 1
                out[:, r, c] = s

    def lstm_cell_forward(self, dtype, xw, hw, c, h, out, gates, cs, lengths, t, b, hid, stream):
        pre = self._a(xw, (b, 4 * hid)) + self._a(hw, (b, 4 * hid))
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        i, f, g, o = sig(pre[:, :hid]), sig(pre[:, hid:2 * hid]), np.tanh(pre[:, 2 * hid:3 * hid]), sig(pre[:, 3 * hid:])
        live = np.ones(b, bool) if not lengths else t < self._a(lengths)
        cv, hv = self._a(c, (b, hid)), self._a(h, (b, hid))
        cn = f * cv + i * g
        cv[live], hv[live] = cn[live], (o * np.tanh(cn))[live]
        self._a(out, (b, hid))[...] = np.where(live[:, None], hv, 0)
        if gates:
            self._a(gates, (b, 4 * hid))[...] = np.where(live[:, None], np.concatenate([i, f, g, o], 1), 0)
        if cs:
            self._a(cs, (b, hid))[...] = cv

    def lstm_cell_backward(self, dtype, gates, c, cprev, dout, dh, dc, dpre, direct, lengths, t, b, hid, stream):
        gr = self._a(gates, (b, 4 * hid))
        i, f, g, o = gr[:, :hid], gr[:, hid:2 * hid], gr[:, 2 * hid:3 * hid], gr[:, 3 * hid:]
        live = (np.ones(b, bool) if not lengths else t < self._a(lengths))[:, None]
        gh = self._a(dh, (b, hid)) + (self._a(dout, (b, hid)) if dout else 0)
        tc = np.tanh(self._a(c, (b, hid)))
        dcv = self._a(dc, (b, hid)) + gh * o * (1 - tc * tc)
        d = np.concatenate([dcv * g * i * (1 - i), dcv * self._a(cprev, (b, hid)) * f * (1 - f), dcv * i * (1 - g * g),
                            gh * tc * o * (1 - o)], 1)
        self._a(dpre, (b, 4 * hid))[...] = np.where(live, d, 0)
        self._a(direct, (b, hid))[...] = np.where(live, 0, self._a(dh, (b, hid)))
        self._a(dc, (b, hid))[...] = np.where(live, dcv * f, self._a(dc, (b, hid)))

    def gru_cell_forward(self, dtype, xw, hw, bhh, h, out, gates, hnl, lengths, t, b, hid, stream):
        px, ph = self._a(xw, (b, 3 * hid)), self._a(hw, (b, 3 * hid)) + (self._a(bhh) if bhh else 0)
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        r, z = sig(px[:, :hid] + ph[:, :hid]), sig(px[:, hid:2 * hid] + ph[:, hid:2 * hid])
        n = np.tanh(px[:, 2 * hid:] + r * ph[:, 2 * hid:])
        live = (np.ones(b, bool) if not lengths else t < self._a(lengths))[:, None]
        hv = self._a(h, (b, hid))
        hv[...] = np.where(live, (1 - z) * n + z * hv, hv)
        self._a(out, (b, hid))[...] = np.where(live, hv, 0)
        if gates:
            self._a(gates, (b, 3 * hid))[...] = np.where(live, np.concatenate([r, z, n], 1), 0)
        if hnl:
            self._a(hnl, (b, hid))[...] = np.where(live, ph[:, 2 * hid:], 0)

    def gru_cell_backward(self, dtype, gates, hnl, hprev, dout, dh, dxw, dhw, direct, lengths, t, b, hid, stream):
        gr = self._a(gates, (b, 3 * hid))
        r, z, n = gr[:, :hid], gr[:, hid:2 * hid], gr[:, 2 * hid:]
        live = (np.ones(b, bool) if not lengths else t < self._a(lengths))[:, None]
        d = self._a(dh, (b, hid))
        gh = d + (self._a(dout, (b, hid)) if dout else 0)
        dan = gh * (1 - z) * (1 - n * n)
        dr, dz = dan * self._a(hnl, (b, hid)) * r * (1 - r), gh * (self._a(hprev, (b, hid)) - n) * z * (1 - z)
        self._a(dxw, (b, 3 * hid))[...] = np.where(live, np.concatenate([dr, dz, dan], 1), 0)
        self._a(dhw, (b, 3 * hid))[...] = np.where(live, np.concatenate([dr, dz, dan * r], 1), 0)
        self._a(direct, (b, hid))[...] = np.where(live, gh * z, d)

    def rnn_cell_forward(self, act, dtype, xw, hw, h, out, gates, lengths, t, b, hid, stream):
        a = self._a(xw, (b, hid)) + self._a(hw, (b, hid))
        new = np.tanh(a) if act == 1 else np.maximum(a, 0)
        live = (np.ones(b, bool) if not lengths else t < self._a(lengths))[:, None]
        hv = self._a(h, (b, hid))
        hv[...] = np.where(live, new, hv)
        self._a(out, (b, hid))[...] = np.where(live, new, 0)
        if gates:
            self._a(gates, (b, hid))[...] = np.where(live, new, 0)

    def rnn_cell_backward(self, act, dtype, out, dout, dh, dpre, direct, lengths, t, b, hid, stream):
        live = (np.ones(b, bool) if not lengths else t < self._a(lengths))[:, None]
        d, o = self._a(dh, (b, hid)), self._a(out, (b, hid))
        gh = d + (self._a(dout, (b, hid)) if dout else 0)
        self._a(dpre, (b, hid))[...] = np.where(live, gh * (1 - o * o) if act == 1 else gh * (o > 0), 0)
        self._a(direct, (b, hid))[...] = np.where(live, 0, d)

    def additive_attention_forward(self, dtype, qp, kp, v, s, b, lq, sk, h, stream):
        self._a(s, (b, lq, sk))[...] = reference.additive_attention_forward(self._a(qp, (b, lq, h)),
                                                                           self._a(kp, (b, sk, h)), self._a(v, (h,)))

    def additive_attention_backward(self, dtype, gs, qp, kp, v, gq, vpart, gk, b, lq, sk, h, stream):
        q, k = self._a(qp, (b, lq, h)), self._a(kp, (b, sk, h))
        t = np.tanh(q[:, :, None, :] + k[:, None, :, :])  # the kernels' sums, (b, i, j, h) at once
        g = self._a(gs, (b, lq, sk))[..., None]
        pre = g * self._a(v, (h,)) * (1 - t * t)
        if gq:
            self._a(gq, (b, lq, h))[...] = pre.sum(axis=2)
        if vpart:
            self._a(vpart, (b, lq, h))[...] = (g * t).sum(axis=2)
        if gk:
            self._a(gk, (b, sk, h))[...] = pre.sum(axis=1)

    attention_max_features = 256

    def attention_forward(self, dtype, q, k, v, mask, mb, ml, div, out, lse, b, lq, s, e, ev, causal, scale, p, seed,
                          stream):
        m = self._a(mask, (mb, ml, s)) if mask else None
        self._a(out, (b, lq, ev))[...], self._a(lse, (b, lq))[...] = reference.attention_forward(
            self._a(q, (b, lq, e)), self._a(k, (b, s, e)), self._a(v, (b, s, ev)), m, div, causal, scale, p, seed)

    def attention_backward(self, dtype, gout, q, k, v, out, lse, mask, mb, ml, div, d, gq, gk, gv, b, lq, s, e, ev,
                           causal, scale, p, seed, stream):
        m = self._a(mask, (mb, ml, s)) if mask else None
        grads = reference.attention_backward(self._a(gout, (b, lq, ev)), self._a(q, (b, lq, e)), self._a(k, (b, s, e)),
                                             self._a(v, (b, s, ev)), self._a(out, (b, lq, ev)), self._a(lse, (b, lq)),
                                             m, div, causal, scale, p, seed)
        for ptr, g in zip((gq, gk, gv), grads):
            self._a(ptr)[...] = g

    @staticmethod
    def _ceil(n, out, k, s, p):
        return out != (n + 2 * p - k) // s + 1  # more outputs than floor mode gives: ceil mode


@pytest.fixture
def ops(monkeypatch):
    cp = types.ModuleType("cupy")
    for name in dir(np):
        if not name.startswith("__"):
            setattr(cp, name, getattr(np, name))
    cp.asnumpy = np.asarray
    cp.cuda = SimpleNamespace(get_current_stream=lambda: SimpleNamespace(ptr=0),
                              Device=lambda index: contextlib.nullcontext())
    kernels = EmulatedKernels()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "fastdl._C_cuda", kernels)
    monkeypatch.setattr(fastdl, "_C_cuda", kernels, raising=False)
    monkeypatch.delitem(sys.modules, "fastdl.cuda.ops", raising=False)
    mod = importlib.import_module("fastdl.cuda.ops")
    monkeypatch.setattr(mod, "_ptr", lambda a: 0 if a is None else kernels.ptr(a))
    yield mod
    sys.modules.pop("fastdl.cuda.ops", None)
    vars(fastdl.cuda).pop("ops", None)


def test_every_op_runs_on_the_device(ops):
    """No op of the kernel table is left to the host wrappers (copies to the CPU and back): the attention
    alone reaches them, for heads wider than its kernel holds."""
    t = ops.table()
    on_host = [n for n in reference.OPS if "host_table" in getattr(t, n).__qualname__]
    assert on_host == []
    assert {n for n in reference.OPS if "_attention_on" in getattr(t, n).__qualname__} == {"attention_forward",
                                                                                         "attention_backward"}


def test_glue_matches_the_cpu_kernels(ops):
    cpu, rng = backend._C, np.random.default_rng(0)
    x, g = rng.standard_normal((3, 5, 7)), rng.standard_normal((3, 5, 7))
    for kind in ("relu", "tanh", "sigmoid"):
        y = getattr(cpu, f"{kind}_forward")(x)
        np.testing.assert_allclose(ops._act_forward(kind)(x), y)
        np.testing.assert_allclose(ops._act_backward(kind)(g, y), getattr(cpu, f"{kind}_backward")(g, y))
    for log, name in ((0, "softmax"), (1, "log_softmax")):
        for axis in (-1, 0, 1):  # the kernels work on rows: other axes are moved last and back
            y = getattr(cpu, f"{name}_forward")(x, axis)
            np.testing.assert_allclose(ops._softmax_forward(log)(x, axis), y)
            np.testing.assert_allclose(ops._softmax_backward(log)(g, y, axis),
                                       getattr(cpu, f"{name}_backward")(g, y, axis))
    logits, t = rng.standard_normal((6, 4)), np.array([0, 1, 3, -100, 2, 0])
    loss, lse = ops.cross_entropy_forward(logits, t, -100, 0.1)
    want = cpu.cross_entropy_forward(logits, t, -100, 0.1)
    np.testing.assert_allclose(loss, want[0]), np.testing.assert_allclose(lse, want[1])
    gl = rng.standard_normal(6)
    np.testing.assert_allclose(ops.cross_entropy_backward(gl, logits, t, lse, -100, 0.1),
                               cpu.cross_entropy_backward(gl, logits, t, want[1], -100, 0.1))
    # dropout: the same keep-mask as the CPU's for a seed; applied with bool, int or byte masks
    for shape, p_, seed in (((3, 7), 0.3, 5), ((2, 0, 4), 0.5, 1), ((11,), 1.0, 2**62)):
        np.testing.assert_array_equal(ops.dropout_mask(shape, p_, seed), cpu.dropout_mask(shape, p_, seed))
    xd_ = rng.standard_normal((3, 7))
    for mask in (cpu.dropout_mask((3, 7), 0.3, 5), rng.random((3, 7)) < 0.5, rng.integers(-2, 3, (3, 7))):
        np.testing.assert_allclose(ops.dropout_apply(xd_, mask, 1.25), cpu.dropout_apply(xd_, mask, 1.25))
    with pytest.raises(ValueError, match="dropout_mask: p must be in"):
        ops.dropout_mask((3,), 1.5, 0)
    with pytest.raises(ValueError, match="dropout_mask: seed is too large"):
        ops.dropout_mask((3,), 0.5, 2**63)
    with pytest.raises(ValueError, match="dropout_apply: mask has shape"):
        ops.dropout_apply(xd_, np.ones(3, bool), 2.0)
    # the parametrised activations, each kind with the arguments it reads
    xa_, ga_ = np.append(rng.standard_normal(40) * 4, [np.nan, 0.0, 3.0, -3.0, 25.0]), rng.standard_normal(45)
    for kind in ACTIVATIONS:
        alpha, beta = {"leaky_relu": (0.1, 0.0), "elu": (1.5, 0.0), "celu": (0.7, 0.0), "softplus": (2.0, 5.0),
                       "hardtanh": (-0.5, 2.0)}.get(kind, (0.0, 0.0))
        # (the emulation runs the NumPy reference, the CPU table the native kernels)
        np.testing.assert_allclose(ops.activation_forward(xa_, kind, alpha, beta),
                                   cpu.activation_forward(xa_, kind, alpha, beta), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ops.activation_backward(ga_, xa_, kind, alpha, beta),
                                   cpu.activation_backward(ga_, xa_, kind, alpha, beta), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="activation_forward: unknown activation kind"):
        ops.activation_forward(xa_, "swish")
    xm, keep = rng.standard_normal((2, 3, 5)), rng.random((2, 3, 5)) < 0.6
    keep[0, 1] = False  # a row with nothing kept
    for mask in (keep, keep.astype(np.int8), None):
        ym = ops.masked_softmax_forward(xm, mask, 0.5)
        np.testing.assert_allclose(ym, cpu.masked_softmax_forward(xm, mask, 0.5))
        gm = rng.standard_normal(xm.shape)
        np.testing.assert_allclose(ops.masked_softmax_backward(gm, ym, 0.5), cpu.masked_softmax_backward(gm, ym, 0.5))
    with pytest.raises(ValueError, match="masked_softmax_forward: mask has shape"):
        ops.masked_softmax_forward(xm, keep[0])
    with pytest.raises(ValueError, match="masked_softmax_forward: scale must be finite"):
        ops.masked_softmax_forward(xm, keep, float("nan"))
    # MSE and BCE with logits (CuPy's maths), a mask of missing labels
    pr, tr = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    assert abs(ops.mse_forward(pr, tr) - cpu.mse_forward(pr, tr)) <= 1e-12 * cpu.mse_forward(pr, tr)
    np.testing.assert_allclose(ops.mse_backward(0.5, pr, tr), cpu.mse_backward(0.5, pr, tr))
    tb, mb = (rng.random((4, 5)) < 0.5).astype(np.float64), rng.random((4, 5)) < 0.8
    for mask in (None, mb):
        np.testing.assert_allclose(ops.bce_with_logits_forward(pr * 9, tb, mask),
                                   cpu.bce_with_logits_forward(pr * 9, tb, mask), rtol=1e-12)
        np.testing.assert_allclose(ops.bce_with_logits_backward(tr, pr * 9, tb, mask),
                                   cpu.bce_with_logits_backward(tr, pr * 9, tb, mask), rtol=1e-12)
    with pytest.raises(ValueError, match="mse_forward: target has shape"):
        ops.mse_forward(pr, tr[0])
    with pytest.raises(TypeError, match="bce_with_logits_forward: target has dtype"):
        ops.bce_with_logits_forward(pr, tb.astype(np.float32))
    w, idx = rng.standard_normal((10, 3)), rng.integers(0, 10, (2, 4))
    np.testing.assert_allclose(ops.embedding_forward(w, idx), cpu.embedding_forward(w, idx))
    gy = rng.standard_normal((2, 4, 3))
    np.testing.assert_allclose(ops.embedding_backward(gy, idx, 10, 2), cpu.embedding_backward(gy, idx, 10, 2))
    p, grad = rng.standard_normal(20), rng.standard_normal(20)
    q, m, v, m0, v0 = p.copy(), np.zeros(20), np.zeros(20), np.zeros(20), np.zeros(20)
    ops.adam_step(p, grad, m, v, None, 0.01, 0.9, 0.999, 1e-8, 0.0, False, False, 1)
    cpu.adam_step(q, grad, m0, v0, None, 0.01, 0.9, 0.999, 1e-8, 0.0, False, False, 1)
    np.testing.assert_allclose(p, q), np.testing.assert_allclose(m, m0)
    b, b0 = np.zeros(20), np.zeros(20)
    ops.sgd_step(p, grad, b, 0.1, 0.9, 0.0, 0.0, False, False, True)
    cpu.sgd_step(q, grad, b0, 0.1, 0.9, 0.0, 0.0, False, False, True)
    np.testing.assert_allclose(p, q), np.testing.assert_allclose(b, b0)
    sq, ga, sq0, ga0 = np.zeros(20), np.zeros(20), np.zeros(20), np.zeros(20)
    ops.rmsprop_step(p, grad, sq, ga, b, 0.01, 0.99, 1e-8, 0.0, 0.9, True)
    cpu.rmsprop_step(q, grad, sq0, ga0, b0, 0.01, 0.99, 1e-8, 0.0, 0.9, True)
    for u, w_ in ((p, q), (sq, sq0), (ga, ga0), (b, b0)):
        np.testing.assert_allclose(u, w_)
    for kind in ADAPTIVE:
        a, a0, c, c0 = np.zeros(20), np.zeros(20), np.ones(20), np.ones(20)
        for step in (1, 2):
            args = (0.01, 0.9, 0.99, 1e-8, 0.01, kind in ("nadam", "radam"), False, step, 0.004, 0.5)
            ops.adaptive_step(kind, p, grad, a, None if kind == "adagrad" else c, *args)
            cpu.adaptive_step(kind, q, grad, a0, None if kind == "adagrad" else c0, *args)
            for u, w_ in ((p, q), (a, a0), (c, c0)):
                np.testing.assert_allclose(u, w_)
    with pytest.raises(ValueError, match="adaptive_step: step must be >= 1"):
        ops.adaptive_step("radam", p, grad, a, c, 0.01, 0.9, 0.99, 1e-8, 0.0, True, False, 0, 0.0, 1.0)
    with pytest.raises(ValueError, match="adaptive_step: adadelta needs state_b"):
        ops.adaptive_step("adadelta", p, grad, a, None, 0.01, 0.9, 0.99, 1e-8, 0.0, False, False, 1, 0.0, 1.0)
    # convolution (groups, stride, asymmetric padding, dilation) and the pools, against the CPU kernels
    for groups, stride, pad, dil in ((1, (1, 1), (1, 1, 1, 1), (1, 1)), (2, (2, 1), (0, 1, 2, 0), (1, 2))):
        xc, wc, bc = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 4 // groups, 3, 2)), rng.standard_normal(6)
        yc = cpu.conv2d_forward(xc, wc, bc, stride, pad, dil, groups)
        np.testing.assert_allclose(ops.conv2d_forward(xc, wc, bc, stride, pad, dil, groups), yc, atol=1e-12)
        gc = rng.standard_normal(yc.shape)
        for got, want in zip(ops.conv2d_backward(gc, xc, wc, stride, pad, dil, groups),
                             cpu.conv2d_backward(gc, xc, wc, stride, pad, dil, groups)):
            np.testing.assert_allclose(got, want, atol=1e-12)
    xp_ = rng.standard_normal((2, 3, 7, 8))
    xp_[0, 1, 2, 3] = np.nan
    for k, st, pd, dl, ceil in (((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 2), (2, 3), (1, 1), (1, 2), True)):
        y, i = ops.max_pool2d_forward(xp_, k, st, pd, dl, ceil)
        y0, i0 = cpu.max_pool2d_forward(xp_, k, st, pd, dl, ceil)
        np.testing.assert_array_equal(y, y0), np.testing.assert_array_equal(i, i0)
        gp = rng.standard_normal(y.shape)
        np.testing.assert_allclose(ops.max_pool2d_backward(gp, i, (7, 8)), cpu.max_pool2d_backward(gp, i0, (7, 8)))
        for cip in (True, False):
            if dl != (1, 1):
                continue
            ya = ops.avg_pool2d_forward(xp_, k, st, pd, ceil, cip)
            np.testing.assert_allclose(ya, cpu.avg_pool2d_forward(xp_, k, st, pd, ceil, cip))
            np.testing.assert_allclose(ops.avg_pool2d_backward(gp, (7, 8), k, st, pd, ceil, cip),
                                       cpu.avg_pool2d_backward(gp, (7, 8), k, st, pd, ceil, cip))
    # adaptive average pooling: windows that overlap, repeat (more outputs than inputs) or tile evenly
    for (h, w), (oh, ow) in (((7, 8), (3, 5)), ((2, 3), (5, 7)), ((6, 6), (3, 2)), ((5, 4), (1, 1))):
        xa = rng.standard_normal((2, 3, h, w))
        ya = ops.adaptive_avg_pool2d_forward(xa, (oh, ow))
        np.testing.assert_allclose(ya, cpu.adaptive_avg_pool2d_forward(xa, (oh, ow)))
        ga = rng.standard_normal(ya.shape)
        np.testing.assert_allclose(ops.adaptive_avg_pool2d_backward(ga, (h, w)),
                                   cpu.adaptive_avg_pool2d_backward(ga, (h, w)), rtol=1e-12)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d_forward: output_size must be >= 1"):
        ops.adaptive_avg_pool2d_forward(xa, (0, 2))
    # normalization: the glue's shapes (channels, spatial size, rows) and the running statistics in place
    xb, gb_ = rng.standard_normal((4, 3, 5, 2)), rng.standard_normal((4, 3, 5, 2))
    wb, bb = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv, rm0, rv0 = np.zeros(3), np.ones(3), np.zeros(3), np.ones(3)
    for training in (True, False):
        got = ops.batch_norm_forward(xb, wb, bb, rm, rv, training, 0.1, 1e-5)
        want = cpu.batch_norm_forward(xb, wb, bb, rm0, rv0, training, 0.1, 1e-5)
        for u, v in zip(got + (rm, rv), want + (rm0, rv0)):
            np.testing.assert_allclose(u, v, rtol=1e-10)
        for u, v in zip(ops.batch_norm_backward(gb_, xb, wb, got[1], got[2], training),
                        cpu.batch_norm_backward(gb_, xb, wb, want[1], want[2], training)):
            np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)
    xl, gl_ = rng.standard_normal((3, 4, 5, 6)), rng.standard_normal((3, 4, 5, 6))
    wl, bl = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    got, want = ops.layer_norm_forward(xl, (5, 6), wl, bl, 1e-5), cpu.layer_norm_forward(xl, (5, 6), wl, bl, 1e-5)
    for u, v in zip(got, want):
        np.testing.assert_allclose(u, v, rtol=1e-10)
    for u, v in zip(ops.layer_norm_backward(gl_, xl, (5, 6), wl, got[1], got[2]),
                    cpu.layer_norm_backward(gl_, xl, (5, 6), wl, want[1], want[2])):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)
    # additive attention: scores, and the gradients wanted
    qa, ka, va = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal(4)
    np.testing.assert_allclose(ops.additive_attention_forward(qa, ka, va), cpu.additive_attention_forward(qa, ka, va))
    gsa = rng.standard_normal((2, 3, 5))
    for need in ((True, True, True), (False, True, False), (True, False, True)):
        for u, w_ in zip(ops.additive_attention_backward(gsa, qa, ka, va, *need),
                         cpu.additive_attention_backward(gsa, qa, ka, va, *need)):
            assert (u is None) == (w_ is None)
            if w_ is not None:
                np.testing.assert_allclose(u, w_, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="additive_attention_backward: gs has shape"):
        ops.additive_attention_backward(gsa[:, :2], qa, ka, va)
    # group norm: groups as rows of the layer-norm kernels, the affine and weight gradients by broadcasting
    for shape, groups in (((3, 6, 4, 5), 3), ((2, 4, 7), 1), ((2, 4), 4), ((2, 6, 0, 3), 2)):
        xg, gg_ = rng.standard_normal(shape), rng.standard_normal(shape)
        wg, bg = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
        for w_, b_ in ((wg, bg), (None, None)):
            got, want = ops.group_norm_forward(xg, groups, w_, b_, 1e-5), cpu.group_norm_forward(xg, groups, w_, b_, 1e-5)
            for u, v in zip(got, want):
                np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)
            for u, v in zip(ops.group_norm_backward(gg_, xg, groups, w_, got[1], got[2]),
                            cpu.group_norm_backward(gg_, xg, groups, w_, want[1], want[2])):
                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="group_norm_forward: num_groups must be >= 1 and divide C=6"):
        ops.group_norm_forward(rng.standard_normal((2, 6, 3)), 4, None, None, 1e-5)
    # every recurrent mode: steps in either direction, finished sequences, saved arrays, with and without dout
    T, B, I, H = 5, 4, 3, 6
    xs, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    for mode, g in (("lstm", 4), ("gru", 3), ("rnn_tanh", 1), ("rnn_relu", 1)):
        wi, wh, bi, bh = (rng.standard_normal(sh) * 0.5 for sh in ((g * H, I), (g * H, H), (g * H,), (g * H,)))
        cx = c0 if mode == "lstm" else None
        for ln in (None, np.array([5, 2, 3, 1])):
            for reverse in (False, True):
                for bias in ((bi, bh), (None, None)):
                    got = ops.rnn_forward(mode, xs, h0, cx, wi, wh, *bias, ln, reverse, True)
                    want = cpu.rnn_forward(mode, xs, h0, cx, wi, wh, *bias, ln, reverse, True)
                    for u, v in zip(got, want):
                        assert (u is None) == (v is None)
                        if v is not None:
                            np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)
                    for dout in (rng.standard_normal((T, B, H)), None):
                        dcn = rng.standard_normal((B, H)) if mode == "lstm" else None
                        args = (mode, dout, rng.standard_normal((B, H)), dcn, xs, h0, cx, wi, wh, *bias, want[0],
                                want[3], want[4], want[5], ln, reverse)
                        for u, v in zip(ops.rnn_backward(*args), cpu.rnn_backward(*args)):
                            assert (u is None) == (v is None)
                            if v is not None:
                                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ops.table().rnn_forward(mode, xs, h0, cx, wi, wh, bi, bh, None, True, False)[0],
                                   cpu.rnn_forward(mode, xs, h0, cx, wi, wh, bi, bh, None, True, False)[0])
        both = ops.table().rnn_forward_dirs(mode, xs, [(h0, cx, wi, wh, bi, bh, False), (h0, cx, wi, wh, bi, bh, True)],
                                            None, True)
        for u, v in zip(both, cpu.rnn_forward_dirs(mode, xs, [(h0, cx, wi, wh, bi, bh, False),
                                                               (h0, cx, wi, wh, bi, bh, True)], None, True)):
            np.testing.assert_allclose(u[0], v[0], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="rnn_forward: mode must be"):
        ops.rnn_forward("elman", xs, h0, None, wi, wh, None, None, None, False)
    with pytest.raises(TypeError, match="rnn_backward: hn_linear must be an array"):
        g3 = (rng.standard_normal((3 * H, I)), rng.standard_normal((3 * H, H)))
        ops.rnn_backward("gru", None, None, None, xs, h0, None, *g3, None, None, want[0], np.zeros((T, B, 3 * H)),
                         None, None, None, False)
    # attention: masks (one row for all queries, or one per query, shared across heads), causal, dropout,
    # the scale, and heads too large for the kernel going to the host's
    B, L, S, E, Ev = 6, 5, 7, 4, 3
    q, k, v = rng.standard_normal((B, L, E)), rng.standard_normal((B, S, E)), rng.standard_normal((B, S, Ev))
    go = rng.standard_normal((B, L, Ev))
    for mask, div in ((None, 1), (np.where(rng.random((2, 1, S)) < 0.3, -np.inf, 0.0), 3),
                      (rng.standard_normal((3, L, S)), 1)):
        for causal, p, scale in ((False, 0.0, None), (True, 0.25, 0.7)):
            kw = dict(mask=mask, mask_div=div, is_causal=causal, scale=scale, dropout_p=p, seed=5)
            got, want = ops.attention_forward(q, k, v, **kw), cpu.attention_forward(q, k, v, **kw)
            for u, w in zip(got, want):
                np.testing.assert_allclose(u, w, rtol=1e-10, atol=1e-12)
            for u, w in zip(ops.attention_backward(go, q, k, v, *want, **kw), cpu.attention_backward(go, q, k, v, *want,
                                                                                                      **kw)):
                np.testing.assert_allclose(u, w, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="attention_forward: mask must have shape"):
        ops.attention_forward(q, k, v, np.zeros((1, 2, S)))
    with pytest.raises(ValueError, match="attention_backward: lse has shape"):
        ops.attention_backward(go, q, k, v, go, np.zeros(B))
    big = rng.standard_normal((1, 2, 300))
    np.testing.assert_allclose(ops.table().attention_forward(big, big, big)[0], cpu.attention_forward(big, big, big)[0])
    a2, b2 = rng.standard_normal((4, 5)), rng.standard_normal((5, 3))
    np.testing.assert_allclose(ops.matmul(a2, b2), a2 @ b2)
    table = ops.table()
    assert [n for n in reference.OPS if not hasattr(table, n)] == []


def test_indices_and_arrays_are_checked_before_a_kernel_reads_them(ops):
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"target holds values outside \[0, 4\)"):
        ops.cross_entropy_forward(logits, np.array([0, 4, 1]), -100, 0.0)
    ops.cross_entropy_forward(logits, np.array([0, -100, 1]), -100, 0.0)  # ignore_index is allowed
    with pytest.raises(ValueError, match=r"indices holds values outside \[0, 5\)"):
        ops.embedding_forward(np.zeros((5, 2)), np.array([0, -1]))
    with pytest.raises(TypeError, match="must be float32 or float64"):
        ops._act_forward("relu")(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="gy has shape"):
        ops._act_backward("tanh")(np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="exp_avg must be"):
        ops.adam_step(np.zeros(3), np.zeros(3), np.zeros(2), np.zeros(3), None, 0.1, 0.9, 0.99, 1e-8, 0, False, False, 1)
