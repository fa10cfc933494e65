"""The exact anonymity guard: an audit by linear algebra that no published pattern leaks, and a suppression built on it.

The engine decides its pattern with ``scoring.partition`` (fast at any size, proven against a stronger attacker);
this module's ``audit`` is the exact check the tests hold that pattern to, and ``suppress`` the exact guard for small
tables. The layout, ``Statistic`` and ``Suppression`` are shared.

The model
---------
Respondents fall into *atoms*: the direct members of one unit with one full combination of attribute values. The
attacker is assumed to know the size ``n`` of every atom and of every cell (published or not), the whole membership
structure, and the sum (``n * mean``) of every published cell. A statistic's unknowns are the atom sums; every cell
is a 0/1 combination of atoms. Per statistic, an atom or cell with ``n == 0`` is a known zero and is ignored.

Cells (``(n_units, width)``, ``width = 1 + sum(n_values)``): column 0 is the unit's total (its subtree), column
``1 + sum(n_values[:a]) + v`` the cut ``(a, v)``: respondents of the subtree whose attribute ``a`` equals ``v``.

The relations (complete: every cell is defined by them in terms of atoms)::

    T(u, col):  cell(u, col) = direct(u, col) + sum over children c of cell(c, col)   (col 0: totals; else a cut)
    A(u, 0):    direct(u)    = sum of u's atoms
    A(u, a, v): direct(u, a, v) = sum of u's atoms with attribute a = v
    implied:    cell(u, 0) = sum_v cell(u, a, v) for each attribute a (the cut-sum relation)

``direct(...)`` (a unit's own members, overall or by one value) is never published: it is an unknown like a hidden
cell. Safe means, for every statistic (each with its own ``n``):

(a) no hidden cell's sum is determined by the published sums (the vector of a hidden cell is not in the row space
    of the published cells);
(b) no determined combination is a set of 1..k-1 respondents: no 0/1 vector of atoms with ``1 <= n <= k-1`` lies in
    that row space (this covers "parent minus published children", "a unit minus its published cuts", "a cut minus
    the same cut of the children", two small siblings whose total is known, intersections leaked by sparse
    attribute combinations, ...); published cells themselves have ``n == 0`` or ``n >= k`` (primary suppression);
(c) for a statistic with bounds ``[lo, hi]`` per respondent, the feasible range of each hidden cell's mean, given
    all published sums and ``n_atom * lo <= atom sum <= n_atom * hi``, is at least ``(hi - lo) / 4`` wide.

The algorithm
-------------
1. Primary: hide every cell whose ``n`` is 1..k-1 for any statistic; cells nobody is in are marked ``empty``.
2. Local rules, vectorised, to a fixpoint: in every tree relation and every cut-sum relation, if the "whole" is
   published then the unknown parts (hidden cells, non-empty direct remainders) must be none, or at least two
   with a combined ``n >= k`` (and never one hidden cell alone); if the whole is hidden, at least one part must be
   unknown. A failing relation hides its smallest published part (``n``, then cell index), or the whole if none.
3. Exact audit (below); each breach names a published cell whose hiding removes it (the smallest ``n`` that does,
   ties by index). Hide those, go back to 2. Safety is monotone in the hidden set and every round hides at least
   one more cell, so the loop ends; when everything is hidden nothing is determined. ``suppress`` returns only a
   pattern its own audit passes, and raises ``GuardError`` otherwise.

The audit, per distinct ``present`` vector: unknowns are atoms, direct remainders and hidden cells (``n > 0``);
relations T and A link them. A relation with one unknown pins it (unit propagation; a pinned hidden cell is a
breach (a), a pinned small atom or remainder a breach (b)). The remaining relations split the unknowns into
connected components; the null space of the published rows is the direct sum of the per-component null spaces
(a perturbation of one component keeps every relation of the others), so a combination is determined iff its part
in every component is, and a small determined set has a small determined part in some component. Per component
``C`` with atoms ``A_C``, ``M`` = the published cells restricted to ``A_C`` (dense, small):

- (a) ``h|A_C`` is in ``rowspace(M)`` (orthogonal projection on the SVD basis, tolerance 1e-8 on 0/1 data).
- (b) the determined combinations supported on *light* atoms (``n <= k-1``; a small set cannot hold a heavy one)
  form the subspace ``{x = M^T y, x = 0 on heavy atoms}``. In reduced row-echelon form a vector of that space is
  fixed by its values on the pivot columns, and columns left of the next pivot are final once the rows before it
  are chosen; a breadth-first search over the rows (vectorised), pruned by "final entries are 0 or 1" and
  "final weight <= k-1", enumerates every 0/1 candidate exactly. If the search exceeds its budget a MILP (HiGHS)
  decides instead.
- (c) per statistic with bounds, per hidden cell: a feasible line through the actual point along the projection of
  the cell on the null space gives a certified lower bound of the range; if that is not wide enough, two linear
  programmes (``scipy.optimize.linprog``) give the exact range.

Cost (measured on the loaded 2-core dev machine, ``OPENBLAS_NUM_THREADS=1``: the dense problems are small and
BLAS threads only contend): a synthetic org of 5,000 respondents / 500 units / attributes (2, 4, 6), count only,
1.7 s; 10,000 / 1,000, 20.5 s (the exact small-set search and its MILP fallback on components of several hundred
atoms dominate); 1,666 / 168 with one scored statistic, 102 s (the range rule's linear programmes, re-solved every
round a component changes, dominate). The 2 s goal for 100,000 respondents / 10,000 units is NOT met. The way
there: eliminate the tree bottom-up (every unit passes up only its <= 1 + sum(n_values - 1) margin directions,
so no dense problem exceeds one unit's interface), and solve the range programmes once per component with warm
starts instead of again each round.

Known limits (DESIGN.md "The anonymity promise"): a respondent inside a published group of exactly k can subtract
their own answer and learn the mean of the other k-1; a group whose members all gave the same answer reveals that
answer. Besides: the model covers exactly the cells described here (totals and one-attribute cuts per unit); sums
of a *different* statistic, or values outside this table (e.g. earlier waves), are not part of the system, and the
range rule is a linear (continuous) relaxation: integrality of answers can narrow the real range further.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "COMPLEMENTARY",
    "EMPTY",
    "PRIMARY",
    "PUBLISHED",
    "RANGE",
    "REASONS",
    "Breach",
    "GuardError",
    "Statistic",
    "Suppression",
    "audit",
    "suppress",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

REASONS: tuple[str, ...] = ("published", "primary", "complementary", "range", "empty")
"""Reason names, indexed by the codes in ``Suppression.reason``."""
PUBLISHED, PRIMARY, COMPLEMENTARY, RANGE, EMPTY = 0, 1, 2, 3, 4

_TOL = 1e-8  # rank / residual tolerance on 0/1 systems of at most a few thousand columns
_DFS_BUDGET = 200_000  # search nodes per component before the MILP decides


class GuardError(RuntimeError):
    """The guard could not reach a pattern its own audit passes (never expected; never return an unsafe one)."""


@dataclass(frozen=True)
class Statistic:
    """One published statistic over the respondents: who contributes to it and their per-respondent value.

    ``present`` (n_respondents,) marks who contributes (has an answer/score); ``values`` (n_respondents,) holds the
    per-respondent value (construct score, 0/1 favourable, +1/0/-1 for eNPS), NaN where not present, or ``None`` for
    a count-only statistic (no range check); ``bounds`` is the scale's (min, max) of one respondent's value.
    """

    present: npt.NDArray[np.bool_]
    values: npt.NDArray[np.float64] | None
    bounds: tuple[float, float] | None
    name: str = ""


@dataclass(frozen=True)
class Suppression:
    """The one pattern for a table: ``hidden`` (n_units, width) and ``reason`` codes (indices into ``REASONS``)."""

    hidden: npt.NDArray[np.bool_]
    reason: npt.NDArray[np.int8]

    def reason_name(self, unit: int, column: int) -> str:
        return REASONS[int(self.reason[unit, column])]


@dataclass(frozen=True)
class Breach:
    """What the audit found: ``kind`` is ``primary``, ``determined``, ``small`` or ``range``.

    ``cells`` are the (unit, column) cells involved (the hidden or small cell; empty for a group of direct members
    or atoms, which ``detail`` describes).
    """

    statistic: str
    kind: str
    cells: tuple[tuple[int, int], ...]
    detail: str


# --------------------------------------------------------------------------------------------------------------------
# Layout: the tree, the atoms and which cells contain each atom (shared by all statistics)


@dataclass(frozen=True)
class _Layout:
    n_units: int
    width: int
    k: int
    parent: IntArray
    levels: tuple[IntArray, ...]  # non-root units by depth, deepest first
    offsets: IntArray  # (A,) first column of each attribute
    atom_of: IntArray  # (R,) atom of each respondent
    atom_unit: IntArray  # (m,)
    atom_codes: IntArray  # (m, A)
    atom_own: IntArray  # (m, 1 + A) cells of the atom's own unit that hold it (= its direct remainders)
    atom_cells: IntArray  # (m, L) every cell that holds the atom; padding = n_units * width (a sentinel)
    child_rel: IntArray  # tree relations: the whole (parent cell) ...
    child_cell: IntArray  # ... and the part (child cell), for every column
    cs_rel: IntArray  # cut-sum relations (u * A + a) ...
    cs_cell: IntArray  # ... and their parts (the cut cells)
    children_ptr: IntArray  # CSR of children per unit
    children: IntArray

    @property
    def size(self) -> int:
        return self.n_units * self.width


def _layout(
    parent: npt.ArrayLike, unit: npt.ArrayLike, codes: npt.ArrayLike, n_values: Sequence[int], k: int
) -> _Layout:
    par = np.asarray(parent, dtype=np.int64)
    uni = np.asarray(unit, dtype=np.int64)
    cod = np.asarray(codes, dtype=np.int64)
    n_units = len(par)
    nv = np.asarray(tuple(n_values), dtype=np.int64)
    n_attr = len(nv)
    if par.ndim != 1 or n_units == 0:
        raise ValueError("parent must be a non-empty 1-D array")
    if cod.ndim != 2 or cod.shape != (len(uni), n_attr):
        raise ValueError(f"codes must have shape (n_respondents, {n_attr})")
    if k < 2:
        raise ValueError("k (the minimum group size) must be at least 2")
    if np.any(nv < 1):
        raise ValueError("every attribute needs at least one value")
    idx = np.arange(n_units)
    if np.any((par >= idx) | (par < -1)):
        raise ValueError("units must be ordered parents first (parent[i] < i, -1 at a root)")
    if len(uni) and (uni.min() < 0 or uni.max() >= n_units):
        raise ValueError("unit index out of range")
    if len(uni) and n_attr and (np.any(cod < 0) or np.any(cod >= nv)):
        raise ValueError("attribute code out of range")
    width = 1 + int(nv.sum())
    offsets = 1 + np.concatenate([[0], np.cumsum(nv)[:-1]]).astype(np.int64) if n_attr else np.zeros(0, np.int64)

    # ancestors (self first) and depth, vectorised over the depth of the tree
    anc_cols = [idx]
    cur = par.copy()
    while np.any(cur >= 0):
        anc_cols.append(cur)
        cur = np.where(cur >= 0, par[np.maximum(cur, 0)], -1)
    anc = np.stack(anc_cols, axis=1)  # (U, D+1), -1 padded
    depth = (anc >= 0).sum(axis=1) - 1
    levels = tuple(np.flatnonzero(depth == d) for d in range(int(depth.max()), 0, -1))

    # atoms: unique (unit, codes) rows, sorted, so independent of the order of respondents
    key = np.column_stack([uni, cod]) if len(uni) else np.zeros((0, 1 + n_attr), np.int64)
    if len(key) and n_units * float(np.prod(nv)) < 2**62:
        # one mixed-radix number per row (unit, then each code): the same order as the rows, unique in 1-D
        flat = uni.copy()
        for a in range(n_attr):
            flat = flat * nv[a] + cod[:, a]
        _, first, atom_of = np.unique(flat, return_index=True, return_inverse=True)
        atoms, atom_of = key[first], atom_of.reshape(-1).astype(np.int64)
    elif len(key):
        atoms, atom_of = np.unique(key, axis=0, return_inverse=True)
        atom_of = atom_of.reshape(-1).astype(np.int64)
    else:
        atoms, atom_of = key, np.zeros(0, np.int64)
    atom_unit = atoms[:, 0].astype(np.int64)
    atom_codes = atoms[:, 1:].astype(np.int64)
    own_cols = np.column_stack([np.zeros(len(atoms), np.int64), atom_codes + offsets]) if n_attr else None
    if own_cols is None:
        own_cols = np.zeros((len(atoms), 1), np.int64)
    atom_own = atom_unit[:, None] * width + own_cols
    sentinel = n_units * width
    atom_anc = anc[atom_unit]  # (m, D+1)
    cells = np.where(atom_anc[:, :, None] >= 0, atom_anc[:, :, None] * width + own_cols[:, None, :], sentinel)
    cells = cells.reshape(len(atoms), anc.shape[1] * own_cols.shape[1])

    ch = np.flatnonzero(par >= 0)
    cols = np.arange(width)
    child_rel = (par[ch][:, None] * width + cols).reshape(-1)
    child_cell = (ch[:, None] * width + cols).reshape(-1)
    value_attr = np.repeat(np.arange(n_attr, dtype=np.int64), nv)  # attribute of each cut column
    cs_rel = (np.arange(n_units)[:, None] * n_attr + value_attr[None, :]).reshape(-1)
    cs_cell = (np.arange(n_units)[:, None] * width + np.arange(1, width)[None, :]).reshape(-1)
    order = np.argsort(par[ch], kind="stable")
    children = ch[order]
    children_ptr = np.searchsorted(par[children], np.arange(n_units + 1)).astype(np.int64)
    return _Layout(
        n_units, width, k, par, levels, offsets, atom_of, atom_unit, atom_codes, atom_own, cells,
        child_rel, child_cell, cs_rel, cs_cell, children_ptr, children,
    )  # fmt: skip


def _rollup(lay: _Layout, direct: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Subtree totals of per-unit direct values (U*W,), summing children into parents, deepest level first."""
    out = direct.reshape(lay.n_units, lay.width).copy()
    for lvl in lay.levels:
        np.add.at(out, lay.parent[lvl], out[lvl])
    return out.reshape(-1)


@dataclass(frozen=True)
class _Group:
    """Statistics sharing one ``present`` vector: same n in every cell, so same (a)/(b) verdicts."""

    stats: tuple[Statistic, ...]
    atom_n: IntArray  # (m,)
    dn: IntArray  # (U*W,) direct remainders' n
    n: IntArray  # (U*W,) cells' n

    @property
    def name(self) -> str:
        return ", ".join(s.name or "statistic" for s in self.stats)


def _groups(lay: _Layout, statistics: Sequence[Statistic]) -> list[_Group]:
    n_resp = len(lay.atom_of)
    by_key: dict[bytes, list[Statistic]] = {}
    for st in statistics:
        present = np.asarray(st.present, dtype=np.bool_)
        if present.shape != (n_resp,):
            raise ValueError(f"statistic {st.name!r}: present must have shape ({n_resp},)")
        if st.values is not None:
            vals = np.asarray(st.values, dtype=np.float64)
            if vals.shape != (n_resp,):
                raise ValueError(f"statistic {st.name!r}: values must have shape ({n_resp},)")
            if not np.all(np.isfinite(vals[present])):
                raise ValueError(f"statistic {st.name!r}: a present respondent has no finite value")
            if st.bounds is not None:
                lo, hi = st.bounds
                if not hi > lo:
                    raise ValueError(f"statistic {st.name!r}: bounds must have min < max")
                if np.any(vals[present] < lo) or np.any(vals[present] > hi):
                    raise ValueError(f"statistic {st.name!r}: a value lies outside its bounds")
        by_key.setdefault(np.packbits(present).tobytes() + n_resp.to_bytes(8, "little"), []).append(st)
    out = []
    m = len(lay.atom_unit)
    width_own = lay.atom_own.shape[1]
    for stats in by_key.values():
        present = np.asarray(stats[0].present, dtype=np.bool_)
        atom_n = np.bincount(lay.atom_of[present], minlength=m).astype(np.int64)
        dn = np.bincount(lay.atom_own.reshape(-1), weights=np.repeat(atom_n, width_own), minlength=lay.size)
        n = _rollup(lay, dn.astype(np.float64))
        out.append(_Group(tuple(stats), atom_n, np.rint(dn).astype(np.int64), np.rint(n).astype(np.int64)))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Local rules


def _smallest(
    viol_rel: BoolArray, rel: IntArray, part: IntArray, n: IntArray, hidden: BoolArray
) -> tuple[IntArray, IntArray]:
    """For each violating relation, its smallest published part with n > 0 (n, then cell index).

    Returns (relations that have such a part, the chosen cells), and leaves the others to the caller.
    """
    cand = viol_rel[rel] & ~hidden[part] & (n[part] > 0)
    r, p = rel[cand], part[cand]
    order = np.lexsort((p, n[p], r))
    r, p = r[order], p[order]
    first = np.unique(r, return_index=True)[1]
    return r[first], p[first]


def _local_fixes(lay: _Layout, groups: Sequence[_Group], hidden: BoolArray) -> BoolArray:
    """Cells to hide so that every tree and cut-sum relation passes the local rule, for every group."""
    k = lay.k
    size = lay.size
    add = np.zeros(size, dtype=np.bool_)
    n_attr = len(lay.offsets)
    for g in groups:
        n, dn = g.n, g.dn
        # tree relations: the whole is cell `rel`, the parts are the children cells and the direct remainder
        rel, part = lay.child_rel, lay.child_cell
        unk = hidden[part] & (n[part] > 0)
        cnt_cells = np.bincount(rel[unk], minlength=size)
        cnt = cnt_cells + (dn > 0)
        tot = np.bincount(rel[unk], weights=n[part][unk], minlength=size) + dn
        whole_pub = ~hidden & (n > 0)
        viol = whole_pub & (((cnt == 1) & (cnt_cells == 1)) | ((tot > 0) & (tot < k)))
        viol |= hidden & (n > 0) & (cnt == 0)
        rels, cells = _smallest(viol, rel, part, n, hidden)
        add[cells] = True
        rest = np.setdiff1d(np.flatnonzero(viol), rels)
        add[rest[whole_pub[rest]]] = True
        if n_attr == 0:
            continue
        # cut-sum relations: the whole is the unit's total, the parts its cuts by one attribute
        rel, part = lay.cs_rel, lay.cs_cell
        whole_of = (np.arange(lay.n_units * n_attr) // n_attr) * lay.width
        unk = hidden[part] & (n[part] > 0)
        n_rel = lay.n_units * n_attr
        cnt = np.bincount(rel[unk], minlength=n_rel)
        tot = np.bincount(rel[unk], weights=n[part][unk], minlength=n_rel)
        wp = whole_pub[whole_of]
        viol = wp & ((cnt == 1) | ((tot > 0) & (tot < k)))
        viol |= hidden[whole_of] & (n[whole_of] > 0) & (cnt == 0)
        rels, cells = _smallest(viol, rel, part, n, hidden)
        add[cells] = True
        rest = np.setdiff1d(np.flatnonzero(viol), rels)
        add[whole_of[rest[wp[rest]]]] = True
    return add & ~hidden


# --------------------------------------------------------------------------------------------------------------------
# The exact audit


@dataclass(frozen=True)
class _Finding:
    breach: Breach
    fix: int  # a published cell whose hiding removes the breach (or -1: none known)
    reason: int  # COMPLEMENTARY or RANGE


def _cell_name(lay: _Layout, cell: int) -> str:
    u, col = divmod(cell, lay.width)
    if col == 0:
        return f"unit {u} (total)"
    a = int(np.searchsorted(lay.offsets, col, side="right")) - 1
    return f"unit {u} cut ({a}, {col - int(lay.offsets[a])})"


def _uc(lay: _Layout, cell: int) -> tuple[int, int]:
    u, col = divmod(int(cell), lay.width)
    return (u, col)


def _rref(b: FloatArray) -> tuple[FloatArray, IntArray]:
    """Reduced row-echelon form (partial pivoting) of a full-row-rank matrix, and its pivot columns."""
    r = b.copy()
    rows, cols = r.shape
    piv: list[int] = []
    i = 0
    for j in range(cols):
        if i == rows:
            break
        p = i + int(np.argmax(np.abs(r[i:, j])))
        if abs(r[p, j]) <= 1e-9:
            continue
        if p != i:
            r[[i, p]] = r[[p, i]]
        r[i] /= r[i, j]
        f = r[:, j].copy()
        f[i] = 0.0
        r -= np.outer(f, r[i])
        piv.append(j)
        i += 1
    return r[: len(piv)], np.asarray(piv, dtype=np.int64)


def _small_set_search(r: FloatArray, piv: IntArray, w: IntArray, k: int) -> tuple[bool, IntArray | None]:
    """Exhaustive search for a 0/1 vector in the row space of ``r`` (RREF, pivots ``piv``) with weight 1..k-1.

    A vector of the row space is the sum of the rows whose pivot columns it holds (each pivot column is 1 in its own
    row only). Rows are decided in order, breadth-first and vectorised over all partial choices; after rows 0..t are
    decided, the columns left of the next pivot receive nothing more, so a partial choice survives only if they are
    all 0 or 1 and its weight there is at most k-1. Returns (finished, the set's columns or None); ``finished`` is
    False when the partial choices outgrow the budget (the caller then asks a MILP).
    """
    e, ncol = r.shape
    ends = [*piv[1:].tolist(), ncol]
    tol = 1e-6
    x = np.zeros((1, ncol))  # the partial sums (only columns not yet final are meaningful)
    weight = np.zeros(1, dtype=np.int64)
    history: list[tuple[IntArray, BoolArray]] = []  # per row: (parent state, took the row)
    for t in range(e):
        start = 0 if t == 0 else ends[t - 1]
        end = ends[t]
        both = np.concatenate([x, x + r[t]])
        took = np.repeat(np.array([False, True]), len(x))
        parents = np.tile(np.arange(len(x), dtype=np.int64), 2)
        seg = both[:, start:end]
        ones = np.abs(seg - 1.0) <= tol
        ok = np.all(ones | (np.abs(seg) <= tol), axis=1)
        wt = np.concatenate([weight, weight]) + ones.astype(np.int64) @ w[start:end]
        ok &= wt <= k - 1
        x, weight = both[ok], wt[ok]
        history.append((parents[ok], took[ok]))
        if len(x) > _DFS_BUDGET // 50:
            return False, None
    hits = np.flatnonzero(weight >= 1)
    if len(hits) == 0:
        return True, None
    state = int(hits[0])
    rows = []
    for t in range(e - 1, -1, -1):
        par, tk = history[t]
        if tk[state]:
            rows.append(t)
        state = int(par[state])
    total = r[rows].sum(axis=0)
    return True, np.flatnonzero(np.abs(total - 1.0) <= tol)


def _small_set_milp(m_light: FloatArray, m_heavy: FloatArray, w: IntArray, k: int) -> IntArray | None:
    """Exact fallback: binary x on light atoms, x = M_L^T y, 0 = M_H^T y, 1 <= w.x <= k-1."""
    rows, nl = m_light.shape
    nh = m_heavy.shape[1]
    nvar = nl + rows
    a_eq = np.zeros((nl + nh, nvar))
    a_eq[:nl, :nl] = np.eye(nl)
    a_eq[:nl, nl:] = -m_light.T
    a_eq[nl:, nl:] = m_heavy.T
    a_w = np.concatenate([w.astype(np.float64), np.zeros(rows)])[None, :]
    cons = [LinearConstraint(a_eq, 0.0, 0.0), LinearConstraint(a_w, 1.0, k - 1.0)]
    lb = np.concatenate([np.zeros(nl), np.full(rows, -np.inf)])
    ub = np.concatenate([np.ones(nl), np.full(rows, np.inf)])
    integrality = np.concatenate([np.ones(nl), np.zeros(rows)])
    res = milp(np.zeros(nvar), constraints=cons, integrality=integrality, bounds=Bounds(lb, ub))
    if res.status == 2:  # infeasible: no small determined set
        return None
    if res.x is None:  # undecided: treat as a breach (hiding more is always safe)
        return np.arange(nl)
    return np.flatnonzero(res.x[:nl] > 0.5)


def _segment_ranges(hs: FloatArray, q: FloatArray, s0: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Certified lower bounds of the range of h.s for every row h of ``hs``: the feasible segment through the actual
    point s0 along h's component in the null space spanned orthogonally to ``q`` (rows: an orthonormal basis of the
    fixed directions). Every point of the segment keeps the published sums and the bounds, so it is a true range."""
    z = hs - (hs @ q.T) @ q if len(q) else hs.copy()
    gain = np.einsum("ij,ij->i", hs, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        up_room = np.where(z > 1e-12, (hi - s0) / z, np.where(z < -1e-12, (lo - s0) / z, np.inf))
        down_room = np.where(z > 1e-12, (s0 - lo) / z, np.where(z < -1e-12, (s0 - hi) / z, np.inf))
    t_up = np.minimum(np.maximum(up_room.min(axis=1, initial=np.inf), 0.0), 1e300)
    t_down = np.minimum(np.maximum(down_room.min(axis=1, initial=np.inf), 0.0), 1e300)
    span = np.where(gain > 1e-12, np.minimum(t_up + t_down, 1e300) * np.maximum(gain, 0.0), 0.0)
    return np.asarray(np.nan_to_num(span, posinf=np.finfo(np.float64).max), dtype=np.float64)


def _orthonormal_rows(a: FloatArray) -> FloatArray:
    """An orthonormal basis (rows) of the row space of ``a`` (rank-revealing SVD)."""
    if len(a) == 0:
        return np.zeros((0, a.shape[1]))
    _, sv, vt = np.linalg.svd(a, full_matrices=False)
    rank = int(np.sum(sv > _TOL * max(1.0, float(sv[0]))))
    return np.asarray(vt[:rank], dtype=np.float64)


def _lp_ranges(hs: FloatArray, m: FloatArray, s0: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """See ``_lp_solve``: the ranges."""
    res = _lp_solve(hs, m, s0, lo, hi)
    if res is None:
        return np.zeros(len(hs))  # cannot certify: report as breaches (hiding more is always safe)
    low = np.einsum("ij,ij->i", hs, res[0::2])
    high = np.einsum("ij,ij->i", hs, res[1::2])
    return np.asarray(high - low, dtype=np.float64)


def _lp_points(h: FloatArray, m: FloatArray, s0: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray | None:
    """The two feasible points minimising and maximising h.s (rows of the result), or None."""
    return _lp_solve(h[None, :], m, s0, lo, hi)


def _lp_solve(hs: FloatArray, m: FloatArray, s0: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray | None:
    """The minimising and maximising points of h.s over {M s = M s0, lo <= s <= hi} for every row h of ``hs``
    (rows 2j and 2j+1 of the result), one small linear programme each (HiGHS, dual simplex)."""
    n_h, na = hs.shape
    a_eq = csr_matrix(m) if len(m) else None
    b_eq = m @ s0 if len(m) else None
    box = np.column_stack([lo, hi])
    out = np.empty((2 * n_h, na))
    for j in range(2 * n_h):
        c = hs[j // 2] if j % 2 == 0 else -hs[j // 2]
        res = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=box, method="highs-ds")
        if res.status != 0 or res.x is None:
            return None
        out[j] = res.x
    return out


@dataclass(frozen=True)
class _Valued:
    """A statistic with values and bounds, prepared per atom."""

    stat: Statistic
    s0: FloatArray  # (m,) atom sums
    lo: float
    hi: float


def _valued(lay: _Layout, g: _Group) -> list[_Valued]:
    out = []
    m = len(lay.atom_unit)
    for st in g.stats:
        if st.values is None or st.bounds is None:
            continue
        present = np.asarray(st.present, dtype=np.bool_)
        vals = np.where(present, np.asarray(st.values, dtype=np.float64), 0.0)
        # sum in a canonical order (by atom, then value) so a shuffle of respondents changes nothing
        order = np.lexsort((vals, lay.atom_of))
        s0 = np.bincount(lay.atom_of[order], weights=vals[order], minlength=m).astype(np.float64)
        out.append(_Valued(st, s0, float(st.bounds[0]), float(st.bounds[1])))
    return out


_Cache = dict[tuple[bytes, bytes, bytes, bool], list["_Finding"]]


def _audit_group(
    lay: _Layout, g: _Group, hidden: BoolArray, *, first_only: bool, ranges: bool, cache: _Cache | None = None
) -> list[_Finding]:
    """Every breach of one group of statistics (first_only: one per component is enough to make progress)."""
    k = lay.k
    size = lay.size
    m = len(lay.atom_unit)
    n, dn, atom_n = g.n, g.dn, g.atom_n
    name = g.name
    findings: list[_Finding] = []
    pub = np.append(~hidden & (n > 0), False)  # with the sentinel column of atom_cells
    hid = np.append(hidden & (n > 0), False)

    for c in np.flatnonzero(pub[:-1] & (n[:size] < k)).tolist():
        b = Breach(name, "primary", (_uc(lay, c),), f"{_cell_name(lay, c)} is published with n = {n[c]} < k")
        findings.append(_Finding(b, int(c), PRIMARY))

    # nodes: atoms [0, m), direct remainders m + cell, hidden cells m + size + cell
    n_nodes = m + 2 * size
    alive = np.concatenate([atom_n > 0, dn > 0, hid[:-1]])
    node_n = np.concatenate([atom_n, dn, n])
    cells = np.arange(size)
    # relations: T(cell) = cell id, A(cell) = size + cell
    inc_rel = np.concatenate([cells, cells, lay.child_rel, size + cells, size + lay.atom_own.reshape(-1)])
    inc_node = np.concatenate(
        [
            m + size + cells,
            m + cells,
            m + size + lay.child_cell,
            m + cells,
            np.repeat(np.arange(m), lay.atom_own.shape[1]),
        ]
    )
    keep = alive[inc_node]
    inc_rel, inc_node = inc_rel[keep], inc_node[keep]
    order = np.lexsort((inc_node, inc_rel))
    inc_rel, inc_node = inc_rel[order], inc_node[order]
    n_rel = 2 * size
    pinned_by = np.full(n_nodes, -1, dtype=np.int64)
    live = alive.copy()
    while True:
        on = live[inc_node]
        cnt = np.bincount(inc_rel[on], minlength=n_rel)
        sel = on & (cnt[inc_rel] == 1)
        if not sel.any():
            break
        nodes, first = np.unique(inc_node[sel], return_index=True)
        pinned_by[nodes] = inc_rel[sel][first]
        live[nodes] = False

    rel_ptr = np.searchsorted(inc_rel, np.arange(n_rel + 1))

    def pin_fix(node: int) -> int:
        """The smallest published member of the nearest relation that pinned the node (walking back)."""
        queue = [int(pinned_by[node])]
        seen: set[int] = set()
        while queue:
            r = queue.pop(0)
            if r < 0 or r in seen:
                continue
            seen.add(r)
            if r < size:
                u, col = divmod(r, lay.width)
                kids = lay.children[lay.children_ptr[u] : lay.children_ptr[u + 1]] * lay.width + col
                cand = np.concatenate([[r], kids])
                cand = cand[pub[cand]]
                if len(cand):
                    return int(cand[np.lexsort((cand, n[cand]))[0]])
            members = inc_node[rel_ptr[r] : rel_ptr[r + 1]]
            queue.extend(int(pinned_by[x]) for x in members if pinned_by[x] >= 0 and x != node)
        return -1

    for node in np.flatnonzero(~live & alive):
        if node >= m + size:
            c = int(node) - m - size
            b = Breach(name, "determined", (_uc(lay, c),), f"hidden {_cell_name(lay, c)} is determined")
            findings.append(_Finding(b, pin_fix(int(node)), COMPLEMENTARY))
        elif 1 <= node_n[node] < k:
            if node >= m:
                c = int(node) - m
                what = f"direct members of {_cell_name(lay, c)}"
            else:
                what = f"the atom of unit {lay.atom_unit[node]} with codes {lay.atom_codes[node].tolist()}"
            b = Breach(name, "small", (), f"{what}: {node_n[node]} respondent(s) determined")
            findings.append(_Finding(b, pin_fix(int(node)), COMPLEMENTARY))

    # components of the unpinned unknowns
    on = live[inc_node]
    r_on, n_on = inc_rel[on], inc_node[on]
    cnt = np.bincount(r_on, minlength=n_rel)
    multi = cnt[r_on] >= 2
    r_on, n_on = r_on[multi], n_on[multi]
    heads = n_on[np.searchsorted(r_on, r_on)]  # first member of each relation
    graph = coo_matrix((np.ones(len(n_on)), (heads, n_on)), shape=(n_nodes, n_nodes)).tocsr()
    _, label = connected_components(graph, directed=False)
    atoms_live = np.flatnonzero(live[:m])
    hid_live = np.flatnonzero(live[m + size :])  # hidden cells (as cell ids) still unknown
    comp_of_atom = label[atoms_live]
    comp_of_hid = label[m + size + hid_live]
    a_order = np.argsort(comp_of_atom, kind="stable")
    atoms_sorted, a_comp = atoms_live[a_order], comp_of_atom[a_order]
    h_order = np.argsort(comp_of_hid, kind="stable")
    hid_sorted, h_comp = hid_live[h_order], comp_of_hid[h_order]
    comps = np.unique(np.concatenate([a_comp, h_comp]))
    a_ptr = np.searchsorted(a_comp, np.concatenate([comps, [np.iinfo(np.int64).max]]))
    h_ptr = np.searchsorted(h_comp, np.concatenate([comps, [np.iinfo(np.int64).max]]))
    valued = _valued(lay, g)
    for i in range(len(comps)):
        atoms_c = atoms_sorted[a_ptr[i] : a_ptr[i + 1]]
        hid_c = hid_sorted[h_ptr[i] : h_ptr[i + 1]]
        wn = atom_n[atoms_c]
        light = wn <= k - 1
        if len(hid_c) == 0 and not light.any():
            continue
        findings.extend(
            _audit_component(lay, name, atoms_c, hid_c, wn, light, pub, n, valued, first_only, ranges, cache)
        )
    return findings


def _audit_component(
    lay: _Layout,
    name: str,
    atoms_c: IntArray,
    hid_c: IntArray,
    wn: IntArray,
    light: BoolArray,
    pub: BoolArray,
    n: IntArray,
    valued: Sequence[_Valued],
    first_only: bool,
    ranges: bool,
    cache: _Cache | None,
) -> list[_Finding]:
    """The findings of one component (cached: a component's verdict depends only on its atoms and cells)."""
    flat = lay.atom_cells[atoms_c].reshape(-1)
    key = (atoms_c.tobytes(), hid_c.tobytes(), np.unique(flat[pub[flat]]).tobytes(), ranges)
    if cache is not None and key in cache:
        return cache[key]
    out = _component_findings(lay, name, atoms_c, hid_c, wn, light, pub, n, valued, first_only, ranges)
    if cache is not None:
        cache[key] = out
    return out


def _component_findings(
    lay: _Layout,
    name: str,
    atoms_c: IntArray,
    hid_c: IntArray,
    wn: IntArray,
    light: BoolArray,
    pub: BoolArray,
    n: IntArray,
    valued: Sequence[_Valued],
    first_only: bool,
    ranges: bool,
) -> list[_Finding]:
    k = lay.k
    na = len(atoms_c)
    cells_of = lay.atom_cells[atoms_c]  # (na, L)
    col_idx = np.repeat(np.arange(na), cells_of.shape[1])
    flat = cells_of.reshape(-1)
    psel = pub[flat]
    pcells, pinv = np.unique(flat[psel], return_inverse=True)
    mat = np.zeros((len(pcells), na))
    mat[pinv, col_idx[psel]] = 1.0
    pos = np.minimum(np.searchsorted(hid_c, flat), max(len(hid_c) - 1, 0))
    hsel = (hid_c[pos] == flat) if len(hid_c) else np.zeros(len(flat), np.bool_)
    hmat = np.zeros((len(hid_c), na))
    hmat[pos[hsel], col_idx[hsel]] = 1.0

    if len(mat):
        _, sv, vt = np.linalg.svd(mat, full_matrices=False)
        rank = int(np.sum(sv > _TOL * max(1.0, float(sv[0]))))
        q = vt[:rank]
    else:
        q = np.zeros((0, na))
    out: list[_Finding] = []

    def fix_for(x: FloatArray, kind_reason: int) -> int:
        """The smallest published cell whose removal makes x undetermined (else the smallest touching x)."""
        touching = np.flatnonzero(mat @ x != 0) if len(mat) else np.zeros(0, np.int64)
        cand = touching[np.lexsort((pcells[touching], n[pcells[touching]]))]
        if kind_reason == COMPLEMENTARY:
            for j in cand:
                rest = np.delete(mat, j, axis=0)
                if len(rest) == 0:
                    return int(pcells[j])
                sol = np.linalg.lstsq(rest.T, x, rcond=None)[0]
                if np.linalg.norm(rest.T @ sol - x) > 1e-6:
                    return int(pcells[j])
        if len(cand):
            return int(pcells[cand[0]])
        if len(mat):
            allc = np.lexsort((pcells, n[pcells]))
            return int(pcells[allc[0]])
        return -1

    # (a) determined hidden cells
    resid = hmat - (hmat @ q.T) @ q if len(q) else hmat
    det = np.linalg.norm(resid, axis=1) <= 1e-7 * np.maximum(1.0, np.linalg.norm(hmat, axis=1))
    for j in np.flatnonzero(det):
        c = int(hid_c[j])
        b = Breach(name, "determined", (_uc(lay, c),), f"hidden {_cell_name(lay, c)} is determined")
        out.append(_Finding(b, fix_for(hmat[j], COMPLEMENTARY), COMPLEMENTARY))
        if first_only:
            return out

    # (b) a small determined set of light atoms
    if light.any():
        heavy = ~light
        qh = q[:, heavy]
        if qh.shape[1] and len(q):
            u_, s_, _ = np.linalg.svd(qh, full_matrices=True)
            r_h = int(np.sum(s_ > _TOL * max(1.0, float(s_[0]) if len(s_) else 1.0)))
            y = u_[:, r_h:]
        else:
            y = np.eye(len(q))
        basis = (y.T @ q)[:, light] if y.shape[1] else np.zeros((0, int(light.sum())))
        found: IntArray | None = None
        if len(basis):
            rr, piv = _rref(basis)
            wl = wn[light]
            done, found = _small_set_search(rr, piv, wl, k)
            if not done:
                found = _small_set_milp(mat[:, light], mat[:, heavy], wl, k)
        if found is not None:
            idx = np.flatnonzero(light)[found]
            x = np.zeros(na)
            x[idx] = 1.0
            who = ", ".join(f"unit {lay.atom_unit[a]} codes {lay.atom_codes[a].tolist()}" for a in atoms_c[idx])
            b = Breach(name, "small", (), f"a determined set of {int(wn[idx].sum())} respondent(s): {who}")
            out.append(_Finding(b, fix_for(x, COMPLEMENTARY), COMPLEMENTARY))
            if first_only:
                return out

    # (c) ranges of hidden means, once (a) and (b) hold: certified segments first (along the null space, then along
    # the null space with the atoms already at a bound held still), two extreme points next, and two linear programmes
    # per cell for the cells none of these settles
    if not ranges:
        return out
    open_cells = np.flatnonzero(~det)
    for v in valued:
        if len(open_cells) == 0:
            break
        s0 = v.s0[atoms_c]
        lo, hi = (wn * v.lo).astype(np.float64), (wn * v.hi).astype(np.float64)
        width = v.hi - v.lo
        need = n[hid_c] * width / 4.0 * (1 - 1e-9)
        todo = open_cells[_segment_ranges(hmat[open_cells], q, s0, lo, hi) < need[open_cells]]
        if len(todo):
            free = (s0 > lo + 1e-9) & (s0 < hi - 1e-9)
            if free.any():
                q_f = _orthonormal_rows(mat[:, free])
                cert = _segment_ranges(hmat[todo][:, free], q_f, s0[free], lo[free], hi[free])
                todo = todo[cert < need[todo]]
        if len(todo):
            weight = (hmat[todo] / n[hid_c[todo]][:, None]).sum(axis=0)
            pts = _lp_points(weight, mat, s0, lo, hi)
            if pts is not None:
                proj = hmat[todo] @ np.column_stack([s0, *pts])
                todo = todo[proj.max(axis=1) - proj.min(axis=1) < need[todo]]
        if len(todo) == 0:
            continue
        got = _lp_ranges(hmat[todo], mat, s0, lo, hi)
        bad = got < n[hid_c[todo]] * width / 4.0 * (1 - 1e-7) - 1e-9
        for j, g_ in zip(todo[bad], got[bad], strict=True):
            c = int(hid_c[j])
            b = Breach(
                v.stat.name or name,
                "range",
                (_uc(lay, c),),
                f"hidden {_cell_name(lay, c)}: its mean can only move {g_ / n[c]:.4g} < {width / 4:.4g}",
            )
            out.append(_Finding(b, fix_for(hmat[j], RANGE), RANGE))
        if out:  # every failing cell of this statistic at once: one round fixes them all
            return out
    return out


def _findings(
    lay: _Layout,
    groups: Sequence[_Group],
    hidden: BoolArray,
    *,
    first_only: bool,
    ranges: bool = True,
    caches: Sequence[_Cache] | None = None,
) -> list[_Finding]:
    out: list[_Finding] = []
    for i, g in enumerate(groups):
        cache = caches[i] if caches else None
        out.extend(_audit_group(lay, g, hidden, first_only=first_only, ranges=ranges, cache=cache))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Public API


def audit(
    parent: npt.ArrayLike,
    unit: npt.ArrayLike,
    codes: npt.ArrayLike,
    n_values: Sequence[int],
    k: int,
    statistics: Sequence[Statistic],
    hidden: npt.ArrayLike,
) -> list[Breach]:
    """Every breach of a pattern (empty list: safe for every statistic); see the module docstring.

    Parameters are those of ``suppress``; ``hidden`` (n_units, width) is the pattern to check.
    """
    lay = _layout(parent, unit, codes, n_values, k)
    mask = np.asarray(hidden, dtype=np.bool_)
    if mask.shape != (lay.n_units, lay.width):
        raise ValueError(f"hidden must have shape ({lay.n_units}, {lay.width})")
    groups = _groups(lay, statistics)
    return [f.breach for f in _findings(lay, groups, mask.reshape(-1), first_only=False)]


def suppress(
    parent: npt.ArrayLike,
    unit: npt.ArrayLike,
    codes: npt.ArrayLike,
    n_values: Sequence[int],
    k: int,
    statistics: Sequence[Statistic],
    *,
    hidden: npt.ArrayLike | None = None,
) -> Suppression:
    """The one suppression pattern that is safe for every statistic at once.

    Parameters
    ----------
    parent : (n_units,) int, parents first, -1 at a root.
    unit : (n_respondents,) int, each respondent's own unit.
    codes : (n_respondents, n_attributes) int, the value index of each attribute.
    n_values : number of values per attribute.
    k : the minimum group size (>= 2).
    statistics : every published statistic (see ``Statistic``).
    hidden : optional (n_units, width) cells that must be hidden whatever their size.

    Returns
    -------
    Suppression
        ``hidden`` and ``reason`` per cell. Deterministic: a function of the inputs only (not of the order of
        respondents). Raises ``GuardError`` rather than return a pattern its own audit does not pass.
    """
    lay = _layout(parent, unit, codes, n_values, k)
    groups = _groups(lay, statistics)
    size = lay.size
    if groups:
        n_max = np.max(np.stack([g.n for g in groups]), axis=0)
        small = np.any(np.stack([(g.n >= 1) & (g.n < k) for g in groups]), axis=0)
    else:
        n_max = np.zeros(size, np.int64)
        small = np.zeros(size, np.bool_)
    reason = np.zeros(size, dtype=np.int8)
    mask = small.copy()
    reason[small] = PRIMARY
    if hidden is not None:
        forced = np.asarray(hidden, dtype=np.bool_)
        if forced.shape != (lay.n_units, lay.width):
            raise ValueError(f"hidden must have shape ({lay.n_units}, {lay.width})")
        forced = forced.reshape(-1) & ~mask
        mask |= forced
        reason[forced] = COMPLEMENTARY
    empty = n_max == 0
    mask |= empty
    reason[empty] = EMPTY

    caches: list[_Cache] = [{} for _ in groups]
    for _ in range(size + 2):
        while True:
            add = _local_fixes(lay, groups, mask)
            if not add.any():
                break
            mask |= add
            reason[add] = COMPLEMENTARY
        # (a) and (b) first, without linear programmes; the range rule (c) once they hold
        findings = _findings(lay, groups, mask, first_only=True, ranges=False, caches=caches)
        if not findings:
            findings = _findings(lay, groups, mask, first_only=True, ranges=True, caches=caches)
        if not findings:
            return Suppression(mask.reshape(lay.n_units, lay.width), reason.reshape(lay.n_units, lay.width))
        fixes = {(f.fix, f.reason) for f in findings if f.fix >= 0 and not mask[f.fix]}
        if not fixes:
            # no named fix is left: hide every published cell touched by a breach's component, smallest first
            pending = np.flatnonzero(~mask & (n_max > 0))
            if len(pending) == 0:
                break
            fixes = {(int(pending[np.lexsort((pending, n_max[pending]))[0]]), COMPLEMENTARY)}
        for cell, why in sorted(fixes):
            if not mask[cell]:
                mask[cell] = True
                reason[cell] = why
    raise GuardError("could not reach a suppression pattern that passes the audit")
