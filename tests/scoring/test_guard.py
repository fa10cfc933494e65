"""The guard the engine uses (``scoring.guard``) against the independent attacker and the exact audit."""

from __future__ import annotations

import re
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import guard
from scoring.guard import partition_audit, suppress_partition
from scoring.layout import Statistic
from tests.scoring.exact_guard import audit
from tests.scoring.orgs import CASES, PROPERTY, Org, make, orgs, team


def decide(org: Org, *, bounds: bool = True) -> np.ndarray:
    stats = org.statistics(bounds=bounds)
    return suppress_partition(org.parent, org.unit, org.codes, org.n_values, org.k, stats).hidden


def unanimous_pin(org: Org, hidden: np.ndarray, breach: str) -> bool:
    """A range breach of a hidden cell all of whose respondents sit in published cells where everyone gave the same
    extreme answer: DESIGN.md's accepted limit ("a group whose members all gave the same answer reveals that
    answer"), which the guard does not hold against the range rule."""
    found = re.search(r": range: hidden cell \((\d+), (\d+)\)", breach)
    if found is None:
        return False
    u, col = int(found.group(1)), int(found.group(2))
    inside = org.members(u, col) & org.present
    for v in range(len(org.parent)):
        for w in range(org.width):
            cell = org.members(v, w) & org.present
            if hidden[v, w] or not cell.any():
                continue
            values = org.values[cell]
            if np.all(values == values[0]) and values[0] in (1.0, 5.0):
                inside &= ~cell
    return not inside.any()


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_cases_that_break_naive_suppression_do_not_break_this_guard(name: str) -> None:
    org = CASES[name]
    hidden = decide(org)
    assert org.attacks(hidden) == []
    assert audit(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics(), hidden) == []
    assert np.all(hidden >= org.primary())
    stats = org.statistics()
    assert not partition_audit(org.parent, org.unit, org.codes, org.n_values, org.k, stats, hidden)


@PROPERTY
@given(orgs())
def test_the_guard_survives_the_attacker_and_the_exact_audit_on_random_orgs(org: Org) -> None:
    hidden = decide(org)
    assert np.all(hidden >= org.primary())
    breaches = [b for b in org.attacks(hidden) if not unanimous_pin(org, hidden, b)]
    assert breaches == []
    exact = audit(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics(bounds=False), hidden)
    assert exact == []
    stats = org.statistics()
    assert not partition_audit(org.parent, org.unit, org.codes, org.n_values, org.k, stats, hidden)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orgs(), st.integers(0, 2**32 - 1))
def test_the_pattern_is_deterministic_and_ignores_the_order_of_respondents(org: Org, seed: int) -> None:
    first = suppress_partition(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics())
    perm = np.random.default_rng(seed).permutation(len(org.unit))
    shuffled = Org(
        org.parent, org.unit[perm], org.codes[perm], org.n_values, org.k, org.values[perm], org.present[perm]
    )
    other = suppress_partition(
        shuffled.parent, shuffled.unit, shuffled.codes, shuffled.n_values, shuffled.k, shuffled.statistics()
    )
    np.testing.assert_array_equal(other.hidden, first.hidden)
    np.testing.assert_array_equal(other.reason, first.reason)


def merged_rounds(org: Org) -> int:
    """Decide ``org`` with every merged region set checked against a fresh computation; the pattern must be the
    one the fresh computation gives every round. Returns how many rounds merged."""
    merge = guard._merged
    merges = []

    def checked(pb: Any, old: Any, published: np.ndarray, weights: np.ndarray) -> Any:
        merged = merge(pb, old, published, weights)
        fresh = guard._regions(pb, published, weights)
        if merged is not None:
            assert merged.count == fresh.count
            for name in ("region", "rep", "n", "signature"):
                np.testing.assert_array_equal(getattr(merged, name), getattr(fresh, name))
            np.testing.assert_allclose(merged.total, fresh.total, rtol=1e-12, atol=1e-9)
            merges.append(merged.count)
        return merged

    with mock.patch.object(guard, "_merged", checked):
        pattern = decide(org)
    with mock.patch.object(guard, "_merged", lambda *args: None):
        np.testing.assert_array_equal(decide(org), pattern)
    return len(merges)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orgs())
def test_regions_merged_between_rounds_equal_regions_computed_afresh(org: Org) -> None:
    merged_rounds(org)


def test_the_hand_made_cases_merge_regions_between_rounds() -> None:
    assert sum(merged_rounds(org) for org in CASES.values()) > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_rebuild_hides_at_least_what_the_earlier_build_hid(name: str) -> None:
    org = CASES[name]
    stats = org.statistics()
    args = (org.parent, org.unit, org.codes, org.n_values, org.k, stats)
    first = suppress_partition(*args)
    same = suppress_partition(*args, hidden_before=first.hidden)  # the same engine: the same pattern
    np.testing.assert_array_equal(same.hidden, first.hidden)
    np.testing.assert_array_equal(same.reason, first.reason)
    published_totals = np.flatnonzero(~first.hidden[:, 0])
    if published_totals.size == 0:
        return
    before = first.hidden.copy()  # an earlier engine that hid one more total
    before[published_totals[-1], 0] = True
    again = suppress_partition(*args, hidden_before=before)
    assert np.all(again.hidden >= before)
    assert org.attacks(again.hidden) == []
    assert not partition_audit(*args, again.hidden)
    with pytest.raises(ValueError, match="hidden_before must have shape"):
        suppress_partition(*args, hidden_before=before[:, :1] if before.shape[1] > 1 else before[:-1])


def test_a_cut_that_splits_every_team_into_big_groups_is_published() -> None:
    # Two teams of 10, each 5 in Amsterdam and 5 in Utrecht (k = 5): every region split by site holds 5.
    people = team(1, 5, 0) + team(1, 5, 1) + team(2, 5, 0) + team(2, 5, 1)
    org = make([-1, 0, 0], people, (2,), 5)
    hidden = decide(org)
    assert not hidden.any()
    assert org.attacks(hidden) == []


def test_a_cut_that_leaves_a_small_group_in_some_team_stays_hidden() -> None:
    # Team 1 splits 8 / 2 by site: the organisation by site would let the stronger attacker (told every region's
    # sum) see team 1's Utrecht pair; the cuts stay hidden, the totals are published.
    people = team(1, 8, 0) + team(1, 2, 1) + team(2, 5, 0) + team(2, 5, 1)
    org = make([-1, 0, 0], people, (2,), 5)
    hidden = decide(org)
    assert not hidden[:, 0].any()
    assert hidden[0, 1:].all() and hidden[1, 1:].all()
    assert org.attacks(hidden) == []


def test_a_team_close_to_a_bound_is_hidden_when_its_hidden_part_would_be_pinned() -> None:
    """A department of two teams (10 and 10, k = 5); team 1 has a group of 3 in Utrecht (primary), and the rest of
    the team (7) in Amsterdam. Team 1's score is 5 for everyone but one person at 4: with team 1 published, its
    Amsterdam cut (7, hidden because Utrecht is small) would be pinned to [4.86, 5] by the bound. The guard hides
    more instead, and what it publishes survives the attacker's linear programmes."""
    people = team(1, 7, 0) + team(1, 3, 1) + team(2, 5, 0) + team(2, 5, 1)
    values = np.array([5.0] * 6 + [4.0] + [5.0] * 3 + [3.0, 1.0, 2.0, 4.0, 5.0] * 2)
    org = Org([-1, 0, 0], np.array([p[0] for p in people]), np.array([p[1:] for p in people]), (2,), 5, values,
              np.ones(len(people), dtype=bool))  # fmt: skip
    hidden = decide(org)
    assert hidden[1, 0], "team 1 published would pin its hidden Amsterdam cut"
    assert org.attacks(hidden) == []
    assert not hidden[0, 0]


def test_everyone_at_the_top_of_the_scale_is_the_accepted_limit_not_a_reason_to_hide_everything() -> None:
    """Everyone answered 5: any subgroup's mean is 5, known from the published totals. DESIGN.md states this limit
    ("a group whose members all gave the same answer reveals that answer"); hiding more could not undo it, so the
    guard publishes the organisation and hides only what rules (a) and (b) require."""
    org = make([-1, 0, 0], team(1, 2) + team(2, 6), (), 3, value=5.0)
    hidden = decide(org)
    assert not hidden[0, 0]
    assert hidden[1, 0] and hidden[2, 0]  # 2 is small, and 6 would give it away (8 - 6)
    assert all(unanimous_pin(org, hidden, b) for b in org.attacks(hidden))
    assert not [b for b in org.attacks(hidden) if ": range:" not in b]


def test_comments_and_participation_shapes() -> None:
    # A count-only statistic on the tree alone (as comments and participation use it) is fine without bounds.
    parent = [-1, 0, 0, 0]
    unit = np.array([1] * 12 + [2] * 3 + [3] * 9)
    stat = Statistic(np.ones(unit.size, dtype=bool), None, None, "c")
    s = suppress_partition(parent, unit, np.zeros((unit.size, 0), np.int64), (), 6, [stat])
    assert s.hidden[:, 0].tolist() == [False, False, True, True]  # 3 is small, 9 would give it away
    assert [s.reason_name(u, 0) for u in range(4)] == ["published", "published", "primary", "complementary"]


def test_bad_input_is_refused() -> None:
    stat = Statistic(np.ones(2, dtype=bool), None, None)
    codes = np.zeros((2, 0), dtype=np.int64)
    with pytest.raises(ValueError, match="parents first"):
        suppress_partition([1, -1], np.array([0, 1]), codes, (), 3, [stat])
    with pytest.raises(ValueError, match="at least 2"):
        suppress_partition([-1], np.array([0, 0]), codes, (), 1, [stat])
    bad = Statistic(np.ones(2, bool), np.array([0.0, 9.0]), (1, 5))
    with pytest.raises(ValueError, match="out of bounds"):
        suppress_partition([-1], np.array([0, 0]), codes, (), 3, [bad])


@pytest.mark.parametrize("name", sorted(CASES))
def test_locked_cells_stay_hidden_and_the_rest_is_still_safe(name: str) -> None:
    """The second stage of ``scoring.withhold``: cells the first stage hid are locked; what it adds must still
    pass the attacker with them hidden."""
    org = CASES[name]
    stats = org.statistics()
    args = (org.parent, org.unit, org.codes, org.n_values, org.k, stats)
    free = suppress_partition(*args).hidden
    shown = np.argwhere(~free)
    locked = np.zeros_like(free)
    if shown.size:
        locked[tuple(shown[0])] = True  # lock the first published cell (the root's total): it must stay hidden
    pattern = suppress_partition(*args, locked=locked)
    assert np.all(pattern.hidden >= locked) and np.all(pattern.hidden >= org.primary())
    assert org.attacks(pattern.hidden) == []
    assert not partition_audit(*args, pattern.hidden)
    with pytest.raises(ValueError, match="locked must have shape"):
        suppress_partition(*args, locked=locked[:-1])
