"""The one adapter between figures published per unit of the org tree (outcomes, drivers) and the engine's guard.

Outcome counts and driver relations are published per unit, rolled up, without attribute cuts. They go through
the same suppression as a wave's result cells (``scoring.guard``: primary and complementary suppression,
proven against an attacker told every region's sum), here with one row per person and the tree only. This module
is the only place that calls the guard for them: when the guard's interface changes, this is what changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.guard import suppress_partition
from scoring.layout import Statistic

__all__ = ["Counted", "TreeSuppression", "suppress_tree"]


@dataclass(frozen=True)
class Counted:
    """One published statistic over people: who counts in it and, for a bounded one, each person's value.

    ``present`` (n_people,) bool; ``values`` (n_people,) the per-person value (NaN where not present) or None for
    a count only (a sum whose per-person values are unknown, such as months waited); ``bounds`` the range of one
    person's value, for the guard's range rule, or None.
    """

    present: npt.NDArray[np.bool_]
    values: npt.NDArray[np.float64] | None = None
    bounds: tuple[float, float] | None = None
    name: str = ""


@dataclass(frozen=True)
class TreeSuppression:
    """Per unit: hidden or not, and why (``primary``, ``complementary``, ``range``, ``empty``; None if shown)."""

    hidden: npt.NDArray[np.bool_]  # (U,)
    reasons: tuple[str | None, ...]


def suppress_tree(
    parent: npt.ArrayLike,
    unit: npt.ArrayLike,
    k: int,
    statistics: Sequence[Counted],
    locked: npt.ArrayLike | None = None,
) -> TreeSuppression:
    """The guard's pattern over the units of a tree (totals only, no cuts).

    parent : (U,) parents first, -1 at a root.  unit : (n_people,) each person's own unit.
    k : the minimum group size.  statistics : every published statistic over those people.
    locked : (U,) units that must be hidden whatever their size (their reason reads ``complementary``).
    """
    p = np.asarray(parent, dtype=np.int64)
    members = np.asarray(unit, dtype=np.int64)
    suppression = suppress_partition(
        p,
        members,
        np.zeros((members.size, 0), dtype=np.int64),
        (),
        k,
        [Statistic(s.present, s.values, s.bounds, s.name) for s in statistics],
        None if locked is None else np.asarray(locked, dtype=np.bool_).reshape(-1, 1),
    )
    hidden = np.asarray(suppression.hidden, dtype=np.bool_)[:, 0]
    names: dict[int, str] = {}
    reasons: list[str | None] = []
    for u, (h, code) in enumerate(zip(hidden.tolist(), np.asarray(suppression.reason)[:, 0].tolist(), strict=True)):
        if h and code not in names:
            names[code] = suppression.reason_name(u, 0)
        reasons.append(names[code] if h else None)
    return TreeSuppression(hidden, tuple(reasons))
