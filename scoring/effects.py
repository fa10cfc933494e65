"""A pilot's effect: difference in differences from published group summaries, with an interval and a verdict.

A pilot group P (some units) and a comparison group C (other units, by default the rest of the organisation)
are measured in waves or periods before and after the pilot's start. From each group's summaries (n, mean and
per-person variance; a survey construct's published cells, or an outcome's rate):

    DiD = (P_after - P_before) - (C_after - C_before)
    SE  = sqrt(sum over the four groups of var / n)         (independent people in each group)

Each of the four groups pools its waves at the person level (``pool``; a rate sums its events and people). With
the unbiased variances of survey
scores this is, exactly, the OLS estimate of the interaction in ``y ~ pilot * after`` on the respondents' rows,
with the HC2 (leverage-corrected) standard error: the model is saturated in the four groups, so its fitted
values are the group means and each residual's leverage is 1/n of its group. (HC1 scales HC0 by N/(N-4)
instead: ``sqrt(N/(N-4) * sum((n-1) var / n^2))``, a little smaller.) The interval is a t-interval with
Welch-Satterthwaite degrees of freedom for scores, a normal one for rates (binomial variance p(1 - p)).

The estimate assumes parallel trends: with two or more waves before the start, the same estimator on the first
and the last of them (a "placebo" effect before anything happened) tests whether the two groups already drifted
apart. See MEASUREMENT.md ("Outcomes, pilots and drivers").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import special
from scipy import stats as sps

__all__ = [
    "Effect",
    "Group",
    "Measure",
    "PilotEffect",
    "Point",
    "Verdict",
    "difference_in_differences",
    "pilot_effect",
    "pool",
    "rate",
    "remainder",
    "verdict",
]

Interval = Literal["welch", "normal"]
Measure = Literal["score", "rate"]
Verdict = Literal["increase", "decrease", "no_clear_effect", "cannot_tell"]


@dataclass(frozen=True)
class Group:
    """A group's summary: ``n`` people, their ``mean``, and the per-person variance ``var`` (ddof 1 for scores;
    p(1 - p) for a rate). ``var`` is NaN below n = 2."""

    n: float
    mean: float
    var: float

    def _sums(self) -> tuple[float, float, float]:
        """n, the sum and the sum of squares (for a variance of ddof 1)."""
        var = 0.0 if self.n < 2 else self.var
        return self.n, self.n * self.mean, (self.n - 1) * var + self.n * self.mean**2


def _from_sums(n: float, total: float, squares: float) -> Group:
    if n <= 0:
        return Group(0.0, math.nan, math.nan)
    mean = total / n
    var = max(squares - n * mean**2, 0.0) / (n - 1) if n >= 2 else math.nan
    return Group(n, mean, var)


def pool(groups: Sequence[Group], measure: Measure = "score") -> Group:
    """The groups taken together, person by person (as if their people's values were in one list); for a rate,
    the events and the people summed (``rate``)."""
    if measure == "rate":
        return rate(math.fsum(g.n * g.mean for g in groups if g.n > 0), math.fsum(g.n for g in groups))
    sums = [g._sums() for g in groups]
    return _from_sums(*(math.fsum(s[i] for s in sums) for i in range(3)))


def remainder(whole: Group, parts: Sequence[Group], measure: Measure = "score") -> Group:
    """``whole`` without the people of ``parts`` (which lie inside it): e.g. the organisation minus a pilot."""
    if measure == "rate":
        events = whole.n * whole.mean - math.fsum(p.n * p.mean for p in parts if p.n > 0)
        return rate(round(events, 9), round(whole.n - math.fsum(p.n for p in parts), 9))
    n, total, squares = whole._sums()
    for part in parts:
        pn, pt, ps = part._sums()
        n, total, squares = n - pn, total - pt, squares - ps
    return _from_sums(round(n, 9), total, squares)


def rate(events: float, exposure: float) -> Group:
    """A rate as a group: ``events`` out of ``exposure`` people (e.g. leavers out of the mean headcount), mean
    p = events / exposure and binomial variance p(1 - p) per person."""
    if exposure <= 0:
        return Group(0.0, math.nan, math.nan)
    p = events / exposure
    return Group(exposure, p, max(p * (1 - p), 0.0))


@dataclass(frozen=True)
class Effect:
    """A difference in differences, its standard error, degrees of freedom (inf: normal) and interval."""

    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float


def difference_in_differences(
    pilot_before: Group,
    pilot_after: Group,
    comparison_before: Group,
    comparison_after: Group,
    *,
    confidence: float = 0.95,
    interval: Interval = "welch",
) -> Effect:
    """DiD = (P_after - P_before) - (C_after - C_before), SE = sqrt(sum of var/n), and its interval.

    ``interval``: ``"welch"`` gives a t-interval with df = (sum v)^2 / sum(v^2 / (n - 1)), v = var/n (Welch
    1947, Satterthwaite 1946); ``"normal"`` a z-interval (df inf). NaN figures when a group has n < 2.

    >>> g = Group
    >>> e = difference_in_differences(g(10, 3.0, 1.0), g(10, 3.8, 1.0), g(40, 3.1, 1.0), g(40, 3.2, 1.0))
    >>> round(e.estimate, 3), round(e.se, 4)
    (0.7, 0.5)
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    groups = (pilot_before, pilot_after, comparison_before, comparison_after)
    estimate = (pilot_after.mean - pilot_before.mean) - (comparison_after.mean - comparison_before.mean)
    if any(g.n < 2 or not math.isfinite(g.var) for g in groups):
        return Effect(estimate, math.nan, math.nan, math.nan, math.nan)
    v = [g.var / g.n for g in groups]
    se = math.sqrt(math.fsum(v))
    q = 0.5 + confidence / 2
    if interval == "normal":
        df = math.inf
        half = float(special.ndtri(q)) * se
    else:
        denominator = math.fsum(vi**2 / (g.n - 1) for vi, g in zip(v, groups, strict=True))
        df = math.fsum(v) ** 2 / denominator if denominator > 0 else math.inf
        half = float(sps.t.ppf(q, df)) * se
    return Effect(estimate, se, df, estimate - half, estimate + half)


def verdict(effect: Effect, useful: float) -> tuple[Verdict, str | None]:
    """What the interval says, plainly: ``increase`` or ``decrease`` (it excludes 0); ``no_clear_effect`` (it
    holds 0 and rules out any effect larger than ``useful``); else ``cannot_tell`` (``interval_too_wide``)."""
    if not (math.isfinite(effect.ci_low) and math.isfinite(effect.ci_high)):
        return "cannot_tell", "no_interval"
    if effect.ci_low > 0:
        return "increase", None
    if effect.ci_high < 0:
        return "decrease", None
    if (effect.ci_high - effect.ci_low) / 2 <= useful:
        return "no_clear_effect", None
    return "cannot_tell", "interval_too_wide"


@dataclass(frozen=True)
class Point:
    """One wave or period: whether it is after the start, and each group's summary (None: a cell it rests on is
    hidden, or the group is not in that wave's table). Points are given in time order."""

    label: str
    after: bool
    pilot: Group | None
    comparison: Group | None


@dataclass(frozen=True)
class PilotEffect:
    """The estimate and what it means. ``verdict``/``reasons`` say plainly what the data can tell;
    ``effect`` and ``groups`` (pilot before, pilot after, comparison before, comparison after, pooled) are None
    unless every input cell is published; ``pre_trend`` is the placebo effect between the first and the last
    wave before the start (None with fewer than two), ``parallel`` whether its interval holds 0."""

    verdict: Verdict
    reasons: tuple[str, ...]
    effect: Effect | None = None
    groups: tuple[Group, Group, Group, Group] | None = None
    pre_trend: Effect | None = None
    parallel: bool | None = None


def pilot_effect(
    points: Sequence[Point],
    *,
    measure: Measure,
    min_group_size: int,
    useful: float,
    confidence: float = 0.95,
) -> PilotEffect:
    """The pilot's effect over ``points`` (time order), published only if every input cell is.

    ``measure``: ``"score"`` (survey scores: pooled moments, Welch-Satterthwaite t-interval) or ``"rate"`` (events
    over people: pooled counts, binomial variance, normal interval).

    Reasons it cannot tell: ``too_few_waves`` (no point before or none after), ``groups_too_small`` (an input
    cell is hidden, or a pooled group has fewer than ``min_group_size`` people or under 2), and from ``verdict``
    ``interval_too_wide``.
    """
    if not any(not p.after for p in points) or not any(p.after for p in points):
        return PilotEffect("cannot_tell", ("too_few_waves",))
    shown = [(p.after, p.pilot, p.comparison) for p in points if p.pilot is not None and p.comparison is not None]
    if len(shown) < len(points):
        return PilotEffect("cannot_tell", ("groups_too_small",))
    before = [(pilot, comparison) for after, pilot, comparison in shown if not after]
    later = [(pilot, comparison) for after, pilot, comparison in shown if after]
    groups = (
        pool([pilot for pilot, _ in before], measure),
        pool([pilot for pilot, _ in later], measure),
        pool([comparison for _, comparison in before], measure),
        pool([comparison for _, comparison in later], measure),
    )
    interval: Interval = "normal" if measure == "rate" else "welch"
    if any(g.n < max(min_group_size, 2) for g in groups):
        return PilotEffect("cannot_tell", ("groups_too_small",))
    effect = difference_in_differences(*groups, confidence=confidence, interval=interval)
    pre_trend, parallel = None, None
    if len(before) >= 2:
        (first_pilot, first_comparison), (last_pilot, last_comparison) = before[0], before[-1]
        pre_trend = difference_in_differences(
            first_pilot, last_pilot, first_comparison, last_comparison, confidence=confidence, interval=interval
        )
        if math.isfinite(pre_trend.ci_low) and math.isfinite(pre_trend.ci_high):
            parallel = not (pre_trend.ci_low > 0 or pre_trend.ci_high < 0)
    said, reason = verdict(effect, useful)
    return PilotEffect(said, () if reason is None else (reason,), effect, groups, pre_trend, parallel)
