"""Providers: how the audit asks the encryption (issue 15) and retention (issue 16)
subsystems about their state, and what it does while they are absent.

A provider is looked up by module and function name at run time; when the module or the
function is not there, the audit uses its built-in check (or reports the check as
``not_applicable``: never as passed). Expected functions:

- ``governance.encryption.audit.encryption_status(inventory, store, record=False)`` (issue
  15) -> one object (or dict) per column the encryption policy covers, with ``source,
  table, column, required, status`` (encrypted | plaintext | mixed | invalid |
  missing_keys | unreadable) and the counts ``cells, plaintext_cells, invalid_cells,
  missing_key_cells, shredded_cells``.
- ``governance.retention.audit_retention(inventory, store, today) -> Iterable[dict]``,
  one dict per (rule, table): ``source, table, rule, rows_due, rows_held`` (ints),
  ``clock_column, basis, action``; and optionally ``uncovered`` rows naming personal-data
  columns no rule covers: ``{"source", "table", "column", "category", "uncovered": True}``.

Built-in fallbacks: the encryption policy is ``processing.yaml``'s
``encryption_categories`` or DEFAULT_ENCRYPTED_CATEGORIES, and a cell is an envelope when
it matches ENVELOPE_PATTERN; retention periods come from ``processing.yaml`` (``retention:
{days, clock_column}`` per table).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from governance.taxonomy import CATEGORIES

ENCRYPTION_PROVIDER = ("governance.encryption.audit", "encryption_status")
RETENTION_PROVIDER = ("governance.retention", "audit_retention")

# Issue 15's defaults: national IDs, financial data, health, biometric, precise location
# and every category PIPL Art. 28 calls sensitive; passwords are hashed, not encrypted.
DEFAULT_ENCRYPTED_CATEGORIES = frozenset(
    k for k, c in CATEGORIES.items()
    if (c.pipl_art28 or c.gdpr_art9 or k.startswith("financial.")) and
    not k.startswith("credential."))

# The built-in envelope shape: ``gkenc:v<version>:<key id>:<nonce>:<ciphertext>`` with
# base64url parts. A provider's own format replaces it (``envelope_pattern`` attribute of
# the module, when it has one).
ENVELOPE_PATTERN = r"^gkenc:v[0-9]+:[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_=-]{16}:[A-Za-z0-9_=-]{22,}$"


def provider(spec: tuple[str, str]) -> Callable[..., Any] | None:
    """The provider function ``module:function``, or None when it is not installed."""
    module, name = spec
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def envelope_pattern() -> str:
    """The regular expression a valid envelope cell matches (the encryption module's
    ``ENVELOPE_PATTERN`` when it defines one, else the built-in shape)."""
    try:
        mod = importlib.import_module("governance.crypto.field")
    except ImportError:
        return ENVELOPE_PATTERN
    prefix = getattr(mod, "TEXT_PREFIX", None)
    if isinstance(prefix, str) and getattr(mod, "ENVELOPE_PATTERN", None) is None:
        return "^" + re.escape(prefix) + r"[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_-]{22,}$"
    pattern = getattr(mod, "ENVELOPE_PATTERN", None)
    if isinstance(pattern, str):
        return pattern
    if isinstance(pattern, re.Pattern):
        return pattern.pattern
    return ENVELOPE_PATTERN


def encryption_categories(processing: Any) -> tuple[frozenset[str], str]:
    """The categories the (built-in) policy requires encrypted, and where that came from."""
    if processing is not None and processing.encryption_categories is not None:
        return frozenset(processing.encryption_categories), \
            f"{processing.path}: encryption_categories"
    return DEFAULT_ENCRYPTED_CATEGORIES, "built-in default (issue 15 policy not installed)"


def make_envelope(key_id: str, nonce: bytes, ciphertext: bytes) -> str:
    """A cell in the built-in envelope shape (for tools and tests that write one)."""
    import base64

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).decode()

    return f"gkenc:v1:{key_id}:{b64(nonce)}:{b64(ciphertext)}"
