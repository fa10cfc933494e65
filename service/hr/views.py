"""What each HR page shows, laid out from the answers the API gives (``service.results.published``) so the
templates only place it: no figure is computed here, only written (numbers in the reader's language, a hidden
figure as its reason in words, never a number) and coloured (the heatmap's bins around the organisation).

A figure may be withheld inside a published cell (a null value, possibly with ``suppressed`` and a
``reason``): it is shown as withheld, with the reason, never as 0.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from scoring import ResultTable
from service.forms.i18n import Lang, day
from service.hr import charts
from service.hr.i18n import EVIDENCE, WORDS, number, percent, reason, whole
from service.hr.session import SignedIn
from service.instruments.schema import Instrument
from service.models import Unit, Wave
from service.results import published, schemas
from service.results.service import table_of
from service.waves import service as waves
from service.waves.participation import participation, within

BINS = (0.03, 0.08, 0.15)
MAX_DEPTH = (
    8  # deeper units are indented as this deep  # |difference from the organisation| as a share of the scale: bin edges
)


def unit_href(wave_id: int, unit: str) -> str:
    return f"/hr/waves/{wave_id}/units/{quote(unit, safe='')}"


def unit_names(session: Session) -> dict[str, str]:
    return {key: name for key, name in session.execute(select(Unit.key, Unit.name))}


def withheld(figure: Any, value: Any) -> str | None:
    """The reason code of a figure that is not shown (``value`` is None), else None."""
    if value is not None and not getattr(figure, "suppressed", False):
        return None
    given = getattr(figure, "reason", None)
    if given:
        return str(given)
    return "empty" if getattr(figure, "n", None) == 0 else "withheld"


@dataclass(frozen=True)
class WaveInfo:
    id: int
    name: str
    instrument: str
    closed: str
    settings: tuple[str, ...]  # HR only: minimum group size, cuts


def wave_info(wave: Wave, instrument: Instrument, viewer: SignedIn) -> WaveInfo:
    words = WORDS[viewer.lang]
    settings: tuple[str, ...] = ()
    if viewer.role == "hr":
        cuts = ", ".join(wave.attributes)
        settings = (
            words["min_group"].format(k=wave.min_group_size),
            words["attributes"].format(names=cuts) if cuts else words["no_attributes"],
        )
    closed = wave.closed_at or wave.closes_at
    return WaveInfo(wave.id, wave.name, instrument.title.get(viewer.lang), day(closed, viewer.lang), settings)


# Waves ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaveRow:
    id: int
    name: str
    instrument: str
    window: str
    state: str
    participation: str
    results_href: str | None
    results_note: str
    settings: tuple[str, ...]


def waves_page(session: Session, viewer: SignedIn, instruments: dict[tuple[str, int], Any]) -> list[WaveRow]:
    """Every wave, newest first, with its participation as the API guards it (for a manager: their unit's)."""
    lang, words = viewer.lang, WORDS[viewer.lang]
    waves.advance_all(session)
    rows = []
    for wave in reversed(waves.list_waves(session)):
        instrument: Instrument = instruments[(wave.instrument, wave.version)].instrument
        shown = within(participation(session, wave), viewer.scope)
        mine = [r for r in shown.units if r.unit_key == viewer.scope.unit or viewer.scope.unit is None]
        top = next((r for r in mine if viewer.scope.unit is not None or r.parent_key is None), None)
        if top is None:
            rate = reason("empty", lang, wave.min_group_size)
        elif top.suppressed or top.rate is None:
            rate = reason(top.reason, lang, wave.min_group_size)
        elif top.responded is None:  # an open wave: a rate in steps, no count (see service.waves.participation)
            step = percent(shown.rate_step, lang)
            rate = words["participation_open"].format(rate=percent(top.rate, lang), invited=top.invited, step=step)
        else:
            rate = words["participation"].format(
                rate=percent(top.rate, lang), responded=top.responded, invited=top.invited
            )
        stored = wave.state == "closed" and table_of(session, wave) is not None
        note = words["no_results"] if wave.state != "closed" else words["not_built"]
        rows.append(
            WaveRow(
                id=wave.id,
                name=wave.name,
                instrument=instrument.title.get(lang),
                window=words["window"].format(opens=day(wave.opens_at, lang), closes=day(wave.closes_at, lang)),
                state=words.get(f"state_{wave.state}", wave.state),
                participation=rate,
                results_href=f"/hr/waves/{wave.id}" if stored else None,
                results_note=note,
                settings=wave_info(wave, instrument, viewer).settings,
            )
        )
    return rows


# Heatmap --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeatCell:
    text: str  # the mean, or why it is hidden
    n: str | None
    tone: str  # bin-1 .. bin-7, ref, or hidden
    tone_text: str  # the bin in words, for screen readers
    change: str | None = None  # up or down: a significant change since the previous wave
    change_text: str = ""


@dataclass(frozen=True)
class Toggle:
    href: str
    expanded: bool
    label: str


@dataclass(frozen=True)
class HeatRow:
    anchor: str
    name: str
    depth: int  # for the indentation: at most MAX_DEPTH
    href: str | None
    respondents: str
    hidden: bool
    cells: tuple[HeatCell, ...]
    reference: bool = False
    cut: bool = False
    toggle: Toggle | None = None


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    selected: bool


@dataclass(frozen=True)
class ConstructHead:
    id: str
    name: str
    scale: str


@dataclass(frozen=True)
class HeatmapPage:
    wave: WaveInfo
    constructs: tuple[ConstructHead, ...]
    rows: tuple[HeatRow, ...]
    cuts: tuple[Choice, ...]
    by: str | None
    csv_href: str
    expand_all_href: str
    collapse_all_href: str
    shown: str | None = None  # what the guard published of the eligible groups, for HR (not a manager's part)


def shown_line(publication: schemas.Publication | None, lang: Lang, k: int) -> str | None:
    """'1,234 of 1,300 groups of 5 or more shown; cuts: ...; ... hidden to protect others', or None."""
    if publication is None:
        return None
    words = WORDS[lang]
    totals, cuts = publication.totals, publication.cuts
    parts = [
        words["shown_totals"].format(
            published=whole(totals.published, lang), eligible=whole(totals.eligible, lang), k=k
        )
    ]
    if cuts.eligible:
        parts.append(
            words["shown_cuts"].format(published=whole(cuts.published, lang), eligible=whole(cuts.eligible, lang))
        )
    if publication.protecting_others:
        parts.append(words["shown_protecting"].format(count=whole(publication.protecting_others, lang)))
    return "; ".join(parts)


def _bin(mean: float, reference: float | None, info: schemas.ConstructInfo, lang: Lang) -> tuple[str, str]:
    """The colour bin of a mean around the organisation's, as a class and in words."""
    words = WORDS[lang]
    if reference is None:
        return "bin-4", ""
    share = (mean - reference) / (info.max - info.min)
    steps = sum(abs(share) >= edge for edge in BINS)
    position = 4 + (steps if share > 0 else -steps)
    return f"bin-{position}", "" if position == 4 else words[f"bin_{position}"]  # said only where it differs


@functools.cache
def _hidden_cell(code: str | None, lang: Lang, k: int) -> HeatCell:
    text = reason(code, lang, k)
    return HeatCell(text=text, n=None, tone="hidden", tone_text="")


def _cells(
    by_id: dict[str, Any],
    constructs: Sequence[schemas.ConstructInfo],
    reference: dict[str, float | None],
    changes: dict[tuple[str, str], float],
    unit: str | None,
    lang: Lang,
    k: int,
    is_reference: bool,
) -> tuple[HeatCell, ...]:
    """One row's cells: ``by_id`` maps a construct to its figures (an API model or the table's own cell)."""
    words = WORDS[lang]
    cells = []
    for info in constructs:
        f = by_id.get(info.id)
        code = "withheld" if f is None else withheld(f, f.mean)
        if f is None or code is not None:
            cells.append(_hidden_cell(code, lang, k))
            continue
        digits = 1
        tone, tone_text = ("ref", "") if is_reference else _bin(f.mean, reference.get(info.id), info, lang)
        difference = changes.get((unit, info.id)) if unit is not None else None
        change = None if difference is None else ("up" if difference > 0 else "down")
        cells.append(
            HeatCell(
                text=number(f.mean, lang, digits),
                n=f"n = {f.n}",
                tone=tone,
                tone_text=tone_text,
                change=change,
                change_text=words[f"change_{change}"] if change else "",
            )
        )
    return tuple(cells)


def significant_changes(table: ResultTable) -> dict[tuple[str, str], float]:
    """(unit, construct) -> difference, for the published changes that are significant."""
    return {
        (c.unit, c.construct): c.difference
        for c in table.changes
        if not c.suppressed and c.significant and c.difference is not None
    }


@dataclass(frozen=True)
class Folding:
    """Which units of the heatmap's tree show their children, kept in the page's URL: the units listed
    (``open=a&open=b``), or every unit but those listed (``open=*&fold=c``); by default the top two levels."""

    all_open: bool
    listed: frozenset[str]  # the open units, or when ``all_open`` the folded ones

    @classmethod
    def read(cls, opened: list[str] | None, folded: list[str] | None, default: set[str]) -> Folding:
        if opened is None:
            return cls(False, frozenset(default))
        if "*" in opened:
            return cls(True, frozenset(folded or ()))
        return cls(False, frozenset(key for key in opened if key))

    def is_open(self, unit: str) -> bool:
        return (unit not in self.listed) if self.all_open else (unit in self.listed)

    def toggled(self, unit: str) -> Folding:
        return Folding(self.all_open, self.listed ^ {unit})

    def query(self, by: str | None, anchor: str = "") -> str:
        pairs: list[tuple[str, str]] = [("by", by)] if by else []
        if self.all_open:
            pairs += [("open", "*"), *(("fold", key) for key in sorted(self.listed))]
        else:
            pairs += [("open", key) for key in sorted(self.listed)] or [("open", "")]
        return "?" + urlencode(pairs, safe="*") + (f"#{anchor}" if anchor else "")


def heatmap_page(
    session: Session,
    viewer: SignedIn,
    wave: Wave,
    table: ResultTable,
    instrument: Instrument,
    by: str | None,
    folding: tuple[list[str] | None, list[str] | None],
) -> HeatmapPage:
    """Units as a tree (the organisation first, as reference) by constructs, with cuts by one attribute.
    ``folding``: the ``open`` and ``fold`` lists of the page's URL (see ``Folding``)."""
    lang, words, k = viewer.lang, WORDS[viewer.lang], table.min_group_size
    heat = published.heatmap_view(table, viewer.scope).out
    names = unit_names(session)
    construct_names = {c.id: c.name.get(lang) for c in instrument.constructs}
    attributes = [a.name for a in table.attributes]
    by = by if by in attributes else None
    parents = {row.unit: row.parent for row in heat.units}
    manager_reference = heat.units[0].unit if viewer.scope.unit is not None and heat.units else None
    if manager_reference == viewer.scope.unit:
        manager_reference = None  # a manager of the whole organisation: the root is their own row
    tree = [row for row in heat.units if row.unit != manager_reference]
    in_tree = {row.unit for row in tree}
    depth: dict[str, int] = {}
    for row in tree:  # parents first
        parent = row.parent
        depth[row.unit] = depth[parent] + 1 if parent in in_tree and parent is not None else 0
    has_children = {row.parent for row in tree if row.parent in in_tree}
    folds = Folding.read(*folding, default={key for key, d in depth.items() if d <= 1})

    def root_of(key: str) -> str:
        while parents.get(key) is not None:
            key = parents[key]  # type: ignore[assignment]
        return key

    reference = {row.unit: {c.construct_id: c.mean for c in row.constructs} for row in heat.units}
    changes = significant_changes(table)
    rows: list[HeatRow] = []
    if manager_reference is not None:
        ref = heat.units[0]
        rows.append(_unit_row(ref, 0, None, names, heat, reference[ref.unit], changes, lang, k, True, None))
    for position, row in enumerate(tree):
        if not _visible(row.unit, parents, folds, in_tree):
            continue
        toggle = None
        if row.unit in has_children:
            expanded = folds.is_open(row.unit)
            label = words["collapse" if expanded else "expand"].format(name=names.get(row.unit, row.unit))
            toggle = Toggle(folds.toggled(row.unit).query(by, f"row-{position}"), expanded, label)
        is_ref = row.parent is None and viewer.scope.unit is None
        rows.append(
            _unit_row(
                row, depth[row.unit], position, names, heat, reference[root_of(row.unit)], changes, lang, k, is_ref,
                toggle,
            )
        )  # fmt: skip
        if by is not None:
            rows += _cut_rows(
                table, row.unit, position, by, heat, reference[root_of(row.unit)], depth[row.unit], lang, k
            )
    return HeatmapPage(
        wave=wave_info(wave, instrument, viewer),
        constructs=tuple(
            ConstructHead(c.id, construct_names.get(c.id, c.id), f"{c.min}–{c.max}") for c in heat.constructs
        ),
        rows=tuple(rows),
        cuts=(
            Choice("", words["cut_none"], by is None),
            *(Choice(a, a, a == by) for a in attributes),
        ),
        by=by,
        csv_href=f"/hr/waves/{wave.id}/heatmap.csv" + (f"?{urlencode({'by': by})}" if by else ""),
        expand_all_href=Folding(True, frozenset()).query(by),
        collapse_all_href=Folding(False, frozenset()).query(by),
        shown=shown_line(heat.publication, lang, k),
    )


def _visible(unit: str, parents: dict[str, str | None], folds: Folding, in_tree: set[str]) -> bool:
    parent = parents.get(unit)
    while parent is not None and parent in in_tree:
        if not folds.is_open(parent):
            return False
        parent = parents.get(parent)
    return True


def _unit_row(
    row: schemas.HeatmapRow,
    depth: int,
    position: int | None,
    names: dict[str, str],
    heat: schemas.Heatmap,
    reference: dict[str, float | None],
    changes: dict[tuple[str, str], float],
    lang: Lang,
    k: int,
    is_reference: bool,
    toggle: Toggle | None,
) -> HeatRow:
    words = WORDS[lang]
    name = names.get(row.unit, row.unit)
    if is_reference:
        name = f"{name} ({words['organisation_reference']})"
    anchor = "row-reference" if position is None else f"row-{position}"
    depth = min(depth, MAX_DEPTH)
    href = None if position is None else unit_href(heat.wave_id, row.unit)
    if row.suppressed:
        cells = tuple(_hidden_cell(row.reason, lang, k) for _ in heat.constructs)
        return HeatRow(anchor, name, depth, href, reason(row.reason, lang, k), True, cells, is_reference, False, toggle)
    figures = {c.construct_id: c for c in row.constructs}
    cells = _cells(figures, heat.constructs, reference, changes, row.unit, lang, k, is_reference)
    return HeatRow(anchor, name, depth, href, str(row.n), False, cells, is_reference, False, toggle)


def _cut_rows(
    table: ResultTable,
    unit: str,
    position: int,
    by: str,
    heat: schemas.Heatmap,
    reference: dict[str, float | None],
    depth: int,
    lang: Lang,
    k: int,
) -> list[HeatRow]:
    words = WORDS[lang]
    rows = []
    # The stored table's own cells: their figures as the API gives them, without a copy of each.
    for number_, cell in enumerate(table.cuts(unit, by)):
        name = words["cut_row"].format(attribute=by, value=cell.value)
        anchor = f"cut-{position}-{number_}"  # ids from positions: HR's keys and values may hold any character
        if cell.suppressed:
            cells = tuple(_hidden_cell(cell.reason, lang, k) for _ in heat.constructs)
            rows.append(
                HeatRow(
                    anchor, name, min(depth + 1, MAX_DEPTH), None, reason(cell.reason, lang, k), True, cells, cut=True
                )
            )
            continue
        cells = _cells({c.construct: c for c in cell.constructs}, heat.constructs, reference, {}, None, lang, k, False)
        rows.append(HeatRow(anchor, name, min(depth + 1, MAX_DEPTH), None, str(cell.n), False, cells, cut=True))
    return rows


# Unit -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    chart: Markup
    counts: tuple[tuple[str, str], ...]  # (answer, count) for the table beside the chart
    note: str  # n and mean, or why withheld


@dataclass(frozen=True)
class TrendView:
    chart: Markup
    points: tuple[tuple[str, str], ...]  # (wave, value or reason)


@dataclass(frozen=True)
class FlagView:
    topic: str
    rule: str
    severity: str
    severity_code: str
    message: str
    evidence: tuple[tuple[str, str], ...]
    unit_name: str = ""
    unit_href: str = ""


@dataclass(frozen=True)
class ConstructView:
    id: str
    name: str
    description: str | None
    withheld: str | None  # why the construct's figures are not shown
    mean: str
    interval: str
    favourable: str
    n: str
    chart: Markup | None
    change: str
    trend: TrendView | None
    items: tuple[Bar, ...]
    enps: Bar | None


@dataclass(frozen=True)
class Crumb:
    name: str
    href: str | None


@dataclass(frozen=True)
class UnitPage:
    wave: WaveInfo
    name: str
    crumbs: tuple[Crumb, ...]
    respondents: str
    hidden: str | None
    constructs: tuple[ConstructView, ...]
    choices: tuple[Bar, ...]
    flags: tuple[FlagView, ...]
    comments: tuple[tuple[str, tuple[str, ...]], ...] | None  # HR only: (question, texts)
    comments_note: str | None


def _point_labels(instrument: Instrument, item: schemas.ItemInfo, lang: Lang) -> list[str]:
    if item.type in ("single", "multi"):
        options = {o.id: o.text.get(lang) for o in instrument.item(item.id).options}
        return [options.get(p, p) for p in item.points]
    if item.type == "likert5":
        return [label.get(lang) for label in instrument.scales.likert5]
    if item.type == "likert7":
        return [label.get(lang) for label in instrument.scales.likert7]
    return list(item.points)


def _item_bar(
    instrument: Instrument, info: schemas.ItemInfo, figures: schemas.ItemFigures | None, lang: Lang, k: int
) -> Bar:
    words = WORDS[lang]
    text = instrument.item(info.id).text.get(lang)
    labels = _point_labels(instrument, info, lang)
    counts = None if figures is None else getattr(figures, "counts", None)
    code = withheld(figures, counts) if figures is not None else "withheld"
    if figures is None or counts is None or code is not None or not counts:
        return Bar(text, Markup(""), (), reason(code or "empty", lang, k))
    pairs = tuple((label, str(count)) for label, count in zip(labels, counts, strict=False))
    if info.type in ("single", "multi"):
        return Bar(text, Markup(""), pairs, words["item_n"].format(n=figures.n))
    described = "; ".join(f"{label}: {count}" for label, count in pairs)
    chart = charts.stacked_bar(counts, charts.point_colours(len(counts)), f"{text} ({described})")
    note = words["item_n"].format(n=figures.n)
    if figures.mean is not None:
        note += f", {words['mean'].lower()} {number(figures.mean, lang, 1)}"
    return Bar(text, chart, pairs, note)


def _choice_bars(
    instrument: Instrument, info: schemas.ItemInfo, figures: schemas.ItemFigures | None, lang: Lang, k: int
) -> Bar:
    """A single or multi item: each option with how many chose it, as a bar of the answers' share."""
    words = WORDS[lang]
    bar = _item_bar(instrument, info, figures, lang, k)
    if not bar.counts or figures is None or not figures.n:
        return bar
    lines = []
    for label, count in bar.counts:
        share = int(count) / figures.n
        text = words["chosen"].format(count=count, n=figures.n, share=percent(share, lang))
        lines.append((label, text, charts.share_bar(share, f"{label}: {text}")))
    chart = Markup("").join(
        Markup(
            '<div class="choice-row"><span class="choice-name">{}</span>{}<span class="choice-count">{}</span></div>'
        ).format(label, chart, text)
        for label, text, chart in lines
    )
    return Bar(bar.label, chart, bar.counts, bar.note)


def _trend(
    session: Session, unit: str, info: schemas.ConstructInfo, name: str, instruments: Any, lang: Lang, k: int
) -> TrendView:
    words = WORDS[lang]
    points = published.trend(session, unit, info.id, instruments).points
    values = [None if p.suppressed or p.mean is None else p.mean for p in points]
    digits = 1
    rows = tuple(
        (p.wave, number(p.mean, lang, digits) if v is not None else reason(p.reason or "withheld", lang, k))
        for p, v in zip(points, values, strict=True)
    )
    title = words["trend_alt"].format(
        construct=name, points="; ".join(words["trend_point"].format(wave=w, value=v) for w, v in rows)
    )
    labels = [f"{p.closed_at:%Y-%m-%d}" if p.closed_at else "" for p in points]
    chart = charts.trend(values, charts.Scale(info.min, info.max), labels, title)
    return TrendView(chart, rows)


def _change_text(change: schemas.Change | None, lang: Lang, digits: int, k: int) -> str:
    words = WORDS[lang]
    if change is None:
        return words["no_previous"]
    if change.suppressed or change.difference is None:
        return reason(change.reason or "withheld", lang, k)
    sign = "+" if change.difference > 0 else ""
    return words["change_text"].format(
        difference=sign + number(change.difference, lang, digits + 1),
        previous=number(change.previous_mean, lang, digits),
        mean=number(change.mean, lang, digits),
        significance=words["significant" if change.significant else "not_significant"],
    )


def _construct(
    session: Session,
    unit: str,
    info: schemas.ConstructInfo,
    total: schemas.Cell,
    items: Sequence[schemas.ItemInfo],
    change: schemas.Change | None,
    reference: float | None,
    instrument: Instrument,
    instruments: Any,
    lang: Lang,
    k: int,
) -> ConstructView:
    words = WORDS[lang]
    spec = next(c for c in instrument.constructs if c.id == info.id)
    name = spec.name.get(lang)
    description = spec.description.get(lang) if spec.description else None
    digits = 1
    figures = next((f for f in total.constructs if f.construct_id == info.id), None)
    item_figures = {i.item: i for i in total.items}
    bars = tuple(_item_bar(instrument, i, item_figures.get(i.id), lang, k) for i in items if i.construct_id == info.id)
    trend = _trend(session, unit, info, name, instruments, lang, k)
    enps = _enps(total.enps, lang, k) if info.scale == "nps" else None
    code = "withheld" if figures is None else withheld(figures, figures.mean)
    if figures is None or figures.mean is None or code is not None:
        return ConstructView(
            info.id, name, description, reason(code, lang, k), "", "", "", "", None,
            _change_text(change, lang, digits, k), trend, bars, enps,
        )  # fmt: skip
    interval = words["interval"].format(
        low=number(figures.ci_low, lang, digits + 1), high=number(figures.ci_high, lang, digits + 1)
    )
    if withheld(figures, figures.ci_low) is not None:
        interval = reason(withheld(figures, figures.ci_low), lang, k)
    code = figures.favourable_reason if figures.favourable_suppressed else withheld(figures, figures.favourable)
    favourable = reason(code, lang, k)
    if figures.favourable is not None:
        favourable = words["favourable_text"].format(
            share=percent(figures.favourable, lang),
            low=percent(figures.favourable_low, lang),
            high=percent(figures.favourable_high, lang),
        )
    title = f"{name}: {words['mean'].lower()} {number(figures.mean, lang, digits + 1)}, {interval}"
    if reference is not None:
        title += ", " + words["organisation_mean"].format(value=number(reference, lang, digits + 1))
    chart = charts.interval(
        figures.mean, figures.ci_low, figures.ci_high, reference, charts.Scale(info.min, info.max), title
    )
    return ConstructView(
        info.id, name, description, None, number(figures.mean, lang, digits + 1), interval, favourable,
        f"n = {figures.n}", chart, _change_text(change, lang, digits, k), trend, bars, enps,
    )  # fmt: skip


def _enps(enps: schemas.Enps | None, lang: Lang, k: int) -> Bar | None:
    words = WORDS[lang]
    if enps is None:
        return None
    code = withheld(enps, enps.score)
    if code is not None or enps.detractors is None or enps.passives is None or enps.promoters is None:
        return Bar(words["enps"], Markup(""), (), reason(code, lang, k))
    groups = (
        (words["detractors"], enps.detractors),
        (words["passives"], enps.passives),
        (words["promoters"], enps.promoters),
    )
    described = "; ".join(f"{label}: {count}" for label, count in groups)
    text = words["enps_text"].format(
        score=number(enps.score, lang, 0), low=number(enps.ci_low, lang, 0), high=number(enps.ci_high, lang, 0)
    )
    chart = charts.stacked_bar(
        [c for _l, c in groups], (charts.DETRACTOR, charts.PASSIVE, charts.PROMOTER), f"{text} ({described})"
    )
    return Bar(text, chart, tuple((label, str(count)) for label, count in groups), f"n = {enps.n}")


def unit_page(
    session: Session,
    viewer: SignedIn,
    wave: Wave,
    table: ResultTable,
    unit: str,
    instrument: Instrument,
    instruments: Any,
) -> UnitPage:
    """One unit of a wave: per construct its figures, answers, change and trend; choices, flags, comments."""
    lang, words, k = viewer.lang, WORDS[viewer.lang], table.min_group_size
    inside = published.within(table, viewer.scope)
    results = published.results(table, unit, None, inside)
    mine = results.units[0]
    total = mine.total
    names = unit_names(session)
    heat = published.heatmap_view(table, viewer.scope).out
    parents = {row.unit: row.parent for row in heat.units}
    root = unit
    while parents.get(root) is not None:
        root = parents[root]  # type: ignore[assignment]
    org = next((row for row in heat.units if row.unit == root), None)
    reference = {} if org is None or org.suppressed else {c.construct_id: c.mean for c in org.constructs}
    changes = {c.construct_id: c for c in mine.changes}
    constructs = tuple(
        _construct(
            session, unit, info, total, results.items, changes.get(info.id), reference.get(info.id),
            instrument, instruments, lang, k,
        )
        for info in results.constructs
    )  # fmt: skip
    item_figures = {i.item: i for i in total.items}
    choices = tuple(
        _choice_bars(instrument, i, item_figures.get(i.id), lang, k)
        for i in results.items
        if i.type in ("single", "multi")
    )
    flag_views = flags_page(session, viewer, table, instrument, only=unit)
    comments, note = _comments(table, unit, instrument, viewer, k)
    return UnitPage(
        wave=wave_info(wave, instrument, viewer),
        name=names.get(unit, unit),
        crumbs=_crumbs(wave.id, unit, parents, names, inside),
        respondents=words["unit_intro"].format(n=total.n) if not total.suppressed else "",
        hidden=None if not total.suppressed else words["unit_hidden"].format(reason=reason(total.reason, lang, k)),
        constructs=constructs if not total.suppressed else (),
        choices=choices if not total.suppressed else (),
        flags=tuple(flag_views),
        comments=comments,
        comments_note=note,
    )


def _crumbs(
    wave_id: int, unit: str, parents: dict[str, str | None], names: dict[str, str], inside: set[str] | None
) -> tuple[Crumb, ...]:
    """The unit's ancestors the viewer may read, from the top down, each linking to its own page."""
    chain = []
    parent = parents.get(unit)
    while parent is not None and (inside is None or parent in inside):
        chain.append(Crumb(names.get(parent, parent), unit_href(wave_id, parent)))
        parent = parents.get(parent)
    return tuple(reversed(chain))


def _comments(
    table: ResultTable, unit: str, instrument: Instrument, viewer: SignedIn, k: int
) -> tuple[tuple[tuple[str, tuple[str, ...]], ...] | None, str | None]:
    """HR only: the unit's free texts under rule 6 (groups of at least twice the minimum), as the table has them."""
    if viewer.role != "hr":
        return None, None
    words = WORDS[viewer.lang]
    found = published.comments(table, unit).units[0]
    if found.suppressed:
        return (), words["comments_hidden"].format(k=2 * k, reason=reason(found.reason, viewer.lang, k))
    groups = tuple((instrument.item(g.item).text.get(viewer.lang), tuple(g.texts)) for g in found.items)
    return groups, None if groups else words["no_comments"]


# Flags ----------------------------------------------------------------------------------------------------

_RULES = ("below", "below_org", "decline", "barrier", "participation")
_SEVERITY = {"high": 0, "medium": 1}


def _evidence(flag: schemas.Flag, instrument: Instrument, lang: Lang) -> tuple[tuple[str, str], ...]:
    labels = EVIDENCE[lang]
    out = []
    for key, value in flag.evidence.items():
        if key == "item":
            continue
        if key == "option" and isinstance(value, str) and isinstance(flag.evidence.get("item"), str):
            options = {o.id: o.text.get(lang) for o in instrument.item(str(flag.evidence["item"])).options}
            text = options.get(value, value)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            text = str(value) if value is not None else "–"
        elif key in ("share", "share_low", "rate") or (
            key == "threshold" and flag.rule in ("barrier", "participation")
        ):
            text = percent(float(value), lang)
        elif isinstance(value, int):
            text = str(value)
        elif key in ("p", "q"):
            text = number(value, lang, 4) if value >= 0.0001 else "< " + number(0.0001, lang, 4)
        else:
            text = number(value, lang, 2)
        out.append((labels.get(key, key), text))
    return tuple(out)


def flags_page(
    session: Session, viewer: SignedIn, table: ResultTable, instrument: Instrument, only: str | None = None
) -> list[FlagView]:
    """The flags the viewer may read, most severe first (then by rule, then in tree order)."""
    lang, words = viewer.lang, WORDS[viewer.lang]
    found = published.flags_view(table, viewer.scope).out.flags
    if only is not None:
        found = [f for f in found if f.unit == only]
    order = {u.key: i for i, u in enumerate(table.units)}
    found = sorted(
        found,
        key=lambda f: (
            _SEVERITY.get(f.severity, 9),
            _RULES.index(f.rule) if f.rule in _RULES else 9,
            order.get(f.unit, 0),
        ),
    )
    names = unit_names(session)
    construct_names = {c.id: c.name.get(lang) for c in instrument.constructs}
    return [
        FlagView(
            topic=construct_names.get(f.construct_id, f.construct_id)
            if f.construct_id
            else words["participation_topic"],
            rule=words.get(f"rule_{f.rule}", f.rule),
            severity=words.get(f"severity_{f.severity}", f.severity),
            severity_code=f.severity,
            message=f.message_nl if lang == "nl" else f.message_en,
            evidence=_evidence(f, instrument, lang),
            unit_name=names.get(f.unit, f.unit),
            unit_href=unit_href(table.wave_id, f.unit),
        )
        for f in found
    ]
