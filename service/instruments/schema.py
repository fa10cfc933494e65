"""The instrument file format: pydantic models that every ``survey_definitions/<slug>/<version>.yaml`` obeys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from scoring.spec import SCALE_BOUNDS

Lang = Literal["nl", "en"]
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
ItemType = Literal["likert5", "likert7", "nps", "single", "multi", "text"]
Scale = Literal["likert5", "likert7", "nps"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Text(_Strict):
    """A text in every language Peil speaks."""

    nl: NonEmpty
    en: NonEmpty

    def get(self, lang: Lang) -> str:
        return self.nl if lang == "nl" else self.en


class Option(_Strict):
    id: Ident
    text: Text


class Item(_Strict):
    """One question. Scaled items (likert5, likert7, nps) belong to a construct; choices have options."""

    id: Ident
    type: ItemType
    text: Text
    help: Text | None = None
    # "construct" in the file; renamed here because pydantic's BaseModel has a method of that name.
    construct_id: Ident | None = Field(default=None, alias="construct")
    required: bool = False
    options: tuple[Option, ...] = ()
    max_length: int = Field(default=2000, ge=1, le=10000)  # text items only

    @model_validator(mode="after")
    def _options_match_type(self) -> Item:
        if self.type in ("single", "multi"):
            if len(self.options) < 2:
                raise ValueError(f"a {self.type} item needs at least two options")
            ids = [o.id for o in self.options]
            if len(set(ids)) != len(ids):
                raise ValueError("option ids must be unique within an item")
        elif self.options:
            raise ValueError(f"a {self.type} item takes no options")
        if self.construct_id is not None and self.type not in ("likert5", "likert7", "nps"):
            raise ValueError(f"a {self.type} item cannot belong to a construct")
        return self


class Section(_Strict):
    id: Ident
    title: Text
    intro: Text | None = None
    items: tuple[Item, ...] = Field(min_length=1)


class Favourable(_Strict):
    """A respondent is favourable on a construct when their construct score is at least ``min``."""

    min: float


class BarrierRule(_Strict):
    """Flag a unit when any option of the ``multi`` item ``item`` is chosen by at least ``share``.

    ``ignore`` lists options that are not barriers (e.g. ``none``, "nothing holds me back"): choosing
    them never fires the rule.
    """

    item: Ident
    share: float = Field(gt=0, le=1)
    ignore: tuple[Ident, ...] = ()


class FlagRules(_Strict):
    """Thresholds the scoring engine reads. ``below`` is on the construct's scale (eNPS -100..100 for nps)."""

    below: float | None = None
    below_org: bool = True
    decline: bool = True
    alpha: float = Field(default=0.05, gt=0, lt=1)
    barrier: BarrierRule | None = None


class Construct(_Strict):
    """A scale made of items: its scale, reverse items, the minimum of answered items and its rules."""

    id: Ident
    name: Text
    description: Text | None = None
    scale: Scale
    reverse: tuple[Ident, ...] = ()
    min_answered: int = Field(default=1, ge=1)
    favourable: Favourable
    flags: FlagRules = FlagRules()
    source: str | None = None

    @model_validator(mode="after")
    def _favourable_on_scale(self) -> Construct:
        lo, hi = SCALE_BOUNDS[self.scale]
        if not lo <= self.favourable.min <= hi:
            raise ValueError(f"favourable.min {self.favourable.min} is outside the scale {lo}..{hi}")
        if self.flags.below is not None:
            blo, bhi = (-100, 100) if self.scale == "nps" else (lo, hi)
            if not blo <= self.flags.below <= bhi:
                raise ValueError(f"flags.below {self.flags.below} is outside {blo}..{bhi}")
        if self.scale == "nps" and self.reverse:
            raise ValueError("an nps construct has no reverse items")
        return self


class ScaleLabels(_Strict):
    """Labels of the answer points: five for likert5, seven for likert7, the two ends of the 0-10 scale."""

    likert5: tuple[Text, Text, Text, Text, Text]
    likert7: tuple[Text, Text, Text, Text, Text, Text, Text]
    nps_low: Text
    nps_high: Text


class InstrumentFlags(_Strict):
    low_participation: float | None = Field(default=0.5, gt=0, le=1)


class Instrument(_Strict):
    """One published version of an instrument. Immutable: a change is a new version."""

    slug: Slug
    version: int = Field(ge=1)
    title: Text
    description: Text
    # Superseded: the form and the mails show the service's own privacy statement (service/forms/i18n.py), since
    # what it promises is what Peil does, the same for every instrument. Published files keep theirs.
    privacy: Text | None = Field(default=None, description="Not shown: the service's own privacy statement is.")
    languages: tuple[Lang, ...] = ("nl", "en")
    scales: ScaleLabels
    constructs: tuple[Construct, ...] = Field(min_length=1)
    sections: tuple[Section, ...] = Field(min_length=1)
    flags: InstrumentFlags = InstrumentFlags()

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def construct_items(self, construct_id: str) -> tuple[Item, ...]:
        return tuple(item for item in self.items if item.construct_id == construct_id)

    @model_validator(mode="after")
    def _references_hold(self) -> Instrument:
        problems: list[str] = []
        seen: set[str] = set()
        for section_ids in [[s.id for s in self.sections]]:
            if len(set(section_ids)) != len(section_ids):
                problems.append("section ids must be unique")
        for item in self.items:
            if item.id in seen:
                problems.append(f"item {item.id}: duplicate item id")
            seen.add(item.id)
        constructs = {c.id: c for c in self.constructs}
        if len(constructs) != len(self.constructs):
            problems.append("construct ids must be unique")
        for item in self.items:
            if item.construct_id is None:
                continue
            construct = constructs.get(item.construct_id)
            if construct is None:
                problems.append(f"item {item.id}: unknown construct {item.construct_id!r}")
            elif item.type != construct.scale:
                problems.append(
                    f"item {item.id}: type {item.type} differs from its construct's scale {construct.scale}"
                )
        for construct in self.constructs:
            members = {i.id for i in self.construct_items(construct.id)}
            if not members:
                problems.append(f"construct {construct.id}: has no items")
            for rid in construct.reverse:
                if rid not in members:
                    problems.append(f"construct {construct.id}: reverse item {rid!r} is not one of its items")
            if members and construct.min_answered > len(members):
                problems.append(
                    f"construct {construct.id}: min_answered {construct.min_answered} exceeds its {len(members)} items"
                )
            barrier = construct.flags.barrier
            if barrier is not None:
                if barrier.item not in seen:
                    problems.append(f"construct {construct.id}: barrier item {barrier.item!r} does not exist")
                elif self.item(barrier.item).type != "multi":
                    problems.append(f"construct {construct.id}: barrier item {barrier.item!r} is not a multi item")
                else:
                    options = {o.id for o in self.item(barrier.item).options}
                    for option in barrier.ignore:
                        if option not in options:
                            problems.append(
                                f"construct {construct.id}: barrier ignores {option!r}, "
                                f"which is not an option of {barrier.item!r}"
                            )
                    if options <= set(barrier.ignore):
                        problems.append(f"construct {construct.id}: barrier ignores every option of {barrier.item!r}")
        if set(self.languages) != {"nl", "en"}:
            problems.append("an instrument is written in both nl and en")
        if problems:
            raise ValueError("; ".join(problems))
        return self
