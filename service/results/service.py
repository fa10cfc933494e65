"""Store a closed wave's result table and serve it from storage.

The table is built by the close job (``service.waves.close``), which encodes it and calls ``store`` here; this
module never builds a table and knows nothing of how a wave closes.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scoring import ResultTable
from scoring.loss import describe
from service.errors import Conflict, NotFound
from service.models import Wave, WaveResult
from service.models.base import utcnow

ENGINE = "scoring-1"


def encode(table: Mapping[str, Any]) -> bytes:
    """A result table's stored form: its JSON (``ResultTable.to_dict()``) in UTF-8, gzip-compressed.

    Written once per wave and read once per process: the fastest settings (no ASCII escapes, gzip level 1), for
    a blob a third larger than level 6 gives (``benchmarks/close.py`` times it)."""
    text = json.dumps(table, separators=(",", ":"), ensure_ascii=False, check_circular=False)
    return gzip.compress(text.encode(), compresslevel=1)


def store(session: Session, wave_id: int, table: bytes, columnar: bytes, built_at: datetime) -> None:
    """Store a wave's encoded table and the export's columnar copy of it (``columns.of``, from the same dict and
    the same ``built_at``), replacing an earlier build, in the caller's transaction."""
    row = session.get(WaveResult, wave_id)
    if row is None:
        row = WaveResult(wave_id=wave_id, engine=ENGINE)
        session.add(row)
    row.table, row.columnar, row.built_at = table, columnar, built_at
    row.engine = ENGINE
    session.flush()


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
    """The wave; 409 while it is not closed (rule 3: no results of an open wave; a closing wave's table is being
    built, and no half-stored table is ever served)."""
    wave = session.get(Wave, wave_id)
    if wave is None:
        raise NotFound(f"no wave {wave_id}")
    if wave.state == "closed":
        return wave
    if wave.state == "closing" or wave.closes_at <= utcnow():
        failed = f"; the last attempt failed: {wave.close_error}" if wave.close_error else ""
        raise Conflict(
            f"wave {wave.id} is closing: its result table is being built and is served once it is stored{failed}"
        )
    when = "opens" if wave.state == "draft" else "closes"
    raise Conflict(
        f"results exist only for closed waves; wave {wave.id} is {wave.state} "
        f"(it {when} at {(wave.opens_at if wave.state == 'draft' else wave.closes_at).isoformat()})"
    )


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


def publication_lines(session: Session, wave_id: int) -> list[str]:
    """What the guard published of a closed wave's stored table, as lines for a terminal (``peil demo``); none
    when no table is stored or it was built before the guard's losses were counted."""
    wave = session.get(Wave, wave_id)
    table = None if wave is None else table_of(session, wave)
    if table is None or table.publication is None:
        return []
    return describe(table.publication, table.min_group_size)
