"""The Presidio analyzer the toolkit uses for text: offline, with our recognizers added.

No spaCy model is needed: with none installed the analyzer runs Presidio's pattern and
checksum recognizers plus ours (``NoOpNlpEngine``). When a spaCy model is installed and
named by ``GOVKIT_SPACY_MODEL`` (or ``en_core_web_sm`` / ``en_core_web_lg`` is importable),
its NER adds PERSON and LOCATION.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from governance.detection.recognizers import RecognizerSpec, load_specs
from governance.detection.recognizers.phone import PHONE_REGIONS

log = logging.getLogger(__name__)

# Presidio's predefined recognizers we run by default: the ones that are precise without
# context. Driver licences, bank numbers, dates, URLs and the like match too much
# ordinary data to classify a column on.
PRESIDIO_RECOGNIZERS = (
    "EmailRecognizer",
    "PhoneRecognizer",
    "CreditCardRecognizer",
    "IbanRecognizer",
    "IpRecognizer",
    "UsSsnRecognizer",
)
LANGUAGE = "en"


@dataclass(frozen=True)
class Entity:
    """One recognized entity: its type, character offsets into the text, score, recognizer."""

    type: str
    start: int
    end: int
    score: float
    recognizer: str


def _offline_tldextract() -> None:
    """Make tldextract (used by Presidio's e-mail recognizer) use its bundled suffix list."""
    import tldextract
    import tldextract.tldextract as tld_module

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    tld_module.TLD_EXTRACTOR = offline
    tldextract.extract = offline  # type: ignore[assignment]
    import presidio_analyzer.predefined_recognizers.generic.email_recognizer as email_mod

    email_mod.tldextract.extract = offline  # type: ignore[attr-defined]


def spacy_model_name() -> str | None:
    """The installed spaCy model NER is taken from, or None when there is none."""
    wanted = os.environ.get("GOVKIT_SPACY_MODEL")
    candidates = [wanted] if wanted else ["en_core_web_lg", "en_core_web_md", "en_core_web_sm"]
    for name in candidates:
        if name and importlib.util.find_spec(name) is not None:
            return name
    return None


def spec_recognizer(spec: RecognizerSpec, language: str = LANGUAGE):  # noqa: ANN201
    """Wrap a RecognizerSpec as a Presidio PatternRecognizer with its validator."""
    from presidio_analyzer import Pattern, PatternRecognizer

    class _SpecRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            return spec.is_valid(pattern_text) if spec.validator else None

    return _SpecRecognizer(
        supported_entity=spec.entity_type,
        name=spec.name,
        supported_language=language,
        patterns=[Pattern(p.name, p.regex, p.score) for p in spec.patterns],
        context=list(spec.context),
    )


@lru_cache(maxsize=1)
def build_analyzer():  # noqa: ANN201
    """The shared AnalyzerEngine (built once per process)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider, NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    _offline_tldextract()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    model = spacy_model_name()
    if model:
        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": LANGUAGE, "model_name": model}],
        }).create_engine()
    else:
        nlp_engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "no_op"}])
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    keep = set(PRESIDIO_RECOGNIZERS) | ({"SpacyRecognizer"} if model else set())
    for rec in list(registry.recognizers):
        if rec.name not in keep:
            registry.remove_recognizer(rec.name)
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(PhoneRecognizer(supported_regions=PHONE_REGIONS))
    for spec in load_specs():
        if spec.presidio_builtin is None:
            registry.add_recognizer(spec_recognizer(spec))
    log.info("analyzer ready: NER model %s", model or "none (pattern recognizers only)")
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine,
                          supported_languages=[LANGUAGE])


def supported_entities() -> list[str]:
    """The entity types the analyzer can report."""
    return sorted(build_analyzer().get_supported_entities(language=LANGUAGE))


def analyze_text(text: str, context: list[str] | None = None,
                 score_threshold: float = 0.3) -> list[Entity]:
    """The entities found in ``text``; ``context`` words (e.g. a column name) raise scores."""
    if not text or not text.strip():
        return []
    results = build_analyzer().analyze(text=text, language=LANGUAGE, context=context,
                                       score_threshold=score_threshold)
    out = [
        Entity(r.entity_type, r.start, r.end, round(float(r.score), 4),
               (r.recognition_metadata or {}).get("recognizer_name", "unknown"))
        for r in results
    ]
    return sorted(out, key=lambda e: (e.start, -e.score, e.type))


NER_ENTITIES = ("PERSON", "LOCATION", "NRP")
NER_BATCH = 64


def ner_counts(texts: list[str], min_score: float = 0.6) -> Counter[str]:
    """How many of ``texts`` mention each NER entity type (PERSON, LOCATION, NRP).

    Runs the spaCy model through Presidio's BatchAnalyzerEngine (``nlp.pipe``), never one
    call per text; empty when no model is installed.
    """
    if not spacy_model_name() or not texts:
        return Counter()
    from presidio_analyzer import BatchAnalyzerEngine

    batch = BatchAnalyzerEngine(analyzer_engine=build_analyzer())
    counts: Counter[str] = Counter()
    results = batch.analyze_iterator(texts, language=LANGUAGE, batch_size=NER_BATCH,
                                     entities=list(NER_ENTITIES), score_threshold=min_score)
    for found in results:
        counts.update({r.entity_type for r in found})
    return counts
