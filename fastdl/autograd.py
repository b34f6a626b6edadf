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
undone here, once, not in every op) and hands the gradients of the leaves and of the retained
intermediates to a callback, each leaf's as soon as its last use is differentiated.  The engine
never constructs tensors: the Tensor stores what it is handed.
"""
from __future__ import annotations

import contextlib
import heapq
import itertools
import sys
import threading

import numpy as np

from .backend import array_namespace

_state = threading.local()
_sequence = itertools.count()


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

    __slots__ = ("inputs", "backward", "n_out", "retained", "versions", "seq")

    def __init__(self, inputs: tuple, backward, n_out: int = 1):
        self.seq = next(_sequence)  # creation order: backward runs the newest ready node first
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
    xp = array_namespace(g)
    nd = g.ndim - len(shape)
    if nd > 0:
        g = xp.sum(g, axis=tuple(range(nd)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return xp.reshape(g, tuple(shape))


def topo_order(root: Node) -> list:
    """The nodes ``root`` depends on through inputs that require grad, each before its inputs' nodes.

    Among the nodes whose consumers are all done, the most recently created runs first (PyTorch's
    engine does the same): backward then retraces the forward pass in reverse, so a leaf's gradient is
    final as early as it can be — the last layer's first — which is what lets the gradient all-reduce
    of data-parallel training start while backward goes on."""
    return _schedule(root)[0]


_hooked = [0]  # how many post-accumulate-grad hooks are registered (on any tensor)


def hook_added(delta: int) -> None:
    """Count gradient hooks: while there are none, backward skips the early hand-over's bookkeeping."""
    _hooked[0] += delta


def _dfs_order(root: Node) -> list:
    """A reverse topological order by iterative depth-first search: cheaper than :func:`topo_order`,
    for passes where no hook waits on a leaf."""
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


def _schedule(root: Node):
    """:func:`topo_order`, and for each position in it the leaves whose last use is the node there."""
    consumers, nodes, stack = {}, {id(root): root}, [root]
    while stack:  # every reachable node, and how many reachable nodes take its outputs
        node = stack.pop()
        for p in node.inputs:
            n = p._node
            if n is not None and p.requires_grad:
                consumers[id(n)] = consumers.get(id(n), 0) + 1
                if id(n) not in nodes:
                    nodes[id(n)] = n
                    stack.append(n)
    order, ready, last_use = [], [(-root.seq, id(root))], {}
    while ready:
        node = nodes[heapq.heappop(ready)[1]]
        i = len(order)
        order.append(node)
        for p in node.inputs:
            n = p._node
            if n is None:
                if p.requires_grad:
                    last_use[id(p)] = i
            elif p.requires_grad:
                left = consumers[id(n)] - 1
                consumers[id(n)] = left
                if left == 0:
                    heapq.heappush(ready, (-n.seq, id(n)))
    done_at: dict = {}
    for k, i in last_use.items():
        done_at.setdefault(i, []).append(k)
    return order, done_at


def queue_callback(fn) -> None:
    """Run ``fn()`` once the backward pass now running has handed over every gradient (as PyTorch's
    ``Variable._execution_engine.queue_callback``): a gradient hook uses it to finish work that spans
    several leaves, such as the last gradient all-reduce of data-parallel training."""
    queue = getattr(_state, "callbacks", None)
    if queue is None:
        raise RuntimeError("queue_callback: no backward pass is running")
    queue.append(fn)


def backward(root, grad, emit) -> None:
    """Hand ``d(root)/d(t) * grad`` to ``emit(t, gradient array)`` for every leaf ``t`` that requires
    grad and every retained intermediate.

    A leaf is handed over as soon as the last op that used it has run, while the rest of the graph is
    still being differentiated, so a hook on it (``Tensor.register_post_accumulate_grad_hook``) can
    start work on a finished gradient early.  Callbacks queued with :func:`queue_callback` run after
    the last hand-over."""
    outer, outer_pass = getattr(_state, "callbacks", None), getattr(_state, "pass_id", None)
    _state.callbacks = []
    _state.passes = _state.pass_id = getattr(_state, "passes", 0) + 1
    try:
        if root._node is None:
            emit(root, grad)
        else:
            _differentiate(root, grad, emit)
        while _state.callbacks:
            _state.callbacks.pop(0)()
    finally:
        _state.callbacks, _state.pass_id = outer, outer_pass


def current_backward():
    """A number identifying the backward pass now running on this thread (None outside one)."""
    return getattr(_state, "pass_id", None)


def _ref_chain(gp):
    """``sys.getrefcount`` of the NumPy array ``gp`` and of each array under it (its bases), as seen
    from here; None when something other than an array owns the memory."""
    if type(gp) is not np.ndarray:
        return None
    out = [sys.getrefcount(gp)]
    b = gp.base
    while type(b) is np.ndarray:
        out.append(sys.getrefcount(b))
        b = b.base
    return out if b is None else None


def _counts_at_handover(gp):  # _ref_chain called from the same depth as in _sole
    return _ref_chain(gp)


def _fresh_counts():
    """The counts _sole sees for a gradient nobody else holds (a view of a fresh array), measured on
    this interpreter rather than assumed: one that counts differently only makes the engine copy."""
    leaves = {0: (None, np.empty(4)[:2])}
    for got in leaves.values():
        _, gp = got
        return _counts_at_handover(gp)


def _sole(gp) -> bool:
    """True when the engine holds the only reference to the leaf gradient ``gp`` and to the memory
    under it, so the leaf may keep it as its ``.grad`` without a copy (PyTorch's AccumulateGrad steals
    such a gradient too).  A gradient that is an input's own array, the caller's ``grad``, a view of a
    saved tensor, or one of several views of one buffer has more references and is copied."""
    chain = _ref_chain(gp)
    return (chain is not None and gp.flags.writeable and chain[0] == _FRESH[0]
            and all(c == _FRESH[1] for c in chain[1:]))


def _differentiate(root, grad, emit) -> None:
    first = [None] * root._node.n_out
    first[root._index] = grad
    pending = {id(root._node): first}
    if _hooked[0]:  # a leaf has a gradient hook: hand each leaf over as soon as its gradient is final
        order, done_at = _schedule(root._node)  # done_at: position -> the leaves whose last use is there
    else:  # nobody waits for a gradient early: the plain depth-first order, every leaf at the end
        order, done_at = _dfs_order(root._node), {}
    leaves = {}
    with no_grad():
        for i, node in enumerate(order):
            gs = pending.pop(id(node), None)
            if gs is not None:
                check_versions(node)
                if node.retained:
                    for j, t in node.retained:
                        if gs[j] is not None:
                            emit(t, gs[j])
                for p, gp in zip(node.inputs, node.backward(gs if node.n_out > 1 else gs[0])):
                    if gp is None or not p.requires_grad:
                        continue
                    gp = unbroadcast(gp, p.data.shape)
                    if gp.dtype != p.data.dtype:
                        gp = gp.astype(p.data.dtype) if hasattr(gp, "astype") else \
                            array_namespace(gp).astype(gp, p.data.dtype)
                    if p._node is None:
                        prev = leaves.get(id(p))
                        leaves[id(p)] = (p, gp if prev is None else prev[1] + gp)
                        continue
                    slots = pending.get(id(p._node))
                    if slots is None:
                        slots = pending[id(p._node)] = [None] * p._node.n_out
                    prev = slots[p._index]
                    slots[p._index] = gp if prev is None else prev + gp
            if done_at:
                for k in done_at.get(i, ()):
                    got = leaves.pop(k, None)
                    if got is not None:
                        p, gp = got
                        sole = _sole(gp)  # a statement of its own: as emit's argument gp would be on the stack
                        emit(p, gp, sole)
    for got in leaves.values():
        p, gp = got
        sole = _sole(gp)
        emit(p, gp, sole)


_FRESH = _fresh_counts()
