"""What a page of the form shows, worked out here so the templates only lay it out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.forms import i18n
from service.forms.answers import Problem
from service.forms.i18n import Lang
from service.instruments.schema import Instrument, Item


@dataclass(frozen=True)
class Choice:
    input_id: str
    value: str
    label: str
    checked: bool


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    help: str | None
    required: bool
    kind: str  # scale, nps, single, multi, text
    type: str
    choices: tuple[Choice, ...] = ()
    none_choice: Choice | None = None
    text_value: str = ""
    max_length: int = 0
    scale_ends: str | None = None
    error: str | None = None

    @property
    def first_input(self) -> str:
        return self.choices[0].input_id if self.choices else f"{self.id}--text"

    @property
    def describedby(self) -> str:
        ids = []
        if self.help:
            ids.append(f"{self.id}--help")
        if self.scale_ends:
            ids.append(f"{self.id}--ends")
        if self.kind == "multi":
            ids.append(f"{self.id}--any")
        if self.kind == "text":
            ids.append(f"{self.id}--max")
        if self.error:
            ids.append(f"{self.id}--error")
        return " ".join(ids)


@dataclass(frozen=True)
class PageView:
    title: str
    description: str
    privacy: str
    section_title: str
    section_intro: str | None
    page: int
    pages: int
    progress: str
    saved_note: str
    questions: tuple[Question, ...]
    form_error: str | None = None
    errors: tuple[Question, ...] = field(default=())

    @property
    def is_first(self) -> bool:
        return self.page == 1

    @property
    def is_last(self) -> bool:
        return self.page == self.pages


@dataclass(frozen=True)
class ThanksView:
    title: str
    privacy: str
    change: str


def message(problem: Problem, lang: Lang) -> str:
    words = i18n.WORDS[lang]
    return words[f"err_{problem.code}"].format(**problem.params)


def page_view(
    instrument: Instrument,
    closes_at: datetime,
    lang: Lang,
    page: int,
    values: Mapping[str, Sequence[str]],
    problems: Sequence[Problem],
    *,
    form_error: bool = False,
) -> PageView:
    """Page ``page`` (1-based) of ``instrument``, showing ``values`` and the problems of its items."""
    words = i18n.WORDS[lang]
    section = instrument.sections[page - 1]
    by_item = {p.item_id: message(p, lang) for p in problems}
    questions = tuple(
        _question(instrument, item, lang, values.get(item.id, ()), by_item.get(item.id)) for item in section.items
    )
    return PageView(
        title=instrument.title.get(lang),
        description=instrument.description.get(lang),
        privacy=words["privacy_text"],
        section_title=section.title.get(lang),
        section_intro=section.intro.get(lang) if section.intro else None,
        page=page,
        pages=len(instrument.sections),
        progress=words["progress"].format(page=page, pages=len(instrument.sections)),
        saved_note=words["saved_note"].format(closes=i18n.when(closes_at, lang)),
        questions=questions,
        form_error=words["err_form"] if form_error else None,
        errors=tuple(q for q in questions if q.error),
    )


def thanks_view(instrument: Instrument, closes_at: datetime, lang: Lang) -> ThanksView:
    return ThanksView(
        title=instrument.title.get(lang),
        privacy=i18n.WORDS[lang]["privacy_text"],
        change=i18n.WORDS[lang]["thanks_change"].format(closes=i18n.when(closes_at, lang)),
    )


def _question(instrument: Instrument, item: Item, lang: Lang, values: Sequence[str], error: str | None) -> Question:
    words = i18n.WORDS[lang]
    chosen = set(values)

    def choice(value: str, label: str) -> Choice:
        return Choice(f"{item.id}-{value}" if value else f"{item.id}--none", value, label, value in chosen)

    scales = instrument.scales
    kind: str = item.type
    choices: tuple[Choice, ...] = ()
    scale_ends = None
    if item.type in ("likert5", "likert7"):
        kind = "scale"
        labels = scales.likert5 if item.type == "likert5" else scales.likert7
        choices = tuple(choice(str(n), label.get(lang)) for n, label in enumerate(labels, start=1))
    elif item.type == "nps":
        scale_ends = words["scale_ends"].format(low=scales.nps_low.get(lang), high=scales.nps_high.get(lang))
        choices = tuple(choice(str(n), str(n)) for n in range(11))
    elif item.type in ("single", "multi"):
        choices = tuple(choice(o.id, o.text.get(lang)) for o in item.options)
    # Radios cannot be cleared once picked: an optional question offers "prefer not to say" (an empty value).
    offers_none = not item.required and item.type not in ("multi", "text")
    return Question(
        id=item.id,
        text=item.text.get(lang),
        help=item.help.get(lang) if item.help else None,
        required=item.required,
        kind=kind,
        type=item.type,
        choices=choices,
        none_choice=choice("", words["no_answer"]) if offers_none else None,
        text_value=values[0] if item.type == "text" and values else "",
        max_length=item.max_length,
        scale_ends=scale_ends,
        error=error,
    )
