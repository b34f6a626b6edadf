"""``ModuleDict``, ``ParameterList`` and ``ParameterDict``: containers that register what they hold under
PyTorch's names (the dict's keys; ``"0"``, ``"1"``... for the list), so state dicts match PyTorch's."""
from __future__ import annotations

from ..tensor import Tensor
from .module import Module, Parameter


def _as_parameter(v, fn):
    if isinstance(v, Parameter):
        return v
    if isinstance(v, Tensor) or hasattr(v, "__array__"):
        return Parameter(v)
    raise TypeError(f"{fn}: expects Parameters or tensors, got {type(v).__name__}")


class ModuleDict(Module):
    """An ordered dict of named child modules (``self.heads = ModuleDict({"a": Linear(...), ...})``)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {key!r} must be a Module, got {type(module).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules) -> None:
        for k, m in (modules.items() if hasattr(modules, "items") else modules):
            self[k] = m


class ParameterList(Module):
    """A list of parameters registered as ``"0"``, ``"1"``...; tensors and arrays become Parameters."""

    def __init__(self, values=None):
        super().__init__()
        for v in values or ():
            self.append(v)

    def append(self, value) -> "ParameterList":
        self._parameters[str(len(self._parameters))] = _as_parameter(value, "ParameterList")
        return self

    def extend(self, values) -> "ParameterList":
        for v in values:
            self.append(v)
        return self

    def _key(self, i: int) -> str:
        n = len(self._parameters)
        if not -n <= i < n:
            raise IndexError(f"ParameterList: index {i} out of range for {n} parameters")
        return str(i % n)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        return self._parameters[self._key(i)]

    def __setitem__(self, i: int, value) -> None:
        self._parameters[self._key(i)] = _as_parameter(value, "ParameterList")

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def extra_repr(self) -> str:
        return "\n".join(f"({k}): Parameter of shape {tuple(p.shape)} ({p.dtype})" for k, p in self._parameters.items())


class ParameterDict(Module):
    """A dict of named parameters (keys are the state-dict names)."""

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str):
        return self._parameters[key]

    def __setitem__(self, key: str, value) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ParameterDict: keys must be non-empty strings without '.', got {key!r}")
        self._parameters[key] = _as_parameter(value, "ParameterDict")

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key) -> bool:
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def items(self):
        return self._parameters.items()

    def values(self):
        return self._parameters.values()

    def pop(self, key: str):
        return self._parameters.pop(key)

    def update(self, parameters) -> None:
        for k, v in (parameters.items() if hasattr(parameters, "items") else parameters):
            self[k] = v

    def extra_repr(self) -> str:
        return "\n".join(f"({k}): Parameter of shape {tuple(p.shape)} ({p.dtype})" for k, p in self._parameters.items())
