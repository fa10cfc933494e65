"""The published result table of a closed wave: frozen dataclasses and their JSON form.

A ``ResultTable`` is computed once per closed wave by ``scoring.build_table`` and is the only source the API,
the dashboards and the export read. ``to_dict`` gives plain JSON (the service stores it gzipped);
``from_dict(to_dict(t)) == t`` and ``from_dict(d).to_dict() == d`` hold exactly.

JSON (``ResultTable.to_dict()``); every float is a JSON number or ``null`` (never NaN)::

    {
      "wave_id": 12, "instrument": "career-safety", "version": 1, "min_group_size": 5,
      "previous_wave_id": 9 | null,                    # the wave changes are measured against
      "units": [{"key": "org", "parent": null}, {"key": "sales", "parent": "org"}, ...],   # parents first
      "attributes": [{"name": "tenure_band", "values": ["<1", "1-3", ...]}, ...],
      "constructs": [{"id": "psych_safety", "scale": "likert7", "min": 1, "max": 7,
                      "favourable_min": 5.0, "items": ["ps_mistakes", ...]}, ...],
      "items": [{"id": "ps_mistakes", "type": "likert7", "construct": "psych_safety",
                 "points": ["1", ..., "7"]},                         # labels of ``counts``, in order:
                {"id": "career_direction", "type": "single", "construct": null,
                 "points": ["lateral", "up", ...]}, ...],            # scale points, or option ids
      "cells": [                                 # one per (unit, cut): unit-major, then the columns
        {"unit": "sales", "attribute": null, "value": null,          # the unit rolled up
         "n": 41, "suppressed": false, "reason": null,
         "constructs": [{"construct": "psych_safety", "n": 40, "mean": 5.1, "sd": 0.9,
                         "ci_low": 4.8, "ci_high": 5.4,              # t-interval, 95 %
                         "favourable": 0.6, "favourable_low": 0.45, "favourable_high": 0.74,  # Wilson
                         "index": 68.3}, ...],                       # 100 (mean - min) / (max - min)
         "items": [{"item": "ps_mistakes", "n": 41, "counts": [2, 5, 9, 10, 8, 5, 2], "mean": 3.9},
                   {"item": "career_direction", "n": 39, "counts": [10, 20, 9], "mean": null}, ...],
         "enps": {"n": 40, "score": 12.5, "ci_low": -10.2, "ci_high": 35.2,
                  "promoters": 15, "passives": 15, "detractors": 10} | null},
        {"unit": "sales", "attribute": "location", "value": "Delft",  # published, its details withheld:
         "n": 12, "suppressed": false, "reason": null,
         "constructs": [{"construct": "psych_safety", "n": 12, "mean": 4.9, ..., "favourable": null,
                         "favourable_low": null, "favourable_high": null, "index": 65.0,
                         "favourable_suppressed": true, "favourable_reason": "complementary"}, ...],
         "items": [{"item": "ps_mistakes", "n": null, "counts": [], "mean": null,
                    "suppressed": true, "reason": "complementary"}, ...],
         "enps": {"n": null, ..., "suppressed": true, "reason": "complementary"}},
        {"unit": "sales", "attribute": "tenure_band", "value": "<1",  # the unit cut by one attribute value
         "n": null, "suppressed": true, "reason": "primary",         # hidden: no numbers at all
         "constructs": [], "items": [], "enps": null}, ...],
      "reliability": [{"unit": "org", "construct": "psych_safety", "suppressed": false, "n": 950, "items": 7,
                       "alpha": 0.83, "ci_low": 0.81, "ci_high": 0.85, "method": "listwise",
                       "rwg": 0.74, "icc1": 0.08, "teams": 120}, ...],  # per root unit (organisation)
      "changes": [{"unit": "sales", "construct": "psych_safety", "suppressed": false, "reason": null,
                   "test": "welch", "n": 40, "mean": 5.1, "previous_n": 38, "previous_mean": 5.4,
                   "difference": -0.3, "statistic": -1.5, "df": 75.2, "p": 0.13, "p_adjusted": 0.4,
                   "significant": false}, ...],
      "flags": [{"unit": "team-7", "construct": "psych_safety", "rule": "below", "severity": "high",
                 "evidence": {"mean": 3.6, "threshold": 4.0, ...}, "message_nl": "...", "message_en": "..."}],
      "comments": [{"unit": "sales", "suppressed": false, "reason": null,
                    "items": [{"item": "grow_text", "texts": ["...", "..."]}]}, ...],  # shuffled, no metadata
      "participation": [{"unit": "sales", "suppressed": false, "reason": null,
                         "invited": 60, "responded": 41, "rate": 0.683}, ...],
      "drivers": {"relations": [[unit, outcome, construct, n, r, ci_low, ci_high], ...],   # scoring.drivers
                  "focus_areas": [[unit, outcome, rank, construct, r, ...], ...], "fields": {...}},
      "publication": {"totals": {"eligible": 1300, "published": 1234}, "cuts": {...},   # scoring.loss; null in
                      "protecting_others": 80, "details_withheld": 40,                   # tables built before it
                      "levels": [{"depth": 0, "totals": {...}, "cuts": {...}}, ...]}
    }

Rules the JSON keeps:

- Every cell exists. A hidden cell says ``"suppressed": true`` and why (``reason``: ``"primary"``: a statistic
  rests on 1 to k-1 respondents; ``"complementary"``: hidden so that a small cell can't be recovered by
  subtraction; ``"range"``: hidden so that the scale's bounds can't pin a hidden mean; ``"empty"``: nobody);
  it carries no numbers: ``n`` and ``enps`` are null, ``constructs`` and ``items`` are empty lists.
- A published cell shows its ``n`` and construct means; its details (favourable shares, eNPS, items) may be
  withheld on their own (``scoring.withhold``): each is then marked ``suppressed`` (``favourable_suppressed``
  for a share) with its reason and has no numbers. The marks are written only where something is withheld.
- In a published cell a construct or item nobody answered has ``n: 0`` and null statistics; ``sd`` and the
  intervals are null below n = 2. ``counts`` are whole numbers; ``mean`` of a ``single``/``multi`` item is null.
  For a ``multi`` item ``n`` is the number who answered the item and ``counts`` how many chose each option.
- A change is published only when the unit's cell is published in both waves' tables.
- ``cells`` are ordered by unit (the order of ``units``), then column: the total, then each attribute's values
  in the order of ``attributes``. ``ResultTable.cell(unit, attribute, value)`` looks one up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from scoring.drivers import Drivers
from scoring.loss import Publication

_Row = TypeVar("_Row")

__all__ = [
    "AttributeInfo",
    "CellArrays",
    "Change",
    "CommentCell",
    "CommentGroup",
    "ConstructCell",
    "ConstructInfo",
    "EnpsCell",
    "Flag",
    "ItemCell",
    "ItemInfo",
    "ParticipationCell",
    "Reliability",
    "ResultCell",
    "ResultTable",
    "UnitInfo",
]

Evidence = Mapping[str, float | int | str | None]


def _num(x: float) -> float | None:
    """A float for JSON: NaN (undefined) becomes None."""
    return None if math.isnan(x) else float(x)


@dataclass(frozen=True)
class UnitInfo:
    key: str
    parent: str | None


@dataclass(frozen=True)
class AttributeInfo:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class ConstructInfo:
    id: str
    scale: str
    min: int
    max: int
    favourable_min: float
    items: tuple[str, ...]


@dataclass(frozen=True)
class ItemInfo:
    """An item with a distribution; ``points`` label the entries of ``ItemCell.counts``."""

    id: str
    type: str
    construct: str | None
    points: tuple[str, ...]


@dataclass(frozen=True)
class ConstructCell:
    construct: str
    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    favourable: float | None
    favourable_low: float | None
    favourable_high: float | None
    index: float | None
    favourable_suppressed: bool = False  # withheld in a published cell: the three favourable figures are null
    favourable_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; the withheld mark only where the favourable share is withheld."""
        d = self.__dict__.copy()
        if not self.favourable_suppressed:
            del d["favourable_suppressed"], d["favourable_reason"]
        return d


@dataclass(frozen=True)
class ItemCell:
    """An item's distribution in a cell; withheld (``suppressed``, no numbers) where the guard's second stage
    hides it in a published cell."""

    item: str
    n: int | None
    counts: tuple[int, ...]
    mean: float | None
    suppressed: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"item": self.item, "n": self.n, "counts": list(self.counts), "mean": self.mean}
        if self.suppressed:
            d["suppressed"], d["reason"] = True, self.reason
        return d


@dataclass(frozen=True)
class EnpsCell:
    """eNPS in a cell; withheld (``suppressed``, every figure null) like an item."""

    n: int | None
    score: float | None
    ci_low: float | None
    ci_high: float | None
    promoters: int | None
    passives: int | None
    detractors: int | None
    suppressed: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        if not self.suppressed:
            del d["suppressed"], d["reason"]
        return d


@dataclass(frozen=True)
class ResultCell:
    """One unit rolled up (``attribute is None``) or one unit x one attribute value."""

    unit: str
    attribute: str | None
    value: str | None
    n: int | None
    suppressed: bool
    reason: str | None
    constructs: tuple[ConstructCell, ...] = ()
    items: tuple[ItemCell, ...] = ()
    enps: EnpsCell | None = None

    def construct(self, construct_id: str) -> ConstructCell | None:
        """The construct's figures in this cell; None when hidden or unknown."""
        return next((c for c in self.constructs if c.construct == construct_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "attribute": self.attribute,
            "value": self.value,
            "n": self.n,
            "suppressed": self.suppressed,
            "reason": self.reason,
            "constructs": [c.to_dict() for c in self.constructs],
            "items": [i.to_dict() for i in self.items],
            "enps": None if self.enps is None else self.enps.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResultCell:
        return cls(
            unit=d["unit"],
            attribute=d["attribute"],
            value=d["value"],
            n=d["n"],
            suppressed=d["suppressed"],
            reason=d["reason"],
            constructs=tuple(ConstructCell(**c) for c in d["constructs"]),
            items=tuple(
                ItemCell(i["item"], i["n"], tuple(i["counts"]), i["mean"], i.get("suppressed", False), i.get("reason"))
                for i in d["items"]
            ),
            enps=None if d["enps"] is None else EnpsCell(**d["enps"]),
        )


@dataclass(frozen=True)
class Reliability:
    """Internal consistency of a construct over a whole organisation (one root unit of the tree).

    ``alpha`` is Cronbach's alpha with its Feldt 95 % interval (``method`` says how gaps were handled);
    ``rwg`` is the mean rwg(J) within-team agreement over ``teams`` teams (units with direct respondents),
    ``icc1`` the ICC(1) between teams. Hidden (all null) when the root's own cell is hidden.
    """

    unit: str
    construct: str
    suppressed: bool
    n: int | None
    items: int
    alpha: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    rwg: float | None
    icc1: float | None
    teams: int | None


@dataclass(frozen=True)
class Change:
    """A unit's construct against the previous wave. ``test``: ``"welch"`` (t on respondent scores, ``df``
    Welch-Satterthwaite) or ``"enps"`` (z on the eNPS difference, variance V1/n1 + V2/n2, ``df`` null).
    ``p_adjusted``: Benjamini-Hochberg over all published changes of the construct."""

    unit: str
    construct: str
    suppressed: bool
    reason: str | None
    test: str
    n: int | None = None
    mean: float | None = None
    previous_n: int | None = None
    previous_mean: float | None = None
    difference: float | None = None
    statistic: float | None = None
    df: float | None = None
    p: float | None = None
    p_adjusted: float | None = None
    significant: bool | None = None


@dataclass(frozen=True)
class Flag:
    """A unit that needs attention: which rule fired (``below``, ``below_org``, ``decline``, ``barrier``,
    ``participation``), how strongly (``high``/``medium``) and the numbers that made it fire."""

    unit: str
    construct: str | None
    rule: str
    severity: str
    evidence: Evidence
    message_nl: str
    message_en: str

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["evidence"] = dict(self.evidence)
        return d


@dataclass(frozen=True)
class CommentGroup:
    item: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class CommentCell:
    """Free texts of a unit's whole subtree, shuffled, without metadata; only for groups of >= 2k writers."""

    unit: str
    suppressed: bool
    reason: str | None
    items: tuple[CommentGroup, ...] = ()


@dataclass(frozen=True)
class ParticipationCell:
    """Invitations and complete responses in a unit's subtree; hidden like any other cell."""

    unit: str
    suppressed: bool
    reason: str | None
    invited: int | None = None
    responded: int | None = None
    rate: float | None = None


@dataclass(frozen=True, eq=False)
class CellArrays:
    """All cells of a table as arrays, as ``build_table`` computes them; cells are materialised on demand.

    Shapes: U units, W columns (total + every attribute value), C constructs, I items with distributions,
    T = total number of distribution points over those items. Values of hidden cells are already blanked
    (NaN / 0) and are never read: a hidden cell materialises without numbers.
    """

    units: tuple[str, ...]
    columns: tuple[tuple[str | None, str | None], ...]
    constructs: tuple[str, ...]
    items: tuple[str, ...]
    item_offsets: npt.NDArray[np.int64]  # (I + 1,): item i's counts are counts[..., off[i]:off[i+1]]
    item_scaled: npt.NDArray[np.bool_]  # (I,): has a mean
    n: npt.NDArray[np.int64]  # (U, W)
    hidden: npt.NDArray[np.bool_]  # (U, W)
    reason: npt.NDArray[np.int64]  # (U, W) index into reason_names; published cells: -1
    reason_names: tuple[str, ...]
    withheld: npt.NDArray[np.bool_]  # (U, W) published cells whose details (favourable, eNPS, items) are withheld
    withheld_reason: npt.NDArray[np.int64]  # (U, W) index into reason_names; elsewhere -1
    construct_n: npt.NDArray[np.int64]  # (U, W, C)
    construct_stats: npt.NDArray[np.float64]  # (8, U, W, C): mean sd ci_low ci_high fav fav_low fav_high index
    item_n: npt.NDArray[np.int32]  # (U, W, I)
    item_mean: npt.NDArray[np.float64]  # (U, W, I)
    counts: npt.NDArray[np.int32]  # (U, W, T)
    enps: npt.NDArray[np.float64] | None  # (U, W, 7): n score ci_low ci_high promoters passives detractors

    def cell(self, u: int, w: int) -> ResultCell:
        unit = self.units[u]
        attribute, value = self.columns[w]
        if self.hidden[u, w]:
            return ResultCell(unit, attribute, value, None, True, self.reason_names[int(self.reason[u, w])])
        if self.withheld[u, w]:
            return self._withheld_cell(u, w)
        constructs = self._constructs(u, w, None)
        counts = self.counts[u, w].tolist()
        off = self.item_offsets.tolist()
        i_n = self.item_n[u, w].tolist()
        i_mean = self.item_mean[u, w].tolist()
        items = tuple(
            ItemCell(
                item,
                i_n[i],
                tuple(counts[off[i] : off[i + 1]]),
                None if i_n[i] == 0 or math.isnan(i_mean[i]) else i_mean[i],
            )
            for i, item in enumerate(self.items)
        )
        enps = None
        if self.enps is not None:
            e = self.enps[u, w].tolist()
            n = int(e[0])
            score, low, high = (None if n == 0 or math.isnan(x) else float(x) for x in e[1:4])
            enps = EnpsCell(n, score, low, high, int(e[4]), int(e[5]), int(e[6]))
        return ResultCell(unit, attribute, value, int(self.n[u, w]), False, None, constructs, items, enps)

    def cell_dicts(self) -> list[dict[str, Any]]:
        """Every cell's JSON form, equal to ``[cell.to_dict() ...]``, written from the arrays: the published cells'
        figures are taken out of numpy in one conversion per array, not cell by cell, and no cell object is made
        (the stored table's largest step at 100,000 respondents). Withheld cells, fewer, go through ``cell``."""
        flat_hidden = self.hidden.reshape(-1)
        out: list[dict[str, Any]] = [
            {
                "unit": self.units[u],
                "attribute": self.columns[w][0],
                "value": self.columns[w][1],
                "n": None,
                "suppressed": True,
                "reason": self.reason_names[r],
                "constructs": [],
                "items": [],
                "enps": None,
            }
            for u, w, r in zip(*self._where(flat_hidden), self.reason.reshape(-1)[flat_hidden].tolist(), strict=True)
        ]
        withheld = self.withheld.reshape(-1) & ~flat_hidden
        out += [self.cell(u, w).to_dict() for u, w in zip(*self._where(withheld), strict=True)]
        shown = ~flat_hidden & ~withheld
        out += self._published_dicts(*self._where(shown))
        order = np.concatenate([np.flatnonzero(flat_hidden), np.flatnonzero(withheld), np.flatnonzero(shown)])
        ranked = np.empty(len(order), dtype=np.int64)
        ranked[order] = np.arange(len(order))
        return [out[i] for i in ranked.tolist()]

    def _where(self, mask: npt.NDArray[np.bool_]) -> tuple[list[int], list[int]]:
        """(units, columns) of the cells ``mask`` (flat, U*W) selects, in the order of the flat index."""
        u, w = np.divmod(np.flatnonzero(mask), len(self.columns))
        return u.tolist(), w.tolist()

    def _published_dicts(self, us: list[int], ws: list[int]) -> list[dict[str, Any]]:
        """The JSON form of published cells with every detail shown, as ``cell(u, w).to_dict()`` writes it."""
        names = ("mean", "sd", "ci_low", "ci_high", "favourable", "favourable_low", "favourable_high", "index")
        stats = self.construct_stats[:, us, ws].transpose(1, 2, 0).tolist()  # (P, C, 8)
        cns = self.construct_n[us, ws].tolist()
        counts = self.counts[us, ws].tolist()
        item_ns = self.item_n[us, ws].tolist()
        item_means = self.item_mean[us, ws].tolist()
        enps = None if self.enps is None else self.enps[us, ws].tolist()
        ns = self.n[us, ws].tolist()
        off = self.item_offsets.tolist()
        spans = list(zip(self.items, off[:-1], off[1:], strict=True))
        out = []
        for p, (u, w) in enumerate(zip(us, ws, strict=True)):
            constructs = [
                {"construct": c, "n": n} | dict(zip(names, [None if n == 0 or v != v else v for v in x], strict=True))
                for c, n, x in zip(self.constructs, cns[p], stats[p], strict=True)
            ]
            i_n, i_mean, cnt = item_ns[p], item_means[p], counts[p]
            items = [
                {"item": item, "n": i_n[i], "counts": cnt[a:b], "mean": None if i_n[i] == 0 or m != m else m}
                for i, ((item, a, b), m) in enumerate(zip(spans, i_mean, strict=True))
            ]
            cell: dict[str, Any] = {
                "unit": self.units[u],
                "attribute": self.columns[w][0],
                "value": self.columns[w][1],
                "n": ns[p],
                "suppressed": False,
                "reason": None,
                "constructs": constructs,
                "items": items,
                "enps": None if enps is None else _enps_dict(enps[p]),
            }
            out.append(cell)
        return out

    def _constructs(self, u: int, w: int, withheld: str | None) -> tuple[ConstructCell, ...]:
        """The construct figures of a published cell; with the favourable share withheld for ``withheld``."""
        stats = self.construct_stats[:, u, w].T.tolist()
        cn = self.construct_n[u, w].tolist()
        out = []
        for j, c in enumerate(self.constructs):
            x = [None if (cn[j] == 0 or math.isnan(v)) else v for v in stats[j]]
            if withheld is None:
                out.append(ConstructCell(c, cn[j], x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]))
            else:
                out.append(ConstructCell(c, cn[j], x[0], x[1], x[2], x[3], None, None, None, x[7], True, withheld))
        return tuple(out)

    def _withheld_cell(self, u: int, w: int) -> ResultCell:
        """A published cell whose details are withheld: n and the construct means, every detail marked."""
        why = self.reason_names[int(self.withheld_reason[u, w])]
        constructs = self._constructs(u, w, why)
        items = tuple(ItemCell(item, None, (), None, True, why) for item in self.items)
        enps = None if self.enps is None else EnpsCell(None, None, None, None, None, None, None, True, why)
        attribute, value = self.columns[w]
        return ResultCell(self.units[u], attribute, value, int(self.n[u, w]), False, None, constructs, items, enps)


def _enps_dict(e: list[float]) -> dict[str, Any]:
    """eNPS of a published cell as ``EnpsCell.to_dict`` writes it, from its row of the cell arrays."""
    n = int(e[0])
    score, low, high = (None if n == 0 or x != x else float(x) for x in e[1:4])
    return {
        "n": n,
        "score": score,
        "ci_low": low,
        "ci_high": high,
        "promoters": int(e[4]),
        "passives": int(e[5]),
        "detractors": int(e[6]),
    }


class _Lazy(Sequence[_Row]):
    """A sequence of a built table's rows made when read: equal to any sequence of equal rows, unhashable."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


class LazyCells(_Lazy[ResultCell]):
    """The cells of a freshly built table: a sequence that materialises ``ResultCell`` objects when read, so
    that building a table of 10,000 units x 19 columns costs arrays, not millions of Python objects."""

    def __init__(self, arrays: CellArrays) -> None:
        self.arrays = arrays
        self._width = len(arrays.columns)

    def __len__(self) -> int:
        return len(self.arrays.units) * self._width

    @overload
    def __getitem__(self, index: int) -> ResultCell: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ResultCell]: ...
    def __getitem__(self, index: int | slice) -> ResultCell | Sequence[ResultCell]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.arrays.cell(index // self._width, index % self._width)

    def __iter__(self) -> Iterator[ResultCell]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"LazyCells({len(self.arrays.units)} units x {self._width} columns)"


@dataclass(frozen=True, eq=False)
class ChangeArrays:
    """The changes of a freshly built table as arrays: P units (in both waves) x K constructs (shared).

    ``published`` (K, P): the unit's total cell (for eNPS: its eNPS) is published in both waves; else its change is
    withheld, for the ``reason`` ``"suppressed"`` where ``hidden`` (K, P) (this wave hides it),
    ``"previous_suppressed"`` elsewhere.
    The figures (K, P) are read where published only: ``n``/``previous_n`` whole numbers, the others NaN where
    undefined (null in the table); ``significant`` is ``p_adjusted <= alpha`` (K,).
    """

    units: tuple[str, ...]
    constructs: tuple[str, ...]
    tests: tuple[str, ...]
    alpha: tuple[float, ...]
    published: npt.NDArray[np.bool_]
    hidden: npt.NDArray[np.bool_]
    figures: npt.NDArray[np.float64]  # (9, K, P): n, mean, previous_n, previous_mean, difference, statistic, df, p,
    # p_adjusted

    def given(self, k: int) -> list[tuple[Any, ...]]:
        """The fields (``Change`` order) of construct ``k``'s published changes, units in order."""
        at = np.flatnonzero(self.published[k])
        f = self.figures[:, k, at]
        construct, test, alpha = self.constructs[k], self.tests[k], self.alpha[k]
        n, previous_n = f[0].astype(np.int64).tolist(), f[2].astype(np.int64).tolist()
        mean, previous_mean, difference, statistic, df, p, q = (_plain(f[i]) for i in (1, 3, 4, 5, 6, 7, 8))
        return [
            (u, construct, False, None, test, n_, m, pn, pm, d, t, f_, p_, q_, None if q_ is None else q_ <= alpha)
            for u, n_, m, pn, pm, d, t, f_, p_, q_ in zip(
                (self.units[i] for i in at.tolist()), n, mean, previous_n, previous_mean, difference, statistic, df,
                p, q, strict=True,
            )
        ]  # fmt: skip

    def rows(self) -> list[tuple[Any, ...]]:
        """Every change's fields in ``Change`` order, construct by construct, units in order (no objects made)."""
        out: list[tuple[Any, ...]] = []
        withheld = (None,) * 10
        for k, (construct, test) in enumerate(zip(self.constructs, self.tests, strict=True)):
            shown = self.published[k].tolist()
            reason = np.where(self.hidden[k], "suppressed", "previous_suppressed").tolist()
            given = iter(self.given(k)).__next__
            out.extend(
                given() if s else (unit, construct, True, r, test, *withheld)
                for unit, s, r in zip(self.units, shown, reason, strict=True)
            )
        return out


def _plain(x: npt.NDArray[np.float64]) -> list[float | None]:
    """Python floats, None where not finite (NaN: undefined)."""
    out = x.astype(object)
    out[~np.isfinite(x)] = None
    found: list[float | None] = out.tolist()
    return found


_CHANGE_FIELDS = tuple(f.name for f in fields(Change))


class LazyChanges(_Lazy[Change]):
    """The changes of a freshly built table: ``Change`` objects made when read (90,000 of them at 100,000
    respondents), from ``ChangeArrays``; the table's JSON is written from the rows directly."""

    def __init__(self, arrays: ChangeArrays) -> None:
        self.arrays = arrays
        self._rows: list[tuple[Any, ...]] | None = None

    def published(self) -> list[Change]:
        """The published changes only (few: most are withheld)."""
        return [Change(*r) for k in range(len(self.arrays.constructs)) for r in self.arrays.given(k)]

    def rows(self) -> list[tuple[Any, ...]]:
        """Every change's fields (``ChangeArrays.rows``), made once."""
        if self._rows is None:
            self._rows = self.arrays.rows()
        return self._rows

    def __len__(self) -> int:
        return len(self.arrays.units) * len(self.arrays.constructs)

    @overload
    def __getitem__(self, index: int) -> Change: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Change]: ...
    def __getitem__(self, index: int | slice) -> Change | Sequence[Change]:
        rows = self.rows()
        if isinstance(index, slice):
            return tuple(Change(*r) for r in rows[index])
        return Change(*rows[index])

    def __iter__(self) -> Iterator[Change]:
        return (Change(*r) for r in self.rows())

    def __repr__(self) -> str:
        return f"LazyChanges({len(self.arrays.units)} units x {len(self.arrays.constructs)} constructs)"


@dataclass(frozen=True)
class ResultTable:
    """Everything published about one closed wave. See the module docstring for the JSON form."""

    wave_id: int
    instrument: str
    version: int
    min_group_size: int
    previous_wave_id: int | None
    units: tuple[UnitInfo, ...]
    attributes: tuple[AttributeInfo, ...]
    constructs: tuple[ConstructInfo, ...]
    items: tuple[ItemInfo, ...]
    cells: Sequence[ResultCell]
    reliability: tuple[Reliability, ...] = ()
    changes: Sequence[Change] = ()
    flags: tuple[Flag, ...] = ()
    comments: tuple[CommentCell, ...] = ()
    participation: tuple[ParticipationCell, ...] = ()
    drivers: Drivers = field(default_factory=Drivers)  # correlations and focus areas (scoring.drivers)
    publication: Publication | None = None  # what the guard published of the eligible cells (scoring.loss)

    @cached_property
    def _unit_index(self) -> dict[str, int]:
        return {u.key: i for i, u in enumerate(self.units)}

    @cached_property
    def _column_index(self) -> dict[tuple[str | None, str | None], int]:
        columns: list[tuple[str | None, str | None]] = [(None, None)]
        columns += [(a.name, v) for a in self.attributes for v in a.values]
        return {c: i for i, c in enumerate(columns)}

    @property
    def width(self) -> int:
        """Columns per unit: the total and every attribute value."""
        return len(self._column_index)

    def cell(self, unit_key: str, attribute: str | None = None, value: str | None = None) -> ResultCell:
        """The cell of a unit (rolled up), or of the unit cut by ``attribute == value``; KeyError if unknown."""
        u = self._unit_index[unit_key]
        w = self._column_index[(attribute, value)]
        return self.cells[u * self.width + w]

    def cuts(self, unit_key: str, attribute: str) -> tuple[ResultCell, ...]:
        """The unit's cells for each value of one attribute (a ``by=`` query)."""
        values = next(a.values for a in self.attributes if a.name == attribute)
        return tuple(self.cell(unit_key, attribute, v) for v in values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wave_id": self.wave_id,
            "instrument": self.instrument,
            "version": self.version,
            "min_group_size": self.min_group_size,
            "previous_wave_id": self.previous_wave_id,
            "units": [{"key": u.key, "parent": u.parent} for u in self.units],
            "attributes": [{"name": a.name, "values": list(a.values)} for a in self.attributes],
            "constructs": [
                {
                    "id": c.id,
                    "scale": c.scale,
                    "min": c.min,
                    "max": c.max,
                    "favourable_min": c.favourable_min,
                    "items": list(c.items),
                }
                for c in self.constructs
            ],
            "items": [
                {"id": i.id, "type": i.type, "construct": i.construct, "points": list(i.points)} for i in self.items
            ],
            "cells": (
                self.cells.arrays.cell_dicts()
                if isinstance(self.cells, LazyCells)
                else [c.to_dict() for c in self.cells]
            ),
            "reliability": [r.__dict__.copy() for r in self.reliability],
            "changes": (
                [dict(zip(_CHANGE_FIELDS, r, strict=True)) for r in self.changes.rows()]
                if isinstance(self.changes, LazyChanges)
                else [c.__dict__.copy() for c in self.changes]
            ),
            "flags": [f.to_dict() for f in self.flags],
            "comments": [
                {
                    "unit": c.unit,
                    "suppressed": c.suppressed,
                    "reason": c.reason,
                    "items": [{"item": g.item, "texts": list(g.texts)} for g in c.items],
                }
                for c in self.comments
            ],
            "participation": [p.__dict__.copy() for p in self.participation],
            "drivers": self.drivers.to_dict(),
            "publication": None if self.publication is None else self.publication.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResultTable:
        return cls(
            wave_id=d["wave_id"],
            instrument=d["instrument"],
            version=d["version"],
            min_group_size=d["min_group_size"],
            previous_wave_id=d["previous_wave_id"],
            units=tuple(UnitInfo(u["key"], u["parent"]) for u in d["units"]),
            attributes=tuple(AttributeInfo(a["name"], tuple(a["values"])) for a in d["attributes"]),
            constructs=tuple(
                ConstructInfo(c["id"], c["scale"], c["min"], c["max"], c["favourable_min"], tuple(c["items"]))
                for c in d["constructs"]
            ),
            items=tuple(ItemInfo(i["id"], i["type"], i["construct"], tuple(i["points"])) for i in d["items"]),
            cells=tuple(ResultCell.from_dict(c) for c in d["cells"]),
            reliability=tuple(Reliability(**r) for r in d["reliability"]),
            changes=tuple(Change(**c) for c in d["changes"]),
            flags=tuple(Flag(**{**f, "evidence": dict(f["evidence"])}) for f in d["flags"]),
            comments=tuple(
                CommentCell(
                    c["unit"],
                    c["suppressed"],
                    c["reason"],
                    tuple(CommentGroup(g["item"], tuple(g["texts"])) for g in c["items"]),
                )
                for c in d["comments"]
            ),
            participation=tuple(ParticipationCell(**p) for p in d["participation"]),
            drivers=Drivers.from_dict(d.get("drivers")),  # absent in tables built before drivers existed
            publication=None if d.get("publication") is None else Publication.from_dict(d["publication"]),
        )
