"""An independent attacker of a suppression pattern: everything the table publishes, solved as one linear system.

It shares no code with the guards (``scoring.guard``, ``tests/scoring/exact_guard.py``): it builds every cell's
membership by walking each respondent's ancestors, works in the atom basis (unit-direct members x full attribute
combination, the finest groups anyone can name), and asks three questions of the published sums:

1. is a hidden cell's sum determined? (its atom vector lies in the row space of the published cells: rank test);
2. is any set of 1..k-1 respondents determined? Candidates first (every atom, every direct remainder, every hidden
   cell, every union of two disjoint cells and every difference of two nested cells), then the exact question over
   all 0/1 combinations of light atoms: by enumeration when there are few of them, else as a MILP
   (binary x = P^T y, 1 <= n.x <= k-1), each hit confirmed by a rank test;
3. is a hidden cell's mean pinned by the scale's bounds? (``linprog`` min and max of its sum given the published
   sums and n_atom * lo <= atom sum <= n_atom * hi; narrower than a quarter of the scale is a breach).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import block_diag, csr_matrix


@dataclass(frozen=True)
class Attack:
    kind: str  # primary | determined | small | range
    detail: str


def _ancestors(parent: list[int], u: int) -> list[int]:
    out = [u]
    while parent[out[-1]] >= 0:
        out.append(parent[out[-1]])
    return out


def _in_rowspace(p: np.ndarray, x: np.ndarray) -> bool:
    if len(p) == 0:
        return not np.any(x)
    return bool(np.linalg.matrix_rank(np.vstack([p, x])) == np.linalg.matrix_rank(p))


def attack(
    parent: list[int] | np.ndarray,
    unit: list[int] | np.ndarray,
    codes: np.ndarray,
    n_values: tuple[int, ...],
    k: int,
    present: np.ndarray,
    values: np.ndarray | None,
    bounds: tuple[float, float] | None,
    hidden: np.ndarray,
    *,
    exhaustive_limit: int = 16,
) -> list[Attack]:
    """Every breach the attacker finds in ``hidden`` (n_units, width) for one statistic."""
    parent = [int(x) for x in parent]
    unit = [int(x) for x in unit]
    codes = np.asarray(codes).reshape(len(unit), len(n_values))
    atoms, wn, s0 = _atoms(unit, codes, present, values)
    cell, direct = _memberships(parent, n_values, atoms)
    n_cell = cell @ wn
    found: list[Attack] = []
    hidden = np.asarray(hidden, dtype=bool)
    pub = ~hidden & (n_cell > 0)
    for u, j in zip(*np.nonzero(pub & (n_cell < k)), strict=True):
        found.append(Attack("primary", f"published cell ({u}, {j}) has n = {n_cell[u, j]:.0f}"))
    p = cell[pub]
    null = _null_basis(p, len(atoms))

    def determined(x: np.ndarray) -> bool:
        return bool(np.linalg.norm(null.T @ x) <= 1e-8 * max(1.0, float(np.linalg.norm(x))))

    hid = [(int(u), int(j)) for u, j in zip(*np.nonzero(hidden & (n_cell > 0)), strict=True)]
    # 1. determined hidden cells
    for u, j in hid:
        if determined(cell[u, j]):
            found.append(Attack("determined", f"hidden cell ({u}, {j}) is determined"))
    # 2. small determined sets: candidates first
    for what, x in _candidates(atoms, cell, direct, n_cell, hid):
        if 1 <= float(x @ wn) <= k - 1 and determined(x):
            found.append(Attack("small", f"{what}: {x @ wn:.0f} respondent(s) determined"))
    # 2b. the exact question over every 0/1 combination of light atoms
    light = np.flatnonzero(wn <= k - 1)
    if len(light) and not any(a.kind == "small" for a in found):
        hit = _small_exact(p, null, wn, light, k, exhaustive_limit)
        if hit is not None:
            found.append(Attack("small", f"atoms {[atoms[i] for i in hit]}: {wn[hit].sum():.0f} determined"))
    # 3. ranges of hidden means
    if values is not None and bounds is not None and hid:
        found += _range_attacks(p, cell, n_cell, wn, s0, bounds, hid)
    return found


def _atoms(
    unit: list[int], codes: np.ndarray, present: np.ndarray, values: np.ndarray | None
) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """The atoms with n > 0 for this statistic (unit, codes...), their n and their actual sums."""
    atom_index: dict[tuple[int, ...], int] = {}
    atom_n: list[int] = []
    atom_s: list[float] = []
    for r in range(len(unit)):
        if not present[r]:
            continue
        key = (unit[r], *codes[r].tolist())
        if key not in atom_index:
            atom_index[key] = len(atom_n)
            atom_n.append(0)
            atom_s.append(0.0)
        i = atom_index[key]
        atom_n[i] += 1
        atom_s[i] += float(values[r]) if values is not None else 0.0
    return list(atom_index), np.array(atom_n, dtype=float), np.array(atom_s)


def _memberships(
    parent: list[int], n_values: tuple[int, ...], atoms: list[tuple[int, ...]]
) -> tuple[np.ndarray, np.ndarray]:
    """(n_units, width, m) 0/1: which atoms each cell holds, and which its unit's own members (direct) hold."""
    cols: list[tuple[int, int] | None] = [None] + [(a, v) for a, nv in enumerate(n_values) for v in range(nv)]
    cell = np.zeros((len(parent), len(cols), len(atoms)))
    direct = np.zeros_like(cell)
    for i, key in enumerate(atoms):
        u, combo = key[0], key[1:]
        for w in _ancestors(parent, u):
            for j, col in enumerate(cols):
                if col is None or combo[col[0]] == col[1]:
                    cell[w, j, i] = 1.0
                    if w == u:
                        direct[w, j, i] = 1.0
    return cell, direct


def _candidates(
    atoms: list[tuple[int, ...]],
    cell: np.ndarray,
    direct: np.ndarray,
    n_cell: np.ndarray,
    hid: list[tuple[int, int]],
) -> list[tuple[str, np.ndarray]]:
    """The sets an attacker tries first: every atom, direct remainder and hidden cell, every union of two
    disjoint cells and every difference of two nested ones."""
    n_units, width, m = cell.shape
    cands: list[tuple[str, np.ndarray]] = []
    cands += [(f"atom {atoms[i]}", np.eye(m)[i]) for i in range(m)]
    cands += [(f"direct ({u}, {j})", direct[u, j]) for u in range(n_units) for j in range(width) if direct[u, j].any()]
    cands += [(f"hidden ({u}, {j})", cell[u, j]) for u, j in hid]
    every = [(f"cell ({u}, {j})", cell[u, j]) for u in range(n_units) for j in range(width) if n_cell[u, j] > 0]
    for (na, xa), (nb, xb) in itertools.combinations(every, 2):
        if not np.any(xa * xb):
            cands.append((f"{na} + {nb}", xa + xb))
        elif np.all(xa >= xb):
            cands.append((f"{na} - {nb}", xa - xb))
        elif np.all(xb >= xa):
            cands.append((f"{nb} - {na}", xb - xa))
    return cands


def _range_attacks(
    p: np.ndarray,
    cell: np.ndarray,
    n_cell: np.ndarray,
    wn: np.ndarray,
    s0: np.ndarray,
    bounds: tuple[float, float],
    hid: list[tuple[int, int]],
) -> list[Attack]:
    """Hidden means pinned to less than a quarter of the scale: min and max of every hidden sum, each in its own
    copy of the polytope, stacked into one block-diagonal linear programme (copies share nothing, so each is
    optimal on its own)."""
    lo, hi = bounds
    m = len(wn)
    objectives = []
    for u, j in hid:
        objectives += [cell[u, j], -cell[u, j]]
    copies = len(objectives)
    box = np.tile(np.column_stack([wn * lo, wn * hi]), (copies, 1))
    if len(p):
        res = linprog(
            np.concatenate(objectives),
            A_eq=block_diag([csr_matrix(p)] * copies, format="csr"),
            b_eq=np.tile(p @ s0, copies),
            bounds=box,
            method="highs",
        )
    else:
        res = linprog(np.concatenate(objectives), bounds=box, method="highs")
    assert res.status == 0, "the actual answers are feasible, so the programme is"
    x = res.x.reshape(copies, m)
    found = []
    for i, (u, j) in enumerate(hid):
        span = (cell[u, j] @ x[2 * i + 1] - cell[u, j] @ x[2 * i]) / n_cell[u, j]
        if span < (hi - lo) / 4 - 1e-7:
            found.append(Attack("range", f"hidden cell ({u}, {j}): mean range {span:.4g} < {(hi - lo) / 4:.4g}"))
    return found


def _null_basis(p: np.ndarray, m: int) -> np.ndarray:
    """(m, d) basis of the perturbations of atom sums that keep every published sum: x is determined iff x is
    orthogonal to it (rank-revealing SVD of a small 0/1 matrix)."""
    if len(p) == 0:
        return np.eye(m)
    _, s, vt = np.linalg.svd(p)
    rank = int(np.sum(s > 1e-9 * s[0]))
    return vt[rank:].T


def _small_exact(
    p: np.ndarray, null: np.ndarray, wn: np.ndarray, light: np.ndarray, k: int, limit: int
) -> list[int] | None:
    """A determined set of light atoms with 1..k-1 respondents, or None (exact)."""
    m = len(wn)
    if len(light) <= limit:
        for size in range(1, k):
            for combo in itertools.combinations(light.tolist(), size):
                if wn[list(combo)].sum() > k - 1:
                    continue
                x = np.zeros(m)
                x[list(combo)] = 1.0
                if np.linalg.norm(null.T @ x) < 1e-8 and _in_rowspace(p, x):
                    return list(combo)
        return None
    heavy = np.setdiff1d(np.arange(m), light)
    rows = len(p)
    if rows == 0:
        return None
    nl = len(light)
    a_eq = np.zeros((m, nl + rows))
    a_eq[light, np.arange(nl)] = 1.0
    a_eq[:, nl:] = -p.T
    cons = [
        LinearConstraint(a_eq, 0.0, 0.0),
        LinearConstraint(np.concatenate([wn[light], np.zeros(rows)])[None, :], 1.0, k - 1.0),
    ]
    del heavy  # heavy atoms simply get x = 0: their rows of a_eq read 0 = -(P^T y)_i
    lb = np.concatenate([np.zeros(nl), np.full(rows, -np.inf)])
    ub = np.concatenate([np.ones(nl), np.full(rows, np.inf)])
    res = milp(
        np.zeros(nl + rows),
        constraints=cons,
        integrality=np.concatenate([np.ones(nl), np.zeros(rows)]),
        bounds=Bounds(lb, ub),
    )
    if res.x is None:
        assert res.status == 2, f"MILP undecided: {res.message}"
        return None
    hit = light[res.x[:nl] > 0.5].tolist()
    x = np.zeros(m)
    x[hit] = 1.0
    if _in_rowspace(p, x):
        return hit
    return None
