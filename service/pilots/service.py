"""Pilots: declare (units checked against the org tree), list, read, remove."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import NotFound, Unprocessable
from service.models import Pilot
from service.pilots.schemas import PilotCreate
from service.units.service import Tree, load_tree


def _ancestors(tree: Tree, key: str) -> list[str]:
    """The unit and every unit above it, up to its root."""
    index = tree.index()
    out = [key]
    while tree.parent[index[out[-1]]] >= 0:
        out.append(tree.keys[tree.parent[index[out[-1]]]])
    return out


def _outermost(tree: Tree, keys: list[str]) -> list[str]:
    """The keys without those lying inside another one given (each unit counts with its subtree), in order."""
    given = set(keys)
    return list(dict.fromkeys(k for k in keys if not any(a in given for a in _ancestors(tree, k)[1:])))


def create(session: Session, data: PilotCreate) -> Pilot:
    """A new pilot; unknown units, a comparison overlapping the pilot, or no comparison left are refused (422)."""
    tree = load_tree(session)
    known = set(tree.keys)
    unknown = sorted({k for k in [*data.units, *(data.comparison_units or [])] if k not in known})
    if unknown:
        raise Unprocessable(
            f"unknown units: {', '.join(unknown[:20])}", details=[{"key": k, "reason": "unknown unit"} for k in unknown]
        )
    units = _outermost(tree, data.units)
    comparison = None if data.comparison_units is None else _outermost(tree, data.comparison_units)
    inside = {a for k in units for a in _ancestors(tree, k)}  # the pilot's units and everything above them
    if comparison is not None:
        if not comparison:
            raise Unprocessable("comparison_units is empty: leave it out to compare with the rest of the organisation")
        overlap = [k for k in comparison if k in inside or any(a in set(units) for a in _ancestors(tree, k))]
        if overlap:
            raise Unprocessable(
                f"comparison units overlap the pilot: {', '.join(overlap[:20])}",
                details=[{"key": k, "reason": "inside the pilot, or holds a pilot unit"} for k in overlap],
            )
    else:
        roots = {_ancestors(tree, k)[-1] for k in units}
        if len(roots) > 1:
            raise Unprocessable("the pilot's units lie in more than one organisation: give comparison_units")
        if roots & set(units):
            raise Unprocessable("the pilot is the whole organisation: give comparison_units to compare with")
    pilot = Pilot(name=data.name, starts_on=data.starts_on, units=units, comparison=comparison)
    session.add(pilot)
    session.flush()
    return pilot


def get(session: Session, pilot_id: int) -> Pilot:
    pilot = session.get(Pilot, pilot_id)
    if pilot is None:
        raise NotFound(f"no pilot {pilot_id}")
    return pilot


def list_pilots(session: Session) -> list[Pilot]:
    return list(session.scalars(select(Pilot).order_by(Pilot.id)))


def delete(session: Session, pilot: Pilot) -> None:
    session.delete(pilot)
    session.flush()
