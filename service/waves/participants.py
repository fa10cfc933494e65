"""A wave's participants: the upload (validated whole, with row numbers; nothing stored unless every row is
right), and taking out someone who left. The list is fixed once the wave opens: no padding of small groups.

Each participant gets a random link token here. What is kept of it: its SHA-256 (to recognise the link), the
attributes sealed under it, and the contact box (email, language, token) sealed under the service secret until
the wave closes, for the mail job. HR gets counts, never a link.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from service import links
from service.errors import Conflict, Unprocessable
from service.invitations import contact
from service.models import Invitation, Unit, Wave
from service.units.service import load_tree
from service.waves.schemas import ParticipantIn

MAX_VALUES_PER_ATTRIBUTE = 50
MAX_REPORTED_ROW_ERRORS = 100
_FIXED = "the participant list of an open wave is fixed (no padding of small groups): a new hire joins the next wave"


@dataclass(frozen=True)
class Uploaded:
    """What an upload created: invitations per unit key."""

    per_unit: dict[str, int]

    @property
    def created(self) -> int:
        return sum(self.per_unit.values())


def parse_csv(body: bytes, attributes: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of a CSV upload with a header ``unit_key,email[,language],<attribute>,...`` as participant dicts."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable("the CSV is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    fixed = ("unit_key", "email", "language")
    missing = [name for name in fixed[:2] if name not in header]
    if missing:
        raise Unprocessable(f"the CSV needs a header row with the columns unit_key and email; missing {missing[0]}")
    unexpected = [h for h in header if h not in fixed and h not in set(attributes)]
    if unexpected:
        raise Unprocessable(f"unknown CSV columns: {', '.join(unexpected[:10])}")
    rows: list[dict[str, Any]] = []
    try:
        for row in reader:
            if None in row:
                raise Unprocessable(f"row {len(rows) + 1}: more fields than the header has")
            parsed: dict[str, Any] = {
                "unit_key": row.get("unit_key") or "",
                "email": row.get("email") or "",
                "attributes": {k: v for k, v in row.items() if k not in fixed},
            }
            if row.get("language"):
                parsed["language"] = row["language"]
            rows.append(parsed)
    except csv.Error as exc:
        raise Unprocessable(f"the CSV cannot be read: {exc}") from exc
    return rows


def add_participants(
    session: Session, wave: Wave, raw_rows: list[dict[str, Any]], *, secret: bytes, max_rows: int
) -> Uploaded:
    """Validate every row, then create one invitation per row (mailed by the mail job once the wave is open).

    A draft takes participants; of the open waves only a continuous one (people are invited as they leave). A
    scoped wave takes only the units of its scope's subtree.
    """
    if not takes_participants(wave):
        raise Conflict(_FIXED if wave.state == "open" else f"participants cannot join a {wave.state} wave")
    if len(raw_rows) > max_rows:
        raise Unprocessable(f"at most {max_rows} participants in one upload; got {len(raw_rows)}")
    if not raw_rows:
        raise Unprocessable("no participants given")
    unit_ids = dict(session.execute(select(Unit.key, Unit.id)).all())
    scope = None if wave.scope_unit_id is None else load_tree(session, wave.scope_unit_id)
    rows, emails, errors = _checked_rows(wave, raw_rows, unit_ids, None if scope is None else set(scope.keys))
    errors += _duplicates(session, wave, emails, secret)
    values = _values_with(wave, rows)
    if not errors:
        errors.extend(_too_many_values(values))
    if errors:
        errors.sort(key=lambda e: e.get("row", 0))
        shown = errors[:MAX_REPORTED_ROW_ERRORS]
        summary = "; ".join(f"row {e['row']}: {e['reason']}" if "row" in e else e["reason"] for e in shown[:5])
        raise Unprocessable(f"{len(errors)} problem(s), nothing was stored: {summary}", details=shown)

    new = []
    for row, email in zip(rows, emails.values(), strict=True):  # without errors, every row has its email
        token = links.new_token()
        language = cast(contact.Language, row.language or wave.language)
        person = contact.Contact(email=email, language=language, token=token)
        new.append(
            {
                "wave_id": wave.id,
                "unit_id": unit_ids[row.unit_key],
                "sealed_attributes": links.seal(token, row.attributes),
                "token_hash": links.token_hash(token),
                "sealed_contact": contact.seal(secret, person),
                "email_mac": contact.email_mac(secret, wave.id, email),
                "state": "pending",
                "retries": 0,
            }
        )
    session.execute(insert(Invitation), new)
    wave.attribute_values = values
    return Uploaded(dict(Counter(row.unit_key for row in rows)))


def takes_participants(wave: Wave) -> bool:
    """A draft wave takes participants, and an open continuous one: the only list that grows once open."""
    return wave.state == "draft" or (wave.state == "open" and wave.kind == "continuous")


def _checked_rows(
    wave: Wave, raw_rows: list[dict[str, Any]], unit_ids: dict[str, int], scope: set[str] | None
) -> tuple[list[ParticipantIn], dict[int, str], list[dict[str, Any]]]:
    """The rows that parse, their normalised emails by row number, and every problem with a row number
    (``scope``: the unit keys of a scoped wave's subtree)."""
    expected = set(wave.attributes)
    errors: list[dict[str, Any]] = []
    rows: list[ParticipantIn] = []
    emails: dict[int, str] = {}
    for number, raw in enumerate(raw_rows, start=1):
        try:
            row = ParticipantIn.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            errors.append({"row": number, "field": field, "reason": f"{field}: {first['msg']}"})
            continue
        try:
            emails[number] = contact.normalise(row.email)
        except ValueError as exc:
            errors.append({"row": number, "field": "email", "reason": f"email: {exc}"})
        if row.unit_key not in unit_ids:
            errors.append({"row": number, "field": "unit_key", "reason": f"unknown unit {row.unit_key!r}"})
        elif scope is not None and row.unit_key not in scope:
            errors.append({"row": number, "field": "unit_key", "reason": f"{row.unit_key!r} is outside the scope"})
        missing = sorted(expected - row.attributes.keys())
        unknown = sorted(row.attributes.keys() - expected)
        if missing:
            errors.append({"row": number, "field": "attributes", "reason": f"missing {', '.join(missing)}"})
        if unknown:
            errors.append(
                {"row": number, "field": "attributes", "reason": f"not an attribute of this wave: {', '.join(unknown)}"}
            )
        rows.append(row)
    return rows, emails, errors


def _duplicates(session: Session, wave: Wave, emails: dict[int, str], secret: bytes) -> list[dict[str, Any]]:
    """An address may take part in a wave once: twice in this upload, or already invited, is refused."""
    errors: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    macs: dict[str, int] = {}
    for number, email in emails.items():
        key = email.lower()
        if key in first_row:
            errors.append({"row": number, "field": "email", "reason": f"the same email as row {first_row[key]}"})
            continue
        first_row[key] = number
        macs[contact.email_mac(secret, wave.id, email)] = number
    stored = set(session.scalars(select(Invitation.email_mac).where(Invitation.wave_id == wave.id)))
    errors += [
        {"row": number, "field": "email", "reason": "already a participant of this wave"}
        for mac, number in macs.items()
        if mac in stored
    ]
    return errors


def _values_with(wave: Wave, rows: list[ParticipantIn]) -> dict[str, list[str]]:
    """The wave's attribute values with those of ``rows`` added, sorted (kept per wave, not per person)."""
    values: dict[str, set[str]] = {name: set(wave.attribute_values.get(name, ())) for name in wave.attributes}
    for row in rows:
        for name, value in row.attributes.items():
            if name in values:
                values[name].add(value)
    return {name: sorted(found) for name, found in values.items()}


def _too_many_values(values: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Cuts are published per attribute value: refuse attributes with so many values they identify people."""
    return [
        {
            "field": f"attributes.{name}",
            "reason": f"{name} has {len(vals)} distinct values; at most {MAX_VALUES_PER_ATTRIBUTE}",
        }
        for name, vals in values.items()
        if len(vals) > MAX_VALUES_PER_ATTRIBUTE
    ]


def remove_participants(session: Session, wave: Wave, raw_emails: list[str], *, secret: bytes) -> int:
    """Take the participants with these emails out of ``wave``; every address must be one of its participants.

    From a draft their invitations go. From an open wave they stay counted as invited (so no figure changes and
    none tells whether they had answered), but their contact is erased and their link stops working: no mail
    reaches a mailbox that may now be read by someone else. Responses are never touched.
    """
    if wave.state in ("closing", "closed"):
        raise Conflict(f"a {wave.state} wave's participants are final (their contacts are erased as it closes)")
    errors: list[dict[str, Any]] = []
    macs: dict[str, int] = {}
    for number, raw in enumerate(raw_emails, start=1):
        try:
            macs.setdefault(contact.email_mac(secret, wave.id, contact.normalise(raw)), number)
        except ValueError as exc:
            errors.append({"row": number, "field": "email", "reason": f"email: {exc}"})
    stored = session.execute(
        select(Invitation.email_mac, Invitation.id).where(
            Invitation.wave_id == wave.id, Invitation.email_mac.is_not(None)
        )
    )
    found = {mac: invitation_id for mac, invitation_id in stored if mac in macs}
    errors += [
        {"row": number, "field": "email", "reason": "not a participant of this wave"}
        for mac, number in macs.items()
        if mac not in found
    ]
    if errors:
        errors.sort(key=lambda e: e["row"])
        summary = "; ".join(f"row {e['row']}: {e['reason']}" for e in errors[:5])
        raise Unprocessable(f"{len(errors)} problem(s), nobody was removed: {summary}", details=errors[:100])
    ids = list(found.values())
    if wave.state == "draft":
        session.execute(delete(Invitation).where(Invitation.id.in_(ids)))
    else:
        session.execute(
            update(Invitation)
            .where(Invitation.id.in_(ids))
            .values(state="removed", token_hash=None, sealed_contact=None, email_mac=None, retries=0, retry_at=None)
        )
    return len(ids)
