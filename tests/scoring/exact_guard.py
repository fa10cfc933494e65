"""The exact guard, the reference the tests hold the production guard to: an audit by linear algebra that no
published pattern leaks, and a suppression built on it for small tables.

The model, the relations and the conditions (a), (b) and (c) are ``scoring.layout``'s; this audit decides them
exactly for the linear attacker (the production guard, ``scoring.guard``, proves them against a stronger one). It
is far too slow beyond a few hundred respondents with cuts and the range rule (``benchmarks/README.md``), so only
the tests use it.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from scoring.layout import COMPLEMENTARY, EMPTY, PRIMARY, RANGE, Layout, Statistic, Suppression, layout

__all__ = ["Breach", "GuardError", "audit", "suppress"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

_TOL = 1e-8  # rank / residual tolerance on 0/1 systems of at most a few thousand columns
_DFS_BUDGET = 200_000  # search nodes per component before the MILP decides


class GuardError(RuntimeError):
    """The guard could not reach a pattern its own audit passes (never expected; never return an unsafe one)."""


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
# Counts: every cell's n per group of statistics that share who answered


def _rollup(lay: Layout, direct: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
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


def _groups(lay: Layout, statistics: Sequence[Statistic]) -> list[_Group]:
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


def _local_fixes(lay: Layout, groups: Sequence[_Group], hidden: BoolArray) -> BoolArray:
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


def _cell_name(lay: Layout, cell: int) -> str:
    u, col = divmod(cell, lay.width)
    if col == 0:
        return f"unit {u} (total)"
    a = int(np.searchsorted(lay.offsets, col, side="right")) - 1
    return f"unit {u} cut ({a}, {col - int(lay.offsets[a])})"


def _uc(lay: Layout, cell: int) -> tuple[int, int]:
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


def _valued(lay: Layout, g: _Group) -> list[_Valued]:
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


@dataclass(frozen=True)
class _System:
    """One group's unknowns and relations. Nodes: atoms ``[0, m)``, direct remainders ``m + cell``, hidden cells
    ``m + size + cell``; relations: T(cell) = ``cell``, A(cell) = ``size + cell``; incidences sorted by relation."""

    inc_rel: IntArray
    inc_node: IntArray
    rel_ptr: IntArray
    alive: BoolArray  # nodes that are unknown (n > 0, not published)
    node_n: IntArray
    pinned_by: IntArray  # the relation that pinned each node, -1 where none did
    live: BoolArray  # unknowns left once unit propagation is done


def _system(lay: Layout, g: _Group, hid: BoolArray) -> _System:
    """The relations of one group, with every unknown that a relation of one unknown pins propagated away."""
    size, m = lay.size, len(lay.atom_unit)
    alive = np.concatenate([g.atom_n > 0, g.dn > 0, hid[:-1]])
    node_n = np.concatenate([g.atom_n, g.dn, g.n])
    cells = np.arange(size)
    inc_rel = np.concatenate([cells, cells, lay.child_rel, size + cells, size + lay.atom_own.reshape(-1)])
    own_atoms = np.repeat(np.arange(m), lay.atom_own.shape[1])
    inc_node = np.concatenate([m + size + cells, m + cells, m + size + lay.child_cell, m + cells, own_atoms])
    keep = alive[inc_node]
    inc_rel, inc_node = inc_rel[keep], inc_node[keep]
    order = np.lexsort((inc_node, inc_rel))
    inc_rel, inc_node = inc_rel[order], inc_node[order]
    n_rel = 2 * size
    pinned_by = np.full(m + 2 * size, -1, dtype=np.int64)
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
    return _System(inc_rel, inc_node, rel_ptr, alive, node_n, pinned_by, live)


def _pin_fix(lay: Layout, sys: _System, pub: BoolArray, n: IntArray, node: int) -> int:
    """The smallest published member of the nearest relation that pinned the node (walking back)."""
    queue = [int(sys.pinned_by[node])]
    seen: set[int] = set()
    while queue:
        r = queue.pop(0)
        if r < 0 or r in seen:
            continue
        seen.add(r)
        if r < lay.size:
            u, col = divmod(r, lay.width)
            kids = lay.children[lay.children_ptr[u] : lay.children_ptr[u + 1]] * lay.width + col
            cand = np.concatenate([[r], kids])
            cand = cand[pub[cand]]
            if len(cand):
                return int(cand[np.lexsort((cand, n[cand]))[0]])
        members = sys.inc_node[sys.rel_ptr[r] : sys.rel_ptr[r + 1]]
        queue.extend(int(sys.pinned_by[x]) for x in members if sys.pinned_by[x] >= 0 and x != node)
    return -1


def _pinned_findings(lay: Layout, name: str, sys: _System, pub: BoolArray, n: IntArray) -> list[_Finding]:
    """Breaches of the unknowns a single relation pins: a determined hidden cell, a small atom or remainder."""
    size, m, k = lay.size, len(lay.atom_unit), lay.k
    out = []
    for node in np.flatnonzero(~sys.live & sys.alive).tolist():
        if node >= m + size:
            c = node - m - size
            b = Breach(name, "determined", (_uc(lay, c),), f"hidden {_cell_name(lay, c)} is determined")
        elif 1 <= sys.node_n[node] < k:
            if node >= m:
                what = f"direct members of {_cell_name(lay, node - m)}"
            else:
                what = f"the atom of unit {lay.atom_unit[node]} with codes {lay.atom_codes[node].tolist()}"
            b = Breach(name, "small", (), f"{what}: {sys.node_n[node]} respondent(s) determined")
        else:
            continue
        out.append(_Finding(b, _pin_fix(lay, sys, pub, n, node), COMPLEMENTARY))
    return out


def _components(lay: Layout, sys: _System) -> list[tuple[IntArray, IntArray]]:
    """(atoms, hidden cells) of every connected component of the unknowns left after propagation."""
    size, m = lay.size, len(lay.atom_unit)
    on = sys.live[sys.inc_node]
    r_on, n_on = sys.inc_rel[on], sys.inc_node[on]
    multi = np.bincount(r_on, minlength=2 * size)[r_on] >= 2
    r_on, n_on = r_on[multi], n_on[multi]
    heads = n_on[np.searchsorted(r_on, r_on)]  # first member of each relation
    n_nodes = m + 2 * size
    graph = coo_matrix((np.ones(len(n_on)), (heads, n_on)), shape=(n_nodes, n_nodes)).tocsr()
    _, label = connected_components(graph, directed=False)
    atoms_live = np.flatnonzero(sys.live[:m])
    hid_live = np.flatnonzero(sys.live[m + size :])  # hidden cells (as cell ids) still unknown
    a_order = np.argsort(label[atoms_live], kind="stable")
    atoms_sorted, a_comp = atoms_live[a_order], label[atoms_live][a_order]
    h_order = np.argsort(label[m + size + hid_live], kind="stable")
    hid_sorted, h_comp = hid_live[h_order], label[m + size + hid_live][h_order]
    comps = np.concatenate([np.unique(np.concatenate([a_comp, h_comp])), [np.iinfo(np.int64).max]])
    a_ptr, h_ptr = np.searchsorted(a_comp, comps), np.searchsorted(h_comp, comps)
    return [(atoms_sorted[a_ptr[i] : a_ptr[i + 1]], hid_sorted[h_ptr[i] : h_ptr[i + 1]]) for i in range(len(comps) - 1)]


def _audit_group(
    lay: Layout, g: _Group, hidden: BoolArray, *, first_only: bool, ranges: bool, cache: _Cache | None = None
) -> list[_Finding]:
    """Every breach of one group of statistics (first_only: one per component is enough to make progress)."""
    k, n, name = lay.k, g.n, g.name
    pub = np.append(~hidden & (n > 0), False)  # with the sentinel column of atom_cells
    hid = np.append(hidden & (n > 0), False)
    findings: list[_Finding] = []
    for c in np.flatnonzero(pub[:-1] & (n[: lay.size] < k)).tolist():
        b = Breach(name, "primary", (_uc(lay, c),), f"{_cell_name(lay, c)} is published with n = {n[c]} < k")
        findings.append(_Finding(b, int(c), PRIMARY))
    sys = _system(lay, g, hid)
    findings += _pinned_findings(lay, name, sys, pub, n)
    valued = _valued(lay, g)
    for atoms_c, hid_c in _components(lay, sys):
        wn = g.atom_n[atoms_c]
        light = wn <= k - 1
        if len(hid_c) == 0 and not light.any():
            continue
        findings.extend(
            _audit_component(lay, name, atoms_c, hid_c, wn, light, pub, n, valued, first_only, ranges, cache)
        )
    return findings


def _audit_component(
    lay: Layout,
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
    comp = _component(lay, name, atoms_c, hid_c, wn, pub, n)
    out = _component_findings(comp, light, valued, first_only, ranges)
    if cache is not None:
        cache[key] = out
    return out


@dataclass(frozen=True)
class _Component:
    """One component's system: its atoms, the published cells over them (``mat``, rows ``pcells``), its hidden cells
    (``hmat``) and an orthonormal basis ``q`` of the published rows."""

    lay: Layout
    name: str
    atoms: IntArray
    hid: IntArray
    wn: IntArray  # respondents per atom
    n: IntArray  # every cell's n
    pcells: IntArray
    mat: FloatArray
    hmat: FloatArray
    q: FloatArray

    def fix_for(self, x: FloatArray, kind_reason: int) -> int:
        """The smallest published cell whose removal makes x undetermined (else the smallest touching x)."""
        mat, pcells, n = self.mat, self.pcells, self.n
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
            return int(pcells[np.lexsort((pcells, n[pcells]))[0]])
        return -1


def _component(
    lay: Layout, name: str, atoms_c: IntArray, hid_c: IntArray, wn: IntArray, pub: BoolArray, n: IntArray
) -> _Component:
    """The dense system of one component: published and hidden cells restricted to its atoms."""
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
        q = vt[: int(np.sum(sv > _TOL * max(1.0, float(sv[0]))))]
    else:
        q = np.zeros((0, na))
    return _Component(lay, name, atoms_c, hid_c, wn, n, pcells, mat, hmat, q)


def _component_findings(
    comp: _Component, light: BoolArray, valued: Sequence[_Valued], first_only: bool, ranges: bool
) -> list[_Finding]:
    """Conditions (a), (b) and, once they hold, (c) on one component."""
    det, out = _determined_cells(comp, first_only)
    if out and first_only:
        return out
    small = _small_set(comp, light)
    if small is not None:
        out.append(small)
        if first_only:
            return out
    if not ranges:
        return out
    return out + _range_findings(comp, np.flatnonzero(~det), valued, stop=bool(out))


def _determined_cells(comp: _Component, first_only: bool) -> tuple[BoolArray, list[_Finding]]:
    """(a): which hidden cells lie in the row space of the published ones, and their findings."""
    hmat, q = comp.hmat, comp.q
    resid = hmat - (hmat @ q.T) @ q if len(q) else hmat
    det = np.linalg.norm(resid, axis=1) <= 1e-7 * np.maximum(1.0, np.linalg.norm(hmat, axis=1))
    out = []
    for j in np.flatnonzero(det):
        c = int(comp.hid[j])
        b = Breach(comp.name, "determined", (_uc(comp.lay, c),), f"hidden {_cell_name(comp.lay, c)} is determined")
        out.append(_Finding(b, comp.fix_for(hmat[j], COMPLEMENTARY), COMPLEMENTARY))
        if first_only:
            break
    return det, out


def _small_set(comp: _Component, light: BoolArray) -> _Finding | None:
    """(b): a determined set of 1..k-1 respondents among the light atoms, if there is one."""
    if not light.any():
        return None
    q, wn, lay = comp.q, comp.wn, comp.lay
    heavy = ~light
    qh = q[:, heavy]
    if qh.shape[1] and len(q):
        u_, s_, _ = np.linalg.svd(qh, full_matrices=True)
        y = u_[:, int(np.sum(s_ > _TOL * max(1.0, float(s_[0]) if len(s_) else 1.0))) :]
    else:
        y = np.eye(len(q))
    basis = (y.T @ q)[:, light] if y.shape[1] else np.zeros((0, int(light.sum())))
    if not len(basis):
        return None
    rr, piv = _rref(basis)
    done, found = _small_set_search(rr, piv, wn[light], lay.k)
    if not done:
        found = _small_set_milp(comp.mat[:, light], comp.mat[:, heavy], wn[light], lay.k)
    if found is None:
        return None
    idx = np.flatnonzero(light)[found]
    x = np.zeros(len(comp.atoms))
    x[idx] = 1.0
    who = ", ".join(f"unit {lay.atom_unit[a]} codes {lay.atom_codes[a].tolist()}" for a in comp.atoms[idx])
    b = Breach(comp.name, "small", (), f"a determined set of {int(wn[idx].sum())} respondent(s): {who}")
    return _Finding(b, comp.fix_for(x, COMPLEMENTARY), COMPLEMENTARY)


def _range_findings(comp: _Component, open_cells: IntArray, valued: Sequence[_Valued], *, stop: bool) -> list[_Finding]:
    """(c): hidden means pinned to less than a quarter of the scale. Certified segments first (along the null
    space, then along it with the atoms already at a bound held still), two extreme points next, and two linear
    programmes per cell for the cells none of these settles. Every failing cell of one statistic at once, and no
    further statistic once something failed (``stop``: (a) or (b) already did): one round fixes them all."""
    hmat, mat, q, n, wn, hid_c = comp.hmat, comp.mat, comp.q, comp.n, comp.wn, comp.hid
    out: list[_Finding] = []
    for v in valued:
        if len(open_cells) == 0:
            break
        s0 = v.s0[comp.atoms]
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
            what = f"hidden {_cell_name(comp.lay, c)}: its mean can only move {g_ / n[c]:.4g} < {width / 4:.4g}"
            b = Breach(v.stat.name or comp.name, "range", (_uc(comp.lay, c),), what)
            out.append(_Finding(b, comp.fix_for(hmat[j], RANGE), RANGE))
        if out or stop:
            return out
    return out


def _findings(
    lay: Layout,
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
    lay = layout(parent, unit, codes, n_values, k)
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
    lay = layout(parent, unit, codes, n_values, k)
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
