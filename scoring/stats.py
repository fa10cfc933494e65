"""Intervals, eNPS, Welch's test, Benjamini-Hochberg and shrinkage: vectorised over whole arrays of cells.

Every function takes arrays of per-cell figures (counts, means, variances), broadcasts them, and answers
NaN where a figure is undefined (e.g. an interval below n = 2) instead of raising, because a table has
thousands of cells of which some are always empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

__all__ = [
    "OneWay",
    "Shrinkage",
    "Welch",
    "benjamini_hochberg",
    "enps",
    "enps_difference",
    "moments",
    "oneway",
    "shrink_below",
    "t_interval",
    "welch",
    "wilson_interval",
]

FloatArray = npt.NDArray[np.float64]


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    return float(special.ndtri(0.5 + confidence / 2))


def moments(n: npt.ArrayLike, total: npt.ArrayLike, squares: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Mean and sample variance (ddof 1) from a count, a sum and a sum of squares.

    NaN mean at n = 0, NaN variance below n = 2. Sums should be taken around a shift near the data
    (e.g. the scale's midpoint) to keep the subtraction accurate; add the shift back to the mean.
    """
    shape, (n_, s, ss) = _arrays(n, total, squares)
    # In place where possible: these run over every cell of a table, and fresh temporaries cost page faults.
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.divide(s, n_)
        var = np.multiply(s, mean)
        np.subtract(ss, var, out=var)
        np.maximum(var, 0.0, out=var)
        var /= n_ - 1
    mean[n_ == 0] = np.nan
    var[n_ < 2] = np.nan
    return mean.reshape(shape), var.reshape(shape)


def _arrays(*arrays: npt.ArrayLike) -> tuple[tuple[int, ...], list[FloatArray]]:
    """Broadcast float arrays, at least 1-d so in-place operations work (reshape results to ``shape``)."""
    out = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
    return out[0].shape, [np.atleast_1d(a) for a in out]


def _t_quantile(q: float, df: FloatArray) -> FloatArray:
    """t quantile for many degrees of freedom, evaluated once per distinct df."""
    out = np.full(df.shape, np.nan)
    ok = np.isfinite(df) & (df > 0)
    if ok.any():
        distinct, inverse = np.unique(df[ok], return_inverse=True)
        out[ok] = sps.t.ppf(q, distinct)[inverse]
    return out


def t_interval(
    mean: npt.ArrayLike, sd: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """t-interval of a mean: ``mean -+ t(1 - a/2, n - 1) * sd / sqrt(n)``; NaN below n = 2.

    >>> low, high = t_interval(10.0, 2.0, 16)
    >>> round(float(low), 4), round(float(high), 4)
    (8.9343, 11.0657)
    """
    _z(confidence)
    counts = np.asarray(n)
    shape, (m, s, n_) = _arrays(mean, sd, n)
    q = 0.5 + confidence / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.issubdtype(counts.dtype, np.integer) and counts.size and counts.min() >= 0 and counts.max() < 10**7:
            # Whole counts (the usual case): t quantiles from a table indexed by n, one entry per distinct n.
            index = np.broadcast_to(counts, shape).ravel()
            present = np.bincount(index) > 0
            present[:2] = False
            table = np.full(present.shape, np.nan)
            distinct = np.flatnonzero(present)
            table[distinct] = sps.t.ppf(q, distinct - 1)
            half = table[index].reshape(n_.shape)
        else:
            df = n_ - 1
            df[n_ < 2] = np.nan
            half = _t_quantile(q, df)
        half *= s
        half /= np.sqrt(n_)
        low = m - half
        half += m
    return low.reshape(shape), half.reshape(shape)


def wilson_interval(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval of a proportion (Wilson 1927); NaN at n = 0.

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``.

    >>> low, high = wilson_interval(81, 263)
    >>> round(float(low), 4), round(float(high), 4)
    (0.2553, 0.3662)
    """
    z = _z(confidence)
    z2 = z * z
    shape, (x, n_) = _arrays(successes, n)
    # The same formula multiplied through by n: centre (x + z^2/2) / (n + z^2), half-width
    # z sqrt(x (n - x) / n + z^2 / 4) / (n + z^2); at n = 0 the half-width is 0/0 = NaN.
    with np.errstate(invalid="ignore", divide="ignore"):
        d = n_ + z2
        centre = x + z2 / 2
        centre /= d
        half = n_ - x
        half *= x
        half /= n_
        half += z2 / 4
        np.sqrt(half, out=half)
        half *= z
        half /= d
        low = centre - half
        np.maximum(low, 0.0, out=low)
        centre += half
        np.minimum(centre, 1.0, out=centre)
    return low.reshape(shape), centre.reshape(shape)


def enps(
    promoters: npt.ArrayLike, passives: npt.ArrayLike, detractors: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """eNPS-style score and its interval from category counts.

    score = 100 (pP - pD); the per-respondent variance of the +1/0/-1 score is
    ``V = pP + pD - (pP - pD)^2`` (promoter and detractor shares come from one multinomial, so they are
    not independent), se = 100 sqrt(V / n), interval score -+ z se, clipped to [-100, 100]. NaN at n = 0.

    >>> score, low, high = enps(50, 30, 20)
    >>> round(float(score), 2), round(float(low), 2), round(float(high), 2)
    (30.0, 14.69, 45.31)
    """
    z = _z(confidence)
    shape, (p_, passive, d_) = _arrays(promoters, passives, detractors)
    n_ = p_ + passive + d_
    with np.errstate(invalid="ignore", divide="ignore"):
        pp, pd = p_ / n_, d_ / n_
        diff = pp - pd
        variance = pp
        variance += pd
        variance -= diff * diff
        variance /= n_
        se = np.sqrt(variance, out=variance)
        se *= 100 * z
        score = np.multiply(diff, 100, out=diff)
        low = np.maximum(score - se, -100.0)
        se += score
        high = np.minimum(se, 100.0, out=se)
    return score.reshape(shape), low.reshape(shape), high.reshape(shape)


def enps_difference(
    score1: npt.ArrayLike,
    variance1: npt.ArrayLike,
    n1: npt.ArrayLike,
    score2: npt.ArrayLike,
    variance2: npt.ArrayLike,
    n2: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """z test of an eNPS change: difference, z = d / (100 sqrt(V1/n1 + V2/n2)), two-sided p.

    ``variance`` is the per-respondent V = pP + pD - (pP - pD)^2 of each wave (on the +1/0/-1 scale).
    """
    s1, s2 = np.asarray(score1, dtype=np.float64), np.asarray(score2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = 100 * np.sqrt(np.asarray(variance1) / np.asarray(n1) + np.asarray(variance2) / np.asarray(n2))
        d = s1 - s2
        z = d / se
    return d, z, 2 * sps.norm.sf(np.abs(z))


@dataclass(frozen=True, eq=False)
class Welch:
    """Welch's unequal-variance t test, element-wise: statistic t, Welch-Satterthwaite df, two-sided p."""

    statistic: FloatArray
    df: FloatArray
    pvalue: FloatArray


def welch(
    mean1: npt.ArrayLike,
    var1: npt.ArrayLike,
    n1: npt.ArrayLike,
    mean2: npt.ArrayLike,
    var2: npt.ArrayLike,
    n2: npt.ArrayLike,
) -> Welch:
    """Welch's t test from summary figures (what ``scipy.stats.ttest_ind(equal_var=False)`` does on raw data).

    t = (m1 - m2) / sqrt(v1/n1 + v2/n2); df = (v1/n1 + v2/n2)^2 / ((v1/n1)^2/(n1-1) + (v2/n2)^2/(n2-1))
    (Welch 1947). NaN when a group has fewer than 2 values or both variances are 0.
    """
    m1, v1, k1 = (np.asarray(a, dtype=np.float64) for a in (mean1, var1, n1))
    m2, v2, k2 = (np.asarray(a, dtype=np.float64) for a in (mean2, var2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        a1, a2 = v1 / k1, v2 / k2
        se2 = a1 + a2
        t = (m1 - m2) / np.sqrt(se2)
        df = se2**2 / (a1**2 / (k1 - 1) + a2**2 / (k2 - 1))
        ok = (k1 > 1) & (k2 > 1) & (se2 > 0)
        t = np.where(ok, t, np.nan)
        df = np.where(ok, df, np.nan)
        p = np.where(ok, 2 * sps.t.sf(np.abs(t), df), np.nan)
    return Welch(t, df, p)


def benjamini_hochberg(p: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (Benjamini and Hochberg 1995); NaN entries are left out.

    adjusted p_(i) = min over j >= i of m p_(j) / j, capped at 1, for the m finite p-values sorted
    ascending. A hypothesis is rejected at false discovery rate q when its adjusted p <= q.
    """
    p_ = np.asarray(p, dtype=np.float64)
    out = np.full(p_.shape, np.nan)
    flat = p_.ravel()
    ok = np.flatnonzero(~np.isnan(flat))
    if ok.size == 0:
        return out
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = ok[np.argsort(flat[ok], kind="stable")]
    m = order.size
    scaled = flat[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    res = out.ravel()
    res[order] = adjusted
    return res.reshape(p_.shape)


@dataclass(frozen=True, eq=False)
class OneWay:
    """One-way ANOVA of scores grouped into teams: mean squares between and within, n0, grand mean.

    n0 = (N - sum n_j^2 / N) / (J - 1) is the average team size corrected for unequal sizes.
    ``icc1`` = (MSB - MSW) / (MSB + (n0 - 1) MSW), ICC(1) (Bliese 2000).
    """

    groups: int
    n: int
    grand_mean: float
    msb: float
    msw: float
    n0: float

    @property
    def icc1(self) -> float:
        denominator = self.msb + (self.n0 - 1) * self.msw
        if self.groups < 2 or self.n <= self.groups or denominator == 0:
            return float("nan")
        return (self.msb - self.msw) / denominator

    @property
    def tau2(self) -> float:
        """Between-team variance of true means, max(0, (MSB - MSW) / n0)."""
        if self.groups < 2 or self.n <= self.groups:
            return float("nan")
        return max(0.0, (self.msb - self.msw) / self.n0)


def oneway(n: npt.ArrayLike, total: npt.ArrayLike, squares: npt.ArrayLike) -> OneWay:
    """One-way ANOVA from per-group counts, sums and sums of squares (groups with n = 0 are ignored)."""
    n_ = np.asarray(n, dtype=np.float64)
    s = np.asarray(total, dtype=np.float64)
    ss = np.asarray(squares, dtype=np.float64)
    keep = n_ > 0
    n_, s, ss = n_[keep], s[keep], ss[keep]
    groups, big_n = int(n_.size), float(n_.sum())
    if groups == 0:
        return OneWay(0, 0, float("nan"), float("nan"), float("nan"), float("nan"))
    grand = float(s.sum() / big_n)
    means = s / n_
    ssb = float((n_ * (means - grand) ** 2).sum())
    ssw = float((ss - s * means).sum())
    msb = ssb / (groups - 1) if groups > 1 else float("nan")
    msw = max(ssw, 0.0) / (big_n - groups) if big_n > groups else float("nan")
    n0 = (big_n - float((n_**2).sum()) / big_n) / (groups - 1) if groups > 1 else float("nan")
    return OneWay(groups, int(big_n), grand, msb, msw, n0)


@dataclass(frozen=True, eq=False)
class Shrinkage:
    """Units' means shrunk toward the organisation and a one-sided test of being below it.

    weight = tau^2 / (tau^2 + sigma^2 / n_j); shrunk = mu + weight (mean_j - mu). The shrunk mean is the
    empirical-Bayes posterior mean of the unit's true mean, with posterior variance weight sigma^2 / n_j;
    z = (shrunk - mu) / sqrt(weight sigma^2 / n_j) = sqrt(weight) (mean_j - mu) / (sigma / sqrt(n_j)), and
    p = Phi(z) is the posterior probability that the unit is not below the organisation. A small unit gets a
    small weight, so its z is pulled toward 0: a team of 5 is not flagged on noise. With tau^2 = 0 (teams
    don't differ) nothing is below the organisation (p = 0.5).
    """

    weight: FloatArray
    shrunk: FloatArray
    z: FloatArray
    pvalue: FloatArray


def shrink_below(
    mean: npt.ArrayLike, n: npt.ArrayLike, mu: npt.ArrayLike, tau2: npt.ArrayLike, sigma2: npt.ArrayLike
) -> Shrinkage:
    """Shrink unit means toward ``mu`` (see ``Shrinkage``); all arguments broadcast (one organisation per
    unit allowed). NaN where n = 0 or a variance is undefined.

    >>> s = shrink_below([3.0, 3.0], [5, 500], mu=3.5, tau2=0.1, sigma2=1.0)
    >>> [round(float(x), 3) for x in s.shrunk], [round(float(p), 4) for p in s.pvalue]
    ([3.333, 3.01], [0.2593, 0.0])
    """
    m, n_, mu_, t2, s2 = (np.asarray(a, dtype=np.float64) for a in (mean, n, mu, tau2, sigma2))
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = s2 / n_
        weight = np.where(t2 > 0, t2 / (t2 + noise), 0.0)
        weight = np.where((n_ > 0) & np.isfinite(noise) & np.isfinite(t2), weight, np.nan)
        shrunk = mu_ + weight * (m - mu_)
        z = np.where(weight > 0, (shrunk - mu_) / np.sqrt(weight * noise), 0.0)
        z = np.where(np.isnan(weight) | np.isnan(m) | np.isnan(mu_), np.nan, z)
    return Shrinkage(weight, shrunk, z, sps.norm.cdf(z))
