"""one-to-many: see seqtasks.py."""
from __future__ import annotations

from .seqtasks import one_to_many


def run(quick: bool = False, out=print) -> dict:
    return one_to_many(quick, out)
