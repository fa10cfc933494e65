"""Difference in differences from published cells: a hand-worked case, statsmodels' OLS with an interaction term on
respondent rows built to match the cells, pooling, rates, and every way the data can fail to tell."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from numpy.testing import assert_allclose
from scipy import stats as sps

from scoring.effects import (
    Group,
    Point,
    difference_in_differences,
    pilot_effect,
    pool,
    rate,
    remainder,
    verdict,
)


def test_a_hand_worked_case() -> None:
    # pilot: 10 people, mean 3.0 before and 3.8 after; comparison: 40 people, 3.1 and 3.2; every variance 1.0
    effect = difference_in_differences(
        Group(10, 3.0, 1.0), Group(10, 3.8, 1.0), Group(40, 3.1, 1.0), Group(40, 3.2, 1.0)
    )
    # DiD = (3.8 - 3.0) - (3.2 - 3.1) = 0.7; SE = sqrt(1/10 + 1/10 + 1/40 + 1/40) = sqrt(0.25) = 0.5
    assert effect.estimate == pytest.approx(0.7)
    assert effect.se == pytest.approx(0.5)
    # Welch-Satterthwaite: 0.25^2 / (2 * 0.1^2 / 9 + 2 * 0.025^2 / 39) = 0.0625 / 0.0022542735 = 27.7251
    assert effect.df == pytest.approx(0.0625 / (2 * 0.01 / 9 + 2 * 0.000625 / 39))
    assert effect.df == pytest.approx(27.7251, abs=1e-4)
    half = sps.t.ppf(0.975, effect.df) * 0.5  # t(0.975, 27.73) = 2.0493
    assert half == pytest.approx(1.0247, abs=1e-4)
    assert (effect.ci_low, effect.ci_high) == pytest.approx((0.7 - half, 0.7 + half))


def _matching(rng: np.random.Generator, n: int, mean: float, sd: float) -> np.ndarray:
    """n values with exactly this mean and sample standard deviation (ddof 1)."""
    z = rng.normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def _cells_and_rows(rng: np.random.Generator) -> tuple[list[Point], pd.DataFrame]:
    """Per wave and group a published cell (n, mean, sd), and respondent rows built to match each cell."""
    waves = [  # (after, (pilot n, mean, sd), (comparison n, mean, sd))
        (False, (12, 3.1, 0.9), (85, 3.4, 1.1)),
        (False, (15, 3.3, 1.0), (90, 3.5, 1.0)),
        (True, (11, 3.9, 0.8), (88, 3.6, 1.2)),
        (True, (14, 4.0, 0.7), (80, 3.5, 0.9)),
    ]
    points, y, pilot, after = [], [], [], []
    for w, (later, p, c) in enumerate(waves):
        points.append(Point(f"wave {w}", later, Group(p[0], p[1], p[2] ** 2), Group(c[0], c[1], c[2] ** 2)))
        for in_pilot, (n, mean, sd) in ((1, p), (0, c)):
            y.append(_matching(rng, n, mean, sd))
            pilot += [in_pilot] * n
            after += [int(later)] * n
    return points, pd.DataFrame({"y": np.concatenate(y), "pilot": pilot, "after": after})


def test_it_is_the_interaction_of_ols_on_respondent_rows_built_to_match_the_cells() -> None:
    points, rows = _cells_and_rows(np.random.default_rng(7))
    found = pilot_effect(points, measure="score", min_group_size=5, useful=0.5)
    assert found.effect is not None
    fit = smf.ols("y ~ pilot * after", data=rows).fit(cov_type="HC2")
    assert_allclose(found.effect.estimate, fit.params["pilot:after"], rtol=1e-12)
    # the saturated model's HC2 standard error is exactly sqrt(sum var/n) of the pooled groups
    assert_allclose(found.effect.se, fit.bse["pilot:after"], rtol=1e-10)
    # HC1 (MEASUREMENT.md's choice) scales HC0 by N/(N-4): the same groups give it exactly
    hc1 = smf.ols("y ~ pilot * after", data=rows).fit(cov_type="HC1").bse["pilot:after"]
    assert found.groups is not None
    big_n = sum(g.n for g in found.groups)
    assert_allclose(hc1, math.sqrt(big_n / (big_n - 4) * sum((g.n - 1) * g.var / g.n**2 for g in found.groups)))
    assert abs(hc1 - found.effect.se) / found.effect.se < 0.02


def test_pooling_and_subtracting_groups_match_the_people_behind_them() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(3.5, 1.0, size=n) for n in (7, 12, 30)]
    groups = [Group(len(x), float(x.mean()), float(x.var(ddof=1))) for x in parts]
    everyone = np.concatenate(parts)
    pooled = pool(groups)
    assert_allclose((pooled.n, pooled.mean, pooled.var), (everyone.size, everyone.mean(), everyone.var(ddof=1)))
    rest = remainder(pooled, groups[:1])
    others = np.concatenate(parts[1:])
    assert_allclose((rest.n, rest.mean, rest.var), (others.size, others.mean(), others.var(ddof=1)))
    nobody = remainder(pooled, groups)
    assert nobody.n == 0 and math.isnan(nobody.mean)


def test_rates_use_the_binomial_variance_and_a_normal_interval() -> None:
    # retention: pilot 90/100 kept before, 95/100 after; comparison 900/1000 and 910/1000
    groups = [rate(90, 100), rate(95, 100), rate(900, 1000), rate(910, 1000)]
    assert (groups[0].n, groups[0].mean) == (100, 0.9) and groups[0].var == pytest.approx(0.9 * 0.1)
    effect = difference_in_differences(*groups, interval="normal")
    assert effect.estimate == pytest.approx(0.05 - 0.01)
    se = math.sqrt(0.09 / 100 + 0.0475 / 100 + 0.09 / 1000 + 0.0819 / 1000)
    assert effect.se == pytest.approx(se)
    assert math.isinf(effect.df)
    assert (effect.ci_low, effect.ci_high) == pytest.approx((0.04 - 1.959964 * se, 0.04 + 1.959964 * se))
    # rates pool their events and people: two quarters of 100 and 80 people with 10 and 4 leavers
    pooled = pool([rate(10, 100), rate(4, 80)], "rate")
    assert (pooled.n, pooled.mean) == pytest.approx((180, 14 / 180))
    # the rest of an organisation of 1000 (50 leavers) without a pilot of 100 (10 leavers): 40 of 900
    rest = remainder(rate(50, 1000), [rate(10, 100)], "rate")
    assert (rest.n, rest.mean) == pytest.approx((900, 40 / 900))
    points = [Point("q1", False, groups[0], groups[2]), Point("q2", True, groups[1], groups[3])]
    found = pilot_effect(points, measure="rate", min_group_size=5, useful=0.05)
    assert found.effect == effect and found.reasons == ("interval_too_wide",)  # +-0.08: too wide to tell


def _points(pilot_after_mean: float, var: float = 1.0, n: int = 40, before: int = 1) -> list[Point]:
    out = [Point(f"b{i}", False, Group(n, 3.0, var), Group(4 * n, 3.0, var)) for i in range(before)]
    return [*out, Point("a", True, Group(n, pilot_after_mean, var), Group(4 * n, 3.0, var))]


def test_what_the_interval_says() -> None:
    assert pilot_effect(_points(3.8), measure="score", min_group_size=5, useful=0.3).verdict == "increase"
    assert pilot_effect(_points(2.2), measure="score", min_group_size=5, useful=0.3).verdict == "decrease"
    narrow = pilot_effect(_points(3.02, var=0.2, n=400), measure="score", min_group_size=5, useful=0.3)
    assert (narrow.verdict, narrow.reasons) == ("no_clear_effect", ())
    wide = pilot_effect(_points(3.2, var=4.0, n=10), measure="score", min_group_size=5, useful=0.3)
    assert (wide.verdict, wide.reasons) == ("cannot_tell", ("interval_too_wide",))
    assert wide.effect is not None  # the estimate is shown, with the reason it tells little


def test_when_the_data_cannot_tell() -> None:
    only_before = [p for p in _points(3.8, before=2) if not p.after]
    assert pilot_effect(only_before, measure="score", min_group_size=5, useful=0.3).reasons == ("too_few_waves",)
    hidden = _points(3.8)
    hidden[0] = Point("b0", False, None, hidden[0].comparison)  # a cell the guard hid
    found = pilot_effect(hidden, measure="score", min_group_size=5, useful=0.3)
    assert (found.verdict, found.reasons, found.effect, found.groups) == (
        "cannot_tell",
        ("groups_too_small",),
        None,
        None,
    )
    tiny = pilot_effect(_points(3.8, n=4), measure="score", min_group_size=5, useful=0.3)
    assert tiny.reasons == ("groups_too_small",) and tiny.effect is None
    assert verdict(difference_in_differences(*[Group(1, 3.0, math.nan)] * 4), 0.3) == ("cannot_tell", "no_interval")


def test_the_trend_before_the_start_is_checked_when_there_are_two_waves_before() -> None:
    assert pilot_effect(_points(3.8), measure="score", min_group_size=5, useful=0.3).parallel is None
    parallel = pilot_effect(_points(3.8, before=2), measure="score", min_group_size=5, useful=0.3)
    assert parallel.parallel is True and parallel.pre_trend is not None
    drifting = _points(3.8, before=2)
    drifting[1] = Point("b1", False, Group(40, 3.9, 1.0), Group(160, 3.0, 1.0))  # the pilot rose before it began
    found = pilot_effect(drifting, measure="score", min_group_size=5, useful=0.3)
    assert found.parallel is False and found.pre_trend is not None and found.pre_trend.ci_low > 0
