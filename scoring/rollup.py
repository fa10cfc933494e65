"""Sums through the org tree: a unit's figures include its own members and every unit below it.

A ``TreePlan`` is computed once per tree and rolls up any array of per-unit direct sums. The level-by-level
recursion (each level's sums added to its parents, deepest level first) is unrolled once into a sparse
"subtree" matrix ``A`` (U x U, ``A[a, u] = 1`` when ``a`` is ``u`` or one of its ancestors, U x depth
nonzeros), so a rollup is one sparse product ``A @ direct``: several times faster than ``np.add.at`` or
``np.add.reduceat`` level by level (``benchmarks/README.md``). No Python loop over units or respondents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import sparse

__all__ = ["TreePlan", "tree_plan"]

Number = TypeVar("Number", bound=np.number[Any])


@dataclass(frozen=True, eq=False)
class TreePlan:
    """A tree prepared for rollups.

    parent: (U,) index of each unit's parent, -1 at a root; parents come before their children.
    depth:  (U,) 0 at a root.
    root:   (U,) index of each unit's root.
    ancestors: (U, D + 1) the unit itself, its parent, ... its root, then -1 (D = the deepest depth).
    """

    parent: npt.NDArray[np.int64]
    depth: npt.NDArray[np.int64]
    root: npt.NDArray[np.int64]
    ancestors: npt.NDArray[np.int64]
    subtree: sparse.csr_array  # (U, U): subtree[a, u] = 1 when a is u or an ancestor of u

    @property
    def size(self) -> int:
        return int(self.parent.shape[0])

    def rollup(self, direct: npt.NDArray[Number]) -> npt.NDArray[Number]:
        """Subtree sums: ``out[u] = sum of direct[v] over v in u's subtree`` along axis 0 (a new array)."""
        if direct.shape[0] != self.size:
            raise ValueError(f"direct has {direct.shape[0]} rows for {self.size} units")
        flat = direct.reshape(self.size, -1)
        matrix = self.subtree if flat.dtype == np.float64 else self.subtree.astype(flat.dtype)
        out: npt.NDArray[Number] = np.asarray(matrix @ flat, dtype=direct.dtype).reshape(direct.shape)
        return out

    def in_subtree(self, unit: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """(n, D + 1): for each given unit, every unit whose subtree contains it (itself first), -1 padded."""
        return self.ancestors[unit]


def tree_plan(parent: npt.ArrayLike) -> TreePlan:
    """Prepare ``parent`` (index of each unit's parent, -1 at a root, parents before children) for rollups.

    Raises ValueError on a parent index out of range or one that does not come before its child.
    """
    p = np.asarray(parent, dtype=np.int64)
    if p.ndim != 1:
        raise ValueError("parent must be one-dimensional")
    n = p.shape[0]
    idx = np.arange(n, dtype=np.int64)
    if np.any((p < -1) | (p >= n)) or np.any((p >= 0) & (p >= idx)):
        raise ValueError("every parent must be -1 or a unit listed before its child")
    # Walk every unit up one level per step (D steps in all): its depth is how many steps it can take.
    depth = np.zeros(n, dtype=np.int64)
    root = idx.copy()
    above = p.copy()
    while (climbing := above >= 0).any():
        depth += climbing
        root = np.where(climbing, above, root)
        above = np.where(climbing, p[np.maximum(above, 0)], -1)
    max_depth = int(depth.max()) if n else 0
    ancestors = np.full((n, max_depth + 1), -1, dtype=np.int64)
    ancestors[:, 0] = idx
    for d in range(1, max_depth + 1):
        prev = ancestors[:, d - 1]
        ok = prev >= 0
        ancestors[ok, d] = p[prev[ok]]
    ok = ancestors >= 0
    subtree = sparse.csr_array(
        (np.ones(int(ok.sum())), (ancestors[ok], np.broadcast_to(idx[:, None], ancestors.shape)[ok])), shape=(n, n)
    )
    return TreePlan(parent=p, depth=depth, root=root, ancestors=ancestors, subtree=subtree)
