"""Chinese resident identity card number (GB 11643-1999): 18 characters, ISO 7064 checksum."""

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from governance.detection import checksums
from governance.detection.recognizers import PatternSpec, RecognizerSpec

_SHAPE = (r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]")


def is_cn_resident_id(text: str) -> bool:
    """True when ``text`` has a valid GB 11643 check digit, a real birth date and a real
    province (and, where python-stdnum's table knows it, prefecture) code (GB/T 2260).

    python-stdnum's full ``ric.is_valid`` also requires the six-digit county code to be in
    its table; that table lags behind reality (it rejects 310115, Shanghai Pudong), so
    only the first four digits are checked against it.
    """
    number = ric.compact(text)
    if len(number) != 18 or not number[:-1].isdigit() or not checksums.is_known_division(number):
        return False
    try:
        if number[-1].upper() != ric.calc_check_digit(number):
            return False
        ric.get_birth_date(number)
    except ValidationError:
        return False
    return True


SPEC = RecognizerSpec(
    name="CnResidentIdRecognizer",
    entity_type="CN_RESIDENT_ID",
    category="identity.national_id",
    patterns=(
        PatternSpec(
            "cn_resident_id_18",
            # 6-digit area code, birth date YYYYMMDD, 3-digit sequence, check digit or X.
            rf"(?<![0-9A-Za-z]){_SHAPE}(?![0-9A-Za-z])",
            0.5,
        ),
    ),
    cell_pattern=_SHAPE,
    cell_validator=checksums.cn_resident_id_division,
    validator=is_cn_resident_id,
    context=("身份证", "身份证号", "居民身份证", "id card", "resident id", "identity"),
    examples_valid=("11010519491231002X", "110101199003074573", "44030519851012123X",
                    "31011519550430870X"),
    examples_invalid=("110105194912310021", "110101199003074578", "110101199013074573",
                      "11010119900307457",
                      "110101199002304576", "990426199112010074"),
)
