"""The unsuppressed table: every cell's statistics, computed for all cells at once.

A cell is a unit rolled up (column 0) or a unit cut by one attribute value (column 1 + offset of the
attribute + value index). Each respondent adds to 1 + n_attributes cells of their own unit: one sparse
indicator matrix ``S`` (cells x respondents) turns respondent-level quantities ``Q`` (counts, sums and sums
of squares of construct scores, favourable marks, eNPS categories, item answers) into every unit's direct
sums in one product ``S @ Q``; the distributions come from ``np.bincount`` over (unit, value, point) keys.
``TreePlan.rollup`` then adds direct sums up the tree (one sparse product for the whole tree). Means,
standard deviations, intervals, favourable shares and eNPS follow element-wise from those sums, for all
cells at once: no Python loop over units, cells or respondents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from scoring import stats
from scoring.rollup import TreePlan, tree_plan
from scoring.scales import Scores, construct_scores
from scoring.spec import SCALE_BOUNDS, ItemSpec, WaveData

__all__ = ["CONSTRUCT_FIELDS", "CellStatistics", "Layout", "cell_statistics", "distribution_items", "layout"]

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
    keys: npt.NDArray[np.int64]  # (R, 1 + A)
    indicator: sparse.csr_array  # (U * width, R) int32


def layout(data: WaveData, plan: TreePlan | None = None) -> Layout:
    """The cell layout of a wave (checks the respondents' units and attribute codes)."""
    plan = plan or tree_plan(data.tree.parent)
    unit = np.asarray(data.unit, dtype=np.int64)
    n_units, r = plan.size, unit.shape[0]
    if unit.ndim != 1 or (r and (unit.min() < 0 or unit.max() >= n_units)):
        raise ValueError("every respondent's unit must index the tree")
    columns: list[tuple[str | None, str | None]] = [(None, None)]
    keys = np.empty((r, 1 + len(data.attributes)), dtype=np.int64)
    for a, attribute in enumerate(data.attributes):
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
    return Layout(plan, width, tuple(columns), keys, indicator)


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
    item_n: npt.NDArray[np.int64]
    item_mean: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int32]
    enps: npt.NDArray[np.float64] | None


def _item_counts(
    data: WaveData, items: tuple[ItemSpec, ...], cells: Layout
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """(U, W, T) answers per point / chosen options in every cell (rolled up), and the items' offsets in T.

    Per block of columns (the total, then each attribute's values): one ``np.bincount`` over (unit, value,
    point) keys of the answers given, then the block's rollup, written into its slice of the result; block by
    block so that only one block's direct counts exist beside the result.
    """
    column = {item.id: j for j, item in enumerate(data.instrument.items)}
    r = data.answers.shape[0]
    sizes = [len(points(item)) for item in items]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    width = int(offsets[-1])
    single = [i for i, item in enumerate(items) if item.type != "multi"]
    found: list[npt.NDArray[np.int64]] = []
    if single:
        x = data.answers[:, [column[items[i].id] for i in single]]
        low = np.array([SCALE_BOUNDS[items[i].type][0] if items[i].type in SCALED else 0 for i in single])
        point = x - low
        given = ~np.isnan(point)
        limit = np.array([sizes[i] for i in single])
        bad = given & ((point != np.round(point)) | (point < 0) | (point >= limit))
        if bad.any():
            culprit = items[single[int(np.flatnonzero(bad.any(axis=0))[0])]].id
            raise ValueError(f"item {culprit}: answers outside its scale or options")
        who, which = np.nonzero(given)
        found.append(np.stack([who, offsets[np.array(single)][which] + point[who, which].astype(np.int64)]))
    for i, item in enumerate(items):
        if item.type == "multi":
            chosen = np.asarray(data.multi[item.id], dtype=np.bool_)
            if chosen.shape != (r, sizes[i]):
                raise ValueError(f"item {item.id}: expected ({r}, {sizes[i]}) chosen options")
            who, option = np.nonzero(chosen)
            found.append(np.stack([who, offsets[i] + option]))
    pairs = np.concatenate(found, axis=1) if found else np.zeros((2, 0), dtype=np.int64)
    u, w = cells.plan.size, cells.width
    unit = np.asarray(data.unit, dtype=np.int64)
    counts = np.empty((u, w, width), dtype=np.int32)  # a count never exceeds the respondents
    start = 0
    for a in range(cells.keys.shape[1]):
        block = 1 if a == 0 else len(data.attributes[a - 1].values)
        local = cells.keys[:, a] - unit * w - start  # each respondent's value index within this block
        base = (unit * block + local) * width  # per respondent, then gathered once per answer
        direct = np.bincount(base[pairs[0]] + pairs[1], minlength=u * block * width)
        rolled = cells.plan.rollup(direct.reshape(u, block * width).astype(np.int32))
        counts[:, start : start + block] = rolled.reshape(u, block, width)
        start += block
    return counts, offsets


def _construct_figures(
    cn: npt.NDArray[np.int64],
    total: npt.NDArray[np.float64],
    squares: npt.NDArray[np.float64],
    fav: npt.NDArray[np.float64],
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


def cell_statistics(
    data: WaveData,
    scores: Scores | None = None,
    plan: TreePlan | None = None,
    *,
    distributions: bool = True,
) -> CellStatistics:
    """Compute every cell of the wave's table, unsuppressed (see ``CellStatistics``).

    Cost: a sparse product over R (1 + A) nonzeros for the moments, a bincount over the answers given per
    block of columns for the distributions, and a rollup of each. ``distributions=False`` skips the item
    distributions (``item_n``, ``item_mean`` and ``counts`` come back with zero items): the construct
    statistics alone, what the benchmark compares with pandas.
    """
    scores = scores or construct_scores(data.instrument, data.answers)
    cells = layout(data, plan)
    u, w = cells.plan.size, cells.width
    constructs = data.instrument.constructs
    c = len(constructs)
    items = distribution_items(data.instrument.items) if distributions else ()
    r = data.answers.shape[0]

    # Respondent-level quantities Q (R, M), filled in place: 1 | counted, score - shift, (score - shift)^2,
    # favourable per construct | promoter, passive, detractor | answered, per multi item | answered, per other
    # item | answer (0 when not), per scaled item. One product and one rollup give every item's n and mean.
    bounds = np.array([SCALE_BOUNDS[con.scale] for con in constructs], dtype=np.float64).reshape(c, 2)
    shift = bounds.mean(axis=1)
    has_enps = scores.enps is not None
    multi = [i for i, item in enumerate(items) if item.type == "multi"]
    single = [i for i, item in enumerate(items) if item.type != "multi"]
    scaled = [i for i, item in enumerate(items) if item.type in SCALED]
    column = {item.id: j for j, item in enumerate(data.instrument.items)}
    m = 1 + 4 * c + 3 * has_enps + len(multi) + len(single) + len(scaled)
    q = np.empty((r, m))
    q[:, 0] = 1.0
    q[:, 1 : 1 + c] = scores.counted
    centred = q[:, 1 + c : 1 + 2 * c]
    np.subtract(scores.score, shift, out=centred)
    centred[~scores.counted] = 0.0
    np.square(centred, out=q[:, 1 + 2 * c : 1 + 3 * c])
    q[:, 1 + 3 * c : 1 + 4 * c] = scores.favourable
    at = 1 + 4 * c
    if scores.enps is not None:
        for k, category in enumerate((1.0, 0.0, -1.0)):
            np.equal(scores.enps, category, out=q[:, at + k])
        at += 3
    for k, i in enumerate(multi):  # who answered a multi item (choosing nothing is not answering)
        q[:, at + k] = data.multi_answered[items[i].id]
    at += len(multi)
    np.logical_not(np.isnan(data.answers[:, [column[items[i].id] for i in single]]), out=q[:, at : at + len(single)])
    at += len(single)
    q[:, at : at + len(scaled)] = np.nan_to_num(data.answers[:, [column[items[i].id] for i in scaled]], nan=0.0)
    direct = np.asarray(cells.indicator @ q).reshape(u, -1)
    rolled = cells.plan.rollup(direct).reshape(u, w, -1)

    if items:
        counts, offsets = _item_counts(data, items, cells)
    else:
        offsets = np.zeros(1, dtype=np.int64)
        counts = np.zeros((u, w, 0), dtype=np.int32)

    def take(start: int, size: int) -> npt.NDArray[np.float64]:
        return rolled[:, :, start : start + size]

    n = np.rint(take(0, 1)[:, :, 0]).astype(np.int64)
    cn = np.rint(take(1, c)).astype(np.int64)
    total, squares, fav_sum = take(1 + c, c), take(1 + 2 * c, c), take(1 + 3 * c, c)
    fav = np.rint(fav_sum).astype(np.int64)
    at = 1 + 4 * c
    enps = None
    if scores.enps is not None:
        pp, pa, pd = (np.rint(take(at + k, 1)[:, :, 0]) for k in range(3))
        score, low, high = stats.enps(pp, pa, pd)
        enps = np.stack([pp + pa + pd, score, low, high, pp, pa, pd], axis=-1)
        at += 3
    # Item n and means from Q: who answered each item, and the sum of each scaled item's answers.
    item_n = np.zeros((u, w, len(items)), dtype=np.int64)
    item_n[:, :, multi] = np.rint(take(at, len(multi)))
    at += len(multi)
    item_n[:, :, single] = np.rint(take(at, len(single)))
    at += len(single)
    item_mean = np.full((u, w, len(items)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled_n = item_n[:, :, scaled]
        item_mean[:, :, scaled] = np.where(scaled_n > 0, take(at, len(scaled)) / scaled_n, np.nan)

    construct_stats = np.empty((len(CONSTRUCT_FIELDS), u, w, c))
    _construct_figures(cn, total, squares, fav_sum, shift, bounds, construct_stats)
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
        counts=counts,
        enps=enps,
    )
