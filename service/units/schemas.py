"""Org tree schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Key = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Key
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    parent_key: Key | None = None


class UnitsPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: list[UnitIn] = Field(max_length=100_000)


class UnitOut(BaseModel):
    key: str
    name: str
    parent_key: str | None


class Units(BaseModel):
    units: list[UnitOut]


class UnitsPutResult(BaseModel):
    created: int
    updated: int
    total: int
