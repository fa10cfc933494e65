"""Periods of outcomes: a month (``2026-03``) or a quarter (``2026-Q1``), with their first and last day."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

_PATTERN = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")


@dataclass(frozen=True, order=True)
class Period:
    """Ordered by first day, then last day (a month before the quarter that starts with it)."""

    starts_on: date
    ends_on: date  # the last day
    name: str
    kind: Literal["month", "quarter"]

    @property
    def start(self) -> datetime:
        """Midnight UTC at the start of the first day."""
        return datetime(self.starts_on.year, self.starts_on.month, self.starts_on.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Midnight UTC after the last day (the period is ``start <= t < end``)."""
        after = self.ends_on + timedelta(days=1)
        return datetime(after.year, after.month, after.day, tzinfo=UTC)


def parse(text: str) -> Period:
    """``2026-03`` (March 2026) or ``2026-Q1`` (January to March 2026); ValueError otherwise."""
    found = _PATTERN.match(text)
    if found is None or not 1900 <= int(found.group(1)) <= 2999:
        raise ValueError(f"{text!r} is not a period: give a month as 2026-03 or a quarter as 2026-Q1")
    year = int(found.group(1))
    kind: Literal["month", "quarter"] = "month" if found.group(2) is not None else "quarter"
    first = int(found.group(2)) if kind == "month" else 3 * int(found.group(3)) - 2
    last = first if kind == "month" else first + 2
    following = date(year + 1, 1, 1) if last == 12 else date(year, last + 1, 1)
    return Period(date(year, first, 1), following - timedelta(days=1), text, kind)
