"""What the guard costs a table (``scoring.loss``), counted against a table worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.loss import Level, Publication, Tally, describe, publication


def test_counts_by_hand() -> None:
    # org (12: cuts 7, 5), a (7: cuts 4, 3), b (5: cuts 3, 2); k = 5
    n = np.array([[12, 7, 5], [7, 4, 3], [5, 3, 2]])
    hidden = np.array([[False, True, True], [False, True, True], [True, True, True]])
    protecting = np.array([[False, True, False], [False, False, False], [True, False, False]])
    withheld = np.array([[False, False, False], [True, False, False], [False, False, False]])
    p = publication(n, hidden, protecting, [0, 1, 1], 5, withheld)
    assert p.totals == Tally(3, 2) and p.cuts == Tally(2, 0)
    assert p.protecting_others == 2  # org's cut of 7 and b (5): both eligible, hidden for others' sake
    assert p.details_withheld == 1
    assert p.levels == (Level(0, Tally(1, 1), Tally(2, 0)), Level(1, Tally(2, 1), Tally(0, 0)))
    assert Publication.from_dict(p.to_dict()) == p
    assert describe(p, 5)[0] == (
        "groups of 5 or more published: unit totals 2 of 3 (66.7%), cuts 0 of 2 (0.0%); 2 hidden to protect "
        "others; 1 published with their details withheld"
    )
    assert Tally(0, 0).share is None


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        publication([[5, 5]], [[False]], [[False]], [0], 5)
    with pytest.raises(ValueError, match="one entry per unit"):
        publication([[5, 5]], [[False, False]], [[False, False]], [0, 1], 5)
