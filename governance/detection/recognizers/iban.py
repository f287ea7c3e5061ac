"""International bank account numbers (ISO 13616) with their mod 97 check.

On the per-text path Presidio's IbanRecognizer stands for this spec.
"""

import pyarrow as pa
import pyarrow.compute as pc

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

_SHAPE = r"[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}"


def _compact(values: pa.Array) -> pa.Array:
    return pc.utf8_upper(checksums.strip_separators(values, " "))


SPEC = RecognizerSpec(
    name="IbanRecognizer",
    entity_type="IBAN_CODE",
    category="financial.bank_account",
    # In text: upper case, spaces only between groups of four (so trailing words stay out).
    patterns=(PatternSpec("iban", r"(?<![A-Za-z0-9])(?-i:[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}"
                                  r"(?: ?[A-Z0-9]{1,3})?)(?![A-Za-z0-9])", 0.5),),
    cell_pattern=_SHAPE,
    cell_normalize=_compact,
    cell_validator=checksums.iban,
    presidio_builtin="IbanRecognizer",
    context=("iban", "bank", "account", "账户"),
    examples_valid=("DE89370400440532013000", "GB82 WEST 1234 5698 7654 32",
                    "FR1420041010050500013M02606"),
    examples_invalid=("DE89370400440532013001", "GB82 WEST 1234 5698 7654 33"),
)
