"""Human-readable dates and their ISO form (YYYY-MM-DD), the curriculum's neural machine
translation exercise; made with the standard library only, seeded, any count.

Conventions the model has to learn: a dotted date is day first ("10.11.19" = 2019-11-10), a
slashed one month first ("5/30/86" = 1986-05-30); a two-digit year yy means 19yy from 50 up and
20yy below (dates run from 1950 to 2049).
"""
from __future__ import annotations

import datetime
import random

__all__ = ["FORMATS", "human_date", "date_pairs"]

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


FORMATS = {
    "d month yyyy": lambda d, m, wd: f"{d.day} {m} {d.year}",              # 9 may 1998
    "dd month yyyy": lambda d, m, wd: f"{d.day:02d} {m} {d.year}",         # 09 may 1998
    "d mon yyyy": lambda d, m, wd: f"{d.day} {m[:3]} {d.year}",            # 9 may 1998 / 3 mar 2001
    "d month, yyyy": lambda d, m, wd: f"{d.day} {m}, {d.year}",            # 9 may, 1998
    "dd.mm.yy": lambda d, m, wd: f"{d.day:02d}.{d.month:02d}.{d.year % 100:02d}",  # 10.11.19
    "d.m.yyyy": lambda d, m, wd: f"{d.day}.{d.month}.{d.year}",            # 9.5.1998
    "weekday month d yyyy": lambda d, m, wd: f"{wd} {m} {d.day} {d.year}",  # saturday april 28 1990
    "month d, yyyy": lambda d, m, wd: f"{m} {d.day}, {d.year}",            # march 3, 2001
    "mon d yyyy": lambda d, m, wd: f"{m[:3]} {d.day} {d.year}",            # mar 3 2001
    "weekday, month d, yyyy": lambda d, m, wd: f"{wd}, {m} {d.day}, {d.year}",  # tuesday, december 8, 1987
    "m/d/yy": lambda d, m, wd: f"{d.month}/{d.day}/{d.year % 100:02d}",    # 5/30/86
    "mm/dd/yyyy": lambda d, m, wd: f"{d.month:02d}/{d.day:02d}/{d.year}",  # 05/30/1986
    "dth of month yyyy": lambda d, m, wd: f"{_ordinal(d.day)} of {m} {d.year}",  # 3rd of march 2001
    "the dth of month, yyyy": lambda d, m, wd: f"the {_ordinal(d.day)} of {m}, {d.year}",
    "weekday d month yyyy": lambda d, m, wd: f"{wd} {d.day} {m} {d.year}",  # thursday 3 march 2001
    "yyyy-mm-dd": lambda d, m, wd: d.isoformat(),                          # already ISO
}

_FIRST, _LAST = datetime.date(1950, 1, 1).toordinal(), datetime.date(2049, 12, 31).toordinal()


def human_date(d: datetime.date, fmt: str) -> str:
    """``d`` written in the format named ``fmt`` (a key of :data:`FORMATS`), lowercase."""
    if fmt not in FORMATS:
        raise ValueError(f"human_date: fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
    return FORMATS[fmt](d, _MONTHS[d.month - 1], _DAYS[d.weekday()])


def date_pairs(n: int, seed: int = 0, formats=None) -> list:
    """``n`` pairs ``(human, iso)`` of random dates between 1950 and 2049 in random formats."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"date_pairs: n must be a non-negative integer, got {n!r}")
    names = sorted(FORMATS) if formats is None else list(formats)
    for f in names:
        if f not in FORMATS:
            raise ValueError(f"date_pairs: unknown format {f!r}; known: {sorted(FORMATS)}")
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        d = datetime.date.fromordinal(rnd.randint(_FIRST, _LAST))
        out.append((human_date(d, rnd.choice(names)), d.isoformat()))
    return out
