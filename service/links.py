"""Personal link tokens: 256 random bits, kept by nobody but the participant.

The invitation stores SHA-256(token), so the server can recognise a link; the response stores
HMAC-SHA256(secret, token), so a returning link finds its own answers. Neither can be turned back into
the token, and without the secret the two cannot be paired: a database dump alone ties no response to
an invitation.

The participant's attributes (what results are cut by) are sealed on the invitation with AES-256-GCM under a
key derived from the token, padded to a fixed length. Only a request that carries the token can read them,
to copy them onto the response. Otherwise a database reader could pair a response with the one invitation
of its unit that has the same attribute values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_mac(secret: bytes, token: str) -> str:
    return hmac.new(secret, b"response:" + token.encode(), hashlib.sha256).hexdigest()


def plausible(token: str) -> bool:
    """True when ``token`` has the shape of a token we hand out (any other string cannot be one)."""
    return bool(_TOKEN_SHAPE.fullmatch(token))


SEAL_BLOCK = 256  # sealed attributes are padded to a multiple of this, so their length says nothing
_NONCE_BYTES = 12


def _seal_key(token: str) -> bytes:
    return hashlib.sha256(b"attributes:" + token.encode()).digest()


def seal(token: str, attributes: Mapping[str, str]) -> bytes:
    """``attributes`` encrypted under a key only ``token`` gives (nonce + AES-GCM ciphertext)."""
    plain = json.dumps(dict(attributes), sort_keys=True, separators=(",", ":")).encode()
    padded = plain.ljust((len(plain) // SEAL_BLOCK + 1) * SEAL_BLOCK)  # JSON ignores the trailing spaces
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(_seal_key(token)).encrypt(nonce, padded, b"peil-attributes")


def unseal(token: str, sealed: bytes) -> dict[str, str]:
    """The attributes ``seal(token, ...)`` sealed; raises ``cryptography.exceptions.InvalidTag`` for another token."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    attributes: dict[str, str] = json.loads(AESGCM(_seal_key(token)).decrypt(nonce, body, b"peil-attributes"))
    return attributes
