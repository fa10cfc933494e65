"""What a pilot's estimate means, said plainly in English and Dutch."""

from __future__ import annotations

from datetime import date

from scoring.effects import PilotEffect


def _amount(x: float, unit: str) -> str:
    """A difference in the measure's own unit: scale points, or percentage points for a rate."""
    return f"{100 * x:+.1f} pp" if unit == "rate" else f"{x:+.2f}"


def describe(found: PilotEffect, name: str, starts_on: date, useful: float | None, unit: str) -> tuple[str, str]:
    """(English, Dutch) sentences for the verdict, its reasons, and a diverging trend before the start."""
    reasons = set(found.reasons)
    effect = found.effect
    when = starts_on.isoformat()
    if "too_few_waves" in reasons:
        en = f"Can't tell yet: {name} needs at least one measurement before {when} and one after it."
        nl = f"Nog niet te zeggen: voor {name} is minstens één meting vóór {when} en één erna nodig."
    elif "groups_too_small" in reasons:
        en = f"Can't tell: a group the estimate of {name} rests on is hidden or too small in some measurement."
        nl = f"Niet te zeggen: een groep waarop de schatting voor {name} rust, is in een meting verborgen of te klein."
    elif "no_spread" in reasons:
        en = "Can't tell: the counts hold no spread of individual waits, so time to promotion has no interval."
        nl = "Niet te zeggen: de aantallen geven geen spreiding van wachttijden, dus geen interval voor promotietijd."
    elif effect is None:
        en, nl = f"Can't tell: no estimate for {name}.", f"Niet te zeggen: geen schatting voor {name}."
    else:
        size, low, high = (_amount(x, unit) for x in (effect.estimate, effect.ci_low, effect.ci_high))
        interval_en, interval_nl = f"(95 % interval {low} to {high})", f"(95%-interval {low} tot {high})"
        if found.verdict == "increase":
            en = f"{name} rose {size} more in the pilot than in the comparison group {interval_en}."
            nl = f"{name} steeg in de pilot {size} meer dan in de vergelijkingsgroep {interval_nl}."
        elif found.verdict == "decrease":
            en = f"{name} fell in the pilot against the comparison group: {size} {interval_en}."
            nl = f"{name} daalde in de pilot ten opzichte van de vergelijkingsgroep: {size} {interval_nl}."
        elif found.verdict == "no_clear_effect" and useful is not None:
            margin = _amount(useful, unit).lstrip("+")
            en = f"No clear effect on {name}: {size} {interval_en}, which rules out an effect larger than {margin}."
            nl = f"Geen duidelijk effect op {name}: {size} {interval_nl}; een effect groter dan {margin} valt af."
        else:
            en = f"Can't tell: the interval for {name} is too wide to say if the pilot made a difference {interval_en}."
            nl = f"Niet te zeggen: het interval voor {name} is te breed om een verschil vast te stellen {interval_nl}."
    if found.parallel is False:
        en += " Before the start the two groups already drifted apart: read the estimate with care."
        nl += " Vóór de start liepen de twee groepen al uiteen: lees de schatting met voorzichtigheid."
    return en, nl
