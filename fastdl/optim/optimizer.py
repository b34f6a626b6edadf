"""Optimizer base: param_groups, per-parameter state, state_dict round trips.

The layout of ``state_dict()`` is PyTorch's: ``{"state": {index: {...}},
"param_groups": [{..., "params": [index, ...]}]}`` with parameters numbered
in the order the groups list them.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import backend
from ..autograd import enable_grad
from ..shapes import float_arg
from ..tensor import Tensor


class Optimizer:
    defaults: dict

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: params must be Tensors, got {type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: can only optimize floating-point tensors, got {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        _check_hyperparameters(type(self).__name__, group)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        if group.get("lr", 0.0) < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {group['lr']}")
        if group.get("weight_decay", 0.0) < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {group['weight_decay']}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data = backend.array_namespace(p.grad.data).zeros_like(p.grad.data)

    def step(self, closure=None):
        """One update of every parameter that has a gradient (frozen or unused ones are skipped)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or not p.requires_grad:
                    continue
                if p.grad.shape != p.shape:
                    raise ValueError(f"{type(self).__name__}: a gradient has shape {p.grad.shape}, its parameter "
                                     f"{p.shape}")
                self._update(group, p, backend.ops(p.data))
        return loss

    def _update(self, group: dict, p: Tensor, kern) -> None:
        raise NotImplementedError

    @staticmethod
    def _zeros(p: Tensor, fill: float = 0.0):
        """A state array for ``p``: its shape and dtype, on its device."""
        xp = backend.array_namespace(p.data)
        return xp.full(p.shape, fill, dtype=backend.xp_dtype(xp, p.dtype))

    # ---------------------------------------------------------------- state
    def _index(self):
        return {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    def state_dict(self) -> dict:
        index = self._index()
        state = {index[id(p)]: {k: _host_copy(v) for k, v in s.items()}
                 for p, s in ((p, self.state[id(p)]) for g in self.param_groups for p in g["params"]
                              if id(p) in self.state)}
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: {len(groups)} parameter groups given, the optimizer has "
                             f"{len(self.param_groups)}")
        for mine, theirs in zip(self.param_groups, groups):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError("load_state_dict: a parameter group has a different number of parameters")
        params = [p for g in self.param_groups for p in g["params"]]
        new_state = {}
        for k, s in state_dict["state"].items():
            p = params[int(k)]
            entry = {}
            for name, v in s.items():
                if isinstance(v, Tensor):
                    v = v.data
                if isinstance(v, np.ndarray) and v.shape == p.shape:  # onto the parameter's device
                    v = backend.to_device(np.array(v, dtype=p.dtype, copy=True), p.device)
                elif isinstance(v, np.ndarray):
                    v = v.copy()
                entry[name] = v
            new_state[id(p)] = entry
        for mine, theirs in zip(self.param_groups, groups):
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = copy.deepcopy(v)
        self.state = new_state

    def to(self, device) -> "Optimizer":
        """Move the state arrays to ``device`` (after ``model.to(device)``; a state made later is made there)."""
        dev = backend.Device(device)
        for s in self.state.values():
            for k, v in s.items():
                if hasattr(v, "shape") and getattr(v, "ndim", 0):
                    s[k] = backend.to_device(v, dev)
        return self

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])


# The ranges every optimizer's hyperparameters must lie in (PyTorch's), checked for each group.
_RANGES = {"lr": (0.0, None, False), "momentum": (0.0, None, False), "dampening": (None, None, False),
           "weight_decay": (0.0, None, False), "eps": (0.0, None, False), "alpha": (0.0, 1.0, True)}


def _check_hyperparameters(name: str, group: dict) -> None:
    """Numbers finite and in range, flags booleans, betas a pair in [0, 1): TypeError or ValueError
    naming the argument, before any step can turn them into NaN parameters."""
    for k, (lo, hi, hi_open) in _RANGES.items():
        if k in group:
            group[k] = float_arg(group[k], k, name, lo, hi, hi_open=hi_open)
    for k in ("nesterov", "maximize", "amsgrad", "centered"):
        if k in group and not isinstance(group[k], (bool, np.bool_)):
            raise TypeError(f"{name}: {k} must be a bool, got {group[k]!r}"[:200])
    if "betas" in group:
        b = group["betas"]
        if isinstance(b, (str, bytes)) or not hasattr(b, "__len__") or len(b) != 2:
            raise ValueError(f"{name}: betas must be a pair of numbers in [0, 1), got {b!r}"[:200])
        group["betas"] = tuple(float_arg(x, "betas", name, 0.0, 1.0, hi_open=True) for x in b)


def _host_copy(v):
    """A state entry for ``state_dict``: arrays as NumPy copies (from any device), the rest as they are."""
    if isinstance(v, np.ndarray):
        return v.copy()
    if backend.on_device(v):
        return np.array(backend.to_device(v, backend.CPU), copy=True)
    return v
