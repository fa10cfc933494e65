"""Valid answers for any instrument, and their shape as form fields (as a browser would post them)."""

from __future__ import annotations

from typing import Any

from service.instruments.schema import Instrument, Item


def answer_for(item: Item, variant: int = 0) -> Any:
    """A valid answer to ``item``; different ``variant`` values give different answers."""
    if item.type == "likert5":
        return 1 + variant % 5
    if item.type == "likert7":
        return 1 + variant % 7
    if item.type == "nps":
        return variant % 11
    options = [o.id for o in item.options]
    if item.type == "single":
        return options[variant % len(options)]
    if item.type == "multi":
        return sorted({options[variant % len(options)], options[(variant + 1) % len(options)]}, key=options.index)
    return f"Antwoord {variant}: meer gesprekken over groei, graag. ✓"


def answers_for(items: tuple[Item, ...] | list[Item], variant: int = 0) -> dict[str, Any]:
    return {item.id: answer_for(item, variant + n) for n, item in enumerate(items)}


def all_answers(instrument: Instrument, variant: int = 0) -> dict[str, Any]:
    return answers_for(instrument.items, variant)


def as_fields(answers: dict[str, Any], **control: Any) -> dict[str, Any]:
    """Form fields for ``answers`` (a multi item's choices repeat its name) plus control fields (_page, ...)."""
    fields: dict[str, Any] = {f"_{name}": str(value) for name, value in control.items()}
    for item_id, value in answers.items():
        fields[item_id] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return fields
