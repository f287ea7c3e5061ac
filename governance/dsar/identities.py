"""Identities a data subject is known by (``email=...``, ``phone=...``), and their forms.

An identity is searched for in its written forms (``variants``): a phone number given as
``+86 138 1234 5678`` is also looked for as ``+8613812345678`` and ``13812345678``. It is
shown only masked and stored only sealed or as a keyed fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from governance.errors import GovernanceError
from governance.masking import mask_value

if TYPE_CHECKING:
    import phonenumbers


class IdentityError(GovernanceError):
    """An identity given for a request cannot be used."""


class IdentityType(StrEnum):
    """The kinds of identity a request can name a subject by."""

    EMAIL = "email"
    PHONE = "phone"
    USER_ID = "user_id"          # the organisation's own account id (subject keys)
    NATIONAL_ID = "national_id"  # resident ID, SSN, ...


# The data category of the columns each identity type is found in.
CATEGORY_OF: dict[IdentityType, str] = {
    IdentityType.EMAIL: "contact.email",
    IdentityType.PHONE: "contact.phone",
    IdentityType.USER_ID: "identity.user_id",
    IdentityType.NATIONAL_ID: "identity.national_id",
}
# Shortest written form searched inside free text (shorter ones match too much).
MIN_TEXT_VARIANT = 6


@dataclass(frozen=True)
class Identity:
    """One identity of a data subject. Building one from a value that is not text, or an
    unknown type, raises IdentityError (so do ``canonical`` and ``variants`` for a value
    that cannot be that kind of identity, e.g. a phone column holding ``n/a``)."""

    type: IdentityType
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.type, IdentityType):
            try:
                object.__setattr__(self, "type", IdentityType(self.type))
            except ValueError:
                raise IdentityError(f"unknown identity type {self.type!r}; known: "
                                    f"{', '.join(t.value for t in IdentityType)}") from None
        if not isinstance(self.value, str):
            raise IdentityError(f"{self.type}: the value is a {type(self.value).__name__}, "
                                "not text")

    @property
    def category(self) -> str:
        """The data category of columns holding this kind of identity."""
        return CATEGORY_OF[self.type]

    def canonical(self) -> str:
        """The one normal form fingerprints are computed from."""
        if self.type is IdentityType.EMAIL:
            return self.value.strip().lower()
        if self.type is IdentityType.PHONE:
            import phonenumbers

            return phonenumbers.format_number(_parse_phone(self.value),
                                              phonenumbers.PhoneNumberFormat.E164)
        if self.type is IdentityType.NATIONAL_ID:
            return "".join(self.value.split()).upper()
        return self.value.strip()

    def variants(self) -> list[str]:
        """The written forms this identity is searched for in columns (exact match)."""
        v = self.value.strip()
        forms = [v, self.canonical()]
        if self.type is IdentityType.PHONE:
            forms += _phone_forms(v)
        elif self.type is IdentityType.NATIONAL_ID:
            forms.append(self.canonical().lower())
        return list(dict.fromkeys(f for f in forms if f))

    def text_variants(self) -> list[str]:
        """The forms searched for inside free text; none for account ids (too short and
        too common to find by substring). A phone number also in the ways people write
        one: with dashes, dots or slashes, ``00`` for ``+``, the trunk ``(0)``, the country
        code joined to the area code."""
        if self.type is IdentityType.USER_ID:
            return []
        forms = self.variants()
        if self.type is IdentityType.PHONE:
            forms = list(dict.fromkeys([*forms, *_phone_forms(self.value, written=True)]))
        return [f for f in forms if len(f) >= MIN_TEXT_VARIANT]

    @property
    def case_insensitive(self) -> bool:
        """True when the identity matches regardless of letter case (e-mail addresses)."""
        return self.type in (IdentityType.EMAIL, IdentityType.NATIONAL_ID)

    def masked(self) -> str:
        """The identity as it may be shown: ``email=j***@example.com``."""
        entity = "EMAIL_ADDRESS" if self.type is IdentityType.EMAIL else None
        return f"{self.type}={mask_value(self.value, entity)}"

    def fingerprint_text(self) -> str:
        """What the keyed fingerprint of this identity is computed over."""
        return f"{self.type}:{self.canonical()}"


def _phone_forms(value: str, written: bool = False) -> list[str]:
    """The forms of a phone number as a column may hold it (+49 30 0074321, 030 0074321,
    030-0074321, 030/0074321, +49-30-0074321, 0049 30 0074321 ...), and with ``written``
    also as people write one in text (+49.30.1234567, +4930 1234567, +49 (0)30 1234567,
    0049-30-1234567 ...)."""
    import phonenumbers

    number = _parse_phone(value)
    fmt = phonenumbers.PhoneNumberFormat
    intl = phonenumbers.format_number(number, fmt.INTERNATIONAL)      # +49 30 1234567
    national = phonenumbers.format_number(number, fmt.NATIONAL)       # 030 1234567
    forms = [intl, national, phonenumbers.national_significant_number(number),
             *(national.replace(" ", sep) for sep in ("-", "/", ".", "")),
             intl.replace(" ", "-"), "00" + intl[1:]]
    # The country code without its "+" (1.515.555.0101, as Oracle's HR sample stores staff
    # phones; 15155550101): digit groups of the international form, however separated.
    groups = [g for g in re.split(r"[ \-]", intl[1:]) if g]
    forms += [sep.join(groups) for sep in (".", " ", "-", "")]
    # The national form's groups without its brackets (515.555.0101 for (515) 555-0101).
    groups = [g for g in re.split(r"[ \-()]", national) if g]
    forms += [sep.join(groups) for sep in (".", " ", "-")]
    if not written:
        return forms
    cc = f"+{number.country_code}"
    rest = intl[len(cc):].strip()                                     # 30 1234567
    joined = [intl.replace(" ", sep) for sep in ("-", ".", "/")] + [f"{cc}{rest}",
                                                                    f"{cc}-{rest}"]
    forms += joined + ["00" + f[1:] for f in (*joined, cc + rest.replace(" ", ""))]
    if national[:1] == "0":                                           # a trunk prefix
        forms += [f"{cc} (0){rest}", f"{cc}(0){rest}", f"{cc} (0) {rest}"]
    plain = national.replace("(", "").replace(")", "")
    forms += [plain, plain.replace(" ", "-"), plain.replace(" ", "")]
    return forms


def _parse_phone(value: str) -> phonenumbers.PhoneNumber:
    # phonenumbers (0.1 s to import) only where a phone number is read.
    import phonenumbers

    # NumberParseException.error_type is a plain int.
    errors = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "invalid country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the prefix",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    text = value.strip()
    try:
        if text.startswith("+") or text.startswith("00"):
            number = phonenumbers.parse(text, None)
        else:
            # Without a country code, only a mainland China mobile number is unambiguous.
            number = phonenumbers.parse(text, "CN")
            if phonenumbers.number_type(number) not in (
                    phonenumbers.PhoneNumberType.MOBILE,
                    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
                raise IdentityError(
                    "phone: write the number with its country code, e.g. +44 20 7946 0123")
    except phonenumbers.NumberParseException as e:
        reason = errors.get(e.error_type, "unreadable")
        raise IdentityError(f"phone: not a phone number ({reason})") from None
    if not phonenumbers.is_possible_number(number):
        raise IdentityError("phone: not a possible phone number")
    return number


def parse_identity(text: str) -> Identity:
    """An identity from ``type=value``; IdentityError names what is wrong."""
    kind, sep, value = text.partition("=")
    kind, value = kind.strip().lower(), value.strip()
    known = ", ".join(t.value for t in IdentityType)
    if not sep:  # the text may be the bare value: shown masked only
        raise IdentityError(f"identity {mask_value(kind)!r}: write it as type=value "
                            f"(types: {known})")
    try:
        itype = IdentityType(kind)
    except ValueError:
        raise IdentityError(f"unknown identity type {kind!r}; known: {known}") from None
    if not value:
        raise IdentityError(f"identity {kind}: empty value")
    if len(value) > 320:
        raise IdentityError(f"identity {kind}: value longer than 320 characters")
    identity = Identity(itype, value)
    if itype is IdentityType.EMAIL and ("@" not in value or value.startswith("@")
                                        or value.endswith("@")):
        raise IdentityError("email: not an e-mail address")
    identity.canonical()  # validates phone numbers
    if itype is IdentityType.NATIONAL_ID:
        _check_national_id(identity.canonical())
    return identity


def _check_national_id(text: str) -> None:
    """IdentityError for a national ID whose own check digit proves it mistyped: an
    18-character Chinese resident ID (GB 11643, as python-stdnum computes it). Other
    national IDs carry no check this can rely on and are taken as written."""
    if re.fullmatch(r"\d{17}[A-Z]", text) and text[17] != "X":
        raise IdentityError("national_id: reads as a Chinese resident ID, but its last "
                            "character can only be a digit or X (mistyped?)")
    if re.fullmatch(r"\d{17}[\dX]", text):
        from stdnum.cn import ric

        if ric.calc_check_digit(text) != text[17]:     # (given the whole number)
            raise IdentityError("national_id: reads as a Chinese resident ID, but its last "
                                "character is not its check digit (mistyped?)")
