"""Drivers and focus areas: how strongly each construct goes with eNPS and with the intention to stay, per unit.

A *driver* is the Pearson correlation, at respondent level, between a construct score and an outcome among the
unit's respondents (its whole subtree) who have both, with a 95 % interval through Fisher's z
(``tanh(atanh(r) -+ 1.96 / sqrt(n - 3))``). The outcomes: eNPS (the 0-10 answer of the instrument's eNPS
construct) and the intention to stay (the answer to ``INTENTION_TO_STAY``, "I see myself still working here two
years from now", where the instrument has it). The eNPS construct itself is no driver, nor a construct that
contains the outcome's own item (it would correlate with itself).

Published only for units whose result cell is published, for pairs with at least ``MIN_N`` respondents (below
that a correlation says little), and only where the guard passes the respondents behind each pair on the tree
(``scoring.tree_guard``, the units with no pair of ``MIN_N`` locked hidden): whatever anyone subtracts across
published units, the people it describes are none or at least ``min_group_size``. Correlations are not part of
the guard's range rule (they are not means on a scale).

A *focus area* of a unit, for an outcome, is a construct that is both

- strongly related to the outcome: r >= ``STRONG`` (0.3) and its interval above 0, and
- low against the organisation: its 0-100 index in the unit below the organisation's index of the same
  construct (for the organisation itself: below the mean index of its constructs),

ranked by priority = r x (baseline index - unit index): how far it lags, weighted by how much it goes with
the outcome. A correlation is not a cause; a focus area says where a lever is likely to matter, not that it
will.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.rollup import TreePlan
from scoring.scales import Scores
from scoring.spec import WaveData
from scoring.tree_guard import Counted, suppress_tree

__all__ = [
    "INTENTION_TO_STAY",
    "MIN_N",
    "STRONG",
    "Correlations",
    "Drivers",
    "FocusArea",
    "Relation",
    "correlations",
    "drivers",
    "wave_correlations",
]

INTENTION_TO_STAY = "ca_future_here"
MIN_N = 30
STRONG = 0.3
_Z975 = 1.959963984540054

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Relation:
    """A construct's correlation with an outcome in a unit; ``r`` and its interval null below ``MIN_N``."""

    unit: str
    outcome: str
    construct: str
    n: int
    r: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class FocusArea:
    """A construct that lags and goes with the outcome: ``index`` in the unit, ``baseline`` (the organisation's
    index, or the organisation's mean index at the top), ``gap = index - baseline`` (< 0), ``priority`` =
    r x -gap; ``rank`` 1 is the first to look at."""

    unit: str
    outcome: str
    rank: int
    construct: str
    r: float
    ci_low: float
    ci_high: float
    index: float
    baseline: float
    gap: float
    priority: float


_RELATION = tuple(f.name for f in fields(Relation))
_FOCUS = tuple(f.name for f in fields(FocusArea))


@dataclass(frozen=True)
class Drivers:
    """Every published relation and focus area of a table, by unit (in tree order), then outcome."""

    relations: tuple[Relation, ...] = ()
    focus_areas: tuple[FocusArea, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "relations": [[getattr(r, f) for f in _RELATION] for r in self.relations],
            "focus_areas": [[getattr(a, f) for f in _FOCUS] for a in self.focus_areas],
            "fields": {"relations": list(_RELATION), "focus_areas": list(_FOCUS)},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Drivers:
        if not d:
            return cls()
        return cls(
            tuple(Relation(*row) for row in d["relations"]),
            tuple(FocusArea(*row) for row in d["focus_areas"]),
        )


@dataclass(frozen=True, eq=False)
class Correlations:
    """Per unit (U) and pair (P: an outcome and a construct): respondents with both, r, its interval, and which
    units the guard lets show them (before the result cells' own pattern is applied)."""

    pairs: tuple[tuple[str, int], ...]  # (outcome, construct index)
    n: npt.NDArray[np.int64]  # (U, P)
    r: FloatArray  # (U, P), NaN below MIN_N or without spread
    ci_low: FloatArray
    ci_high: FloatArray
    shown: npt.NDArray[np.bool_]  # (U,)


def correlations(
    plan: TreePlan,
    unit: npt.ArrayLike,
    scores: npt.ArrayLike,
    outcomes: Mapping[str, npt.ArrayLike],
    pairs: Sequence[tuple[str, int]],
    min_group_size: int,
) -> Correlations:
    """Pearson r of construct scores (R, C) with each outcome (R,) over every unit's subtree, for each pair
    (outcome, construct column), from the respondents who have both (NaN marks a missing value).

    Sums are taken per unit around the pair's overall means, rolled up the tree, then
    r = (n Sxy - Sx Sy) / sqrt((n Sxx - Sx^2)(n Syy - Sy^2)); Fisher z interval where n >= ``MIN_N``.
    """
    members = np.asarray(unit, dtype=np.int64)
    x_all = np.asarray(scores, dtype=np.float64)
    sums = np.zeros((plan.size, len(pairs), 6))
    statistics = []
    for p, (outcome, j) in enumerate(pairs):
        x, y = x_all[:, j], np.asarray(outcomes[outcome], dtype=np.float64)
        both = np.isfinite(x) & np.isfinite(y)
        statistics.append(Counted(both, None, None, f"{outcome}:{j}"))
        if not both.any():
            continue
        xc, yc, at = x[both] - x[both].mean(), y[both] - y[both].mean(), members[both]
        for s, w in enumerate((np.ones(at.size), xc, yc, xc * xc, yc * yc, xc * yc)):
            sums[:, p, s] = np.bincount(at, weights=w, minlength=plan.size)
    n, sx, sy, sxx, syy, sxy = np.moveaxis(plan.rollup(sums), -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (n * sxy - sx * sy) / np.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))
        r = np.where(n >= MIN_N, np.clip(r, -1.0, 1.0), np.nan)
        z, half = np.arctanh(r), _Z975 / np.sqrt(n - 3)
        low, high = np.tanh(z - half), np.tanh(z + half)
    counts = np.rint(n).astype(np.int64)
    few = ~(counts >= MIN_N).any(axis=1) if pairs else np.ones(plan.size, dtype=np.bool_)
    guard = suppress_tree(plan.parent, members, min_group_size, statistics, locked=few) if pairs else None
    shown = ~few if guard is None else ~guard.hidden
    return Correlations(tuple(pairs), counts, r, low, high, shown)


def wave_correlations(data: WaveData, scores: Scores, plan: TreePlan) -> Correlations:
    """``correlations`` for a wave: its constructs (but the eNPS one) with eNPS and, where the instrument has
    ``INTENTION_TO_STAY``, with the intention to stay."""
    outcomes: dict[str, FloatArray] = {}
    skip: dict[str, set[int]] = {}
    if scores.enps_construct is not None:
        outcomes["enps"] = scores.score[:, scores.enps_construct]
        skip["enps"] = set()
    items = [item.id for item in data.instrument.items]
    if INTENTION_TO_STAY in items:
        outcomes["intention_to_stay"] = data.answers[:, items.index(INTENTION_TO_STAY)]
        skip["intention_to_stay"] = {
            j for j, c in enumerate(data.instrument.constructs) if INTENTION_TO_STAY in c.items
        }
    pairs = [
        (outcome, j)
        for outcome in outcomes
        for j, construct in enumerate(data.instrument.constructs)
        if construct.scale != "nps" and j not in skip[outcome]
    ]
    return correlations(plan, data.unit, scores.score, outcomes, pairs, data.min_group_size)


def _plain(x: FloatArray) -> list[list[Any]]:
    """Rows of Python floats, None where NaN (undefined: null in the table)."""
    out = x.astype(object)
    out[np.isnan(x)] = None
    rows: list[list[Any]] = out.tolist()
    return rows


def drivers(
    found: Correlations,
    plan: TreePlan,
    keys: Sequence[str],
    constructs: Sequence[str],
    published: npt.ArrayLike,
    index: npt.ArrayLike,
) -> Drivers:
    """The relations and focus areas a table publishes: in units whose result cell is ``published`` (U,) and
    whose drivers the guard shows; ``index`` (U, C) is the published 0-100 index of every unit and construct."""
    shown = np.flatnonzero(found.shown & np.asarray(published, dtype=np.bool_))
    idx = np.asarray(index, dtype=np.float64)
    # Python numbers of the shown units, read once (indexing numpy arrays element by element is slow)
    r, low, high = (_plain(a[shown]) for a in (found.r, found.ci_low, found.ci_high))
    n = found.n[shown].tolist()
    outcomes = {o: [p for p, (other, _) in enumerate(found.pairs) if other == o] for o, _ in found.pairs}
    relations: list[Relation] = []
    focus: list[FocusArea] = []
    for i, u in enumerate(shown.tolist()):
        for outcome, pairs in outcomes.items():
            candidates = []
            for p in pairs:
                j = found.pairs[p][1]
                relations.append(Relation(keys[u], outcome, constructs[j], n[i][p], r[i][p], low[i][p], high[i][p]))
                if r[i][p] is not None and r[i][p] >= STRONG and low[i][p] > 0:
                    candidates.append((j, r[i][p], low[i][p], high[i][p]))
            if not candidates:
                continue
            ranked = _focus(candidates, idx, u, int(plan.root[u]), [found.pairs[p][1] for p in pairs])
            focus += [
                FocusArea(keys[u], outcome, rank, constructs[j], *figures)
                for rank, (j, *figures) in enumerate(ranked, start=1)
            ]
    return Drivers(tuple(relations), tuple(focus))


def _focus(
    candidates: list[tuple[int, float, float, float]], index: FloatArray, u: int, root: int, drivers: list[int]
) -> list[tuple[int, float, float, float, float, float, float, float]]:
    """The strong candidates (construct, r, interval) that lag their baseline, first the highest priority (r x
    lag): construct, r, ci_low, ci_high, index, baseline, gap, priority."""
    row = index[root, drivers]
    own_mean = float(np.mean(row[np.isfinite(row)])) if np.isfinite(row).any() else math.nan
    found = []
    for j, r, low, high in candidates:
        baseline = own_mean if u == root else float(index[root, j])
        gap = float(index[u, j]) - baseline
        if math.isfinite(gap) and gap < 0:
            found.append((j, r, low, high, float(index[u, j]), baseline, gap, r * -gap))
    return sorted(found, key=lambda f: (-f[7], f[0]))
