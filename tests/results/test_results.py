"""The results API on a wave answered through the web form and closed by HR: every figure shown is checked against
the answers as posted, worked out here by hand; hidden cells carry no numbers and say why."""

from __future__ import annotations

import csv
import gzip
import io
import json
import statistics
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from scoring.spec import SCALE_BOUNDS
from service.cli import app as cli
from service.exports import columns
from service.instruments.schema import Instrument
from service.models import AuditEntry, WaveResult
from service.models.base import utcnow
from service.results.service import encode, store
from tests.factories import small_tree
from tests.results.conftest import PER_TEAM, TEAMS, Wave, answered_wave, close

CSV = {"accept": "text/csv"}
BOUNDS = SCALE_BOUNDS


def subtree(unit: str) -> list[str]:
    """The teams under ``unit`` (teams are the only units with members here)."""
    children: dict[str, list[str]] = {}
    for u in small_tree():
        children.setdefault(u["parent_key"], []).append(u["key"])
    stack, teams = [unit], []
    while stack:
        key = stack.pop()
        stack.extend(children.get(key, []))
        if key in TEAMS:
            teams.append(key)
    return teams


def assert_every_unit_parents_first(keys: list[str]) -> None:
    assert sorted(keys) == sorted(u["key"] for u in small_tree())
    for unit in small_tree():
        if unit["parent_key"] is not None:
            assert keys.index(unit["parent_key"]) < keys.index(unit["key"])


def respondents(wave: Wave, unit: str, attribute: str | None = None, value: str | None = None) -> list[dict]:
    found = []
    for team in subtree(unit):
        for answers, attrs in zip(wave.answers[team], wave.attributes[team], strict=True):
            if attribute is None or attrs[attribute] == value:
                found.append(answers)
    return found


def construct_scores(instrument: Instrument, construct_id: str, people: list[dict]) -> list[float]:
    """Each respondent's construct score: the mean of their items, reverse items recoded (everyone answered all)."""
    construct = next(c for c in instrument.constructs if c.id == construct_id)
    low, high = BOUNDS[construct.scale]
    items = [item.id for item in instrument.construct_items(construct_id)]
    return [statistics.fmean(low + high - p[i] if i in construct.reverse else p[i] for i in items) for p in people]


def assert_cell_matches(wave: Wave, cell: dict[str, Any]) -> None:
    """A published cell against the answers by hand; a hidden one has no numbers at all."""
    if cell["suppressed"]:
        assert cell["reason"] in {"primary", "complementary", "range", "empty"}
        assert cell["n"] is None and cell["constructs"] == [] and cell["items"] == [] and cell["enps"] is None
        return
    people = respondents(wave, cell["unit"], cell["attribute"], cell["value"])
    assert cell["n"] == len(people) >= 3
    for figures in cell["constructs"]:
        construct = next(c for c in wave.instrument.constructs if c.id == figures["construct"])
        scores = construct_scores(wave.instrument, construct.id, people)
        assert figures["n"] == len(scores)
        assert abs(figures["mean"] - statistics.fmean(scores)) < 1e-9
        assert abs(figures["sd"] - statistics.stdev(scores)) < 1e-9
        assert figures["ci_low"] <= figures["mean"] <= figures["ci_high"]
        if figures.get("favourable_suppressed"):  # withheld in a published cell: words, never a number
            assert figures["favourable_reason"] in {"primary", "complementary", "range"}
            assert figures["favourable"] is None and figures["favourable_low"] is None
            continue
        favourable = sum(s >= construct.favourable.min for s in scores) / len(scores)
        assert abs(figures["favourable"] - favourable) < 1e-9
    for item in cell["items"]:
        if item["suppressed"]:
            assert item["reason"] in {"primary", "complementary", "range"}
            assert item["n"] is None and item["counts"] == [] and item["mean"] is None
            continue
        given = [p[item["item"]] for p in people]
        assert item["n"] == len(given)
        assert sum(item["counts"]) == len(given) or any(isinstance(g, list) for g in given)


def test_results_of_the_organisation_and_a_unit_by_an_attribute(client: TestClient, closed: Wave) -> None:
    roots = client.get(closed.url("results"), headers=closed.dashboard)
    assert roots.status_code == 200, roots.text
    body = roots.json()
    assert body["wave_id"] == closed.id and body["by"] is None and body["min_group_size"] == 3
    assert [u["unit"] for u in body["units"]] == ["org"]
    assert {c["id"] for c in body["constructs"]} == {c.id for c in closed.instrument.constructs}
    assert_cell_matches(closed, body["units"][0]["total"])

    for unit in [u["key"] for u in small_tree()]:
        answer = client.get(closed.url("results"), params={"unit": unit, "by": "location"}, headers=closed.hr)
        assert answer.status_code == 200, answer.text
        [shown] = answer.json()["units"]
        assert shown["unit"] == unit and shown["total"]["attribute"] is None
        assert [(c["attribute"], c["value"]) for c in shown["cuts"]] == [("location", "A"), ("location", "B")]
        for cell in (shown["total"], *shown["cuts"]):
            assert_cell_matches(closed, cell)
    # team7 has two answers: a small group, hidden as such, never shown as a zero or left out.
    team7 = client.get(closed.url("results"), params={"unit": "team7"}, headers=closed.hr).json()["units"][0]
    assert team7["total"]["suppressed"] is True and team7["total"]["reason"] == "primary"


def test_unknown_unit_or_attribute(client: TestClient, closed: Wave) -> None:
    missing = client.get(closed.url("results"), params={"unit": "nowhere"}, headers=closed.hr)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.get(closed.url("results"), params={"by": "salary"}, headers=closed.hr)
    assert wrong.status_code == 422 and "tenure_band" in wrong.json()["error"]["message"]
    assert client.get("/api/v1/waves/999999/results", headers=closed.hr).status_code == 404


def test_heatmap_marks_every_unit(client: TestClient, closed: Wave) -> None:
    body = client.get(closed.url("heatmap"), headers=closed.dashboard).json()
    rows = {row["unit"]: row for row in body["units"]}
    assert_every_unit_parents_first(list(rows))
    constructs = [c.id for c in closed.instrument.constructs]
    hidden = published = 0
    for key, row in rows.items():
        assert [c["construct"] for c in row["constructs"]] == constructs
        results = client.get(closed.url("results"), params={"unit": key}, headers=closed.hr).json()
        total = results["units"][0]["total"]
        assert (row["n"], row["suppressed"], row["reason"]) == (total["n"], total["suppressed"], total["reason"])
        for cell in row["constructs"]:
            if row["suppressed"]:
                hidden += 1
                assert cell == {
                    "construct": cell["construct"],
                    "n": None,
                    "mean": None,
                    "favourable": None,
                    "suppressed": True,
                    "reason": row["reason"],
                    "favourable_suppressed": False,  # the mark of a share withheld in a published cell
                }
            else:
                published += 1
                people = respondents(closed, key)
                scores = construct_scores(closed.instrument, cell["construct"], people)
                assert abs(cell["mean"] - statistics.fmean(scores)) < 1e-9 and cell["n"] == len(scores)
                assert (cell["favourable"] is None) == cell["favourable_suppressed"]
    assert hidden and published  # this wave has both (team7 is small)
    publication = body["publication"]
    assert (
        publication["totals"]["eligible"]
        >= publication["totals"]["published"]
        == sum(not row["suppressed"] and row["n"] >= 3 for row in rows.values())
    )


def test_flags_rest_on_published_units(client: TestClient, closed: Wave) -> None:
    body = client.get(closed.url("flags"), headers=closed.dashboard).json()
    heat = {row["unit"]: row for row in client.get(closed.url("heatmap"), headers=closed.hr).json()["units"]}
    for flag in body["flags"]:
        assert flag["rule"] in {"below", "below_org", "decline", "barrier", "participation"}
        assert flag["severity"] in {"high", "medium"} and flag["message_nl"] and flag["message_en"]
        assert isinstance(flag["evidence"], dict) and flag["evidence"]
        if flag["rule"] != "participation":
            assert heat[flag["unit"]]["suppressed"] is False  # rule 1: no flag about a hidden group


def test_comments_only_for_large_groups_and_only_for_hr(client: TestClient, closed: Wave) -> None:
    assert client.get(closed.url("comments"), headers=closed.dashboard).status_code == 403
    text_items = [item.id for item in closed.instrument.items if item.type == "text"]
    for unit in [u["key"] for u in small_tree()]:
        body = client.get(closed.url("comments"), params={"unit": unit}, headers=closed.hr).json()
        [shown] = body["units"]
        writers = respondents(closed, unit)
        if shown["suppressed"]:
            assert shown["items"] == [] and shown["reason"]
            continue
        assert len(writers) >= 2 * body["min_group_size"]  # rule 6
        for group in shown["items"]:
            assert group["item"] in text_items
            expected = sorted(p[group["item"]].strip() for p in writers if p.get(group["item"], "").strip())
            assert sorted(group["texts"]) == expected  # every text, no metadata
    team7 = client.get(closed.url("comments"), params={"unit": "team7"}, headers=closed.hr).json()["units"][0]
    assert team7 == {"unit": "team7", "suppressed": True, "reason": team7["reason"], "items": []} and team7["reason"]


def test_open_and_draft_waves_have_no_results(
    app: FastAPI, client: TestClient, open_survey: Wave, keys: tuple[dict[str, str], dict[str, str]]
) -> None:
    for what in ("results", "heatmap", "flags", "comments"):
        answer = client.get(open_survey.url(what), headers=open_survey.hr)
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert (
            error["code"] == "conflict" and "only for closed waves" in error["message"] and "open" in error["message"]
        )
    draft = client.post("/api/v1/waves", json=_draft_body(), headers=open_survey.hr).json()
    answer = client.get(f"/api/v1/waves/{draft['id']}/heatmap", headers=open_survey.dashboard)
    assert answer.status_code == 409 and "draft" in answer.json()["error"]["message"]


def _draft_body() -> dict[str, Any]:
    from tests.factories import wave_body

    return wave_body(name="Later")


def _invited_and_answered(wave: Wave, unit: str) -> tuple[int, int]:
    teams = subtree(unit)
    return PER_TEAM * len(teams), sum(len(wave.answers[t]) for t in teams)


def _check_participation(wave: Wave, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Exact figures for a closed wave; while open, no count and the rate rounded down to 5 percentage points."""
    rows = {row["unit_key"]: row for row in body["units"]}
    assert_every_unit_parents_first(list(rows))
    for key, row in rows.items():
        if row["suppressed"]:
            assert row["invited"] is None and row["responded"] is None and row["rate"] is None and row["reason"]
            continue
        invited, answered = _invited_and_answered(wave, key)
        assert row["invited"] == invited and invited >= body["min_group_size"]
        if body["state"] == "closed":
            assert row["responded"] == answered and abs(row["rate"] - answered / invited) < 1e-4
        else:
            assert row["responded"] is None and row["rate"] == (answered * 20 // invited) / 20
    return rows


def test_participation_is_guarded_live_and_stored(app: FastAPI, client: TestClient, open_survey: Wave) -> None:
    live = client.get(open_survey.url("participation"), headers=open_survey.dashboard)
    assert live.status_code == 200 and live.json()["state"] == "open" and live.json()["rate_step"] == 0.05
    before = _check_participation(open_survey, live.json())
    assert {before[u]["rate"] for u in ("dep3", "org")} == {0.70, 0.85}  # 22/30 and 62/70, rounded down
    close(app, client, open_survey)
    stored = client.get(open_survey.url("participation"), headers=open_survey.dashboard).json()
    assert stored["state"] == "closed" and stored["as_of"] is None and stored["rate_step"] is None
    after = _check_participation(open_survey, stored)
    # The same guard on the same answers: the same units shown; the closed wave's figures exact.
    assert {k: r["suppressed"] for k, r in after.items()} == {k: r["suppressed"] for k, r in before.items()}
    table = client.get(open_survey.url("participation"), headers={**open_survey.hr, **CSV})
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [r["unit"] for r in rows] == list(after)
    for row in rows:
        shown = after[row["unit"]]
        assert row["suppressed"] == ("true" if shown["suppressed"] else "false")
        assert row["invited"] == ("" if shown["suppressed"] else str(shown["invited"]))


def test_csv_has_a_row_per_cell_and_hidden_rows_are_empty(client: TestClient, closed: Wave) -> None:
    as_json = client.get(closed.url("results"), params={"unit": "dep3", "by": "tenure_band"}, headers=closed.hr).json()
    answer = client.get(
        closed.url("results"), params={"unit": "dep3", "by": "tenure_band"}, headers={**closed.hr, **CSV}
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    cells = [as_json["units"][0]["total"], *as_json["units"][0]["cuts"]]
    assert [(r["unit"], r["attribute"], r["value"]) for r in rows] == [
        (c["unit"], c["attribute"] or "", c["value"] or "") for c in cells
    ]
    for row, cell in zip(rows, cells, strict=True):
        assert row["suppressed"] == ("true" if cell["suppressed"] else "false")
        if cell["suppressed"]:
            assert row["reason"] == cell["reason"]
            assert all(
                v == "" for k, v in row.items() if k not in ("unit", "attribute", "value", "suppressed", "reason")
            )
        else:
            for figures in cell["constructs"]:
                assert float(row[f"{figures['construct']}_mean"]) == figures["mean"]

    heat = client.get(closed.url("heatmap"), headers={**closed.dashboard, **CSV})
    heat_rows = list(csv.DictReader(io.StringIO(heat.text)))
    assert len(heat_rows) == len(small_tree()) * len(closed.instrument.constructs)
    for row in heat_rows:
        assert (row["mean"] == "") == (row["suppressed"] == "true")

    flags = client.get(closed.url("flags"), headers={**closed.dashboard, **CSV})
    flag_rows = list(csv.DictReader(io.StringIO(flags.text)))
    assert len(flag_rows) == len(client.get(closed.url("flags"), headers=closed.hr).json()["flags"])
    assert flags.text.splitlines()[0] == "unit,construct,rule,severity,evidence,message_nl,message_en"

    comments = client.get(closed.url("comments"), params={"unit": "org"}, headers={**closed.hr, **CSV})
    assert comments.text.splitlines()[0] == "unit,item,text,suppressed,reason"


def test_trend_over_closed_waves(
    app: FastAPI, client: TestClient, closed: Wave, keys: tuple[dict[str, str], dict[str, str]]
) -> None:
    pulse = answered_wave(app, client, *keys, instrument="career-pulse", name="Pulse", min_group_size=3)
    draft = client.post("/api/v1/waves", json=_draft_body(), headers=closed.hr).json()  # no point: not closed
    assert draft["state"] == "draft"
    open_trend = client.get("/api/v1/units/dep2/trend", params={"construct": "psych_safety"}, headers=closed.hr)
    assert [p["wave_id"] for p in open_trend.json()["points"]] == [closed.id]  # the pulse is still open
    close(app, client, pulse)
    for unit in [u["key"] for u in small_tree()]:
        answer = client.get(
            f"/api/v1/units/{unit}/trend", params={"construct": "psych_safety"}, headers=closed.dashboard
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [p["wave_id"] for p in body["points"]] == [closed.id, pulse.id]  # oldest first
        for point, wave in zip(body["points"], (closed, pulse), strict=True):
            heat = client.get(wave.url("heatmap"), headers=closed.hr).json()
            row = next(r for r in heat["units"] if r["unit"] == unit)
            cell = next(c for c in row["constructs"] if c["construct"] == "psych_safety")
            assert (point["suppressed"], point["reason"], point["mean"], point["n"]) == (
                cell["suppressed"],
                cell["reason"],
                cell["mean"],
                cell["n"],
            )
    pulse_results = client.get(pulse.url("results"), headers=closed.hr).json()
    assert pulse_results["previous_wave_id"] == closed.id  # changes are measured against the full survey
    unknown = client.get("/api/v1/units/nowhere/trend", params={"construct": "psych_safety"}, headers=closed.hr)
    assert unknown.status_code == 404
    bad = client.get("/api/v1/units/org/trend", params={"construct": "salary"}, headers=closed.hr)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid"
    as_csv = client.get("/api/v1/units/org/trend", params={"construct": "psych_safety"}, headers={**closed.hr, **CSV})
    assert [r["wave_id"] for r in csv.DictReader(io.StringIO(as_csv.text))] == [str(closed.id), str(pulse.id)]


def _stored(app: FastAPI, wave_id: int) -> tuple[dict[str, Any], Any]:
    with Session(app.state.engine) as session:
        row = session.get(WaveResult, wave_id)
        assert row is not None
        return json.loads(gzip.decompress(row.table)), row.built_at


def test_rebuild_gives_the_same_table_and_is_audited(
    app: FastAPI, client: TestClient, closed: Wave, peil: CliRunner
) -> None:
    first, built_at = _stored(app, closed.id)
    heat = client.get(closed.url("heatmap"), headers=closed.hr).json()
    result = peil.invoke(cli, ["results", "rebuild", str(closed.id)])
    assert result.exit_code == 0, result.output
    assert f"wave {closed.id}: result table rebuilt" in result.output
    second, rebuilt_at = _stored(app, closed.id)
    assert second == first and rebuilt_at > built_at  # deterministic: the same table, built again
    assert client.get(closed.url("heatmap"), headers=closed.hr).json() == heat
    with Session(app.state.engine) as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "results.rebuilt"))
        assert entry is not None and entry.wave_id == closed.id and entry.key_name == "peil results rebuild"


def test_a_rebuild_publishes_nothing_the_stored_table_hid(
    app: FastAPI, client: TestClient, closed: Wave, peil: CliRunner
) -> None:
    """Whatever changed in the engine between two builds, the second hides at least what the first hid (else the
    two tables together could be differenced). Stand-in for an older engine: a stored table that hid more."""
    table, _ = _stored(app, closed.id)
    shown = [c for c in table["cells"] if c["attribute"] is None and not c["suppressed"] and c["unit"] in TEAMS]
    assert shown, "the fixture needs a published team"
    target = shown[0]["unit"]
    for cell in table["cells"]:
        if cell["unit"] == target:
            cell.update(n=None, suppressed=True, reason="complementary", constructs=[], items=[], enps=None)
    with Session(app.state.engine) as session, session.begin():
        built_at = utcnow()
        store(session, closed.id, encode(table), columns.of(table, built_at), built_at)
    result = peil.invoke(cli, ["results", "rebuild", str(closed.id)])
    assert result.exit_code == 0, result.output
    rebuilt, _ = _stored(app, closed.id)
    hidden_before = {(c["unit"], c["attribute"], c["value"]) for c in table["cells"] if c["suppressed"]}
    hidden_now = {(c["unit"], c["attribute"], c["value"]) for c in rebuilt["cells"] if c["suppressed"]}
    assert hidden_before <= hidden_now and (target, None, None) in hidden_now
    served = client.get(closed.url("results"), params={"unit": target}, headers=closed.hr).json()
    assert served["units"][0]["total"]["suppressed"] is True


def test_a_rebuild_after_a_team_moved_is_refused(
    app: FastAPI, client: TestClient, closed: Wave, peil: CliRunner
) -> None:
    first, built_at = _stored(app, closed.id)
    moved = [u if u["key"] != "team1" else {**u, "parent_key": "dep2"} for u in small_tree()]
    assert client.put("/api/v1/units", json={"units": moved}, headers=closed.hr).status_code == 200
    result = peil.invoke(cli, ["results", "rebuild", str(closed.id)])
    assert result.exit_code == 1 and "org tree changed" in result.output and "team1" in result.output
    assert _stored(app, closed.id) == (first, built_at)  # the stored table is untouched


def test_rebuild_refuses_an_open_or_unknown_wave(client: TestClient, open_survey: Wave, peil: CliRunner) -> None:
    result = peil.invoke(cli, ["results", "rebuild", str(open_survey.id)])
    assert result.exit_code == 1 and "only for closed waves" in result.output
    result = peil.invoke(cli, ["results", "rebuild", "999999"])
    assert result.exit_code == 1 and "no wave 999999" in result.output


def test_a_wave_closed_by_the_clock_has_its_table(app: FastAPI, client: TestClient, open_survey: Wave) -> None:
    """The window ends: a read answers 409 "closing" at once (it builds nothing), the clock's tick freezes the
    wave (audited as the clock's), and the close job builds the table the reads then serve."""
    from datetime import timedelta

    from sqlalchemy import update

    from service.db import transaction
    from service.models import Wave as WaveRow
    from service.models.base import utcnow
    from service.scheduler import tick
    from service.waves import close

    with Session(app.state.engine) as session, session.begin():  # the window ends without HR closing the wave
        ended = {"opens_at": utcnow() - timedelta(days=2), "closes_at": utcnow() - timedelta(seconds=1)}
        session.execute(update(WaveRow).where(WaveRow.id == open_survey.id).values(**ended))
    early = client.get(open_survey.url("heatmap"), headers=open_survey.dashboard)
    assert early.status_code == 409 and "closing" in early.json()["error"]["message"]
    tick(app.state.sessionmaker)
    with transaction(app.state.sessionmaker) as session:
        assert session.get(WaveRow, open_survey.id).state == "closing"
        assert session.get(WaveResult, open_survey.id) is None
        by_clock = session.scalars(select(AuditEntry).where(AuditEntry.key_name == "clock")).all()
        assert [(e.action, e.wave_id) for e in by_clock] == [("wave.closed", open_survey.id)]
    assert client.get(open_survey.url("results"), headers=open_survey.dashboard).status_code == 409
    assert [c.wave_id for c in close.run_due(app.state.sessionmaker, app.state.instruments)] == [open_survey.id]
    answer = client.get(open_survey.url("heatmap"), headers=open_survey.dashboard)
    assert answer.status_code == 200, answer.text
    with Session(app.state.engine) as session:
        assert session.get(WaveRow, open_survey.id).state == "closed"
        assert session.get(WaveResult, open_survey.id) is not None
