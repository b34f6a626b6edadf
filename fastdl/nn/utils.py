"""Gradient clipping (``fastdl.nn.utils``)."""
from __future__ import annotations

import numpy as np

from ..backend import array_namespace as _xp
from ..shapes import astype
from ..tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so that their joint norm is at most ``max_norm``; returns the norm before."""
    ps = _grads(parameters)
    if not ps:
        return 0.0
    xp = _xp(ps[0].grad.data)
    if norm_type == float("inf"):
        total = max(float(xp.max(xp.abs(p.grad.data))) for p in ps)
    else:
        total = float(sum(float(xp.sum(xp.abs(astype(p.grad.data, np.float64)) ** norm_type)) for p in ps)) \
            ** (1.0 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in ps:
            p.grad.data = p.grad.data * float(coef)  # a Python float keeps the gradient's dtype
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value]."""
    for p in _grads(parameters):
        g = p.grad.data
        p.grad.data = _xp(g).clip(g, -float(clip_value), float(clip_value))


def freeze(module) -> None:
    """Stop training ``module``'s parameters (transfer learning: keep a pretrained trunk fixed)."""
    module.requires_grad_(False)


def unfreeze(module) -> None:
    module.requires_grad_(True)


def trainable_parameters(module) -> list:
    """The parameters that still require grad: what to give an optimizer after freezing."""
    return [p for p in module.parameters() if p.requires_grad]


# ------------------------------------------------------------------ variable-length sequences
class PackedSequence:
    """A padded batch plus each sequence's length: what an RNN needs to stop each sequence at its end.

    (PyTorch packs the time steps tightly; fastdl's kernels take the padded batch and the lengths
    directly, so packing is only this pairing, with the same API.)
    """

    def __init__(self, data, lengths, batch_first: bool = False):
        self.data, self.lengths, self.batch_first = data, np.asarray(lengths, dtype=np.int64), batch_first

    def __iter__(self):
        return iter((self.data, self.lengths))


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0):
    """Stack sequences of shapes (L_i, *) into (T, B, *) (or (B, T, *)), padding with ``padding_value``."""
    seqs = [np.asarray(s.data if isinstance(s, Tensor) else s) for s in sequences]
    if not seqs:
        raise ValueError("pad_sequence: give at least one sequence")
    t = max(len(s) for s in seqs)
    out = np.full((len(seqs), t) + seqs[0].shape[1:], padding_value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out if batch_first else np.ascontiguousarray(out.swapaxes(0, 1))


def pack_padded_sequence(input, lengths, batch_first: bool = False, enforce_sorted: bool = False) -> PackedSequence:
    lengths = np.asarray(lengths, dtype=np.int64)
    x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
    if batch_first:
        x = x.transpose(1, 0, 2) if x.ndim == 3 else x.transpose(1, 0)
    if lengths.shape != (x.shape[1],):
        raise ValueError(f"pack_padded_sequence: lengths has shape {lengths.shape}, expected ({x.shape[1]},)")
    if enforce_sorted and np.any(np.diff(lengths) > 0):
        raise ValueError("pack_padded_sequence: lengths must be sorted in decreasing order (enforce_sorted=True)")
    return PackedSequence(x, lengths, batch_first)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False):
    """-> (padded output, lengths); the output is zero past each sequence's end."""
    x = sequence.data
    if batch_first:
        x = x.transpose(1, 0, 2)
    return x, sequence.lengths


def detach_state(state):
    """Cut a recurrent state (a Tensor or a tuple of them) from the graph: truncated BPTT keeps the
    values across batches but stops the gradient at the batch boundary."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state.detach()
