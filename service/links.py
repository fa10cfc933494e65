"""Personal link tokens: 256 random bits, kept by nobody but the participant.

The invitation stores SHA-256(token), so the server can recognise a link; the response stores
HMAC-SHA256(secret, token), so a returning link finds its own answers. Neither can be turned back into
the token, and without the secret the two cannot be paired: a database dump alone ties no response to
an invitation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

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
