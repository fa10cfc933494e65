"""What the guard costs a table: of the cells with at least ``min_group_size`` respondents, how many are published.

A cell with at least k respondents (an *eligible* cell) could be shown as far as rule 1 goes; it is hidden only
to protect others (rule 2: ``complementary`` or ``range``) or because one of its statistics rests on 1 to k-1
people (``primary``). The counts are kept per table, for unit totals (column 0) and for cuts (the other
columns), overall and per level (depth) of the tree, so that HR sees what the guard took, and the benchmark can
follow it over changes of the guard (DESIGN.md rule 7: >= 95 % of eligible totals, >= 80 % of eligible cuts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Level", "Publication", "Tally", "describe", "publication"]


@dataclass(frozen=True)
class Tally:
    """Eligible cells (at least k respondents) and how many of them are published."""

    eligible: int
    published: int

    @property
    def share(self) -> float | None:
        """published / eligible; None when nothing is eligible."""
        return self.published / self.eligible if self.eligible else None

    def to_dict(self) -> dict[str, int]:
        return {"eligible": self.eligible, "published": self.published}


@dataclass(frozen=True)
class Level:
    """The tallies of one level of the tree (depth 0: the organisations)."""

    depth: int
    totals: Tally
    cuts: Tally


@dataclass(frozen=True)
class Publication:
    """What a table publishes of its eligible cells.

    ``protecting_others``: eligible cells hidden to protect other cells (reason ``complementary`` or ``range``).
    ``details_withheld``: eligible published cells whose details (favourable shares, eNPS, items) are withheld.
    """

    totals: Tally
    cuts: Tally
    protecting_others: int
    details_withheld: int
    levels: tuple[Level, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "totals": self.totals.to_dict(),
            "cuts": self.cuts.to_dict(),
            "protecting_others": self.protecting_others,
            "details_withheld": self.details_withheld,
            "levels": [{"depth": v.depth, "totals": v.totals.to_dict(), "cuts": v.cuts.to_dict()} for v in self.levels],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Publication:
        return cls(
            Tally(**d["totals"]),
            Tally(**d["cuts"]),
            d["protecting_others"],
            d["details_withheld"],
            tuple(Level(v["depth"], Tally(**v["totals"]), Tally(**v["cuts"])) for v in d["levels"]),
        )


def _tally(eligible: npt.NDArray[np.bool_], published: npt.NDArray[np.bool_]) -> Tally:
    return Tally(int(eligible.sum()), int((eligible & published).sum()))


def publication(
    n: npt.ArrayLike,
    hidden: npt.ArrayLike,
    protecting: npt.ArrayLike,
    depth: npt.ArrayLike,
    k: int,
    withheld: npt.ArrayLike | None = None,
) -> Publication:
    """Count a table's eligible and published cells.

    Parameters
    ----------
    n : (U, W) respondents per cell (column 0 the unit's total, the others its cuts), hidden or not.
    hidden : (U, W) the cells the table hides.
    protecting : (U, W) hidden cells whose reason is ``complementary`` or ``range`` (hidden for others' sake).
    depth : (U,) each unit's level in the tree, 0 at a root.
    k : the wave's minimum group size.
    withheld : (U, W) published cells whose details are withheld; None: none.

    Examples
    --------
    >>> p = publication([[6, 5, 1], [4, 4, 0]], [[False, False, True], [True, True, True]],
    ...                 [[False, False, False], [False, False, False]], [0, 1], 5)
    >>> (p.totals.eligible, p.totals.published, p.cuts.eligible, p.cuts.published)
    (1, 1, 1, 1)
    """
    counts = np.asarray(n)
    shown = ~np.asarray(hidden, dtype=np.bool_)
    if counts.ndim != 2 or shown.shape != counts.shape:
        raise ValueError("n and hidden must be (units, columns) arrays of one shape")
    levels = np.asarray(depth, dtype=np.int64)
    if levels.shape != counts.shape[:1]:
        raise ValueError("depth must have one entry per unit")
    eligible = counts >= k
    other = np.asarray(protecting, dtype=np.bool_) & eligible & ~shown
    kept = np.zeros_like(shown) if withheld is None else np.asarray(withheld, dtype=np.bool_)
    per_level = tuple(
        Level(
            int(d),
            _tally(eligible[levels == d, 0], shown[levels == d, 0]),
            _tally(eligible[levels == d, 1:], shown[levels == d, 1:]),
        )
        for d in np.unique(levels).tolist()
    )
    return Publication(
        _tally(eligible[:, 0], shown[:, 0]),
        _tally(eligible[:, 1:], shown[:, 1:]),
        int(other.sum()),
        int((kept & shown & eligible).sum()),
        per_level,
    )


def _share(t: Tally) -> str:
    return f"{t.published:,} of {t.eligible:,}" + ("" if t.share is None else f" ({100 * t.share:.1f}%)")


def describe(p: Publication, k: int) -> list[str]:
    """Lines for a terminal (``benchmarks/scoring.py``, ``peil demo``): the shares published, then per level.

    >>> describe(Publication(Tally(4, 3), Tally(0, 0), 1, 0, (Level(0, Tally(4, 3), Tally(0, 0)),)), 5)[0]
    'groups of 5 or more published: unit totals 3 of 4 (75.0%), cuts 0 of 0; 1 hidden to protect others'
    """
    lines = [
        f"groups of {k} or more published: unit totals {_share(p.totals)}, cuts {_share(p.cuts)}; "
        f"{p.protecting_others:,} hidden to protect others"
        + (f"; {p.details_withheld:,} published with their details withheld" if p.details_withheld else "")
    ]
    lines += [f"  level {v.depth}: unit totals {_share(v.totals)}, cuts {_share(v.cuts)}" for v in p.levels]
    return lines
