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


@dataclass(frozen=True)
class PatternSpec:
    """A named regular expression and the score a bare match gets."""

    name: str
    regex: str
    score: float


@dataclass(frozen=True)
class RecognizerSpec:
    """One identifier: how it looks, how it is validated, what it means."""

    name: str
    entity_type: str
    category: str
    patterns: tuple[PatternSpec, ...]
    validator: Callable[[str], bool] | None = None
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


_MODULES = ("cn_resident_id", "cn_mobile", "cn_bank_card", "cn_uscc")


def load_specs() -> list[RecognizerSpec]:
    """Every recognizer spec shipped with the toolkit."""
    return [importlib.import_module(f"{__name__}.{m}").SPEC for m in _MODULES]
