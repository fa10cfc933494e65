"""Build a closed wave's result table once (scoring does the maths), store it, and serve it from storage."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from scoring import HiddenBefore, ResultTable
from scoring.spec import InstrumentSpec, WaveData
from service.errors import Conflict, NotFound
from service.exports import columns
from service.instruments.loader import LoadedInstrument, to_spec
from service.models import Wave, WaveResult
from service.models.base import utcnow
from service.results.data import load_wave_data
from service.units.service import load_tree
from service.waves import service as waves
from service.waves.purge import purged

ENGINE = "scoring-1"
Instruments = dict[tuple[str, int], LoadedInstrument]

log = logging.getLogger("peil")

_instruments: Instruments = {}
_installed = threading.Lock()
_hook_registered = False


def install(instruments: Instruments | None = None) -> None:
    """Register the close hook (once per process) and the instruments it builds with.

    Called explicitly by ``create_app``, the ``peil`` command and the demo: an import side effect would leave the
    hook out of any process that happens not to import this module before a wave closes.
    """
    global _hook_registered
    with _installed:
        if instruments:
            _instruments.update(instruments)
        if not _hook_registered:
            waves.on_close(_build_on_close)
            _hook_registered = True


def _known_instruments() -> Instruments:
    if not _instruments:  # a command that closes a wave without having loaded the definitions itself
        from service.config import get_settings
        from service.instruments.loader import load_definitions

        _instruments.update(load_definitions(get_settings().definitions_dir))
    return _instruments


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


def build(session: Session, wave: Wave, instruments: Instruments | None = None) -> ResultTable:
    """Compute and store the result table of a closed wave (replacing an earlier one); the caller commits."""
    import scoring  # the engine's entry point, looked up when a table is built

    instruments = instruments or _known_instruments()
    if wave.state != "closed":
        raise Conflict(f"results are built only for closed waves; wave {wave.id} is {wave.state}")
    if purged(session, wave.id):
        raise Conflict(f"the answers of wave {wave.id} were purged; its stored results can no longer be rebuilt")
    spec = to_spec(instruments[(wave.instrument, wave.version)].instrument)
    tree = load_tree(session)
    data = load_wave_data(session, wave, spec, tree)
    before = previous_wave(session, wave, spec, instruments)
    previous = None
    shown: set[str] | None = None
    if before is not None and not purged(session, before.id):
        previous_spec = to_spec(instruments[(before.instrument, before.version)].instrument)
        previous = load_wave_data(session, before, previous_spec, tree)
        # Changes are published only where the previous wave's served table shows the unit (see build_table).
        served = table_of(session, before)
        if served is not None:
            shown = {u.key for u in served.units if not served.cell(u.key).suppressed}
    # Built again (`peil results rebuild`): what the stored table hid stays hidden, so that the two builds
    # together publish no more than the first, whatever changed in the engine since.
    stored = table_of(session, wave)
    hidden_before = None if stored is None else _hidden_before(stored, data)
    table: ResultTable = scoring.build_table(data, previous, previous_published=shown, hidden_before=hidden_before)
    store(session, wave.id, table.to_dict())
    return table


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


def store(session: Session, wave_id: int, table: Mapping[str, Any]) -> None:
    """Store a result table (its JSON form, ``ResultTable.to_dict()``), replacing an earlier one, together with
    the export's columnar copy of it, both derived from this one dict and stamped with one ``built_at``."""
    built_at = utcnow()
    blob = gzip.compress(json.dumps(table, separators=(",", ":")).encode(), compresslevel=6)
    columnar = columns.of(table, built_at)
    row = session.get(WaveResult, wave_id)
    if row is None:
        row = WaveResult(wave_id=wave_id, engine=ENGINE)
        session.add(row)
    row.table, row.columnar, row.built_at = blob, columnar, built_at
    row.engine = ENGINE
    session.flush()


def _build_on_close(session: Session, wave: Wave) -> None:
    """Build the table in the closing transaction. A failing engine never keeps a wave open: the wave closes
    without a table (the API says so) and ``peil results rebuild`` builds it once the cause is fixed."""
    try:
        with session.begin_nested():
            build(session, wave)
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("wave %s closed, but its result table could not be built", wave.id)


class _Cache:
    """Deserialised tables, keyed by wave and build time: a rebuild is picked up by every worker."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[tuple[int, datetime], ResultTable] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[int, datetime]) -> ResultTable | None:
        with self._lock:
            table = self._items.get(key)
            if table is not None:
                self._items.move_to_end(key)
            return table

    def put(self, key: tuple[int, datetime], table: ResultTable) -> None:
        with self._lock:
            self._items[key] = table
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_cache = _Cache()


def closed_wave(session: Session, wave_id: int) -> Wave:
    """The wave, with the clock applied; 409 while it is not closed (rule 3: no results of an open wave)."""
    wave = waves.advance(session, waves.get(session, wave_id))
    if wave.state != "closed":
        when = "opens" if wave.state == "draft" else "closes"
        raise Conflict(
            f"results exist only for closed waves; wave {wave.id} is {wave.state} "
            f"(it {when} at {(wave.opens_at if wave.state == 'draft' else wave.closes_at).isoformat()})"
        )
    return wave


def table_of(session: Session, wave: Wave) -> ResultTable | None:
    """The stored table of a closed wave, from this process's cache when the stored build is the same."""
    built_at = session.scalar(select(WaveResult.built_at).where(WaveResult.wave_id == wave.id))
    if built_at is None:
        return None
    key = (wave.id, built_at)
    table = _cache.get(key)
    if table is None:
        blob = session.scalar(select(WaveResult.table).where(WaveResult.wave_id == wave.id))
        if blob is None:  # deleted between the two reads
            return None
        table = ResultTable.from_dict(json.loads(gzip.decompress(blob)))
        _cache.put(key, table)
    return table


def stored_table(session: Session, wave_id: int) -> tuple[Wave, ResultTable]:
    """The published table of a closed wave; 409 while the wave is not closed, 404 if none is stored."""
    wave = closed_wave(session, wave_id)
    table = table_of(session, wave)
    if table is None:
        raise NotFound(f"wave {wave.id} has no stored results; run `peil results rebuild {wave.id}`")
    return wave, table
