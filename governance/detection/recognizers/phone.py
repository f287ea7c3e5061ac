"""Telephone numbers of the regions we look for, validated against phonenumbers' metadata.

On the per-text path Presidio's PhoneRecognizer (phonenumbers' matcher, same regions)
stands for this spec. The column scan compiles phonenumbers' per-region number patterns
into one RE2 expression and checks whole columns with it. A value counts when it is in
international form (``+44 20 7946 0958``, ``0044...``), or written with separators or a
trunk prefix in national form (``(415) 555-0134``, ``020 7946 0958``); bare digit runs
without a trunk prefix are left alone, because order numbers and other ids look the same.
"""

import re

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata

from governance.detection import checksums
from governance.detection.recognizers import NOT_PERSONAL, PatternSpec, RecognizerSpec

PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CA", "BR", "JP", "HK", "TW", "SG", "AU")
_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
          "personal_number", "voip", "pager", "uan", "voicemail")


def _national_pattern(region: str) -> tuple[int, str | None, str]:
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None:
        raise ValueError(f"phonenumbers has no metadata for region {region!r}")
    patterns = sorted({desc.national_number_pattern for t in _TYPES
                       if (desc := getattr(meta, t)) is not None and desc.national_number_pattern})
    return (int(meta.country_code or 0), meta.national_prefix,
            "|".join(f"(?:{p})" for p in patterns))


def _valid_number_pattern(regions: tuple[str, ...]) -> str:
    by_code: dict[int, list[str]] = {}
    national = []
    for region in regions:
        code, prefix, pattern = _national_pattern(region)
        by_code.setdefault(code, []).append(pattern)
        national.append(f"(?:{prefix})?(?:{pattern})" if prefix else f"(?:{pattern})")
    international = "|".join(f"{code}(?:{'|'.join(p)})" for code, p in sorted(by_code.items()))
    return rf"(?:\+|00)(?:{international})|{'|'.join(national)}"


VALID_NUMBER = _valid_number_pattern(PHONE_REGIONS)
_SHAPE = (r"(?:\+|00)[1-9][\d ().\-]{5,20}\d|\(?\d{2,5}\)?[ .\-]\d{2,5}(?:[ .\-]\d{2,5}){0,3}"
          r"|0\d{8,12}")


_VALID = checksums.full_match(VALID_NUMBER)


def valid_cells(values: pa.Array) -> np.ndarray:
    """Values that are valid numbers once separators are removed, and not dates or decimals."""
    ok = ~pc.match_substring_regex(values, f"^(?:{NOT_PERSONAL})$").to_numpy(
        zero_copy_only=False)
    return ok & _VALID(checksums.strip_separators(values, " ().-"))


def is_phone_number(text: str) -> bool:
    """True when phonenumbers finds ``text`` a valid number of one of PHONE_REGIONS."""
    for region in PHONE_REGIONS:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


SPEC = RecognizerSpec(
    name="PhoneRecognizer",
    entity_type="PHONE_NUMBER",
    category="contact.phone",
    patterns=(PatternSpec("phone", rf"(?<![\w+])(?:{_SHAPE})(?![\w])", 0.4),),
    cell_pattern=_SHAPE,
    cell_validator=valid_cells,
    cell_score=0.75,
    validator=is_phone_number,
    presidio_builtin="PhoneRecognizer",
    context=("phone", "tel", "telephone", "mobile", "电话"),
    examples_valid=("+44 20 7946 0958", "(415) 555-2671", "+49 30 901820", "020 7946 0958"),
    examples_invalid=("2024-01-05", "+44 12", "(000) 000-0000"),
)


# A phone label right before a number: "Phone:", "Tel.", "Mobile no.", "电话：", "手机号".
PHONE_LABEL = re.compile(
    r"(?:\b(?:phone|telephone|tel|mobile|cell|fax|ph)\b\.?(?:\s*(?:no\.?|number|#))?"
    r"|电话|手机号?|联系电话|联系方式)\s*[:：]?\s*$", re.IGNORECASE)
_NATIONAL_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ().\-]{3,18}\d(?!\w)")


def national_numbers(text: str, country: str | None = None) -> list[tuple[int, int, bool]]:
    """Spans of ``text`` that are valid phone numbers in national (or international) form,
    where a phone label precedes them or the record's ``country`` is known; each with
    whether a label preceded. Without a country, a labelled number must be valid in one
    of PHONE_REGIONS."""
    out = []
    for mt in _NATIONAL_CANDIDATE.finditer(text):
        labelled = bool(PHONE_LABEL.search(text[max(0, mt.start() - 24):mt.start()]))
        if not labelled and not country:
            continue
        value = mt.group(0)
        if re.fullmatch(NOT_PERSONAL, value) or "," in value:
            continue
        for region in (country,) if country else (*PHONE_REGIONS, "CN"):
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(value, region)):
                    out.append((mt.start(), mt.end(), labelled))
                    break
            except phonenumbers.NumberParseException:
                continue
    return out
