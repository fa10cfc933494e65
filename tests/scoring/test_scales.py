"""scoring.scales: reverse-scoring, construct scores under the minimum-answered rule, favourable, eNPS categories."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from scoring.scales import construct_scores, enps_category, reverse, score_construct
from scoring.spec import ConstructSpec, InstrumentSpec, ItemSpec

nan = np.nan


def instrument() -> InstrumentSpec:
    """Safety: 3 likert7 items, the first reversed, 2 needed. Growth: 2 likert5 items, both needed. eNPS."""
    items = (
        ItemSpec("s1", "likert7", "safety"),
        ItemSpec("s2", "likert7", "safety"),
        ItemSpec("s3", "likert7", "safety"),
        ItemSpec("g1", "likert5", "growth"),
        ItemSpec("note", "single", None, ("a", "b")),
        ItemSpec("g2", "likert5", "growth"),
        ItemSpec("nps", "nps", "enps"),
    )
    constructs = (
        ConstructSpec("safety", "likert7", ("s1", "s2", "s3"), frozenset({"s1"}), 2, 5.0),
        ConstructSpec("growth", "likert5", ("g1", "g2"), frozenset(), 2, 4.0),
        ConstructSpec("enps", "nps", ("nps",), frozenset(), 1, 9.0),
    )
    return InstrumentSpec("t", 1, items, constructs)


def test_reverse_recodes_min_plus_max_minus_x() -> None:
    assert_array_equal(reverse([1, 4, 7, nan], 1, 7), [7, 4, 1, nan])
    assert_array_equal(reverse([0, 10], 0, 10), [10, 0])


def test_score_construct_mean_of_answered_and_minimum() -> None:
    items = np.array([[1, 5, 4], [nan, 5, 3], [nan, nan, 2], [nan, nan, nan]])
    score, answered = score_construct(items, [True, False, False], 1, 5, 2)
    # row 0: 5 (reversed 1), 5, 4 -> 14/3; row 1: 5, 3 -> 4; row 2: one answer < 2 -> NaN
    assert_allclose(score, [14 / 3, 4, nan, nan])
    assert answered.tolist() == [3, 2, 1, 0]
    with pytest.raises(ValueError):
        score_construct(items, [True], 1, 5, 2)
    with pytest.raises(ValueError):
        score_construct(items, [True, False, False], 1, 5, 0)


def test_construct_scores_hand_worked() -> None:
    answers = np.array(
        [
            # s1  s2  s3  g1  note g2  nps
            [1, 6, 5, 4, 0, 5, 9],  # safety (7 + 6 + 5)/3 = 6; growth 4.5; promoter
            [7, 2, nan, 3, 1, nan, 6],  # safety (1 + 2)/2 = 1.5; growth: one of two -> not counted; detractor
            [nan, nan, 6, 4, nan, 4, 8],  # safety one answer -> not counted; growth 4 (favourable); passive
            [4, 5, 5, nan, 0, nan, nan],  # safety 14/3 = 4.67 (< 5, not favourable); no growth; no eNPS
        ]
    )
    scores = construct_scores(instrument(), answers)
    assert_allclose(scores.score[:, 0], [6, 1.5, nan, 14 / 3])
    assert_allclose(scores.score[:, 1], [4.5, nan, 4, nan])
    assert_allclose(scores.score[:, 2], [9, 6, 8, nan])
    assert_array_equal(scores.counted, ~np.isnan(scores.score))
    assert_array_equal(scores.favourable[:, 0], [True, False, False, False])
    assert_array_equal(scores.favourable[:, 1], [True, False, True, False])
    assert_array_equal(scores.favourable[:, 2], [True, False, False, False])
    assert scores.enps_construct == 2
    assert scores.enps is not None
    assert_array_equal(scores.enps, [1, -1, 0, nan])


def test_favourable_rule_is_on_the_construct_score() -> None:
    """Top-two-box on the construct score: 4, 4, 3 (mean 3.67) is not favourable, 5, 4, 3 (mean 4) is."""
    spec = InstrumentSpec(
        "t",
        1,
        tuple(ItemSpec(f"i{j}", "likert5", "c") for j in range(3)),
        (ConstructSpec("c", "likert5", ("i0", "i1", "i2"), frozenset(), 3, 4.0),),
    )
    scores = construct_scores(spec, np.array([[4, 4, 3], [5, 4, 3]], dtype=float))
    assert_array_equal(scores.favourable[:, 0], [False, True])


def test_construct_scores_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        construct_scores(instrument(), np.zeros((3, 4)))
    broken = InstrumentSpec("t", 1, (ItemSpec("a", "likert5", "c"),), (ConstructSpec("c", "likert5", ("a", "b")),))
    with pytest.raises(ValueError, match="unknown items"):
        construct_scores(broken, np.zeros((1, 1)))


def test_enps_category_cut_points() -> None:
    assert_array_equal(enps_category([0, 6, 6.5, 7, 8, 8.9, 9, 10, nan]), [-1, -1, 0, 0, 0, 0, 1, 1, nan])
