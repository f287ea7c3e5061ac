"""Masking of personal data before it is shown, logged or stored in reports."""

from __future__ import annotations

import hashlib


def mask_value(value: object, entity_type: str | None = None) -> str:
    """A masked form of ``value`` that keeps its shape but not enough to identify anyone.

    E-mail addresses keep the first character and the domain (``j***@example.com``);
    other values keep at most a quarter of their characters (first one, last two) and
    short values are masked entirely.
    """
    text = str(value)
    if entity_type == "EMAIL_ADDRESS" or ("@" in text and entity_type is None):
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}" if domain else "***"
    n = len(text)
    if n < 8:
        return "*" * n
    keep_tail = 2
    return text[:1] + "*" * (n - 1 - keep_tail) + text[-keep_tail:]


def fingerprint(value: object, salt: str = "") -> str:
    """A short, stable, non-reversible reference to ``value`` (for logs that must correlate)."""
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()[:16]


def mask_free_text(text: str) -> str:
    """Free text typed by a person (a reason, a note) with the personal data the project's
    detector finds in it replaced by its type (``<EMAIL_ADDRESS>``), before it is stored
    anywhere kept for good (the audit log, legal holds)."""
    from governance.detection.text import detect_line, redact

    return redact(text, detect_line(text))
