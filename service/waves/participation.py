"""Participation per unit, rolled up the tree, under the same anonymity guard as results.

A closed wave shows the participation its stored table published. An open or draft wave is computed live by
the engine's guard (``scoring.participation_cells``): a unit is shown only with at least ``min_group_size``
invitations, and never when a published parent minus its published children would leave a small group.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Response
from sqlalchemy.orm import Session

from scoring import ParticipationCell, participation_cells
from service.models import Wave
from service.results.service import table_of
from service.results.tabular import render
from service.units.service import Tree, load_tree
from service.waves.schemas import Participation, ParticipationRow
from service.waves.service import counts_per_unit


def live_cells(session: Session, wave: Wave, tree: Tree) -> tuple[ParticipationCell, ...]:
    """The guarded participation of a wave from its invitations and complete responses as they are now."""
    invited_direct, responded_direct = counts_per_unit(session, wave.id)
    invited = [invited_direct.get(unit_id, 0) for unit_id in tree.ids]
    responded = [min(responded_direct.get(unit_id, 0), n) for unit_id, n in zip(tree.ids, invited, strict=True)]
    return participation_cells(tree.parent, tree.keys, invited, responded, wave.min_group_size)


def participation(session: Session, wave: Wave) -> Participation:
    """Every unit's row: figures where the guard publishes them, else ``suppressed`` and why."""
    tree = load_tree(session)
    table = table_of(session, wave) if wave.state == "closed" else None
    cells: Sequence[ParticipationCell] = table.participation if table is not None else live_cells(session, wave, tree)
    names = dict(zip(tree.keys, tree.names, strict=True))
    parents = {key: (tree.keys[p] if p >= 0 else None) for key, p in zip(tree.keys, tree.parent, strict=True)}
    if table is not None:
        parents.update({u.key: u.parent for u in table.units})  # the tree as it was when the wave closed
    rows = [
        ParticipationRow(
            unit_key=cell.unit,
            name=names.get(cell.unit, cell.unit),
            parent_key=parents.get(cell.unit),
            suppressed=cell.suppressed,
            reason=cell.reason,
            invited=None if cell.suppressed else cell.invited,
            responded=None if cell.suppressed else cell.responded,
            rate=None if cell.suppressed or cell.rate is None else round(cell.rate, 4),
        )
        for cell in cells
    ]
    return Participation(wave_id=wave.id, state=wave.state, min_group_size=wave.min_group_size, units=rows)


def as_csv(out: Participation) -> Response:
    header = ["unit", "name", "parent", "invited", "responded", "rate", "suppressed", "reason"]
    rows = [
        [u.unit_key, u.name, u.parent_key, u.invited, u.responded, u.rate, u.suppressed, u.reason] for u in out.units
    ]
    return render(header, rows, f"wave-{out.wave_id}-participation.csv")
