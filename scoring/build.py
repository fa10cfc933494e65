"""Building the published table of a closed wave: statistics, one suppression decision, reliability, change,
flags, comments and participation, all from one pass over the wave's arrays.

``build_table`` is the only way numbers leave the engine. The anonymity guard (``scoring.guard``)
decides once, from all of the wave's data, which cells are hidden; a hidden cell is published without any
number, and everything derived (changes, flags, reliability, comments) is published only where the cells
it rests on are. The guard on the result cells runs on a thread of its own while the calling thread makes
everything that does not need its pattern; the result does not depend on which finishes first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from scoring import stats
from scoring.cells import CellStatistics, cell_statistics, layout, points, unit_moments
from scoring.drivers import drivers, wave_correlations
from scoring.flags import (
    OrgBaseline,
    UnitFigures,
    barrier_flags,
    below_flags,
    below_org_flags,
    decline_flags,
    participation_flags,
)
from scoring.guard import suppress_partition
from scoring.layout import COMPLEMENTARY, RANGE, Statistic, Suppression
from scoring.loss import publication
from scoring.reliability import cronbach_alpha, rwg_j
from scoring.rollup import TreePlan, tree_plan
from scoring.scales import Scores, construct_scores
from scoring.spec import SCALE_BOUNDS, WaveData
from scoring.tables import (
    AttributeInfo,
    CellArrays,
    Change,
    ChangeArrays,
    CommentCell,
    CommentGroup,
    ConstructInfo,
    Flag,
    ItemInfo,
    LazyCells,
    LazyChanges,
    ParticipationCell,
    Reliability,
    ResultTable,
    UnitInfo,
)
from scoring.withhold import Guarded, core_statistics, detail_statistics, guard_cells

__all__ = ["HiddenBefore", "build_table", "guard_statistics", "participation_cells", "suppress_cells"]

SCALED = ("likert5", "likert7", "nps")
PUBLISHED = "published"


@dataclass(frozen=True)
class HiddenBefore:
    """What a wave's stored table hid, over this build's units and columns: kept hidden when it is built again.
    A field left None: nothing of that part was hidden before."""

    cells: npt.NDArray[np.bool_] | None = None  # (U, W): unit totals and cuts
    comments: npt.NDArray[np.bool_] | None = None  # (U,)
    participation: npt.NDArray[np.bool_] | None = None  # (U,)
    # (U, W): cells whose detail statistics (scoring.withhold) it hid or withheld; None: as ``cells``
    details: npt.NDArray[np.bool_] | None = None


def guard_statistics(data: WaveData, scores: Scores) -> list[Statistic]:
    """Every statistic a result cell publishes, per respondent, for the guard: the core ones that decide whether
    a cell is published, then the details a published cell may withhold (``scoring.withhold``)."""
    return core_statistics(data, scores) + detail_statistics(data, scores)


def suppress_cells(data: WaveData, scores: Scores, hidden_before: npt.NDArray[np.bool_] | None = None) -> Guarded:
    """The wave's suppression decision over all result cells (units x total and attribute values), in the two
    stages of ``scoring.withhold``: which cells are published, and where a published cell withholds details.

    Cells an earlier build hid (``hidden_before``, (U, W)) stay hidden, and so do their details.
    """
    return guard_cells(data, scores, hidden_before)


def _reason_names(suppression: Suppression, hidden: npt.NDArray[np.bool_]) -> list[str | None]:
    """Reason of each unit's total cell (column 0) by name, None where published: one name looked up per code."""
    raw = np.asarray(suppression.reason)[:, 0]
    names: dict[int, str] = {}
    for code in np.unique(raw[hidden]).tolist():
        names[code] = suppression.reason_name(int(np.flatnonzero(hidden & (raw == code))[0]), 0)
    return [names[code] if h else None for code, h in zip(raw.tolist(), hidden.tolist(), strict=True)]


def _reason_codes(suppression: Suppression, where: npt.NDArray[np.bool_], names: list[str]) -> npt.NDArray[np.int64]:
    """Reason of every cell in ``where`` as an index into ``names`` (extended as new names are met), -1 elsewhere."""
    raw = np.asarray(suppression.reason)
    out = np.full(raw.shape, -1, dtype=np.int64)
    for code in np.unique(raw[where]):
        u, w = (int(i[0]) for i in np.nonzero(where & (raw == code)))
        name = suppression.reason_name(u, w)
        if name not in names:
            names.append(name)
        out[where & (raw == code)] = names.index(name)
    return out


def participation_cells(
    parent: npt.ArrayLike,
    keys: Sequence[str],
    invited: npt.ArrayLike,
    responded: npt.ArrayLike,
    min_group_size: int,
    hidden_before: npt.NDArray[np.bool_] | None = None,
) -> tuple[ParticipationCell, ...]:
    """Invited, responded and response rate per unit (rolled up), under the guard.

    invited, responded: (U,) direct counts per unit (a unit's own invitations, not its subtree's).
    The guard sees one row per invitation: present = every invitation, value = responded (0/1), bounds
    (0, 1), k = ``min_group_size``, the tree only (no cuts). Used for closed waves by ``build_table`` and for
    open waves by the service (rule 3: only units with at least k invitations are shown). Units an earlier build
    hid (``hidden_before``, (U,)) stay hidden.
    """
    p = np.asarray(parent, dtype=np.int64)
    inv = np.asarray(invited, dtype=np.int64)
    res = np.asarray(responded, dtype=np.int64)
    if inv.shape != p.shape or res.shape != p.shape or len(keys) != p.size:
        raise ValueError("parent, keys, invited and responded must have one entry per unit")
    if np.any(inv < 0) or np.any(res < 0) or np.any(res > inv):
        raise ValueError("responded must lie between 0 and invited")
    unit = np.repeat(np.arange(p.size, dtype=np.int64), inv)
    # Within each unit, the first ``responded`` invitations are marked as responded (order carries nothing).
    rank = np.arange(unit.size) - np.repeat(np.cumsum(inv) - inv, inv)
    answered = (rank < res[unit]).astype(np.float64)
    suppression = suppress_partition(
        p,
        unit,
        np.zeros((unit.size, 0), dtype=np.int64),
        (),
        min_group_size,
        [Statistic(np.ones(unit.size, dtype=np.bool_), answered, (0.0, 1.0), "participation")],
        None if hidden_before is None else np.asarray(hidden_before, dtype=np.bool_).reshape(-1, 1),
    )
    hidden = np.asarray(suppression.hidden, dtype=np.bool_)[:, 0]
    reasons = _reason_names(suppression, hidden)
    totals = tree_plan(p).rollup(np.stack([inv, res], axis=1).astype(np.float64)).astype(np.int64).tolist()
    cells = []
    for key, h, reason, (i, r) in zip(keys, hidden.tolist(), reasons, totals, strict=True):
        if h:
            cells.append(ParticipationCell(key, True, reason))
        else:
            cells.append(ParticipationCell(key, False, None, i, r, r / i if i else None))
    return tuple(cells)


def _cell_arrays(data: WaveData, cells: CellStatistics, guarded: Guarded) -> CellArrays:
    """The table's cells: the unsuppressed statistics with every hidden cell blanked, and in published cells
    whose details are withheld, the favourable shares, eNPS and items blanked."""
    hidden = np.asarray(guarded.cells.hidden, dtype=np.bool_)
    withheld = guarded.withheld
    names: list[str] = []
    reason = _reason_codes(guarded.cells, hidden, names)
    withheld_reason = _reason_codes(guarded.details, withheld, names)
    n = cells.n.copy()
    n[hidden] = 0
    stats_ = cells.construct_stats
    stats_[:, hidden] = np.nan
    stats_[4:7, withheld] = np.nan  # favourable share and its interval
    construct_n = cells.construct_n
    construct_n[hidden] = 0
    item_n, item_mean, counts = cells.item_n, cells.item_mean, cells.counts
    # Both are (U, W, .) views of (W, U, .) memory (``CellStatistics``): blanked in the order they are stored.
    details_hidden = hidden | withheld
    item_n.transpose(1, 0, 2)[details_hidden.T] = 0
    item_mean[details_hidden] = np.nan
    counts.transpose(1, 0, 2)[details_hidden.T] = 0
    enps = cells.enps
    if enps is not None:
        enps[details_hidden] = np.nan
    return CellArrays(
        units=data.tree.keys,
        columns=cells.layout.columns,
        constructs=tuple(c.id for c in data.instrument.constructs),
        items=tuple(item.id for item in cells.items),
        item_offsets=cells.item_offsets,
        item_scaled=np.array([item.type in SCALED for item in cells.items], dtype=np.bool_),
        n=n,
        hidden=hidden,
        reason=reason,
        reason_names=tuple(names),
        withheld=withheld,
        withheld_reason=withheld_reason,
        construct_n=construct_n,
        construct_stats=stats_,
        item_n=item_n,
        item_mean=item_mean,
        counts=counts,
        enps=enps,
    )


def _team_moments(
    unit: npt.NDArray[np.int64], values: npt.NDArray[np.float64], given: npt.NDArray[np.bool_], n_units: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(U, C) per own unit (team) and column: count, sum and sum of squares of the given (R, C) values."""
    n, total, squares = (np.empty((n_units, values.shape[1])) for _ in range(3))
    for j in range(values.shape[1]):
        v = np.where(given[:, j], values[:, j], 0.0)
        n[:, j] = np.bincount(unit, weights=given[:, j].astype(np.float64), minlength=n_units)
        total[:, j] = np.bincount(unit, weights=v, minlength=n_units)
        squares[:, j] = np.bincount(unit, weights=v * v, minlength=n_units)
    return n, total, squares


def _flag_values(scores: Scores) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(R, C) respondent values that flags compare and which of them count: construct scores, and +100/0/-100
    for the eNPS construct."""
    values = scores.score.copy()
    if scores.enps_construct is not None and scores.enps is not None:
        values[:, scores.enps_construct] = 100 * scores.enps
    return values, scores.counted


Moments = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def _score_moments(unit: npt.NDArray[np.int64], scores: Scores, flag_moments: Moments) -> Moments:
    """Team moments of the construct scores: those of the flag values (``_flag_values``), but for the eNPS
    construct, whose flag values are +100/0/-100, counted from its scores."""
    j = scores.enps_construct
    if j is None:
        return flag_moments
    n, total, squares = (a.copy() for a in flag_moments)
    own = _team_moments(unit, scores.score[:, [j]], scores.counted[:, [j]], n.shape[0])
    for a, b in zip((n, total, squares), own, strict=True):
        a[:, j] = b[:, 0]
    return n, total, squares


def _org_baseline(plan: TreePlan, moments: Moments) -> OrgBaseline:
    """Per root and construct: organisation mean, tau^2 and sigma^2 (MSW) from teams = respondents' own units.

    ``moments``: (U, C) count, sum and sum of squares per team of the values flags compare (``_flag_values``).
    """
    n, s, ss = moments
    u, c = n.shape
    mu, tau2, sigma2 = (np.full((u, c), np.nan) for _ in range(3))
    roots = np.flatnonzero(plan.parent < 0)
    for j in range(c):
        for root in roots:
            teams = plan.root == root
            anova = stats.oneway(n[teams, j], s[teams, j], ss[teams, j])
            mu[root, j], tau2[root, j], sigma2[root, j] = anova.grand_mean, anova.tau2, anova.msw
    return OrgBaseline(mu, tau2, sigma2)


def _withheld(unit: str, construct: str, items: int, method: str) -> Reliability:
    """A construct's reliability over an organisation, withheld (every figure null)."""
    return Reliability(unit, construct, True, None, items, None, None, None, method, None, None, None)


def _reliability(data: WaveData, plan: TreePlan, nan_policy: str, moments: Moments) -> tuple[Reliability, ...]:
    """Alpha (Feldt interval), mean rwg(J) and ICC(1) of every construct over each organisation (root), withheld
    where fewer than ``min_group_size`` answered (``_hide_reliability`` withholds those whose own cell is hidden).

    ``moments``: (U, C) count, sum and sum of squares of the construct scores per team (own unit), for ICC(1).
    """
    column = {item.id: j for j, item in enumerate(data.instrument.items)}
    unit = np.asarray(data.unit, dtype=np.int64)
    n, s, ss = moments
    # Each construct's (recoded) answers, taken once for every organisation.
    answers = []
    for construct in data.instrument.constructs:
        low, high = SCALE_BOUNDS[construct.scale]
        x = np.take(data.answers, [column[i] for i in construct.items], axis=1)
        flip = [k for k, i in enumerate(construct.items) if i in construct.reverse]
        x[:, flip] = low + high - x[:, flip]
        answers.append(x)
    out = []
    policy: Literal["listwise", "pairwise"] = "pairwise" if nan_policy == "pairwise" else "listwise"
    for root in np.flatnonzero(plan.parent < 0):
        members = plan.root[unit] == root
        everyone = bool(members.all())
        team = unit if everyone else unit[members]
        teams = plan.root == root
        for j, construct in enumerate(data.instrument.constructs):
            low, high = SCALE_BOUNDS[construct.scale]
            x = answers[j] if everyone else answers[j][members]
            alpha = cronbach_alpha(x, policy)
            key = data.tree.keys[root]
            if alpha.n < data.min_group_size:
                out.append(_withheld(key, construct.id, len(construct.items), policy))
                continue
            rwg = rwg_j(x, team, high - low + 1)[0] if team.size else np.array([])
            valid = np.isfinite(rwg)
            icc = stats.oneway(n[teams, j], s[teams, j], ss[teams, j]).icc1

            def num(v: float) -> float | None:
                return float(v) if np.isfinite(v) else None

            out.append(
                Reliability(
                    unit=key,
                    construct=construct.id,
                    suppressed=False,
                    n=alpha.n,
                    items=alpha.k,
                    alpha=num(alpha.alpha),
                    ci_low=num(alpha.ci_low),
                    ci_high=num(alpha.ci_high),
                    method=policy,
                    rwg=num(float(rwg[valid].mean())) if valid.any() else None,
                    icc1=num(icc),
                    teams=int(valid.sum()),
                )
            )
    return tuple(out)


@dataclass(frozen=True, eq=False)
class _Previous:
    """What the changes need of the previous wave: the wave, its scores, which unit totals its table hides (U0,),
    and every unit's n, mean and variance per construct (U0, C0), from ``unit_moments``."""

    data: WaveData
    scores: Scores
    hidden: npt.NDArray[np.bool_]
    withheld: npt.NDArray[np.bool_]  # (U0,) unit totals whose details (eNPS) the table hides or withholds
    n: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    var: npt.NDArray[np.float64]


def _previous_wave(
    previous: WaveData, previous_published: Collection[str] | None, previous_detailed: Collection[str] | None = None
) -> _Previous:
    """The previous wave's part of the changes: its unit totals through the same code as this wave's cells (its
    unit totals only, ``cuts=False``), and the pattern its table shows.

    ``previous_published``: the units whose total the previous wave's served table publishes. A change published
    where that table hides the unit would give its mean away (this mean minus the change), so the served pattern
    decides, not one computed again (it can differ when the guard has changed since). Without it, the previous
    wave's pattern is computed here. ``previous_detailed``: the units whose total shows its details (eNPS) in
    that table; None: nowhere known, so no eNPS change is published (it would give that wave's eNPS away).
    """
    scores = construct_scores(previous.instrument, previous.answers)
    if previous_published is None:
        guarded = suppress_cells(previous, scores)
        hidden = np.asarray(guarded.cells.hidden, dtype=np.bool_)[:, 0]
        withheld = np.asarray(guarded.details.hidden, dtype=np.bool_)[:, 0]
    else:
        shown = set(previous_published)
        detailed = set() if previous_detailed is None else set(previous_detailed) & shown
        hidden = np.array([key not in shown for key in previous.tree.keys], dtype=np.bool_)
        withheld = np.array([key not in detailed for key in previous.tree.keys], dtype=np.bool_)
    totals = cell_statistics(previous, scores, tree_plan(previous.tree.parent), distributions=False, cuts=False)
    return _Previous(previous, scores, hidden, withheld, *unit_moments(totals))


def _hide_reliability(
    figures: tuple[Reliability, ...], keys: Sequence[str], hidden_total: npt.NDArray[np.bool_]
) -> tuple[Reliability, ...]:
    """``figures`` with those of an organisation whose own cell is hidden withheld (every figure null)."""
    hidden = {key for key, h in zip(keys, hidden_total.tolist(), strict=True) if h}
    return tuple(
        _withheld(r.unit, r.construct, r.items, r.method) if r.unit in hidden and not r.suppressed else r
        for r in figures
    )


@dataclass(frozen=True)
class _Tests:
    """Per unit in both waves and shared construct, the change test (``_change_tests``), before it is known which
    units are published."""

    here: npt.NDArray[np.int64]  # units of this wave in both
    there: npt.NDArray[np.int64]  # the same units in the previous wave
    # per construct: (construct index, test, n, mean, previous n, previous mean, difference, statistic, df, p)
    rows: tuple[tuple[int, str, Any, Any, Any, Any, Any, Any, Any, Any], ...]


def _change_tests(data: WaveData, cells: CellStatistics, before: _Previous) -> _Tests:
    """The change of every unit in both waves since the previous wave, per shared construct: Welch's test on the
    construct scores, or for eNPS a z test with the multinomial variance. This wave's unit totals come from its
    cell table (``unit_moments``), the previous wave's from ``_previous_wave``."""
    scores = cells.scores
    previous = before.data
    index = {key: i for i, key in enumerate(previous.tree.keys)}
    here = np.array([i for i, key in enumerate(data.tree.keys) if key in index], dtype=np.int64)
    there = np.array([index[data.tree.keys[i]] for i in here], dtype=np.int64)
    before_ids = {c.id: j for j, c in enumerate(previous.instrument.constructs)}
    n1, m1, v1 = unit_moments(cells)
    n0, m0, v0 = before.n, before.mean, before.var
    rows = []
    for j, construct in enumerate(data.instrument.constructs):
        k = before_ids.get(construct.id)
        if k is None:
            continue
        nps = construct.scale == "nps" and j == scores.enps_construct and k == before.scores.enps_construct
        a_n, a_m, a_v = n1[here, j], m1[here, j], v1[here, j]
        b_n, b_m, b_v = n0[there, k], m0[there, k], v0[there, k]
        if nps:
            # eNPS on -100..100: z test with the multinomial variance V = pP + pD - (pP - pD)^2 per wave,
            # which is the ddof-0 variance of the +1/0/-1 scores.
            with np.errstate(invalid="ignore", divide="ignore"):
                va = a_v / 10_000 * (a_n - 1) / a_n
                vb = b_v / 10_000 * (b_n - 1) / b_n
            difference, statistic, p = stats.enps_difference(a_m, va, a_n, b_m, vb, b_n)
            df = np.full(here.size, np.nan)
        else:
            welch = stats.welch(a_m, a_v, a_n, b_m, b_v, b_n)
            difference, statistic, df, p = a_m - b_m, welch.statistic, welch.df, welch.pvalue
        rows.append((j, "enps" if nps else "welch", a_n, a_m, b_n, b_m, difference, statistic, df, p))
    return _Tests(here, there, tuple(rows))


def _changes(data: WaveData, guarded: Guarded, before: _Previous, tests: _Tests) -> LazyChanges:
    """Per unit (in both waves) and shared construct: the change since the previous wave (``tests``), published
    only where the unit's total cell is published in both waves' tables (for eNPS, where both show their
    details); BH over each construct's published changes."""
    here, there = tests.here, tests.there
    hidden_total = np.asarray(guarded.cells.hidden, dtype=np.bool_)[:, 0]
    withheld_total = np.asarray(guarded.details.hidden, dtype=np.bool_)[:, 0]
    k_count = len(tests.rows)
    published = np.empty((k_count, here.size), dtype=np.bool_)
    hidden = np.empty((k_count, here.size), dtype=np.bool_)
    figures = np.full((9, k_count, here.size), np.nan)
    for k, (_, test, a_n, a_m, b_n, b_m, difference, statistic, df, p) in enumerate(tests.rows):
        nps = test == "enps"  # eNPS rests on a detail statistic
        here_hidden, there_hidden = (withheld_total, before.withheld) if nps else (hidden_total, before.hidden)
        hidden[k] = here_hidden[here]
        published[k] = ~hidden[k] & ~there_hidden[there]
        p = np.where(published[k], p, np.nan)
        figures[:, k] = (a_n, a_m, b_n, b_m, difference, statistic, df, p, stats.benjamini_hochberg(p))
    constructs = [data.instrument.constructs[row[0]] for row in tests.rows]
    return LazyChanges(
        ChangeArrays(
            units=tuple(data.tree.keys[u] for u in here.tolist()),
            constructs=tuple(c.id for c in constructs),
            tests=tuple(row[1] for row in tests.rows),
            alpha=tuple(c.flags.alpha for c in constructs),
            published=published,
            hidden=hidden,
            figures=figures,
        )
    )


def _seed(wave_id: int, unit_key: str, item: str) -> int:
    """A shuffle seed that depends on nothing but the wave, the unit and the item (not on answer order)."""
    digest = hashlib.sha256(f"peil-comments:{wave_id}:{unit_key}:{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _comments(
    data: WaveData, plan: TreePlan, hidden_before: npt.NDArray[np.bool_] | None = None
) -> tuple[CommentCell, ...]:
    """Free texts per unit subtree under rule 6: the guard with k = 2 min_group_size on the tree only (units an
    earlier build hid, ``hidden_before`` (U,), stay hidden)."""
    items = [item.id for item in data.instrument.items if item.type == "text"]
    if not items:
        return ()
    unit = np.asarray(data.unit, dtype=np.int64)
    r = unit.size
    statistics = []
    for item in items:
        present = np.zeros(r, dtype=np.bool_)
        rows = [i for i, _ in data.comments.get(item, ())]
        present[rows] = True
        statistics.append(Statistic(present, None, None, f"comments:{item}"))
    suppression = suppress_partition(
        np.asarray(data.tree.parent, dtype=np.int64),
        unit,
        np.zeros((r, 0), dtype=np.int64),
        (),
        2 * data.min_group_size,
        statistics,
        None if hidden_before is None else np.asarray(hidden_before, dtype=np.bool_).reshape(-1, 1),
    )
    hidden = np.asarray(suppression.hidden, dtype=np.bool_)[:, 0]
    reasons = _reason_names(suppression, hidden)
    # Texts by unit subtree: each text goes to its writer's unit and every ancestor. Per item, the texts sorted
    # once (the shuffle must not depend on input order) and the (unit, rank) pairs grouped by unit: each unit's
    # texts come out sorted, as slices of one array.
    texts: dict[str, tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
    for item in items:
        pairs = data.comments.get(item, ())
        ordered = sorted(range(len(pairs)), key=lambda t: pairs[t][1])
        rank = np.empty(len(pairs), dtype=np.int64)
        rank[ordered] = np.arange(len(pairs))
        writers = np.array([i for i, _ in pairs], dtype=np.int64)
        chain = plan.ancestors[unit[writers]]
        holder = chain.ravel()
        taken = holder >= 0
        holder = holder[taken]
        which = np.repeat(rank, chain.shape[1])[taken]
        by_unit = np.lexsort((which, holder))
        bounds = np.searchsorted(holder[by_unit], np.arange(plan.size + 1))
        texts[item] = ([pairs[t][1] for t in ordered], which[by_unit], bounds)
    cells = []
    for u, key in enumerate(data.tree.keys):
        if hidden[u]:
            cells.append(CommentCell(key, True, reasons[u]))
            continue
        groups = []
        for item in items:
            ordered_texts, ranks, bounds = texts[item]
            found = [ordered_texts[t] for t in ranks[bounds[u] : bounds[u + 1]].tolist()]
            order = np.random.default_rng(_seed(data.wave_id, key, item)).permutation(len(found))
            groups.append(CommentGroup(item, tuple(found[i] for i in order)))
        cells.append(CommentCell(key, False, None, tuple(groups)))
    return tuple(cells)


def _multi_totals(
    data: WaveData, cells: CellStatistics
) -> tuple[dict[str, npt.NDArray[np.int64]], dict[str, npt.NDArray[np.int64]]]:
    """Unit totals of each multi item: answered (U,) and chosen per option (U, O), from the cell table."""
    answered, chosen = {}, {}
    for i, item in enumerate(cells.items):
        if item.type == "multi":
            answered[item.id] = cells.item_n[:, 0, i].astype(np.int64)
            lo, hi = cells.item_offsets[i], cells.item_offsets[i + 1]
            chosen[item.id] = cells.counts[:, 0, lo:hi].astype(np.int64)
    return answered, chosen


def _flags(
    data: WaveData,
    plan: TreePlan,
    cells: CellStatistics,
    decision: Guarded,
    flag_moments: Moments,
    changes: Sequence[Change],
    participation: tuple[ParticipationCell, ...],
) -> list[Flag]:
    """Every flag rule over the published unit totals only; the eNPS construct's rules and the barrier rule read
    details (eNPS, a multi item), so only where the unit's total shows them."""
    scores = cells.scores
    published_total = ~np.asarray(decision.cells.hidden, dtype=np.bool_)[:, 0]
    detailed_total = ~np.asarray(decision.details.hidden, dtype=np.bool_)[:, 0]
    constructs = data.instrument.constructs
    mean = cells.construct_stats[0, :, 0, :].copy()
    ci_high = cells.construct_stats[3, :, 0, :].copy()
    if scores.enps_construct is not None and cells.enps is not None:
        mean[:, scores.enps_construct] = cells.enps[:, 0, 1]
        ci_high[:, scores.enps_construct] = cells.enps[:, 0, 3]
    construct_n = cells.construct_n[:, 0, :].copy()
    if scores.enps_construct is not None:  # no n, no rule: where eNPS is withheld, or its organisation's is
        construct_n[~detailed_total | ~detailed_total[plan.root], scores.enps_construct] = 0
    figures = UnitFigures(data.tree.keys, plan.root, published_total, construct_n, mean, ci_high)
    org = _org_baseline(plan, flag_moments)
    spread = {c.id: float(np.sqrt(org.sigma2[plan.root[0], j])) for j, c in enumerate(constructs)} if plan.size else {}
    answered, chosen = _multi_totals(data, cells)
    flags: list[Flag] = []
    flags += below_flags(constructs, figures)
    flags += below_org_flags(constructs, figures, org)
    flags += decline_flags(constructs, changes.published() if isinstance(changes, LazyChanges) else [], spread)
    flags += barrier_flags(data.instrument, data.tree.keys, detailed_total, answered, chosen)
    flags += participation_flags(participation, data.instrument.low_participation)
    return flags


def _protecting(decision: Guarded) -> npt.NDArray[np.bool_]:
    """(U, W) cells hidden to protect others: reason ``complementary`` or ``range``."""
    return np.isin(np.asarray(decision.cells.reason), (COMPLEMENTARY, RANGE))


def _described(data: WaveData, cells: CellStatistics) -> dict[str, Any]:
    """What a table says of itself: the wave, the tree, the attributes, the constructs and items."""
    return {
        "wave_id": data.wave_id,
        "instrument": data.instrument.slug,
        "version": data.instrument.version,
        "min_group_size": data.min_group_size,
        "units": tuple(
            UnitInfo(key, None if p < 0 else data.tree.keys[p])
            for key, p in zip(data.tree.keys, data.tree.parent.tolist(), strict=True)
        ),
        "attributes": tuple(AttributeInfo(a.name, a.values) for a in data.attributes),
        "constructs": tuple(
            ConstructInfo(c.id, c.scale, *SCALE_BOUNDS[c.scale], float(c.favourable_min), c.items)
            for c in data.instrument.constructs
        ),
        "items": tuple(ItemInfo(i.id, i.type, i.construct, points(i)) for i in cells.items),
    }


def build_table(
    data: WaveData,
    previous: WaveData | None = None,
    *,
    previous_published: Collection[str] | None = None,
    previous_detailed: Collection[str] | None = None,
    hidden_before: HiddenBefore | None = None,
    alpha_nan_policy: Literal["listwise", "pairwise"] = "listwise",
) -> ResultTable:
    """The published result table of a closed wave.

    Parameters
    ----------
    data : the wave (every complete response, the tree, the attributes, invitations).
    previous : the latest earlier closed wave sharing a construct, for changes and the decline rule.
    previous_published : the unit keys whose total the previous wave's stored (served) table publishes; changes
        are published only there. Without it, the previous wave's pattern is computed again.
    previous_detailed : the unit keys whose total shows its details (eNPS) in that table; eNPS changes are
        published only there. None (with ``previous_published``): no eNPS change is published.
    hidden_before : when the wave's table is built again, what its stored table hid (cells, the details it
        withheld, comments and participation): that stays hidden, so the two builds together publish no more
        than the first.
    alpha_nan_policy : how Cronbach's alpha treats unanswered items.

    Every cell, change, flag and comment of the table is published only where the anonymity guard allows;
    see ``scoring.tables`` for the contract of what comes out.
    """
    if data.min_group_size < 1:
        raise ValueError("min_group_size must be positive")
    plan = tree_plan(data.tree.parent)
    unit = np.asarray(data.unit, dtype=np.int64)
    scores = construct_scores(data.instrument, data.answers)
    cell_layout = layout(data, plan)  # checks the units and attribute codes before the guard sees them
    responded = np.bincount(unit, minlength=plan.size)
    invited = np.maximum(np.asarray(data.invited, dtype=np.int64), responded)
    # The guard on the result cells, the longest step, needs nothing the others make: it runs on a thread of its
    # own while this one does the rest (numpy and scipy let go of the interpreter lock in their loops).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="peil-guard") as pool:
        stored = HiddenBefore() if hidden_before is None else hidden_before
        guarded = pool.submit(guard_cells, data, scores, stored.cells, stored.details)
        participation = participation_cells(
            data.tree.parent, data.tree.keys, invited, responded, data.min_group_size, stored.participation
        )
        comments = _comments(data, plan, stored.comments)
        before = None if previous is None else _previous_wave(previous, previous_published, previous_detailed)
        # Per team (own unit) and construct: n, sum and sum of squares of what flags compare and of the construct
        # scores (the same numbers but for the eNPS construct), counted once for the flags and the reliability.
        values, given = _flag_values(scores)
        flag_moments = _team_moments(unit, values, given, plan.size)
        score_moments = _score_moments(unit, scores, flag_moments)
        cells = cell_statistics(data, scores, plan, prepared=cell_layout)
        tests = None if before is None else _change_tests(data, cells, before)
        # every organisation's reliability as if its own cell were published; withheld below where it is not
        reliability = _reliability(data, plan, alpha_nan_policy, score_moments)
        correlations = wave_correlations(data, scores, plan)  # drivers (scoring.drivers), before the cells' pattern
        decision = guarded.result()
    hidden = np.asarray(decision.cells.hidden, dtype=np.bool_)
    # what rests on details (items, eNPS) is published only where the unit's total shows them
    detailed_total = ~np.asarray(decision.details.hidden, dtype=np.bool_)[:, 0]
    reliability = _hide_reliability(reliability, data.tree.keys, ~detailed_total)
    changes = () if before is None or tests is None else _changes(data, decision, before, tests)
    flags = _flags(data, plan, cells, decision, flag_moments, changes, participation)
    loss = publication(cells.n, hidden, _protecting(decision), plan.depth, data.min_group_size, decision.withheld)
    constructs = data.instrument.constructs
    arrays = _cell_arrays(data, cells, decision)
    index = arrays.construct_stats[7, :, 0, :]  # the published 0-100 index of each unit's total, for focus areas
    found_drivers = drivers(correlations, plan, data.tree.keys, [c.id for c in constructs], detailed_total, index)
    return ResultTable(
        **_described(data, cells),
        previous_wave_id=None if previous is None else previous.wave_id,
        cells=LazyCells(arrays),
        reliability=reliability,
        changes=changes,
        flags=tuple(flags),
        comments=comments,
        participation=participation,
        drivers=found_drivers,
        publication=loss,
    )
