"""Column classification: which data category a column holds, how sure we are, and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from governance.detection.analyzer import ner_counts, spacy_model_name
from governance.detection.cell_scan import MAX_EXAMPLES, ColumnMatches, default_specs, scan_columns
from governance.detection.column_names import category_from_name
from governance.taxonomy import ENTITY_CATEGORY

# A structured column is classified by values when this share of its values are one entity.
STRUCTURED_SHARE = 0.5
# A short (non-text) column needs this share of values containing an entity to be reported.
SHORT_COLUMN_ANY_SHARE = 0.2
# Entities found inside values count when their recognizer scores at least this.
FREE_TEXT_MIN_SCORE = 0.6
NAME_ONLY_CONFIDENCE = 0.6
# On ties, the more specific identifier (ranked first among the recognizers) wins.
_SPECS = default_specs()
_PREFERENCE = list(dict.fromkeys(s.category for s in _SPECS))
_SCORE = {s.entity_type: s.cell_score for s in _SPECS}


@dataclass
class ColumnClassification:
    """What one column holds, according to its name and a sample of its values."""

    column: str
    category: str | None
    confidence: float
    entity_types: list[str] = field(default_factory=list)
    free_text: bool = False
    sampled: int = 0
    non_null: int = 0
    matched: int = 0
    masked_samples: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def is_personal(self) -> bool:
        """True when the column was found to hold personal data."""
        return self.category is not None


def classify_column(column: str, values: Iterable[Any]) -> ColumnClassification:
    """Classify ``column`` from its name and ``values`` (a sample; None and blanks ignored)."""
    raw = list(values)
    texts = [str(v) for v in raw if v is not None]
    matches = scan_columns({column: pa.array(texts, pa.string())})[column]
    result = classify_matches(column, matches, sampled=len(raw))
    if matches.free_text and spacy_model_name():
        _add_ner(result, [t for t in texts if t.strip()])
    return result


def classify_matches(column: str, matches: ColumnMatches,
                     sampled: int | None = None) -> ColumnClassification:
    """Classify ``column`` from its name and the cell matches of a sample or a full scan."""
    name_category = category_from_name(column)
    non_null = matches.cells
    full: Counter[str] = Counter()
    for t, n in matches.whole.items():
        full[ENTITY_CATEGORY.get(t, t)] += n
    anywhere = matches.anywhere
    free_text = matches.free_text
    evidence: dict[str, Any] = {
        "name_signal": name_category,
        "entity_cells": dict(anywhere.most_common()),
        "entity_share": {t: round(c / non_null, 4) for t, c in anywhere.most_common()}
        if non_null else {},
        "free_text": free_text,
    }
    result = ColumnClassification(column, None, 0.0,
                                  sampled=non_null if sampled is None else sampled,
                                  non_null=non_null, matched=matches.matched_cells,
                                  free_text=free_text, evidence=evidence)

    category = _best(full, non_null)
    if category and not free_text and full[category] / non_null >= STRUCTURED_SHARE:
        types = [t for t, _ in anywhere.most_common() if ENTITY_CATEGORY.get(t, t) == category]
        share = full[category] / non_null
        score = max(_SCORE.get(t, 1.0) for t in types)
        confidence = share * score
        if name_category == category:
            confidence = min(1.0, confidence + 0.2)
        result.category = category
        result.entity_types = types
        result.confidence = round(confidence, 4)
        result.masked_samples = _examples(matches, types)
        evidence["method"] = "values+name" if name_category == category else "values"
        evidence["category_share"] = round(share, 4)
        return result

    found = [t for t, c in anywhere.most_common()
             if _SCORE.get(t, 1.0) >= FREE_TEXT_MIN_SCORE
             and (free_text or c / max(non_null, 1) >= SHORT_COLUMN_ANY_SHARE)]
    if name_category:
        result.category = name_category
        result.entity_types = found
        result.confidence = NAME_ONLY_CONFIDENCE
        evidence["method"] = "name"
    elif found and free_text:
        result.category = "free_text"
        result.entity_types = found
        share = sum(anywhere[t] for t in found) / non_null
        result.confidence = round(min(1.0, 0.7 + share), 4)
        evidence["method"] = "free_text"
    elif found:
        top = found[0]
        result.category = ENTITY_CATEGORY.get(top)
        result.entity_types = found
        result.confidence = round(anywhere[top] / non_null * _SCORE.get(top, 1.0), 4)
        evidence["method"] = "values(partial)"
    else:
        evidence["method"] = "none"
        return result
    result.masked_samples = _examples(matches, found)
    return result


def _examples(matches: ColumnMatches, types: list[str]) -> list[str]:
    return [m for t in types for m in matches.examples.get(t, [])][:MAX_EXAMPLES]


def _add_ner(result: ColumnClassification, texts: list[str]) -> None:
    """Add the names and places a spaCy model finds in free-text ``texts`` (batched)."""
    counts = ner_counts(texts)
    if not counts:
        return
    share = {t: round(n / max(result.non_null, 1), 4) for t, n in counts.items()}
    result.evidence["ner_share"] = share
    for t in counts:
        if t not in result.entity_types:
            result.entity_types.append(t)
    if result.category is None:
        result.category = "free_text"
        result.confidence = round(min(1.0, 0.7 + sum(share.values())), 4)
        result.evidence["method"] = "free_text(ner)"


def _best(full: Counter[str], non_null: int) -> str | None:
    """The category most values fully match; ties go to our checksum-validated identifiers."""
    if not full or not non_null:
        return None
    top = max(full.values())
    tied = sorted(c for c, n in full.items() if n == top)
    tied.sort(key=lambda c: _PREFERENCE.index(c) if c in _PREFERENCE else len(_PREFERENCE))
    return tied[0]
