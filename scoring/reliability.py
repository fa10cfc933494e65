"""Does an instrument work here: Cronbach's alpha with its Feldt interval, rwg(J) agreement within teams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

__all__ = ["CronbachAlpha", "cronbach_alpha", "rwg_j"]

NanPolicy = Literal["listwise", "pairwise"]


@dataclass(frozen=True)
class CronbachAlpha:
    """alpha with its (1 - a) interval; ``n`` respondents and ``k`` items used. NaN when undefined."""

    alpha: float
    ci_low: float
    ci_high: float
    n: int
    k: int


def _pairwise_covariance(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Sample covariance of every pair of columns over the rows where both are present (ddof 1)."""
    present = ~np.isnan(x)
    m = present.astype(np.float64)
    x0 = np.where(present, x, 0.0)
    n = m.T @ m  # n[i, j]: rows with both i and j
    cross = x0.T @ x0  # sum of x_i x_j over those rows
    sum_i = x0.T @ m  # sum_i[i, j]: sum of x_i over rows where j is present too
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cross - sum_i * sum_i.T / n) / (n - 1)


def cronbach_alpha(items: npt.ArrayLike, nan_policy: NanPolicy = "listwise", confidence: float = 0.95) -> CronbachAlpha:
    """Cronbach's alpha of a set of items (Cronbach 1951) and its Feldt interval (Feldt 1965).

    Parameters
    ----------
    items : (n_respondents, k) scores, NaN where unanswered; reverse-scored items already recoded.
    nan_policy : ``"listwise"`` uses only respondents who answered every item; ``"pairwise"`` takes each
        item covariance over the respondents who answered both items (and n = all respondents with an answer).
    confidence : of the interval.

    Returns
    -------
    alpha = k / (k - 1) * (1 - sum of item variances / variance of the total), from the item covariance
    matrix C as k / (k - 1) * (1 - trace C / sum C). Interval: with F quantiles of (n - 1, (n - 1)(k - 1))
    degrees of freedom, [1 - (1 - alpha) F(1 - a/2), 1 - (1 - alpha) F(a/2)].
    """
    x = np.asarray(items, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("items must be (n_respondents, k)")
    if nan_policy not in ("listwise", "pairwise"):
        raise ValueError("nan_policy must be 'listwise' or 'pairwise'")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    gaps = np.isnan(x)
    x = x[~gaps.any(axis=1)] if nan_policy == "listwise" else x[~gaps.all(axis=1)]
    n, k = x.shape
    nan = float("nan")
    if k < 2 or n < 2:
        return CronbachAlpha(nan, nan, nan, n, k)
    cov = np.cov(x, rowvar=False) if nan_policy == "listwise" else _pairwise_covariance(x)
    total = float(cov.sum())
    if not np.isfinite(total) or total <= 0:
        return CronbachAlpha(nan, nan, nan, n, k)
    alpha = k / (k - 1) * (1 - float(np.trace(cov)) / total)
    a = 1 - confidence
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - alpha) * float(sps.f.isf(a / 2, df1, df2))
    high = 1 - (1 - alpha) * float(sps.f.isf(1 - a / 2, df1, df2))
    return CronbachAlpha(alpha, low, high, n, k)


def rwg_j(
    items: npt.ArrayLike, team: npt.ArrayLike, points: int, min_size: int = 2
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Within-team agreement rwg(J) of a J-item scale (James, Demaree and Wolf 1984), for every team at once.

    rwg(J) = J (1 - s^2 / e) / (J (1 - s^2 / e) + s^2 / e), with s^2 the mean of the J item variances within
    the team and e = (A^2 - 1) / 12 the variance of a uniform answer on A ``points`` (no agreement). When
    s^2 > e the team agrees less than chance and rwg(J) is set to 0 (the usual truncation).

    Parameters
    ----------
    items : (n_respondents, J); only respondents who answered every item are used.
    team : (n_respondents,) team index (>= 0).
    min_size : teams with fewer complete respondents get NaN.

    Returns
    -------
    rwg : (n_teams,) with n_teams = team.max() + 1, NaN for teams too small.
    size : (n_teams,) complete respondents per team.
    """
    x = np.asarray(items, dtype=np.float64)
    t = np.asarray(team, dtype=np.int64)
    if x.ndim != 2 or t.shape != (x.shape[0],):
        raise ValueError("items must be (n_respondents, J) and team (n_respondents,)")
    if points < 2 or min_size < 2:
        raise ValueError("points and min_size must be at least 2")
    complete = ~np.isnan(x).any(axis=1)
    x, t = x[complete], t[complete]
    n_teams = int(np.asarray(team).max()) + 1 if np.asarray(team).size else 0
    j = x.shape[1]
    size = np.bincount(t, minlength=n_teams).astype(np.int64)
    flat = t[:, None] * j + np.arange(j)
    total = np.bincount(flat.ravel(), weights=x.ravel(), minlength=n_teams * j).reshape(n_teams, j)
    squares = np.bincount(flat.ravel(), weights=(x * x).ravel(), minlength=n_teams * j).reshape(n_teams, j)
    e = (points**2 - 1) / 12
    with np.errstate(invalid="ignore", divide="ignore"):
        n = size[:, None].astype(np.float64)
        var = np.maximum(squares - total * total / n, 0.0) / (n - 1)
        ratio = var.mean(axis=1) / e
        agreement = j * (1 - ratio)
        rwg = np.where(ratio >= 1, 0.0, agreement / (agreement + ratio))
    return np.where(size >= min_size, rwg, np.nan), size
