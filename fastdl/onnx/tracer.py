"""The tracer behind :func:`fastdl.onnx.export`: runs the model once on example inputs and records an
ONNX node for every op that touches a value derived from the inputs.

Ops are recorded where they are defined: the functional ops (conv, pooling, norms, linear, the
activation family...), the Tensor's methods and operators, and whole modules whose ONNX form is
one op (LSTM/GRU/RNN) or a fixed pattern (MultiheadAttention).  While a recorded op runs, the ops
inside it are not recorded.  Any other op that computes from a traced value raises naming the op,
so an export is complete or refused, never silently wrong.  Values the inputs do not reach
(parameters, buffers, constant masks) become initializers.
"""
from __future__ import annotations

import sys

import numpy as np

from ..tensor import Tensor

_ACTIVE: list = []  # the running trace (at most one)


def active():
    """The running trace, or None when nothing is being exported (or a recorded op is running)."""
    if not _ACTIVE:
        return None
    t = _ACTIVE[-1]
    return None if t.suspended else t


class ExportError(RuntimeError):
    """A model cannot be exported: the message names the op."""


class Trace:
    def __init__(self, opset: int, param_names: dict):
        self.opset = opset
        self.nodes, self.initializers, self.names = [], {}, {}
        self.keep = []  # traced tensors stay alive, so their ids stay theirs
        self.param_names = param_names  # id(parameter or buffer array) -> state-dict name
        self.suspended = 0
        self.count = 0

    # ---------------------------------------------------------------- names
    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def traced(self, x) -> bool:
        return isinstance(x, Tensor) and id(x) in self.names

    def bind(self, t: Tensor, name: str) -> str:
        self.names[id(t)] = name
        self.keep.append(t)
        return name

    def const(self, value, hint: str = "const", dtype=None) -> str:
        """An initializer holding ``value`` (a parameter keeps its state-dict name)."""
        arr = value.data if isinstance(value, Tensor) else np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        key = id(value.data if isinstance(value, Tensor) else value)
        name = self.param_names.get(key)
        if name is not None and name in self.initializers and self.initializers[name].shape == arr.shape:
            return name
        name = name or self.fresh(hint)
        self.initializers[name] = np.ascontiguousarray(arr)
        return name

    def ints(self, values, hint="shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def value(self, x, hint: str = "const", dtype=None) -> str:
        """The ONNX name of a traced tensor, or of a new initializer for anything else."""
        if isinstance(x, Tensor) and id(x) in self.names:
            return self.names[id(x)]
        if dtype is None and isinstance(x, (int, float, np.generic)) and not isinstance(x, bool):
            raise ExportError("internal: a Python number needs a dtype to become a constant")
        return self.const(x, hint, dtype)

    # ---------------------------------------------------------------- nodes
    def node(self, op: str, inputs, n_out: int = 1, name_hint=None, **attrs):
        import onnx.helper as oh
        outs = [self.fresh(name_hint or op.lower()) for _ in range(n_out)]
        self.nodes.append(oh.make_node(op, list(inputs), outs, **{k: v for k, v in attrs.items() if v is not None}))
        return outs if n_out > 1 else outs[0]

    def out(self, t: Tensor, name: str) -> Tensor:
        """Bind the real result ``t`` of a recorded op to its ONNX value ``name``."""
        if id(t) in self.names:  # an op that returned one of its inputs: alias through Identity
            t = _alias(t)
        self.bind(t, name)
        return t


def _alias(t: Tensor) -> Tensor:
    a = Tensor.__new__(Tensor)
    Tensor.__init__(a, t.data)
    return a


# ---------------------------------------------------------------- hooks
class Hooks:
    """Replace functions (wherever a fastdl module holds them) and methods for the trace, then restore."""

    def __init__(self):
        self.saved = []

    def function(self, orig, emit):
        hooked = _hook(orig, emit)
        for mod in list(sys.modules.values()):
            name = getattr(mod, "__name__", "")
            if not (name == "fastdl" or name.startswith("fastdl.")) or name.startswith("fastdl.onnx"):
                continue
            for attr, v in list(vars(mod).items()):
                if v is orig:
                    self.saved.append((mod, attr, v))
                    setattr(mod, attr, hooked)

    def method(self, cls, attr, emit):
        orig = cls.__dict__[attr]
        static = isinstance(orig, staticmethod)
        hooked = _hook(orig.__func__ if static else orig, emit)
        self.saved.append((cls, attr, orig))
        setattr(cls, attr, staticmethod(hooked) if static else hooked)

    def restore(self):
        for owner, attr, v in reversed(self.saved):
            setattr(owner, attr, v)
        self.saved.clear()


def _hook(fn, emit):
    """``fn`` that, while a trace runs and its arguments hold a traced value, runs unrecorded inside and
    then lets ``emit`` record it."""
    def hooked(*args, **kwargs):
        tr = active()
        if tr is None or not _touches(tr, args, kwargs):
            return fn(*args, **kwargs)
        tr.suspended += 1
        try:
            res = fn(*args, **kwargs)
        finally:
            tr.suspended -= 1
        return emit(tr, res, *args, **kwargs)
    hooked.__wrapped__ = fn
    return hooked


def _touches(tr, args, kwargs) -> bool:
    """Does any argument (nested in lists and tuples) hold a traced value?"""
    stack = list(args) + list(kwargs.values())
    while stack:
        a = stack.pop()
        if isinstance(a, Tensor):
            if id(a) in tr.names:
                return True
        elif isinstance(a, (list, tuple)):
            stack.extend(a)
    return False


def unrecorded(parents, what: str):
    """Called by the graph constructors: an op that was not recorded computed from a traced value."""
    tr = active()
    if tr is None:
        return
    if any(isinstance(p, Tensor) and id(p) in tr.names for p in parents):
        raise ExportError(f"onnx.export: the op '{what}' is not supported for export (it computes from the "
                          "model's input); supported ops are listed in fastdl.onnx.SUPPORTED")


def caller_name(depth: int = 2) -> str:
    f = sys._getframe(depth)
    while f is not None and f.f_code.co_name in ("_op", "_ops", "_result", "_results", "hooked", "emit"):
        f = f.f_back
    if f is None:
        return "?"
    owner = f.f_locals.get("self")
    prefix = "Tensor." if isinstance(owner, Tensor) else f"{f.f_globals.get('__name__', '?').split('.')[-1]}."
    return prefix + f.f_code.co_name
