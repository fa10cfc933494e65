"""The result table: tree rollups, every cell's statistics against naive loops, the JSON contract, and a small
organisation worked by hand through ``build_table`` with the real anonymity guard."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats as sps

from scoring import ResultTable, build_table, cell_statistics, participation_cells
from scoring.rollup import tree_plan
from scoring.spec import (
    Attribute,
    BarrierRule,
    ConstructSpec,
    FlagRules,
    InstrumentSpec,
    ItemSpec,
    OrgTree,
    WaveData,
)
from scoring.tables import LazyChanges

nan = np.nan


# --- trees -------------------------------------------------------------------------------------------------------


@st.composite
def trees(draw: st.DrawFn, max_units: int = 25) -> np.ndarray:
    """Random forests, parents listed before children."""
    n = draw(st.integers(1, max_units))
    parent = [-1]
    for i in range(1, n):
        parent.append(draw(st.integers(-1, i - 1)))
    return np.array(parent, dtype=np.int64)


def naive_subtree_sums(parent: np.ndarray, direct: np.ndarray) -> np.ndarray:
    """Per unit, walk every other unit up to the root and add it where the walk passes (the obvious loop)."""
    out = np.zeros_like(direct)
    for v in range(len(parent)):
        a = v
        while a >= 0:
            out[a] += direct[v]
            a = parent[a]
    return out


@settings(max_examples=60, deadline=None)
@given(parent=trees(), seed=st.integers(0, 2**32 - 1))
def test_rollup_equals_a_naive_walk(parent: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    direct = rng.integers(0, 9, (len(parent), 3)).astype(np.float64)
    plan = tree_plan(parent)
    assert_array_equal(plan.rollup(direct), naive_subtree_sums(parent, direct))
    assert_array_equal(plan.rollup(direct.astype(np.int32)), naive_subtree_sums(parent, direct).astype(np.int32))
    for u in range(len(parent)):  # ancestors: the unit, its parent, ..., its root
        chain = [u]
        while parent[chain[-1]] >= 0:
            chain.append(int(parent[chain[-1]]))
        row = plan.ancestors[u]
        assert row[row >= 0].tolist() == chain
        assert plan.root[u] == chain[-1] and plan.depth[u] == len(chain) - 1


def test_tree_plan_refuses_a_child_before_its_parent() -> None:
    with pytest.raises(ValueError):
        tree_plan([-1, 2, 0])
    with pytest.raises(ValueError):
        tree_plan([-1, 5])


# --- every cell against a naive loop -----------------------------------------------------------------------------


def small_instrument() -> InstrumentSpec:
    items = (
        ItemSpec("s1", "likert5", "safety"),
        ItemSpec("s2", "likert5", "safety"),
        ItemSpec("s3", "likert5", "safety"),
        ItemSpec("pick", "single", None, ("a", "b", "c")),
        ItemSpec("why", "multi", None, ("x", "y", "none")),
        ItemSpec("nps", "nps", "enps"),
        ItemSpec("say", "text"),
    )
    constructs = (
        ConstructSpec(
            "safety",
            "likert5",
            ("s1", "s2", "s3"),
            frozenset({"s2"}),
            2,
            4.0,
            FlagRules(below=3.0, barrier=BarrierRule("why", 0.5, ("none",))),
        ),
        ConstructSpec("enps", "nps", ("nps",), frozenset(), 1, 9.0, FlagRules(below=-20)),
    )
    return InstrumentSpec("small", 1, items, constructs, low_participation=0.5)


def random_wave(parent: np.ndarray, n: int, seed: int, k: int = 3) -> WaveData:
    rng = np.random.default_rng(seed)
    instrument = small_instrument()
    units = len(parent)
    answers = np.full((n, len(instrument.items)), nan)
    answers[:, 0:3] = rng.integers(1, 6, (n, 3))
    answers[:, 3] = rng.integers(0, 3, n)
    answers[:, 5] = rng.integers(0, 11, n)
    gaps = rng.random((n, 6)) < 0.2
    answers[:, :6][gaps] = nan
    answers[:, 4] = nan
    chosen = rng.random((n, 3)) < 0.4
    answered = rng.random(n) < 0.8
    chosen &= answered[:, None]
    unit = rng.integers(0, units, n)
    return WaveData(
        wave_id=seed % 1000,
        instrument=instrument,
        tree=OrgTree(tuple(f"u{i}" for i in range(units)), parent),
        min_group_size=k,
        unit=unit,
        attributes=(
            Attribute("site", ("x", "y"), rng.integers(0, 2, n)),
            Attribute("band", ("p", "q", "r"), rng.integers(0, 3, n)),
        ),
        answers=answers,
        multi={"why": chosen},
        multi_answered={"why": answered},
        comments={"say": tuple((int(r), f"text {r}") for r in np.flatnonzero(rng.random(n) < 0.5))},
        invited=np.bincount(unit, minlength=units) + rng.integers(0, 3, units),
        invited_attributes={},
    )


def naive_cell(data: WaveData, members: np.ndarray) -> dict[str, Any]:
    """One cell computed directly from its respondents with numpy/scipy, one construct at a time."""
    x = data.answers[members]
    safety = np.column_stack([x[:, 0], 6 - x[:, 1], x[:, 2]])
    answered = (~np.isnan(safety)).sum(axis=1)
    score = np.array([np.mean(row[~np.isnan(row)]) for row in safety[answered >= 2]])
    nps = x[:, 5][~np.isnan(x[:, 5])]
    out: dict[str, Any] = {"n": int(members.sum()), "safety_n": score.size}
    if score.size:
        out["safety_mean"] = score.mean()
        out["safety_fav"] = (score >= 4).mean()
    if score.size > 1:
        out["safety_sd"] = score.std(ddof=1)
        out["safety_ci"] = (
            sps.t.interval(0.95, score.size - 1, loc=score.mean(), scale=sps.sem(score))
            if out["safety_sd"] > 0
            else (score.mean(), score.mean())  # no spread: a zero-width interval (scipy answers NaN)
        )
    out["s1_counts"] = [int((x[:, 0] == v).sum()) for v in range(1, 6)]
    out["pick_counts"] = [int((x[:, 3] == v).sum()) for v in range(3)]
    out["why_counts"] = data.multi["why"][members].sum(axis=0).tolist()
    out["why_n"] = int(data.multi_answered["why"][members].sum())
    out["enps"] = (
        [int((nps >= 9).sum()), int(((nps > 6) & (nps < 9)).sum()), int((nps <= 6).sum())] if nps.size else [0, 0, 0]
    )
    return out


def subtree_members(data: WaveData, u: int) -> np.ndarray:
    plan = tree_plan(data.tree.parent)
    return (plan.ancestors[data.unit] == u).any(axis=1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parent=trees(12), n=st.integers(0, 60), seed=st.integers(0, 2**32 - 1))
def test_every_cell_equals_a_naive_loop(parent: np.ndarray, n: int, seed: int) -> None:
    data = random_wave(parent, n, seed)
    cells = cell_statistics(data)
    columns = cells.layout.columns
    assert len(columns) == 1 + 2 + 3
    names = [i.id for i in cells.items]
    off = cells.item_offsets
    for u in range(len(parent)):
        in_unit = subtree_members(data, u)
        for w, (attribute, value) in enumerate(columns):
            members = in_unit.copy()
            if attribute is not None:
                a = next(a for a in data.attributes if a.name == attribute)
                members &= a.codes == a.values.index(value)
            expected = naive_cell(data, members)
            assert cells.n[u, w] == expected["n"]
            assert cells.construct_n[u, w, 0] == expected["safety_n"]
            figures = cells.construct_stats[:, u, w, 0]
            if expected["safety_n"]:
                assert_allclose(figures[0], expected["safety_mean"], rtol=1e-12)
                assert_allclose(figures[4], expected["safety_fav"], rtol=1e-12)
                assert_allclose(figures[7], 100 * (expected["safety_mean"] - 1) / 4, rtol=1e-12)
            else:
                assert np.isnan(figures).all()
            if expected["safety_n"] > 1:
                assert_allclose(figures[1], expected["safety_sd"], rtol=1e-9, atol=1e-12)
                assert_allclose(figures[2:4], expected["safety_ci"], rtol=1e-9, atol=1e-12)
            i = names.index("s1")
            assert cells.counts[u, w, off[i] : off[i + 1]].tolist() == expected["s1_counts"]
            i = names.index("pick")
            assert cells.counts[u, w, off[i] : off[i + 1]].tolist() == expected["pick_counts"]
            i = names.index("why")
            assert cells.counts[u, w, off[i] : off[i + 1]].tolist() == expected["why_counts"]
            assert cells.item_n[u, w, i] == expected["why_n"]
            assert cells.enps is not None
            assert cells.enps[u, w, 4:7].tolist() == expected["enps"]


def test_text_items_have_no_distribution_and_item_means_are_scaled_only() -> None:
    data = random_wave(np.array([-1, 0, 0]), 40, 1)
    cells = cell_statistics(data)
    assert [i.id for i in cells.items] == ["s1", "s2", "s3", "pick", "why", "nps"]
    assert_array_equal(np.isnan(cells.item_mean[0, 0]), [False, False, False, True, True, False])
    s1 = data.answers[:, 0]
    assert_allclose(cells.item_mean[0, 0, 0], np.nanmean(s1))


# --- the JSON contract -------------------------------------------------------------------------------------------


def test_table_round_trips_through_json_exactly() -> None:
    parent = np.array([-1, 0, 0, 1, 1, 2])
    data = random_wave(parent, 90, 11)
    previous = random_wave(parent, 80, 12)
    table = build_table(data, previous)
    text = json.dumps(table.to_dict(), allow_nan=False)  # no NaN anywhere: undefined is null
    again = ResultTable.from_dict(json.loads(text))
    assert again == table
    assert again.to_dict() == table.to_dict()
    assert len(table.cells) == len(parent) * table.width
    for cell in again.cells:
        assert again.cell(cell.unit, cell.attribute, cell.value) == cell
    assert [c.value for c in table.cuts("u1", "band")] == ["p", "q", "r"]
    with pytest.raises(KeyError):
        table.cell("nope")


def test_a_built_tables_changes_read_as_objects_equal_their_json_rows() -> None:
    """A freshly built table keeps its changes as arrays (``LazyChanges``): read one by one, in slices, or only
    the published ones, they are the ``Change`` objects its JSON holds, in the same order."""
    parent = np.array([-1, 0, 0, 1, 1, 2])
    table = build_table(random_wave(parent, 350, 21), random_wave(parent, 350, 22))  # some published, some not
    assert isinstance(table.changes, LazyChanges)
    rows = table.to_dict()["changes"]
    objects = list(table.changes)
    assert len(table.changes) == len(rows) == len(objects) == len(parent) * len(table.constructs)
    assert [c.__dict__ for c in objects] == rows
    assert table.changes[3] == objects[3] and table.changes[-1] == objects[-1]
    assert tuple(table.changes[2:5]) == tuple(objects[2:5])
    assert table.changes.published() == [c for c in objects if not c.suppressed]
    assert any(not c.suppressed for c in objects) and any(c.suppressed for c in objects)


def test_hidden_cells_carry_no_numbers_and_published_ones_do() -> None:
    data = random_wave(np.array([-1, 0, 0, 1, 1, 2, 2, 3]), 160, 5)
    table = build_table(data)
    hidden = [c for c in table.cells if c.suppressed]
    published = [c for c in table.cells if not c.suppressed]
    assert hidden and published
    for cell in hidden:
        assert cell.reason in ("primary", "complementary", "range", "empty")
        assert cell.n is None and cell.constructs == () and cell.items == () and cell.enps is None
    for cell in published:
        assert cell.reason is None and cell.n is not None and cell.n >= data.min_group_size
        assert [c.construct for c in cell.constructs] == ["safety", "enps"]
        for figures in cell.constructs:
            if figures.n == 0:
                assert figures.mean is None and figures.favourable is None


# --- a small organisation worked by hand -------------------------------------------------------------------------


def hand_org() -> WaveData:
    """org -> a -> (a1, a2), org -> b; one construct of one likert5 item; k = 5; attribute site (x, y).

    ========  ===========  ===========  =====
    unit      site x       site y       n
    ========  ===========  ===========  =====
    a1        4, 2, 5      3, 4, 1      6
    a2        5            2            2
    b         4, 1, 3, 5   2, 4, 3      7
    a         4 people     4 people     8
    org       8 people     7 people     15
    ========  ===========  ===========  =====

    Expected, by the rules of the design and the guard's model (``scoring.guard``):

    - primary (1..4 respondents): a2 (2) and every cut of a1 (3, 3), a2 (1, 1), a (4, 4) and b (4, 3);
    - complementary: a1, because a (8) = a1 + a2 is published, and a1 published would give a2 = a - a1;
    - published: org (15), a (8), b (7). The regions (groups of people the published cells tell apart) are
      a (a1 + a2, 8) and b (7): nothing small is determined. org by site (8, 7) stays hidden: publishing it
      would split the regions into a_x, a_y (4, 4), b_x, b_y (4, 3), and the guard proves safety against an
      attacker who is told every region's sum (a real one could not tell a_x from org_x - b_x, but the guard
      does not count on that);
    - the bounds leave every hidden mean a wide range. E.g. for a1 (6 people) inside a (8, sum 26): a2 holds 2
      people in [2, 10], so a1 is anywhere in [16, 24] of 6: 2.7 to 4, width 1.33 >= 1 (a quarter of 1..5).
      Favourable shares, item means and the rest are checked the same way.
    """
    keys = ("org", "a", "a1", "a2", "b")
    parent = np.array([-1, 0, 1, 1, 0])
    rows = [  # (unit, site, answer)
        (2, 0, 4), (2, 0, 2), (2, 0, 5), (2, 1, 3), (2, 1, 4), (2, 1, 1),
        (3, 0, 5), (3, 1, 2),
        (4, 0, 4), (4, 0, 1), (4, 0, 3), (4, 0, 5), (4, 1, 2), (4, 1, 4), (4, 1, 3),
    ]  # fmt: skip
    unit = np.array([r[0] for r in rows])
    site = np.array([r[1] for r in rows])
    answers = np.array([[r[2], nan] for r in rows], dtype=float)
    instrument = InstrumentSpec(
        "hand",
        1,
        (ItemSpec("q1", "likert5", "c"), ItemSpec("say", "text")),
        (ConstructSpec("c", "likert5", ("q1",), frozenset(), 1, 4.0, FlagRules(below=2.0)),),
    )
    return WaveData(
        wave_id=1,
        instrument=instrument,
        tree=OrgTree(keys, parent),
        min_group_size=5,
        unit=unit,
        attributes=(Attribute("site", ("x", "y"), site),),
        answers=answers,
        multi={},
        multi_answered={},
        comments={"say": ((0, "meer overleg"), (6, "fijn team"), (9, "minder vergaderen"))},
        invited=np.array([0, 0, 8, 2, 10]),
        invited_attributes={},
    )


def test_small_org_worked_by_hand() -> None:
    table = build_table(hand_org())
    shown = {(c.unit, c.value): c for c in table.cells if not c.suppressed}
    assert set(shown) == {("org", None), ("a", None), ("b", None)}
    reasons = {(c.unit, c.value): c.reason for c in table.cells if c.suppressed}
    assert reasons[("a1", None)] == "complementary"
    assert reasons[("a2", None)] == "primary"
    for unit in ("a", "a1", "a2", "b"):
        assert reasons[(unit, "x")] == reasons[(unit, "y")] == "primary"
    assert reasons[("org", "x")] == reasons[("org", "y")] == "complementary"
    # The published numbers, by hand.
    org = shown[("org", None)]
    assert org.n == 15
    c = org.constructs[0]
    answers = np.array([4, 2, 5, 3, 4, 1, 5, 2, 4, 1, 3, 5, 2, 4, 3], dtype=float)
    assert_allclose(c.mean, answers.mean())  # 48 / 15 = 3.2
    assert_allclose(c.sd, answers.std(ddof=1))
    assert_allclose(c.favourable, 7 / 15)
    assert_allclose(c.index, 100 * (3.2 - 1) / 4)
    assert org.items[0].counts == (2, 3, 3, 4, 3)
    assert_allclose(shown[("a", None)].constructs[0].mean, 26 / 8)
    assert_allclose(shown[("b", None)].constructs[0].mean, 22 / 7)
    # Comments need 2k = 10 writers: 3 texts hide everywhere, without a text leaking.
    assert all(cell.suppressed and cell.items == () for cell in table.comments)
    # Participation: a2 has 2 invitations (primary), a1 then hides too (a = a1 + a2 is published).
    participation = {p.unit: p for p in table.participation}
    assert participation["a2"].suppressed and participation["a2"].reason == "primary"
    assert participation["a1"].suppressed and participation["a1"].invited is None
    assert (participation["org"].invited, participation["org"].responded) == (20, 15)
    assert (participation["b"].invited, participation["b"].responded, participation["b"].rate) == (10, 7, 0.7)
    # Reliability: one item, alpha undefined; published as null rather than invented.
    assert table.reliability[0].alpha is None


def test_comments_are_published_for_2k_writers_shuffled_and_order_free() -> None:
    data = hand_org()
    writers = tuple((r, f"text {r:02d}") for r in range(12))
    data = WaveData(**{**data.__dict__, "min_group_size": 3, "comments": {"say": writers}})
    table = build_table(data)
    comments = {c.unit: c for c in table.comments}
    org = comments["org"]
    assert not org.suppressed
    texts = org.items[0].texts
    assert sorted(texts) == sorted(t for _, t in writers)
    assert list(texts) != sorted(texts)  # shuffled (12! orders; the sorted one is not the seeded result)
    # The same answers in another order give the same published order.
    shuffled = WaveData(**{**data.__dict__, "comments": {"say": tuple(reversed(writers))}})
    assert build_table(shuffled).comments == table.comments
    # Writers: a1 6, a2 2, b 4 (k for comments = 2 x 3 = 6). a2 and b are small (primary); a1 would give
    # a2 = a - a1 and a would give b = org - a, so both hide (complementary): only org's 12 texts are shown.
    reasons = {c.unit: c.reason for c in table.comments}
    assert reasons == {"org": None, "a": "complementary", "a1": "complementary", "a2": "primary", "b": "primary"}
    assert all(c.items == () for c in table.comments if c.suppressed)


def test_participation_cells_roll_up_and_hide_small_units() -> None:
    # small (4 invitations) is primary; big hides too, else small = org - big. org: 7 of 14 responded, and
    # the bounds leave big anywhere in [3, 7] of 10 and small in [0, 4] of 4: wide enough to publish org.
    cells = participation_cells([-1, 0, 0], ["org", "big", "small"], [0, 10, 4], [0, 5, 2], 5)
    by_unit = {c.unit: c for c in cells}
    assert (by_unit["org"].invited, by_unit["org"].responded, by_unit["org"].rate) == (14, 7, 0.5)
    assert by_unit["small"].suppressed and by_unit["small"].reason == "primary" and by_unit["small"].rate is None
    assert by_unit["big"].suppressed and by_unit["big"].reason == "complementary"
    # 10 of 12 responded: big would lie in [8, 10] of 10, too narrow a range (< 1/4): org hides as well.
    narrow = {c.unit: c for c in participation_cells([-1, 0, 0], ["org", "big", "small"], [0, 10, 2], [0, 8, 2], 5)}
    assert narrow["org"].suppressed
    with pytest.raises(ValueError):
        participation_cells([-1], ["org"], [2], [3], 5)


def test_a_wave_without_responses_hides_everything_as_empty() -> None:
    table = build_table(random_wave(np.array([-1, 0, 0]), 0, 3))
    assert {(c.suppressed, c.reason) for c in table.cells} == {(True, "empty")}
    assert table.flags == () and all(r.suppressed for r in table.reliability)
    json.dumps(table.to_dict(), allow_nan=False)


def test_changes_follow_the_previous_waves_served_pattern() -> None:
    """A change gives the previous mean away (this mean minus the change): it is published only where the
    previous wave's stored table shows the unit, whatever a guard run today would decide for that wave."""
    now = hand_org()
    before = WaveData(**{**now.__dict__, "wave_id": 1})
    recomputed = {c.unit for c in build_table(now, before).changes if not c.suppressed}
    assert recomputed == {"org", "a", "b"}
    served = {c.unit: c for c in build_table(now, before, previous_published={"org", "b"}).changes}
    assert {u for u, c in served.items() if not c.suppressed} == {"org", "b"}
    assert served["a"].suppressed and served["a"].previous_mean is None and served["a"].difference is None
