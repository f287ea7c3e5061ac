"""Declarative recognizers: one module per identifier, each exporting ``SPEC``.

A ``RecognizerSpec`` is written once and used by every detection path: the Presidio
analyzer (per text) wraps it in a PatternRecognizer, and column scans read the same
patterns and validators. Add an identifier by adding a module here and naming it in
``_MODULES``; put its valid and invalid examples next to it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

# Shapes some recognizer patterns fit that are not personal data: ISO dates and timestamps,
# clock times, decimal numbers, UUIDs (phonenumbers accepts "2024-01-05" as a number).
NOT_PERSONAL = (
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}:\d{2}(?::\d{2})?|-?\d+\.\d+"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


@dataclass(frozen=True)
class PatternSpec:
    """A named regular expression and the score a bare match gets."""

    name: str
    regex: str
    score: float


@dataclass(frozen=True)
class RecognizerSpec:
    """One identifier: how it looks, how it is validated, what it means.

    ``patterns`` and ``validator`` serve the per-text path (Python ``re``, one value at a
    time). ``cell_pattern`` (RE2 syntax, no look-around: it must match a whole trimmed
    cell), ``cell_normalize`` and ``cell_validator`` serve the column scan, which checks
    whole Arrow arrays at once. ``presidio_builtin`` names the Presidio recognizer that
    stands for this spec on the per-text path (we then do not register our own there).
    """

    name: str
    entity_type: str
    category: str
    patterns: tuple[PatternSpec, ...]
    cell_pattern: str
    cell_validator: Callable[[pa.Array], np.ndarray] | None = None
    cell_normalize: Callable[[pa.Array], pa.Array] | None = None
    cell_score: float = 1.0
    validator: Callable[[str], bool] | None = None
    presidio_builtin: str | None = None
    context: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en", "zh")
    examples_valid: tuple[str, ...] = ()
    examples_invalid: tuple[str, ...] = ()
    normalize: Callable[[str], str] = field(default=lambda s: s)

    def compiled(self) -> list[tuple[PatternSpec, re.Pattern[str]]]:
        """The patterns compiled (case-insensitive, as Presidio compiles them)."""
        return [(p, re.compile(p.regex, re.IGNORECASE)) for p in self.patterns]

    def is_valid(self, text: str) -> bool:
        """True when ``text`` passes the validator (or there is none)."""
        return self.validator is None or bool(self.validator(self.normalize(text)))


    def validate_cells(self, values: pa.Array) -> np.ndarray:
        """One boolean per value of ``values`` (whole trimmed cells matching cell_pattern)."""
        if self.cell_normalize is not None:
            values = self.cell_normalize(values)
        if self.cell_validator is None:
            return np.ones(len(values), dtype=bool)
        return self.cell_validator(values)


# Also the column scan's order of preference when one value fits several identifiers:
# checksum-validated, more specific identifiers first.
_MODULES = ("cn_resident_id", "cn_uscc", "iban", "cn_bank_card", "credit_card", "us_ssn",
            "ip_address", "cn_mobile", "phone", "email")


def load_specs() -> list[RecognizerSpec]:
    """Every recognizer spec shipped with the toolkit."""
    return [importlib.import_module(f"{__name__}.{m}").SPEC for m in _MODULES]
