"""From stored rows to the engine's arrays: the one place answers become ``scoring.WaveData``, and everything
else ``scoring.build_table`` is given (the previous wave, what its table published, what a stored table hid)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scoring import HiddenBefore, ResultTable
from scoring.spec import Attribute, InstrumentSpec, OrgTree, WaveData
from service.errors import Conflict
from service.instruments.loader import Instruments, to_spec
from service.models import Invitation, Response, Wave
from service.results.service import table_of
from service.units.service import Tree, load_tree


@dataclass(frozen=True)
class BuildInputs:
    """The arguments of ``scoring.build_table`` for one wave."""

    data: WaveData
    previous: WaveData | None
    previous_published: set[str] | None
    hidden_before: HiddenBefore | None


def load_inputs(
    session: Session, wave: Wave, instruments: Instruments, *, purged: Callable[[int], bool]
) -> BuildInputs:
    """Everything the wave's build needs: its answers, the previous wave's (unless ``purged``) with the units its
    served table shows (changes are published only there), and, when the wave's table is built again, what the
    stored one hid: that stays hidden, so that the two builds together publish no more than the first, whatever
    changed in the engine since."""
    spec = to_spec(instruments[(wave.instrument, wave.version)].instrument)
    tree = load_tree(session)
    data = load_wave_data(session, wave, spec, tree)
    before = previous_wave(session, wave, spec, instruments)
    previous = None
    shown: set[str] | None = None
    if before is not None and not purged(before.id):
        previous_spec = to_spec(instruments[(before.instrument, before.version)].instrument)
        previous = load_wave_data(session, before, previous_spec, tree)
        served = table_of(session, before)
        if served is not None:
            shown = {u.key for u in served.units if not served.cell(u.key).suppressed}
    stored = table_of(session, wave)
    hidden_before = None if stored is None else _hidden_before(stored, data)
    return BuildInputs(data, previous, shown, hidden_before)


def previous_wave(session: Session, wave: Wave, spec: InstrumentSpec, instruments: Instruments) -> Wave | None:
    """The latest closed wave before ``wave`` that shares a construct with it (e.g. a pulse after a full survey)."""
    constructs = {c.id for c in spec.constructs}
    candidates = session.scalars(
        select(Wave)
        .where(Wave.state == "closed", Wave.id != wave.id, Wave.closes_at <= wave.closes_at)
        .order_by(Wave.closes_at.desc(), Wave.id.desc())
    )
    for candidate in candidates:
        loaded = instruments.get((candidate.instrument, candidate.version))
        if loaded is not None and constructs & {c.id for c in loaded.instrument.constructs}:
            return candidate
    return None


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
        # A keyed hash of the link: an order that says nothing of who answered when, and that the close keeps
        # (it gives the rows new ids), so that a table built again sums in the same order, to the last bit.
        .order_by(Response.token_mac)
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
        attributes=tuple(  # an attribute nobody has a value of (a wave without participants) cuts nothing
            Attribute(name=name, values=tuple(values[name]), codes=codes[name])
            for name in wave.attributes
            if values[name]
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


def _hidden_before(stored: ResultTable, data: WaveData) -> HiddenBefore:
    """The stored table's hidden cells over the new build's units and columns (a unit or attribute value the
    stored table does not know was empty then: it is kept hidden too). Refuses (409) when a unit the stored
    table shows has moved in the org tree since: its figures would cover other people than the published ones."""
    keys = data.tree.keys
    now = {key: None if p < 0 else keys[p] for key, p in zip(keys, data.tree.parent.tolist(), strict=True)}
    moved = sorted(u.key for u in stored.units if u.key in now and now[u.key] != u.parent)
    if moved:
        raise Conflict(
            f"the org tree changed since the results of wave {stored.wave_id} were built (moved: "
            f"{', '.join(moved[:10])}); rebuilding would publish groups that differ from the published ones"
        )
    columns: list[tuple[str | None, str | None]] = [(None, None)]
    columns += [(a.name, v) for a in data.attributes for v in a.values]
    position = {(key, a, v): (u, w) for u, key in enumerate(keys) for w, (a, v) in enumerate(columns)}
    cells = np.ones((len(keys), len(columns)), dtype=np.bool_)
    for cell in stored.cells:
        where = position.get((cell.unit, cell.attribute, cell.value))
        if where is not None:
            cells[where] = cell.suppressed
    unit = {key: u for u, key in enumerate(keys)}

    def by_unit(found: Iterable[tuple[str, bool]]) -> npt.NDArray[np.bool_]:
        out = np.ones(len(keys), dtype=np.bool_)
        for key, suppressed in found:
            if key in unit:
                out[unit[key]] = suppressed
        return out

    return HiddenBefore(
        cells=cells,
        comments=by_unit((c.unit, c.suppressed) for c in stored.comments),
        participation=by_unit((c.unit, c.suppressed) for c in stored.participation),
    )
