"""Differentiable ops on the backend's kernel table, with PyTorch's signatures (one file per family)."""
from __future__ import annotations

from .activation import *  # noqa: F401,F403
from .activation import __all__ as _activation
from .attention import *  # noqa: F401,F403
from .attention import __all__ as _attention
from .basic import *  # noqa: F401,F403
from .basic import __all__ as _basic
from .conv import *  # noqa: F401,F403
from .conv_more import *  # noqa: F401,F403
from .conv_more import __all__ as _conv_more
from .conv import __all__ as _conv
from .maths import *  # noqa: F401,F403
from .maths import __all__ as _maths
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses
from .resize import *  # noqa: F401,F403
from .resize import __all__ as _resize
from .norm import *  # noqa: F401,F403
from .norm import __all__ as _norm
from .rnn import *  # noqa: F401,F403
from .rnn import __all__ as _rnn

__all__ = _basic + _activation + _losses + _resize + _maths + _conv + _conv_more + _norm + _rnn + _attention
