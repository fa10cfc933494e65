"""The unsuppressed table: every cell's statistics, computed for all cells at once.

A cell is a unit rolled up (column 0) or a unit cut by one attribute value (column 1 + offset of the
attribute + value index). Each respondent adds to 1 + n_attributes cells of their own unit: one sparse
indicator matrix ``S`` (cells x respondents) turns respondent-level quantities ``Q`` (counts, sums and sums
of squares of construct scores, favourable marks, eNPS categories, item answers) into every unit's direct
sums in one product ``S @ Q``; the distributions are counted in place (``np.add.at`` over (cell, point) keys).
``TreePlan.rollup`` then adds direct sums up the tree (one sparse product for the whole tree). Means,
standard deviations, intervals, favourable shares and eNPS follow element-wise from those sums, for all
cells at once: no Python loop over units, cells or respondents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from scipy import sparse

from scoring import stats
from scoring.rollup import TreePlan, tree_plan
from scoring.scales import Scores, construct_scores
from scoring.spec import SCALE_BOUNDS, ItemSpec, WaveData

__all__ = [
    "CONSTRUCT_FIELDS",
    "CellStatistics",
    "Layout",
    "cell_statistics",
    "distribution_items",
    "layout",
    "unit_moments",
]

CONSTRUCT_FIELDS = ("mean", "sd", "ci_low", "ci_high", "favourable", "favourable_low", "favourable_high", "index")
SCALED = ("likert5", "likert7", "nps")


def distribution_items(items: tuple[ItemSpec, ...]) -> tuple[ItemSpec, ...]:
    """Items that get a distribution in every cell: all but free text."""
    return tuple(item for item in items if item.type != "text")


def points(item: ItemSpec) -> tuple[str, ...]:
    """Labels of an item's distribution: its scale points, or its option ids."""
    if item.type in SCALED:
        low, high = SCALE_BOUNDS[item.type]
        return tuple(str(v) for v in range(low, high + 1))
    return item.options


@dataclass(frozen=True, eq=False)
class Layout:
    """Where each respondent lands: ``keys[r, 0]`` is the cell of their unit's total, ``keys[r, 1 + a]`` the
    cell of their unit cut by attribute a (flat index ``unit * width + column``)."""

    plan: TreePlan
    width: int
    columns: tuple[tuple[str | None, str | None], ...]
    blocks: tuple[int, ...]  # (A,) values of each attribute: its columns follow the previous attribute's
    keys: npt.NDArray[np.int64]  # (R, 1 + A)
    indicator: sparse.csr_array  # (U * width, R) int32


def layout(data: WaveData, plan: TreePlan | None = None, *, cuts: bool = True) -> Layout:
    """The cell layout of a wave (checks the respondents' units and attribute codes); ``cuts=False``: the unit
    totals only (one column)."""
    plan = plan or tree_plan(data.tree.parent)
    unit = np.asarray(data.unit, dtype=np.int64)
    n_units, r = plan.size, unit.shape[0]
    if unit.ndim != 1 or (r and (unit.min() < 0 or unit.max() >= n_units)):
        raise ValueError("every respondent's unit must index the tree")
    attributes = data.attributes if cuts else ()
    columns: list[tuple[str | None, str | None]] = [(None, None)]
    keys = np.empty((r, 1 + len(attributes)), dtype=np.int64)
    for a, attribute in enumerate(attributes):
        codes = np.asarray(attribute.codes, dtype=np.int64)
        if codes.shape != (r,) or (r and (codes.min() < 0 or codes.max() >= len(attribute.values))):
            raise ValueError(f"attribute {attribute.name}: codes must index its values, one per respondent")
        keys[:, 1 + a] = len(columns) + codes
        columns += [(attribute.name, v) for v in attribute.values]
    width = len(columns)
    keys[:, 0] = 0
    keys += unit[:, None] * width
    respondent = np.repeat(np.arange(r, dtype=np.int64), keys.shape[1])
    indicator = sparse.csr_array(
        (np.ones(keys.size, dtype=np.int32), (keys.ravel(), respondent)), shape=(n_units * width, r)
    )
    blocks = tuple(len(a.values) for a in attributes)
    return Layout(plan, width, tuple(columns), blocks, keys, indicator)


@dataclass(frozen=True, eq=False)
class CellStatistics:
    """Every cell's figures before suppression. U units, W columns, C constructs, I distribution items.

    n:              (U, W) respondents.
    construct_n:    (U, W, C) respondents whose construct score counts.
    construct_sum, construct_squares: (U, W, C) sums of (score - shift) and its square, shift = scale midpoint.
    favourable_n:   (U, W, C) favourable respondents.
    construct_stats: (8, U, W, C) ``CONSTRUCT_FIELDS``; NaN where undefined.
    item_n:         (U, W, I) answered (for ``multi``: answered the item).
    item_mean:      (U, W, I) mean answer of scaled items, NaN for ``single``/``multi`` or n = 0.
    counts:         (U, W, T) answers per point / option; item i at ``item_offsets[i]:item_offsets[i + 1]``.
    ``item_n`` and ``counts`` are views of (W, U, .) memory: ``counts[u, w]`` is contiguous, the whole is not.
    enps:           (U, W, 7) n, score, ci_low, ci_high, promoters, passives, detractors (or None).
    """

    layout: Layout
    scores: Scores
    items: tuple[ItemSpec, ...]
    item_offsets: npt.NDArray[np.int64]
    shift: npt.NDArray[np.float64]  # (C,)
    n: npt.NDArray[np.int64]
    construct_n: npt.NDArray[np.int64]
    construct_sum: npt.NDArray[np.float64]
    construct_squares: npt.NDArray[np.float64]
    favourable_n: npt.NDArray[np.int64]
    construct_stats: npt.NDArray[np.float64]
    item_n: npt.NDArray[np.int32]
    item_mean: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int32]
    enps: npt.NDArray[np.float64] | None


CHUNK = 8192  # respondents whose answers are counted at once: their temporaries stay small and in cache


def _out_of_points(point: npt.NDArray[np.float64], limit: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Answers (already less the scale's lowest point) that are not one of the item's points."""
    bad: npt.NDArray[np.bool_] = ~np.isnan(point) & ((point != np.round(point)) | (point < 0) | (point >= limit))
    return bad


def _distributions(
    data: WaveData, items: tuple[ItemSpec, ...], offsets: npt.NDArray[np.int64], cells: Layout
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """(W, U, T) answers per point / chosen options, and (W, U, I) answers left open, in every cell (rolled up).

    Column-major, so that each column is one contiguous (U, .) slab. The direct counts are added in place
    (``np.add.at`` of (cell, point) keys, once per attribute), respondents taken in order of their unit and
    CHUNK at a time: the keys of a chunk fall close together (several times faster than in the respondents'
    order) and its temporaries are small and reused, so the only large arrays are the two results. Each slab is
    then rolled up and written back over itself. A unit's total is the sum of its cuts by any one attribute
    (every respondent has exactly one value of each), so with attributes the total column is added up from the
    cuts of the attribute with the fewest values instead of counted. Checks the answers against their points.
    """
    column = {item.id: j for j, item in enumerate(data.instrument.items)}
    r = data.answers.shape[0]
    u, w = cells.plan.size, cells.width
    size, n_items = int(offsets[-1]), len(items)
    sizes = np.diff(offsets)
    counts = np.zeros((w, u, size), dtype=np.int32)  # a count never exceeds the respondents
    unanswered = np.zeros((w, u, n_items), dtype=np.int32)
    if not items:
        return counts, unanswered
    unit = np.asarray(data.unit, dtype=np.int64)
    order = np.argsort(unit, kind="stable")
    counted = cells.keys[:, 1:] if cells.blocks else cells.keys  # the total column only without attributes
    cell = ((counted - unit[:, None] * w) * u + unit[:, None])[order]  # (R, B): (column, unit), by unit

    def add(out: npt.NDArray[np.int32], rows: slice, per: npt.NDArray[np.int64], at: npt.NDArray[np.int64]) -> None:
        """Count ``at`` (positions within a cell, ``per`` of them for each respondent of ``rows``) in every
        counted column of those respondents."""
        flat, width = out.reshape(-1), out.shape[2]
        for b in range(cell.shape[1]):
            key = np.repeat(cell[rows, b] * width, per)
            key += at
            np.add.at(flat, key, np.int32(1))

    single = [i for i, item in enumerate(items) if item.type != "multi"]
    if single:
        cols = [column[items[i].id] for i in single]
        low = np.array([SCALE_BOUNDS[items[i].type][0] if items[i].type in SCALED else 0 for i in single])
        limit, first, index = sizes[single], offsets[single], np.array(single, dtype=np.int64)
        for start in range(0, r, CHUNK):
            rows = slice(start, start + CHUNK)
            point = np.take(np.take(data.answers, order[rows], axis=0), cols, axis=1)
            point -= low
            if _out_of_points(point, limit).any():
                every = np.take(data.answers, cols, axis=1) - low
                culprit = items[single[int(np.flatnonzero(_out_of_points(every, limit).any(axis=0))[0])]].id
                raise ValueError(f"item {culprit}: answers outside its scale or options")
            given = ~np.isnan(point)
            point += first
            add(counts, rows, given.sum(axis=1), point[given].astype(np.int64))
            np.logical_not(given, out=given)
            add(unanswered, rows, given.sum(axis=1), np.broadcast_to(index, given.shape)[given])
    for i, item in enumerate(items):
        if item.type == "multi":
            chosen = np.asarray(data.multi[item.id], dtype=np.bool_)
            if chosen.shape != (r, sizes[i]):
                raise ValueError(f"item {item.id}: expected ({r}, {sizes[i]}) chosen options")
            chosen = chosen[order]
            add(counts, slice(None), chosen.sum(axis=1), offsets[i] + np.nonzero(chosen)[1])
    for slabs in (counts, unanswered):
        for c in range(1 if cells.blocks else 0, w):
            slabs[c] = cells.plan.rollup(slabs[c])
        if cells.blocks:
            a = int(np.argmin(cells.blocks))
            first_column = 1 + sum(cells.blocks[:a])
            np.add.reduce(slabs[first_column : first_column + cells.blocks[a]], axis=0, out=slabs[0])
    return counts, unanswered


def _construct_figures(
    cn: npt.NDArray[np.int64],
    total: npt.NDArray[np.float64],
    squares: npt.NDArray[np.float64],
    fav: npt.NDArray[np.int64],
    shift: npt.NDArray[np.float64],
    bounds: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None:
    """Fill ``out`` (8, ..., C) with ``CONSTRUCT_FIELDS`` from counts, shifted sums and sums of squares.

    Every cell of the table passes through here, so results go straight into ``out`` and the interval
    functions work in place: fresh temporaries of this size cost more in page faults than in arithmetic.
    """
    mean, var = stats.moments(cn, total, squares)
    mean += shift
    out[0] = mean
    sd = np.sqrt(var, out=out[1])
    out[2], out[3] = stats.t_interval(mean, sd, cn)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(fav, cn, out=out[4])
    out[5], out[6] = stats.wilson_interval(fav, cn)
    index = np.subtract(mean, bounds[:, 0], out=out[7])
    index *= 100 / (bounds[:, 1] - bounds[:, 0])


@dataclass(frozen=True)
class _ItemKinds:
    """Positions in ``items`` of the ``multi`` items (their n is who answered) and of the items that are not
    scaled (no mean: ``single`` and ``multi``)."""

    multi: list[int]
    other: list[int]

    @classmethod
    def of(cls, items: tuple[ItemSpec, ...]) -> _ItemKinds:
        return cls(
            [i for i, item in enumerate(items) if item.type == "multi"],
            [i for i, item in enumerate(items) if item.type not in SCALED],
        )


def _respondent_sums(scores: Scores, shift: npt.NDArray[np.float64], r: int) -> npt.NDArray[np.float64]:
    """(R, 2C) per construct score - shift (0 where the score does not count), then its square: the
    respondent-level terms of every cell's moments, filled in place."""
    c = shift.shape[0]
    sums = np.empty((r, 2 * c))
    centred = sums[:, :c]
    np.subtract(scores.score, shift, out=centred)
    centred[~scores.counted] = 0.0
    np.square(centred, out=sums[:, c:])
    return sums


def _respondent_counts(
    data: WaveData, scores: Scores, items: tuple[ItemSpec, ...], kinds: _ItemKinds
) -> tuple[npt.NDArray[np.int32], int]:
    """(R, M) whole numbers per respondent, and the column where the items start: 1 | counted, favourable per
    construct | promoter, passive, detractor (with eNPS) | per item: answered for a multi item, the answer (0 when
    not) for a scaled one, 0 otherwise. int32 counts are exact and half the memory of floats."""
    column = {item.id: j for j, item in enumerate(data.instrument.items)}
    r, c = data.answers.shape[0], len(data.instrument.constructs)
    whole = np.empty((r, 1 + 2 * c + 3 * (scores.enps is not None) + len(items)), dtype=np.int32)
    whole[:, 0] = 1
    whole[:, 1 : 1 + c] = scores.counted
    whole[:, 1 + c : 1 + 2 * c] = scores.favourable
    at = 1 + 2 * c
    if scores.enps is not None:
        for k, category in enumerate((1.0, 0.0, -1.0)):
            np.equal(scores.enps, category, out=whole[:, at + k])
        at += 3
    answers = np.take(data.answers, [column[item.id] for item in items], axis=1)
    answers[:, kinds.other] = 0.0
    answers[np.isnan(answers)] = 0.0
    whole[:, at:] = answers  # whole points: checked with the distributions
    del answers
    for i in kinds.multi:  # who answered a multi item (choosing nothing is not answering)
        whole[:, at + i] = data.multi_answered[items[i].id]
    return whole, at


_Summed = TypeVar("_Summed", np.float64, np.int32)


def _rolled_up(cells: Layout, per_respondent: npt.NDArray[_Summed]) -> npt.NDArray[_Summed]:
    """(U, W, .) every cell's sums of respondent-level quantities: one sparse product, one rollup."""
    u = cells.plan.size
    rolled: npt.NDArray[_Summed] = cells.plan.rollup(np.asarray(cells.indicator @ per_respondent).reshape(u, -1))
    return rolled.reshape(u, cells.width, -1)


def _cell_sums(
    data: WaveData,
    scores: Scores,
    items: tuple[ItemSpec, ...],
    kinds: _ItemKinds,
    shift: npt.NDArray[np.float64],
    cells: Layout,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], int]:
    """Every cell's moments (U, W, 2C) and whole-number sums (U, W, M), and the column where the items start in
    the latter. Each respondent-level array is dropped as soon as its rolled-up sums exist."""
    sums = _respondent_sums(scores, shift, data.answers.shape[0])
    whole, at = _respondent_counts(data, scores, items, kinds)
    moments = _rolled_up(cells, sums)
    del sums
    counted = _rolled_up(cells, whole)
    del whole
    return moments, counted, at


def _enps_figures(counted: npt.NDArray[np.int32], at: int) -> npt.NDArray[np.float64]:
    """(U, W, 7) n, score, ci_low, ci_high, promoters, passives, detractors from the promoter, passive and
    detractor counts (the three columns before ``at``)."""
    pp, pa, pd = (counted[:, :, at - 3 + k].astype(np.float64) for k in range(3))
    score, low, high = stats.enps(pp, pa, pd)
    return np.stack([pp + pa + pd, score, low, high, pp, pa, pd], axis=-1)


def _item_figures(
    counted: npt.NDArray[np.int32],
    n: npt.NDArray[np.int64],
    answered: npt.NDArray[np.int32],
    at: int,
    kinds: _ItemKinds,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """(U, W, I) item n and mean. Item n: the cell's n minus the open answers (``answered``, (W, U, I),
    overwritten), or (multi) who answered; the mean of a scaled item, NaN for the others."""
    np.subtract(n.T.astype(np.int32)[:, :, None], answered, out=answered)
    item_n = answered.transpose(1, 0, 2)
    item_n[:, :, kinds.multi] = counted[:, :, at + np.array(kinds.multi, dtype=np.int64)]
    with np.errstate(invalid="ignore", divide="ignore"):
        item_mean = np.divide(counted[:, :, at:], item_n)  # 0 / 0 = NaN where nobody answered
    item_mean[:, :, kinds.other] = np.nan
    return item_n, item_mean


def cell_statistics(
    data: WaveData,
    scores: Scores | None = None,
    plan: TreePlan | None = None,
    *,
    distributions: bool = True,
    cuts: bool = True,
    prepared: Layout | None = None,
) -> CellStatistics:
    """Compute every cell of the wave's table, unsuppressed (see ``CellStatistics``).

    Cost: a sparse product over R (1 + A) nonzeros for the moments, ``np.add.at`` over the answers given once per
    block of columns for the distributions, and a rollup of each. ``distributions=False`` skips the item
    distributions (``item_n``, ``item_mean`` and ``counts`` come back with zero items): the construct
    statistics alone, what the benchmark compares with pandas. ``cuts=False`` computes the unit totals only
    (W = 1): what ``unit_moments`` of an earlier wave needs. ``prepared``: the wave's ``layout`` when the caller
    has made it already (``plan`` and ``cuts`` are then those it was made with).

    Memory is what costs here (a fresh page is slower to touch than the arithmetic on it), so the order keeps
    few large arrays alive at once: the distributions first (built in place), then the moments, whose
    respondent-level and direct sums are dropped as soon as the rolled-up ones exist.
    """
    scores = scores or construct_scores(data.instrument, data.answers)
    cells = prepared if prepared is not None else layout(data, plan, cuts=cuts)
    constructs = data.instrument.constructs
    c = len(constructs)
    items = distribution_items(data.instrument.items) if distributions else ()
    kinds = _ItemKinds.of(items)

    # Distributions: answers per point / chosen options in every cell, and per item the answers left open (an
    # item's n is the cell's n minus those: a few percent of the answers instead of all of them). Both (W, U, .).
    offsets = np.concatenate([[0], np.cumsum([len(points(item)) for item in items])]).astype(np.int64)
    counts, answered = _distributions(data, items, offsets, cells)  # answered: the open answers until n is known

    # One product and one rollup of the respondent-level quantities give every cell's n, moments, eNPS, multi
    # item n and scaled item sums.
    bounds = np.array([SCALE_BOUNDS[con.scale] for con in constructs], dtype=np.float64).reshape(c, 2)
    shift = bounds.mean(axis=1)
    moments, counted, at = _cell_sums(data, scores, items, kinds, shift, cells)
    n = counted[:, :, 0].astype(np.int64)
    cn = counted[:, :, 1 : 1 + c].astype(np.int64)
    fav = counted[:, :, 1 + c : 1 + 2 * c].astype(np.int64)
    total, squares = moments[:, :, :c], moments[:, :, c:]
    enps = _enps_figures(counted, at) if scores.enps is not None else None
    item_n, item_mean = _item_figures(counted, n, answered, at, kinds)
    del counted

    construct_stats = np.empty((len(CONSTRUCT_FIELDS), cells.plan.size, cells.width, c))
    _construct_figures(cn, total, squares, fav, shift, bounds, construct_stats)
    return CellStatistics(
        layout=cells,
        scores=scores,
        items=items,
        item_offsets=offsets,
        shift=shift,
        n=n,
        construct_n=cn,
        construct_sum=total,
        construct_squares=squares,
        favourable_n=fav,
        construct_stats=construct_stats,
        item_n=item_n,
        item_mean=item_mean,
        counts=counts.transpose(1, 0, 2),
        enps=enps,
    )


def unit_moments(
    cells: CellStatistics,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(U, C) n, mean and sample variance of every unit's total (column 0) per construct, on the scale that changes
    compare: the construct scores, and for the eNPS construct the respondents' +100 / 0 / -100.

    From the cell table's sums, not from the respondents again; the eNPS construct's sums are 100 (P - D) and
    10,000 (P + D) from its promoter and detractor counts (exact, as sums of +-100 are).
    """
    n = cells.construct_n[:, 0, :].astype(np.float64)
    total = cells.construct_sum[:, 0, :].copy()
    squares = cells.construct_squares[:, 0, :].copy()
    shift = cells.shift.copy()
    j = cells.scores.enps_construct
    if j is not None and cells.enps is not None:
        promoters, detractors = cells.enps[:, 0, 4], cells.enps[:, 0, 6]
        total[:, j] = 100 * (promoters - detractors)
        squares[:, j] = 10_000 * (promoters + detractors)
        shift[j] = 0.0
    mean, var = stats.moments(n, total, squares)
    return n, mean + shift, var
