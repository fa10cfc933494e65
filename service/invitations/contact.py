"""A participant's contact (email, language, link token), sealed under the service secret while mail may be sent.

The token is the one thing that opens a participant's answers, and the email says who they are: together they
would pair a response with a person. So the two are kept only inside one AES-256-GCM box under a key derived
from the service secret, padded to one length, and erased when the wave closes. A database dump without the
secret holds neither. The email's keyed hash (``email_mac``, per wave) finds duplicates and the participant HR
removes without opening any box.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from email_validator import EmailNotValidError, validate_email

Language = Literal["nl", "en"]
SEAL_BLOCK = 512  # an address is at most 254 characters: every sealed contact has the same length
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Contact:
    email: str
    language: Language
    token: str


def normalise(raw: str) -> str:
    """The address as mail is sent to it (ASCII, the domain lower-cased); ValueError says what is wrong."""
    try:
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return str(checked.ascii_email)


def email_mac(secret: bytes, wave_id: int, email: str) -> str:
    """A keyed hash of ``email`` within one wave: equal for equal addresses (case aside), useless without the secret."""
    return hmac.new(secret, f"email:{wave_id}:{email.lower()}".encode(), hashlib.sha256).hexdigest()


def _key(secret: bytes, purpose: bytes) -> bytes:
    return hashlib.sha256(purpose + b":" + secret).digest()


def seal_bytes(secret: bytes, purpose: bytes, plain: bytes) -> bytes:
    """``plain`` padded to a multiple of SEAL_BLOCK and encrypted under a key for ``purpose`` (nonce + ciphertext)."""
    padded = plain.ljust((len(plain) // SEAL_BLOCK + 1) * SEAL_BLOCK)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(_key(secret, purpose)).encrypt(nonce, padded, purpose)


def unseal_bytes(secret: bytes, purpose: bytes, sealed: bytes) -> bytes:
    """What ``seal_bytes`` sealed, padding included; raises ``cryptography.exceptions.InvalidTag`` otherwise."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    return AESGCM(_key(secret, purpose)).decrypt(nonce, body, purpose)


def seal(secret: bytes, contact: Contact) -> bytes:
    plain = json.dumps({"e": contact.email, "l": contact.language, "t": contact.token}, separators=(",", ":"))
    return seal_bytes(secret, b"contact", plain.encode())


def unseal(secret: bytes, sealed: bytes) -> Contact:
    fields = json.loads(unseal_bytes(secret, b"contact", sealed))  # JSON ignores the padding's trailing spaces
    return Contact(email=fields["e"], language=fields["l"], token=fields["t"])
