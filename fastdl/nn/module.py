"""Module, Parameter, Sequential: the containers every layer is built from.

Parameter and buffer names, ``state_dict`` layouts and ``load_state_dict``
semantics follow PyTorch, so a PyTorch state dict converted to NumPy loads
unchanged.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..backend import CPU, array_namespace, cuda_device, on_device, to_args, to_device
from ..shapes import astype
from ..tensor import Tensor


def _host_copy(a) -> np.ndarray:
    """A NumPy copy of an array of any device (state dicts are NumPy arrays)."""
    return a.copy() if isinstance(a, np.ndarray) else np.array(to_device(a, CPU), copy=True)


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (requires_grad by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        arr = data.data if isinstance(data, Tensor) else data
        super().__init__(np.array(arr, copy=True), requires_grad=requires_grad)  # owns its storage

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: holds parameters, buffers and child modules."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        if name in self._buffers and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value
            return
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value) -> None:
        """A named non-trainable array saved in the state dict (e.g. running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = None if value is None else (value if isinstance(value, Tensor) else Tensor(value))

    def register_parameter(self, name: str, value) -> None:
        if value is None:
            self._parameters[name] = None
        else:
            setattr(self, name, value)

    def add_module(self, name: str, module) -> None:
        self._modules[name] = module

    # ---------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = ""):
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((k, m) for k, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for k, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{k}" if mname else k), p

    def parameters(self, recurse: bool = True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = ""):
        for mname, m in self.named_modules(prefix):
            for k, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{k}" if mname else k), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def apply(self, fn):
        for m in list(self.children()):
            m.apply(fn)
        fn(self)
        return self

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        """Freeze (False) or unfreeze every parameter, e.g. for transfer learning."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data = array_namespace(p.grad.data).zeros_like(p.grad.data)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---------------------------------------------------------------- dtype
    def to(self, target=None, dtype=None):
        """``.to(device)``, ``.to(dtype)`` (floating parameters and buffers) or both, in place, as PyTorch's:
        parameters stay the same objects (an optimizer made before keeps them), their data moves."""
        dev, dtype = to_args(target, dtype)
        dt = np.dtype(dtype) if dtype is not None else None
        if dt is not None and dt.kind != "f":
            raise TypeError(f"Module.to: dtype must be floating point, got {dt}")

        def move(t):
            if dt is not None and t.dtype.kind == "f" and t.dtype != dt:
                t.data = astype(t.data, dt)
            if dev is not None and t.device != dev:
                t.data = to_device(t.data, dev)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    move(p)
                    if p.grad is not None:
                        move(p.grad)
            for b in m._buffers.values():
                if b is not None:
                    move(b)
        return self

    def cuda(self, device=None):
        return self.to(cuda_device(device))

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    @property
    def dtype(self):
        for p in self.parameters():
            return p.dtype
        return np.dtype(np.float32)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Ordered name -> NumPy array (a copy) of every parameter and buffer, PyTorch's names."""
        out = OrderedDict()
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for k, p in m._parameters.items():
                if p is not None:
                    out[pre + k] = _host_copy(p.data)
            for k, b in m._buffers.items():
                if b is not None and k not in getattr(m, "_non_persistent", ()):
                    out[pre + k] = _host_copy(b.data)
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays (NumPy, Tensors, or anything ``np.asarray`` takes) into parameters and buffers.

        Values are cast to each target's dtype; shapes must match.  With
        ``strict`` a missing or unexpected key raises KeyError listing them.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        own = OrderedDict()
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for k, p in m._parameters.items():
                if p is not None:
                    own[pre + k] = p
            for k, b in m._buffers.items():
                if b is not None and k not in getattr(m, "_non_persistent", ()):
                    own[pre + k] = b
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        staged = {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            arr = v.data if isinstance(v, Tensor) else v
            arr = np.asarray(to_device(arr, CPU) if on_device(arr) else arr)
            if arr.shape != t.data.shape:
                raise ValueError(f"load_state_dict: {k} has shape {arr.shape} in the state dict but "
                                 f"{t.data.shape} in the model")
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: {k} has dtype {arr.dtype}")
            staged[k] = np.array(arr, dtype=t.dtype, copy=True)
        for k, arr in staged.items():  # only after every check passed: no half-loaded model
            t = own[k]
            t.data = arr if type(t.data) is np.ndarray else to_device(arr, t.device)  # stays on its device
        return missing, unexpected

    # ---------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied in order; indexable, iterable, with ``append``."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for k, m in modules[0].items():
                self.add_module(k, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __setitem__(self, i, module: Module):
        """Replace the i-th module (e.g. ``model[-1] = nn.Linear(84, 5)`` swaps the head)."""
        keys = list(self._modules)
        self._modules[keys[i]] = module

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
