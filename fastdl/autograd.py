"""The autograd engine: grad mode, graph nodes, traversal and gradient accumulation.

An op that builds graph records one :class:`Node`: the input tensors, a backward function, and how
many outputs it made.  Each output tensor points at its node and its position there (``_node``,
``_index``), so an op with several outputs (a recurrent layer's ``(out, h_n, c_n)``, attention's
``(output, weights)``) is one node, not a packed tensor sliced apart.  A single-output node's
backward takes the output gradient; a multi-output node's takes one gradient per output, ``None``
for an output that nothing downstream used, so no zero arrays are made for it.  Either returns one
gradient (or ``None``) per input.

:func:`backward` walks the nodes in reverse topological order (sorted iteratively, so a
10,000-op chain is fine), sums each input gradient back to the input's shape (broadcasting is
undone here, once, not in every op) and hands back the gradients of the leaves and of the
retained intermediates.  The engine never constructs tensors: the Tensor stores what it returns.
"""
from __future__ import annotations

import contextlib
import threading

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


class Node:
    """One recorded op: ``inputs`` (tensors), ``backward`` and the number of outputs ``n_out``.

    ``retained`` lists ``(index, tensor)`` for outputs whose gradient is kept (``retain_grad``);
    ``versions`` the inputs' in-place versions when the op ran (see :func:`check_versions`)."""

    __slots__ = ("inputs", "backward", "n_out", "retained", "versions")

    def __init__(self, inputs: tuple, backward, n_out: int = 1):
        self.inputs = inputs
        self.backward = backward
        self.n_out = n_out
        self.retained = None
        self.versions = tuple(p._version for p in inputs)


def check_versions(node: Node) -> None:
    """Refuse to run a backward whose inputs were changed in place after the op used them."""
    for i, (p, v) in enumerate(zip(node.inputs, node.versions)):
        if p._version != v:
            raise RuntimeError(
                f"backward: input {i} (shape {p.data.shape}) of an op was changed in place after the op used it "
                f"(version {v}, now {p._version}); change a clone instead, or run the in-place op before")


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


def topo_order(root: Node) -> list:
    """The nodes ``root`` depends on through inputs that require grad, each before its inputs' nodes."""
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
        for p in node.inputs:
            n = p._node
            if n is not None and p.requires_grad and id(n) not in seen:
                stack.append((n, False))
    order.reverse()
    return order


def backward(root, grad) -> list:
    """d(root)/d(t) * grad for every leaf ``t`` that requires grad and every retained intermediate.

    Returns ``[(tensor, gradient array)]``; the caller accumulates them into ``.grad``."""
    if root._node is None:
        return [(root, grad)]
    out, leaves = [], {}
    first = [None] * root._node.n_out
    first[root._index] = grad
    pending = {id(root._node): first}
    with no_grad():
        for node in topo_order(root._node):
            gs = pending.pop(id(node), None)
            if gs is None:
                continue
            check_versions(node)
            if node.retained:
                out.extend((t, gs[i]) for i, t in node.retained if gs[i] is not None)
            for p, gp in zip(node.inputs, node.backward(gs if node.n_out > 1 else gs[0])):
                if gp is None or not p.requires_grad:
                    continue
                gp = unbroadcast(gp, p.data.shape)
                if gp.dtype != p.data.dtype:
                    gp = gp.astype(p.data.dtype)
                if p._node is None:
                    prev = leaves.get(id(p))
                    leaves[id(p)] = (p, gp if prev is None else prev[1] + gp)
                    continue
                slots = pending.get(id(p._node))
                if slots is None:
                    slots = pending[id(p._node)] = [None] * p._node.n_out
                prev = slots[p._index]
                slots[p._index] = gp if prev is None else prev + gp
    out.extend(leaves.values())
    return out
