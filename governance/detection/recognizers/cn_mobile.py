"""Mainland China mobile numbers (11 digits, 1[3-9]..., optional +86), checked by phonenumbers."""

import re

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

# phonenumbers' own metadata for CN mobile numbers, checked on whole columns with RE2.
_CN = phonenumbers.PhoneMetadata.metadata_for_region("CN")
assert _CN is not None and _CN.mobile is not None and _CN.mobile.national_number_pattern
_MOBILE_PATTERN: str = _CN.mobile.national_number_pattern


def _national(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(checksums.strip_separators(values), r"^(?:\+|00)86", "")

_MOBILE_TYPES = {phonenumbers.PhoneNumberType.MOBILE,
                 phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


def is_cn_mobile(text: str) -> bool:
    """True when ``text`` is a valid mainland China mobile number."""
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return False
    return (number.country_code == 86 and phonenumbers.is_valid_number(number)
            and phonenumbers.number_type(number) in _MOBILE_TYPES)


SPEC = RecognizerSpec(
    name="CnMobileRecognizer",
    entity_type="CN_MOBILE",
    category="contact.phone",
    patterns=(
        PatternSpec(
            "cn_mobile",
            r"(?<![0-9+])(?:(?:\+|00)86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)",
            0.4,
        ),
    ),
    cell_pattern=r"(?:(?:\+|00)86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}",
    cell_normalize=_national,
    cell_validator=checksums.full_match(_MOBILE_PATTERN),
    validator=is_cn_mobile,
    normalize=lambda s: re.sub(r"[ -]", "", s),
    context=("手机", "手机号", "电话", "联系方式", "mobile", "phone", "cell"),
    examples_valid=("13812345678", "+86 138 1234 5678", "008615912345678"),
    examples_invalid=("12812345678", "1381234567", "23812345678"),
)
