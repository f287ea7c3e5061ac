"""Column classification: which data category a column holds, how sure we are, and why."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from governance.detection.analyzer import analyze_text
from governance.detection.column_names import category_from_name, context_words
from governance.detection.recognizers import load_specs
from governance.masking import mask_value
from governance.taxonomy import ENTITY_CATEGORY

# A value counts as "being" an entity when the entity spans this share of its characters.
FULL_MATCH_SHARE = 0.8
# A structured column is classified by values when this share of its values are one entity.
STRUCTURED_SHARE = 0.5
# A short (non-text) column needs this share of values containing an entity to be reported.
SHORT_COLUMN_ANY_SHARE = 0.2
# Free-text entities must reach this score (validated matches reach 1.0).
FREE_TEXT_MIN_SCORE = 0.6
# Columns whose median value is at least this long and has words are free text.
FREE_TEXT_MEDIAN_LEN = 20
NAME_ONLY_CONFIDENCE = 0.6
MAX_MASKED_SAMPLES = 3
# On ties, the more specific identifier (ours, checksum-validated) wins.
_PREFERENCE = [s.category for s in load_specs()]


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


def _texty(values: list[str]) -> bool:
    lengths = [len(v) for v in values]
    if not lengths or statistics.median(lengths) < FREE_TEXT_MEDIAN_LEN:
        return False
    worded = sum(1 for v in values if " " in v.strip() or any("\u4e00" <= c <= "\u9fff" for c in v))
    return worded >= len(values) / 2


def classify_column(column: str, values: Iterable[Any]) -> ColumnClassification:
    """Classify ``column`` from its name and ``values`` (a sample; None and blanks ignored)."""
    raw = list(values)
    texts = [str(v) for v in raw if v is not None and str(v).strip() != ""]
    name_category = category_from_name(column)
    context = context_words(column)
    counts = Counter(texts)

    full: Counter[str] = Counter()      # values that are entirely one entity, per category
    anywhere: Counter[str] = Counter()  # values containing the entity, per entity type
    scores: dict[str, list[float]] = {}
    recognizers: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    matched_values = 0
    for text, n in counts.items():
        entities = analyze_text(text, context=context)
        if entities:
            matched_values += n
        full_categories: set[str] = set()
        for e in entities:
            recognizers[e.recognizer] += n
            scores.setdefault(e.type, []).append(e.score)
            if len(examples.setdefault(e.type, [])) < MAX_MASKED_SAMPLES:
                examples[e.type].append(mask_value(text[e.start:e.end], e.type))
            if (e.end - e.start) >= FULL_MATCH_SHARE * len(text.strip()):
                full_categories.add(ENTITY_CATEGORY.get(e.type, e.type))
        for t in {e.type for e in entities}:
            anywhere[t] += n
        for c in full_categories:
            full[c] += n

    non_null = len(texts)
    free_text = _texty(texts)
    evidence: dict[str, Any] = {
        "name_signal": name_category,
        "recognizers": dict(recognizers.most_common()),
        "entity_share": {t: round(c / non_null, 4) for t, c in anywhere.most_common()}
        if non_null else {},
        "free_text": free_text,
    }
    result = ColumnClassification(column, None, 0.0, sampled=len(raw), non_null=non_null,
                                  matched=matched_values, free_text=free_text, evidence=evidence)

    category = _best(full, non_null)
    if category and not free_text and full[category] / non_null >= STRUCTURED_SHARE:
        types = [t for t, _ in anywhere.most_common() if ENTITY_CATEGORY.get(t, t) == category]
        share = full[category] / non_null
        score = statistics.fmean(s for t in types for s in scores[t])
        confidence = share * score
        if name_category == category:
            confidence = min(1.0, confidence + 0.2)
        result.category = category
        result.entity_types = types
        result.confidence = round(confidence, 4)
        result.masked_samples = [m for t in types for m in examples[t]][:MAX_MASKED_SAMPLES]
        evidence["method"] = "values+name" if name_category == category else "values"
        evidence["category_share"] = round(share, 4)
        return result

    found = [t for t, c in anywhere.most_common()
             if max(scores[t]) >= FREE_TEXT_MIN_SCORE
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
        result.confidence = round(anywhere[top] / non_null * statistics.fmean(scores[top]), 4)
        evidence["method"] = "values(partial)"
    else:
        evidence["method"] = "none"
        return result
    result.masked_samples = [m for t in found for m in examples[t]][:MAX_MASKED_SAMPLES]
    return result


def _best(full: Counter[str], non_null: int) -> str | None:
    """The category most values fully match; ties go to our checksum-validated identifiers."""
    if not full or not non_null:
        return None
    top = max(full.values())
    tied = sorted(c for c, n in full.items() if n == top)
    tied.sort(key=lambda c: _PREFERENCE.index(c) if c in _PREFERENCE else len(_PREFERENCE))
    return tied[0]
