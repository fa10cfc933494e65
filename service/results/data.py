"""From stored rows to the engine's arrays: the one place answers become ``scoring.WaveData``, and everything
else ``scoring.build_table`` is given (the previous wave, what its table published, what a stored table hid)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from scoring import HiddenBefore, ResultCell, ResultTable
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
    previous_detailed: set[str] | None = None  # of previous_published, the totals that show their details (eNPS)


def load_inputs(
    session: Session, wave: Wave, instruments: Instruments, *, purged: Callable[[int], bool]
) -> BuildInputs:
    """Everything the wave's build needs: its answers, the previous wave's (unless ``purged``) with the units its
    served table shows (changes are published only there), and, when the wave's table is built again, what the
    stored one hid: that stays hidden, so that the two builds together publish no more than the first, whatever
    changed in the engine since."""
    spec = to_spec(instruments[(wave.instrument, wave.version)].instrument)
    tree = load_tree(session, wave.scope_unit_id)  # a scoped wave's table is rooted at its scope
    data = load_wave_data(session, wave, spec, tree)
    before = previous_wave(session, wave, spec, instruments)
    previous = None
    shown: set[str] | None = None
    detailed: set[str] | None = None
    if before is not None and not purged(before.id):
        previous_spec = to_spec(instruments[(before.instrument, before.version)].instrument)
        previous = load_wave_data(session, before, previous_spec, tree)
        served = table_of(session, before)
        if served is not None:
            totals = [served.cell(u.key) for u in served.units]
            shown = {c.unit for c in totals if not c.suppressed}
            detailed = {c.unit for c in totals if not c.suppressed and not details_withheld(c)}
    stored = table_of(session, wave)
    hidden_before = None if stored is None else _hidden_before(stored, data)
    return BuildInputs(data, previous, shown, hidden_before, detailed)


def details_withheld(cell: ResultCell) -> bool:
    """A published cell whose details (favourable shares, eNPS, items) the guard's second stage withholds."""
    return (
        (cell.enps is not None and cell.enps.suppressed)
        or any(i.suppressed for i in cell.items)
        or any(c.favourable_suppressed for c in cell.constructs)
    )


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
    """Every complete response of ``wave`` and its invitations per unit, as arrays over ``tree`` (a subtree
    leaves out the rows of other units: a scoped wave, or an organisation-wide wave before it).

    The answers are read as the JSON texts they are stored as and parsed together, column by column, by Arrow's
    JSON reader (``_json_lines``): no Python object per answer. A stored answer the instrument does not know (an
    option it does not have) stops the load with the item's id.
    """
    position = np.full(max(tree.ids, default=0) + 1, -1, dtype=np.int64)
    position[tree.ids] = np.arange(len(tree.ids))
    invited = np.zeros(len(tree.keys), dtype=np.int64)
    invitations = select(Invitation.unit_id, func.count()).where(Invitation.wave_id == wave.id)
    answered = select(
        Response.token_mac, Response.unit_id, cast(Response.attributes, Text), cast(Response.answers, Text)
    ).where(Response.wave_id == wave.id, Response.complete.is_(True))
    if not tree.whole:
        invitations = invitations.where(Invitation.unit_id.in_(tree.ids))
        answered = answered.where(Response.unit_id.in_(tree.ids))
    for unit_id, count in session.execute(invitations.group_by(Invitation.unit_id)):
        invited[position[unit_id]] = count

    stored = session.connection().execute(answered)  # Core: plain tuples, the JSON as the text it is stored as
    # Ordered by a keyed hash of the link: an order that says nothing of who answered when, and that the close
    # keeps (it gives the rows new ids), so that a table built again sums in the same order, to the last bit.
    rows = sorted(stored, key=itemgetter(0))
    n = len(rows)
    unit = position[np.fromiter((row[1] for row in rows), dtype=np.int64, count=n)]
    carried = pa.array([row[2] for row in rows], type=pa.string()).dictionary_encode()  # a few distinct ones
    given = _json_lines([row[3] for row in rows], pa.schema([(item.id, _ARROW[item.type]) for item in spec.items]))
    del rows
    answers = np.full((n, len(spec.items)), np.nan)
    multi: dict[str, npt.NDArray[np.bool_]] = {}
    multi_answered: dict[str, npt.NDArray[np.bool_]] = {}
    comments: dict[str, tuple[tuple[int, str], ...]] = {}
    for j, item in enumerate(spec.items):
        column = given.column(item.id).combine_chunks()
        if item.type in ("likert5", "likert7", "nps"):
            answers[:, j] = column.to_numpy(zero_copy_only=False)
        elif item.type == "single":
            answers[:, j] = _codes(item.id, column, item.options).to_numpy(zero_copy_only=False)
        elif item.type == "multi":
            multi[item.id], multi_answered[item.id] = _chosen(item.id, column, item.options, n)
        elif item.type == "text":
            comments[item.id] = _texts(column)
    return WaveData(
        wave_id=wave.id,
        instrument=spec,
        tree=org_tree(tree),
        min_group_size=wave.min_group_size,
        unit=unit,
        attributes=_attributes(wave, carried),
        answers=answers,
        multi=multi,
        multi_answered=multi_answered,
        comments=comments,
        invited=invited,
        invited_attributes={},  # not knowable: invitations' attributes are sealed under their tokens
    )


# How each type of item's answers are stored in the JSON (``service.forms.service.parse_answers``).
_ARROW: dict[str, pa.DataType] = {
    "likert5": pa.float64(),
    "likert7": pa.float64(),
    "nps": pa.float64(),
    "single": pa.string(),
    "multi": pa.list_(pa.string()),
    "text": pa.string(),
}


def _json_lines(texts: list[str], schema: pa.Schema) -> pa.Table:
    """JSON objects (one per response, compact as stored: no line breaks) as one Arrow table with ``schema``'s
    columns, null where an object lacks the key; other keys are ignored."""
    if not texts:
        return schema.empty_table()
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    table = pa_json.read_json(io.BytesIO("\n".join(texts).encode()), parse_options=options)
    if table.num_rows != len(texts):
        raise ValueError(f"{len(texts)} stored JSON objects read as {table.num_rows} rows")
    return table


def _codes(item_id: str, values: pa.Array, options: tuple[str, ...]) -> pa.Array:
    """Each value's position among ``options`` (null where there is no value)."""
    codes = pc.index_in(values, value_set=pa.array(options, type=pa.string()))
    if codes.null_count != values.null_count:
        raise ValueError(f"a stored answer to {item_id} is not one of its options")
    return pc.cast(codes, pa.float64())


def _chosen(
    item_id: str, lists: pa.Array, options: tuple[str, ...], n: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """A multiple-choice item's chosen options (respondents x options) and who answered it."""
    chosen = np.zeros((n, len(options)), dtype=np.bool_)
    rows = pc.list_parent_indices(lists).to_numpy()
    codes = _codes(item_id, pc.list_flatten(lists), options).to_numpy(zero_copy_only=False)
    chosen[rows, codes.astype(np.int64)] = True
    return chosen, pc.is_valid(lists).to_numpy(zero_copy_only=False)


def _texts(values: pa.Array) -> tuple[tuple[int, str], ...]:
    """(respondent, text) of every non-empty text."""
    written = np.flatnonzero(pc.is_valid(values).to_numpy(zero_copy_only=False))
    texts = values.take(pa.array(written)).to_pylist()
    return tuple((int(r), t.strip()) for r, t in zip(written, texts, strict=True) if t.strip())


def _attributes(wave: Wave, carried: pa.DictionaryArray) -> tuple[Attribute, ...]:
    """Each attribute's values in sorted order, as recorded per wave at upload (invitations keep theirs sealed
    under the token, so invitations are counted per unit only), with any value a response carries: every
    respondent has a column, whatever the upload record says. An attribute nobody has a value of (a wave
    without participants) cuts nothing. ``carried``: the responses' attributes as stored (JSON texts),
    dictionary-encoded: each distinct text is parsed once."""
    distinct = [json.loads(text) for text in carried.dictionary.to_pylist()]
    which = carried.indices.to_numpy(zero_copy_only=False)
    attributes = []
    for name in wave.attributes:
        if any(name not in given for given in distinct):
            raise ValueError(f"a stored response has no value for the attribute {name}")
        seen = {str(v) for v in wave.attribute_values.get(name, ())} | {str(given[name]) for given in distinct}
        values = tuple(sorted(seen))
        if values:
            code = {value: k for k, value in enumerate(values)}
            codes = np.array([code[str(given[name])] for given in distinct], dtype=np.int64)
            attributes.append(Attribute(name=name, values=values, codes=codes[which]))
    return tuple(attributes)


def _hidden_before(stored: ResultTable, data: WaveData) -> HiddenBefore:
    """The stored table's hidden cells, and the cells whose details it hid or withheld, over the new build's units
    and columns (a unit or attribute value the
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
    details = np.ones((len(keys), len(columns)), dtype=np.bool_)
    for cell in stored.cells:
        where = position.get((cell.unit, cell.attribute, cell.value))
        if where is not None:
            cells[where] = cell.suppressed
            details[where] = cell.suppressed or details_withheld(cell)
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
        details=details,
    )
