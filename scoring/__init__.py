"""Peil's pure scoring engine: numpy arrays and frozen dataclasses in, one published result table per wave out.

It imports nothing from ``service``: no HTTP, no database. ``build_table(data, previous)`` is the one entry point
the service calls when a wave closes; the API and the export read the ``ResultTable`` it returns (stored as JSON).
"""

from scoring.build import HiddenBefore, build_table, guard_statistics, participation_cells, suppress_cells
from scoring.cells import CellStatistics, cell_statistics
from scoring.loss import Publication
from scoring.tables import (
    AttributeInfo,
    CellArrays,
    Change,
    CommentCell,
    CommentGroup,
    ConstructCell,
    ConstructInfo,
    EnpsCell,
    Flag,
    ItemCell,
    ItemInfo,
    ParticipationCell,
    Reliability,
    ResultCell,
    ResultTable,
    UnitInfo,
)
from scoring.withhold import Guarded

__all__ = [
    "AttributeInfo",
    "CellArrays",
    "CellStatistics",
    "Change",
    "CommentCell",
    "CommentGroup",
    "ConstructCell",
    "ConstructInfo",
    "EnpsCell",
    "Flag",
    "Guarded",
    "HiddenBefore",
    "ItemCell",
    "ItemInfo",
    "ParticipationCell",
    "Publication",
    "Reliability",
    "ResultCell",
    "ResultTable",
    "UnitInfo",
    "build_table",
    "cell_statistics",
    "guard_statistics",
    "participation_cells",
    "suppress_cells",
]
