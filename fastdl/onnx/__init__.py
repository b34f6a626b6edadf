"""ONNX export: ``fastdl.onnx.export(model, example_inputs, path, ...)`` (the ``onnx`` package is the optional
extra ``fastdl[onnx]``).

The model runs once, in eval mode, on the example inputs while a tracer records one ONNX node per op
(see ``tracer.py``); parameters and buffers become initializers under their state-dict names.
Recurrent layers map to ONNX's LSTM/GRU/RNN ops, MultiheadAttention (and so the Transformer layers) to
matrix products and a softmax.  As with any tracing exporter, Python control flow that depends on the
data is frozen at the example's path.  An op without an ONNX form raises ``ExportError`` naming it.
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor
from .tracer import _ACTIVE, ExportError, Hooks, Trace, caller_name, unrecorded

__all__ = ["export", "ExportError", "SUPPORTED"]

SUPPORTED = (
    "layers: Linear, Conv1d/2d, ConvTranspose1d/2d, MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool (even windows), "
    "BatchNorm (eval), LayerNorm, Embedding, Dropout (eval), Flatten, Identity, the activations, PReLU, "
    "RNN/GRU/LSTM (layers, bidirectional, batch_first, initial states), MultiheadAttention, the Transformer layers; "
    "Tensor ops: + - * / @ **, neg, exp, log, sqrt, abs, relu, tanh, sigmoid, sin, cos, softmax, log_softmax, "
    "clamp, maximum, minimum, sum, mean, amax, amin, max(), reshape/view, flatten, transpose/permute, "
    "unsqueeze, squeeze, slicing, cat/stack, chunk/split, masked_fill, where, expand, comparisons, astype"
)


def _flatten(obj, out):
    if isinstance(obj, (tuple, list)):
        for o in obj:
            _flatten(o, out)
    elif obj is not None:
        out.append(obj)
    return out


def export(model, example_inputs, path, input_names=None, output_names=None, dynamic_axes=None,
           opset_version: int = 17, check: bool = True):
    """Write ``model``'s forward pass on ``example_inputs`` (a tensor or a tuple of them) to ``path`` as ONNX.

    ``dynamic_axes`` as PyTorch's: ``{"input": {0: "batch"}, "output": {0: "batch"}}`` leaves those
    dimensions free.  Returns the path.  The model runs in eval mode; its mode is restored after.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("fastdl.onnx.export needs the onnx package: pip install 'fastdl[onnx]'") from None
    from . import modules, ops
    if not isinstance(opset_version, int) or opset_version < 17:
        raise ValueError(f"onnx.export: opset_version must be an integer >= 17 (LayerNormalization), got "
                         f"{opset_version!r}")
    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    tensors = []
    for i, x in enumerate(inputs):
        a = x.data if isinstance(x, Tensor) else np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"onnx.export: example input {i} has dtype {a.dtype}")
        tensors.append(Tensor(np.array(a, copy=True)))
    input_names = list(input_names or [f"input_{i}" if len(tensors) > 1 else "input" for i in range(len(tensors))])
    if len(input_names) != len(tensors):
        raise ValueError(f"onnx.export: {len(input_names)} input names for {len(tensors)} inputs")
    dynamic_axes = dynamic_axes or {}
    params = {id(p.data): n for n, p in model.named_parameters()} if hasattr(model, "named_parameters") else {}
    if hasattr(model, "named_buffers"):
        params.update({id(b.data): n for n, b in model.named_buffers()})
    tr = Trace(opset_version, params)
    for t, n in zip(tensors, input_names):
        tr.bind(t, n)
    hooks = Hooks()
    was_training = getattr(model, "training", False)
    try:
        for orig, emit in ops.FUNCTIONAL:
            hooks.function(orig, emit)
        for cls, table in ops.METHODS:
            for attr, emit in table:
                hooks.method(cls, attr, emit)
        for cls, emit in modules.MODULES:
            hooks.method(cls, "forward", emit)
        tensor_mod = importlib.import_module("fastdl.tensor")  # (fastdl.tensor as an attribute is the function)
        for orig in (tensor_mod._result, tensor_mod._results):
            hooks.function(orig, _guarded(orig))
        if hasattr(model, "eval"):
            model.eval()
        _ACTIVE.append(tr)
        with no_grad():
            result = model(*tensors)
    finally:
        if _ACTIVE and _ACTIVE[-1] is tr:
            _ACTIVE.pop()
        hooks.restore()
        if hasattr(model, "train"):
            model.train(was_training)
    outs = _flatten(result, [])
    output_names = list(output_names or [f"output_{i}" if len(outs) > 1 else "output" for i in range(len(outs))])
    if len(output_names) != len(outs):
        raise ValueError(f"onnx.export: {len(output_names)} output names for {len(outs)} outputs")
    for t, n in zip(outs, output_names):
        src = tr.value(t, "const") if isinstance(t, Tensor) else tr.const(np.asarray(t), "const")
        tr.nodes.append(helper.make_node("Identity", [src], [n]))

    def info(name, arr):
        dyn = dynamic_axes.get(name, {})
        if isinstance(dyn, (list, tuple)):
            dyn = {int(a): f"{name}_dim{a}" for a in dyn}
        shape = [dyn[i] if i in dyn else int(s) for i, s in enumerate(arr.shape)]
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), shape)
    graph = helper.make_graph(
        tr.nodes, type(model).__name__, [info(n, t.data) for t, n in zip(tensors, input_names)],
        [info(n, np.asarray(getattr(t, "data", t))) for t, n in zip(outs, output_names)],
        [numpy_helper.from_array(a, n) for n, a in tr.initializers.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset_version)],
                              producer_name="fastdl")
    proto.ir_version = min(proto.ir_version, 9)
    if check:
        onnx.checker.check_model(proto)
    path = os.fspath(path)
    onnx.save(proto, path)
    return path


def _guarded(orig):
    def emit(tr, res, data, parents, backward_fn):
        unrecorded(parents, caller_name(2))
        return res
    return emit

