"""The ground every guard in ``scoring`` stands on: the table's layout, what the attacker is assumed to know, the
three conditions a published pattern must meet, and the words for a pattern (``Statistic``, ``Suppression``, the
reasons a cell is hidden).

The production guard (``scoring.guard``) decides a pattern at any size; the exact linear-algebra reference the tests
hold it to lives in ``tests/scoring/exact_guard.py``. Both read the layout built here.

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

__all__ = [
    "COMPLEMENTARY",
    "EMPTY",
    "PRIMARY",
    "PUBLISHED",
    "RANGE",
    "REASONS",
    "Layout",
    "Statistic",
    "Suppression",
    "layout",
]

IntArray = npt.NDArray[np.int64]

REASONS: tuple[str, ...] = ("published", "primary", "complementary", "range", "empty")
"""Reason names, indexed by the codes in ``Suppression.reason``."""
PUBLISHED, PRIMARY, COMPLEMENTARY, RANGE, EMPTY = 0, 1, 2, 3, 4


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
class Layout:
    """The tree, its atoms and the cells that hold each atom, shared by every statistic of one table.

    Cells are numbered ``unit * width + column``; the relations are listed as (whole, part) index pairs.
    """

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


def layout(parent: npt.ArrayLike, unit: npt.ArrayLike, codes: npt.ArrayLike, n_values: Sequence[int], k: int) -> Layout:
    """The layout of a tree (``parent``, parents first, -1 at the root) whose respondents sit in ``unit`` with
    attribute ``codes`` (n_respondents, n_attributes); malformed input is refused with ``ValueError``."""
    par = np.asarray(parent, dtype=np.int64)
    uni = np.asarray(unit, dtype=np.int64)
    cod = np.asarray(codes, dtype=np.int64)
    nv = np.asarray(tuple(n_values), dtype=np.int64)
    _check(par, uni, cod, nv, k)
    n_units, n_attr = len(par), len(nv)
    width = 1 + int(nv.sum())
    offsets = 1 + np.concatenate([[0], np.cumsum(nv)[:-1]]).astype(np.int64) if n_attr else np.zeros(0, np.int64)
    anc = _ancestors(par)
    depth = (anc >= 0).sum(axis=1) - 1
    levels = tuple(np.flatnonzero(depth == d) for d in range(int(depth.max()), 0, -1))

    atoms, atom_of = _atoms(uni, cod, nv, n_units)
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
    return Layout(
        n_units, width, k, par, levels, offsets, atom_of, atom_unit, atom_codes, atom_own, cells,
        child_rel, child_cell, cs_rel, cs_cell, children_ptr, children,
    )  # fmt: skip


def _check(par: IntArray, uni: IntArray, cod: IntArray, nv: IntArray, k: int) -> None:
    """Refuse a tree, membership or coding the layout cannot describe."""
    n_units, n_attr = len(par), len(nv)
    if par.ndim != 1 or n_units == 0:
        raise ValueError("parent must be a non-empty 1-D array")
    if cod.ndim != 2 or cod.shape != (len(uni), n_attr):
        raise ValueError(f"codes must have shape (n_respondents, {n_attr})")
    if k < 2:
        raise ValueError("k (the minimum group size) must be at least 2")
    if np.any(nv < 1):
        raise ValueError("every attribute needs at least one value")
    if np.any((par >= np.arange(n_units)) | (par < -1)):
        raise ValueError("units must be ordered parents first (parent[i] < i, -1 at a root)")
    if len(uni) and (uni.min() < 0 or uni.max() >= n_units):
        raise ValueError("unit index out of range")
    if len(uni) and n_attr and (np.any(cod < 0) or np.any(cod >= nv)):
        raise ValueError("attribute code out of range")


def _ancestors(par: IntArray) -> IntArray:
    """(U, D+1) every unit's ancestors, itself first, -1 padded; vectorised over the depth of the tree."""
    anc_cols = [np.arange(len(par))]
    cur = par.copy()
    while np.any(cur >= 0):
        anc_cols.append(cur)
        cur = np.where(cur >= 0, par[np.maximum(cur, 0)], -1)
    return np.stack(anc_cols, axis=1)


def _atoms(uni: IntArray, cod: IntArray, nv: IntArray, n_units: int) -> tuple[IntArray, IntArray]:
    """The atoms (unique (unit, codes) rows, sorted, so independent of the order of respondents) and each
    respondent's atom."""
    key = np.column_stack([uni, cod]) if len(uni) else np.zeros((0, 1 + len(nv)), np.int64)
    if len(key) and n_units * float(np.prod(nv)) < 2**62:
        # one mixed-radix number per row (unit, then each code): the same order as the rows, unique in 1-D
        flat = uni.copy()
        for a in range(len(nv)):
            flat = flat * nv[a] + cod[:, a]
        _, first, atom_of = np.unique(flat, return_index=True, return_inverse=True)
        return key[first], atom_of.reshape(-1).astype(np.int64)
    if len(key):
        atoms, atom_of = np.unique(key, axis=0, return_inverse=True)
        return atoms, atom_of.reshape(-1).astype(np.int64)
    return key, np.zeros(0, np.int64)
