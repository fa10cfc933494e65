"""scoring.stats against published values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats as sps

from scoring import stats

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528]
BH_1995 += [0.7590, 1.0]


def summary(x: list[float]) -> tuple[float, float, int]:
    a = np.asarray(x)
    return float(a.mean()), float(a.var(ddof=1)), a.size


def test_welch_on_r_sleep_data_matches_r_and_scipy() -> None:
    m1, v1, n1 = summary(SLEEP_1)
    m2, v2, n2 = summary(SLEEP_2)
    result = stats.welch(m1, v1, n1, m2, v2, n2)
    # R: t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939
    assert_allclose(result.statistic, -1.8608, atol=5e-5)
    assert_allclose(result.df, 17.776, atol=5e-4)
    assert_allclose(result.pvalue, 0.07939, atol=5e-6)
    reference = sps.ttest_ind(SLEEP_1, SLEEP_2, equal_var=False)
    assert_allclose(result.statistic, reference.statistic, rtol=1e-12)
    assert_allclose(result.df, reference.df, rtol=1e-12)
    assert_allclose(result.pvalue, reference.pvalue, rtol=1e-10)


def test_welch_vectorised_equals_scipy_on_random_groups() -> None:
    rng = np.random.default_rng(3)
    groups = [(rng.normal(3, 1, rng.integers(2, 40)), rng.normal(3.2, 0.7, rng.integers(2, 40))) for _ in range(50)]
    a = np.array([summary(list(g[0])) for g in groups])
    b = np.array([summary(list(g[1])) for g in groups])
    result = stats.welch(a[:, 0], a[:, 1], a[:, 2], b[:, 0], b[:, 1], b[:, 2])
    reference = [sps.ttest_ind(x, y, equal_var=False) for x, y in groups]
    assert_allclose(result.statistic, [r.statistic for r in reference], rtol=1e-10)
    assert_allclose(result.df, [r.df for r in reference], rtol=1e-10)
    assert_allclose(result.pvalue, [r.pvalue for r in reference], rtol=1e-8, atol=1e-15)


def test_welch_is_nan_below_two_respondents() -> None:
    result = stats.welch([3.0, 3.0], [1.0, np.nan], [5, 1], [2.0, 2.0], [1.0, 1.0], [5, 5])
    assert np.isfinite(result.pvalue[0]) and np.isnan(result.pvalue[1])


def test_wilson_81_of_263() -> None:
    low, high = stats.wilson_interval(81, 263)
    assert_allclose([low, high], [0.2553, 0.3662], atol=5e-5)


def test_wilson_equals_the_textbook_formula_and_handles_edges() -> None:
    x = np.array([0, 3, 10, 0])
    n = np.array([10, 10, 10, 0])
    z = sps.norm.ppf(0.975)
    p = x[:3] / n[:3]
    centre = (p + z**2 / (2 * n[:3])) / (1 + z**2 / n[:3])
    half = z / (1 + z**2 / n[:3]) * np.sqrt(p * (1 - p) / n[:3] + z**2 / (4 * n[:3] ** 2))
    low, high = stats.wilson_interval(x, n)
    assert_allclose(low[:3], centre - half, atol=1e-12)
    assert_allclose(high[:3], centre + half, atol=1e-12)
    assert low[0] == 0.0 and high[2] == 1.0
    assert np.isnan(low[3]) and np.isnan(high[3])


def test_t_interval_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    samples = [rng.normal(4, 1, size) for size in (2, 3, 7, 30, 200)]
    mean = np.array([s.mean() for s in samples])
    sd = np.array([s.std(ddof=1) for s in samples])
    n = np.array([s.size for s in samples])
    low, high = stats.t_interval(mean, sd, n)
    reference = np.array([sps.t.interval(0.95, s.size - 1, loc=s.mean(), scale=sps.sem(s)) for s in samples])
    assert_allclose(low, reference[:, 0], rtol=1e-12)
    assert_allclose(high, reference[:, 1], rtol=1e-12)
    # float counts take the general path and agree
    low_f, high_f = stats.t_interval(mean, sd, n.astype(float))
    assert_allclose(low_f, low, rtol=1e-12)
    assert_allclose(high_f, high, rtol=1e-12)
    assert np.isnan(stats.t_interval([1.0, 1.0], [0.5, np.nan], [0, 1])[0]).all()


def test_benjamini_hochberg_1995_example() -> None:
    adjusted = stats.benjamini_hochberg(BH_1995)
    assert int((adjusted <= 0.05).sum()) == 4
    assert_allclose(adjusted, sps.false_discovery_control(BH_1995), rtol=1e-12)


def test_benjamini_hochberg_ignores_nan_and_keeps_shape() -> None:
    rng = np.random.default_rng(2)
    p = rng.random((4, 5))
    p[1, 2] = p[3, 0] = np.nan
    adjusted = stats.benjamini_hochberg(p)
    ok = ~np.isnan(p)
    assert_allclose(adjusted[ok], sps.false_discovery_control(p[ok]), rtol=1e-12)
    assert np.isnan(adjusted[~ok]).all()
    with pytest.raises(ValueError):
        stats.benjamini_hochberg([0.5, 1.5])


def test_moments_equal_numpy() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(1, 6, 37).astype(float)
    shift = 3.0
    mean, var = stats.moments(x.size, (x - shift).sum(), ((x - shift) ** 2).sum())
    assert_allclose(mean + shift, x.mean(), rtol=1e-12)
    assert_allclose(var, x.var(ddof=1), rtol=1e-12)
    mean, var = stats.moments([0, 1], [0.0, 2.0], [0.0, 4.0])
    assert np.isnan(mean[0]) and mean[1] == 2.0 and np.isnan(var).all()


def test_enps_hand_worked() -> None:
    # 10 respondents: 5 promoters, 3 passives, 2 detractors.
    # pP = .5, pD = .2, eNPS = 30; V = .5 + .2 - .3^2 = .61; se = 100 * sqrt(.61 / 10) = 24.698;
    # interval 30 -+ 1.959964 * 24.698 = [-18.41, 78.41].
    score, low, high = stats.enps(5, 3, 2)
    assert_allclose(score, 30.0)
    se = 100 * math.sqrt(0.61 / 10)
    assert_allclose(se, 24.698178, atol=1e-6)
    assert_allclose([low, high], [30 - 1.959964 * se, 30 + 1.959964 * se], atol=1e-4)
    # The variance is the (ddof 0) variance of the +1/0/-1 scores: not pP(1-pP)/n + pD(1-pD)/n.
    scores = np.array([1] * 5 + [0] * 3 + [-1] * 2)
    assert_allclose(100 * scores.std() / math.sqrt(10), se, rtol=1e-12)


def test_enps_edges() -> None:
    score, low, high = stats.enps([10, 0, 0], [0, 0, 0], [0, 10, 0])
    assert_allclose(score[:2], [100, -100])
    assert_allclose(low[:2], [100, -100])  # V = 0: no spread
    assert_allclose(high[:2], [100, -100])
    assert np.isnan(score[2]) and np.isnan(low[2])
    _, low, high = stats.enps(1, 0, 0)
    assert low <= 100 and high <= 100


def test_enps_difference_uses_the_sum_of_multinomial_variances() -> None:
    # Wave 1: 5/3/2 of 10 (eNPS 30, V .61); wave 2: 2/4/4 of 10 (eNPS -20, V .6 - .04 = .56).
    d, z, p = stats.enps_difference(30.0, 0.61, 10, -20.0, 0.56, 10)
    se = 100 * math.sqrt(0.61 / 10 + 0.56 / 10)
    assert_allclose(d, 50.0)
    assert_allclose(z, 50 / se)
    assert_allclose(p, 2 * sps.norm.sf(50 / se))


def test_oneway_equals_scipy_f_and_icc1() -> None:
    rng = np.random.default_rng(5)
    groups = [rng.normal(3 + rng.normal(0, 0.5), 1, size) for size in (4, 9, 12, 6, 20)]
    n = np.array([g.size for g in groups])
    s = np.array([g.sum() for g in groups])
    ss = np.array([(g**2).sum() for g in groups])
    anova = stats.oneway(n, s, ss)
    f = sps.f_oneway(*groups).statistic
    assert_allclose(anova.msb / anova.msw, f, rtol=1e-10)
    big_n = n.sum()
    n0 = (big_n - (n**2).sum() / big_n) / (len(groups) - 1)
    assert_allclose(anova.n0, n0)
    # ICC(1) = (F - 1) / (F + n0 - 1) (Bliese 2000), the same quantity written through F.
    assert_allclose(anova.icc1, (f - 1) / (f + n0 - 1), rtol=1e-10)
    assert_allclose(anova.tau2, max(0.0, (anova.msb - anova.msw) / n0))
    assert_allclose(anova.grand_mean, np.concatenate(groups).mean())


def test_shrinkage_hand_worked() -> None:
    # mu 3.5, tau^2 .1, sigma^2 1. A team of 5 at 3.0: w = .1 / (.1 + .2) = 1/3, shrunk 3.3333,
    # z = -.16667 / sqrt(1/3 * .2) = -.6455, p = .2593. A team of 500 at 3.0: w = .1 / .102, z ~ -11.
    s = stats.shrink_below([3.0, 3.0, 3.0], [5, 500, 0], 3.5, 0.1, 1.0)
    assert_allclose(s.weight[:2], [1 / 3, 0.1 / 0.102])
    assert_allclose(s.shrunk[0], 3.5 - 0.5 / 3)
    assert_allclose(s.z[0], -(0.5 / 3) / math.sqrt(0.2 / 3))
    assert_allclose(s.pvalue[0], sps.norm.cdf(-(0.5 / 3) / math.sqrt(0.2 / 3)))
    assert s.pvalue[1] < 1e-20
    assert np.isnan(s.pvalue[2])
    flat = stats.shrink_below([2.0], [50], 3.5, 0.0, 1.0)  # teams don't differ: nothing is below
    assert_allclose(flat.shrunk, 3.5)
    assert_allclose(flat.pvalue, 0.5)
