"""US social security numbers written ``AAA-GG-SSSS`` (python-stdnum's rules).

On the per-text path Presidio's UsSsnRecognizer stands for this spec. Bare 9-digit
numbers are not counted: too many other identifiers look the same.
"""

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

_SHAPE = r"\d{3}[- ]\d{2}[- ]\d{4}"

SPEC = RecognizerSpec(
    name="UsSsnRecognizer",
    entity_type="US_SSN",
    category="identity.national_id",
    patterns=(PatternSpec("us_ssn", rf"(?<![\w\-]){_SHAPE}(?![\w\-])", 0.5),),
    cell_pattern=_SHAPE,
    cell_normalize=checksums.strip_separators,
    cell_validator=checksums.us_ssn,
    cell_score=0.85,
    presidio_builtin="UsSsnRecognizer",
    context=("ssn", "social security", "social"),
    examples_valid=("536-22-1234", "123-45-6789"),
    examples_invalid=("000-12-3456", "666-12-3456", "912-12-3456", "078-05-1120"),
)
