"""Recurrent layers and embeddings with PyTorch's signatures, parameter names and gate order
(LSTM i, f, g, o; GRU r, z, n), so a PyTorch state dict converted to NumPy loads unchanged."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import init
from ..shapes import float_arg, int_arg, want_memory
from ..tensor import Tensor, as_tensor
from .module import Module, Parameter
from .utils import PackedSequence

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


class RNNBase(Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype=np.float32):
        super().__init__()
        cls = type(self).__name__
        input_size, hidden_size = int_arg(input_size, "input_size", cls, 1), int_arg(hidden_size, "hidden_size", cls, 1)
        num_layers = int_arg(num_layers, "num_layers", cls, 1)
        dropout = float_arg(dropout, "dropout", cls, 0.0, 1.0)
        g, dirs = _GATES[mode], 2 if bidirectional else 1
        # every weight counted before any is allocated: a size the machine cannot hold is refused here
        per_layer = dirs * g * hidden_size * (hidden_size + 2)
        want_memory(per_layer * num_layers + dirs * g * hidden_size * max(input_size, hidden_size * dirs),
                    np.dtype(dtype).itemsize, cls, "the weights")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        g = _GATES[mode]
        bound = 1.0 / math.sqrt(hidden_size)
        dirs = 2 if bidirectional else 1
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                isz = input_size if layer == 0 else hidden_size * dirs
                shapes = {"weight_ih": (g * hidden_size, isz), "weight_hh": (g * hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(g * hidden_size,), bias_hh=(g * hidden_size,))
                for name, shape in shapes.items():
                    p = Parameter(np.empty(shape, dtype))
                    init.uniform_(p, -bound, bound)  # PyTorch: U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias
                    setattr(self, name + sfx, p)

    def _params(self):
        dirs = 2 if self.bidirectional else 1
        out = []
        for layer in range(self.num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                out.append((getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx),
                            getattr(self, "bias_ih" + sfx) if self.bias else None,
                            getattr(self, "bias_hh" + sfx) if self.bias else None))
        return out

    def forward(self, input, hx=None, lengths=None):
        """input (T, B, F) or (B, T, F) with batch_first, or unbatched (T, F), or a PackedSequence;
        ``lengths`` (B,) makes steps past each sequence's end leave its state alone."""
        packed = isinstance(input, PackedSequence)
        if packed:
            lengths, input = input.lengths, input.data
        x = as_tensor(input)
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
            if hx is not None:
                hx = tuple(as_tensor(h).unsqueeze(1) for h in hx) if self.mode == "lstm" else as_tensor(hx).unsqueeze(1)
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__}: expected input (T, B, {self.input_size}), got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected input_size {self.input_size}, got shape {x.shape}")
        if self.mode == "lstm" and hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError("LSTM: hx must be a tuple (h0, c0)")
        bf = self.batch_first and not unbatched and not packed  # a PackedSequence holds time-major data
        out, state = F.rnn(self.mode, x, hx, self._params(), self.num_layers, self.bidirectional, bf, self.dropout,
                           self.training, lengths)
        if unbatched:
            out = out.squeeze(1)
            state = tuple(s.squeeze(1) for s in state) if self.mode == "lstm" else state.squeeze(1)
        if packed:
            out = PackedSequence(out, np.asarray(lengths), self.batch_first)
        return out, state

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)
        self.nonlinearity = nonlinearity


class GRU(RNNBase):
    """Gated recurrent unit, gates (r, z, n) as PyTorch."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype=np.float32):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype)


class LSTM(RNNBase):
    """Long short-term memory, gates (i, f, g, o) as PyTorch; returns output, (h_n, c_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype=np.float32):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype)


class _CellBase(Module):
    def __init__(self, mode, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__()
        cls = type(self).__name__
        input_size, hidden_size = int_arg(input_size, "input_size", cls, 1), int_arg(hidden_size, "hidden_size", cls, 1)
        want_memory(_GATES[mode] * hidden_size * (input_size + hidden_size + 2), np.dtype(dtype).itemsize, cls,
                    "the weights")
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        g = _GATES[mode]
        bound = 1.0 / math.sqrt(hidden_size)
        shapes = {"weight_ih": (g * hidden_size, input_size), "weight_hh": (g * hidden_size, hidden_size)}
        if bias:
            shapes.update(bias_ih=(g * hidden_size,), bias_hh=(g * hidden_size,))
        for name, shape in shapes.items():
            p = Parameter(np.empty(shape, dtype))
            init.uniform_(p, -bound, bound)
            setattr(self, name, p)

    def _step(self, x, h, c=None):
        x = as_tensor(x)
        unbatched = x.ndim == 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected input (B, {self.input_size}), got shape {x.shape}")
        zeros = lambda: Tensor(np.zeros((x.shape[0], self.hidden_size), x.dtype))  # noqa: E731
        h = zeros() if h is None else (as_tensor(h).unsqueeze(0) if unbatched else as_tensor(h))
        if self.mode == "lstm":
            c = zeros() if c is None else (as_tensor(c).unsqueeze(0) if unbatched else as_tensor(c))
        _, hn, cn = F.rnn_layer(self.mode, x.unsqueeze(0), h, c, self.weight_ih, self.weight_hh,
                                self.bias_ih if self.bias else None, self.bias_hh if self.bias else None)
        if unbatched:
            hn = hn.squeeze(0)
            cn = cn.squeeze(0) if cn is not None else None
        return hn, cn


class RNNCell(_CellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32):
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)[0]


class GRUCell(_CellBase):
    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("gru", input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)[0]


class LSTMCell(_CellBase):
    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("lstm", input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        h, c = (None, None) if hx is None else hx
        return self._step(input, h, c)


class Embedding(Module):
    """A lookup table weight (num_embeddings, embedding_dim), initialised N(0, 1) as PyTorch; the
    ``padding_idx`` row starts at zero and receives no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype=np.float32):
        super().__init__()
        num_embeddings = int_arg(num_embeddings, "num_embeddings", "Embedding", 1)
        embedding_dim = int_arg(embedding_dim, "embedding_dim", "Embedding", 1)
        if padding_idx is not None:
            padding_idx = int_arg(padding_idx, "padding_idx", "Embedding", None)
        want_memory(num_embeddings * embedding_dim, np.dtype(dtype).itemsize, "Embedding", "the weight")
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx must be within num_embeddings, got {padding_idx}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype))
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices):
        return F.embedding(indices, self.weight, self.padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None) -> "Embedding":
        """An Embedding whose weight is ``embeddings`` (V, D): a Tensor, an array, or
        ``text.KeyedVectors`` (their ``vectors``, rows in the vectors' word order).  ``freeze``: the
        weight gets no gradient.  As PyTorch's, the padding row keeps its given values; it receives
        no gradient."""
        from ..tensor import Tensor
        if hasattr(embeddings, "vectors") and hasattr(embeddings, "index_to_key"):
            embeddings = embeddings.vectors
        data = embeddings.data if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        if data.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D (num_embeddings, embedding_dim), "
                             f"got shape {data.shape}")
        if data.dtype not in (np.float32, np.float64):
            raise TypeError(f"Embedding.from_pretrained: embeddings must be float32 or float64, got {data.dtype}")
        m = cls(1, 1, dtype=data.dtype)
        v, d = data.shape
        if v < 1 or d < 1:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be non-empty, got shape {data.shape}")
        if padding_idx is not None:
            padding_idx = int_arg(padding_idx, "padding_idx", "Embedding.from_pretrained", None)
            if not -v <= padding_idx < v:
                raise ValueError(f"Embedding.from_pretrained: padding_idx must be within num_embeddings, got {padding_idx}")
        m.num_embeddings, m.embedding_dim = v, d
        m.padding_idx = None if padding_idx is None else padding_idx % v
        m.weight = Parameter(data, requires_grad=not freeze)
        return m

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
