"""scoring.reliability against pingouin's bundled datasets (pingouin is a test-only reference) and by hand."""

from __future__ import annotations

import numpy as np
import pingouin as pg
import pytest
from numpy.testing import assert_allclose

from scoring.reliability import cronbach_alpha, rwg_j


def test_alpha_on_pingouins_cronbach_alpha_dataset() -> None:
    long = pg.read_dataset("cronbach_alpha")
    wide = long.pivot(index="Subj", columns="Items", values="Scores")
    result = cronbach_alpha(wide.to_numpy(dtype=float))
    reference, reference_ci = pg.cronbach_alpha(data=long, items="Items", scores="Scores", subject="Subj")
    assert_allclose(result.alpha, reference, rtol=0, atol=1e-9)
    assert_allclose(result.alpha, 0.5917188, atol=5e-8)  # MEASUREMENT.md
    assert_allclose([result.ci_low, result.ci_high], [0.195, 0.840], atol=5e-4)
    assert_allclose([result.ci_low, result.ci_high], reference_ci, atol=5e-4)  # pingouin rounds to 3 places
    assert (result.n, result.k) == (15, 10)


def test_alpha_with_gaps_pairwise_and_listwise() -> None:
    data = pg.read_dataset("cronbach_wide_missing")
    x = data.to_numpy(dtype=float)
    pairwise = cronbach_alpha(x, "pairwise")
    listwise = cronbach_alpha(x, "listwise")
    assert_allclose(pairwise.alpha, pg.cronbach_alpha(data, nan_policy="pairwise")[0], atol=1e-9)
    assert_allclose(listwise.alpha, pg.cronbach_alpha(data, nan_policy="listwise")[0], atol=1e-9)
    assert_allclose(pairwise.alpha, 0.7326608, atol=5e-8)
    assert_allclose(listwise.alpha, 0.8016949, atol=5e-8)
    # Listwise uses only complete rows; its Feldt interval uses that n too (pingouin keeps the full n).
    assert listwise.n == int((~np.isnan(x).any(axis=1)).sum()) < x.shape[0]


def test_alpha_equals_the_variance_formula_on_complete_data() -> None:
    rng = np.random.default_rng(0)
    trait = rng.normal(size=(60, 1))
    x = np.rint(np.clip(3 + trait + rng.normal(0, 0.8, (60, 5)), 1, 5))
    k = x.shape[1]
    expected = k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1))
    assert_allclose(cronbach_alpha(x).alpha, expected, rtol=1e-12)
    # With no gaps, pairwise and listwise are the same thing.
    assert_allclose(cronbach_alpha(x, "pairwise").alpha, expected, rtol=1e-12)


def test_alpha_undefined_cases_and_bad_input() -> None:
    assert np.isnan(cronbach_alpha(np.ones((1, 3))).alpha)
    assert np.isnan(cronbach_alpha(np.ones((5, 1))).alpha)
    assert np.isnan(cronbach_alpha(np.ones((5, 3))).alpha)  # no variance at all
    with pytest.raises(ValueError):
        cronbach_alpha(np.ones(5))
    with pytest.raises(ValueError):
        cronbach_alpha(np.ones((5, 3)), "everything")  # type: ignore[arg-type]


def test_rwg_j_hand_worked() -> None:
    # Team 0: items (1, 2) answered 4,4 / 5,4 / 4,5 / 5,5: item variances 1/3 and 1/3, mean 1/3.
    # A 5-point scale: e = (25 - 1) / 12 = 2. ratio = 1/6; rwg(2) = 2 (5/6) / (2 (5/6) + 1/6) = 10/11.
    # Team 1: 1,5 / 5,1 (variances 8 and 8): ratio 4 >= 1, truncated to 0.
    # Team 2: one complete respondent (the other skipped an item): too small, NaN.
    items = np.array([[4, 4], [5, 4], [4, 5], [5, 5], [1, 5], [5, 1], [3, 3], [3, np.nan]], dtype=float)
    team = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    rwg, size = rwg_j(items, team, points=5)
    assert_allclose(rwg[:2], [10 / 11, 0.0])
    assert np.isnan(rwg[2])
    assert size.tolist() == [4, 2, 1]
