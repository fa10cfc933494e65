"""The totals-first suppression used above the exact guard's size limit, against the independent attacker."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given

from scoring.cuts import suppress_totals_first
from tests.scoring.test_guard import PROPERTY, Org, orgs


def _decide(org: Org) -> np.ndarray:
    return suppress_totals_first(org.parent, org.unit, org.codes, org.n_values, org.k, org.statistics()).hidden


@PROPERTY
@given(orgs())
def test_totals_first_survives_the_attacker_on_random_orgs(org: Org) -> None:
    """Nothing determined, nothing small; the one gap (module docstring): the range rule is not enforced for a
    hidden cut inside a published total, which a near-uniform total can pin."""
    hidden = _decide(org)
    breaches = [b for b in org.attacks(hidden) if not _range_of_a_cut(b)]
    assert breaches == []
    assert np.all(hidden >= org.primary())


def _range_of_a_cut(breach: str) -> bool:
    found = re.search(r": range: hidden cell \((\d+), (\d+)\)", breach)
    return found is not None and int(found.group(2)) > 0


def test_a_cut_equal_to_its_total_is_published_and_a_split_group_hides_the_cut() -> None:
    # One team of 6 under an organisation: everyone in Amsterdam, tenure split 4 / 2.
    parent = np.array([-1, 0])
    unit = np.ones(6, dtype=np.int64)
    codes = np.array([[0, 0], [0, 0], [0, 0], [0, 0], [0, 1], [0, 1]])
    org = Org(parent, unit, codes, (2, 2), 3, np.full(6, 3.0), np.ones(6, dtype=np.bool_))
    hidden = _decide(org)
    # columns: total, location=A, location=B, tenure=0, tenure=1
    assert hidden.tolist() == [[False, False, True, True, True], [False, False, True, True, True]]
    assert org.attacks(hidden) == []
