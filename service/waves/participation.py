"""Participation per unit, rolled up the tree, under the same anonymity guard as results.

A closed wave shows the participation its stored table published, exactly. While a wave is open (rule 3 of
the design), a poller must not learn when a small group's members answered: each unit's response rate is
shown rounded down to steps of 5 percentage points, the count of responses not at all, and the figures come
from a snapshot stored per wave and recomputed only when it is an hour old, so every caller sees the same
figures for that hour. Units are shown only where the engine's guard (``scoring.participation_cells``) allows:
at least ``min_group_size`` invitations, and no published parent minus published children leaving a small
group. A draft wave has no answers: its invitations are shown as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta

from fastapi import Response
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from scoring import ParticipationCell, participation_cells
from service.auth import Scope
from service.models import ParticipationSnapshot, Wave
from service.models.base import utcnow
from service.results.service import table_of
from service.results.tabular import render
from service.units.service import Tree, load_tree
from service.waves.schemas import Participation, ParticipationRow
from service.waves.service import counts_per_unit

REFRESH = timedelta(hours=1)  # an open wave's participation is recomputed at most this often
STEPS = 20  # rates are shown rounded down to 1/20: steps of 5 percentage points


def live_cells(session: Session, wave: Wave, tree: Tree) -> tuple[ParticipationCell, ...]:
    """The guarded participation of a wave from its invitations and complete responses as they are now."""
    invited_direct, responded_direct = counts_per_unit(session, wave.id)
    invited = [invited_direct.get(unit_id, 0) for unit_id in tree.ids]
    responded = [min(responded_direct.get(unit_id, 0), n) for unit_id, n in zip(tree.ids, invited, strict=True)]
    return participation_cells(tree.parent, tree.keys, invited, responded, wave.min_group_size)


def stepped(cell: ParticipationCell) -> ParticipationCell:
    """What an open wave shows of a cell: its invitations and its rate rounded down to a step, no count."""
    if cell.suppressed or not cell.invited:
        return ParticipationCell(cell.unit, cell.suppressed, cell.reason, cell.invited, None, None)
    rate = (cell.responded or 0) * STEPS // cell.invited / STEPS  # integers: no float rounding up a step
    return ParticipationCell(cell.unit, False, None, cell.invited, None, rate)


def snapshot(session: Session, wave: Wave, tree: Tree, now: datetime) -> tuple[tuple[ParticipationCell, ...], datetime]:
    """The open wave's shown cells and when they were computed: the stored ones, or new ones once an hour old."""
    stored = session.scalar(select(ParticipationSnapshot).where(ParticipationSnapshot.wave_id == wave.id))
    if stored is not None and now - stored.computed_at < REFRESH:
        return tuple(ParticipationCell(**cell) for cell in stored.cells), stored.computed_at
    cells = tuple(stepped(cell) for cell in live_cells(session, wave, tree))
    values = {"wave_id": wave.id, "computed_at": now, "cells": [asdict(cell) for cell in cells]}
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(ParticipationSnapshot).values(values)  # two callers at once: the later one's snapshot
    session.execute(
        statement.on_conflict_do_update(index_elements=["wave_id"], set_={"computed_at": now, "cells": values["cells"]})
    )
    return cells, now


def participation(session: Session, wave: Wave, now: datetime | None = None) -> Participation:
    """Every unit's row: figures where the guard publishes them, else ``suppressed`` and why."""
    tree = load_tree(session, wave.scope_unit_id)
    table = table_of(session, wave) if wave.state == "closed" else None
    as_of: datetime | None = None
    cells: Sequence[ParticipationCell]
    if table is not None:
        cells = table.participation
    elif wave.state == "draft":
        cells = live_cells(session, wave, tree)
    else:
        cells, as_of = snapshot(session, wave, tree, now or utcnow())
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
    return Participation(
        wave_id=wave.id,
        state=wave.state,
        min_group_size=wave.min_group_size,
        as_of=as_of,
        rate_step=1 / STEPS if as_of is not None else None,
        units=rows,
    )


def within(out: Participation, scope: Scope) -> Participation:
    """The rows a scope may read: all, or a manager's unit and those below it."""
    inside = scope.within((row.unit_key, row.parent_key) for row in out.units)
    if inside is None:
        return out
    return out.model_copy(update={"units": [row for row in out.units if row.unit_key in inside]})


def as_csv(out: Participation) -> Response:
    header = ["unit", "name", "parent", "invited", "responded", "rate", "suppressed", "reason"]
    rows = [
        [u.unit_key, u.name, u.parent_key, u.invited, u.responded, u.rate, u.suppressed, u.reason] for u in out.units
    ]
    return render(header, rows, f"wave-{out.wave_id}-participation.csv")
