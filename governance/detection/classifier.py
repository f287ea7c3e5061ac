"""Column classification: which data category a column holds, how sure we are, and why."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from governance.detection.analyzer import ner_counts, spacy_model_name
from governance.detection.cell_scan import MAX_EXAMPLES, ColumnMatches, default_specs, scan_columns
from governance.detection.column_names import (
    category_from_name,
    is_bare_name,
    is_numeric_address,
    normalise,
)
from governance.detection.values import (
    SALTED_HASHES,
    hashed_share,
    password_storage,
    share,
)
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


def classify_column(column: str, values: Iterable[Any], table: str | None = None,
                    person_key: bool = False) -> ColumnClassification:
    """Classify ``column`` from its name and ``values`` (a sample; None and blanks ignored).

    ``table`` is the table's name (a ``name`` column of a lookup table is no person's
    name); ``person_key`` says the column refers to a person's row (a declared reference
    to a table with a subject key, or that subject key itself).
    """
    raw = list(values)
    non_null = [v for v in raw if v is not None]
    array = None
    if non_null and all(isinstance(v, int) and not isinstance(v, bool) for v in non_null):
        try:
            array = pa.array(non_null, pa.int64())
        except OverflowError:
            array = None
    if array is None:
        array = pa.array([str(v) for v in non_null], pa.string())
    matches = scan_columns({column: array})[column]
    result = classify_matches(column, matches, sampled=len(raw), table=table,
                              person_key=person_key)
    texts = [str(v) for v in non_null]
    if matches.free_text and spacy_model_name():
        _add_ner(result, [t for t in texts if t.strip()])
    return result


def classify_matches(column: str, matches: ColumnMatches, sampled: int | None = None,
                     table: str | None = None, person_key: bool = False
                     ) -> ColumnClassification:
    """Classify ``column`` from its name and the cell matches of a sample or a full scan
    (``table`` and ``person_key`` as for ``classify_column``)."""
    result = _classify(column, matches, sampled, table)
    if result.category is None and person_key:
        result.category = "identity.user_id"
        result.confidence = 0.9
        result.evidence["method"] = "reference"
        result.evidence["reason"] = ("refers to a person's row: identifiable by reference "
                                     "(GDPR Art. 4(1))")
    return result


def _classify(column: str, matches: ColumnMatches, sampled: int | None,
              table: str | None) -> ColumnClassification:
    name_category = category_from_name(column)
    counts = matches.profile
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

    name_category = _weigh_name(column, name_category, counts, table, evidence)
    category = _best(full, non_null)
    credential = _credential(name_category, counts, free_text)
    if credential and not (category and full[category] / non_null >= STRUCTURED_SHARE):
        result.category = credential
        evidence["method"] = "name+values" if name_category == credential else "values"
        if credential == "credential.password":
            evidence["finding"] = password_storage(counts)
        result.confidence = 0.95 if hashed_share(counts) >= STRUCTURED_SHARE else 0.8
        return result  # no samples: not even masked parts of a secret leave the scan
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
    places = bool(table) and bool(_PLACE_TABLE.search(normalise(table or "")))
    by_values = None if free_text else _from_values(counts, name_category, places)
    if by_values:
        result.category = by_values
        result.confidence = round(min(1.0, 0.6 + 0.4 * _value_share(counts, by_values)), 4)
        evidence["method"] = "values+name" if by_values == name_category else "values"
        evidence["value_share"] = round(_value_share(counts, by_values), 4)
        return result
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


# A person's name / an address is read from the values when this share of them look so.
VALUE_SHARE = 0.5
# A ``name`` column of a lookup table counts as a person's name only above this share.
LOOKUP_PERSON_SHARE = 0.8
# Tables whose rows are things, not people: a bare ``name`` there names the thing.
_LOOKUP_TABLE = re.compile(
    r"(^|_)(categor(y|ies)|languages?|genres?|media_?types?|playlists?|artists?|products?"
    r"|items?|brands?|tags?|types?|status(es)?|countr(y|ies)|cities|city|regions?|stores?"
    r"|warehouses?|departments?|albums?|tracks?|films?|movies?|books?|ship_?modes?"
    r"|reasons?|promotions?|call_?centers?|web_?sites?|web_?pages?|catalog_?pages?"
    r"|lookups?|codes?|units?|currenc(y|ies))$")
# Tables whose rows are people: a bare ``name`` there is the person's.
_PERSON_TABLE = re.compile(
    r"(^|_)(users?|customers?|employees?|persons?|people|contacts?|members?|patients?"
    r"|clients?|students?|staff|accounts?|subscribers?|authors?|actors?|drivers?)$")
_ADDRESS_SIGNAL_WORDS = re.compile(r"(^|_)(state|province|county|district)(_|$)")
# Tables listing places (Sakila's ``city``, ``country``): their rows are places, not anyone's
# address; a person's address refers to them by key (the key is no address either).
_PLACE_TABLE = re.compile(
    r"(^|_)(cit(y|ies)|countr(y|ies)|regions?|provinces?|districts?|towns?"
    r"|municipalit(y|ies))$")
# Values read as cities: this share of them listed cities, and this share cities that are
# not also given names ("Florence", "Victoria"), which alone say nothing.
CITY_SHARE = 0.5
CITY_NOT_GIVEN_NAME_SHARE = 0.25
# Values named for a person's name of which this share names businesses: not personal.
ORGANISATION_SHARE = 0.3


def _weigh_name(column: str, name_category: str | None, counts: Counter[str],
                table: str | None, evidence: dict[str, Any]) -> str | None:
    """The name signal, weighed against the values and the table: a bare ``name`` is a
    person's only in a table of people or when its values are persons' names; integers
    are no address (``address_id``), lower-case words no state (an order's state)."""
    norm_table = normalise(table) if table else ""
    person = share(counts, "person") + share(counts, "person_word")
    if name_category and share(counts, "flag") >= 0.9:
        evidence["name_context"] = "yes/no flags, not the named data"
        return None
    if name_category is None and is_bare_name(column):
        lookup = bool(_LOOKUP_TABLE.search(norm_table))
        if _PERSON_TABLE.search(norm_table) and not lookup and person >= 0.1:
            evidence["name_context"] = "table of people"
            return "identity.name"
        if person >= (LOOKUP_PERSON_SHARE if lookup else VALUE_SHARE):
            return "identity.name"
        evidence["name_context"] = "lookup table" if lookup else "values are not persons' names"
        return None
    if name_category == "identity.name" and counts.get("values") and \
            share(counts, "organisation") >= ORGANISATION_SHARE and person < VALUE_SHARE:
        # classicmodels' customers.customerName: "Signal Gift Stores", "... Co."
        evidence["name_context"] = "organisations' names, not persons'"
        return None
    if name_category == "location.address" and counts.get("values"):
        if _PLACE_TABLE.search(norm_table) and share(counts, "street") < VALUE_SHARE:
            evidence["name_context"] = "a list of places, not anyone's address"
            return None
        if share(counts, "integer") >= 0.9 and not is_numeric_address(column):
            evidence["name_context"] = "integers are not addresses"
            return None
        if _ADDRESS_SIGNAL_WORDS.search(normalise(column)) and share(counts, "lower_word") >= 0.5:
            evidence["name_context"] = "status words, not places"
            return None
    return name_category


def _credential(name_category: str | None, counts: Counter[str], free_text: bool) -> str | None:
    """credential.password when the values are password hashes, or the name says password
    (plain text or hashed); credential.token when the name says secret or token."""
    if free_text:
        return None
    salted = sum(c for k, c in counts.items() if k.startswith("hash:")
                 and k[5:] in SALTED_HASHES)
    if counts.get("values") and salted / counts["values"] >= VALUE_SHARE:
        return "credential.password"
    if name_category in ("credential.password", "credential.token"):
        return name_category
    return None


def _from_values(counts: Counter[str], name_category: str | None,
                 places: bool = False) -> str | None:
    """identity.name or location.address read from the values, unless the name signal
    says another category (cities count where no name says person's name, outside tables
    listing ``places``)."""
    if name_category not in (None, "identity.name", "location.address"):
        return None
    if name_category in (None, "location.address") and not places and _cities(counts):
        return "location.address"
    # Single listed words ("Good", "Unknown") count only where the name says name.
    person = share(counts, "person") + (share(counts, "person_word")
                                        if name_category == "identity.name" else 0.0)
    if name_category != "location.address" and person >= VALUE_SHARE:
        return "identity.name"
    if share(counts, "street") + share(counts, "postcode") >= VALUE_SHARE:
        return "location.address"
    return None


def _cities(counts: Counter[str]) -> bool:
    """True when the values are mostly listed cities, enough of them not given names."""
    return (share(counts, "city") >= CITY_SHARE
            and share(counts, "city_not_given_name") >= CITY_NOT_GIVEN_NAME_SHARE)


def _value_share(counts: Counter[str], category: str) -> float:
    if category == "identity.name":
        return min(1.0, share(counts, "person") + share(counts, "person_word"))
    address = share(counts, "street") + share(counts, "postcode")
    return max(address, share(counts, "city")) if _cities(counts) else address


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
