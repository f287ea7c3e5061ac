"""The data-category taxonomy that findings, inventories and policies refer to.

Categories are dotted names (``contact.email``). A category is *sensitive* when GDPR
Art. 9 (special categories) or PIPL Art. 28 (sensitive personal information) gives it
extra protection; PIPL counts identity-document numbers, financial accounts and
precise location as sensitive, so those carry the flag too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataCategory:
    """One category of personal data."""

    key: str
    description: str
    gdpr_art9: bool = False
    pipl_art28: bool = False

    @property
    def sensitive(self) -> bool:
        """True when GDPR Art. 9 or PIPL Art. 28 gives this category extra protection."""
        return self.gdpr_art9 or self.pipl_art28


_CATEGORIES = [
    DataCategory("identity.name", "A person's name (given, family or full)"),
    DataCategory("identity.national_id", "National identity number (SSN, resident ID card, ...)",
                 pipl_art28=True),
    DataCategory("identity.passport", "Passport number", pipl_art28=True),
    DataCategory("identity.date_of_birth", "Date of birth"),
    DataCategory("identity.user_id", "Internal identifier of a person (account id, customer no.)"),
    DataCategory("identity.organization_id", "Registration number of an organisation (USCC)"),
    DataCategory("contact.email", "E-mail address"),
    DataCategory("contact.phone", "Telephone or mobile number"),
    DataCategory("location.address", "Postal address"),
    DataCategory("location.precise", "Precise geolocation (coordinates)", pipl_art28=True),
    DataCategory("network.ip", "IP address"),
    DataCategory("network.device_id", "Device or advertising identifier, cookie id"),
    DataCategory("financial.card", "Payment card number", pipl_art28=True),
    DataCategory("financial.bank_account", "Bank account number or IBAN", pipl_art28=True),
    DataCategory("health", "Health, medical or genetic data", gdpr_art9=True, pipl_art28=True),
    DataCategory("biometric", "Biometric data used to identify a person", gdpr_art9=True,
                 pipl_art28=True),
    DataCategory("special.religion", "Religious or philosophical beliefs", gdpr_art9=True,
                 pipl_art28=True),
    DataCategory("special.ethnicity", "Racial or ethnic origin", gdpr_art9=True),
    DataCategory("special.political", "Political opinions", gdpr_art9=True),
    DataCategory("special.trade_union", "Trade union membership", gdpr_art9=True),
    DataCategory("special.sex_life", "Sex life or sexual orientation", gdpr_art9=True),
    # GB/T 35273-2020 Annex B lists account passwords and their protection answers as
    # sensitive personal information; a leaked secret opens the person's account.
    DataCategory("credential.password", "A password, stored in plain text or hashed "
                 "(the finding grades how it is stored)", pipl_art28=True),
    DataCategory("credential.token", "An API token, access key or other secret",
                 pipl_art28=True),
    DataCategory("free_text", "Free text that contains personal data of the kinds listed "
                 "in the finding's entity types"),
]

CATEGORIES: dict[str, DataCategory] = {c.key: c for c in _CATEGORIES}

# Presidio-style entity types (and ours) -> the category a column of them belongs to.
ENTITY_CATEGORY: dict[str, str] = {
    "EMAIL_ADDRESS": "contact.email",
    "PHONE_NUMBER": "contact.phone",
    "CN_MOBILE": "contact.phone",
    "PERSON": "identity.name",
    "CN_PERSON_NAME": "identity.name",
    "US_SSN": "identity.national_id",
    "CN_RESIDENT_ID": "identity.national_id",
    "US_PASSPORT": "identity.passport",
    "CN_USCC": "identity.organization_id",
    "CREDIT_CARD": "financial.card",
    "CN_BANK_CARD": "financial.bank_account",
    "IBAN_CODE": "financial.bank_account",
    "US_BANK_NUMBER": "financial.bank_account",
    "IP_ADDRESS": "network.ip",
    "LOCATION": "location.address",
    "MEDICAL_LICENSE": "health",
}


def get_category(key: str) -> DataCategory:
    """Return the category named ``key``; raise KeyError naming the valid choices."""
    try:
        return CATEGORIES[key]
    except KeyError:
        raise KeyError(
            f"unknown data category {key!r}; known: {', '.join(sorted(CATEGORIES))}"
        ) from None


def is_sensitive(key: str | None) -> bool:
    """True when the category ``key`` is a special or sensitive category."""
    return bool(key) and key in CATEGORIES and CATEGORIES[key].sensitive
