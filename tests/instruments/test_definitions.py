"""The shipped instruments: they load, keep the structure the measurement rests on, and trend together."""

from __future__ import annotations

import pytest

from service.instruments.loader import DEFINITIONS_DIR, LoadedInstrument, check_definitions, load_definitions
from service.instruments.schema import Instrument, Text

FULL = ("career-safety", 1)
PULSE = ("career-pulse", 1)
EXIT = ("exit", 1)


@pytest.fixture(scope="module")
def shipped() -> dict[tuple[str, int], LoadedInstrument]:
    return load_definitions(DEFINITIONS_DIR)


@pytest.fixture(scope="module")
def full(shipped: dict[tuple[str, int], LoadedInstrument]) -> Instrument:
    return shipped[FULL].instrument


@pytest.fixture(scope="module")
def pulse(shipped: dict[tuple[str, int], LoadedInstrument]) -> Instrument:
    return shipped[PULSE].instrument


def test_shipped_files_are_valid(shipped: dict[tuple[str, int], LoadedInstrument]) -> None:
    assert check_definitions(DEFINITIONS_DIR) == []
    assert set(shipped) == {FULL, PULSE, EXIT}
    for (slug, version), loaded in shipped.items():
        assert loaded.path == DEFINITIONS_DIR / slug / f"{version}.yaml"
        assert len(loaded.sha256) == 64


def test_item_counts(full: Instrument, pulse: Instrument) -> None:
    assert 30 <= len(full.items) <= 40
    assert 8 <= len(pulse.items) <= 10
    assert 5 <= len(full.sections) <= 7


def test_psychological_safety_follows_edmondson(full: Instrument) -> None:
    construct = next(c for c in full.constructs if c.id == "psych_safety")
    items = full.construct_items("psych_safety")
    assert len(items) == 7
    assert {i.type for i in items} == {"likert7"}
    # Items 1, 3 and 5 of the seven are reverse-scored, exactly as in the original scale.
    assert set(construct.reverse) == {items[0].id, items[2].id, items[4].id}
    assert len(construct.reverse) == 3
    assert construct.source == "adapted from Edmondson (1999)"
    assert construct.min_answered == 5
    assert construct.favourable.min == 5
    assert construct.flags.below == pytest.approx(4.0)
    assert construct.flags.below_org and construct.flags.decline
    assert all(i.required for i in items)


def test_constructs_and_choice_items(full: Instrument) -> None:
    constructs = {c.id: c for c in full.constructs}
    assert {"psych_safety", "career_ambition", "development", "mobility", "career_conversation", "enps"} <= set(
        constructs
    )
    for cid, construct in constructs.items():
        if construct.scale != "nps":  # a scale is judged by its alpha: give it enough items to reach .70
            assert len(full.construct_items(cid)) >= 4, cid
    assert [o.id for o in full.item("career_direction").options] == ["up", "sideways", "specialist", "project", "none"]
    assert [o.id for o in full.item("conversation_frequency").options] == [
        "monthly",
        "quarterly",
        "yearly",
        "less",
        "never",
    ]
    assert [o.id for o in full.item("conversation_plan").options] == ["yes", "partly", "no", "not_applicable"]
    assert full.item("learning_forms").type == "multi"
    enps = constructs["enps"]
    assert enps.scale == "nps" and enps.favourable.min == 9 and enps.flags.below == -20
    assert [i.id for i in full.construct_items("enps")] == ["enps"]
    assert [i.type for i in full.items if i.type == "text"] == ["text"]
    assert not full.item("grow_text").required


def test_mobility_barrier_rule(full: Instrument) -> None:
    barriers = full.item("mobility_barriers")
    assert barriers.type == "multi"
    assert {o.id for o in barriers.options} >= {
        "manager_holds_on",
        "vacancies_not_visible",
        "seem_disloyal",
        "no_suitable_roles",
        "lacking_skills",
        "salary_status_loss",
        "unclear_procedure",
        "none",
    }
    rule = next(c for c in full.constructs if c.id == "mobility").flags.barrier
    assert rule is not None
    assert rule.item == "mobility_barriers"
    assert rule.share == pytest.approx(0.4)
    assert rule.ignore == ("none",)


def test_shared_items_are_identical(full: Instrument, pulse: Instrument) -> None:
    full_constructs = {c.id: c for c in full.constructs}
    for item in pulse.items:
        twin = full.item(item.id)  # every pulse item exists in the full survey
        assert (item.type, item.construct_id, item.text, item.options) == (
            twin.type,
            twin.construct_id,
            twin.text,
            twin.options,
        ), item.id
    for construct in pulse.constructs:
        twin = full_constructs[construct.id]
        assert construct.scale == twin.scale
        assert construct.favourable == twin.favourable
        members = {i.id for i in pulse.construct_items(construct.id)}
        assert set(construct.reverse) == set(twin.reverse) & members, construct.id
        assert construct.min_answered <= len(members)


def _texts(instrument: Instrument) -> list[tuple[str, Text]]:
    texts = [("title", instrument.title), ("description", instrument.description), ("privacy", instrument.privacy)]
    texts += [(f"scales.likert5.{n}", t) for n, t in enumerate(instrument.scales.likert5)]
    texts += [(f"scales.likert7.{n}", t) for n, t in enumerate(instrument.scales.likert7)]
    texts += [("nps_low", instrument.scales.nps_low), ("nps_high", instrument.scales.nps_high)]
    for construct in instrument.constructs:
        texts.append((construct.id, construct.name))
        if construct.description:
            texts.append((construct.id, construct.description))
    for section in instrument.sections:
        texts.append((section.id, section.title))
        if section.intro:
            texts.append((section.id, section.intro))
        for item in section.items:
            texts.append((item.id, item.text))
            if item.help:
                texts.append((item.id, item.help))
            texts += [(f"{item.id}.{o.id}", o.text) for o in item.options]
    return texts


@pytest.mark.parametrize("key", [FULL, PULSE, EXIT])
def test_every_text_in_dutch_and_english(
    shipped: dict[tuple[str, int], LoadedInstrument], key: tuple[str, int]
) -> None:
    instrument = shipped[key].instrument
    for where, text in _texts(instrument):
        assert text.nl.strip() and text.en.strip(), where
    for item in instrument.items:
        if item.type in ("likert5", "likert7"):  # a statement, not a copy of the other language
            assert item.text.nl != item.text.en, item.id


def test_privacy_text_states_the_limits(full: Instrument) -> None:
    privacy = full.privacy.en.lower()
    for phrase in ("anonymous", "minimum size", "personal", "not even hr", "average of the others", "same answer"):
        assert phrase in privacy
    assert "five" in privacy and "vijf" in full.privacy.nl


def test_the_exit_survey_asks_why_people_leave_and_what_kept_them_from_moving_inside(
    shipped: dict[tuple[str, int], LoadedInstrument],
) -> None:
    exit_survey = shipped[EXIT].instrument
    reasons = {"growth", "manager", "pay", "workload", "conflict", "personal"}
    assert reasons <= {o.id for o in exit_survey.item("exit_reasons").options}
    assert exit_survey.item("exit_reasons").type == "multi" and exit_survey.item("exit_reasons").required
    assert reasons <= {o.id for o in exit_survey.item("exit_main_reason").options}
    assert [o.id for o in exit_survey.item("exit_looked_inside").options] == ["applied", "looked", "did_not_look"]
    stoppers = {o.id for o in exit_survey.item("exit_inside_stoppers").options}
    assert {"vacancies_unknown", "manager", "seem_disloyal"} <= stoppers
    assert exit_survey.item("exit_would_return").construct_id == "exit_come_back"
    enps = exit_survey.item("exit_enps")
    assert enps.type == "nps" and enps.required
    rule = next(c for c in exit_survey.constructs if c.id == "exit_internal_options").flags.barrier
    assert rule is not None and rule.item == "exit_inside_stoppers"
    # its constructs are its own: leavers' answers never trend with, or count as a change against, those who stay
    others = {c.id for key in (FULL, PULSE) for c in shipped[key].instrument.constructs}
    assert not others & {c.id for c in exit_survey.constructs}
    assert not {i.id for key in (FULL, PULSE) for i in shipped[key].instrument.items} & {
        i.id for i in exit_survey.items
    }
