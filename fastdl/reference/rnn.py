"""One recurrent layer (rnn_tanh, rnn_relu, gru, lstm) in one direction, and BPTT."""
from __future__ import annotations

import numpy as np

from ._checks import _scalars, _array, _float, _ints, _same_dtype, _want_ndim, _want_shape


_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _arrays_first(fn, **arrays):
    """The required arrays are arrays (None is a TypeError) and the input is float, before any other
    check: the native binding's order."""
    for name, v in arrays.items():
        _array(v, fn, name)
    _float(arrays["input"], fn, "input")


def _rnn_check(mode, x, hx, cx, w_ih, w_hh, b_ih, b_hh, lengths, fn):
    """Every shape and dtype of one layer's arguments; -> (x, T, B, H, gates)."""
    if mode not in _GATES:
        raise ValueError(f"{fn}: mode must be 'rnn_tanh', 'rnn_relu', 'gru' or 'lstm', got '{mode}'")
    x = _float(x, fn, "input")
    _want_ndim(x, "input", fn, 3)
    t, b, i = x.shape
    g = _GATES[mode]
    w_hh = _array(w_hh, fn, "weight_hh")
    _want_ndim(w_hh, "weight_hh", fn, 2)
    h = w_hh.shape[1]

    def need(v, shape, name):
        v = _array(v, fn, name)
        _want_shape(v, shape, name, fn)
        _same_dtype(x, "input", v, name, fn)
    need(w_hh, (g * h, h), "weight_hh")
    need(w_ih, (g * h, i), "weight_ih")
    need(hx, (b, h), "hx")
    if mode == "lstm":
        if cx is None:
            raise TypeError(f"{fn}: an LSTM needs the initial cell state cx")
        need(cx, (b, h), "cx")
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{fn}: give both bias_ih and bias_hh, or neither")
    if b_ih is not None:
        need(b_ih, (g * h,), "bias_ih")
        need(b_hh, (g * h,), "bias_hh")
    if lengths is not None:
        ln = _ints(lengths, fn, "lengths")
        _want_shape(ln, (b,), "lengths", fn)
        bad = (ln < 1) | (ln > t)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{fn}: lengths[{k}] = {ln[k]} is not in [1, {t}]")
    return x, t, b, h, g


@_scalars(mode="str", reverse="bool", save="bool")
def rnn_forward(mode, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, lengths, reverse, save=True):
    """One recurrent layer over the whole sequence (T, B, I), as PyTorch's RNN/GRU/LSTM:

    rnn:  h = tanh|relu(W_ih x + b_ih + W_hh h + b_hh)
    gru:  r, z = sigmoid(...), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h = (1 - z) n + z h
    lstm: i, f, o = sigmoid(...), g = tanh(...), c = f c + i g, h = o tanh(c)

    Steps t >= lengths[b] keep b's state and output 0.  ``reverse`` runs t = T-1 .. 0.
    Returns (out, h_n, c_n, gates, cells, hn_linear) as the native kernel does.
    """
    _arrays_first("rnn_forward", input=input, hx=hx, weight_ih=weight_ih, weight_hh=weight_hh)
    x, t_len, b, h, g = _rnn_check(mode, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, lengths,
                                   "rnn_forward")
    dt = x.dtype
    w_ih, w_hh = np.asarray(weight_ih), np.asarray(weight_hh)
    b_ih = np.zeros(g * h, dt) if bias_ih is None else np.asarray(bias_ih)
    b_hh = np.zeros(g * h, dt) if bias_hh is None else np.asarray(bias_hh)
    ln = np.full(b, t_len) if lengths is None else np.asarray(lengths)
    hcur = np.array(hx, dt)
    ccur = np.array(cx, dt) if mode == "lstm" else None
    out = np.zeros((t_len, b, h), dt)
    gates = np.zeros((t_len, b, g * h), dt)
    cells = np.zeros((t_len, b, h), dt) if mode == "lstm" else None
    hnl = np.zeros((t_len, b, h), dt) if mode == "gru" else None
    for s in range(t_len):
        t = t_len - 1 - s if reverse else s
        live = (t < ln)[:, None]
        xg = x[t] @ w_ih.T + b_ih
        hg = hcur @ w_hh.T + b_hh
        if mode == "lstm":
            i, f = _sigmoid(xg[:, :h] + hg[:, :h]), _sigmoid(xg[:, h:2 * h] + hg[:, h:2 * h])
            gg, o = np.tanh(xg[:, 2 * h:3 * h] + hg[:, 2 * h:3 * h]), _sigmoid(xg[:, 3 * h:] + hg[:, 3 * h:])
            c_new = f * ccur + i * gg
            h_new = o * np.tanh(c_new)
            gates[t] = np.where(live, np.concatenate([i, f, gg, o], 1), 0)
            ccur = np.where(live, c_new, ccur)
            cells[t] = ccur
        elif mode == "gru":
            r, z = _sigmoid(xg[:, :h] + hg[:, :h]), _sigmoid(xg[:, h:2 * h] + hg[:, h:2 * h])
            n = np.tanh(xg[:, 2 * h:] + r * hg[:, 2 * h:])
            h_new = (1 - z) * n + z * hcur
            gates[t] = np.where(live, np.concatenate([r, z, n], 1), 0)
            hnl[t] = np.where(live, hg[:, 2 * h:], 0)
        else:
            a = xg + hg
            h_new = np.tanh(a) if mode == "rnn_tanh" else np.maximum(a, 0)
            gates[t] = np.where(live, h_new, 0)  # for the simple RNN the "gate" is the new state itself
        out[t] = np.where(live, h_new, 0)
        hcur = np.where(live, h_new, hcur)
    if not save:  # inference: nothing kept for backward
        gates = cells = hnl = None
    return out, hcur.astype(dt), None if ccur is None else ccur.astype(dt), gates, cells, hnl


def _directions_check(directions):
    """rnn_forward_dirs's directions: a list of 7-tuples, TypeError naming the one that is not."""
    if not isinstance(directions, (list, tuple)):
        raise TypeError("rnn_forward_dirs: directions must be a list of (hx, cx, weight_ih, weight_hh, bias_ih, "
                        f"bias_hh, reverse) tuples, got {type(directions).__name__}")
    for k, d in enumerate(directions):
        if not isinstance(d, tuple) or len(d) != 7:
            raise TypeError(f"rnn_forward_dirs: directions[{k}] must be a tuple (hx, cx, weight_ih, weight_hh, "
                            "bias_ih, bias_hh, reverse)")


@_scalars(mode="str", save="bool")
def rnn_forward_dirs(mode, input, directions, lengths, save=True):
    """Several directions over the same input, each a tuple (hx, cx, weight_ih, weight_hh, bias_ih,
    bias_hh, reverse): a list of rnn_forward's results, one per direction (the native kernel runs them
    side by side, a thread each)."""
    _directions_check(directions)
    return [rnn_forward(mode, input, *d[:6], lengths, d[6], save) for d in directions]


@_scalars(mode="str", reverse="bool", need_input="bool", need_hidden="bool", need_weights="bool")
def rnn_backward(mode, dout, dhn, dcn, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, output, gates, cells,
                 hn_linear, lengths, reverse, need_input=True, need_hidden=True, need_weights=True):
    """Backpropagation through time for rnn_forward: -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)."""
    fn = "rnn_backward"
    _arrays_first(fn, input=input, hx=hx, weight_ih=weight_ih, weight_hh=weight_hh, output=output, gates=gates)
    x, t_len, b, h, g = _rnn_check(mode, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, lengths, fn)
    dt = x.dtype

    def saved(v, shape, name, optional):
        """A saved array or output gradient (None: an output that was not used), its shape checked."""
        if v is None:
            if optional:
                return None
            raise TypeError(f"{fn}: {name} must be an array, got None")
        v = _array(v, fn, name)
        _same_dtype(x, "input", v, name, fn)
        _want_shape(v, shape, name, fn)
        return v
    dout = saved(dout, (t_len, b, h), "dout", True)
    dhn = saved(dhn, (b, h), "dhn", True)
    dcn = saved(dcn, (b, h), "dcn", True) if mode == "lstm" else None
    out = saved(output, (t_len, b, h), "output", False)
    gates = saved(gates, (t_len, b, g * h), "gates", False)
    cells = saved(cells, (t_len, b, h), "cells", False) if mode == "lstm" else None
    hn_linear = saved(hn_linear, (t_len, b, h), "hn_linear", False) if mode == "gru" else None
    w_ih, w_hh = np.asarray(weight_ih), np.asarray(weight_hh)
    ln = np.full(b, t_len) if lengths is None else np.asarray(lengths)
    order = [t_len - 1 - s for s in range(t_len)] if reverse else list(range(t_len))
    hprev = np.zeros((t_len, b, h), dt)
    cur = np.array(hx, dt)
    for t in order:
        hprev[t] = cur
        cur = np.where((t < ln)[:, None], out[t], cur)
    dh = np.zeros((b, h), dt) if dhn is None else np.array(dhn, dt)
    dc = (np.zeros((b, h), dt) if dcn is None else np.array(dcn, dt)) if mode == "lstm" else None
    dxg = np.zeros((t_len, b, g * h), dt)
    dhg = np.zeros((t_len, b, g * h), dt)
    for k in range(t_len - 1, -1, -1):
        t = order[k]
        live = (t < ln)[:, None]
        gh = dh if dout is None else dh + dout[t]
        gr = gates[t]
        if mode == "lstm":
            i, f, gg, o = gr[:, :h], gr[:, h:2 * h], gr[:, 2 * h:3 * h], gr[:, 3 * h:]
            c = cells[t]
            cprev = np.asarray(cx) if k == 0 else cells[order[k - 1]]
            tc = np.tanh(c)
            dcv = dc + gh * o * (1 - tc * tc)
            d_all = np.concatenate([dcv * gg * i * (1 - i), dcv * cprev * f * (1 - f), dcv * i * (1 - gg * gg),
                                    gh * tc * o * (1 - o)], 1)
            dxg[t] = dhg[t] = np.where(live, d_all, 0)
            dc = np.where(live, dcv * f, dc)
            direct = np.zeros_like(dh)
        elif mode == "gru":
            r, z, n = gr[:, :h], gr[:, h:2 * h], gr[:, 2 * h:]
            hnv = np.asarray(hn_linear)[t]
            dan = gh * (1 - z) * (1 - n * n)
            dr = dan * hnv * r * (1 - r)
            dz = gh * (hprev[t] - n) * z * (1 - z)
            dxg[t] = np.where(live, np.concatenate([dr, dz, dan], 1), 0)
            dhg[t] = np.where(live, np.concatenate([dr, dz, dan * r], 1), 0)
            direct = gh * z
        else:
            da = gh * (1 - out[t] ** 2) if mode == "rnn_tanh" else gh * (out[t] > 0)
            dxg[t] = dhg[t] = np.where(live, da, 0)
            direct = np.zeros_like(dh)
        dh = np.where(live, direct + dhg[t] @ w_hh, dh)
    flat_x, flat_dxg, flat_dhg = x.reshape(-1, x.shape[2]), dxg.reshape(-1, g * h), dhg.reshape(-1, g * h)
    has_bias = bias_ih is not None
    return (
        (flat_dxg @ w_ih).reshape(x.shape).astype(dt) if need_input else None,
        dh.astype(dt) if need_hidden else None,
        dc.astype(dt) if need_hidden and mode == "lstm" else None,
        (flat_dxg.T @ flat_x).astype(dt) if need_weights else None,
        (flat_dhg.T @ hprev.reshape(-1, h)).astype(dt) if need_weights else None,
        flat_dxg.sum(0).astype(dt) if need_weights and has_bias else None,
        flat_dhg.sum(0).astype(dt) if need_weights and has_bias else None,
    )
