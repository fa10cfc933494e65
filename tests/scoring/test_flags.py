"""scoring.flags: each rule fires on the numbers it should, only on published cells, with its evidence."""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose
from scipy import stats as sps

from scoring import build_table
from scoring.flags import (
    OrgBaseline,
    UnitFigures,
    barrier_flags,
    below_flags,
    below_org_flags,
    decline_flags,
    participation_flags,
)
from scoring.spec import (
    Attribute,
    BarrierRule,
    ConstructSpec,
    FlagRules,
    InstrumentSpec,
    ItemSpec,
    Label,
    OrgTree,
    WaveData,
)
from scoring.tables import Change, ParticipationCell

SAFETY = ConstructSpec("safety", "likert5", ("q",), flags=FlagRules(below=3.0, alpha=0.05))
ENPS = ConstructSpec("enps", "nps", ("n",), favourable_min=9, flags=FlagRules(below=-20))


def figures(
    mean: list[list[float]], n: list[list[int]], ci_high: list[list[float]], published: list[bool]
) -> UnitFigures:
    units = len(mean)
    return UnitFigures(
        keys=tuple(f"u{i}" for i in range(units)),
        root=np.zeros(units, dtype=np.int64),
        published=np.array(published),
        n=np.array(n),
        mean=np.array(mean, dtype=float),
        ci_high=np.array(ci_high, dtype=float),
    )


def test_below_threshold_on_published_units_with_severity() -> None:
    f = figures(
        mean=[[3.5, 10.0], [2.5, -30.0], [2.9, -25.0], [2.0, 0.0]],
        n=[[40, 40], [8, 8], [30, 30], [6, 6]],
        ci_high=[[3.7, 20.0], [2.9, -5.0], [3.2, -21.0], [2.5, 9.0]],
        published=[True, True, True, False],
    )
    flags = below_flags([SAFETY, ENPS], f)
    fired = {(x.unit, x.construct): x for x in flags}
    assert set(fired) == {("u1", "safety"), ("u2", "safety"), ("u1", "enps"), ("u2", "enps")}  # u3 is hidden
    assert fired[("u1", "safety")].severity == "high"  # whole interval below 3
    assert fired[("u2", "safety")].severity == "medium"
    assert fired[("u2", "enps")].severity == "high"  # -21 < -20
    assert fired[("u1", "enps")].severity == "medium"
    assert fired[("u1", "safety")].evidence == {"mean": 2.5, "ci_high": 2.9, "threshold": 3.0, "n": 8}
    assert fired[("u1", "enps")].evidence["eNPS"] == -30.0
    assert "onder de drempel" in fired[("u1", "safety")].message_nl
    assert "below the threshold" in fired[("u1", "safety")].message_en


def test_below_org_shrinks_small_units_and_corrects_for_many() -> None:
    # Organisation mean 3.5, tau^2 = .05, sigma^2 = 1. Unit 1: 200 people at 3.2 (w = .909, z = -4.07);
    # unit 2: 5 people at 2.6, the same raw z as unit 1 would need a weight it lacks (w = .2): z = -0.9;
    # unit 3: 200 people at 3.9 (above); unit 4: hidden.
    f = figures(
        mean=[[3.5], [3.2], [2.6], [3.9], [2.0]],
        n=[[1000], [200], [5], [200], [300]],
        ci_high=[[3.6], [3.3], [3.5], [4.0], [2.1]],
        published=[True, True, True, True, False],
    )
    org = OrgBaseline(mu=np.array([[3.5]] + [[np.nan]] * 4), tau2=np.array([[0.05]] + [[np.nan]] * 4),
                      sigma2=np.array([[1.0]] + [[np.nan]] * 4))  # fmt: skip
    flags = below_org_flags([SAFETY], f, org)
    assert [x.unit for x in flags] == ["u1"]
    evidence = flags[0].evidence
    w = 0.05 / (0.05 + 1 / 200)
    z = (w * (3.2 - 3.5)) / np.sqrt(w * 1 / 200)
    assert_allclose(evidence["weight"], round(w, 3))
    assert_allclose(evidence["shrunk_mean"], round(3.5 + w * (3.2 - 3.5), 3))
    p = sps.norm.cdf(z)
    assert_allclose(evidence["p"], round(p, 6))
    # BH over the three eligible published units (the root is the organisation itself and is not tested).
    w2, w3 = 0.05 / (0.05 + 1 / 5), w
    p2 = sps.norm.cdf(w2 * (2.6 - 3.5) / np.sqrt(w2 / 5))
    p3 = sps.norm.cdf(w3 * (3.9 - 3.5) / np.sqrt(w3 / 200))
    assert_allclose(evidence["q"], round(float(sps.false_discovery_control([p, p2, p3])[0]), 6))
    assert flags[0].severity == "high"


def test_decline_uses_published_significant_falls() -> None:
    def change(unit: str, difference: float, significant: bool, suppressed: bool = False) -> Change:
        return Change(unit, "safety", suppressed, None, "welch", 30, 3.0, 30, 3.0 - difference, difference,
                      -3.0, 50.0, 0.001, 0.01, significant)  # fmt: skip

    changes = [change("a", -0.6, True), change("b", -0.2, True), change("c", 0.5, True), change("d", -0.9, False)]
    changes.append(Change("e", "safety", True, "suppressed", "welch"))
    flags = decline_flags([SAFETY], changes, {"safety": 1.0})
    assert [(x.unit, x.severity) for x in flags] == [("a", "high"), ("b", "medium")]
    assert flags[0].evidence["difference"] == -0.6


def test_barrier_ignores_non_barrier_options_and_hidden_units() -> None:
    instrument = InstrumentSpec(
        "t",
        1,
        (ItemSpec("q", "likert5", "mobility"), ItemSpec("why", "multi", None, ("manager", "vacancies", "none"))),
        (ConstructSpec("mobility", "likert5", ("q",), flags=FlagRules(barrier=BarrierRule("why", 0.4, ("none",)))),),
    )
    answered = {"why": np.array([100, 10, 20])}
    chosen = {"why": np.array([[60, 10, 90], [5, 1, 9], [20, 2, 2]])}
    flags = barrier_flags(instrument, ("a", "b", "c"), np.array([True, True, False]), answered, chosen)
    assert [(x.unit, x.evidence["option"], x.severity) for x in flags] == [
        ("a", "manager", "high"),
        ("b", "manager", "medium"),
    ]
    assert flags[0].evidence["share"] == 0.6 and flags[0].evidence["chosen"] == 60


def test_participation_flags_only_published_rates() -> None:
    cells = [
        ParticipationCell("a", False, None, 100, 30, 0.3),
        ParticipationCell("b", False, None, 100, 20, 0.2),
        ParticipationCell("c", False, None, 100, 80, 0.8),
        ParticipationCell("d", True, "primary"),
    ]
    flags = participation_flags(cells, 0.5)
    assert [(x.unit, x.severity, x.construct) for x in flags] == [("a", "medium", None), ("b", "high", None)]
    assert participation_flags(cells, None) == []


def test_flags_in_a_built_table_name_only_published_units() -> None:
    rng = np.random.default_rng(8)
    parent = np.array([-1, 0, 0, 1, 1, 2, 2])
    n = 350
    unit = rng.choice(np.arange(3, 7), n)
    low = unit == 3  # one clearly unsafe team
    answers = np.column_stack([np.clip(np.rint(rng.normal(np.where(low, 2.0, 4.0), 0.8)), 1, 5), np.full(n, np.nan)])
    chosen = np.zeros((n, 3), dtype=bool)
    chosen[:, 0] = rng.random(n) < np.where(unit == 4, 0.8, 0.1)
    instrument = InstrumentSpec(
        "t",
        1,
        (ItemSpec("q", "likert5", "safety"), ItemSpec("why", "multi", None, ("manager", "vacancies", "none"))),
        (ConstructSpec("safety", "likert5", ("q",), flags=FlagRules(below=3.0, barrier=BarrierRule("why", 0.5))),),
        low_participation=0.5,
    )
    data = WaveData(
        wave_id=3,
        instrument=instrument,
        tree=OrgTree(("org", "a", "b", "a1", "a2", "b1", "b2"), parent),
        min_group_size=5,
        unit=unit,
        attributes=(Attribute("site", ("x", "y"), rng.integers(0, 2, n)),),
        answers=answers,
        multi={"why": chosen},
        multi_answered={"why": np.ones(n, dtype=bool)},
        comments={},
        invited=np.bincount(unit, minlength=7) * np.array([1, 1, 1, 3, 1, 1, 1]),
        invited_attributes={},
    )
    table = build_table(data)
    published = {c.unit for c in table.cells if c.attribute is None and not c.suppressed}
    fired = {(f.unit, f.rule) for f in table.flags}
    assert ("a1", "below") in fired and ("a1", "below_org") in fired
    assert ("a2", "barrier") in fired
    assert ("a1", "participation") in fired  # a third of a1's invitations answered
    assert {f.unit for f in table.flags} <= published
    assert not any(f.unit == "b1" and f.rule in ("below", "below_org") for f in table.flags)


def test_messages_name_constructs_and_write_numbers_in_the_readers_language() -> None:
    safety = ConstructSpec(
        "psych_safety",
        "likert7",
        ("q",),
        flags=FlagRules(below=4.0, barrier=BarrierRule("why", 0.4, ("none",))),
        label=Label("Psychologische veiligheid", "Psychological safety"),
    )
    f = figures(mean=[[2.46]], n=[[14]], ci_high=[[3.1]], published=[True])
    (below,) = below_flags([safety], f)
    assert below.message_nl == "Psychologische veiligheid: gemiddeld 2,5, onder de drempel van 4,0 (n = 14)"
    assert below.message_en == "Psychological safety: mean 2.5, below the threshold of 4.0 (n = 14)"

    fall = Change("u0", "psych_safety", False, None, "welch", 30, 3.25, 28, 4.5, -1.25, -4.0, 50.0, 0.001, 0.002, True)
    (decline,) = decline_flags([safety], [fall], {"psych_safety": 1.0})
    assert decline.message_nl.startswith("Psychologische veiligheid: gedaald van 4,50 naar 3,25 sinds de vorige")
    assert decline.message_en.startswith("Psychological safety: fell from 4.50 to 3.25 since the previous wave")

    instrument = InstrumentSpec(
        "t",
        1,
        (
            ItemSpec("q", "likert7", "psych_safety"),
            ItemSpec(
                "why",
                "multi",
                None,
                ("manager", "none"),
                (Label("Mijn leidinggevende", "My manager"), Label("Niets", "Nothing")),
            ),
        ),
        (safety,),
    )
    (barrier,) = barrier_flags(
        instrument, ("a",), np.array([True]), {"why": np.array([20])}, {"why": np.array([[9, 11]])}
    )
    assert barrier.message_nl == (
        "Psychologische veiligheid: 45% noemt ‘Mijn leidinggevende’ als belemmering, de drempel is 40% (n = 20)"
    )
    assert barrier.message_en.startswith("Psychological safety: 45% name ‘My manager’ as a barrier")

    (low,) = participation_flags([ParticipationCell("a", False, None, 40, 12, 0.3)], 0.5)
    assert low.message_nl == "Lage respons: 30%, onder de drempel van 50% (12 van 40)"
    assert low.message_en == "Low participation: 30%, below the threshold of 50% (12 of 40)"


def test_messages_without_labels_fall_back_to_ids() -> None:
    f = figures(mean=[[2.0, -35.0]], n=[[9, 9]], ci_high=[[2.5, -10.0]], published=[True])
    messages = {x.construct: x.message_en for x in below_flags([SAFETY, ENPS], f)}
    assert messages == {
        "safety": "safety: mean 2.0, below the threshold of 3.0 (n = 9)",
        "enps": "enps: eNPS -35.0, below the threshold of -20.0 (n = 9)",
    }
