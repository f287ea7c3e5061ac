"""Column-name signals: what a column's name suggests it holds, in English and Chinese."""

from __future__ import annotations

import re

# (pattern on the normalised column name, category). First match wins, so put the
# more specific patterns first. Names are lower-cased; camelCase is split with "_".
_NAME_SIGNALS: list[tuple[str, str]] = [
    (r"(^|_)(password|passwd|pwd|pass|passwort|password_?hash|pass_?hash|hashed_?password"
     r"|pw_?hash|pwhash|pass_?word)(_|$)|密码|口令", "credential.password"),
    (r"(^|_)(secret|api_?key|apikey|access_?key|secret_?key|token|access_?token"
     r"|refresh_?token|auth_?token|private_?key|client_?secret|session_?key)(_|$)|密钥|令牌",
     "credential.token"),
    (r"(^|_)(e_?mail|mail_?address|email_?address)(_|$)|邮箱|电子邮件", "contact.email"),
    (r"(^|_)(phone|mobile|msisdn|tel|telephone|cell|cellphone|fax)(_|$)|手机|电话",
     "contact.phone"),
    (r"(^|_)(ssn|social_security|national_id|nid|id_card|id_number|resident_id|idcard"
     r"|citizen_id|tax_id|nino)(_|$)|身份证", "identity.national_id"),
    (r"(^|_)passport", "identity.passport"),
    (r"(^|_)(dob|birth_?date|date_of_birth|birthday|birth_(day|month|year))(_|$)|出生|生日",
     "identity.date_of_birth"),
    (r"(^|_)(card_?number|card_?no|cc_?number|cc_?num|ccn|pan|credit_card)(_|$)",
     "financial.card"),
    (r"(^|_)(iban|bank_?account|account_?number|bank_?card)(_|$)|银行卡|卡号",
     "financial.bank_account"),
    (r"(^|_)(ip|ip_?addr|ip_?address|client_ip|remote_addr)(_|$)", "network.ip"),
    (r"(^|_)(device_?id|idfa|gaid|cookie_?id|advertising_id)(_|$)", "network.device_id"),
    (r"(^|_)(lat|lng|lon|latitude|longitude|geo|gps)(_|$)", "location.precise"),
    # A login name, or the key of a customer/user row (a person's internal identifier).
    (r"(^|_)(user_?name|login|login_?name|user_?login"
     r"|(customer|user|member|client|patient|employee|subscriber)_?(id|no|number|sk|key))(_|$)"
     r"|用户名|账号", "identity.user_id"),
    (r"(^|_)(address|street|addr|postcode|postal_?code|zip|zipcode|city|district|state"
     r"|province|county|house|house_?number|street_?number|suite|suite_?number|town"
     r"|address_?(line)?_?\d|address_?line)(_|$)"
     r"|地址|住址|区县|省份", "location.address"),
    # (A given or family name's word may follow another word unseparated, as in
    # classicmodels' contactFirstName written contactfirstname.)
    (r"(first_?name|last_?name|given_?name|family_?name|middle_?name|maiden_?name"
     r"|nick_?name|surname)(_|$)"
     r"|(^|_)(full_?name|fname|lname|name_zh|name_cn"
     r"|(customer|contact|person|employee|member|patient|client|student|owner|holder"
     r"|cardholder|recipient|sender|buyer|manager)_?name)(_|$)|姓名|名字", "identity.name"),
    (r"(^|_)(diagnosis|medical|health|allergy|condition|prescription)(_|$)|病历|诊断|健康",
     "health"),
    (r"(^|_)(religion|faith)(_|$)|宗教", "special.religion"),
    (r"(^|_)(ethnicity|race|ethnic)(_|$)|民族", "special.ethnicity"),
    (r"(^|_)(political|party_affiliation)(_|$)", "special.political"),
    (r"(^|_)(union_member|trade_union)", "special.trade_union"),
    (r"(^|_)(sexual_orientation|sex_life)(_|$)", "special.sex_life"),
    (r"(^|_)(fingerprint|face_?id|biometric|iris)(_|$)|指纹|人脸", "biometric"),
]
# A bare ``name`` column: a person's name only when its values or its table say so.
BARE_NAME = re.compile(r"^(?:[a-z]{1,3}_)?name$|^名称$")
# Keys of rows (integer surrogate keys, foreign keys): never the address or name they point at.
KEY_SUFFIX = re.compile(r"(^|_)(id|sk|key|fk|pk)$")
# Address parts that may well be integers.
NUMERIC_ADDRESS = re.compile(r"(^|_)(house|house_?number|street_?number|zip|zipcode|postcode"
                             r"|postal_?code|suite_?number)(_|$)")
_COMPILED = [(re.compile(p), c) for p, c in _NAME_SIGNALS]

# Names that contain a signal word but are not personal data.
_NOT_PERSONAL = re.compile(
    r"(^|_)(file_?name|table_?name|product_?name|company_?name|host_?name|user_?agent"
    r"|event_?name|campaign_?name|zip_?file|name_?space|column_?name)(_|$)")


def normalise(name: str) -> str:
    """Lower-case ``name`` and split camelCase and punctuation into ``_``."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^0-9a-z\u4e00-\u9fff]+", "_", name.lower()).strip("_")


def category_from_name(column: str) -> str | None:
    """The category the column name suggests, or None."""
    norm = normalise(column)
    if _NOT_PERSONAL.search(norm):
        return None
    for rx, category in _COMPILED:
        if rx.search(norm):
            if category in ("location.address", "identity.name") and KEY_SUFFIX.search(norm):
                return None  # address_id, city_id, name_key: keys, not what they point at
            return category
    return None


def is_bare_name(column: str) -> bool:
    """True for a column called just ``name`` (or ``c_name``): whose name it is depends
    on the table and the values."""
    return bool(BARE_NAME.match(normalise(column)))


def is_numeric_address(column: str) -> bool:
    """True for address parts that are numbers (house number, postcode, suite)."""
    return bool(NUMERIC_ADDRESS.search(normalise(column)))
