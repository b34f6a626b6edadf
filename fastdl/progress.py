"""Progress bars: tqdm when it is installed and asked for (default: when stderr is a terminal)."""
from __future__ import annotations

import sys


def progress_bar(total, desc, enabled):
    """A tqdm bar of ``total`` steps, or None (not enabled, or tqdm not installed)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
