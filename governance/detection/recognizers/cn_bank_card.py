"""Chinese bank card numbers (UnionPay BIN 62, 16 to 19 digits) with a Luhn check digit."""

import re

from stdnum import luhn

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

SPEC = RecognizerSpec(
    name="CnBankCardRecognizer",
    entity_type="CN_BANK_CARD",
    category="financial.bank_account",
    patterns=(
        PatternSpec(
            "cn_unionpay_card",
            r"(?<!\d)62\d{2}(?:[ -]?\d){12,15}(?!\d)",
            0.3,
        ),
    ),
    cell_pattern=r"62\d{2}(?:[ -]?\d){12,15}",
    cell_normalize=checksums.strip_separators,
    cell_validator=checksums.by_length(checksums.luhn_matrix, range(16, 20)),
    validator=lambda s: 16 <= len(s) <= 19 and luhn.is_valid(s),
    normalize=lambda s: re.sub(r"[ -]", "", s),
    context=("银行卡", "卡号", "银联", "bank card", "card", "account"),
    examples_valid=("6222021234567890128", "6212 2612 0200 0000 001"),
    examples_invalid=("6222021234567890127", "622202123456789"),
)
