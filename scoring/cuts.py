"""Suppression for tables too large for the exact guard over cuts: totals guarded exactly, cuts only where safe.

The exact guard (``scoring.guard.suppress``) over totals *and* one-attribute cuts is exact but its audit grows
much faster than the table: on an organisation of 2,000 respondents in 170 units with two attributes it runs for
many minutes. Above ``EXACT_CUTS_LIMIT`` the wave's cells are decided in two steps that keep every rule:

1. The unit totals go through the exact guard on their own (no attributes): rules (a), (b) and (c) hold for
   every statistic among the totals.
2. A cut cell is published only when it carries no information beyond published totals, so the attacker's
   system (the published rows) is exactly the one the guard audited in step 1:

   - the cut holds the same respondents as its unit's total (everyone in the unit has that value), and the total
     is published: the same figures, nothing new;
   - the cut is a union of whole direct-member groups each of whose sums the published totals already determine
     (a group's sum is determined when its unit's total and all its children's totals are published; the guard
     has made every determined group empty or at least k people): again nothing new.

   Every other non-empty cut is hidden (``complementary``). Such a cut either splits a direct-member group
   (published totals are constant over each group's members, so they never determine a cut that splits one), or
   it is a union of whole groups one of which the totals don't determine on its own.

Limits, compared with the exact guard: attribute cuts are published far less often; a hidden union of whole
groups could in principle be determined by a combination of totals even though one of its groups is not (it is
then a sum of published figures, at least k people, not a secret); and rule (c) is checked for the hidden totals,
not for the hidden cuts inside a published total (DESIGN.md's accepted limit: a published group whose members all
gave the same answer reveals it for every subgroup).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scoring.guard import COMPLEMENTARY, EMPTY, PUBLISHED, Statistic, Suppression, suppress
from scoring.rollup import tree_plan

__all__ = ["EXACT_CUTS_LIMIT", "suppress_totals_first"]

EXACT_CUTS_LIMIT = 600
"""Respondents above which cuts are decided by ``suppress_totals_first`` instead of the exact guard."""


def suppress_totals_first(
    parent: npt.NDArray[np.int64],
    unit: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    n_values: tuple[int, ...],
    k: int,
    statistics: list[Statistic],
) -> Suppression:
    """Totals by the exact guard, cuts published only where they add nothing (see the module docstring).

    Returns a ``Suppression`` over the full layout: ``(n_units, 1 + sum(n_values))``.
    """
    parent = np.asarray(parent, dtype=np.int64)
    unit = np.asarray(unit, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64).reshape(unit.shape[0], len(n_values))
    n_units = int(parent.shape[0])
    r = int(unit.shape[0])
    totals = suppress(parent, unit, np.zeros((r, 0), dtype=np.int64), (), k, statistics)
    width = 1 + sum(n_values)
    hidden = np.ones((n_units, width), dtype=np.bool_)
    reason = np.full((n_units, width), COMPLEMENTARY, dtype=np.int8)
    hidden[:, 0] = totals.hidden[:, 0]
    reason[:, 0] = totals.reason[:, 0]
    if width == 1:
        return Suppression(hidden=hidden, reason=reason)

    # Direct members per unit: overall (column 0) and per attribute value (the cut columns).
    direct = np.zeros((n_units, width), dtype=np.int64)
    np.add.at(direct[:, 0], unit, 1)
    offsets = np.cumsum((1, *n_values[:-1]))
    for a, offset in enumerate(offsets):
        np.add.at(direct, (unit, offset + codes[:, a]), 1)
    plan = tree_plan(parent)
    rolled = plan.rollup(direct)

    # A direct group's sum is determined when its unit's total and all its children's totals are published.
    published_total = ~hidden[:, 0]
    child_hidden = np.zeros(n_units, dtype=np.int64)
    has_parent = parent >= 0
    np.add.at(child_hidden, parent[has_parent], (~published_total[has_parent]).astype(np.int64))
    determined = published_total & (child_hidden == 0)

    cut_direct = direct[:, 1:]
    whole = direct[:, :1]
    # Groups that a cut splits (some of the unit's direct members have the value, some don't), and groups it
    # takes whole but whose sum is not determined: either makes the cut new information.
    split = (cut_direct > 0) & (cut_direct < whole)
    undetermined = (cut_direct > 0) & ~determined[:, None]
    adds = plan.rollup((split | undetermined).astype(np.int64))

    cut_n = rolled[:, 1:]
    same_as_total = (cut_n == rolled[:, :1]) & published_total[:, None]
    publish = (cut_n > 0) & (same_as_total | (adds == 0))
    hidden[:, 1:] = ~publish
    reason[:, 1:] = np.where(publish, PUBLISHED, np.where(cut_n == 0, EMPTY, COMPLEMENTARY))
    return Suppression(hidden=hidden, reason=reason)
