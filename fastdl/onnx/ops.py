"""ONNX forms of the functional ops and of the Tensor's methods and operators (the emitters of the tracer).

Each emitter gets the trace, the real result and the op's arguments, adds the nodes, and binds the
result to the node's output.  Shapes that come from the example (reshape targets) keep the leading
dimensions they copy from the input as 0 (ONNX's "copy this dim"), so a dynamic batch axis stays dynamic.
"""
from __future__ import annotations

import importlib
import math

import numpy as np

from ..shapes import pair_arg
from ..tensor import Tensor
from ..tensor_elementwise import ElementwiseMethods
from ..tensor_reduce import ReduceMethods
from ..tensor_shape import ShapeMethods
from .tracer import ExportError

_SQRT1_2 = 1.0 / math.sqrt(2.0)
# the functional submodules by module name (``fastdl.functional.rnn`` as an attribute is the function F.rnn)
FA, FATT, FB, FC, FCM, FN, FR = (importlib.import_module(f"fastdl.functional.{m}") for m in
                                 ("activation", "attention", "basic", "conv", "conv_more", "norm", "rnn"))


def _dt(t):
    return t.dtype if isinstance(t, Tensor) else np.float32


def _scalar(tr, v, like):
    """A number as a 0-d constant of ``like``'s dtype."""
    return tr.const(np.asarray(v, dtype=_dt(like)), "scalar")


# ---------------------------------------------------------------- functional ops
def e_linear(tr, y, x, weight, bias=None):
    if x.ndim == 2:
        args = [tr.value(x), tr.value(weight)] + ([tr.value(bias)] if bias is not None else [])
        return tr.out(y, tr.node("Gemm", args, transB=1))
    wt = tr.const(np.ascontiguousarray(weight.data.T), "weight_t") if not tr.traced(weight) else \
        tr.node("Transpose", [tr.value(weight)], perm=[1, 0])
    out = tr.node("MatMul", [tr.value(x), wt])
    if bias is not None:
        out = tr.node("Add", [out, tr.value(bias)])
    return tr.out(y, out)


def _conv_attrs(w_shape, stride, padding, dilation):
    st, dil = FC._pair(stride, "stride"), FC._pair(dilation, "dilation")
    pt, pl, pb, pr = FC.pad_amounts(padding, w_shape[2:], dil, st)
    return dict(strides=list(st), dilations=list(dil), pads=[pt, pl, pb, pr], kernel_shape=list(w_shape[2:]))


def e_conv2d(tr, y, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if x.ndim != 4:
        raise ExportError(f"onnx.export: conv2d on a {x.ndim}-D input is not supported (batch it)")
    args = [tr.value(x), tr.value(weight)] + ([tr.value(bias)] if bias is not None else [])
    return tr.out(y, tr.node("Conv", args, group=int(groups), **_conv_attrs(weight.shape, stride, padding, dilation)))


def e_conv_transpose2d(tr, y, x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    if x.ndim != 4:
        raise ExportError("onnx.export: conv_transpose2d needs a batched 4-D input")
    st, dil = pair_arg(stride, "stride", "onnx"), pair_arg(dilation, "dilation", "onnx")
    ph, pw = pair_arg(padding, "padding", "onnx")
    op = pair_arg(output_padding, "output_padding", "onnx")
    args = [tr.value(x), tr.value(weight)] + ([tr.value(bias)] if bias is not None else [])
    return tr.out(y, tr.node("ConvTranspose", args, strides=list(st), dilations=list(dil), pads=[ph, pw, ph, pw],
                             output_padding=list(op), group=int(groups), kernel_shape=list(weight.shape[2:])))


def e_max_pool2d(tr, res, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices or x.ndim != 4:
        raise ExportError("onnx.export: max_pool2d with return_indices or an unbatched input is not supported")
    k = FC._pair(kernel_size, "kernel_size")
    st = k if stride is None else FC._pair(stride, "stride")
    ph, pw = FC._pair(padding, "padding")
    return tr.out(res, tr.node("MaxPool", [tr.value(x)], kernel_shape=list(k), strides=list(st), pads=[ph, pw, ph, pw],
                               dilations=list(FC._pair(dilation, "dilation")), ceil_mode=int(bool(ceil_mode))))


def e_avg_pool2d(tr, y, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    if x.ndim != 4:
        raise ExportError("onnx.export: avg_pool2d on an unbatched input is not supported")
    k = FC._pair(kernel_size, "kernel_size")
    st = k if stride is None else FC._pair(stride, "stride")
    ph, pw = FC._pair(padding, "padding")
    return tr.out(y, tr.node("AveragePool", [tr.value(x)], kernel_shape=list(k), strides=list(st),
                             pads=[ph, pw, ph, pw], ceil_mode=int(bool(ceil_mode)),
                             count_include_pad=int(bool(count_include_pad))))


def e_adaptive_avg_pool2d(tr, y, x, output_size):
    (h, w), (oh, ow) = x.shape[-2:], y.shape[-2:]
    if (oh, ow) == (1, 1):
        return tr.out(y, tr.node("GlobalAveragePool", [tr.value(x)]))
    if h % oh or w % ow:
        raise ExportError(f"onnx.export: adaptive_avg_pool2d from {(h, w)} to {(oh, ow)} has uneven windows, "
                          "which ONNX pooling cannot express")
    k = [h // oh, w // ow]
    return tr.out(y, tr.node("AveragePool", [tr.value(x)], kernel_shape=k, strides=k))


def e_batch_norm(tr, y, x, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1,
                 eps=1e-5):
    if training:
        raise ExportError("onnx.export: batch_norm in training mode (export runs the model in eval mode)")
    c = x.shape[1]
    scale = tr.value(weight) if weight is not None else tr.const(np.ones(c, _dt(x)), "bn_scale")
    shift = tr.value(bias) if bias is not None else tr.const(np.zeros(c, _dt(x)), "bn_bias")
    return tr.out(y, tr.node("BatchNormalization", [tr.value(x), scale, shift, tr.value(running_mean, "running_mean"),
                                                    tr.value(running_var, "running_var")], epsilon=float(eps)))


def e_layer_norm(tr, y, x, normalized_shape, weight=None, bias=None, eps=1e-5):
    ns = normalized_shape if isinstance(normalized_shape, (list, tuple)) else (normalized_shape,)
    size = ns if weight is None else None
    scale = tr.value(weight) if weight is not None else tr.const(np.ones(size, _dt(x)), "ln_scale")
    args = [tr.value(x), scale] + ([tr.value(bias)] if bias is not None else [])
    return tr.out(y, tr.node("LayerNormalization", args, axis=-len(ns), epsilon=float(eps)))


def e_embedding(tr, y, indices, weight, padding_idx=None):
    idx = tr.value(indices) if tr.traced(indices) else tr.const(np.asarray(getattr(indices, "data", indices)), "ids")
    if tr.traced(indices) and indices.dtype != np.int64:
        idx = tr.node("Cast", [idx], to=7)
    return tr.out(y, tr.node("Gather", [tr.value(weight), idx], axis=0))


def e_act(tr, y, x, kind, alpha=0.0, beta=0.0):
    v = tr.value(x)
    one = lambda: _scalar(tr, 1.0, x)  # noqa: E731
    if kind == "leaky_relu":
        n = tr.node("LeakyRelu", [v], alpha=float(alpha))
    elif kind == "elu":
        n = tr.node("Elu", [v], alpha=float(alpha))
    elif kind == "selu":
        n = tr.node("Selu", [v])
    elif kind == "celu":
        n = tr.node("Celu", [v], alpha=float(alpha))
    elif kind == "gelu":
        erf = tr.node("Erf", [tr.node("Mul", [v, _scalar(tr, _SQRT1_2, x)])])
        n = tr.node("Mul", [tr.node("Mul", [v, _scalar(tr, 0.5, x)]), tr.node("Add", [erf, one()])])
    elif kind == "gelu_tanh":
        cube = tr.node("Mul", [tr.node("Mul", [v, v]), v])
        inner = tr.node("Mul", [tr.node("Add", [v, tr.node("Mul", [cube, _scalar(tr, 0.044715, x)])]),
                                _scalar(tr, math.sqrt(2 / math.pi), x)])
        n = tr.node("Mul", [tr.node("Mul", [v, _scalar(tr, 0.5, x)]), tr.node("Add", [tr.node("Tanh", [inner]), one()])])
    elif kind == "silu":
        n = tr.node("Mul", [v, tr.node("Sigmoid", [v])])
    elif kind == "mish":
        n = tr.node("Mul", [v, tr.node("Tanh", [tr.node("Softplus", [v])])])
    elif kind == "softplus":
        if alpha == 1.0:
            n = tr.node("Softplus", [v])
        else:
            b = _scalar(tr, alpha, x)
            n = tr.node("Div", [tr.node("Softplus", [tr.node("Mul", [v, b])]), b])
    elif kind == "hardtanh":
        n = tr.node("Clip", [v, _scalar(tr, alpha, x), _scalar(tr, beta, x)])
    elif kind == "hardsigmoid":
        n = tr.node("HardSigmoid", [v], alpha=1.0 / 6, beta=0.5)
    elif kind == "hardswish":
        n = tr.node("HardSwish", [v])
    else:
        raise ExportError(f"onnx.export: the activation '{kind}' has no ONNX form here")
    return tr.out(y, n)


def e_prelu(tr, y, x, weight):
    w = weight.data.reshape((-1,) + (1,) * (x.ndim - 2)) if weight.shape[0] != 1 else weight.data
    return tr.out(y, tr.node("PRelu", [tr.value(x), tr.const(w, "prelu_slope")]))


def e_cat(tr, y, tensors, axis=0, dim=None):
    ax = axis if dim is None else dim
    return tr.out(y, tr.node("Concat", [tr.value(t) for t in tensors], axis=int(ax)))


def e_stack(tr, y, tensors, axis=0, dim=None):
    ax = int(axis if dim is None else dim) % (tensors[0].ndim + 1)
    parts = [tr.node("Unsqueeze", [tr.value(t), tr.ints([ax], "axes")]) for t in tensors]
    return tr.out(y, tr.node("Concat", parts, axis=ax))


def e_sdpa(tr, y, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    from .modules import attention_core
    return tr.out(y, attention_core(tr, query, key, value, attn_mask, is_causal, scale))


FUNCTIONAL = [
    (FB.linear, e_linear), (FC.conv2d, e_conv2d), (FCM.conv_transpose2d, e_conv_transpose2d),
    (FC.max_pool2d, e_max_pool2d), (FC.avg_pool2d, e_avg_pool2d), (FC.adaptive_avg_pool2d, e_adaptive_avg_pool2d),
    (FN.batch_norm, e_batch_norm), (FN.layer_norm, e_layer_norm), (FR.embedding, e_embedding), (FA._act, e_act),
    (FA.prelu, e_prelu), (FB.cat, e_cat), (FB.stack, e_stack), (FATT.scaled_dot_product_attention, e_sdpa),
]


# ---------------------------------------------------------------- Tensor methods and operators
def operand(tr, b, dtype):
    """A traced value's name; a tensor (a parameter, say) as an initializer of its own; a number in ``dtype``."""
    if tr.traced(b) or isinstance(b, Tensor):
        return tr.value(b)
    return tr.const(np.asarray(b, dtype=dtype), "c")


def _binary(op, swap=False):
    def emit(tr, y, a, b):
        other = operand(tr, b, y.dtype if y.dtype.kind == "f" else a.dtype)
        mine = tr.value(a)
        return tr.out(y, tr.node(op, [other, mine] if swap else [mine, other]))
    return emit


def _compare(op, negate=False):
    def emit(tr, y, a, b):
        n = tr.node(op, [tr.value(a), operand(tr, b, a.dtype)])
        return tr.out(y, tr.node("Not", [n]) if negate else n)
    return emit


def _unary(op):
    def emit(tr, y, a, *args, **kwargs):
        return tr.out(y, tr.node(op, [tr.value(a)]))
    return emit


def _axis(args, kwargs, default=-1):
    v = kwargs.get("dim", kwargs.get("axis"))
    if v is None and args:
        v = args[0]
    return default if v is None else v


def e_softmax(op):
    def emit(tr, y, a, *args, **kwargs):
        return tr.out(y, tr.node(op, [tr.value(a)], axis=int(_axis(args, kwargs))))
    return emit


def _reduce(op):
    def emit(tr, y, a, dim=None, keepdim=False, *rest, axis=None, keepdims=None, **kw):
        d = axis if dim is None else dim
        keep = bool(keepdims if keepdims is not None else keepdim)
        axes = list(range(a.ndim)) if d is None else [int(x) for x in (d if isinstance(d, (tuple, list)) else (d,))]
        if op == "ReduceSum" or tr.opset >= 18:
            n = tr.node(op, [tr.value(a), tr.ints(axes, "axes")], keepdims=int(keep))
        else:
            n = tr.node(op, [tr.value(a)], axes=axes, keepdims=int(keep))
        return tr.out(y, n)
    return emit


def e_max(tr, y, a, dim=None, *args, **kwargs):
    if isinstance(dim, Tensor):
        return tr.out(y, tr.node("Max", [tr.value(a), tr.value(dim)]))
    if dim is None and kwargs.get("axis") is None:
        return _reduce("ReduceMax")(tr, y, a)
    raise ExportError("onnx.export: max(dim) (values and indices) is not supported; use amax")


def e_reshape(tr, y, a, *shape):
    target = list(y.shape)
    for i, (s_in, s_out) in enumerate(zip(a.shape, y.shape)):  # leading dims kept from the input stay dynamic
        if s_in != s_out:
            break
        target[i] = 0
    return tr.out(y, tr.node("Reshape", [tr.value(a), tr.ints(target)]))


def e_flatten(tr, y, a, start_dim=0, end_dim=-1):
    nd = max(a.ndim, 1)
    if end_dim % nd == nd - 1 and start_dim % nd == 1:
        return tr.out(y, tr.node("Flatten", [tr.value(a)], axis=1))
    return e_reshape(tr, y, a)


def e_transpose(tr, y, a, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    nd = a.ndim
    if not axes:
        perm = list(range(nd))[::-1]
    elif len(axes) == 2 and nd != 2:
        perm = list(range(nd))
        i, j = axes[0] % nd, axes[1] % nd
        perm[i], perm[j] = perm[j], perm[i]
    else:
        perm = [int(x) % nd for x in axes]
    return tr.out(y, tr.node("Transpose", [tr.value(a)], perm=perm))


def e_unsqueeze(tr, y, a, dim):
    return tr.out(y, tr.node("Unsqueeze", [tr.value(a), tr.ints([int(dim) % (a.ndim + 1)], "axes")]))


def e_squeeze(tr, y, a, dim=None, *, axis=None):
    d = axis if dim is None else dim
    ds = range(a.ndim) if d is None else [x % a.ndim for x in (d if isinstance(d, (tuple, list)) else (d,))]
    drop = [i for i in ds if a.shape[i] == 1]
    if not drop:
        return tr.out(y, tr.node("Identity", [tr.value(a)]))
    return tr.out(y, tr.node("Squeeze", [tr.value(a), tr.ints(drop, "axes")]))


def e_getitem(tr, y, a, idx):
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(isinstance(i, (Tensor, np.ndarray, list)) for i in idx):
        raise ExportError("onnx.export: indexing with arrays is not supported (only ints, slices, None, ...)")
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if Ellipsis in idx:
        k = idx.index(Ellipsis)
        idx = idx[:k] + (slice(None),) * (a.ndim - n_real) + idx[k + 1:]
    starts, ends, axes, steps, squeeze, unsq, d, out_d = [], [], [], [], [], [], 0, 0
    for i in idx:
        if i is None:
            unsq.append(out_d)
            out_d += 1
            continue
        n = a.shape[d]
        if isinstance(i, slice):
            st, en, sp = i.indices(n)
            if (st, en, sp) != (0, n, 1):
                if sp < 0:
                    en = -n - 1 if en < 0 else en
                starts.append(st), ends.append(en), axes.append(d), steps.append(sp)
            out_d += 1
        else:
            j = int(i) % n
            starts.append(j), ends.append(j + 1), axes.append(d), steps.append(1)
            squeeze.append(d)
        d += 1
    v = tr.value(a)
    if starts:
        v = tr.node("Slice", [v, tr.ints(starts, "starts"), tr.ints(ends, "ends"), tr.ints(axes, "axes"),
                              tr.ints(steps, "steps")])
    if squeeze:
        v = tr.node("Squeeze", [v, tr.ints(squeeze, "axes")])
    if unsq:
        v = tr.node("Unsqueeze", [v, tr.ints(unsq, "axes")])
    if v == tr.value(a):
        v = tr.node("Identity", [v])
    return tr.out(y, v)


def e_clip(tr, y, a, min=None, max=None):
    lo = "" if min is None else _scalar(tr, min, a)
    hi = "" if max is None else _scalar(tr, max, a)
    return tr.out(y, tr.node("Clip", [tr.value(a), lo, hi]))


def e_pow(tr, y, a, k):
    exp = tr.value(k) if tr.traced(k) else _scalar(tr, getattr(k, "data", k), a)
    return tr.out(y, tr.node("Pow", [tr.value(a), exp]))


def e_rpow(tr, y, a, k):
    return tr.out(y, tr.node("Pow", [_scalar(tr, k, a), tr.value(a)]))


def e_astype(tr, y, a, dtype):
    from onnx import helper
    return tr.out(y, tr.node("Cast", [tr.value(a)], to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype))))


def e_masked_fill(tr, y, a, mask, value):
    m = tr.value(mask) if tr.traced(mask) else tr.const(np.asarray(getattr(mask, "data", mask)), "mask")
    val = tr.value(value) if tr.traced(value) else _scalar(tr, getattr(value, "data", value), a)
    return tr.out(y, tr.node("Where", [m, val, tr.value(a)]))


def e_where(tr, y, a, condition, other):
    c = tr.value(condition) if tr.traced(condition) else tr.const(np.asarray(getattr(condition, "data", condition)),
                                                                   "cond")
    return tr.out(y, tr.node("Where", [c, tr.value(a), operand(tr, other, a.dtype)]))


def e_expand(tr, y, a, *sizes):
    return tr.out(y, tr.node("Expand", [tr.value(a), tr.ints(list(y.shape))]))


def e_matmul(tr, y, a, b):
    return tr.out(y, tr.node("MatMul", [tr.value(a), tr.value(b)]))


TENSOR = [
    ("__add__", _binary("Add")), ("__radd__", _binary("Add")), ("__sub__", _binary("Sub")),
    ("__rsub__", _binary("Sub", swap=True)), ("__mul__", _binary("Mul")), ("__rmul__", _binary("Mul")),
    ("__truediv__", _binary("Div")), ("__rtruediv__", _binary("Div", swap=True)), ("__neg__", _unary("Neg")),
    ("__matmul__", e_matmul), ("__rmatmul__", lambda tr, y, a, b: e_matmul(tr, y, b, a)), ("__pow__", e_pow),
    ("__rpow__", e_rpow), ("exp", _unary("Exp")), ("log", _unary("Log")), ("sqrt", _unary("Sqrt")),
    ("abs", _unary("Abs")), ("relu", _unary("Relu")), ("tanh", _unary("Tanh")), ("sigmoid", _unary("Sigmoid")),
    ("softmax", e_softmax("Softmax")),
    ("log_softmax", e_softmax("LogSoftmax")), ("clip", e_clip), ("clamp", e_clip), ("astype", e_astype),
    ("__getitem__", e_getitem), ("__lt__", _compare("Less")), ("__le__", _compare("LessOrEqual")),
    ("__gt__", _compare("Greater")), ("__ge__", _compare("GreaterOrEqual")), ("__eq__", _compare("Equal")),
    ("__ne__", _compare("Equal", negate=True)),
]
RED = [("sum", _reduce("ReduceSum")), ("mean", _reduce("ReduceMean")), ("amax", _reduce("ReduceMax")),
       ("amin", _reduce("ReduceMin")), ("max", e_max)]
SHAPE = [("reshape", e_reshape), ("view", e_reshape), ("flatten", e_flatten), ("transpose", e_transpose),
         ("unsqueeze", e_unsqueeze), ("squeeze", e_squeeze), ("masked_fill", e_masked_fill), ("where", e_where),
         ("expand", e_expand)]
ELEM = [("sin", _unary("Sin")), ("cos", _unary("Cos")), ("maximum", _binary("Max")), ("minimum", _binary("Min"))]
METHODS = [(Tensor, TENSOR), (ReduceMethods, RED), (ShapeMethods, SHAPE), (ElementwiseMethods, ELEM)]
