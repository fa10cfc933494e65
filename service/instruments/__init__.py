"""Instruments: the file format (``schema``), reading and checking the files (``loader``), their API."""

from service.instruments.loader import (
    InstrumentError,
    LoadedInstrument,
    Problem,
    check_definitions,
    load_definitions,
    to_spec,
    write_json_schema,
)
from service.instruments.schema import Instrument

__all__ = [
    "Instrument",
    "InstrumentError",
    "LoadedInstrument",
    "Problem",
    "check_definitions",
    "load_definitions",
    "to_spec",
    "write_json_schema",
]
