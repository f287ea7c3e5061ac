"""Changing a subject's identities inside free text, with presidio-anonymizer.

Spans are found as the identities' written forms (exact, or ignoring case for e-mail
addresses); presidio-anonymizer applies the operator (replace with ``<EMAIL_ADDRESS>``,
or with a corrected value) and resolves overlapping spans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from governance.dsar.identities import Identity, IdentityType

# The Presidio entity type each identity is labelled with when redacted.
ENTITY_OF = {
    IdentityType.EMAIL: "EMAIL_ADDRESS",
    IdentityType.PHONE: "PHONE_NUMBER",
    IdentityType.NATIONAL_ID: "NATIONAL_ID",
    IdentityType.USER_ID: "USER_ID",
}


if TYPE_CHECKING:
    from presidio_anonymizer.entities import RecognizerResult


@lru_cache(maxsize=1)
def _engine() -> Any:
    # Imported when first needed: presidio-anonymizer takes seconds to import.
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


def _operator(new_value: str) -> Any:
    from presidio_anonymizer.entities import OperatorConfig

    return OperatorConfig("replace", {"new_value": new_value})


def identity_spans(text: str, identities: Sequence[Identity]) -> list[RecognizerResult]:
    """Where the identities' written forms occur in ``text`` (character offsets)."""
    from presidio_anonymizer.entities import RecognizerResult

    spans = []
    for ident in identities:
        flags = re.IGNORECASE if ident.case_insensitive else 0
        for form in ident.text_variants():
            for m in re.finditer(re.escape(form), text, flags):
                spans.append(RecognizerResult(ENTITY_OF[ident.type], m.start(), m.end(), 1.0))
    return spans


def redact_identities(text: str, identities: Sequence[Identity],
                      replacement: str | None = None) -> str:
    """``text`` with each identity replaced by ``<TYPE>`` (or by ``replacement``)."""
    spans = identity_spans(text, identities)
    if replacement is None:
        return _replace(text, spans)
    if not spans:
        return text
    operators = {"DEFAULT": _operator(replacement)}
    return _engine().anonymize(text=text, analyzer_results=spans, operators=operators).text


def _replace(text: str, spans: list[RecognizerResult]) -> str:
    """``text`` with each span replaced by ``<TYPE>`` of its entity type."""
    if not spans:
        return text
    operators = {e: _operator(f"<{e}>") for e in {s.entity_type for s in spans}}
    return _engine().anonymize(text=text, analyzer_results=spans, operators=operators).text


def keep_only_subject(text: str, identities: Sequence[Identity]) -> str:
    """``text`` with personal data of anyone else masked as ``<TYPE>``: detected entities
    that are not one of the subject's identities (for access exports)."""
    from presidio_anonymizer.entities import RecognizerResult

    from governance.detection.text import detect_line

    own = identity_spans(text, identities)
    others = [RecognizerResult(e.type, e.start, e.end, e.score) for e in detect_line(text)
              if not any(o.start <= e.start and e.end <= o.end for o in own)]
    return _replace(text, others)
