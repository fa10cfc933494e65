"""The JSON of export runs: what HR sees of the history (never the target's credentials)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ExportRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str = Field(description="running, succeeded or failed")
    trigger: str = Field(description="cli, api or schedule")
    full: bool
    target: str = Field(description="where it wrote, without credentials")
    started_at: datetime
    finished_at: datetime | None
    waves: list[int] = Field(description="the waves this run wrote")
    rows: dict[str, int] = Field(description="rows written per table")
    checksum: str | None = Field(description="SHA-256 of the manifest (files) or of the run's state (SQL)")
    error: str | None


class ExportRuns(BaseModel):
    runs: list[ExportRunOut]


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full: bool = Field(default=False, description="re-export every wave, not only those closed or rebuilt since")
    waves: list[int] | None = Field(default=None, max_length=1000, description="export exactly these waves")
