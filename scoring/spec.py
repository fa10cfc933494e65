"""Inputs of the scoring engine: what the service hands over, as plain frozen dataclasses and arrays.

The service translates instruments (YAML, validated by pydantic in ``service``) and stored answers
into these types; ``scoring`` never sees the database, HTTP or pydantic models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

ItemType = Literal["likert5", "likert7", "nps", "single", "multi", "text"]
Scale = Literal["likert5", "likert7", "nps"]

SCALE_BOUNDS: dict[str, tuple[int, int]] = {"likert5": (1, 5), "likert7": (1, 7), "nps": (0, 10)}


@dataclass(frozen=True)
class Label:
    """A name as the instrument writes it, in Dutch and in English (flag messages name things this way)."""

    nl: str
    en: str


@dataclass(frozen=True)
class ItemSpec:
    """One question. ``options`` are the option ids of ``single``/``multi`` items, else empty;
    ``option_labels`` their names, in the same order (empty: messages use the ids)."""

    id: str
    type: ItemType
    construct: str | None = None
    options: tuple[str, ...] = ()
    option_labels: tuple[Label, ...] = ()


@dataclass(frozen=True)
class BarrierRule:
    """Flag a unit when the share of respondents choosing an option of a ``multi`` item reaches ``share``.

    ``ignore`` lists options that are not barriers (e.g. "none"): they never fire the rule.
    """

    item: str
    share: float
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlagRules:
    """The flag rules a construct declares in its instrument.

    below:     flag when the unit's mean is below this (for an ``nps`` construct: its eNPS, -100..100).
    below_org: flag when the unit's shrunken mean is significantly below the organisation's.
    decline:   flag a significant decline against the previous closed wave (Welch, BH-corrected).
    alpha:     significance level for ``below_org`` and ``decline``.
    barrier:   flag when an option of a barrier list is chosen by a large share.
    """

    below: float | None = None
    below_org: bool = True
    decline: bool = True
    alpha: float = 0.05
    barrier: BarrierRule | None = None


@dataclass(frozen=True)
class ConstructSpec:
    """A scale: its items (ids, in order), reverse-scored items, and rules.

    A respondent's construct score is the mean of their answered items (reverse items recoded as
    min + max - x), counted only if at least ``min_answered`` items were answered. A respondent is
    favourable when their construct score is >= ``favourable_min``.
    """

    id: str
    scale: Scale
    items: tuple[str, ...]
    reverse: frozenset[str] = frozenset()
    min_answered: int = 1
    favourable_min: float = 4.0
    flags: FlagRules = field(default_factory=FlagRules)
    label: Label | None = None  # the construct's name; None: messages use the id


@dataclass(frozen=True)
class InstrumentSpec:
    slug: str
    version: int
    items: tuple[ItemSpec, ...]
    constructs: tuple[ConstructSpec, ...]
    low_participation: float | None = 0.5  # flag a unit whose response rate is below this


@dataclass(frozen=True)
class OrgTree:
    """Units in an order where every parent comes before its children; ``parent[i] == -1`` at a root."""

    keys: tuple[str, ...]
    parent: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Attribute:
    """A participant attribute the wave may be cut by: its values and each respondent's value index."""

    name: str
    values: tuple[str, ...]
    codes: npt.NDArray[np.int64]  # (n_respondents,), index into ``values``


@dataclass(frozen=True)
class WaveData:
    """Everything about one closed wave that the engine needs.

    unit:      (n_respondents,) index into ``tree.keys`` of each respondent's own unit.
    answers:   (n_respondents, n_items) float; for likert/nps the answer, for ``single`` the option
               index, NaN where unanswered; columns follow ``instrument.items`` (multi/text columns NaN).
    multi:     item id -> (n_respondents, n_options) bool of chosen options; a respondent who did
               not answer the item has an all-False row and ``multi_answered[item][r] == False``.
    comments:  text item id -> (respondent index, text) pairs, non-empty texts only.
    invited:   (n_units,) invitations per unit (direct members only, not rolled up).
    invited_attributes: attribute name -> (n_units, n_values) direct invitations per unit and value.
    """

    wave_id: int
    instrument: InstrumentSpec
    tree: OrgTree
    min_group_size: int
    unit: npt.NDArray[np.int64]
    attributes: tuple[Attribute, ...]
    answers: npt.NDArray[np.float64]
    multi: dict[str, npt.NDArray[np.bool_]]
    multi_answered: dict[str, npt.NDArray[np.bool_]]
    comments: dict[str, tuple[tuple[int, str], ...]]
    invited: npt.NDArray[np.int64]
    invited_attributes: dict[str, npt.NDArray[np.int64]]
