"""Flags of units that need attention: the rules each construct declares, applied to published unit totals.

Every rule sees only units whose total cell is published (participation: whose participation is published),
so a flag never says more than the table does. Each flag carries the rule, a severity, the evidence (the
numbers that fired it) and a message in Dutch and English.

Rules and severities (``high`` when the evidence is unambiguous, else ``medium``):

- ``below``: the unit's mean is below the construct's threshold (for an ``nps`` construct: its eNPS,
  -100..100). High when the whole 95 % interval lies below the threshold.
- ``below_org``: the unit's mean, shrunk toward its organisation (``stats.shrink_below``), is significantly
  below the organisation: one-sided p of the shrunk difference, Benjamini-Hochberg over the construct's
  published units, flagged when q <= the construct's alpha and the shrunk mean is below. High when
  q <= alpha / 5.
- ``decline``: a significant fall since the previous wave (the change table, BH-corrected). High when the
  fall is at least half a standard deviation of respondent scores (for eNPS: 20 points).
- ``barrier``: an option of the barrier item (not in ``ignore``) chosen by at least ``share`` of those who
  answered it. High when the Wilson lower bound of the share reaches ``share``.
- ``participation``: response rate below the instrument's ``low_participation``. High below half of it.

Messages name the construct (and a barrier's option) as the instrument does in each language and write numbers
as that language does: ``Psychologische veiligheid: gemiddeld 2,5, onder de drempel van 4,0 (n = 14)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from scoring import stats
from scoring.spec import ConstructSpec, InstrumentSpec, Label
from scoring.tables import Change, Flag, ParticipationCell

__all__ = [
    "OrgBaseline",
    "UnitFigures",
    "barrier_flags",
    "below_flags",
    "below_org_flags",
    "decline_flags",
    "participation_flags",
]

FloatArray = npt.NDArray[np.float64]
Lang = Literal["nl", "en"]


def _r(x: float, digits: int = 3) -> float | None:
    return None if not np.isfinite(x) else round(float(x), digits)


# One sentence per rule and language; {placeholders} are filled by ``_say`` in the language of the sentence.
_MESSAGES: dict[str, dict[Lang, str]] = {
    "below": {
        "nl": "{name}: gemiddeld {value}, onder de drempel van {threshold} (n = {n})",
        "en": "{name}: mean {value}, below the threshold of {threshold} (n = {n})",
    },
    "below_enps": {
        "nl": "{name}: eNPS {value}, onder de drempel van {threshold} (n = {n})",
        "en": "{name}: eNPS {value}, below the threshold of {threshold} (n = {n})",
    },
    "below_org": {
        "nl": "{name}: gemiddeld {value}, duidelijk onder de organisatie ({organisation}), ook na correctie voor "
        "de groepsgrootte (n = {n})",
        "en": "{name}: mean {value}, clearly below the organisation ({organisation}), even after allowing for the "
        "unit's size (n = {n})",
    },
    "decline": {
        "nl": "{name}: gedaald van {previous} naar {value} sinds de vorige meting, een significante daling (n = {n})",
        "en": "{name}: fell from {previous} to {value} since the previous wave, a significant decline (n = {n})",
    },
    "barrier": {
        "nl": "{name}: {share} noemt ‘{option}’ als belemmering, de drempel is {threshold} (n = {n})",
        "en": "{name}: {share} name ‘{option}’ as a barrier, the threshold is {threshold} (n = {n})",
    },
    "participation": {
        "nl": "Lage respons: {rate}, onder de drempel van {threshold} ({responded} van {invited})",
        "en": "Low participation: {rate}, below the threshold of {threshold} ({responded} of {invited})",
    },
}


@dataclass(frozen=True)
class _Number:
    """A number to write with ``digits`` decimals (a share as a whole percentage when ``percent``)."""

    value: float | None
    digits: int = 1
    percent: bool = False

    def text(self, lang: Lang) -> str:
        if self.value is None or not np.isfinite(self.value):
            return "?"
        if self.percent:
            return f"{round(100 * self.value)}%"
        written = f"{self.value:.{self.digits}f}"
        return written.replace(".", ",") if lang == "nl" else written


def _say(rule: str, **values: _Number | Label | str | int) -> tuple[str, str]:
    """The rule's message in Dutch and in English, each number and name written in the sentence's language."""

    def text(value: _Number | Label | str | int, lang: Lang) -> str:
        if isinstance(value, _Number):
            return value.text(lang)
        if isinstance(value, Label):
            return value.nl if lang == "nl" else value.en
        return str(value)

    nl, en = (_MESSAGES[rule][lang].format(**{k: text(v, lang) for k, v in values.items()}) for lang in ("nl", "en"))
    return nl, en


def _name(construct: ConstructSpec) -> Label | str:
    return construct.label if construct.label is not None else construct.id


@dataclass(frozen=True, eq=False)
class UnitFigures:
    """Published unit totals, one row per unit (U), one column per construct (C).

    For an ``nps`` construct ``mean``/``ci_high``/``sd`` are on the eNPS scale (-100..100): the mean of the
    respondents' +100/0/-100 scores.
    """

    keys: tuple[str, ...]
    root: npt.NDArray[np.int64]  # (U,) the unit's organisation (root unit index)
    published: npt.NDArray[np.bool_]  # (U,) the unit's total cell is published
    n: npt.NDArray[np.int64]  # (U, C)
    mean: FloatArray  # (U, C)
    ci_high: FloatArray  # (U, C)


@dataclass(frozen=True, eq=False)
class OrgBaseline:
    """Per organisation and construct: its mean and, from a one-way ANOVA over its teams, the variance of
    true team means ``tau2`` and of respondents within a team ``sigma2`` (MSW). Arrays are (U, C) indexed by
    the root unit; rows of other units are NaN."""

    mu: FloatArray
    tau2: FloatArray
    sigma2: FloatArray


def below_flags(constructs: Sequence[ConstructSpec], figures: UnitFigures) -> list[Flag]:
    """Rule ``below``: published units whose mean (eNPS for ``nps``) is under the construct's threshold."""
    flags: list[Flag] = []
    for j, construct in enumerate(constructs):
        threshold = construct.flags.below
        if threshold is None:
            continue
        mean = figures.mean[:, j]
        fire = figures.published & (figures.n[:, j] > 0) & (mean < threshold)
        for u in np.flatnonzero(fire):
            high = bool(figures.ci_high[u, j] < threshold)
            what = "eNPS" if construct.scale == "nps" else "mean"
            nl, en = _say(
                "below_enps" if construct.scale == "nps" else "below",
                name=_name(construct),
                value=_Number(float(mean[u])),
                threshold=_Number(float(threshold)),
                n=int(figures.n[u, j]),
            )
            flags.append(
                Flag(
                    unit=figures.keys[u],
                    construct=construct.id,
                    rule="below",
                    severity="high" if high else "medium",
                    evidence={
                        what: _r(mean[u]),
                        "ci_high": _r(figures.ci_high[u, j]),
                        "threshold": float(threshold),
                        "n": int(figures.n[u, j]),
                    },
                    message_nl=nl,
                    message_en=en,
                )
            )
    return flags


def below_org_flags(constructs: Sequence[ConstructSpec], figures: UnitFigures, org: OrgBaseline) -> list[Flag]:
    """Rule ``below_org``: shrunk means significantly below the organisation (BH over published units)."""
    flags: list[Flag] = []
    is_root = np.arange(figures.root.size) == figures.root
    for j, construct in enumerate(constructs):
        if not construct.flags.below_org:
            continue
        mu = org.mu[figures.root, j]
        tau2 = org.tau2[figures.root, j]
        sigma2 = org.sigma2[figures.root, j]
        eligible = figures.published & ~is_root & (figures.n[:, j] > 0) & np.isfinite(mu) & np.isfinite(sigma2)
        shrinkage = stats.shrink_below(figures.mean[:, j], figures.n[:, j], mu, tau2, sigma2)
        shrunk, weight = shrinkage.shrunk, shrinkage.weight
        p = np.where(eligible, shrinkage.pvalue, np.nan)
        q = stats.benjamini_hochberg(p)
        alpha = construct.flags.alpha
        fire = eligible & (q <= alpha) & (shrunk < mu)
        for u in np.flatnonzero(fire):
            high = bool(q[u] <= alpha / 5)
            nl, en = _say(
                "below_org",
                name=_name(construct),
                value=_Number(float(figures.mean[u, j]), 2),
                organisation=_Number(float(mu[u]), 2),
                n=int(figures.n[u, j]),
            )
            flags.append(
                Flag(
                    unit=figures.keys[u],
                    construct=construct.id,
                    rule="below_org",
                    severity="high" if high else "medium",
                    evidence={
                        "mean": _r(figures.mean[u, j]),
                        "shrunk_mean": _r(shrunk[u]),
                        "organisation_mean": _r(mu[u]),
                        "weight": _r(weight[u]),
                        "n": int(figures.n[u, j]),
                        "p": _r(p[u], 6),
                        "q": _r(q[u], 6),
                        "alpha": alpha,
                    },
                    message_nl=nl,
                    message_en=en,
                )
            )
    return flags


def decline_flags(constructs: Sequence[ConstructSpec], changes: Sequence[Change], sd: dict[str, float]) -> list[Flag]:
    """Rule ``decline``: published changes that are significant (BH) and negative.

    ``sd``: per construct, the organisation's standard deviation of respondent scores (for the severity).
    """
    by_id = {c.id: c for c in constructs}
    flags: list[Flag] = []
    for change in changes:
        construct = by_id.get(change.construct)
        if construct is None or not construct.flags.decline or change.suppressed:
            continue
        if not change.significant or change.difference is None or change.difference >= 0:
            continue
        if construct.scale == "nps":
            high = change.difference <= -20
        else:
            spread = sd.get(construct.id, float("nan"))
            high = bool(np.isfinite(spread) and spread > 0 and -change.difference >= 0.5 * spread)
        digits = 1 if construct.scale == "nps" else 2
        nl, en = _say(
            "decline",
            name=_name(construct),
            previous=_Number(change.previous_mean, digits),
            value=_Number(change.mean, digits),
            n="?" if change.n is None else change.n,
        )
        flags.append(
            Flag(
                unit=change.unit,
                construct=construct.id,
                rule="decline",
                severity="high" if high else "medium",
                evidence={
                    "mean": change.mean,
                    "previous_mean": change.previous_mean,
                    "difference": change.difference,
                    "p": change.p,
                    "q": change.p_adjusted,
                    "n": change.n,
                    "previous_n": change.previous_n,
                    "test": change.test,
                },
                message_nl=nl,
                message_en=en,
            )
        )
    return flags


def barrier_flags(
    instrument: InstrumentSpec,
    keys: tuple[str, ...],
    published: npt.NDArray[np.bool_],
    answered: dict[str, npt.NDArray[np.int64]],
    chosen: dict[str, npt.NDArray[np.int64]],
) -> list[Flag]:
    """Rule ``barrier``: an option chosen by at least ``share`` of a published unit's answerers.

    answered: multi item id -> (U,) respondents who answered it; chosen: item id -> (U, n_options) counts.
    """
    options = {item.id: item.options for item in instrument.items}
    labels = {item.id: item.option_labels for item in instrument.items}
    flags: list[Flag] = []
    for construct in instrument.constructs:
        rule = construct.flags.barrier
        if rule is None or rule.item not in chosen:
            continue
        n = answered[rule.item].astype(np.float64)
        counts = chosen[rule.item].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = counts / n[:, None]
        low, _ = stats.wilson_interval(counts, n[:, None])
        ignored = np.array([o in tuple(rule.ignore) for o in options[rule.item]], dtype=np.bool_)
        fire = published[:, None] & (n[:, None] > 0) & ~ignored & (share >= rule.share)
        for u, o in zip(*np.nonzero(fire), strict=True):
            option = options[rule.item][o]
            named = labels[rule.item]
            nl, en = _say(
                "barrier",
                name=_name(construct),
                share=_Number(float(share[u, o]), percent=True),
                option=named[o] if o < len(named) else option,
                threshold=_Number(rule.share, percent=True),
                n=int(n[u]),
            )
            flags.append(
                Flag(
                    unit=keys[u],
                    construct=construct.id,
                    rule="barrier",
                    severity="high" if low[u, o] >= rule.share else "medium",
                    evidence={
                        "item": rule.item,
                        "option": option,
                        "share": _r(share[u, o]),
                        "share_low": _r(low[u, o]),
                        "chosen": int(counts[u, o]),
                        "n": int(n[u]),
                        "threshold": rule.share,
                    },
                    message_nl=nl,
                    message_en=en,
                )
            )
    return flags


def participation_flags(cells: Sequence[ParticipationCell], threshold: float | None) -> list[Flag]:
    """Rule ``participation``: a published response rate under ``threshold``."""
    if threshold is None:
        return []
    flags: list[Flag] = []
    for cell in cells:
        if cell.suppressed or cell.rate is None or cell.rate >= threshold:
            continue
        nl, en = _say(
            "participation",
            rate=_Number(cell.rate, percent=True),
            threshold=_Number(threshold, percent=True),
            responded="?" if cell.responded is None else cell.responded,
            invited="?" if cell.invited is None else cell.invited,
        )
        flags.append(
            Flag(
                unit=cell.unit,
                construct=None,
                rule="participation",
                severity="high" if cell.rate < threshold / 2 else "medium",
                evidence={
                    "rate": _r(cell.rate),
                    "invited": cell.invited,
                    "responded": cell.responded,
                    "threshold": threshold,
                },
                message_nl=nl,
                message_en=en,
            )
        )
    return flags
