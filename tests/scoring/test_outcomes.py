"""Outcome KPIs: the formulas worked by hand, sums before division, the guard over them (checked by the
independent attacker), and the rules for rows of counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from scoring.outcomes import (
    OutcomeTable,
    count_problems,
    counts_from_rows,
    internal_mobility,
    outcome_table,
    retention,
    time_to_promotion,
)
from scoring.spec import OrgTree
from tests.scoring.attacker import attack

# org -> sales -> (north, south); org -> ops. Direct counts (a unit's own people only).
KEYS = ("org", "sales", "north", "south", "ops")
PARENT = np.array([-1, 0, 1, 1, 0])
ROWS = {
    "headcount_start": [0, 0, 40, 20, 30],
    "headcount_end": [0, 0, 38, 22, 30],
    "leavers": [0, 0, 3, 1, 2],
    "moves_in": [0, 0, 1, 2, 0],
    "moves_out": [0, 0, 2, 1, 3],
    "promotions": [0, 0, 5, 5, 6],
    "months_waited": [0.0, 0.0, 75.0, 50.0, 84.0],
}


def table(rows: dict[str, list[float]] = ROWS, k: int = 5) -> OutcomeTable:
    tree = OrgTree(KEYS, PARENT)
    return outcome_table("2026-Q1", tree, counts_from_rows(len(KEYS), range(len(KEYS)), rows), k)


def test_the_formulas_by_hand() -> None:
    # north: mean headcount (40 + 38) / 2 = 39; retention 1 - 3/39; mobility 2/39; 75 months over 5 promotions
    assert_allclose(retention(3, 39.0), 1 - 3 / 39)
    assert_allclose(internal_mobility(2, 39.0), 2 / 39)
    assert_allclose(time_to_promotion(75.0, 5), 15.0)
    assert np.isnan(retention(0, 0.0)) and np.isnan(internal_mobility(0, 0.0)) and np.isnan(time_to_promotion(0, 0))
    north = table().cell("north")
    assert not north.suppressed
    assert (north.headcount_start, north.headcount_end, north.leavers, north.moves_out) == (40, 38, 3, 2)
    assert north.mean_headcount == 39.0
    assert_allclose(north.retention, 36 / 39)
    assert_allclose(north.internal_mobility, 2 / 39)
    assert north.time_to_promotion == 15.0


def test_units_roll_up_by_summing_counts_before_dividing() -> None:
    org = table().cell("org")
    # headcount: 40 + 20 + 30 = 90 at the start, 38 + 22 + 30 = 90 at the end
    assert (org.headcount_start, org.headcount_end, org.mean_headcount) == (90, 90, 90.0)
    assert (org.leavers, org.moves_in, org.moves_out, org.promotions) == (6, 3, 6, 16)
    assert_allclose(org.retention, 1 - 6 / 90)
    assert_allclose(org.internal_mobility, 6 / 90)
    assert_allclose(org.time_to_promotion, (75 + 50 + 84) / 16)
    # not the mean of the teams' rates
    rates = [1 - 3 / 39, 1 - 1 / 21, 1 - 2 / 30]
    assert abs(org.retention - np.mean(rates)) > 1e-4


def _people(rows: dict[str, list[float]], name: str) -> np.ndarray:
    if name == "headcount":
        per_unit = np.maximum(rows["headcount_start"], rows["headcount_end"])
    else:
        per_unit = np.asarray(rows[name])
    return np.repeat(np.arange(len(per_unit)), np.asarray(per_unit, dtype=int))


def _hidden(t: OutcomeTable, promotion: bool = False) -> np.ndarray:
    if promotion:
        return np.array([[c.suppressed or c.time_to_promotion is None] for c in t.cells])
    return np.array([[c.suppressed] for c in t.cells])


def _attacks(rows: dict[str, list[float]], t: OutcomeTable, k: int) -> list[object]:
    """The attacker against both patterns: the people behind the rates, the promoted behind time to promotion."""
    found = []
    for name, promotion in (("headcount", False), ("promotions", True)):
        unit = _people(rows, name)
        everyone = np.ones(unit.size, dtype=bool)
        codes = np.zeros((unit.size, 0), dtype=int)
        found += attack(PARENT, unit, codes, (), k, everyone, None, None, _hidden(t, promotion))
    return found


def test_a_small_unit_is_hidden_and_so_is_its_complement() -> None:
    # org has 2 people of its own besides its units'; south has 4
    rows = {**ROWS, "headcount_start": [2, 0, 40, 3, 30], "headcount_end": [2, 0, 38, 4, 30]}
    rows |= {"leavers": [0, 0, 3, 1, 2], "moves_in": [0, 0, 1, 0, 0], "promotions": [0, 0, 5, 1, 6]}
    t = table(rows)
    south = t.cell("south")
    assert south.suppressed and south.reason == "primary" and south.leavers is None and south.retention is None
    # sales = north + south: with both shown, sales - north would give south away, so one of them is hidden;
    # org = sales + ops + 2 people: with all three shown, org - sales - ops would give those 2 away
    assert t.cell("sales").suppressed or t.cell("north").suppressed
    assert t.cell("org").suppressed or t.cell("sales").suppressed or t.cell("ops").suppressed
    assert any(c.reason == "complementary" for c in t.cells)
    assert _attacks(rows, t, 5) == []
    # what a naive table (only the small unit hidden) would give away, the attacker finds
    naive = np.array([[c.unit == "south"] for c in t.cells])
    unit = _people(rows, "headcount")
    found = attack(PARENT, unit, np.zeros((unit.size, 0)), (), 5, np.ones(unit.size, bool), None, None, naive)
    assert {a.kind for a in found} >= {"determined"}


def test_time_to_promotion_needs_k_promotions_of_its_own() -> None:
    rows = {**ROWS, "promotions": [0, 0, 5, 2, 6], "months_waited": [0.0, 0.0, 75.0, 20.0, 84.0]}
    t = table(rows)
    south = t.cell("south")
    assert not south.suppressed and south.promotions == 2  # the rates rest on 22 people: shown
    assert south.time_to_promotion is None and south.promotion_reason == "primary"
    # sales' promotions (7) minus north's (5) would give south's months away: one of them is hidden
    sales, north = t.cell("sales"), t.cell("north")
    assert sales.time_to_promotion is None or north.time_to_promotion is None
    assert _attacks(rows, t, 5) == []


def test_nobody_promoted_is_an_empty_figure_not_a_zero() -> None:
    rows = {**ROWS, "promotions": [0, 0, 0, 0, 6], "months_waited": [0.0, 0.0, 0.0, 0.0, 84.0]}
    north = table(rows).cell("north")
    assert north.promotions == 0 and north.time_to_promotion is None and north.promotion_reason == "empty"


def test_a_table_reads_back_from_its_json() -> None:
    t = table()
    assert OutcomeTable.from_dict(t.to_dict()) == t
    assert t.to_dict()["cells"][0]["unit"] == "org"


def test_rows_of_counts_are_checked() -> None:
    rows = {name: np.array(values, dtype=float) for name, values in ROWS.items()}
    assert count_problems(rows) == []
    bad = {name: values.copy() for name, values in rows.items()}
    bad["leavers"][2] = 41  # more than the larger headcount of north (40)
    bad["moves_out"][3] = -1
    bad["months_waited"][0] = 3.0  # org's own people: nobody promoted
    bad["headcount_end"][4] = np.nan
    found = count_problems(bad)
    assert (2, "leavers", "41 leavers is more than the headcount (40)") in found
    assert (3, "moves_out", "must not be negative") in found
    assert (0, "months_waited", "months waited are given but nobody was promoted") in found
    assert (4, "headcount_end", "must be a number") in found
    with pytest.raises(ValueError, match="unit north: leavers: 41 leavers is more than the headcount"):
        table({**ROWS, "leavers": [0, 0, 41, 1, 2]})


@st.composite
def organisations(draw: st.DrawFn) -> tuple[np.ndarray, dict[str, list[float]]]:
    units = draw(st.integers(2, 7))
    parent = np.array([-1] + [draw(st.integers(0, u - 1)) for u in range(1, units)])
    start = [draw(st.integers(0, 12)) for _ in range(units)]
    end = [draw(st.integers(0, 12)) for _ in range(units)]
    most = [max(a, b) for a, b in zip(start, end, strict=True)]
    rows: dict[str, list[float]] = {"headcount_start": start, "headcount_end": end}
    for name in ("leavers", "moves_in", "moves_out", "promotions"):
        rows[name] = [draw(st.integers(0, m)) for m in most]
    rows["months_waited"] = [float(draw(st.integers(0, 30)) * p) for p in rows["promotions"]]
    return parent, rows


@given(organisations(), st.integers(3, 5))
@settings(max_examples=40, deadline=None)
def test_the_independent_attacker_finds_nothing_in_random_organisations(
    organisation: tuple[np.ndarray, dict[str, list[float]]], k: int
) -> None:
    parent, rows = organisation
    keys = tuple(f"u{i}" for i in range(parent.size))
    t = outcome_table("2026-01", OrgTree(keys, parent), counts_from_rows(parent.size, range(parent.size), rows), k)
    for name, promotion in (("headcount", False), ("promotions", True)):
        unit = _people(rows, name)
        hidden = _hidden(t, promotion)
        found = attack(parent, unit, np.zeros((unit.size, 0)), (), k, np.ones(unit.size, bool), None, None, hidden)
        assert found == [], (name, found)
    people = np.maximum(rows["headcount_start"], rows["headcount_end"])
    rolled = np.zeros(parent.size)
    for u in range(parent.size):  # subtree people, walking every unit up to its root
        v = u
        while v >= 0:
            rolled[v] += people[u]
            v = parent[v]
    for u, cell in enumerate(t.cells):
        assert cell.suppressed or rolled[u] >= k
        assert cell.time_to_promotion is None or (cell.promotions or 0) >= k
