"""Identifiers for runs, requests and holds that never read as personal data."""
from __future__ import annotations

import secrets

#: Lower-case letters and digits without the look-alikes ``0 o 1 l i``.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_LETTERS = "abcdefghjkmnpqrstuvwxyz"


def new_id(prefix: str, stamp: str = "", length: int = 8) -> str:
    """Return ``prefix-stamp-suffix`` (``prefix-suffix`` without a stamp), random and unique.

    The random suffix always starts with a letter, so it is never a run of digits that a
    detector (ours or anyone's) would take for a phone number or an account number.
    """
    suffix = secrets.choice(_LETTERS) + "".join(secrets.choice(_ALPHABET)
                                                for _ in range(length - 1))
    return "-".join(part for part in (prefix, stamp, suffix) if part)
