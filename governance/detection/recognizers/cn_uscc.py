"""Unified social credit code of Chinese organisations (GB 32100-2015, 18 characters, checksum,
registered in a real administrative division)."""

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

SPEC = RecognizerSpec(
    name="CnUsccRecognizer",
    entity_type="CN_USCC",
    category="identity.organization_id",
    patterns=(
        PatternSpec(
            "cn_uscc",
            # Compact, or printed with spaces after the 2nd and 8th characters.
            r"(?<![0-9A-Za-z])[0-9A-HJ-NPQRTUWXY]{2} ?\d{6} ?[0-9A-HJ-NPQRTUWXY]{10}"
            r"(?![0-9A-Za-z])",
            0.3,
        ),
    ),
    # python-stdnum requires the first 8 characters to be digits.
    cell_pattern=r"\d{2} ?\d{6} ?[0-9A-HJ-NPQRTUWXY]{10}",
    cell_normalize=lambda a: checksums.strip_separators(a, " "),
    cell_validator=checksums.uscc,
    validator=checksums.is_uscc,
    normalize=lambda s: s.replace(" ", ""),
    context=("统一社会信用代码", "信用代码", "uscc", "credit code"),
    examples_valid=("91110000600037341L", "91310115MA1K4HXQ70", "91 110000 600037341L"),
    # A wrong check character; too short; a right check character but no division "01".
    examples_invalid=("91110000600037341A", "91310115MA1K4HXQ7H", "9111000060003734",
                      "91010100MA1K4HXQ74"),
)
