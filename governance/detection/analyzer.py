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
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from governance.detection.recognizers import RecognizerSpec, load_specs
from governance.detection.recognizers.phone import PHONE_REGIONS, national_numbers

log = logging.getLogger(__name__)

# Presidio's predefined recognizers we run by default: the ones that are precise without
# context. Driver licences, bank numbers, dates, URLs and the like match too much
# ordinary data to classify a column on.
# (Cards and IBANs are ours: Presidio's patterns miss brands, lengths and printed IBANs.)
PRESIDIO_RECOGNIZERS = (
    "EmailRecognizer",
    "PhoneRecognizer",
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
    # A phone number written with its country code or after a phone label: it outranks a
    # US SSN shape inside it.
    international: bool = False


def _offline_tldextract() -> None:
    """Make tldextract (used by Presidio's e-mail recognizer) use its bundled suffix list."""
    import tldextract
    import tldextract.tldextract as tld_module

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    tld_module.TLD_EXTRACTOR = offline
    tldextract.extract = offline  # type: ignore[assignment,unused-ignore]
    import presidio_analyzer.predefined_recognizers.generic.email_recognizer as email_mod

    email_mod.tldextract.extract = offline  # type: ignore[assignment]


def spacy_model_name() -> str | None:
    """The installed spaCy model NER is taken from, or None when there is none."""
    wanted = os.environ.get("GOVKIT_SPACY_MODEL")
    candidates = [wanted] if wanted else ["en_core_web_lg", "en_core_web_md", "en_core_web_sm"]
    for name in candidates:
        if name and importlib.util.find_spec(name) is not None:
            return name
    return None


def spec_recognizer(spec: RecognizerSpec, language: str = LANGUAGE):
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
def build_analyzer():
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
        name = str(getattr(rec, "name", ""))
        if name not in keep:
            registry.remove_recognizer(name)
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


# Labelled national phone numbers ("Phone: 020 7946 0958") and those of a known country.
LABELLED_PHONE_SCORE = 0.75


@lru_cache(maxsize=1)
def _rank() -> dict[str, int]:
    """Entity type -> rank (lower wins an overlap): the recognizers' order, checksum-validated
    identifiers first; NER types last."""
    return {s.entity_type: i for i, s in enumerate(load_specs())}


def resolve_overlaps(entities: list[Entity]) -> list[Entity]:
    """``entities`` without the spans that overlap a better one: better is a higher-ranked
    recognizer, then the longer span, then the higher score (a phone number is never
    reported inside a card number, an IBAN or an ID)."""
    rank = _rank()
    # A phone number written internationally (+44 ..., validated) outranks a US SSN shape
    # inside it ("+591 800 17 1234"), but not the checksummed identifiers.
    international = rank.get("US_SSN", len(rank)) - 0.5

    def key(e: Entity) -> tuple[float, int, float]:
        r = float(rank.get(e.type, len(rank)))
        if e.type == "CN_MOBILE":
            r = international - 0.25  # validated against CN's own mobile ranges
        elif e.type == "PHONE_NUMBER" and e.international:
            r = international
        return r, e.start - e.end, -e.score

    kept: list[Entity] = []
    for e in sorted(entities, key=key):
        if not any(e.start < k.end and k.start < e.end for k in kept):
            kept.append(e)
    return kept


def analyze_text(text: str, context: list[str] | None = None,
                 score_threshold: float = 0.3, country: str | None = None) -> list[Entity]:
    """The entities found in ``text``; ``context`` words (e.g. a column name) raise scores.

    ``country`` (ISO 3166 alpha-2, e.g. the record's country) lets national phone numbers
    count without a label. Overlapping spans are resolved by ``resolve_overlaps``.
    """
    if not text or not text.strip():
        return []
    results = build_analyzer().analyze(text=text, language=LANGUAGE, context=context,
                                       score_threshold=score_threshold)
    out = [
        Entity(r.entity_type, r.start, r.end, round(float(r.score), 4),
               (r.recognition_metadata or {}).get("recognizer_name", "unknown"))
        for r in results
    ]
    checked = [_phone(text, e, country) if e.type == "PHONE_NUMBER" else e for e in out]
    out = [e for e in checked if e is not None and not (e.type == "US_SSN"
                                                        and _inside_digit_groups(text, e))]
    if LABELLED_PHONE_SCORE >= score_threshold:
        out += [Entity("PHONE_NUMBER", b, e, LABELLED_PHONE_SCORE, "PhoneLabelRecognizer",
                       labelled or text[b:e].startswith(("+", "00")))
                for b, e, labelled in national_numbers(text, country)]
    return sorted(resolve_overlaps(out), key=lambda e: (e.start, -e.score, e.type))


_COUNTRY_CODE_BEFORE = re.compile(r"(?:\+|\b00)\d{1,4}[ .\-]?$")
_GROUP_BEFORE = re.compile(r"\d[ .\-]$")
_GROUP_AFTER = re.compile(r"[ .\-]\d")


def _inside_digit_groups(text: str, e: Entity) -> bool:
    """Whether a US SSN shape is part of a longer run of digit groups ("011.44.1344.429268",
    a phone number dialled from the US): an SSN stands alone."""
    return bool(_GROUP_BEFORE.search(text, max(e.start - 2, 0), e.start)
                or _GROUP_AFTER.match(text, e.end))


def _phone(text: str, e: Entity, country: str | None) -> Entity | None:
    """Presidio's phone match, kept only when phonenumbers finds it a valid number (not
    merely a possible one) and it is no house number and postcode ("12, 10115 Berlin": a
    comma, which no written phone number holds)."""
    span = text[e.start:e.end]
    if "," in span or _COUNTRY_CODE_BEFORE.search(text, 0, e.start):
        return None  # an address, or the rest of a "+971 ..." number that is not valid
    international = span.lstrip("(").startswith(("+", "00"))
    regions = (country,) if country else PHONE_REGIONS
    for region in ("ZZ",) if span.startswith("+") else regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(span, region)):
                return Entity(e.type, e.start, e.end, e.score, e.recognizer, international)
        except phonenumbers.NumberParseException:
            continue
    return None


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
