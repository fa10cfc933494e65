"""Withholding a statistic, not the whole cell: the guard on the result cells in two stages.

A result cell publishes about fifty statistics (its respondents, each construct's score and favourable share,
eNPS, every item). Guarding them all on one pattern hides a whole cell when any one of them fails: an item one
team member skipped (1 to k-1 answers) hid the team's construct means too, and their partners with them. So the
decision is taken twice:

1. **Core** (``core_statistics``: the respondents and each construct's score) decides which cells are published.
   A cell counts as published when its ``n`` and construct means are.
2. **Details** (``detail_statistics``: favourable shares, eNPS, every item) are guarded again with every cell
   stage 1 hides locked hidden (``suppress_partition(..., locked=...)``). Where stage 2 hides more, the cell
   stays published and only those statistics are withheld (marked ``suppressed`` with stage 2's reason).

Why this is sound. The attacker model of ``scoring.layout`` (and the stronger one of ``scoring.guard``) treats
each statistic's sums as a linear system of its own, with every ``n`` known: rules (a), (b) and (c) are stated
and checked per statistic, and no equation mixes two statistics. A pattern is therefore safe for a set of
statistics exactly when it is safe for each of them on its own, and nothing forces two statistics onto one
pattern. Stage 1's pattern is safe for the core statistics (the guard's own audit passes it for them), stage 2's
for the details; each statistic is published on the pattern it was audited with, and nothing else. Stage 2
hides everything stage 1 hides, so a withheld cell never publishes a detail, and a cell's ``n`` (a core number)
is published only where stage 1 publishes it. Everything derived from details (the eNPS change and flags,
barrier flags, reliability, drivers) is published only where the details of the cells it rests on are.

Rebuilds (``hidden_before``): stage 1 keeps hidden what the stored table hid, stage 2 what it hid or withheld,
so two builds together never publish a statistic the first withheld.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.guard import prepare, suppress_partition, suppress_prepared
from scoring.layout import Statistic, Suppression
from scoring.scales import Scores
from scoring.spec import SCALE_BOUNDS, WaveData

__all__ = ["Guarded", "core_statistics", "detail_statistics", "guard_cells"]

SCALED = ("likert5", "likert7", "nps")


@dataclass(frozen=True)
class Guarded:
    """The two-stage decision over the result cells, both ``(U, W)``.

    ``cells``: stage 1, which cells are published (their ``n`` and construct means). ``details``: stage 2, in
    which cells the detail statistics are shown; it hides every cell ``cells`` hides, and where it hides a cell
    ``cells`` publishes, that cell's details are withheld for ``details.reason``.
    """

    cells: Suppression
    details: Suppression

    @property
    def withheld(self) -> npt.NDArray[np.bool_]:
        """(U, W) published cells whose detail statistics are withheld."""
        return np.asarray(self.details.hidden, dtype=np.bool_) & ~np.asarray(self.cells.hidden, dtype=np.bool_)


def core_statistics(data: WaveData, scores: Scores) -> list[Statistic]:
    """The respondent count and each construct's score (on its scale): what decides that a cell is published."""
    r = data.answers.shape[0]
    found = [Statistic(np.ones(r, dtype=np.bool_), None, None, "respondents")]
    for j, construct in enumerate(data.instrument.constructs):
        low, high = SCALE_BOUNDS[construct.scale]
        found.append(Statistic(scores.counted[:, j], scores.score[:, j], (float(low), float(high)), construct.id))
    return found


def detail_statistics(data: WaveData, scores: Scores) -> list[Statistic]:
    """Each construct's favourable 0/1, eNPS (+1/0/-1), each scaled item's answers, each ``single`` and ``multi``
    item's answered mark: what a published cell may withhold on its own."""
    found: list[Statistic] = []
    for j, construct in enumerate(data.instrument.constructs):
        counted = scores.counted[:, j]
        favourable = np.where(counted, scores.favourable[:, j], np.nan)
        found.append(Statistic(counted, favourable, (0.0, 1.0), f"{construct.id}:favourable"))
    if scores.enps is not None:
        found.append(Statistic(~np.isnan(scores.enps), scores.enps, (-1.0, 1.0), "enps:score"))
    for j, item in enumerate(data.instrument.items):
        if item.type in SCALED:
            x = data.answers[:, j]
            low, high = SCALE_BOUNDS[item.type]
            found.append(Statistic(~np.isnan(x), x, (float(low), float(high)), f"item:{item.id}"))
        elif item.type == "single":
            found.append(Statistic(~np.isnan(data.answers[:, j]), None, None, f"item:{item.id}"))
        elif item.type == "multi":
            answered = np.asarray(data.multi_answered[item.id], dtype=np.bool_)
            found.append(Statistic(answered, None, None, f"item:{item.id}"))
    return found


def codes(data: WaveData) -> npt.NDArray[np.int64]:
    """(R, A) each respondent's value code of every attribute."""
    r = data.answers.shape[0]
    if not data.attributes:
        return np.zeros((r, 0), dtype=np.int64)
    return np.stack([np.asarray(a.codes, dtype=np.int64) for a in data.attributes], axis=1)


def guard_cells(
    data: WaveData,
    scores: Scores,
    hidden_before: npt.NDArray[np.bool_] | None = None,
    withheld_before: npt.NDArray[np.bool_] | None = None,
) -> Guarded:
    """The wave's decision over all result cells (units x total and attribute values), in two stages.

    ``hidden_before`` (U, W): cells a stored build of the table hid, kept hidden by stage 1. ``withheld_before``
    (U, W): cells whose details the stored build hid or withheld, kept hidden by stage 2.
    """
    args = (
        np.asarray(data.tree.parent, dtype=np.int64),
        np.asarray(data.unit, dtype=np.int64),
        codes(data),
        tuple(len(a.values) for a in data.attributes),
        data.min_group_size,
    )
    details_guarded = detail_statistics(data, scores)
    if not details_guarded:
        cells = suppress_partition(*args, core_statistics(data, scores), hidden_before)
        return Guarded(cells, cells)
    # Stage 2's problem needs no pattern: it is made on a thread of its own while stage 1 decides.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="peil-details") as pool:
        problem = pool.submit(prepare, *args, details_guarded)
        cells = suppress_partition(*args, core_statistics(data, scores), hidden_before)
        details_problem = problem.result()
    before = hidden_before if withheld_before is None else withheld_before  # a table stored before stage 2
    locked = np.asarray(cells.hidden, dtype=np.bool_)
    return Guarded(cells, suppress_prepared(details_problem, before, locked=locked))
