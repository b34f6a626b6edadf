"""many-to-many: see seqtasks.py."""
from __future__ import annotations

from .seqtasks import many_to_many


def run(quick: bool = False, out=print) -> dict:
    return many_to_many(quick, out)
