"""The export-ready columnar copy of a stored result table: Arrow IPC kept beside the JSON in ``wave_results``.

The export's rows are a change of shape of the stored result table (``rows.derive``). Doing that from the JSON
at every run meant gunzip + ``json.loads`` + a conversion to Arrow, most of an export's time. So
the results service derives them once, when it stores the table (the same ``derive`` on the same dict that
becomes the JSON), and keeps them here; the export reads them back (decompressing, nothing else), checks them and
writes them.

Layout of the bytes: ``MAGIC``, a little-endian uint32 header length, the JSON header (the format, the
``built_at`` of the stored table they were derived from, the table's own facts, and each table's row count and
where its streams are), then Arrow IPC streams, LZ4-compressed, 64-byte aligned. Each table is kept as

- its dense columns, a string column as the length of each string (LZ4 compresses the lengths of a column like
  ``cells.unit`` well, the offsets Arrow keeps hardly at all);
- the characters of its string columns, one value per column;
- its mostly-null numbers (the hidden rows of ``cells``, whose figures are null) as the rows that have a value
  and those values, one stream per set of columns null in the same rows.

Decoding sums the lengths up into offsets again (the characters are used as they are) and puts the sparse values
into zero-filled anonymous memory that the kernel maps only where a value is written: the hidden rows' slots are
not decompressed, and a page of them holding no value is never touched (the Parquet writer and ``check_safe``
read only the slots that hold one). The copy's size, page faults and decoding time against plain Arrow IPC
streams and zstd are in ``benchmarks/README.md``.

A copy is used only when its format is ``FORMAT`` and its ``built_at`` is the row's own: a table stored by older
code, rebuilt by a worker that does not know this column, or written before it existed, is derived from its JSON
again (and the export stores the copy it derived).
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.exports.rows import RESULT_TABLES, Derived, derive
from service.exports.schema import SCHEMA_VERSION, SCHEMAS

# Bump when what ``rows.derive`` produces changes (a column, a conversion): stored copies of another format are
# ignored and derived again from the JSON.
FORMAT = f"{SCHEMA_VERSION}.3"
MAGIC = b"PEILCOL\x00"
_ALIGN = 64
_HEADER = struct.Struct("<I")
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
# A column is kept sparse when it is int64 or float64, its table has at least this many rows, and more than
# half of them are null. (Small tables are not worth a mapping per column.)
SPARSE_MIN_ROWS = 1 << 16
_ROW = "row"  # the first column of a sparse stream: which rows have a value
# The types a string column's lengths are kept in, the narrowest they fit in first.
_LENGTHS: dict[pa.DataType, type[np.integer[Any]]] = {
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.int32(): np.int32,
}


def _decode_pool() -> pa.MemoryPool:
    """Where decoded copies live. Not pyarrow's default pool (mimalloc): cold, it hands out a large copy's memory
    several times slower than jemalloc (``benchmarks/README.md``), and an export that runs once a day (or in a
    fresh ``peil export run`` process) always meets the allocator cold."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


POOL = _decode_pool()


def _stamp(built_at: datetime) -> str:
    return built_at.isoformat()


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _numpy(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Values without nulls (or booleans) as numpy, without copying one chunk of numbers."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    out: np.ndarray = array.to_numpy(zero_copy_only=False)
    return out


def _is_sparse(table: pa.Table, field: pa.Field) -> bool:
    return (
        table.num_rows >= SPARSE_MIN_ROWS
        and field.type in (pa.int64(), pa.float64())
        and 2 * table.column(field.name).null_count > table.num_rows
    )


def _stored(field: pa.Field, kept: pa.Field) -> bool:
    """Whether ``kept`` is how a dense column ``field`` is kept: a string column as the length of each string
    (its characters apart), in the narrowest integer type they fit in."""
    if field.type == pa.string():
        return bool(kept.name == field.name and kept.nullable == field.nullable and kept.type in _LENGTHS)
    return bool(kept == field)


def _lengths(column: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """A string column as the length of each string (null where it is null) and all its characters in one
    value. LZ4 compresses the lengths of a column like ``cells.unit`` 50-fold, its offsets hardly at all."""
    array = column.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=4 * array.offset)
    steps = np.diff(offsets)
    widest = int(steps.max()) if len(steps) else 0
    kind = next(t for t, dtype in _LENGTHS.items() if widest <= np.iinfo(dtype).max)
    lengths = pa.array(steps.astype(_LENGTHS[kind]), type=kind, mask=_numpy(pc.is_null(array)))
    size = int(offsets[-1] - offsets[0])
    characters = array.buffers()[2].slice(int(offsets[0]), size) if size else pa.py_buffer(b"")
    whole = pa.Array.from_buffers(
        pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, size], dtype=np.int64)), characters]
    )
    return lengths, whole


def _strings(lengths: pa.ChunkedArray, characters: pa.ChunkedArray) -> pa.Array:
    """The string column kept as ``_lengths``: offsets summed up again, the characters not copied."""
    counts = lengths.combine_chunks()  # one chunk, at offset 0, as an IPC stream gives it
    whole = characters.combine_chunks()
    offsets = pa.allocate_buffer(4 * (len(counts) + 1), memory_pool=POOL)
    summed = np.frombuffer(offsets, dtype=np.int32)
    summed[0] = 0
    steps = np.frombuffer(counts.buffers()[1], dtype=_LENGTHS[counts.type], count=len(counts))
    np.cumsum(steps, dtype=np.int32, out=summed[1:])
    validity = counts.buffers()[0] if counts.null_count else None
    text = whole.buffers()[2] or pa.py_buffer(b"")
    return pa.Array.from_buffers(pa.string(), len(counts), [validity, offsets, text], null_count=counts.null_count)


def _split(table: pa.Table) -> tuple[pa.Table, pa.Table, list[pa.Table]]:
    """A table as the streams to keep: its dense columns (strings as their lengths), the characters of its
    string columns (one row), and one table per set of mostly-null numeric columns that are null in the same
    rows: ``row`` (the rows that have a value), then those values."""
    dense: dict[str, pa.ChunkedArray | pa.Array] = {}
    characters: dict[str, pa.Array] = {}
    sparse: dict[bytes, tuple[np.ndarray, list[pa.Field]]] = {}  # by the rows that have a value
    for field in table.schema:
        column = table.column(field.name)
        if _is_sparse(table, field):
            valid = _numpy(pc.is_valid(column))
            sparse.setdefault(np.packbits(valid).tobytes(), (valid, []))[1].append(field)
        elif field.type == pa.string():
            dense[field.name], characters[field.name] = _lengths(column)
        else:
            dense[field.name] = column
    fields = [f.with_type(dense[f.name].type) for f in table.schema if f.name in dense]
    kept = pa.Table.from_arrays(list(dense.values()), schema=pa.schema(fields))
    strings = pa.table(characters) if characters else pa.table({})
    parts = []
    for valid, group in sparse.values():
        rows = pa.array(np.flatnonzero(valid), type=pa.int64())
        values = [pc.drop_null(table.column(f.name)) for f in group]
        schema = pa.schema([pa.field(_ROW, pa.int64(), nullable=False), *group])
        parts.append(pa.Table.from_arrays([rows, *values], schema=schema))
    return kept, strings, parts


def _zeros(size: int) -> mmap.mmap:
    """``size`` zero bytes of anonymous private memory: the kernel maps a page when it is first written to."""
    return mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)


def _spread(part: pa.Table, length: int) -> dict[str, pa.Array]:
    """Columns of ``length`` rows from a sparse stream: each value at its row, null elsewhere."""
    rows = _numpy(part.column(_ROW))
    valid = np.zeros(length, dtype=np.bool_)
    valid[rows] = True
    validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    out = {}
    for field in part.schema:
        if field.name == _ROW:
            continue
        memory = _zeros(length * 8)
        dtype = np.float64 if pa.types.is_float64(field.type) else np.int64
        np.frombuffer(memory, dtype=dtype, count=length)[rows] = _numpy(part.column(field.name))
        out[field.name] = pa.Array.from_buffers(
            field.type, length, [validity, pa.py_buffer(memory)], null_count=length - len(rows)
        )
    return out


def encode(derived: Derived, built_at: datetime) -> bytes:
    """The columnar copy of a table stored at ``built_at``."""
    streams: list[bytes] = []
    counts: dict[str, int] = {}
    for name in RESULT_TABLES:
        dense, strings, sparse = _split(derived.tables[name])
        streams += [_stream(dense), _stream(strings), *(_stream(part) for part in sparse)]
        counts[name] = 2 + len(sparse)
    facts: dict[str, Any] = {
        "wave_id": derived.wave_id,
        "instrument": derived.instrument,
        "version": derived.version,
        "min_group_size": derived.min_group_size,
        "previous_wave_id": derived.previous_wave_id,
        "constructs": list(derived.constructs),
    }
    # Offsets are relative to the end of the header; the header is padded so that every stream stays aligned.
    # Each table: the number of its rows and its streams' [offset, length]: the dense columns', the strings'
    # characters', then the sparse ones'.
    spans, position = [], 0
    for data in streams:
        spans.append([position, len(data)])
        position += len(data) + (-len(data) % _ALIGN)
    offsets, first = {}, 0
    for name in RESULT_TABLES:
        offsets[name] = {"rows": derived.tables[name].num_rows, "streams": spans[first : first + counts[name]]}
        first += counts[name]
    header = json.dumps(
        {"format": FORMAT, "built_at": _stamp(built_at), "facts": facts, "tables": offsets}, separators=(",", ":")
    ).encode()
    header += b" " * (-(len(MAGIC) + _HEADER.size + len(header)) % _ALIGN)
    parts = [MAGIC, _HEADER.pack(len(header)), header]
    for data in streams:
        parts += [data, b"\x00" * (-len(data) % _ALIGN)]
    return b"".join(parts)


def decode(data: bytes | None, built_at: datetime) -> Derived | None:
    """The derived rows kept in ``data`` if it is a copy of this format of the table stored at ``built_at``;
    otherwise None (derive them from the JSON)."""
    if not data or not data.startswith(MAGIC):
        return None
    buffer = pa.py_buffer(data)
    start = len(MAGIC) + _HEADER.size
    (length,) = _HEADER.unpack_from(data, len(MAGIC))
    header = json.loads(data[start : start + length])
    if header.get("format") != FORMAT or header.get("built_at") != _stamp(built_at):
        return None
    body = start + length
    tables = {}
    for name in RESULT_TABLES:
        rows, streams = header["tables"][name]["rows"], header["tables"][name]["streams"]
        dense, strings, *sparse = (
            pa.ipc.open_stream(buffer.slice(body + offset, size), memory_pool=POOL).read_all()
            for offset, size in streams
        )
        schema = SCHEMAS[name]
        kept = {f.name: f for part in (dense, *sparse) for f in part.schema if f.name != _ROW}
        texts = {f.name for f in schema if f.type == pa.string() and f.name in dense.column_names}
        if (
            len(kept) != len(schema)
            or not all(f.name in kept and _stored(f, kept[f.name]) for f in schema)
            or set(strings.column_names) != texts
        ):
            return None  # not the columns of this format
        found = dict(zip(dense.column_names, dense.columns, strict=True))
        for column in strings.column_names:
            found[column] = _strings(found[column], strings.column(column))
        for part in sparse:
            found.update(_spread(part, rows))
        table = pa.Table.from_arrays([found[f.name] for f in schema], schema=schema)
        if table.num_rows != rows:
            return None
        tables[name] = table
    facts: Mapping[str, Any] = header["facts"]
    return Derived(
        wave_id=int(facts["wave_id"]),
        instrument=str(facts["instrument"]),
        version=int(facts["version"]),
        min_group_size=int(facts["min_group_size"]),
        previous_wave_id=None if facts["previous_wave_id"] is None else int(facts["previous_wave_id"]),
        constructs=tuple(facts["constructs"]),
        tables=tables,
    )


def of(table: Mapping[str, Any], built_at: datetime) -> bytes:
    """The columnar copy of a result table (its JSON form, ``ResultTable.to_dict()``) stored at ``built_at``."""
    return encode(derive(table), built_at)
