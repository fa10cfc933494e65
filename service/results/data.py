"""From stored rows to the engine's arrays: the one place answers become ``scoring.WaveData``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scoring.spec import Attribute, InstrumentSpec, OrgTree, WaveData
from service.models import Invitation, Response, Wave
from service.units.service import Tree


def org_tree(tree: Tree) -> OrgTree:
    return OrgTree(keys=tuple(tree.keys), parent=np.asarray(tree.parent, dtype=np.int64))


def load_wave_data(session: Session, wave: Wave, spec: InstrumentSpec, tree: Tree) -> WaveData:
    """Every complete response of ``wave`` and its invitations per unit, as arrays over ``tree``."""
    position = {unit_id: i for i, unit_id in enumerate(tree.ids)}
    invited = np.zeros(len(tree.keys), dtype=np.int64)
    for unit_id, count in session.execute(
        select(Invitation.unit_id, func.count()).where(Invitation.wave_id == wave.id).group_by(Invitation.unit_id)
    ):
        invited[position[unit_id]] = count

    rows = session.execute(
        select(Response.unit_id, Response.attributes, Response.answers)
        .where(Response.wave_id == wave.id, Response.complete.is_(True))
        .order_by(Response.id)  # random ids: a stable order that says nothing about who answered when
    ).all()
    # Attribute values in sorted order, as recorded per wave at upload (invitations keep theirs sealed under the
    # token, so invitations are counted per unit only), with any value a response carries: every respondent has a
    # column, whatever the upload record says.
    values = {
        name: {
            v: k
            for k, v in enumerate(
                sorted({str(v) for v in wave.attribute_values.get(name, ())} | {str(a[name]) for _, a, _ in rows})
            )
        }
        for name in wave.attributes
    }
    n = len(rows)
    items = spec.items
    column = {item.id: j for j, item in enumerate(items)}
    answers = np.full((n, len(items)), np.nan)
    multi = {item.id: np.zeros((n, len(item.options)), dtype=np.bool_) for item in items if item.type == "multi"}
    multi_answered = {item_id: np.zeros(n, dtype=np.bool_) for item_id in multi}
    comments: dict[str, list[tuple[int, str]]] = {item.id: [] for item in items if item.type == "text"}
    option_index = {item.id: {o: k for k, o in enumerate(item.options)} for item in items if item.options}
    unit = np.empty(n, dtype=np.int64)
    codes = {name: np.empty(n, dtype=np.int64) for name in wave.attributes}
    for r, (unit_id, attributes, given) in enumerate(rows):
        unit[r] = position[unit_id]
        for name in wave.attributes:
            codes[name][r] = values[name][str(attributes[name])]
        for item_id, value in given.items():
            if item_id in column:
                _place(
                    items[column[item_id]].type,
                    item_id,
                    value,
                    r,
                    column,
                    answers,
                    multi,
                    multi_answered,
                    comments,
                    option_index,
                )

    return WaveData(
        wave_id=wave.id,
        instrument=spec,
        tree=org_tree(tree),
        min_group_size=wave.min_group_size,
        unit=unit,
        attributes=tuple(
            Attribute(name=name, values=tuple(values[name]), codes=codes[name]) for name in wave.attributes
        ),
        answers=answers,
        multi=multi,
        multi_answered=multi_answered,
        comments={item_id: tuple(pairs) for item_id, pairs in comments.items()},
        invited=invited,
        invited_attributes={},  # not knowable: invitations' attributes are sealed under their tokens
    )


def _place(
    kind: str,
    item_id: str,
    value: Any,
    r: int,
    column: dict[str, int],
    answers: np.ndarray,
    multi: dict[str, np.ndarray],
    multi_answered: dict[str, np.ndarray],
    comments: dict[str, list[tuple[int, str]]],
    option_index: dict[str, dict[str, int]],
) -> None:
    if kind in ("likert5", "likert7", "nps"):
        answers[r, column[item_id]] = float(value)
    elif kind == "single":
        answers[r, column[item_id]] = option_index[item_id][value]
    elif kind == "multi":
        multi_answered[item_id][r] = True
        for option in value:
            multi[item_id][r, option_index[item_id][option]] = True
    elif kind == "text" and isinstance(value, str) and value.strip():
        comments[item_id].append((r, value.strip()))
