"""many-to-one: see seqtasks.py."""
from __future__ import annotations

from .seqtasks import many_to_one


def run(quick: bool = False, out=print) -> dict:
    return many_to_one(quick, out)
