"""Detection in free text lines (logs, exports): entities with character offsets, and redaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from governance.detection.analyzer import Entity, analyze_text

# Presidio scores a phonenumbers-validated phone number 0.4 when no context word is near
# (and with no NLP model there are no tokens to find one), so 0.4 keeps those.
DEFAULT_MIN_SCORE = 0.4


def detect_line(text: str, min_score: float = DEFAULT_MIN_SCORE,
                country: str | None = None) -> list[Entity]:
    """Entities in ``text`` scoring at least ``min_score``; offsets count characters.
    ``country`` (the record's, ISO 3166 alpha-2) admits national phone numbers unlabelled."""
    return analyze_text(text, score_threshold=min_score, country=country)


def redact(text: str, entities: Iterable[Entity]) -> str:
    """``text`` with every entity replaced by ``<TYPE>``; overlapping spans merge, and the
    merged span takes the type of its highest-scoring entity."""
    spans: list[list[Any]] = []
    for e in sorted(entities, key=lambda e: (e.start, -e.end)):
        if spans and e.start < spans[-1][1]:
            last = spans[-1]
            last[1] = max(last[1], e.end)
            if e.score > last[3]:
                last[2], last[3] = e.type, e.score
        else:
            spans.append([e.start, e.end, e.type, e.score])
    out, pos = [], 0
    for start, end, etype, _ in spans:
        out.append(text[pos:start])
        out.append(f"<{etype}>")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def detect_lines(lines: Iterable[str], min_score: float = DEFAULT_MIN_SCORE
                 ) -> Iterator[tuple[int, str, list[Entity]]]:
    """For each input line (trailing newline removed): its 1-based number, text, entities."""
    for number, line in enumerate(lines, 1):
        text = line.rstrip("\r\n")
        yield number, text, detect_line(text, min_score)


def entity_json(e: Entity) -> dict[str, Any]:
    """The JSON form of an entity in ``govkit detect`` output."""
    return {"type": e.type, "start": e.start, "end": e.end, "score": e.score,
            "recognizer": e.recognizer}
