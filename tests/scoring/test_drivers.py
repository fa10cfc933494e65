"""Drivers and focus areas: correlations per subtree against scipy, Fisher intervals, the n >= 30 floor, the guard
over the respondents behind them, the focus-area rule, and how ``build_table`` stores them."""

from __future__ import annotations

import json
import math

import numpy as np
from numpy.testing import assert_allclose
from scipy import stats as sps

from scoring import ResultTable, build_table
from scoring.drivers import MIN_N, Correlations, Drivers, correlations, drivers, wave_correlations
from scoring.rollup import tree_plan
from scoring.scales import construct_scores
from scoring.spec import ConstructSpec, InstrumentSpec, ItemSpec
from tests.scoring.attacker import attack
from tests.scoring.test_tables import random_wave

# org -> (a -> (a1, a2), b)
PARENT = np.array([-1, 0, 1, 1, 0])
KEYS = ("org", "a", "a1", "a2", "b")


def _data(seed: int, per_unit: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(len(per_unit)), per_unit)
    x = rng.normal(3, 1, size=(unit.size, 2))
    y = 0.6 * x[:, 0] + rng.normal(0, 1, size=unit.size)  # goes with the first construct, not the second
    x[rng.random(unit.size) < 0.1, 1] = np.nan  # some scores not counted
    y[rng.random(unit.size) < 0.05] = np.nan
    return unit, x, y


def _subtree(u: int, unit: np.ndarray) -> np.ndarray:
    inside = {u}
    for v in range(len(PARENT)):
        w = v
        while w >= 0:
            if w == u:
                inside.add(v)
            w = PARENT[w]
    return np.isin(unit, list(inside))


def test_correlations_per_subtree_are_pearson_with_fisher_intervals() -> None:
    unit, x, y = _data(1, (0, 5, 40, 35, 50))
    found = correlations(tree_plan(PARENT), unit, x, {"enps": y}, [("enps", 0), ("enps", 1)], 5)
    for u in range(len(KEYS)):
        for p, j in enumerate((0, 1)):
            both = _subtree(u, unit) & np.isfinite(x[:, j]) & np.isfinite(y)
            assert found.n[u, p] == both.sum()
            if both.sum() < MIN_N:
                assert math.isnan(found.r[u, p])
                continue
            expected = sps.pearsonr(x[both, j], y[both])
            interval = expected.confidence_interval(0.95)  # scipy's is Fisher's z too
            assert_allclose(found.r[u, p], expected.statistic, rtol=1e-10)
            assert_allclose((found.ci_low[u, p], found.ci_high[u, p]), (interval.low, interval.high), rtol=1e-6)
    assert found.r[0, 0] > 0.3 and abs(found.r[0, 1]) < 0.3


def test_units_below_30_show_no_correlation_and_their_complement_is_guarded() -> None:
    # b has 4 respondents: no drivers of its own, and org minus a would give those 4 away: one of them is hidden
    unit, x, y = _data(2, (0, 0, 40, 35, 4))
    found = correlations(tree_plan(PARENT), unit, x, {"enps": y}, [("enps", 0), ("enps", 1)], 5)
    assert not found.shown[4]
    assert not (found.shown[0] and found.shown[1])
    for p, j in enumerate((0, 1)):
        both = np.isfinite(x[:, j]) & np.isfinite(y)
        hidden = (~found.shown)[:, None]
        assert attack(PARENT, unit[both], np.zeros((both.sum(), 0)), (), 5, np.ones(both.sum(), bool), None, None,
                      hidden) == [], p  # fmt: skip


def _found(r: list[float]) -> Correlations:
    """Two units (org, team), three constructs with the outcome: given r, n = 100 each."""
    n = np.full((2, 3), 100)
    rr = np.array([r, r])
    half = 1.959963984540054 / math.sqrt(97)
    return Correlations(
        (("enps", 0), ("enps", 1), ("enps", 2)),
        n,
        rr,
        np.tanh(np.arctanh(rr) - half),
        np.tanh(np.arctanh(rr) + half),
        np.array([True, True]),
    )


def test_focus_areas_lag_the_organisation_and_go_with_the_outcome() -> None:
    plan = tree_plan(np.array([-1, 0]))
    index = np.array([[60.0, 70.0, 50.0], [40.0, 75.0, 45.0]])  # the team: low on 0 and 2, high on 1
    found = drivers(_found([0.5, 0.6, 0.35]), plan, ("org", "team"), ("c0", "c1", "c2"), [True, True], index)
    team = [f for f in found.focus_areas if f.unit == "team"]
    # c0: 0.5 x 20 = 10; c2: 0.35 x 5 = 1.75; c1 is above the organisation, not a focus area
    assert [(f.rank, f.construct) for f in team] == [(1, "c0"), (2, "c2")]
    assert (team[0].index, team[0].baseline, team[0].gap) == (40.0, 60.0, -20.0)
    assert_allclose(team[0].priority, 10.0)
    # at the top, the baseline is the organisation's own mean index (60): only c2 lags it
    org = [f for f in found.focus_areas if f.unit == "org"]
    assert [(f.construct, f.baseline, f.gap) for f in org] == [("c2", 60.0, -10.0)]
    weak = drivers(_found([0.2, 0.1, 0.25]), plan, ("org", "team"), ("c0", "c1", "c2"), [True, True], index)
    assert weak.focus_areas == () and len(weak.relations) == 6
    unpublished = drivers(_found([0.5, 0.6, 0.35]), plan, ("org", "team"), ("c0", "c1", "c2"), [True, False], index)
    assert {r.unit for r in unpublished.relations} == {"org"}


def test_the_outcomes_own_construct_and_items_are_no_drivers() -> None:
    data = random_wave(np.array([-1, 0, 0]), 120, 5)
    items = (
        *data.instrument.items,
        ItemSpec("ca_future_here", "likert5", "ambition"),
        ItemSpec("a2", "likert5", "ambition"),
    )
    constructs = (*data.instrument.constructs, ConstructSpec("ambition", "likert5", ("ca_future_here", "a2")))
    instrument = InstrumentSpec("small", 1, items, constructs)
    rng = np.random.default_rng(0)
    answers = np.column_stack([data.answers, rng.integers(1, 6, (120, 2)).astype(float)])
    wave = type(data)(**{**data.__dict__, "instrument": instrument, "answers": answers})
    found = wave_correlations(wave, construct_scores(instrument, answers), tree_plan(wave.tree.parent))
    names = [(o, instrument.constructs[j].id) for o, j in found.pairs]
    assert names == [("enps", "safety"), ("enps", "ambition"), ("intention_to_stay", "safety")]


def test_build_table_stores_drivers_for_published_cells_of_30_and_more() -> None:
    data = random_wave(np.array([-1, 0, 0]), 160, 22)
    table = build_table(data)
    assert {r.unit for r in table.drivers.relations} == {"u0", "u1"}  # u2's cell is hidden
    for relation in table.drivers.relations:
        cell = table.cell(relation.unit)
        assert not cell.suppressed and cell.n is not None and cell.n >= MIN_N
        assert relation.outcome == "enps" and relation.construct == "safety"
        assert (relation.r is None) == (relation.n < MIN_N)
    again = ResultTable.from_dict(json.loads(json.dumps(table.to_dict(), allow_nan=False)))
    assert again.drivers == table.drivers
    assert Drivers.from_dict(None) == Drivers()  # tables stored before drivers existed
