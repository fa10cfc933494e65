"""Typed ORM models, one module per table."""

from service.models.api_key import ApiKey
from service.models.audit import AuditEntry
from service.models.base import Base
from service.models.export import ExportLock, ExportRun
from service.models.hr_session import HrSession
from service.models.instrument import PublishedInstrument
from service.models.invitation import Invitation
from service.models.outcome import OutcomeCount, OutcomePeriod
from service.models.participation import ParticipationSnapshot
from service.models.pilot import Pilot
from service.models.response import Response
from service.models.result import WaveResult
from service.models.unit import Unit
from service.models.wave import Wave

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "ExportLock",
    "ExportRun",
    "HrSession",
    "Invitation",
    "OutcomeCount",
    "OutcomePeriod",
    "ParticipationSnapshot",
    "Pilot",
    "PublishedInstrument",
    "Response",
    "Unit",
    "Wave",
    "WaveResult",
]
