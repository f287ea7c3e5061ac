"""Check-digit algorithms over whole Arrow string arrays (Luhn, ISO 7064, mod 97, ...).

Each function takes a ``pyarrow`` string array (no nulls) and returns a numpy boolean
array, one entry per value: the column scan validates every candidate cell at once
instead of calling a Python validator per cell. Each mirrors a python-stdnum function;
``tests/test_cell_scan.py`` checks they agree on valid and corrupted numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Validator = Callable[[pa.Array], np.ndarray]


def string_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (one more than there are values) and the whole data buffer of a string
    array without nulls, as numpy views: value i is ``data[offsets[i]:offsets[i + 1]]``."""
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[
        values.offset:values.offset + len(values) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None \
        else np.zeros(0, dtype=np.uint8)
    return offsets, data


def strip_separators(values: pa.Array, chars: str = " -") -> pa.Array:
    """``values`` (no nulls) with the ASCII separator characters removed (``" -"`` by default).

    Works on the bytes of the whole array at once; ASCII bytes never occur inside a
    multi-byte UTF-8 character, so other text is left intact.
    """
    if not len(values):
        return values
    offsets, data = string_buffers(values)
    if offsets[-1] == offsets[0]:
        return values
    data = data[offsets[0]:offsets[-1]]
    raw = data.tobytes()
    seps = chars.encode("ascii")
    if not any(raw.find(seps[i:i + 1]) >= 0 for i in range(len(seps))):
        return values  # the usual case, found by memchr: no byte table over the data
    drop = np.zeros(256, dtype=bool)
    drop[list(seps)] = True
    dropped = drop[data]
    lengths = np.diff(offsets)
    # Per value, the dropped bytes from its start to the next value's (a trailing 0 lets
    # empty values at the end start past the data).
    removed = np.add.reduceat(np.append(dropped, False).view(np.uint8),
                              offsets[:-1] - offsets[0], dtype=offsets.dtype)
    removed[lengths == 0] = 0
    new_offsets = np.zeros(len(values) + 1, dtype=offsets.dtype)
    np.cumsum(lengths - removed, out=new_offsets[1:])
    return pa.Array.from_buffers(values.type, len(values),
                                 [None, pa.py_buffer(new_offsets),
                                  pa.py_buffer(data[~dropped])])


def ascii_upper(values: pa.Array) -> pa.Array:
    """``values`` (no nulls) upper-cased; ASCII-only arrays without lower-case letters are
    returned as they are, other ASCII arrays upper-cased byte-wise (as ``pc.utf8_upper``)."""
    if not len(values):
        return values
    offsets, data = string_buffers(values)
    raw = data[offsets[0]:offsets[-1]].tobytes()
    if not raw.isascii():
        return pc.utf8_upper(values)
    upper = raw.upper()
    if upper == raw:
        return values
    return pa.Array.from_buffers(values.type, len(values),
                                 [None, pa.py_buffer((offsets - offsets[0]).tobytes()),
                                  pa.py_buffer(upper)])


def columns_of(m: np.ndarray) -> np.ndarray:
    """The character matrix ``m`` (n × width) transposed into one contiguous row per
    position (copied in blocks of rows, which keeps the copy in cache)."""
    n, width = m.shape
    out = np.empty((width, n), dtype=m.dtype)
    for start in range(0, n, _BLOCK_ROWS):
        out[:, start:start + _BLOCK_ROWS] = m[start:start + _BLOCK_ROWS].T
    return out


_BLOCK_ROWS = 4096


def char_matrix(values: pa.Array, width: int) -> np.ndarray:
    """The bytes of ``values`` (all exactly ``width`` bytes long) as an ``n × width`` matrix."""
    if len(values) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets, data = string_buffers(values)
    first = int(offsets[0])
    # Equal widths and no nulls: the values lie back to back in the data buffer.
    return data[first:first + len(values) * width].reshape(len(values), width)


def by_length(check: Callable[[np.ndarray], np.ndarray], lengths: range
              ) -> Validator:
    """A validator running ``check`` on the char matrix of each allowed value length."""

    def validate(values: pa.Array) -> np.ndarray:
        ok = np.zeros(len(values), dtype=bool)
        if not len(values):
            return ok
        sizes = pc.binary_length(values).to_numpy(zero_copy_only=False)
        low, high = int(sizes.min()), int(sizes.max())
        if low == high:  # the usual case: one width, no regrouping
            return check(char_matrix(values, low)) if low in lengths else ok
        for width in np.unique(sizes):
            if int(width) not in lengths:
                continue
            rows = np.flatnonzero(sizes == width)
            ok[rows] = check(char_matrix(values.take(pa.array(rows)), int(width)))
        return ok

    return validate


def _digits(m: np.ndarray) -> np.ndarray:
    """The character matrix transposed (one contiguous row per position), as digit values."""
    return columns_of(m).astype(np.int32) - ord("0")


def _all_digits(d: np.ndarray) -> np.ndarray:
    """Columns of ``_digits`` output that hold only 0-9."""
    ok = np.ones(d.shape[1], dtype=bool)
    for row in d:
        ok &= (row >= 0) & (row <= 9)
    return ok


def _number(d: np.ndarray) -> np.ndarray:
    """Rows of digit values (positions first) read as one integer per value."""
    total = np.zeros(d.shape[1], dtype=np.int64)
    for row in d:
        total = total * 10 + row
    return total


def luhn_matrix(m: np.ndarray) -> np.ndarray:
    """Rows of ASCII digits whose Luhn (mod 10) check digit is right (stdnum.luhn)."""
    width = m.shape[1]
    d = columns_of(m) - np.uint8(ord("0"))  # other bytes wrap above 9
    ok = d.max(axis=0, initial=0) <= 9
    # Every second digit from the right doubled, its digits summed: 2d - 9 when d > 4.
    doubled = d[width - 2::-2]
    d[width - 2::-2] = doubled * np.uint8(2) - np.uint8(9) * (doubled > 4)
    return ok & (d.sum(axis=0, dtype=np.uint16) % 10 == 0)


luhn = by_length(luhn_matrix, range(2, 40))

_GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_GB11643_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)


def gb11643_matrix(m: np.ndarray) -> np.ndarray:
    """18-character rows with a valid ISO 7064 MOD 11-2 check character (GB 11643)."""
    d = _digits(m[:, :17])
    total = np.zeros(len(m), dtype=np.int32)
    for w, row in zip(_GB11643_WEIGHTS, d, strict=True):
        total += w * row
    last = np.where(m[:, 17] == ord("x"), ord("X"), m[:, 17])
    return _all_digits(d) & (_GB11643_CHECK[total % 11] == last)


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def real_dates(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """True where year/month/day is a date of the Gregorian calendar."""
    month_ok = (month >= 1) & (month <= 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    last = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    return month_ok & (day >= 1) & (day <= last)


def cn_resident_id_matrix(m: np.ndarray) -> np.ndarray:
    """GB 11643 check digit and a real birth date (as ``is_cn_resident_id``)."""
    d = _digits(m[:, 6:14])
    return gb11643_matrix(m) & real_dates(_number(d[:4]), _number(d[4:6]), _number(d[6:]))


cn_resident_id = by_length(cn_resident_id_matrix, range(18, 19))


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(_USCC_ALPHABET):
    _USCC_VALUE[ord(_c)] = _i
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28],
                         dtype=np.int32)
_USCC_CHARS = np.frombuffer(_USCC_ALPHABET.encode(), dtype=np.uint8)
# Characters 3-8 of a credit code are the registering authority's administrative division
# (GB 32100-2015, 4.3; GB/T 2260): a province-level code, or 10 for national registration.
USCC_DIVISIONS = frozenset(
    "10 11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82".split())
_USCC_DIVISION_OK = np.zeros(100, dtype=bool)
_USCC_DIVISION_OK[[int(d) for d in USCC_DIVISIONS]] = True


def is_uscc(code: str) -> bool:
    """A unified social credit code python-stdnum accepts, registered in a real division."""
    from stdnum.cn import uscc as std_uscc

    return std_uscc.is_valid(code) and std_uscc.compact(code)[2:4] in USCC_DIVISIONS


def uscc_matrix(m: np.ndarray) -> np.ndarray:
    """18-character unified social credit codes with a valid check character
    (stdnum.cn.uscc) and a real division code (``is_uscc``)."""
    values = _USCC_VALUE[columns_of(m)].astype(np.int32)
    total = np.zeros(len(m), dtype=np.int32)
    known = np.ones(len(m), dtype=bool)
    for w, row in zip(_USCC_WEIGHTS, values[:17], strict=True):
        total += int(w) * row
    for row in values:
        known &= row >= 0
    check = _USCC_CHARS[(31 - total % 31) % 31]
    digits = _all_digits(values[:8])
    division = _USCC_DIVISION_OK[np.where(digits, values[2] * 10 + values[3], 0)]
    return digits & division & known & (m[:, 17] == check)


uscc = by_length(uscc_matrix, range(18, 19))


def _iban_values() -> np.ndarray:
    table = np.full(256, -1, dtype=np.int64)
    for c in range(10):
        table[ord("0") + c] = c
    for c in range(26):
        table[ord("A") + c] = 10 + c
    return table


_IBAN_VALUE = _iban_values()
# A letter stands for two digits, a digit for one: the factor shifting the remainder.
_IBAN_SHIFT = np.where(_IBAN_VALUE >= 10, 100, 10).astype(np.int64)
# Steps between reductions: 97 * 100**8 still fits in an int64.
_IBAN_FOLD = 8


def iban_matrix(m: np.ndarray) -> np.ndarray:
    """IBANs (upper case, no spaces) whose ISO 7064 mod 97-10 check is 1 (stdnum.iban)."""
    letters = ((m[:, 0] >= ord("A")) & (m[:, 0] <= ord("Z"))
               & (m[:, 1] >= ord("A")) & (m[:, 1] <= ord("Z")))
    checks = _all_digits(_digits(m[:, 2:4]))
    return _iban_mod97(m) & letters & checks


def _iban_mod97(m: np.ndarray) -> np.ndarray:
    """Rows made of 0-9 and A-Z whose mod 97-10 remainder (country and check digits moved
    to the end, a letter read as two digits 10-35) is 1."""
    n, width = m.shape
    cols = columns_of(np.concatenate([m[:, 4:], m[:, :4]], axis=1))
    digit = (cols - np.uint8(ord("0"))) <= 9
    upper = (cols - np.uint8(ord("A"))) <= 25
    known = (digit | upper).all(axis=0)
    if not (upper == upper[:, :1]).all():
        return known & _iban_mod97_rows(cols)
    # Letters at the same places in every row (one country, a fixed BBAN): each position's
    # weight 10**(digits after it) mod 97 is the same for all rows.
    lengths = 1 + upper[:, 0].astype(np.int64)
    after = np.concatenate([np.cumsum(lengths[::-1])[::-1][1:], [0]])
    weights = np.array([pow(10, int(e), 97) for e in after], dtype=np.uint32)
    values = (cols - np.uint8(ord("0"))) - np.uint8(7) * upper  # 0-9, A-Z as 10-35
    total = np.zeros(n, dtype=np.uint32)
    for w, row in zip(weights, values, strict=True):
        total += w * row  # at most 34 * 35 * 96: no overflow
    return known & (total % 97 == 1)


def _iban_mod97_rows(cols: np.ndarray) -> np.ndarray:
    """``_iban_mod97`` for rows whose letters are at different places (position by position,
    the remainder shifted by 10 or 100 per character)."""
    remainder = np.zeros(cols.shape[1], dtype=np.int64)
    for k, chars in enumerate(cols, 1):
        remainder *= _IBAN_SHIFT[chars]
        remainder += _IBAN_VALUE[chars]
        if k % _IBAN_FOLD == 0:
            remainder %= 97
    return remainder % 97 == 1


iban = by_length(iban_matrix, range(15, 35))


def _ssn_blacklist() -> np.ndarray:
    from stdnum.us import ssn

    return np.array(sorted(int(n.replace("-", "")) for n in ssn._ssn_blacklist), dtype=np.int64)


_SSN_BLACKLIST = _ssn_blacklist()


def us_ssn_matrix(m: np.ndarray) -> np.ndarray:
    """9-digit SSNs that stdnum.us.ssn accepts: area not 000/666/9xx, group, serial, blacklist."""
    d = _digits(m)
    area, group, serial = _number(d[:3]), _number(d[3:5]), _number(d[5:])
    whole = area * 1_000_000 + group * 10_000 + serial
    return (_all_digits(d) & (area != 0) & (area != 666) & (area < 900) & (group != 0)
            & (serial != 0) & ~np.isin(whole, _SSN_BLACKLIST))


us_ssn = by_length(us_ssn_matrix, range(9, 10))


def full_match(pattern: str) -> Validator:
    """A validator accepting values that entirely match the RE2 ``pattern``."""
    anchored = f"^(?:{pattern})$"

    def validate(values: pa.Array) -> np.ndarray:
        return pc.match_substring_regex(values, anchored).to_numpy(zero_copy_only=False)

    return validate



# --- IBAN country formats (python-stdnum's copy of the SWIFT IBAN registry) ---------------

def _iban_formats() -> dict[str, str]:
    """Country code -> RE2 pattern of its BBAN (``4!n4!n12!c`` -> ``\\d{4}\\d{4}[A-Z0-9]{12}``)."""
    from stdnum import numdb

    classes = {"n": r"\d", "a": "[A-Z]", "c": "[A-Z0-9]", "e": " "}
    out: dict[str, str] = {}
    for _, low, high, props, _children in numdb.get("iban").prefixes:
        if low != high or "bban" not in props:
            continue
        out[low] = "".join(f"{classes[k]}{{{n}}}" for n, k in
                           re.findall(r"(\d+)!([nace])", props["bban"]))
    return out


IBAN_FORMATS: dict[str, str] = _iban_formats()
# Total IBAN length per country (2 letters, 2 check digits, the BBAN).
IBAN_COUNTRY_FORMAT = "|".join(f"{cc}\\d{{2}}{f}" for cc, f in sorted(IBAN_FORMATS.items()))

# The same formats as tables: country (two bytes) -> index; per country its length and
# runs (start, end, class) of character classes: 1 digits, 2 letters A-Z, 3 either.
_FORMAT_CLASS = {r"\d": 1, "[A-Z]": 2, "[A-Z0-9]": 3}


def _iban_format_tables() -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[int, int, int], ...]]]:
    index = np.full(1 << 16, -1, dtype=np.int16)
    lengths: list[int] = []
    runs: list[tuple[tuple[int, int, int], ...]] = []
    for cc, bban in sorted(IBAN_FORMATS.items()):
        index[ord(cc[0]) * 256 + ord(cc[1])] = len(lengths)
        merged = [(2, 4, 1)]  # the check digits
        pos = 4
        for cls, count in re.findall(r"(\\d|\[A-Z\]|\[A-Z0-9\])\{(\d+)\}", bban):
            k, end = _FORMAT_CLASS[cls], pos + int(count)
            if merged[-1][2] == k and merged[-1][1] == pos:
                merged[-1] = (merged[-1][0], end, k)
            else:
                merged.append((pos, end, k))
            pos = end
        lengths.append(pos)
        runs.append(tuple(merged))
    return index, np.array(lengths), runs


_IBAN_COUNTRY, _IBAN_LENGTH, _IBAN_RUNS = _iban_format_tables()


def iban_format_matrix(m: np.ndarray) -> np.ndarray:
    """Rows that are an IBAN in their country's registry format (``IBAN_COUNTRY_FORMAT``):
    a registry country, its length, digits and letters where the registry says."""
    n, width = m.shape
    ok = np.zeros(n, dtype=bool)
    if width < 4 or not n:
        return ok
    country = _IBAN_COUNTRY[m[:, 0].astype(np.int32) * 256 + m[:, 1]]
    counts = np.bincount(country + 1, minlength=len(_IBAN_LENGTH) + 1)
    for c in np.flatnonzero(counts[1:]):
        if _IBAN_LENGTH[c] != width:
            continue
        rows = None if counts[c + 1] == n else np.flatnonzero(country == c)
        cols = columns_of(m if rows is None else m[rows])
        good = np.ones(cols.shape[1], dtype=bool)
        for start, end, k in _IBAN_RUNS[c]:
            part = cols[start:end]
            digit = (part - np.uint8(ord("0"))) <= 9
            if k == 1:
                good &= digit.all(axis=0)
            elif k == 2:
                good &= ((part - np.uint8(ord("A"))) <= 25).all(axis=0)
            else:
                good &= (digit | ((part - np.uint8(ord("A"))) <= 25)).all(axis=0)
        if rows is None:
            ok = good
        else:
            ok[rows] = good
    return ok


def _iban_registry_matrix(m: np.ndarray) -> np.ndarray:
    ok = iban_matrix(m)
    rows = np.flatnonzero(ok)
    if len(rows):  # the format only where the check passed
        ok[rows] = iban_format_matrix(m if len(rows) == len(m) else m[rows])
    return ok


iban_registry = by_length(_iban_registry_matrix, range(15, 35))
iban_registry.__doc__ = """IBANs (compact, upper case) with the mod 97 check and their
country's registry format (length and character classes), as ``stdnum.iban.is_valid``
without the national checks."""


# --- Payment card issuer ranges (IIN) and lengths -------------------------------------------

def _in(p: np.ndarray, low: int, high: int) -> np.ndarray:
    return (p >= low) & (p <= high)


def card_iin_matrix(m: np.ndarray) -> np.ndarray:
    """Rows of ASCII digits whose issuer prefix and length belong to a card brand in use:
    Visa 4 (13, 16, 19), Mastercard 51-55 and 2221-2720 (16), Amex 34/37 (15), Discover
    6011/644-649/65 (16-19), JCB 3528-3589 (16-19) and 2131/1800 (15), Diners 300-305/36/38/39
    (14-19), UnionPay 62 and 81 (16-19), Maestro 50/56-69 (12-19), Mir 2200-2204 (16-19),
    RuPay 60/508 (16)."""
    n = m.shape[1]
    d = _digits(m[:, :6])
    p1, p2 = d[0], d[0] * 10 + d[1]
    p3 = p2 * 10 + d[2]
    p4 = p3 * 10 + d[3]
    p6 = p4 * 100 + d[4] * 10 + d[5]
    ok = np.zeros(len(m), dtype=bool)
    if n in (13, 16, 19):
        ok |= p1 == 4
    if n == 16:
        ok |= _in(p2, 51, 55) | _in(p4, 2221, 2720) | (p2 == 60) | _in(p3, 508, 508)
    if n == 15:
        ok |= (p2 == 34) | (p2 == 37) | (p4 == 2131) | (p4 == 1800)
    if 16 <= n <= 19:
        # JCB registered 3528-3589; Faker and other generators use all of 35, and a
        # Luhn-valid 16-19 digit number there is read as a card all the same.
        ok |= (p4 == 6011) | _in(p3, 644, 649) | (p2 == 65) | (p2 == 35)
        ok |= (p2 == 62) | (p2 == 81) | _in(p4, 2200, 2204) | _in(p6, 622126, 622925)
    if 14 <= n <= 19:
        ok |= _in(p3, 300, 305) | (p2 == 36) | (p2 == 38) | (p2 == 39)
    if 12 <= n <= 19:
        ok |= (p2 == 50) | _in(p2, 56, 69) | (p4 == 604)  # Maestro (0604: Maestro UK)
    return ok & luhn_matrix(m)


card = by_length(card_iin_matrix, range(12, 20))


def is_card_number(text: str) -> bool:
    """True when ``text`` (digits, optional spaces or dashes) is a payment card number of a
    brand in use (issuer range and length) with a valid Luhn check digit."""
    digits = text.replace(" ", "").replace("-", "")
    return digits.isdigit() and bool(card(pa.array([digits]))[0])


# --- GB/T 2260 administrative divisions (resident IDs) ---------------------------------------

# Province-level codes (GB/T 2260): the first two digits of every resident ID.
PROVINCES = frozenset(d for d in USCC_DIVISIONS if d != "10")


def _prefectures() -> frozenset[str]:
    """Four-digit prefecture codes python-stdnum's division table has ever listed."""
    from stdnum import numdb

    out = set()
    for _, low, high, _props, children in numdb.get("cn/loc").prefixes:
        if low != high:
            continue
        for _, c_low, _c_high, _p, _c in children:
            out.add(low + c_low[:2])
    return frozenset(out)


PREFECTURES = _prefectures()
# Provinces the table covers; elsewhere (71 Taiwan, 81 Hong Kong, 82 Macau) only the province.
_PREFECTURE_KNOWN = frozenset(p[:2] for p in PREFECTURES)
_PROVINCE_OK = np.zeros(100, dtype=bool)
_PROVINCE_OK[[int(p) for p in PROVINCES]] = True
_PREFECTURE_OK = np.zeros(10_000, dtype=bool)
_PREFECTURE_OK[[int(p) for p in PREFECTURES]] = True
for _p in PROVINCES - _PREFECTURE_KNOWN:
    _PREFECTURE_OK[int(_p) * 100:int(_p) * 100 + 100] = True


def division_matrix(m: np.ndarray) -> np.ndarray:
    """Rows whose first 4 digits are a GB/T 2260 province and (where known) prefecture."""
    d = _digits(m[:, :4])
    ok = _all_digits(d)
    d = np.where(ok, d, 0)
    return ok & _PROVINCE_OK[d[0] * 10 + d[1]] & _PREFECTURE_OK[_number(d)]


def is_known_division(code: str) -> bool:
    """True when ``code`` starts with a real province (and, where known, prefecture) code."""
    return code[:2] in PROVINCES and (code[:2] not in _PREFECTURE_KNOWN
                                      or code[:4] in PREFECTURES)


def cn_resident_id_division_matrix(m: np.ndarray) -> np.ndarray:
    """``cn_resident_id_matrix`` and a real division code (``is_known_division``), on one
    transposed copy of the digits."""
    d = columns_of(m) - np.uint8(ord("0"))  # other bytes wrap above 9
    ok = d[:17].max(axis=0, initial=0) <= 9
    d[:17] *= ok  # non-digits read as 0 from here on (those rows are rejected already)
    total = np.zeros(len(m), dtype=np.uint16)
    for w, row in zip(_GB11643_WEIGHTS, d[:17], strict=True):
        total += np.uint16(w) * row  # at most 17 * 10 * 9
    last = np.where(m[:, 17] == ord("x"), ord("X"), m[:, 17])
    ok &= _GB11643_CHECK[total % 11] == last

    def number(rows: np.ndarray) -> np.ndarray:
        out = np.zeros(len(m), dtype=np.int64)
        for row in rows:
            out = out * 10 + row
        return out

    prefecture = number(d[:4])
    return (ok & real_dates(number(d[6:10]), number(d[10:12]), number(d[12:14]))
            & _PROVINCE_OK[prefecture // 100] & _PREFECTURE_OK[prefecture])


cn_resident_id_division = by_length(cn_resident_id_division_matrix, range(18, 19))
