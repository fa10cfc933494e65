"""The exact reference guard (``tests/scoring/exact_guard.py``) against an independent attacker: hand-made trees
built to break naive suppression, a small org worked by hand, and random trees with random answers (Hypothesis).

Every hand-made case is checked both ways: the naive pattern (primary suppression only, or the guard without the
scale's bounds) is broken by the attacker, so the attacker has teeth; the guard's pattern is not.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.layout import COMPLEMENTARY, EMPTY, PRIMARY, PUBLISHED, RANGE, REASONS, Statistic
from tests.scoring.attacker import attack
from tests.scoring.exact_guard import Breach, audit, suppress
from tests.scoring.orgs import CASES, PROPERTY, Org, make, orgs, team


@pytest.mark.parametrize("name", sorted(CASES))
def test_naive_primary_suppression_is_broken_and_the_guard_is_not(name: str) -> None:
    org = CASES[name]
    naive = org.primary()
    assert org.attacks(naive), f"{name}: the attacker must break primary suppression alone"
    assert audit(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics(), naive)
    guarded = org.suppress()
    assert org.attacks(guarded) == []
    assert audit(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics(), guarded) == []
    assert np.all(guarded >= naive)


def test_values_at_the_scale_extremes_pin_a_cell_unless_the_range_rule_hides_more() -> None:
    """Parent of 8 (k = 3) with children of 2 and 6, and everyone answered 5: knowing the parent's sum (40) and
    that the big child can reach at most 30 leaves the small child exactly 10 (mean 5), though no cell's sum is
    determined. The guard without bounds (rules a and b only) publishes the parent; with bounds it must not."""
    org = make([-1, 0, 0], team(1, 2) + team(2, 6), (), 3, value=5.0)
    without_range = org.suppress(bounds=False)
    kinds = {a.split(": ")[1] for a in org.attacks(without_range)}
    assert kinds == {"range"}, org.attacks(without_range)
    guarded = org.suppress()
    assert org.attacks(guarded) == []
    s = suppress(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics())
    assert s.reason_name(0, 0) == "range"
    assert REASONS[RANGE] == "range"


def test_a_small_org_worked_by_hand() -> None:
    """k = 3; one attribute ``site`` (column 1: Amsterdam, column 2: Utrecht). The tree and the people::

        0 org                      (no direct members)
        ├── 1 sales                3 Amsterdam, 2 Utrecht
        └── 2 tech                 (no direct members)
            ├── 3 team A           4 Amsterdam
            └── 4 team B           1 Amsterdam, 1 Utrecht

    n per cell (total / Amsterdam / Utrecht): org 11/8/3, sales 5/3/2, tech 6/5/1, team A 4/4/0, team B 2/1/1.

    Primary (n = 1..2): sales-Utrecht, tech-Utrecht, team B (all three cells). Empty: team A-Utrecht.
    Complementary, by the local rules:
    - tech = team A + team B (no direct members): team B hidden alone -> hide team A (its only published child);
    - tech-Amsterdam = team A-Amsterdam + team B-Amsterdam: same -> hide team A-Amsterdam;
    - sales = sales-Amsterdam + sales-Utrecht: Utrecht hidden alone -> hide sales-Amsterdam;
    - then org-Amsterdam = sales-Amsterdam + tech-Amsterdam: sales-Amsterdam hidden alone -> hide tech-Amsterdam.
    org-Utrecht (3) = sales-Utrecht (2) + tech-Utrecht (1): two hidden parts with 3 >= k together: fine.
    The exact audit then finds nothing: over the atoms (sales-A 3, sales-U 2, teamA-A 4, teamB-A 1, teamB-U 1) the
    published rows span {sales, tech, org-Amsterdam}; the only determined combination free of the heavy atoms is
    sales-U + teamB-U = org-Utrecht (3 people), and no hidden cell is in the span.
    Published: org (all three cells), sales total, tech total. Everything else is hidden.

    With a score on 1..5 (everyone answered 3) the range rule (c) adds to this: tech-Amsterdam (5 people) can only
    move by 4 in sum (the one Utrecht person of team B bounds the only free direction), a mean range of 0.8 < 1.
    """
    people = team(1, 3, 0) + team(1, 2, 1) + team(3, 4, 0) + team(4, 1, 0) + team(4, 1, 1)
    org = make([-1, 0, 0, 2, 2], people, (2,), 3)
    counts = org.statistics(bounds=False)[:1]
    s = suppress(org.parent, org.unit, org.codes, org.n_values, org.k, counts)
    expected = np.array(
        [
            [PUBLISHED, PUBLISHED, PUBLISHED],  # org
            [PUBLISHED, COMPLEMENTARY, PRIMARY],  # sales
            [PUBLISHED, COMPLEMENTARY, PRIMARY],  # tech
            [COMPLEMENTARY, COMPLEMENTARY, EMPTY],  # team A
            [PRIMARY, PRIMARY, PRIMARY],  # team B
        ]
    )
    np.testing.assert_array_equal(s.reason, expected)
    np.testing.assert_array_equal(s.hidden, expected != PUBLISHED)
    assert s.reason_name(1, 2) == "primary" and s.reason_name(3, 2) == "empty"
    assert org.attacks(s.hidden, counts) == []
    assert org.attacks(s.hidden) == ["score: range: hidden cell (2, 1): mean range 0.8 < 1"]
    with_score = suppress(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics())
    assert np.all(with_score.hidden >= s.hidden) and with_score.hidden.sum() > s.hidden.sum()
    assert RANGE in with_score.reason
    assert org.attacks(with_score.hidden) == []


def test_forced_cells_stay_hidden_and_the_rest_is_still_safe() -> None:
    org = CASES["a department with one direct member"]
    forced = np.zeros((4, 1), dtype=bool)
    forced[1, 0] = True
    s = suppress(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics(), hidden=forced)
    assert s.hidden[1, 0]
    assert org.attacks(s.hidden) == []


def test_comments_use_twice_k_and_no_attributes() -> None:
    """Free text: one statistic 'wrote a comment', k = 2 * min_group_size = 10, no cuts. The organisation has 3
    writers of its own beside teams of 12 and 11 writers: publishing all three totals gives away the 3."""
    parent = [-1, 0, 0, 1]
    unit = np.array([0] * 5 + [1] * 12 + [2] * 13 + [3] * 4)
    wrote = np.zeros(len(unit), dtype=bool)
    wrote[:3] = True  # the organisation's own: 3 of 5
    wrote[5:17] = True  # unit 1: 12
    wrote[17:28] = True  # unit 2: 11 of 13; unit 3: nobody wrote
    codes = np.zeros((len(unit), 0), dtype=np.int64)
    naive = np.zeros((4, 1), dtype=bool)
    assert {a.kind for a in attack(parent, unit, codes, (), 10, wrote, None, None, naive)} == {"small"}
    s = suppress(parent, unit, codes, (), 10, [Statistic(wrote, None, None, "comments")])
    assert s.hidden.shape == (4, 1)
    assert s.reason_name(2, 0) == "complementary"  # the smaller team hides with the 3
    assert s.reason_name(3, 0) == "empty"
    assert attack(parent, unit, codes, (), 10, wrote, None, None, s.hidden) == []


def test_participation_with_the_response_rate_as_the_value() -> None:
    """Invitations are the respondents; one statistic with everyone present and 0/1 'responded'."""
    parent = [-1, 0, 0]
    unit = np.array([1] * 8 + [2] * 3)
    responded = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=float)
    everyone = np.ones(len(unit), dtype=bool)
    codes = np.zeros((len(unit), 0), dtype=np.int64)
    stat = Statistic(everyone, responded, (0.0, 1.0), "participation")
    s = suppress(parent, unit, codes, (), 5, [stat])
    assert s.hidden[2, 0] and s.hidden[1, 0]  # 3 invitations primary, its sibling complementary
    assert attack(parent, unit, codes, (), 5, everyone, responded, (0.0, 1.0), s.hidden) == []


def test_audit_reports_what_and_where() -> None:
    org = CASES["parent with one small child"]
    naive = org.primary()
    breaches = audit(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics(), naive)
    assert all(isinstance(b, Breach) for b in breaches)
    determined = [b for b in breaches if b.kind == "determined"]
    assert determined and determined[0].cells == ((2, 0),)
    assert "respondents" in determined[0].statistic


def test_bad_input_is_refused() -> None:
    stat = Statistic(np.ones(2, dtype=bool), None, None)
    codes = np.zeros((2, 0), dtype=np.int64)
    with pytest.raises(ValueError, match="parents first"):
        suppress([1, -1], np.array([0, 1]), codes, (), 3, [stat])
    with pytest.raises(ValueError, match="at least 2"):
        suppress([-1], np.array([0, 0]), codes, (), 1, [stat])
    with pytest.raises(ValueError, match="outside its bounds"):
        suppress([-1], np.array([0, 0]), codes, (), 3, [Statistic(np.ones(2, bool), np.array([0.0, 9.0]), (1, 5))])


@PROPERTY
@given(orgs())
def test_the_guard_survives_the_attacker_on_random_orgs(org: Org) -> None:
    hidden = org.suppress()
    assert org.attacks(hidden) == []
    assert np.all(hidden >= org.primary())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orgs(), st.integers(0, 2**32 - 1))
def test_the_pattern_is_deterministic_and_ignores_the_order_of_respondents(org: Org, seed: int) -> None:
    first = suppress(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics())
    again = suppress(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics())
    perm = np.random.default_rng(seed).permutation(len(org.unit))
    shuffled = Org(
        org.parent, org.unit[perm], org.codes[perm], org.n_values, org.k, org.values[perm], org.present[perm]
    )
    other = suppress(
        shuffled.parent, shuffled.unit, shuffled.codes, shuffled.n_values, shuffled.k, shuffled.statistics()
    )
    for s in (again, other):
        np.testing.assert_array_equal(s.hidden, first.hidden)
        np.testing.assert_array_equal(s.reason, first.reason)
