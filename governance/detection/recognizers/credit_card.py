"""Payment card numbers (Visa, Mastercard, Amex, Discover, JCB, ...) with a Luhn check digit.

On the per-text path Presidio's CreditCardRecognizer stands for this spec.
"""

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

# Presidio's card pattern, without its look-arounds.
_SHAPE = r"(?:4\d{3}|5[0-5]\d{2}|6\d{3}|1\d{3}|3\d{3})[ -]?\d{3,4}[ -]?\d{3,4}[ -]?\d{3,5}"

SPEC = RecognizerSpec(
    name="CreditCardRecognizer",
    entity_type="CREDIT_CARD",
    category="financial.card",
    patterns=(PatternSpec("credit_card", rf"(?<![\w\-]){_SHAPE}(?![\w\-])", 0.3),),
    cell_pattern=_SHAPE,
    cell_normalize=checksums.strip_separators,
    cell_validator=checksums.by_length(checksums.luhn_matrix, range(12, 20)),
    presidio_builtin="CreditCardRecognizer",
    context=("card", "credit", "visa", "mastercard", "amex", "信用卡"),
    examples_valid=("4111111111111111", "4111 1111 1111 1111", "378282246310005"),
    examples_invalid=("4111111111111112", "1234 5678 9012 3456"),
)
