"""Mobility outcomes per unit and period: counts HR already has, rolled up the tree, turned into the KPIs, guarded.

HR gives, per unit and period, counts of its own members (never people): headcount at the start and the end,
leavers, internal moves in and out, promotions, and the months those promoted had waited (a sum). A unit's
figures include every unit below it: the counts are summed up the tree first, then divided (never an average
of the teams' rates):

    mean headcount       H = (headcount_start + headcount_end) / 2
    retention            1 - leavers / H
    internal mobility    moves_out / H           (a move counted once, at the unit the person left)
    time to promotion    months_waited / promotions   (months)

The guard. A figure resting on fewer than ``min_group_size`` people is hidden, with complementary suppression
so that a parent minus its shown children cannot reveal it (``scoring.tree_guard``: the survey cells' guard on
the tree alone). The people a unit's rates rest on are, per unit of its subtree, the larger of its two
headcounts (at least that many people were there during the period), one row each for the guard. Every count
published with the rates (leavers, moves, promotions) is a sum over those same rows, so the guard's two rules
on sums hold for all of them at once: no hidden unit's sum and no sum over fewer than ``min_group_size`` people
can be worked out from the shown units. Its third rule, that a hidden mean may not be pinned within a quarter of
its scale, is not applied: leaving, moving and promotion are rare events, so the share of any hidden group is
always narrow ("at most 2 of these 14 left") and the rule would hide every complement; what that tells is of
the kind DESIGN.md accepts (a group in which nobody left shows that nobody left).

Time to promotion rests on the promoted: one row per promotion, the months waited a sum whose per-person values
are unknown. It is shown only in a unit whose rates are shown, and hidden with its own complementary suppression
(the units whose rates are hidden locked hidden) when fewer than ``min_group_size`` were promoted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.rollup import tree_plan
from scoring.spec import OrgTree
from scoring.tree_guard import Counted, suppress_tree

__all__ = [
    "COUNTS",
    "OutcomeCell",
    "OutcomeCounts",
    "OutcomeTable",
    "count_problems",
    "counts_from_rows",
    "internal_mobility",
    "outcome_table",
    "retention",
    "time_to_promotion",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

COUNTS = ("headcount_start", "headcount_end", "leavers", "moves_in", "moves_out", "promotions", "months_waited")
"""The counts HR gives per unit and period, in this order (``months_waited`` may be fractional)."""

_AT_MOST_HEADCOUNT = ("leavers", "moves_in", "moves_out", "promotions")


@dataclass(frozen=True)
class OutcomeCounts:
    """Direct counts per unit (a unit's own members, not its subtree): each (U,), in the order of the tree."""

    headcount_start: IntArray
    headcount_end: IntArray
    leavers: IntArray
    moves_in: IntArray
    moves_out: IntArray
    promotions: IntArray
    months_waited: FloatArray

    def column(self, name: str) -> npt.NDArray[Any]:
        return np.asarray(getattr(self, name))


def count_problems(counts: Mapping[str, npt.ArrayLike]) -> list[tuple[int, str, str]]:
    """Every problem of rows of counts, as (row index, field, reason); empty when all rows are valid.

    Rules: no count is negative or missing; leavers, moves in, moves out and promotions are each at most the
    row's larger headcount (more cannot have happened among the people there); months waited are given only
    with promotions. ``counts`` maps each of ``COUNTS`` to an array of rows.
    """
    x = {name: np.asarray(counts[name], dtype=np.float64) for name in COUNTS}
    rows = {a.shape for a in x.values()}
    if len(rows) != 1 or len(next(iter(rows))) != 1:
        raise ValueError("every count must be a one-dimensional array of the same length")
    found: list[tuple[int, str, str]] = []
    for name in COUNTS:
        for i in np.flatnonzero(~np.isfinite(x[name])).tolist():
            found.append((i, name, "must be a number"))
        for i in np.flatnonzero(x[name] < 0).tolist():
            found.append((i, name, "must not be negative"))
    headcount = np.maximum(x["headcount_start"], x["headcount_end"])
    for name in _AT_MOST_HEADCOUNT:
        for i in np.flatnonzero(x[name] > headcount).tolist():
            found.append(
                (i, name, f"{x[name][i]:g} {name.replace('_', ' ')} is more than the headcount ({headcount[i]:g})")
            )
    for i in np.flatnonzero((x["months_waited"] > 0) & (x["promotions"] == 0)).tolist():
        found.append((i, "months_waited", "months waited are given but nobody was promoted"))
    return sorted(found)


def retention(leavers: npt.ArrayLike, mean_headcount: npt.ArrayLike) -> FloatArray:
    """1 - leavers / mean headcount; NaN where the mean headcount is 0.

    >>> retention(3, (40 + 38) / 2).round(4).tolist()
    0.9231
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.asarray(mean_headcount, dtype=np.float64)
        return np.where(h > 0, 1 - np.asarray(leavers, dtype=np.float64) / h, np.nan)


def internal_mobility(moves_out: npt.ArrayLike, mean_headcount: npt.ArrayLike) -> FloatArray:
    """Internal moves out / mean headcount; NaN where the mean headcount is 0.

    >>> internal_mobility(2, 39.0).round(4).tolist()
    0.0513
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.asarray(mean_headcount, dtype=np.float64)
        return np.where(h > 0, np.asarray(moves_out, dtype=np.float64) / h, np.nan)


def time_to_promotion(months_waited: npt.ArrayLike, promotions: npt.ArrayLike) -> FloatArray:
    """Months waited / promotions (mean months to promotion); NaN without promotions.

    >>> time_to_promotion(75.0, 5).tolist()
    15.0
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.asarray(promotions, dtype=np.float64)
        return np.where(p > 0, np.asarray(months_waited, dtype=np.float64) / p, np.nan)


@dataclass(frozen=True)
class OutcomeCell:
    """One unit's outcomes over a period, rolled up. Hidden (``suppressed``): no numbers at all.

    In a shown cell, ``time_to_promotion`` may still be hidden on its own (``promotion_reason``: ``primary``,
    fewer than ``min_group_size`` promoted; ``complementary``; ``empty``: nobody was promoted).
    """

    unit: str
    parent: str | None
    suppressed: bool
    reason: str | None
    headcount_start: int | None = None
    headcount_end: int | None = None
    mean_headcount: float | None = None
    leavers: int | None = None
    moves_in: int | None = None
    moves_out: int | None = None
    promotions: int | None = None
    retention: float | None = None
    internal_mobility: float | None = None
    time_to_promotion: float | None = None
    promotion_reason: str | None = None


_CELL_FIELDS = tuple(f.name for f in fields(OutcomeCell))


@dataclass(frozen=True)
class OutcomeTable:
    """The published outcomes of one period: one cell per unit, parents first. JSON: ``to_dict``/``from_dict``."""

    period: str
    min_group_size: int
    cells: tuple[OutcomeCell, ...]

    def cell(self, unit_key: str) -> OutcomeCell:
        """The unit's cell; KeyError if the period's table does not know the unit."""
        for c in self.cells:
            if c.unit == unit_key:
                return c
        raise KeyError(unit_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "min_group_size": self.min_group_size,
            "cells": [{name: getattr(c, name) for name in _CELL_FIELDS} for c in self.cells],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutcomeTable:
        return cls(d["period"], d["min_group_size"], tuple(OutcomeCell(**c) for c in d["cells"]))


def _people(per_unit: IntArray, name: str) -> tuple[IntArray, list[Counted]]:
    """One row per person for the guard (each row's unit) and the one statistic over them all: every figure
    published about them is a sum over these rows."""
    unit = np.repeat(np.arange(per_unit.size, dtype=np.int64), per_unit)
    return unit, [Counted(np.ones(unit.size, dtype=np.bool_), None, None, name)]


def _checked(tree: OrgTree, counts: OutcomeCounts) -> dict[str, FloatArray]:
    columns = {name: np.asarray(counts.column(name), dtype=np.float64) for name in COUNTS}
    if any(c.shape != (len(tree.keys),) for c in columns.values()):
        raise ValueError("every count must have one entry per unit of the tree")
    problems = count_problems(columns)
    if problems:
        i, name, reason = problems[0]
        raise ValueError(f"unit {tree.keys[i]}: {name}: {reason}")
    return columns


def outcome_table(period: str, tree: OrgTree, counts: OutcomeCounts, min_group_size: int) -> OutcomeTable:
    """The guarded outcomes of one period for every unit of ``tree`` (see the module docstring).

    Parameters
    ----------
    period : the period's name (e.g. ``2026-03`` or ``2026-Q1``), carried into the table.
    tree : the org tree, parents first.
    counts : direct counts per unit (a unit without counts has zeros).
    min_group_size : k, at least 1.
    """
    if min_group_size < 1:
        raise ValueError("min_group_size must be positive")
    x = _checked(tree, counts)
    plan = tree_plan(tree.parent)
    total = {name: plan.rollup(x[name]) for name in COUNTS}
    people = np.maximum(x["headcount_start"], x["headcount_end"]).astype(np.int64)
    unit, statistics = _people(people, "headcount")
    rates = suppress_tree(tree.parent, unit, min_group_size, statistics)
    promoted, statistics = _people(x["promotions"].astype(np.int64), "months_waited")
    promotion = suppress_tree(tree.parent, promoted, min_group_size, statistics, locked=rates.hidden)

    mean_headcount = (total["headcount_start"] + total["headcount_end"]) / 2
    kept = retention(total["leavers"], mean_headcount)
    moving = internal_mobility(total["moves_out"], mean_headcount)
    waited = time_to_promotion(total["months_waited"], total["promotions"])
    whole = {name: total[name].round().astype(np.int64).tolist() for name in _AT_MOST_HEADCOUNT}
    whole |= {name: total[name].round().astype(np.int64).tolist() for name in ("headcount_start", "headcount_end")}
    cells = []
    for u, key in enumerate(tree.keys):
        parent = None if tree.parent[u] < 0 else tree.keys[int(tree.parent[u])]
        if rates.hidden[u]:
            cells.append(OutcomeCell(key, parent, True, rates.reasons[u]))
            continue
        shown_promotion = not promotion.hidden[u]
        cells.append(
            OutcomeCell(
                key,
                parent,
                False,
                None,
                **{name: whole[name][u] for name in whole},
                mean_headcount=float(mean_headcount[u]),
                retention=_num(kept[u]),
                internal_mobility=_num(moving[u]),
                time_to_promotion=_num(waited[u]) if shown_promotion else None,
                promotion_reason=None if shown_promotion else promotion.reasons[u],
            )
        )
    return OutcomeTable(period, min_group_size, tuple(cells))


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def counts_from_rows(n_units: int, unit: Sequence[int], rows: Mapping[str, npt.ArrayLike]) -> OutcomeCounts:
    """Direct counts per unit from rows of counts (``unit``: each row's unit index; at most one row per unit;
    a unit without a row has zeros)."""
    index = np.asarray(unit, dtype=np.int64)
    if np.unique(index).size != index.size:
        raise ValueError("at most one row per unit")
    out: dict[str, npt.NDArray[Any]] = {}
    for name in COUNTS:
        column = np.zeros(n_units, dtype=np.float64 if name == "months_waited" else np.int64)
        column[index] = np.asarray(rows[name])
        out[name] = column
    return OutcomeCounts(**out)
