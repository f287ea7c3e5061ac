"""International bank account numbers (ISO 13616) of every country in the IBAN registry.

The text pattern is the registry's own format per country (python-stdnum's copy: length
and character classes), compact or printed with spaces, so a trailing word never joins
the number; the check is python-stdnum's ``iban.is_valid`` (mod 97 and national checks).
Our own recognizer on both paths.
"""

import pyarrow as pa
from stdnum import iban as std_iban

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

_SHAPE = r"[A-Za-z]{2} ?\d{2}(?: ?[A-Za-z0-9]){11,30}"


def _country_pattern(cc: str, bban: str) -> str:
    """``cc``, check digits, then as many BBAN characters as the registry says, each
    optionally preceded by one space (printed form)."""
    import re

    length = sum(int(n) for n in re.findall(r"\{(\d+)\}", bban))
    return f"{cc}[ \\-.]?\\d[ \\-.]?\\d(?:[ \\-.]?[A-Za-z0-9]){{{length}}}"


_TEXT = "|".join(_country_pattern(cc, f) for cc, f in sorted(checksums.IBAN_FORMATS.items()))


def _compact(values: pa.Array) -> pa.Array:
    return checksums.ascii_upper(checksums.strip_separators(values, " "))


SPEC = RecognizerSpec(
    name="IbanRecognizer",
    entity_type="IBAN_CODE",
    category="financial.bank_account",
    patterns=(PatternSpec("iban", rf"(?<![A-Za-z0-9])(?-i:{_TEXT})(?![A-Za-z0-9])", 0.5),),
    cell_pattern=_SHAPE,
    cell_normalize=_compact,
    cell_validator=checksums.iban_registry,
    validator=std_iban.is_valid,
    context=("iban", "bank", "account", "账户"),
    examples_valid=("DE89370400440532013000", "GB82 WEST 1234 5698 7654 32",
                    "FR1420041010050500013M02606", "AD1200012030200359100100",
                    "CZ65 0800 0000 1920 0014 5399"),
    examples_invalid=("DE89370400440532013001", "GB82 WEST 1234 5698 7654 33",
                      "AD1210012030200359100100"),
)
