"""Participation per unit, rolled up the tree: shown only for units with at least min_group_size invitations."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.models import Wave
from service.units.service import load_tree
from service.waves.schemas import Participation, ParticipationRow
from service.waves.service import counts_per_unit


def participation(session: Session, wave: Wave) -> Participation:
    tree = load_tree(session)
    invited_direct, responded_direct = counts_per_unit(session, wave.id)
    invited = [invited_direct.get(unit_id, 0) for unit_id in tree.ids]
    responded = [responded_direct.get(unit_id, 0) for unit_id in tree.ids]
    for i in range(len(tree.keys) - 1, -1, -1):  # children come after parents: sum bottom-up
        parent = tree.parent[i]
        if parent >= 0:
            invited[parent] += invited[i]
            responded[parent] += responded[i]
    k = wave.min_group_size
    rows = []
    for i, key in enumerate(tree.keys):
        if invited[i] == 0:
            continue
        parent_key = tree.keys[tree.parent[i]] if tree.parent[i] >= 0 else None
        if invited[i] < k:
            rows.append(
                ParticipationRow(
                    unit_key=key,
                    name=tree.names[i],
                    parent_key=parent_key,
                    suppressed=True,
                    reason="primary",
                    invited=None,
                    responded=None,
                    rate=None,
                )
            )
            continue
        rows.append(
            ParticipationRow(
                unit_key=key,
                name=tree.names[i],
                parent_key=parent_key,
                suppressed=False,
                invited=invited[i],
                responded=responded[i],
                rate=round(responded[i] / invited[i], 4),
            )
        )
    return Participation(wave_id=wave.id, state=wave.state, min_group_size=k, units=rows)
