"""The sealed contact: only the service secret opens it, every box is as long as any other, duplicates are found
by a keyed hash, and addresses are checked before anything is stored."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from service.invitations import contact
from service.links import new_token

SECRET = b"s" * 48


def test_only_the_secret_opens_a_contact_and_every_box_has_one_length() -> None:
    short = contact.Contact("a@example.com", "nl", new_token())
    long = contact.Contact(("x" * 60) + "@" + ("d" * 60 + ".") * 3 + "example.com", "en", new_token())
    boxes = [contact.seal(SECRET, short), contact.seal(SECRET, long)]
    assert len({len(box) for box in boxes}) == 1
    assert contact.unseal(SECRET, boxes[0]) == short and contact.unseal(SECRET, boxes[1]) == long
    assert all(short.token.encode() not in box and b"example" not in box for box in boxes)
    with pytest.raises(InvalidTag):
        contact.unseal(b"another secret" * 4, boxes[0])
    assert contact.seal(SECRET, short) != boxes[0]  # a fresh nonce each time: equal contacts look different


def test_email_mac_is_per_wave_and_case_blind() -> None:
    mac = contact.email_mac(SECRET, 1, "Ann@Example.com")
    assert mac == contact.email_mac(SECRET, 1, "ann@example.com")
    assert mac != contact.email_mac(SECRET, 2, "ann@example.com")  # no pairing of one person across waves
    assert mac != contact.email_mac(b"x" * 48, 1, "ann@example.com")


@pytest.mark.parametrize("raw", ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "x@foo.invalid"])
def test_malformed_addresses_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        contact.normalise(raw)


def test_addresses_are_sent_to_in_ascii() -> None:
    assert contact.normalise("Ann@Example.COM") == "Ann@example.com"
    assert contact.normalise("ann@bücher.de") == "ann@xn--bcher-kva.de"
