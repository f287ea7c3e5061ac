"""Payment card numbers of the brands in use: issuer range (IIN) and length, then Luhn.

Visa 4 (13, 16, 19 digits), Mastercard 51-55 and 2221-2720, Amex 34/37, Discover, JCB
3528-3589 (16-19) and 2131/1800 (15), Diners, UnionPay, Maestro (12-19), Mir, RuPay
(``checksums.card_iin_matrix``). Our own recognizer on both paths: Presidio's card
pattern misses 12-digit Maestro, 19-digit Visa, 15-digit JCB and Mastercard's 2-series.
"""

import re

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

# 12 to 19 digits, in groups separated by single spaces or dashes.
_SHAPE = r"[0-6]\d{3}(?:[ -]?\d){8,15}"

SPEC = RecognizerSpec(
    name="CreditCardRecognizer",
    entity_type="CREDIT_CARD",
    category="financial.card",
    patterns=(PatternSpec("credit_card", rf"(?<![\w\-]){_SHAPE}(?![\w\-])", 0.3),),
    cell_pattern=_SHAPE,
    cell_normalize=checksums.strip_separators,
    cell_validator=checksums.card,
    validator=checksums.is_card_number,
    normalize=lambda s: re.sub(r"[ -]", "", s),
    context=("card", "credit", "visa", "mastercard", "amex", "信用卡"),
    examples_valid=("4111111111111111", "4111 1111 1111 1111", "378282246310005",
                    "2223003122003222", "4000056655665556", "6759649826438453"),
    examples_invalid=("4111111111111112", "1234 5678 9012 3456", "9111111111111111"),
)
