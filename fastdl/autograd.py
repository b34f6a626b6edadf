"""The autograd engine: grad mode, graph traversal, gradient accumulation.

A Tensor produced by a differentiable op keeps its ``_parents`` and a
``_backward`` closure mapping the output gradient to one gradient per parent.
:func:`backward` walks the graph in reverse topological order (sorted
iteratively, so a 10,000-op chain is fine) and sums each gradient back to
its parent's shape: broadcasting is undone here, once, not in every op.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


@contextlib.contextmanager
def no_grad():
    """Context manager: ops inside build no graph (evaluation, optimizer steps)."""
    prev = is_grad_enabled()
    set_grad_enabled(False)
    try:
        yield
    finally:
        set_grad_enabled(prev)


@contextlib.contextmanager
def enable_grad():
    prev = is_grad_enabled()
    set_grad_enabled(True)
    try:
        yield
    finally:
        set_grad_enabled(prev)


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if g.shape == tuple(shape):
        return g
    nd = g.ndim - len(shape)
    if nd > 0:
        g = g.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def topo_order(root):
    """Nodes that need a gradient, each before the nodes it was computed from."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in node._parents:
            if p.requires_grad and id(p) not in seen:
                stack.append((p, False))
    order.reverse()
    return order


def backward(root, grad) -> None:
    """Accumulate d(root)/d(leaf) * grad into ``leaf.grad`` for every leaf that requires grad."""
    from .tensor import Tensor  # same layer: the engine fills Tensor.grad

    grads = {id(root): grad}
    with no_grad():
        for node in topo_order(root):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf
                if node.grad is None:
                    node.grad = Tensor(np.array(g, dtype=node.dtype, copy=True))
                else:
                    node.grad.data = node.grad.data + g
                continue
            if node._retain:
                node.grad = Tensor(np.array(g, dtype=node.dtype, copy=True))
            for p, gp in zip(node._parents, node._backward(g)):
                if gp is None or not p.requires_grad:
                    continue
                gp = unbroadcast(gp, p.data.shape)
                if gp.dtype != p.data.dtype:
                    gp = gp.astype(p.data.dtype)
                prev = grads.get(id(p))
                grads[id(p)] = gp if prev is None else prev + gp
