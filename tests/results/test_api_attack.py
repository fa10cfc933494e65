"""The attacker who reads everything the HTTP API publishes about one closed wave, as an HR key (the most privileged
reader), and combines it all.

A small, adversarial organisation (15 units in 3 levels; teams of 2 to 9 invitations; direct members in the
organisation and in a division; two attributes with unbalanced shares, location 60/30/10 % and contract 70/30 %,
each mostly by team with strays; skipped items and now and then a skipped construct; about one in twenty never
answers) answers through the web form with random answers from a fixed seed, and HR closes the wave. Then every
figure the API publishes about it is read: the results of every unit alone and cut by each attribute, in JSON and
CSV; the heatmap in JSON and CSV and the HR pages' heatmap downloads (alone and by each attribute); participation
in JSON and CSV; every unit's trend of every construct; the flags (JSON and CSV); the drivers; the reliability
rows; the comments.

1. The endpoints agree: every number published for a cell (n, mean, favourable share, eNPS, item counts) is the
   same wherever it appears and equals the answers as posted; a cell hidden in one place shows no number in any
   other (n, mean, favourable, counts), and a hidden or withheld figure is empty wherever it appears.
2. Per statistic (the respondent count, each construct's score, and the details: favourable shares, eNPS, every
   item), the cells the API publishes it in are attacked by the independent attacker
   (``tests/scoring/attacker.py``), with each respondent's value worked out here from the posted answers: no
   hidden sum determined, no set of 1 to k-1 respondents determined, no hidden mean pinned by the scale's bounds
   (but for DESIGN.md's accepted limit: a group that gave one extreme answer reveals it). Free texts are attacked
   the same way, with rule 6's 2k. Published distributions of items are attacked as what they are (counts per
   answer, not only a sum) by a small linear programme here.
3. The same attacker breaks primary-only suppression of the same answers, so the test has teeth.

Response counts are not protected, by design (README, "The anonymity promise, as built"): the guard assumes every
group's size known to the attacker, and participation after the close shows how many answered per unit with at
least k invitations. So the attacks here are on answers, with every n known.

Cases: k = 5 (the service's default) and k = 3 (the smallest allowed, as the other results tests use), two seeds.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy.optimize import linprog
from sqlalchemy import Engine

from scoring.drivers import INTENTION_TO_STAY, MIN_N
from scoring.spec import SCALE_BOUNDS
from service.config import REPO_ROOT
from service.db import transaction
from service.instruments.loader import load_definitions
from service.instruments.schema import Instrument, Item
from service.keys import repository
from tests.conftest import _clean
from tests.factories import close_wave, create_wave, make_key, open_wave
from tests.forms.answers import as_fields
from tests.mail import mail_links
from tests.scoring.attacker import attack

INSTRUMENT = "career-safety"

# org -> three divisions -> teams; the organisation has two direct members, division 1 one (a manager).
UNITS: tuple[tuple[str, str | None], ...] = (
    ("org", None),
    ("div1", "org"),
    ("div2", "org"),
    ("div3", "org"),
    ("t11", "div1"),
    ("t12", "div1"),
    ("t13", "div1"),
    ("t14", "div1"),
    ("t21", "div2"),
    ("t22", "div2"),
    ("t23", "div2"),
    ("t31", "div3"),
    ("t32", "div3"),
    ("t33", "div3"),
    ("t34", "div3"),
)
INVITED = {"org": 2, "div1": 1, "t11": 9, "t12": 9, "t13": 2, "t14": 9, "t21": 9, "t22": 8, "t23": 4}
INVITED |= {"t31": 9, "t32": 9, "t33": 3, "t34": 8}
HOME = {"org": "A", "div1": "A", "t11": "A", "t12": "A", "t13": "A", "t14": "A", "t21": "B", "t22": "B"}
HOME |= {"t23": "A", "t31": "A", "t32": "B", "t33": "C", "t34": "A"}
TEMPS = {"t14", "t22", "t34"}  # teams mostly on temporary contracts
ATTRIBUTES: dict[str, tuple[str, ...]] = {"location": ("A", "B", "C"), "contract": ("perm", "temp")}
SHARES = {"location": (0.6, 0.3, 0.1), "contract": (0.7, 0.3)}
STRAY = 0.15  # the share of people whose attributes are drawn from SHARES instead of their team's
SKIP_ITEM, SKIP_CONSTRUCT, NEVER_ANSWERS = 0.02, 0.03, 0.05

COLUMNS: list[tuple[str | None, str | None]] = [(None, None)] + [(a, v) for a, vs in ATTRIBUTES.items() for v in vs]
WIDTH = len(COLUMNS)
N_VALUES = tuple(len(v) for v in ATTRIBUTES.values())
KEYS = [key for key, _ in UNITS]
PARENT = [-1 if p is None else KEYS.index(p) for _, p in UNITS]
SCALED = ("likert5", "likert7", "nps")


@dataclass(frozen=True)
class Case:
    k: int
    seed: int

    def __str__(self) -> str:
        return f"k{self.k}-seed{self.seed}"


CASES = [Case(5, 61), Case(5, 62), Case(3, 61), Case(3, 62)]


@cache
def instrument() -> Instrument:
    return load_definitions(REPO_ROOT / "survey_definitions")[(INSTRUMENT, 1)].instrument


# --------------------------------------------------------------------------------------------------------------------
# The organisation and its answers: a pure function of the seed


@dataclass(frozen=True)
class Invitee:
    unit: str
    email: str
    attributes: dict[str, str]
    answers: dict[str, Any] | None  # None: invited, never answered


def _answer(item: Item, rng: np.random.Generator, mood: float, number: int) -> Any:
    if item.type in SCALED:
        low, high = SCALE_BOUNDS[item.type]
        centre = (low + high) / 2 + mood * (high - low) / 4
        return int(np.clip(round(centre + rng.normal(0, (high - low) / 4)), low, high))
    options = [o.id for o in item.options]
    if item.type == "single":
        return options[int(rng.integers(len(options)))]
    if item.type == "multi":
        if "none" in options and rng.random() < 0.25:
            return ["none"]
        rest = [o for o in options if o != "none"]
        return [o for o in rest if rng.random() < 0.3] or [rest[int(rng.integers(len(rest)))]]
    return f"Opmerking {number}: {['meer scholing', 'minder vergaderen', 'betere roosters'][number % 3]}"


def _answers(inst: Instrument, rng: np.random.Generator, mood: float, number: int) -> dict[str, Any]:
    """Random answers around the team's mood; optional items skipped now and then, and now and then all items of
    an optional construct (its score then does not count); half write a free text."""
    skip = {c.id for c in inst.constructs if rng.random() < SKIP_CONSTRUCT}
    out: dict[str, Any] = {}
    for item in inst.items:
        if not item.required and (rng.random() < SKIP_ITEM or item.construct_id in skip):
            continue
        if item.type == "text" and rng.random() < 0.5:
            continue
        out[item.id] = _answer(item, rng, mood, number)
    return out


@cache
def invitees(seed: int) -> tuple[Invitee, ...]:
    inst = instrument()
    rng = np.random.default_rng(seed)
    found: list[Invitee] = []
    for unit, _parent in UNITS:
        mood = float(rng.normal(0, 0.5))
        home = {"location": HOME.get(unit, "A"), "contract": "temp" if unit in TEMPS else "perm"}
        for i in range(INVITED.get(unit, 0)):
            attributes = {
                a: home[a] if rng.random() > STRAY else str(rng.choice(values, p=SHARES[a]))
                for a, values in ATTRIBUTES.items()
            }
            answers = None if rng.random() < NEVER_ANSWERS else _answers(inst, rng, mood, len(found))
            found.append(Invitee(unit, f"{unit}-{i}@example.com", attributes, answers))
    return tuple(found)


def respondents(seed: int) -> list[Invitee]:
    return [p for p in invitees(seed) if p.answers is not None]


# --------------------------------------------------------------------------------------------------------------------
# Each respondent's statistics, worked out here from the posted answers


@dataclass(frozen=True)
class Stat:
    present: np.ndarray  # (R,) bool
    values: np.ndarray | None  # (R,) float, NaN where not present; None for a count
    bounds: tuple[float, float] | None


def construct_score(inst: Instrument, construct_id: str, answers: dict[str, Any]) -> float | None:
    """The mean of the answered items, reverse items recoded; None with fewer than ``min_answered`` answered."""
    construct = next(c for c in inst.constructs if c.id == construct_id)
    low, high = SCALE_BOUNDS[construct.scale]
    given = [
        low + high - answers[i.id] if i.id in construct.reverse else answers[i.id]
        for i in inst.construct_items(construct_id)
        if i.id in answers
    ]
    return sum(given) / len(given) if len(given) >= construct.min_answered else None


def statistics(people: list[Invitee]) -> dict[str, Stat]:
    """Every statistic a cell publishes, per respondent: the count; each construct's score and favourable mark;
    eNPS (+1/0/-1); each scaled item's answer; who answered each single or multiple choice item."""
    inst = instrument()
    out = {"respondents": Stat(np.ones(len(people), dtype=bool), None, None)}
    for construct in inst.constructs:
        scores = [construct_score(inst, construct.id, p.answers or {}) for p in people]
        present = np.array([s is not None for s in scores], dtype=bool)
        values = np.array([np.nan if s is None else s for s in scores])
        low, high = SCALE_BOUNDS[construct.scale]
        out[construct.id] = Stat(present, values, (float(low), float(high)))
        favourable = np.where(present, (values >= construct.favourable.min).astype(float), np.nan)
        out[f"{construct.id}:favourable"] = Stat(present, favourable, (0.0, 1.0))
        if construct.scale == "nps" and "enps:score" not in out:
            category = np.where(values >= 9, 1.0, np.where(values <= 6, -1.0, 0.0))
            out["enps:score"] = Stat(present, np.where(present, category, np.nan), (-1.0, 1.0))
    for item in inst.items:
        name = f"item:{item.id}"
        if item.type in SCALED:
            given = np.array([float((p.answers or {}).get(item.id, np.nan)) for p in people])
            low, high = SCALE_BOUNDS[item.type]
            out[name] = Stat(~np.isnan(given), given, (float(low), float(high)))
        elif item.type in ("single", "multi"):
            out[name] = Stat(np.array([item.id in (p.answers or {}) for p in people], dtype=bool), None, None)
    return out


def distribution(item_id: str, people: list[Invitee]) -> tuple[int, ...]:
    """The counts a cell shows of an item: per point of the scale, per option (chosen, for a multi item)."""
    item = next(i for i in instrument().items if i.id == item_id)
    given = [p.answers[item_id] for p in people if p.answers and item_id in p.answers]
    if item.type in SCALED:
        low, high = SCALE_BOUNDS[item.type]
        return tuple(sum(g == x for g in given) for x in range(low, high + 1))
    if item.type == "single":
        return tuple(sum(g == o.id for g in given) for o in item.options)
    return tuple(sum(o.id in g for g in given) for o in item.options)


def arrays(people: list[Invitee]) -> tuple[np.ndarray, np.ndarray]:
    """(R,) unit index and (R, A) attribute codes of each person."""
    unit = np.array([KEYS.index(p.unit) for p in people], dtype=np.int64)
    codes = np.array([[ATTRIBUTES[a].index(p.attributes[a]) for a in ATTRIBUTES] for p in people], dtype=np.int64)
    return unit, codes.reshape(len(people), len(ATTRIBUTES))


def members(people: list[Invitee]) -> np.ndarray:
    """(U, W, R) who is in each cell, by walking each person's ancestors."""
    out = np.zeros((len(KEYS), WIDTH, len(people)), dtype=bool)
    for r, p in enumerate(people):
        u = KEYS.index(p.unit)
        while u >= 0:
            for w, (a, v) in enumerate(COLUMNS):
                out[u, w, r] = a is None or p.attributes[a] == v
            u = PARENT[u]
    return out


# --------------------------------------------------------------------------------------------------------------------
# The wave, built over the API as HR would, answered through the form


@dataclass
class Built:
    case: Case
    wave_id: int
    hr: dict[str, str]
    people: list[Invitee]  # the respondents, in the order of the arrays


def build(app: FastAPI, client: TestClient, case: Case) -> Built:
    hr = make_key(app, "hr")
    units = [{"key": k, "name": k.upper(), "parent_key": p} for k, p in UNITS]
    assert client.put("/api/v1/units", json={"units": units}, headers=hr).status_code == 200
    wave = create_wave(client, hr, instrument=INSTRUMENT, attributes=list(ATTRIBUTES), min_group_size=case.k)
    everyone = invitees(case.seed)
    rows = [{"unit_key": p.unit, "email": p.email, "attributes": p.attributes} for p in everyone]
    uploaded = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
    assert uploaded.status_code == 201, uploaded.text
    open_wave(client, hr, wave["id"])
    for person, token in zip(everyone, mail_links(app, [p.email for p in everyone]), strict=True):
        if person.answers is not None:
            posted = client.post(f"/s/{token}", data=as_fields(person.answers))
            assert posted.status_code == 200, posted.text
    close_wave(client, app, hr, wave["id"])
    return Built(case, wave["id"], hr, respondents(case.seed))


def sign_in_pages(app: FastAPI, client: TestClient) -> None:
    """An HR session on the HR pages, whose downloads are read with it."""
    with transaction(app.state.sessionmaker) as session:
        _row, key = repository.create(session, role="hr", name="attacker on the pages")
    form = client.get("/hr/login")
    token = re.search(r'name="_csrf" value="([^"]+)"', form.text)
    assert token, form.text
    data = {"key": key, "_csrf": token.group(1), "next": "/hr/waves", "lang": "en"}
    assert client.post("/hr/login", data=data, follow_redirects=False).status_code == 303


# --------------------------------------------------------------------------------------------------------------------
# Everything published, per statistic and cell


def _num(text: str) -> float | None:
    return None if text == "" else float(text)


def _same(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    return bool(a == b)


Record = tuple[str, int | None, Any, float]  # source, n (None: not given), value, tolerance


@dataclass
class Board:
    """Every number the API publishes, per (statistic, unit, column): who published it, its n and value; who marks
    the cell hidden for that statistic; and ``problems``: numbers where a hidden or withheld mark says none."""

    names: list[str]
    numbers: dict[tuple[str, int, int], list[Record]] = field(default_factory=dict)
    hidden: dict[tuple[str, int, int], list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def shown(self, source: str, stat: str, u: int, w: int, n: int | None, value: Any, tol: float = 1e-9) -> None:
        self.numbers.setdefault((stat, u, w), []).append((source, n, value, tol))

    def hide(self, source: str, stats: list[str] | str, u: int, w: int) -> None:
        for stat in [stats] if isinstance(stats, str) else stats:
            self.hidden.setdefault((stat, u, w), []).append(source)

    def empty(self, source: str, what: str, values: list[Any]) -> None:
        if any(v not in (None, "", []) for v in values):
            self.problems.append(f"{source}: {what} is hidden or withheld but shows {values}")

    def published(self, stat: str, sources: Callable[[str], bool] = lambda _source: True) -> np.ndarray:
        """(U, W) the cells in which ``stat`` is published by a source that ``sources`` accepts."""
        out = np.zeros((len(KEYS), WIDTH), dtype=bool)
        for (s, u, w), records in self.numbers.items():
            out[u, w] |= s == stat and any(sources(r[0]) for r in records)
        return out

    def conflicts(self, sources: Callable[[str], bool] = lambda _source: True) -> list[str]:
        """Cells whose published numbers differ between sources, or that one source publishes and another hides."""
        found = []
        for key, every in sorted(self.numbers.items()):
            records = [r for r in every if sources(r[0])]
            if not records:
                continue
            stat, u, w = key
            where = f"{stat} of {KEYS[u]} {COLUMNS[w]}"
            first = records[0]
            for other in records[1:]:
                differ = None not in (first[1], other[1]) and first[1] != other[1]
                if differ or not _same(first[2], other[2], max(first[3], other[3])):
                    found.append(
                        f"{where}: {first[0]} shows n={first[1]} {first[2]}, {other[0]} n={other[1]} {other[2]}"
                    )
            if key in self.hidden:
                shown = sorted({r[0] for r in records})
                found.append(f"{where}: published by {shown}, hidden by {self.hidden[key]}")
        return found


def participation_source(source: str) -> bool:
    return source.startswith("participation")


def results_source(source: str) -> bool:
    return not participation_source(source)


def withheld(total: dict[str, Any]) -> bool:
    """A published cell whose details (favourable shares, eNPS, items) are withheld."""
    return (
        any(f["favourable_suppressed"] for f in total["constructs"])
        or any(i["suppressed"] for i in total["items"])
        or bool(total["enps"] and total["enps"]["suppressed"])
    )


def below(v: int, u: int) -> bool:
    while v >= 0 and v != u:
        v = PARENT[v]
    return v == u


class Reader:
    """Reads every answer of the API about the wave into a ``Board``, and checks the figures that are not cells
    (drivers, reliability, flags, comments) on the way (``notes``)."""

    def __init__(self, client: TestClient, built: Built) -> None:
        self.client, self.built = client, built
        self.inst = instrument()
        self.constructs = [c.id for c in self.inst.constructs]
        counted = [i.id for i in self.inst.items if i.type in (*SCALED, "single", "multi")]
        self.board = Board(list(statistics([])) + [f"dist:{i}" for i in counted])
        self.notes: list[str] = []
        self.participation: dict[str, dict[str, Any]] = {}
        self.comments = np.zeros(len(KEYS), dtype=bool)  # units whose free texts are shown

    def get(self, path: str, **params: Any) -> Any:
        answer = self.client.get(f"/api/v1{path}", params=params, headers=self.built.hr)
        assert answer.status_code == 200, (path, params, answer.text)
        return answer.json()

    def get_csv(self, path: str, **params: Any) -> str:
        answer = self.client.get(f"/api/v1{path}", params=params, headers={**self.built.hr, "accept": "text/csv"})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv"), answer.text
        return answer.text

    def wave(self, what: str) -> str:
        return f"/waves/{self.built.wave_id}/{what}"

    def total(self, unit: str) -> dict[str, Any]:
        cell: dict[str, Any] = self.get(self.wave("results"), unit=unit)["units"][0]["total"]
        return cell

    @staticmethod
    def where(unit: str, attribute: str | None, value: str | None) -> tuple[int, int]:
        return KEYS.index(unit), COLUMNS.index((attribute, value))

    def read(self) -> Reader:
        self.results()
        self.heatmaps()
        self.read_participation()
        self.trends()
        self.flags()
        self.drivers()
        self.read_comments()
        return self

    # results ---------------------------------------------------------------------------------------------------

    def results(self) -> None:
        roots = self.get(self.wave("results"))
        assert [u["unit"] for u in roots["units"]] == ["org"]
        self.cell("results", roots["units"][0]["total"])
        for unit in KEYS:
            for by in (None, *ATTRIBUTES):
                params = {"unit": unit} if by is None else {"unit": unit, "by": by}
                body = self.get(self.wave("results"), **params)
                [shown] = body["units"]
                cells = [shown["total"], *shown["cuts"]]
                assert [(c["attribute"], c["value"]) for c in shown["cuts"]] == [
                    (by, v) for v in ATTRIBUTES.get(by or "", ())
                ]
                for cell in cells:
                    self.cell(f"results?by={by}", cell)
                rows = self.results_csv(self.get_csv(self.wave("results"), **params))
                assert [(r["unit"], r["attribute"] or None, r["value"] or None) for r in rows] == [
                    (c["unit"], c["attribute"], c["value"]) for c in cells
                ]
                for row in rows:
                    self.csv_cell(f"results.csv?by={by}", row)
                self.reliability(unit, shown["total"], body["reliability"])
                assert shown["changes"] == []  # no earlier wave

    def cell(self, source: str, cell: dict[str, Any]) -> None:
        b = self.board
        u, w = self.where(cell["unit"], cell["attribute"], cell["value"])
        source = f"{source} {cell['unit']} {cell['attribute'] or ''}={cell['value'] or ''}"
        if cell["suppressed"]:
            assert cell["reason"] in {"primary", "complementary", "range", "empty"}, cell
            b.empty(source, "cell", [cell["n"], cell["constructs"], cell["items"], cell["enps"]])
            b.hide(source, b.names, u, w)
            return
        b.shown(source, "respondents", u, w, cell["n"], None)
        for f in cell["constructs"]:
            c = f["construct"]
            b.shown(source, c, u, w, f["n"], f["mean"])
            if f["favourable_suppressed"]:
                b.empty(source, f"{c} favourable", [f["favourable"], f["favourable_low"], f["favourable_high"]])
                b.hide(source, f"{c}:favourable", u, w)
            else:
                b.shown(source, f"{c}:favourable", u, w, f["n"], f["favourable"])
        e = cell["enps"]
        if e is not None and e["suppressed"]:
            b.empty(source, "eNPS", [e[x] for x in ("n", "score", "ci_low", "ci_high", "promoters", "detractors")])
            b.hide(source, "enps:score", u, w)
        elif e is not None:
            b.shown(source, "enps:score", u, w, e["n"], e["score"] / 100)
            assert e["promoters"] + e["passives"] + e["detractors"] == e["n"]
            assert math.isclose(e["score"], 100 * (e["promoters"] - e["detractors"]) / e["n"], abs_tol=1e-9)
        kinds = {i.id: i.type for i in self.inst.items}
        for item in cell["items"]:
            name = item["item"]
            if item["suppressed"]:
                b.empty(source, f"item {name}", [item["n"], item["counts"], item["mean"]])
                b.hide(source, [f"item:{name}", f"dist:{name}"], u, w)
                continue
            b.shown(source, f"item:{name}", u, w, item["n"], item["mean"] if kinds[name] in SCALED else None)
            b.shown(source, f"dist:{name}", u, w, item["n"], tuple(item["counts"]))

    def results_csv(self, text: str) -> list[dict[str, str]]:
        """The results CSV, read by name: every column name is unique (the construct ``enps`` and eNPS apart)."""
        header, *rows = list(csv.reader(io.StringIO(text)))
        fields = ("n", "mean", "sd", "ci_low", "ci_high", "favourable", "favourable_low", "favourable_high")
        names = ["unit", "attribute", "value", "n", "suppressed", "reason"]
        names += [f"{c}_{f}" for c in self.constructs for f in fields]
        assert header == [*names, "enps_score_n", "enps_score", "enps_score_ci_low", "enps_score_ci_high"], header
        assert len(set(header)) == len(header), header
        return [dict(zip(header, row, strict=True)) for row in rows]

    def csv_cell(self, source: str, row: dict[str, str]) -> None:
        b = self.board
        u, w = self.where(row["unit"], row["attribute"] or None, row["value"] or None)
        source = f"{source} {row['unit']} {row['attribute']}={row['value']}"
        if row["suppressed"] == "true":
            labels = ("unit", "attribute", "value", "suppressed", "reason")
            b.empty(source, "row", [v for k, v in row.items() if k not in labels])
            b.hide(source, b.names, u, w)
            return
        b.shown(source, "respondents", u, w, int(row["n"]), None)
        for c in self.constructs:
            n = int(row[f"{c}_n"])
            b.shown(source, c, u, w, n, _num(row[f"{c}_mean"]))
            favourable = row[f"{c}_favourable"]
            if favourable.startswith("withheld"):
                b.hide(source, f"{c}:favourable", u, w)
            else:
                b.shown(source, f"{c}:favourable", u, w, n, _num(favourable))
        if row["enps_score"].startswith("withheld"):
            b.hide(source, "enps:score", u, w)
        elif row["enps_score_n"]:
            b.shown(source, "enps:score", u, w, int(row["enps_score_n"]), float(row["enps_score"]) / 100)

    def reliability(self, unit: str, total: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Reliability rests on details: shown only where the unit's total shows its details."""
        for row in rows:
            assert row["unit"] == unit
            if row["suppressed"]:
                values = [row["n"], row["alpha"], row["ci_low"], row["ci_high"], row["rwg"], row["icc1"]]
                self.board.empty(f"reliability {unit}", row["construct"], values)
                continue
            figures = next((f for f in total["constructs"] if f["construct"] == row["construct"]), None)
            if total["suppressed"] or figures is None or withheld(total):
                self.notes.append(f"reliability of {row['construct']} in {unit} shown where the details are not")
            elif row["n"] is not None and row["n"] > figures["n"]:
                self.notes.append(f"reliability of {row['construct']} in {unit} rests on more than the cell: {row}")

    # heatmaps --------------------------------------------------------------------------------------------------

    def heatmaps(self) -> None:
        body = self.get(self.wave("heatmap"))
        assert sorted(r["unit"] for r in body["units"]) == sorted(KEYS)
        for row in body["units"]:
            u, source = KEYS.index(row["unit"]), f"heatmap {row['unit']}"
            if row["suppressed"]:
                values = [x for c in row["constructs"] for x in (c["n"], c["mean"], c["favourable"])]
                self.board.empty(source, "row", [row["n"], *values])
                self.board.hide(source, self.board.names, u, 0)
                continue
            self.board.shown(source, "respondents", u, 0, row["n"], None)
            for c in row["constructs"]:
                fav = None if c["favourable_suppressed"] else c["favourable"]
                self.heat(source, c["construct"], u, 0, c["n"], c["mean"], fav, c["favourable_suppressed"])
        self.heat_rows("heatmap.csv", self.get_csv(self.wave("heatmap")))
        for by in (None, *ATTRIBUTES):
            page = self.client.get(f"/hr/waves/{self.built.wave_id}/heatmap.csv", params={"by": by} if by else {})
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/csv"), page.text
            self.heat_rows(f"/hr heatmap.csv?by={by}", page.text)

    def heat(self, source: str, c: str, u: int, w: int, n: Any, mean: Any, fav: Any, held: bool) -> None:
        self.board.shown(source, c, u, w, n, mean)
        if held:
            self.board.hide(source, f"{c}:favourable", u, w)
        else:
            self.board.shown(source, f"{c}:favourable", u, w, n, fav)

    def heat_rows(self, source: str, text: str) -> None:
        for row in csv.DictReader(io.StringIO(text)):
            u, w = self.where(row["unit"], row.get("attribute") or None, row.get("value") or None)
            c = row["construct"]
            here = f"{source} {row['unit']} {row.get('attribute', '')}={row.get('value', '')} {c}"
            if row["suppressed"] == "true":
                self.board.empty(here, "row", [row["n"], row["mean"], row["favourable"]])
                self.board.hide(here, [c, f"{c}:favourable"], u, w)
                continue
            held = row["favourable"].startswith("withheld")
            self.heat(here, c, u, w, int(row["n"]), _num(row["mean"]), None if held else _num(row["favourable"]), held)

    # participation, trends, flags, drivers, comments -----------------------------------------------------------

    def read_participation(self) -> None:
        body = self.get(self.wave("participation"))
        lines = list(csv.DictReader(io.StringIO(self.get_csv(self.wave("participation")))))
        assert body["state"] == "closed" and sorted(r["unit_key"] for r in body["units"]) == sorted(KEYS)
        assert [line["unit"] for line in lines] == [r["unit_key"] for r in body["units"]]
        everyone = invitees(self.built.case.seed)
        for row, line in zip(body["units"], lines, strict=True):
            key = row["unit_key"]
            u = KEYS.index(key)
            self.participation[key] = row
            if row["suppressed"]:
                self.board.empty(f"participation {key}", "row", [row["invited"], row["responded"], row["rate"]])
                self.board.empty(f"participation.csv {key}", "row", [line["invited"], line["responded"], line["rate"]])
                continue
            self.board.shown(f"participation {key}", "respondents", u, 0, row["responded"], None)
            self.board.shown(f"participation.csv {key}", "respondents", u, 0, int(line["responded"]), None)
            invited = sum(below(KEYS.index(p.unit), u) for p in everyone)
            assert row["invited"] == int(line["invited"]) == invited, (row, line)

    def trends(self) -> None:
        for unit in KEYS:
            u = KEYS.index(unit)
            for c in self.constructs:
                [point] = self.get(f"/units/{unit}/trend", construct=c)["points"]
                assert point["wave_id"] == self.built.wave_id
                source = f"trend {unit} {c}"
                if point["suppressed"]:
                    values = [point[x] for x in ("n", "mean", "ci_low", "ci_high", "favourable", "index")]
                    self.board.empty(source, "point", values)
                    self.board.hide(source, [c, f"{c}:favourable"], u, 0)
                    continue
                self.board.shown(source, c, u, 0, point["n"], point["mean"])
                if point["favourable"] is not None:
                    self.board.shown(source, f"{c}:favourable", u, 0, point["n"], point["favourable"])

    def flags(self) -> None:
        body = self.get(self.wave("flags"))
        lines = list(csv.DictReader(io.StringIO(self.get_csv(self.wave("flags")))))
        assert [(line["unit"], line["rule"]) for line in lines] == [(f["unit"], f["rule"]) for f in body["flags"]]
        scales = {c.id: c.scale for c in self.inst.constructs}
        for flag in body["flags"]:
            unit, c, e = flag["unit"], flag["construct"], flag["evidence"]
            u, source = KEYS.index(unit), f"flags {flag['rule']} {unit} {c}"
            if flag["rule"] in ("below", "below_org"):  # evidence rounded to 3 decimals
                stat, scale = ("enps:score", 100) if scales[c] == "nps" else (c, 1)
                mean = e["eNPS"] if "eNPS" in e else e["mean"]
                self.board.shown(source, stat, u, 0, e["n"], mean / scale, 5e-4)
                if flag["rule"] == "below_org":
                    self.board.shown(
                        f"{source} (its organisation)", stat, 0, 0, None, e["organisation_mean"] / scale, 5e-4
                    )
            elif flag["rule"] == "barrier":
                self.board.shown(source, f"item:{e['item']}", u, 0, e["n"], None)
                item = next(i for i in self.total(unit)["items"] if i["item"] == e["item"])
                options = [o.id for o in next(i for i in self.inst.items if i.id == e["item"]).options]
                if item["suppressed"] or item["counts"][options.index(e["option"])] != e["chosen"]:
                    self.notes.append(f"{source}: {e} against the cell's {item}")
            elif flag["rule"] == "participation":
                row = self.participation[unit]
                if row["suppressed"] or (row["invited"], row["responded"]) != (e["invited"], e["responded"]):
                    self.notes.append(f"{source}: {e} against participation {row}")
            else:
                self.notes.append(f"{source}: unexpected rule (one wave: no decline) {flag}")

    def drivers(self) -> None:
        available = {u["unit"] for u in self.get(self.wave("drivers"))["units"] if u["available"]}
        stats = statistics(self.built.people)
        inside = members(self.built.people)
        for unit in KEYS:
            [d] = self.get(self.wave("drivers"), unit=unit)["units"]
            assert d["available"] == (unit in available)
            if not d["available"]:
                assert d["relations"] == [] and d["focus_areas"] == []
                continue
            total = self.total(unit)
            if total["suppressed"] or withheld(total):
                self.notes.append(f"drivers of {unit} shown where the details are not")
                continue
            u = KEYS.index(unit)
            for r in d["relations"]:
                outcome = "enps" if r["outcome"] == "enps" else f"item:{INTENTION_TO_STAY}"
                pairs = int((inside[u, 0] & stats[r["construct"]].present & stats[outcome].present).sum())
                if r["n"] != pairs or (r["r"] is not None and r["n"] < MIN_N):
                    self.notes.append(f"drivers of {unit}: {r}, but {pairs} pairs")
            figures = {f["construct"]: f for f in total["constructs"]}
            for a in d["focus_areas"]:
                if not math.isclose(a["index"], figures[a["construct"]]["index"], abs_tol=1e-6):
                    self.notes.append(f"focus area of {unit}: {a} against the cell's {figures[a['construct']]}")

    def read_comments(self) -> None:
        inside = members(self.built.people)
        texts = [i.id for i in self.inst.items if i.type == "text"]
        for unit in KEYS:
            [c] = self.get(self.wave("comments"), unit=unit)["units"]
            if c["suppressed"]:
                assert c["items"] == [] and c["reason"], c
                continue
            u = KEYS.index(unit)
            self.comments[u] = True
            people = [p for p, here in zip(self.built.people, inside[u, 0], strict=True) if here]
            for group in c["items"]:
                posted = sorted(p.answers[group["item"]] for p in people if p.answers and group["item"] in p.answers)
                assert group["item"] in texts and sorted(group["texts"]) == posted, unit


def untrue(board: Board, people: list[Invitee]) -> list[str]:
    """Published numbers that differ from the answers as posted (so the attacker attacks what is published)."""
    stats = statistics(people)
    inside = members(people)
    found = []
    for (stat, u, w), records in board.numbers.items():
        if stat.startswith("dist:"):
            here = [p for p, i in zip(people, inside[u, w], strict=True) if i]
            truth: tuple[int | None, Any] = (None, distribution(stat[5:], here))
        else:
            s = stats[stat]
            cell = inside[u, w] & s.present
            truth = (int(cell.sum()), None if s.values is None or not cell.any() else float(s.values[cell].mean()))
        for source, n, value, tol in records:
            wrong_n = None not in (n, truth[0]) and n != truth[0]
            if wrong_n or (truth[1] is not None and not _same(value, truth[1], tol)):
                found.append(f"{source}: {stat} of {KEYS[u]} {COLUMNS[w]} is n={n} {value}; the answers: {truth}")
    return found


# --------------------------------------------------------------------------------------------------------------------
# The attacks


def accepted(people: list[Invitee], stat: Stat, hidden: np.ndarray, u: int, w: int) -> bool:
    """DESIGN.md's accepted limit: every respondent of hidden cell (u, w) sits in a published cell whose members
    all gave the same extreme answer (it reveals that answer; hiding more cannot undo it)."""
    assert stat.values is not None and stat.bounds is not None
    inside = members(people)
    left = inside[u, w] & stat.present
    for v, x in zip(*np.nonzero(~hidden), strict=True):
        cell = inside[v, x] & stat.present
        if cell.any() and np.all(stat.values[cell] == stat.values[cell][0]) and stat.values[cell][0] in stat.bounds:
            left &= ~cell
    return not left.any()


def named(detail: str) -> str:
    """The attacker's "(u, w)" cells by name: "(t33, total)", "(org, location=A)"."""

    def name(m: re.Match[str]) -> str:
        attribute, value = COLUMNS[int(m.group(2))]
        return f"({KEYS[int(m.group(1))]}, {'total' if attribute is None else f'{attribute}={value}'})"

    return re.sub(r"\((\d+), (\d+)\)", name, detail)


def found_by(people: list[Invitee], stat: Stat, shown: np.ndarray, k: int) -> list[str]:
    """The attacker's findings against ``shown``, but for DESIGN.md's accepted limit, cells by name."""
    unit, codes = arrays(people)
    found = []
    for a in attack(PARENT, unit, codes, N_VALUES, k, stat.present, stat.values, stat.bounds, ~shown):
        if a.kind == "range":
            u, w = (int(x) for x in a.detail.split("(")[1].split(")")[0].split(","))
            if accepted(people, stat, ~shown, u, w):
                continue
        found.append(f"{a.kind}: {named(a.detail)}")
    return found


def breaches(people: list[Invitee], stats: dict[str, Stat], published: dict[str, np.ndarray], k: int) -> list[str]:
    """What the independent attacker finds, each statistic against the cells it is published in."""
    return [f"{name}: {f}" for name, shown in published.items() for f in found_by(people, stats[name], shown, k)]


def pinned_by_distributions(people: list[Invitee], item: Item, shown: np.ndarray) -> list[str]:
    """Hidden cells whose mean of ``item`` the published distributions (counts per answer, not only their sum)
    pin to less than a quarter of the scale. A linear programme over the count of each answer in each atom (unit
    x attribute values; every atom's n known, as the attacker's): it bounds each hidden cell's sum from below
    and above (its relaxation is never narrower than the truth, so a narrow span is a real breach). A hidden
    cell whose people all sit in published cells that gave one answer is DESIGN.md's accepted limit."""
    low, high = SCALE_BOUNDS[item.type]
    points = np.arange(low, high + 1, dtype=float)
    answered = [p for p in people if p.answers and item.id in p.answers]
    unit, codes = arrays(answered)
    atoms = sorted({(int(u), *c) for u, c in zip(unit, codes.tolist(), strict=True)})
    where = {a: i for i, a in enumerate(atoms)}
    counts = np.zeros((len(atoms), len(points)))
    for p, u, c in zip(answered, unit, codes.tolist(), strict=True):
        counts[where[(int(u), *c)], p.answers[item.id] - low] += 1  # type: ignore[index]
    inside = members(answered)
    cell = np.zeros((len(KEYS), WIDTH, len(atoms)))
    for r, (u, c) in enumerate(zip(unit, codes.tolist(), strict=True)):
        cell[:, :, where[(int(u), *c)]] = inside[:, :, r]
    m, q = len(atoms), len(points)
    rows = [np.kron(np.eye(m)[i], np.ones(q)) for i in range(m)]  # each atom's counts sum to its n
    rhs = list(counts.sum(axis=1))
    for u, w in zip(*np.nonzero(shown), strict=True):
        for j in range(q):  # each published count
            rows.append(np.kron(cell[u, w], np.eye(q)[j]))
            rhs.append(float(cell[u, w] @ counts[:, j]))
    found = []
    for u, w in zip(*np.nonzero(~shown & (cell.sum(axis=2) > 0)), strict=True):
        n = float(cell[u, w] @ counts.sum(axis=1))
        objective = np.kron(cell[u, w], points)
        lo = linprog(objective, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None), method="highs")
        hi = linprog(-objective, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None), method="highs")
        assert lo.status == 0 and hi.status == 0
        span = (-hi.fun - lo.fun) / n
        if span < (high - low) / 4 - 1e-7 and not _unanimous_cover(answered, item.id, shown, u, w):
            found.append(f"{item.id}: hidden cell ({KEYS[u]}, {COLUMNS[w]}) of {n:.0f}: mean pinned within {span:.3g}")
    return found


def _unanimous_cover(people: list[Invitee], item_id: str, shown: np.ndarray, u: int, w: int) -> bool:
    inside = members(people)
    given = np.array([p.answers[item_id] for p in people])  # type: ignore[index]
    left = inside[u, w].copy()
    for v, x in zip(*np.nonzero(shown), strict=True):
        if inside[v, x].any() and np.all(given[inside[v, x]] == given[inside[v, x]][0]):
            left &= ~inside[v, x]
    return not left.any()


# --------------------------------------------------------------------------------------------------------------------
# The harvest: built and read once per database and case


@dataclass
class Harvest:
    built: Built
    board: Board
    notes: list[str]
    participation: dict[str, dict[str, Any]]
    comments: np.ndarray  # (U,) units whose free texts are shown


@pytest.fixture(scope="module")
def harvest(app: FastAPI, engine: Engine, case: Case) -> Iterator[Harvest]:
    _clean(engine)
    with TestClient(app) as client:
        built = build(app, client, case)
        sign_in_pages(app, client)
        reader = Reader(client, built).read()
        yield Harvest(built, reader.board, reader.notes, reader.participation, reader.comments)


EVERY_CASE = pytest.mark.parametrize("case", CASES, ids=str, scope="module")


@EVERY_CASE
def test_every_endpoint_agrees_and_hidden_cells_show_no_number(harvest: Harvest) -> None:
    board = harvest.board
    assert board.numbers, "nothing read"
    problems = board.problems + board.conflicts(results_source) + untrue(board, harvest.built.people)
    assert not problems, "\n".join(problems)
    assert not harvest.notes, "\n".join(harvest.notes)
    # Participation is guarded on its own (over invitations): where it and the results both show a unit's
    # respondents, they agree.
    differ = [c for c in board.conflicts() if "published by" not in c]
    assert not differ, "\n".join(differ)


@EVERY_CASE
def test_the_attacker_finds_nothing_in_everything_the_results_publish(harvest: Harvest) -> None:
    board, people, k = harvest.board, harvest.built.people, harvest.built.case.k
    stats = statistics(people)
    published = {name: board.published(name, results_source) for name in stats}
    core = ["respondents", *(c.id for c in instrument().constructs)]
    assert all(published[name][0, 0] for name in core), "the organisation's total is hidden: nothing to attack"
    found = breaches(people, stats, published, k)
    # Free texts: rule 6's 2k over the writers of each text item, on the tree alone (texts are never cut).
    unit, _codes = arrays(people)
    no_cuts = np.zeros((len(people), 0), dtype=np.int64)
    for item in (i for i in instrument().items if i.type == "text"):
        wrote = np.array([item.id in (p.answers or {}) for p in people], dtype=bool)
        for a in attack(PARENT, unit, no_cuts, (), 2 * k, wrote, None, None, ~harvest.comments[:, None]):
            found.append(f"comments {item.id}: {a.kind}: {a.detail}")
    assert not found, "\n".join(found)


@EVERY_CASE
def test_published_distributions_pin_no_hidden_mean(harvest: Harvest) -> None:
    board, people = harvest.board, harvest.built.people
    found = []
    for item in (i for i in instrument().items if i.type in SCALED):
        shown = board.published(f"dist:{item.id}", results_source)
        assert np.array_equal(shown, board.published(f"item:{item.id}", results_source))
        if shown.any():
            found += pinned_by_distributions(people, item, shown)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("k", [3, 5])
def test_the_attacker_breaks_primary_only_suppression_of_the_same_answers(k: int) -> None:
    """The tests have teeth: hiding only the cells of 1 to k-1 people gives people away (a parent minus its
    published children, a unit minus its cuts)."""
    for seed in sorted({c.seed for c in CASES}):
        people = respondents(seed)
        stats = statistics(people)
        inside = members(people)
        everyone = inside.sum(axis=2)
        published = {}
        for name in ("respondents", *(c.id for c in instrument().constructs)):
            n = (inside & stats[name].present).sum(axis=2)
            published[name] = ~(((everyone >= 1) & (everyone < k)) | ((n >= 1) & (n < k)))
        found = breaches(people, stats, published, k)
        assert any(f.startswith("respondents: small") for f in found), found
        assert any(f.startswith("psych_safety: ") for f in found), found
