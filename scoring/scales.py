"""Respondent scores: reverse-scoring, construct scores under the minimum-answered rule, eNPS categories."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.spec import SCALE_BOUNDS, ConstructSpec, InstrumentSpec

__all__ = ["Scores", "construct_scores", "enps_category", "reverse", "score_construct"]

FloatArray = npt.NDArray[np.float64]


def reverse(x: npt.ArrayLike, low: float, high: float) -> FloatArray:
    """Reverse-score answers on the scale ``low..high``: ``low + high - x`` (NaN stays NaN).

    >>> reverse([1, 2, 5], 1, 5).tolist()
    [5.0, 4.0, 1.0]
    """
    return low + high - np.asarray(x, dtype=np.float64)


def score_construct(
    items: npt.ArrayLike, reversed_columns: npt.ArrayLike, low: float, high: float, min_answered: int
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Respondent scores of one construct.

    Parameters
    ----------
    items : (n_respondents, n_items) answers on ``low..high``, NaN where unanswered.
    reversed_columns : (n_items,) bool, True for reverse-scored items (recoded as ``low + high - x``).
    min_answered : a score counts only when at least this many items were answered.

    Returns
    -------
    score : (n_respondents,) mean of the answered (recoded) items; NaN when fewer than ``min_answered``.
    answered : (n_respondents,) number of items answered.
    """
    x = np.asarray(items, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("items must be (n_respondents, n_items)")
    rev = np.asarray(reversed_columns, dtype=np.bool_)
    if rev.shape != (x.shape[1],):
        raise ValueError("reversed_columns must have one entry per item")
    if min_answered < 1:
        raise ValueError("min_answered must be at least 1")
    x = np.where(rev, low + high - x, x)
    given = ~np.isnan(x)
    answered = given.sum(axis=1)
    total = np.where(given, x, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(answered >= min_answered, total / answered, np.nan)
    return score, answered.astype(np.int64)


def enps_category(score: npt.ArrayLike) -> FloatArray:
    """+1 promoter (score >= 9), -1 detractor (score <= 6), 0 passive (in between), NaN without a score.

    For a one-item construct these are the usual 9-10 / 0-6 / 7-8; a mean of several 0-10 items is
    categorised by the same cut points.
    """
    s = np.asarray(score, dtype=np.float64)
    out = np.where(s >= 9, 1.0, np.where(s <= 6, -1.0, 0.0))
    return np.where(np.isnan(s), np.nan, out)


@dataclass(frozen=True, eq=False)
class Scores:
    """Every respondent's construct scores for one wave.

    score:       (n_respondents, n_constructs) construct score, NaN when not counted.
    counted:     (n_respondents, n_constructs) bool, the score counts (enough items answered).
    favourable:  (n_respondents, n_constructs) bool, counted and score >= the construct's ``favourable_min``.
    enps:        (n_respondents,) eNPS category of the first ``nps`` construct (+1/0/-1, NaN), or None.
    enps_construct: index of that construct, or None.
    """

    constructs: tuple[ConstructSpec, ...]
    score: FloatArray
    counted: npt.NDArray[np.bool_]
    favourable: npt.NDArray[np.bool_]
    enps: FloatArray | None
    enps_construct: int | None


def construct_scores(instrument: InstrumentSpec, answers: npt.ArrayLike) -> Scores:
    """Score every construct of ``instrument`` for every respondent.

    ``answers`` is (n_respondents, n_items) with columns in the order of ``instrument.items``.
    The favourable rule: a respondent is favourable on a construct when their construct score is at least
    ``favourable_min`` (top-two-box: >= 4 on five points, >= 5 on seven; 9-10 for eNPS), so a respondent
    with answers 4, 4, 3 (mean 3.67) is not favourable and one with 5, 4, 3 (mean 4) is.
    """
    x = np.asarray(answers, dtype=np.float64)
    column = {item.id: j for j, item in enumerate(instrument.items)}
    if x.ndim != 2 or x.shape[1] != len(column):
        raise ValueError(f"answers must be (n_respondents, {len(column)})")
    c = len(instrument.constructs)
    # All constructs at once: flip reverse columns, then per-construct sums and counts through one
    # (items x constructs) membership matrix.
    low = np.zeros(x.shape[1])
    high = np.zeros(x.shape[1])
    flip = np.zeros(x.shape[1], dtype=np.bool_)
    member = np.zeros((x.shape[1], c))
    minimum = np.empty(c)
    enps_construct: int | None = None
    for j, construct in enumerate(instrument.constructs):
        missing = [i for i in construct.items if i not in column]
        if missing:
            raise ValueError(f"construct {construct.id}: unknown items {missing}")
        if construct.min_answered < 1:
            raise ValueError(f"construct {construct.id}: min_answered must be at least 1")
        cols = [column[i] for i in construct.items]
        if member[cols].any():
            raise ValueError(f"construct {construct.id}: an item belongs to two constructs")
        low[cols], high[cols] = SCALE_BOUNDS[construct.scale]
        flip[[column[i] for i in construct.reverse if i in column]] = True
        member[cols, j] = 1.0
        minimum[j] = construct.min_answered
        if construct.scale == "nps" and enps_construct is None:
            enps_construct = j
    given = ~np.isnan(x)
    filled = np.where(given, x, 0.0)
    if flip.any():
        flipped = np.flatnonzero(flip)
        filled[:, flipped] = np.where(given[:, flipped], (low + high)[flipped] - filled[:, flipped], 0.0)
    answered = given.astype(np.float32) @ member.astype(np.float32)  # whole counts: exact in float32
    total = filled @ member
    with np.errstate(invalid="ignore", divide="ignore"):
        score = total / answered
    score[answered < minimum] = np.nan
    counted = ~np.isnan(score)
    minimum = np.array([con.favourable_min for con in instrument.constructs], dtype=np.float64)
    favourable = counted & (score >= minimum)  # NaN compares False
    enps = None if enps_construct is None else enps_category(score[:, enps_construct])
    return Scores(instrument.constructs, score, counted, favourable, enps, enps_construct)
