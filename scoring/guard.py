"""The anonymity guard the engine runs: suppression at any size, proven against an attacker who knows more than the
table tells.

Why this model
--------------
An exact guard decides what an attacker can derive from the published sums by linear algebra over the whole table
(the reference in ``tests/scoring/exact_guard.py``). It is exact, and far too slow beyond a few hundred respondents
once cuts and the range rule join in. This guard proves the same conditions (a), (b) and (c) of
``scoring.layout`` against a *stronger* attacker, one for whom every condition has a closed form, so the whole
decision is a handful of vectorised passes.

Respondents fall into atoms (the direct members of one unit with one combination of attribute values). Every
published cell is a union of atoms. Group the atoms by their *signature*, the set of published cells that hold
them: these groups (the regions, the Venn diagram of the published cells) partition the atoms, and every published
cell is a union of whole regions. So everything published is a function of the regions' sums. The stronger
attacker is told every region's sum (and, as always, every cell's and every atom's ``n``). Whatever the real
attacker can derive, this one can too, so a pattern safe against it is safe:

(b) A combination of respondents the stronger attacker can determine is a 0/1 vector in the span of the regions'
    indicators, i.e. a union of whole regions. Every region holds 0 or at least ``k`` respondents for every
    statistic, so such a union does too.
(a) A hidden cell is determined only if it is a union of whole regions (for that statistic's respondents); such
    cells are found and either published (it tells nothing new) or broken up by hiding more.
(c) Given the region sums and the bounds, the regions vary independently, so the feasible range of a hidden
    cell's sum is the sum over the regions it meets of the range of its part of each region:
    ``[max(n1 lo, S - n2 hi), min(n1 hi, S - n2 lo)]`` for a part of ``n1`` respondents of a region of sum ``S``
    whose other ``n2`` respondents are outside the cell; a part that no published cell holds ranges freely. The
    real attacker's range contains this one, so ``width >= (hi - lo) / 4`` here implies it there.

The accepted limit (DESIGN.md): a published group whose members all gave the same answer reveals that answer, for
every subgroup too; hiding more cannot undo it. So a hidden cell all of whose respondents (for a statistic) sit in
published cells that are at one bound of that statistic is not held to (c) for it. Every other hidden cell is,
with those members counted as pinned.

The price of the stronger attacker is over-suppression where cuts of a high unit meet small groups below: a
published cut of the organisation by tenure makes every published team's members split by tenure a region, so
that cut is published only when each team's tenure groups hold 0 or at least ``k`` people (the real attacker
could not tell a team's split from the organisation's). Totals alone form a nested family; there the regions are
exactly what the real attacker knows, and the guard is exact.

The algorithm
-------------
1. Primary: hide every cell whose ``n`` is 1..k-1 for any statistic (``primary``); cells nobody is in are
   ``empty``. A cut is published only where its unit's total is.
2. Repair: audit (above) and, for every breach, hide one more published cell chosen among those that would
   enlarge the region(s) involved: a published cell just below the region (hiding it merges that cell's region
   into this one) or the region's own cheapest published cell (merging it into the region above). Cuts are
   cheaper to hide than totals; among equals, the smaller ``n``, then the lower cell index. A hidden cell that
   turns out to be a union of regions is published again once (it adds nothing: no region splits and nothing
   derivable changes). Hiding only merges regions, and a merge never makes a hidden cell determined or
   narrower, so a cell that passed is not checked again until something that splits a region is published.
   A determined cell is repaired through the regions wholly inside it (merging one of them with a region
   outside opens the cell). Every round hides at least one more cell and everything hidden passes, so the
   repair ends.
3. Cuts: a cut family (all values of one attribute of one unit) *fits* when each value splits every region below
   the unit into 0 or at least ``k`` people, attribute after attribute (so that two attributes together fit
   too). The fitting families are published with the totals from the start, then the repair runs.
   Deterministic, and independent of the order of the respondents.

   Earlier versions also tried a second order (totals alone repaired first, cuts added after) and a second round
   of the families that fit the repaired pattern; both published less for their time (``benchmarks/README.md``).

Cost: a few vectorised passes over (atoms x cells holding them) for the first round, its cells checked in blocks
of about 131,000 atoms on two threads (a cell inside one region is its own part, without a sparse product);
after it, only the cells not yet verified are checked, and while only hiding happens the regions are merged
from the last ones (old regions merge whole), a pass over the regions instead of the atoms. Whether a cell's
respondents all sit at a bound (the accepted limit) is worked out for the cells asked about only. The figures are
in ``benchmarks/README.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from threading import Lock

import numpy as np
import numpy.typing as npt
from scipy.sparse import csc_matrix, csr_matrix

from scoring.layout import COMPLEMENTARY, EMPTY, PRIMARY, PUBLISHED, RANGE, Layout, Statistic, Suppression, layout

__all__ = ["Findings", "partition_audit", "prepare", "suppress_partition", "suppress_prepared"]

IntArray = npt.NDArray[np.int64]
CountArray = npt.NDArray[np.int32]  # respondent counts: int32 halves the memory every pass moves
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

_EPS = 1e-9
_UNANIMOUS = Lock()


@dataclass(frozen=True)
class _Problem:
    lay: Layout
    anc: IntArray  # (U, D+1) ancestors, self first, -1 padded
    depth: IntArray  # (U,)
    atom_cells: CountArray  # (m, L) ``lay.atom_cells`` as int32
    atom_n: CountArray  # (m, G) respondents of each presence group per atom
    atom_n_f: npt.NDArray[np.float32]  # the same as float32 (exact below 2**24), for sparse products
    atom_sum: FloatArray  # (m, S) sums of each bounded statistic per atom
    stat_group: IntArray  # (S,) presence group of each bounded statistic
    lo: FloatArray  # (S,)
    hi: FloatArray  # (S,)
    cell_n: CountArray  # (C, G) respondents per cell and group (C = units * width)
    stat_n: CountArray  # (C, S) the same per bounded statistic (its group's column)
    cell_ptr: IntArray  # (C + 1,) the atoms of cell c are ``cell_atoms[cell_ptr[c]:cell_ptr[c + 1]]``
    cell_atoms: IntArray
    names: tuple[str, ...]  # group names, for reports
    unanimous: BoolArray  # (C, S) ``_unanimous`` of each cell, filled in as cells are asked about ...
    known: BoolArray  # (C,) ... those asked about


@dataclass(frozen=True)
class Findings:
    """What one audit under the region model found (cell indices are ``unit * width + column``)."""

    small_regions: IntArray  # regions holding 1..k-1 respondents of some statistic
    determined: IntArray  # hidden cells that are unions of whole regions for some statistic
    pinned: IntArray  # hidden cells whose feasible mean range is narrower than a quarter of the scale

    def __bool__(self) -> bool:
        return bool(self.small_regions.size or self.determined.size or self.pinned.size)


def prepare(
    parent: npt.ArrayLike,
    unit: npt.ArrayLike,
    codes: npt.ArrayLike,
    n_values: Sequence[int],
    k: int,
    statistics: Sequence[Statistic],
) -> _Problem:
    """What ``suppress_partition`` decides on, made ahead (it needs no pattern): for ``suppress_prepared``."""
    lay = layout(parent, unit, codes, n_values, k)
    par = lay.parent
    n_units = lay.n_units
    anc_cols = [np.arange(n_units)]
    cur = par.copy()
    while np.any(cur >= 0):
        anc_cols.append(cur)
        cur = np.where(cur >= 0, par[np.maximum(cur, 0)], -1)
    anc = np.stack(anc_cols, axis=1).astype(np.int64)
    depth = ((anc >= 0).sum(axis=1) - 1).astype(np.int64)

    n_resp = lay.atom_of.shape[0]
    if n_resp >= 2**24:  # counts are summed as float32 (exact below 2**24): more than any organisation has
        raise ValueError("the guard takes at most 16,777,215 respondents per table")
    m = lay.atom_unit.shape[0]
    groups: dict[bytes, int] = {}
    presence: list[BoolArray] = []
    names: list[str] = []
    sums: list[FloatArray] = []
    stat_group: list[int] = []
    lo: list[float] = []
    hi: list[float] = []
    for st in statistics:
        present = np.asarray(st.present, dtype=np.bool_)
        if present.shape != (n_resp,):
            raise ValueError(f"statistic {st.name!r}: present must have shape ({n_resp},)")
        key = np.packbits(present).tobytes()
        if key not in groups:
            groups[key] = len(presence)
            presence.append(present)
            names.append(st.name or "statistic")
        if st.values is None or st.bounds is None:
            continue
        values = np.asarray(st.values, dtype=np.float64)
        if values.shape != (n_resp,):
            raise ValueError(f"statistic {st.name!r}: values must have shape ({n_resp},)")
        low, high = float(st.bounds[0]), float(st.bounds[1])
        if not high > low:
            raise ValueError(f"statistic {st.name!r}: bounds must have min < max")
        v = values[present]
        if not np.all(np.isfinite(v)) or np.any(v < low) or np.any(v > high):
            raise ValueError(f"statistic {st.name!r}: a present respondent's value is missing or out of bounds")
        sums.append(np.bincount(lay.atom_of[present], weights=v, minlength=m).astype(np.float64))
        stat_group.append(groups[key])
        lo.append(low)
        hi.append(high)
    if not presence:
        presence.append(np.ones(n_resp, dtype=np.bool_))
        names.append("respondents")
    atom_n = np.stack([np.bincount(lay.atom_of[p], minlength=m) for p in presence], axis=1).astype(np.int32)
    atom_sum = np.stack(sums, axis=1) if sums else np.zeros((m, 0))

    # Cell n per group: each atom adds to every cell that holds it (``atom_cells``, padded with a sentinel).
    size = lay.size
    # Built column by column (an atom's cells are its row of ``atom_cells``), then turned into rows: no sort.
    cells = lay.atom_cells
    keep = cells < size
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    incidence = csc_matrix((np.ones(int(indptr[-1])), cells[keep], indptr), shape=(size, m)).tocsr()
    atom_n_f = atom_n.astype(np.float32)
    cell_n = np.rint(incidence.astype(np.float32) @ atom_n_f).astype(np.int32)
    group_of = np.asarray(stat_group, dtype=np.int64)
    low_bound, high_bound = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    stat_n = np.take(cell_n, group_of, axis=1)
    return _Problem(
        lay, anc, depth, lay.atom_cells.astype(np.int32), atom_n, atom_n_f, atom_sum, group_of, low_bound,
        high_bound, cell_n, stat_n, incidence.indptr.astype(np.int64), incidence.indices.astype(np.int64), tuple(names),
        np.zeros((size, group_of.size), dtype=np.bool_), np.zeros(size, dtype=np.bool_),
    )  # fmt: skip


def _unanimous(pb: _Problem, cells: IntArray) -> BoolArray:
    """(len(cells), S): whether all of a cell's respondents sit at one bound of a statistic (|sum - n lo| or
    |n hi - sum| below 1e-6). Computed for a cell the first time it is asked about (the accepted limit is seldom
    needed, and then for the cells around a few narrow ones), then kept."""
    with _UNANIMOUS:  # the audit's blocks ask on two threads
        _fill_unanimous(pb, cells[~pb.known[cells]])
        return np.asarray(pb.unanimous[cells])


def _fill_unanimous(pb: _Problem, new: IntArray) -> None:
    """``_unanimous`` of the cells ``new``, into the problem's table."""
    if new.size:
        start, size = pb.cell_ptr[new], np.diff(pb.cell_ptr)[new]
        atoms = pb.cell_atoms[np.repeat(start - (np.cumsum(size) - size), size) + np.arange(int(size.sum()))]
        total = _group_sum(np.repeat(np.arange(new.size), size), new.size, pb.atom_sum[atoms])
        n = np.take(pb.stat_n, new, axis=0)
        at_bound = (np.abs(total - n * pb.lo) < 1e-6) | (np.abs(n * pb.hi - total) < 1e-6)
        pb.unanimous[new] = at_bound & (n > 0)
        pb.known[new] = True


@dataclass(frozen=True)
class _Regions:
    region: IntArray  # (m,) region of each atom, -1 where no published cell holds it (free)
    count: int
    rep: IntArray  # (count,) an atom of each region
    n: CountArray  # (count + 1, G): the last row (index -1) sums the free atoms, never read as a region
    total: FloatArray  # (count + 1, S)
    signature: npt.NDArray[np.uint64]  # (count,) the set hash of each region's published cells


def _signatures(
    cells: CountArray, published: BoolArray, weights: npt.NDArray[np.uint64]
) -> tuple[BoolArray, npt.NDArray[np.uint64], BoolArray]:
    """For rows of the cells holding an atom: which are published (the sentinel column never is), the set hash of
    the published ones (0 for a row with none), and the rows with none (free)."""
    pub = np.append(published, False)[cells]
    sig = np.append(np.where(published, weights, np.uint64(0)), np.uint64(0))[cells].sum(axis=1, dtype=np.uint64)
    free: BoolArray = np.asarray(~pub.any(axis=1))
    sig[free] = 0
    return pub, sig, free


def _without_free(group: IntArray, first_is_free: BoolArray) -> tuple[IntArray, int | None]:
    """The free atoms (empty signature) are not a region: their group becomes -1 and the others are numbered
    0..count-1. Also returns the free group's old number (None when there is none)."""
    found = np.flatnonzero(first_is_free)
    if not found.size:
        return group, None
    f = int(found[0])
    return np.where(group == f, -1, np.where(group > f, group - 1, group)), f


def _regions(pb: _Problem, published: BoolArray, weights: npt.NDArray[np.uint64]) -> _Regions:
    """Atoms grouped by the exact set of published cells that hold them."""
    cells = pb.atom_cells
    pub, sig, free = _signatures(cells, published, weights)
    masked = np.where(pub, cells, -1)
    uniq, first, region = np.unique(sig, return_index=True, return_inverse=True)
    region = region.reshape(-1).astype(np.int64)
    # Exactness: a hash collision would merge two different signatures. Check every atom against its region's
    # first atom; on any mismatch, group by the (sorted) cell lists themselves.
    ordered = np.sort(masked, axis=1)
    if not np.array_equal(ordered, ordered[first[region]]):
        _, first, region = np.unique(ordered, axis=0, return_index=True, return_inverse=True)
        region = region.reshape(-1).astype(np.int64)
        uniq = sig[first]
    region, f = _without_free(region, free[first])
    if f is not None:
        first, uniq = np.delete(first, f), np.delete(uniq, f)
    count = first.size
    # one extra row at the end for the free atoms ("region" -1): never read as a region
    row = np.where(region >= 0, region, count)
    n = np.rint(_group_sum(row, count + 1, pb.atom_n_f)).astype(np.int32)
    total = np.asarray(_group_sum(row, count + 1, pb.atom_sum), dtype=np.float64)
    return _Regions(region, count, first, n, total, uniq)


def _merged(pb: _Problem, old: _Regions, published: BoolArray, weights: npt.NDArray[np.uint64]) -> _Regions | None:
    """``_regions(pb, published, weights)`` after more cells were hidden since ``old`` (``published`` is a subset of
    what was published then), or cells that are unions of whole old regions were published, computed from the old
    regions alone: the atoms of an old region hold the same published cells, so a newly hidden or published cell
    holds all of them or none, and old regions merge whole (or stay). Same regions, numbering and representatives
    as the full computation; None on a hash collision (then compute in full)."""
    own = pb.atom_cells[old.rep]  # (count, L): the cells holding each old region's atoms
    pub, sig, free = _signatures(own, published, weights)
    uniq, first, group = np.unique(sig, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    ordered = np.sort(np.where(pub, own, -1), axis=1)
    if not np.array_equal(ordered, ordered[first[group]]):
        return None
    group, f = _without_free(group, free[first])  # old regions that lost their last published cell join them
    if f is not None:
        uniq = np.delete(uniq, f)
    count = uniq.size
    # each region's representative is its lowest atom, as np.unique's first occurrence in the full computation
    rep = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    inside = group >= 0
    np.minimum.at(rep, group[inside], old.rep[inside])
    row = np.append(np.where(inside, group, count), count)  # old free atoms (the last row) stay free
    n = np.rint(_group_sum(row, count + 1, old.n.astype(np.float32))).astype(np.int32)
    total = np.asarray(_group_sum(row, count + 1, old.total), dtype=np.float64)
    region = np.append(np.where(inside, group, -1), -1)[old.region]
    return _Regions(region, count, rep, n, total, uniq)


@dataclass(frozen=True)
class _Parts:
    """Hidden cells cut into their parts: one row per (hidden cell, region or free) it meets."""

    cell: IntArray
    region: IntArray  # -1: the cell's free atoms
    n: CountArray  # (P, G)


def _group_sum(index: IntArray, n_rows: int, values: npt.NDArray[np.generic]) -> npt.NDArray[np.floating]:
    """Row sums of ``values`` grouped by ``index`` (one sparse product, much faster than ``np.add.at``).

    Float64 values are summed as float64; counts and marks as float32, exact for sums below 2**24."""
    kind = np.float64 if values.dtype == np.float64 else np.float32
    if values.shape[1] == 0:
        return np.zeros((n_rows, 0), dtype=kind)
    ones = np.ones(index.size, dtype=kind)
    matrix = csr_matrix((ones, (index, np.arange(index.size))), shape=(n_rows, index.size))
    return np.asarray(matrix @ (values if values.dtype == kind else values.astype(kind)))


def _parts(pb: _Problem, look: BoolArray, reg: _Regions) -> _Parts:
    """The parts of the cells marked in ``look`` (hidden, non-empty cells to check)."""
    # the looked-at cells' atoms, straight from the cell -> atoms index (a round after the first looks at few)
    looked = np.flatnonzero(look)
    start, size = pb.cell_ptr[looked], np.diff(pb.cell_ptr)[looked]
    offset = np.repeat(start - (np.cumsum(size) - size), size)
    region = reg.region[pb.cell_atoms[offset + np.arange(int(size.sum()))]]
    # Most hidden cells lie inside one region (a team's cuts, a small hidden team): their one part is the whole
    # cell, whose n is known. Only the others are cut up, with one sparse product (parts x atoms).
    bounds = np.cumsum(size) - size
    lowest = np.minimum.reduceat(region, bounds) if region.size else region
    single = lowest == (np.maximum.reduceat(region, bounds) if region.size else region)
    entry = np.flatnonzero(np.repeat(~single, size))
    key = np.repeat(looked[~single], size[~single]) * (reg.count + 1) + (region[entry] + 1)
    uniq, inverse = _unique_runs(key)
    matrix = csr_matrix(
        (np.ones(entry.size, dtype=np.float32), (inverse.reshape(-1), pb.cell_atoms[offset[entry] + entry])),
        shape=(uniq.size, pb.atom_n.shape[0]),
    )
    n = np.rint(matrix @ pb.atom_n_f).astype(np.int32)
    # both kinds together, in the order of (cell, region)
    cell = np.concatenate([looked[single], uniq // (reg.count + 1)])
    part_region = np.concatenate([lowest[single], uniq % (reg.count + 1) - 1])
    order = np.argsort(cell * (reg.count + 1) + part_region + 1, kind="stable")
    n = np.concatenate([np.take(pb.cell_n, looked[single], axis=0), n])
    return _Parts(cell[order], part_region[order], n[order])


def _unique_runs(key: IntArray) -> tuple[IntArray, IntArray]:
    """``np.unique(key, return_inverse=True)`` for keys that come in sorted runs (cells in order, regions in any
    order within a cell): a stable sort (timsort) takes the runs as they are, several times faster here."""
    if key.size == 0:
        return key, key
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    first = np.empty(key.size, dtype=np.bool_)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(key.size, dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def _check(
    pb: _Problem, reg: _Regions, parts: _Parts, published: BoolArray
) -> tuple[BoolArray, BoolArray, BoolArray, BoolArray]:
    """Breaches among the parts' cells: (small regions (count,), determined cells (C,), pinned cells (C,)), and
    the cells (C,) that pass the range rule only by the accepted limit."""
    k = pb.lay.k
    size = pb.lay.size
    small: BoolArray = np.asarray(((reg.n[:-1] > 0) & (reg.n[:-1] < k)).any(axis=1))
    determined = np.zeros(size, dtype=np.bool_)
    pinned = np.zeros(size, dtype=np.bool_)
    exempted = np.zeros(size, dtype=np.bool_)  # narrow but for the accepted limit
    if parts.cell.size == 0:
        return small, determined, pinned, exempted
    cells, row = np.unique(parts.cell, return_inverse=True)
    row = row.reshape(-1)
    is_free = parts.region < 0
    outside = np.take(reg.n, parts.region, axis=0) - parts.n  # respondents of the region outside the cell
    outside[is_free] = np.iinfo(np.int32).max  # a free part: nothing published bounds it from outside
    # a part is "open" for a group when the cell has respondents there and the region reaches outside the cell
    open_part = (parts.n > 0) & (outside > 0)
    open_cells = _group_sum(row, cells.size, open_part)
    determined[cells] = ((np.take(pb.cell_n, cells, axis=0) > 0) & (open_cells == 0)).any(axis=1)

    if pb.stat_group.size:
        g = pb.stat_group
        n_stat = np.take(pb.stat_n, cells, axis=0)
        # A cell whose free respondents (no published cell holds them) are a quarter of it passes at once.
        free_n = _group_sum(row[is_free], cells.size, parts.n[is_free][:, g])
        todo: BoolArray = np.asarray(((n_stat > 0) & (free_n < n_stat / 4.0 - _EPS)).any(axis=1))
        keep = todo[row]
        if keep.any():
            pinned[cells[todo]], strict = _narrow(pb, reg, parts, published, keep, todo, row, outside, n_stat[todo])
            exempted[cells[todo]] = strict
    return small, determined, pinned, exempted


def _narrow(
    pb: _Problem,
    reg: _Regions,
    parts: _Parts,
    published: BoolArray,
    keep: BoolArray,
    todo: BoolArray,
    row: IntArray,
    outside: CountArray,
    n_stat: CountArray,
) -> tuple[BoolArray, BoolArray]:
    """Rule (c) for the cells ``todo`` (their parts ``keep``): whose feasible mean range is too narrow, with and
    without the accepted-limit exemption (a cell passing only by the exemption must be checked again later: hiding
    the unanimous cell it rests on takes the exemption away).

    The range of a part's sum is d * min(n1, n2, slack) with d = hi - lo, n1 respondents inside the cell, n2 in
    the region outside it and slack = min(S - n lo, n hi - S) / d of the region: the four ends of
    [max(n1 lo, S - n2 hi), min(n1 hi, S - n2 lo)] subtracted pairwise. A free part ranges over d * n1.
    """
    g = pb.stat_group
    compact = np.cumsum(todo) - 1
    kept = np.flatnonzero(keep)
    rows = compact[row[kept]]  # non-decreasing: parts come sorted by cell
    region = parts.region[kept]
    d = pb.hi - pb.lo
    reg_stat_n = reg.n[:, g].astype(np.float64)
    slack = np.minimum(reg.total - reg_stat_n * pb.lo, reg_stat_n * pb.hi - reg.total) / d
    slack[-1] = np.inf  # the free parts' row
    n_cells = int(todo.sum())
    narrow = np.zeros((n_cells, g.size), dtype=np.bool_)
    for start, stop, first, last in _chunks(rows):
        # min(n1, n2) per group (a free part's n2 is unbounded: n1 alone), then per statistic with its slack
        inner = np.minimum(np.take(parts.n, kept[start:stop], axis=0), np.take(outside, kept[start:stop], axis=0))
        width = np.take(slack, region[start:stop], axis=0)  # np.take: several times faster than fancy indexing
        np.minimum(width, np.take(inner, g, axis=1), out=width)
        low = _group_sum(rows[start:stop] - first, last - first, width) < n_stat[first:last] / 4.0 - _EPS
        narrow[first:last] = (n_stat[first:last] > 0) & low
    strict = np.asarray(narrow.any(axis=1))
    if not strict.any():
        return strict, strict
    # The accepted limit (DESIGN.md): a published group whose members all gave the same answer reveals it, for
    # every subgroup too. A hidden cell all of whose respondents sit in such published groups (for this
    # statistic, at one of its bounds) is pinned by that, not by the suppression: it is not held to the range
    # rule. Every other hidden cell is, counting those members as pinned. (Only the narrow cells' parts.)
    sel = strict[rows]
    rows, region, n1 = rows[sel], region[sel], np.take(parts.n, kept[sel], axis=0)
    used = np.unique(region[region >= 0])
    own = pb.atom_cells[reg.rep[used]]
    pub = np.append(published, False)[own]
    asked = np.unique(own[pub])
    unanimous = np.vstack([_unanimous(pb, asked), np.zeros((1, g.size), dtype=np.bool_)])
    where = np.where(pub, np.searchsorted(asked, own), asked.size)  # the last row: False
    exempt = np.zeros((reg.count + 1, g.size), dtype=np.bool_)
    for j in range(own.shape[1]):
        exempt[used] |= unanimous[where[:, j]]
    pinned = np.zeros(n_cells, dtype=np.bool_)
    for start, stop, first, last in _chunks(rows):
        pinned_n = np.where(np.take(exempt, region[start:stop], axis=0), np.take(n1[start:stop], g, axis=1), 0)
        known = _group_sum(rows[start:stop] - first, last - first, pinned_n)
        pinned[first:last] = (narrow[first:last] & (n_stat[first:last] > known)).any(axis=1)
    return pinned, strict


_CHUNK = 1 << 15  # parts per chunk: (parts x statistics) temporaries that stay in the cache


def _chunks(rows: IntArray) -> list[tuple[int, int, int, int]]:
    """Slices ``[start, stop)`` of about ``_CHUNK`` parts that never split a cell (``rows`` non-decreasing), each
    with its cells' range ``[first, last)``."""
    if rows.size == 0:
        return []
    cuts = np.unique(np.searchsorted(rows, rows[::_CHUNK], side="left"))
    bounds = np.append(cuts, rows.size).tolist()
    return [(a, b, int(rows[a]), int(rows[b - 1]) + 1) for a, b in pairwise(bounds)]


_BLOCK = 1 << 17  # atoms of the cells one audit block looks at: its arrays stay small, and their memory is reused


def _audit(
    pb: _Problem, reg: _Regions, look: BoolArray, published: BoolArray
) -> tuple[_Parts, BoolArray, BoolArray, BoolArray, BoolArray]:
    """``_check`` of the cells ``look``, a block of cells at a time (a first round looks at 100,000 cells and
    400,000 parts: one pass over all of them at once allocates and touches gigabytes). Returns the parts of the
    determined and pinned cells (what the repair reads) and ``_check``'s findings for all of them."""
    size = pb.lay.size
    looked = np.flatnonzero(look)
    block = np.cumsum(np.diff(pb.cell_ptr)[looked]) // _BLOCK
    starts = np.flatnonzero(np.append(True, block[1:] != block[:-1])) if looked.size else np.zeros(0, np.int64)
    determined = np.zeros(size, dtype=np.bool_)
    pinned = np.zeros(size, dtype=np.bool_)
    exempted = np.zeros(size, dtype=np.bool_)
    small = np.asarray(((reg.n[:-1] > 0) & (reg.n[:-1] < pb.lay.k)).any(axis=1))

    def one(bounds: tuple[int, int]) -> tuple[_Parts, BoolArray, BoolArray, BoolArray]:
        mask = np.zeros(size, dtype=np.bool_)
        mask[looked[bounds[0] : bounds[1]]] = True
        parts = _parts(pb, mask, reg)
        _, d, p, e = _check(pb, reg, parts, published)
        keep = (d | p)[parts.cell]
        return _Parts(parts.cell[keep], parts.region[keep], parts.n[keep]), d, p, e

    blocks = list(pairwise([*starts.tolist(), looked.size]))
    if len(blocks) > 1:  # a full round: its blocks on two threads (numpy lets go of the interpreter lock)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="peil-audit") as pool:
            found = list(pool.map(one, blocks))
    else:
        found = [one(b) for b in blocks]
    kept: list[_Parts] = []
    for part, d, p, e in found:
        kept.append(part)
        determined |= d
        pinned |= p
        exempted |= e
    groups = pb.atom_n.shape[1]
    parts = _Parts(
        np.concatenate([k.cell for k in kept]) if kept else np.zeros(0, np.int64),
        np.concatenate([k.region for k in kept]) if kept else np.zeros(0, np.int64),
        np.concatenate([k.n for k in kept]) if kept else np.zeros((0, groups), np.int32),
    )
    return parts, small, determined, pinned, exempted


def partition_audit(
    parent: npt.ArrayLike,
    unit: npt.ArrayLike,
    codes: npt.ArrayLike,
    n_values: Sequence[int],
    k: int,
    statistics: Sequence[Statistic],
    hidden: npt.ArrayLike,
) -> Findings:
    """Audit a suppression pattern ``hidden`` (n_units, width) under the region model; empty findings = safe."""
    pb = prepare(parent, unit, codes, n_values, k, statistics)
    hid = np.asarray(hidden, dtype=np.bool_).reshape(-1)
    primary = ((pb.cell_n > 0) & (pb.cell_n < k)).any(axis=1) & ~hid
    weights = _weights(pb.lay.size)
    reg = _regions(pb, ~hid, weights)
    parts = _parts(pb, hid & pb.cell_n.any(axis=1), reg)
    small, determined, pinned, _ = _check(pb, reg, parts, ~hid)
    if primary.any():  # a published small cell is a small region of its own kind: report it as one
        determined = determined | primary
    return Findings(np.flatnonzero(small), np.flatnonzero(determined), np.flatnonzero(pinned))


def _weights(size: int) -> npt.NDArray[np.uint64]:
    """A fixed random 64-bit weight per cell (the set hash of a signature is the sum of its cells' weights)."""
    w = np.random.default_rng(20261123).integers(1, 2**63 - 1, size=size, dtype=np.int64).astype(np.uint64)
    return w * np.uint64(2) + np.uint64(1)


def suppress_partition(
    parent: npt.ArrayLike,
    unit: npt.ArrayLike,
    codes: npt.ArrayLike,
    n_values: Sequence[int],
    k: int,
    statistics: Sequence[Statistic],
    hidden_before: npt.ArrayLike | None = None,
    *,
    locked: npt.ArrayLike | None = None,
) -> Suppression:
    """The one suppression pattern of a wave's table (module docstring): ``(n_units, 1 + sum(n_values))``.

    ``hidden_before``: the pattern an earlier build of the same table served, when it is built again (a new
    engine, a fixed bug). The pattern hides at least those cells, so that what both builds publish together is
    no more than the earlier build published, and nobody can difference the two. When the pattern built afresh
    already does (the usual case, the same engine), it is the one returned: a rebuild gives the same table.
    Otherwise the build starts again with those cells locked hidden.

    ``locked``: cells hidden whatever the statistics say (a second stage of ``scoring.build``, whose statistics
    are published only in cells the first stage publishes); the pattern is safe with them hidden.
    """
    return suppress_prepared(prepare(parent, unit, codes, n_values, k, statistics), hidden_before, locked=locked)


def suppress_prepared(
    pb: _Problem, hidden_before: npt.ArrayLike | None = None, *, locked: npt.ArrayLike | None = None
) -> Suppression:
    """``suppress_partition`` on a problem made by ``prepare``."""
    shape = (pb.lay.n_units, pb.lay.width)
    before = None if hidden_before is None else np.asarray(hidden_before, dtype=np.bool_)
    if before is not None and before.shape != shape:
        raise ValueError(f"hidden_before must have shape {shape}")
    always = np.zeros(pb.lay.size, dtype=np.bool_) if locked is None else np.asarray(locked, dtype=np.bool_)
    if always.size != pb.lay.size:
        raise ValueError(f"locked must have shape {shape}")
    always = always.reshape(-1)
    fresh = _decide(pb, always.copy())
    if before is None or not np.any(before & ~np.asarray(fresh.hidden)):
        return fresh
    return _decide(pb, before.reshape(-1) | always)


def _decide(pb: _Problem, locked: BoolArray) -> Suppression:
    """The pattern (module docstring), with the ``locked`` cells never published."""
    lay = pb.lay
    size, width, k = lay.size, lay.width, lay.k
    nonempty = pb.cell_n.any(axis=1)
    reason = np.full(size, PUBLISHED, dtype=np.int8)
    reason[~nonempty] = EMPTY
    reason[nonempty & ((pb.cell_n > 0) & (pb.cell_n < k)).any(axis=1)] = PRIMARY
    is_cut = (np.arange(size) % width) > 0
    reason[is_cut & (reason == PUBLISHED)] = COMPLEMENTARY
    reason[locked & (reason == PUBLISHED)] = COMPLEMENTARY
    # The cut families that fit the totals start published with them, then the repair runs. A cut family fits
    # when each of its values splits every region below its unit into 0 or at least k people, given the families
    # already taken (attribute by attribute: two attributes together must fit too).
    best = _State(pb, reason, locked)
    best.take_families()
    best.repair()
    # DESIGN.md: every published table is audited before it is served. One full audit of the final pattern
    # (nothing taken from earlier rounds); it passes unless the incremental checks missed something, in which
    # case the repair goes on from there.
    best.verified[:] = False
    best.repair()
    return best.result()


class _State:
    """A suppression pattern under repair: ``reason`` per cell (``PUBLISHED`` or why it is hidden)."""

    def __init__(self, pb: _Problem, reason: npt.NDArray[np.int8], locked: BoolArray | None = None) -> None:
        size, width = pb.lay.size, pb.lay.width
        self.pb = pb
        self.reason = reason
        self.locked = np.zeros(size, dtype=np.bool_) if locked is None else locked  # never published
        self.republished = np.zeros(size, dtype=np.bool_)
        self.weights = _weights(size)
        self.nonempty = pb.cell_n.any(axis=1)
        self.unit_of = np.arange(size) // width
        self.col_of = np.arange(size) % width
        # cost of hiding a cell: any cut before any total, then the smaller n, then the lower index
        order = np.lexsort((np.arange(size), pb.cell_n.max(axis=1), self.col_of == 0))
        self.rank = np.empty(size, dtype=np.int64)
        self.rank[order] = np.arange(size)
        # Hiding more cells only merges regions, and a merge never makes a hidden cell determined or narrower: a
        # hidden cell that passed stays passed until a cell is published again, so a round checks only the rest.
        self.verified = np.zeros(size, dtype=np.bool_)
        self._cached: tuple[BoolArray, _Regions] | None = None

    def regions(self) -> _Regions:
        """The regions of the current pattern: merged from the last ones when only hiding happened since."""
        published = ~self.hidden
        reg = None
        if self._cached is not None and not np.any(published & ~self._cached[0]):
            reg = _merged(self.pb, self._cached[1], published, self.weights)
        if reg is None:
            reg = _regions(self.pb, published, self.weights)
        self._cached = (published, reg)
        return reg

    @property
    def hidden(self) -> BoolArray:
        return np.asarray(self.reason != PUBLISHED)

    def result(self) -> Suppression:
        shape = (self.pb.lay.n_units, self.pb.lay.width)
        return Suppression(hidden=self.hidden.reshape(shape), reason=self.reason.reshape(shape))

    def publish(self, cells: BoolArray, reg: _Regions | None = None) -> None:
        """Publish ``cells`` (locked cells stay hidden). In general that splits the regions they meet, and every
        hidden cell is checked again. Given ``reg``, the cells are unions of whole regions (hidden cells found to
        add nothing): no region splits and nothing the attacker can derive changes, so nothing is checked again,
        and the regions are kept with their new signatures."""
        cells = cells & ~self.locked
        self.reason[cells] = PUBLISHED
        if reg is None:
            self.verified[:] = False
            return
        published = ~self.hidden
        merged = _merged(self.pb, reg, published, self.weights)
        self._cached = None if merged is None else (published, merged)

    def _orphans(self) -> BoolArray:
        """Published cuts of units whose total is hidden."""
        hidden = self.hidden
        return (self.col_of > 0) & hidden.reshape(-1, self.pb.lay.width)[:, 0][self.unit_of] & ~hidden

    def repair(self) -> None:
        """Hide cells until the audit passes (module docstring, step 2)."""
        pb = self.pb
        while True:
            hidden = self.hidden
            reg = self.regions()
            look = hidden & self.nonempty & ~self.verified
            parts, small, determined, pinned, exempted = _audit(pb, reg, look, ~hidden)
            self.verified |= look & ~determined & ~pinned & ~exempted
            # A hidden cell that is a union of whole regions for every statistic adds nothing: publish it (once: a
            # cell hidden again later stays hidden, so the loop ends).
            cut_of_hidden = (self.col_of > 0) & hidden.reshape(-1, pb.lay.width)[:, 0][self.unit_of]
            free = determined & _unions(pb, hidden, reg, parts) & (self.reason != PRIMARY)
            free &= ~cut_of_hidden & ~self.republished & ~self.locked
            if free.any():
                self.publish(free, reg)
                self.republished |= free
                continue
            if not (small.any() or determined.any() or pinned.any()):
                return
            touched = np.isin(parts.cell, np.flatnonzero(determined | pinned)) & (parts.region >= 0)
            needed = np.union1d(np.flatnonzero(small), parts.region[touched])
            down = _down(pb, reg, ~hidden, self.weights, needed)
            up = _up(pb, reg, ~hidden, self.rank)
            fixes = [(_pick_for_regions(np.flatnonzero(small), down, up, self.rank), COMPLEMENTARY)]
            for bad, why in ((np.flatnonzero(determined), COMPLEMENTARY), (np.flatnonzero(pinned), RANGE)):
                if bad.size:
                    touch = touched & np.isin(parts.cell, bad)
                    if why == COMPLEMENTARY:
                        # a determined cell opens up only where a region wholly inside it merges with one that is
                        # not: those regions' candidates (all of its regions' where it has none)
                        whole = touch & (parts.n >= np.take(reg.n, parts.region, axis=0)).all(axis=1)
                        touch = np.where(np.isin(parts.cell, parts.cell[whole]), whole, touch)
                    cells = _pick_for_cells(
                        bad, parts.cell[touch], parts.region[touch], down, up, self.rank, pb, ~hidden,
                        inside=why == RANGE,
                    )  # fmt: skip
                    fixes.append((cells, why))
            progressed = False
            for cells, why in fixes:
                cells = cells[self.reason[cells] == PUBLISHED]
                if cells.size:
                    self.reason[cells] = why
                    progressed = True
            self.reason[self._orphans()] = COMPLEMENTARY  # a cut is published only where its unit's total is
            if not progressed:
                raise RuntimeError("the partition guard found no cell to hide for a breach (never expected)")

    def take_families(self) -> None:
        """Publish, attribute by attribute, the cut families that fit what is published so far."""
        for a in range(self.pb.lay.offsets.size):
            self.publish(self.cut_families(a))

    def cut_families(self, a: int) -> BoolArray:
        """Cut cells of attribute ``a`` (all values of one unit) that split no region below into a small group."""
        pb = self.pb
        lay = pb.lay
        width = lay.width
        hidden = self.hidden
        reg = self.regions()
        inside = reg.region >= 0
        total_pub = ~hidden.reshape(-1, width)[:, 0]
        first = int(lay.offsets[a])
        n_val = int(np.diff(np.append(lay.offsets, width))[a])
        key = reg.region[inside] * n_val + lay.atom_codes[inside, a]
        split = _group_sum(key, reg.count * n_val, pb.atom_n_f[inside])
        split = split.reshape(reg.count, n_val, pb.atom_n.shape[1])
        small = ((split > 0) & (split < lay.k)).any(axis=(1, 2))  # (count,)
        # no published total holding a region that this attribute splits badly can be cut by it
        anc = pb.anc[lay.atom_unit[reg.rep[small]]]
        anc = anc[anc >= 0]
        bad = np.zeros(lay.n_units, dtype=np.bool_)
        bad[anc[total_pub[anc]]] = True
        families = np.zeros((lay.n_units, width), dtype=np.bool_)
        families[:, first : first + n_val] = (total_pub & ~bad)[:, None]
        out = families.reshape(-1) & self.nonempty & ~((pb.cell_n > 0) & (pb.cell_n < lay.k)).any(axis=1)
        return np.asarray(out & hidden & (self.reason != PRIMARY))


def _unions(pb: _Problem, hidden: BoolArray, reg: _Regions, parts: _Parts) -> BoolArray:
    """Hidden cells that are unions of whole regions for every group (no free part, nothing of a region outside)."""
    size = pb.lay.size
    is_free = parts.region < 0
    reg_n = reg.n[parts.region]
    leaks = is_free | ((reg_n - parts.n) > 0).any(axis=1)
    bad = np.zeros(size, dtype=np.bool_)
    bad[parts.cell[leaks]] = True
    return hidden & ~bad


def _down(
    pb: _Problem, reg: _Regions, published: BoolArray, weights: npt.NDArray[np.uint64], needed: IntArray
) -> tuple[IntArray, IntArray]:
    """Pairs (region, published cell) such that hiding the cell merges a region into that region, for the regions
    ``needed`` (sorted)."""
    cells = pb.atom_cells[reg.rep]  # (count, L)
    pub = np.append(published, False)[cells]
    r_idx, l_idx = np.nonzero(pub)
    cell = cells[r_idx, l_idx]
    target = reg.signature[r_idx] - weights[cell]
    wanted = reg.signature[needed]
    order = np.argsort(wanted)
    if not wanted.size:
        return needed, needed
    pos = np.minimum(np.searchsorted(wanted[order], target), wanted.size - 1)
    hit = wanted[order][pos] == target
    return needed[order[pos[hit]]], cell[hit]


def _up(pb: _Problem, reg: _Regions, published: BoolArray, rank: IntArray) -> IntArray:
    """For each region, its cheapest published cell (hiding it merges the region into the one above)."""
    cells = pb.atom_cells[reg.rep]
    pub = np.append(published, False)[cells]
    r = np.where(pub, np.append(rank, np.iinfo(np.int64).max)[cells], np.iinfo(np.int64).max)
    best = np.argmin(r, axis=1)
    return np.asarray(cells[np.arange(reg.count), best], dtype=np.int64)


def _pick_for_regions(bad: IntArray, down: tuple[IntArray, IntArray], up: IntArray, rank: IntArray) -> IntArray:
    """For each bad region, the cheapest of the cells just below it and its own cheapest cell."""
    if bad.size == 0:
        return np.zeros(0, dtype=np.int64)
    dr, dc = down
    sel = np.isin(dr, bad)
    return _cheapest(np.concatenate([dr[sel], bad]), np.concatenate([dc[sel], up[bad]]), rank)


def _pick_for_cells(
    bad: IntArray,
    pc: IntArray,
    pr: IntArray,
    down: tuple[IntArray, IntArray],
    up: IntArray,
    rank: IntArray,
    pb: _Problem,
    published: BoolArray,
    *,
    inside: bool,
) -> IntArray:
    """For each bad hidden cell, the cheapest cell just below or above any region it meets.

    ``inside``: whether cells inside the bad cell may be chosen (they widen its range, but never break up a
    determined cell).
    """
    dr, dc = down
    order = np.argsort(dr, kind="stable")
    dr, dc = dr[order], dc[order]
    start = np.searchsorted(dr, pr, side="left")
    counts = np.searchsorted(dr, pr, side="right") - start
    idx = np.repeat(start, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
    owner = np.concatenate([np.repeat(pc, counts), pc])
    cand = np.concatenate([dc[idx], up[pr]])
    if not inside and cand.size:
        # a cell inside the bad one never breaks up a determined cell while an outside candidate exists: rank
        # those last (they are the only way when everything around the cell is hidden)
        rank = np.append(rank, rank + rank.size)
        cand = np.where(_inside(pb, cand, owner), cand + pb.lay.size, cand)
    chosen = _cheapest(owner, cand, rank) % pb.lay.size
    # a bad cell without a candidate: its nearest published total above (progress, never expected to matter)
    missing = np.setdiff1d(bad, owner)
    if missing.size:
        chosen = np.concatenate([chosen, _published_above(pb, missing, published)])
    return chosen


def _inside(pb: _Problem, c: IntArray, h: IntArray) -> BoolArray:
    """Whether cell ``c`` lies inside cell ``h`` (elementwise)."""
    width = pb.lay.width
    uc, colc = np.divmod(c, width)
    uh, colh = np.divmod(h, width)
    diff = pb.depth[uc] - pb.depth[uh]
    ok = diff >= 0
    anc_at = pb.anc[uc, np.clip(diff, 0, pb.anc.shape[1] - 1)]
    return np.asarray(ok & (anc_at == uh) & ((colh == 0) | (colh == colc)))


def _published_above(pb: _Problem, cells: IntArray, published: BoolArray) -> IntArray:
    """The nearest published total strictly containing each cell (its own unit's total for a cut)."""
    width = pb.lay.width
    u, col = np.divmod(cells, width)
    start = np.where(col > 0, 0, 1)  # a cut's own unit first; a total's parent first
    out = []
    for unit, first in zip(u.tolist(), start.tolist(), strict=True):
        for a in pb.anc[unit, first:]:
            if a >= 0 and published[a * width]:
                out.append(int(a) * width)
                break
    return np.asarray(out, dtype=np.int64)


def _cheapest(owner: IntArray, cell: IntArray, rank: IntArray) -> IntArray:
    if owner.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((rank[cell], owner))
    owner, cell = owner[order], cell[order]
    first = np.flatnonzero(np.append(True, owner[1:] != owner[:-1]))
    return np.unique(cell[first])
