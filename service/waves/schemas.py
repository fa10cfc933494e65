"""Wave, participant and participation schemas: in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

AttributeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
AttributeValue = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
UnitKey = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
Language = Literal["nl", "en"]

MAX_ATTRIBUTES = 5


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("attribute names must be unique")
    return names


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WaveCreate(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    instrument: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    version: int = Field(ge=1)
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    min_group_size: int | None = Field(default=None, ge=3, le=1000, description="default: PEIL_MIN_GROUP_SIZE (5)")
    attributes: Annotated[list[AttributeName], Field(max_length=MAX_ATTRIBUTES), AfterValidator(_unique)] = []
    language: Language = Field(default="nl", description="the mails' language for participants who name none")
    scope: UnitKey | None = Field(
        default=None, description="a unit's key: only its subtree takes part, and the table is rooted there"
    )
    kind: Literal["single", "continuous"] = Field(
        default="single",
        description="continuous: the exit survey, taking participants while open, published per period",
    )


class WaveUpdate(_In):
    """Changes to a wave. ``min_group_size`` and ``attributes`` are fixed once a wave has opened."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)] | None = None
    opens_at: AwareDatetime | None = None
    closes_at: AwareDatetime | None = None
    min_group_size: int | None = Field(default=None, ge=3, le=1000)
    attributes: Annotated[list[AttributeName], Field(max_length=MAX_ATTRIBUTES), AfterValidator(_unique)] | None = None


class MailCounts(BaseModel):
    """Where the wave's invitation mails stand, without an address: waiting, accepted by the mail server, refused for
    good (a 5xx, or temporary refusals until Peil gave up), and participants taken out of the open wave."""

    pending: int = 0
    sent: int = 0
    failed: int = 0
    removed: int = 0


class Period(BaseModel):
    """One published period of a continuous wave: a wave of its own (``wave_id``) holding that window's answers."""

    wave_id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    state: Literal["closing", "closed"]


class Wave(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    instrument: str
    version: int
    opens_at: datetime
    closes_at: datetime
    min_group_size: int
    attributes: list[str]
    state: Literal["draft", "open", "closing", "closed"]
    created_at: datetime
    opened_at: datetime | None
    closed_at: datetime | None = Field(description="when the wave stopped taking answers")
    language: Language = "nl"
    invited: int = 0
    mail: MailCounts = Field(default_factory=MailCounts)
    close_attempts: int = Field(default=0, description="runs of the close job on this wave so far")
    close_error: str | None = Field(default=None, description="why the close job's last run failed, while closing")
    close_retry_at: datetime | None = Field(default=None, description="when the close job runs again after it")
    kind: Literal["single", "continuous", "period"] = "single"
    scope: str | None = Field(default=None, description="the unit whose subtree the wave covers; null: everyone")
    parent_id: int | None = Field(default=None, description="a period's continuous wave")
    periods: list[Period] = Field(default_factory=list, description="a continuous wave's published periods")


class WaveList(BaseModel):
    waves: list[Wave]


class ParticipantIn(_In):
    unit_key: UnitKey
    email: Annotated[str, StringConstraints(min_length=1, max_length=320, strip_whitespace=True)]
    language: Language | None = Field(default=None, description="the mails' language; default: the wave's")
    attributes: dict[AttributeName, AttributeValue] = {}


class UnitCount(BaseModel):
    unit_key: str
    created: int


class ParticipantsUploaded(BaseModel):
    """An upload's outcome: invitations created per unit. Links go to the participants by mail, never here."""

    wave_id: int
    created: int
    units: list[UnitCount]


class ParticipantsRemoval(_In):
    emails: list[Annotated[str, StringConstraints(min_length=1, max_length=320)]] = Field(
        min_length=1, max_length=10_000
    )


class ParticipantsRemoved(BaseModel):
    wave_id: int
    removed: int


class ParticipationRow(BaseModel):
    unit_key: str
    name: str
    parent_key: str | None
    suppressed: bool
    reason: str | None = None
    invited: int | None
    responded: int | None = Field(description="complete responses; null while the wave is open")
    rate: float | None = Field(description="responded / invited; while the wave is open, rounded down to rate_step")


class Participation(BaseModel):
    wave_id: int
    state: str
    min_group_size: int
    as_of: datetime | None = Field(
        default=None, description="while the wave is open: when these figures were computed (at most hourly)"
    )
    rate_step: float | None = Field(default=None, description="while the wave is open: rates are multiples of this")
    units: list[ParticipationRow]
