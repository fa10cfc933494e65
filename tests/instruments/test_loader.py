"""check_definitions finds each kind of broken file and says where; load_definitions, to_spec, schema.json."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoring import spec
from service.instruments.loader import (
    DEFINITIONS_DIR,
    InstrumentError,
    Problem,
    check_definitions,
    json_schema_text,
    load_definitions,
    to_spec,
    write_json_schema,
)
from service.instruments.schema import Instrument


def _t(text: str) -> dict[str, str]:
    return {"nl": f"{text} (nl)", "en": text}


def _likert(item_id: str, construct: str = "safety") -> dict[str, Any]:
    return {"id": item_id, "type": "likert5", "construct": construct, "text": _t(item_id)}


VALID: dict[str, Any] = {
    "slug": "tiny",
    "version": 1,
    "title": _t("Tiny"),
    "description": _t("A tiny survey"),
    "privacy": _t("Anonymous"),
    "scales": {
        "likert5": [_t(f"point {n}") for n in range(1, 6)],
        "likert7": [_t(f"point {n}") for n in range(1, 8)],
        "nps_low": _t("unlikely"),
        "nps_high": _t("likely"),
    },
    "constructs": [
        {
            "id": "safety",
            "name": _t("Safety"),
            "scale": "likert5",
            "reverse": ["s_blame"],
            "min_answered": 2,
            "favourable": {"min": 4},
            "flags": {"below": 3.0, "barrier": {"item": "barriers", "share": 0.4, "ignore": ["none"]}},
        }
    ],
    "sections": [
        {"id": "one", "title": _t("One"), "items": [_likert("s_blame"), _likert("s_voice")]},
        {
            "id": "two",
            "title": _t("Two"),
            "items": [
                _likert("s_help"),
                {
                    "id": "barriers",
                    "type": "multi",
                    "text": _t("What holds you back?"),
                    "options": [{"id": "boss", "text": _t("boss")}, {"id": "none", "text": _t("nothing")}],
                },
            ],
        },
    ],
}


def _write(root: Path, data: dict[str, Any] | str, name: str = "tiny/1.yaml") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _broken(tmp_path: Path, change: Any) -> tuple[Path, list[Problem]]:
    data = copy.deepcopy(VALID)
    change(data)
    path = _write(tmp_path, data)
    return path, check_definitions(tmp_path)


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_fixture_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    assert check_definitions(tmp_path) == []
    loaded = load_definitions(tmp_path)
    assert list(loaded) == [("tiny", 1)]
    assert loaded[("tiny", 1)].path == path
    assert loaded[("tiny", 1)].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unknown_construct(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["sections"][1]["items"][0]["construct"] = "safty"

    path, problems = _broken(tmp_path, change)
    problem = _only(problems)
    assert problem.file == path
    assert problem.location == "section two / item s_help"
    assert "unknown construct 'safty'" in problem.message


def test_reverse_item_not_in_construct(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["constructs"][0]["reverse"] = ["s_blame", "s_nothing"]

    path, problems = _broken(tmp_path, change)
    problem = _only(problems)
    assert (problem.file, problem.location) == (path, "construct safety")
    assert "reverse item 's_nothing'" in problem.message


def test_missing_english_text(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        del d["sections"][0]["items"][1]["text"]["en"]
        d["sections"][1]["items"][1]["options"][0]["text"]["en"] = "  "

    path, problems = _broken(tmp_path, change)
    assert [(p.file, p.location) for p in problems] == [
        (path, "section one / item s_voice / text.en"),
        (path, "section two / item barriers / option boss / text.en"),
    ]
    assert problems[0].message == "required field is missing"
    assert "at least 1 character" in problems[1].message


def test_bad_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "slug: tiny\nversion: 1\ntitle: {nl: Klein, en: Small\n")
    problem = _only(check_definitions(tmp_path))
    assert problem.file == path
    assert problem.location.startswith("line ")
    assert problem.message.startswith("invalid YAML")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(VALID, sort_keys=False).replace("slug: tiny\n", "slug: tiny\nslug: tinier\n", 1)
    path = _write(tmp_path, text)
    problem = _only(check_definitions(tmp_path))
    assert problem.file == path
    assert "duplicate key 'slug'" in problem.message
    assert problem.location == "line 2, column 1"


def test_duplicate_item_id(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["sections"][1]["items"][0]["id"] = "s_voice"

    path, problems = _broken(tmp_path, change)
    problem = _only(problems)
    assert (problem.file, problem.location) == (path, "section one / item s_voice")
    assert problem.message == "duplicate item id"


def test_file_name_not_matching_version(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID, name="tiny/2.yaml")
    problem = _only(check_definitions(tmp_path))
    assert (problem.file, problem.location) == (path, "version")
    assert "version 1 does not match the file name '2.yaml'" in problem.message


def test_folder_not_matching_slug(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID, name="small/1.yaml")
    problem = _only(check_definitions(tmp_path))
    assert (problem.file, problem.location) == (path, "slug")


def test_stray_yaml_files_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, VALID)
    strays = [_write(tmp_path, VALID, name=n) for n in ("tiny/v2.yaml", "tiny/3.yml", "loose.yaml")]
    assert sorted(p.file for p in check_definitions(tmp_path)) == sorted(strays)


def test_yes_and_no_stay_strings(tmp_path: Path) -> None:
    """YAML 1.1 reads an unquoted ``no`` as false; instrument files read it as the option id it is."""
    text = yaml.safe_dump(VALID, sort_keys=False).replace("id: boss", "id: yes").replace("id: none", "id: no")
    text = text.replace("ignore:\n      - none", "ignore:\n      - no")
    _write(tmp_path, text)
    assert check_definitions(tmp_path) == []
    options = load_definitions(tmp_path)[("tiny", 1)].instrument.item("barriers").options
    assert [o.id for o in options] == ["yes", "no"]


def test_several_problems_and_files_at_once(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    data["sections"][0]["items"][0]["type"] = "likert9"
    data["sections"][0]["items"][1]["colour"] = "red"
    data["constructs"][0]["favourable"] = {"min": 7}
    first = _write(tmp_path, data)
    second = _write(tmp_path, "- just\n- a list\n", name="other/1.yaml")
    problems = check_definitions(tmp_path)
    assert [(p.file, p.location) for p in problems] == [
        (second, ""),
        (first, "construct safety"),
        (first, "section one / item s_blame / type"),
        (first, "section one / item s_voice / colour"),
    ]
    assert "outside the scale 1..5" in problems[1].message
    assert "likert9" in problems[2].message
    assert problems[3].message.startswith("unknown field")
    with pytest.raises(InstrumentError) as raised:
        load_definitions(tmp_path)
    assert raised.value.problems == tuple(problems)
    assert "4 problem(s)" in str(raised.value) and "item s_voice / colour" in str(raised.value)


def test_barrier_ignoring_unknown_option(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["constructs"][0]["flags"]["barrier"]["ignore"] = ["nothing"]

    _, problems = _broken(tmp_path, change)
    problem = _only(problems)
    assert problem.location == "construct safety"
    assert "'nothing'" in problem.message


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    assert [p.message for p in check_definitions(tmp_path)] == ["no instrument files (<slug>/<version>.yaml) found"]
    assert len(check_definitions(tmp_path / "absent")) == 1
    with pytest.raises(InstrumentError):
        load_definitions(tmp_path / "absent")


def test_to_spec() -> None:
    instrument = Instrument.model_validate(VALID)
    result = to_spec(instrument)
    assert (result.slug, result.version, result.low_participation) == ("tiny", 1, 0.5)
    assert result.items == (
        spec.ItemSpec("s_blame", "likert5", "safety"),
        spec.ItemSpec("s_voice", "likert5", "safety"),
        spec.ItemSpec("s_help", "likert5", "safety"),
        spec.ItemSpec(
            "barriers",
            "multi",
            None,
            ("boss", "none"),
            (spec.Label("boss (nl)", "boss"), spec.Label("nothing (nl)", "nothing")),
        ),
    )
    (construct,) = result.constructs
    assert construct.id == "safety" and construct.scale == "likert5"
    assert construct.label == spec.Label("Safety (nl)", "Safety")  # flag messages name it so
    assert construct.items == ("s_blame", "s_voice", "s_help")
    assert construct.reverse == frozenset({"s_blame"})
    assert (construct.min_answered, construct.favourable_min) == (2, 4.0)
    assert (construct.flags.below, construct.flags.below_org, construct.flags.decline) == (3.0, True, True)
    assert construct.flags.alpha == 0.05
    barrier = construct.flags.barrier
    assert barrier is not None and (barrier.item, barrier.share) == ("barriers", 0.4)
    if hasattr(barrier, "ignore"):  # once scoring's BarrierRule knows the options that are no barrier
        assert tuple(barrier.ignore) == ("none",)


def test_to_spec_of_shipped_instruments() -> None:
    for loaded in load_definitions(DEFINITIONS_DIR).values():
        instrument = loaded.instrument
        result = to_spec(instrument)
        assert [i.id for i in result.items] == [i.id for i in instrument.items]
        assert {c.id for c in result.constructs} == {c.id for c in instrument.constructs}
        for construct in result.constructs:
            assert construct.reverse <= set(construct.items)
            assert construct.min_answered <= len(construct.items)


def test_committed_schema_json_is_current(tmp_path: Path) -> None:
    """survey_definitions/schema.json is generated: regenerate it with write_json_schema after a schema change."""
    committed = (DEFINITIONS_DIR / "schema.json").read_text(encoding="utf-8")
    assert committed == json_schema_text(), (
        "schema.json is stale: run .venv/bin/python -c 'from service.instruments.loader import *; "
        "write_json_schema(DEFINITIONS_DIR)'"
    )
    written = write_json_schema(tmp_path)
    assert written == tmp_path / "schema.json"
    schema = json.loads(written.read_text(encoding="utf-8"))
    assert "construct" in schema["$defs"]["Item"]["properties"]  # the file's key, not the python field name
    assert written.read_text(encoding="utf-8").endswith("}\n")
