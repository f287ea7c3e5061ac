"""Column-name signals: what a column's name suggests it holds, in English and Chinese."""

from __future__ import annotations

import re

# (pattern on the normalised column name, category). First match wins, so put the
# more specific patterns first. Names are lower-cased; camelCase is split with "_".
_NAME_SIGNALS: list[tuple[str, str]] = [
    (r"(^|_)(e_?mail|mail_?address)(_|$)|邮箱|电子邮件", "contact.email"),
    (r"(^|_)(phone|mobile|msisdn|tel|telephone|cell|cellphone)(_|$)|手机|电话", "contact.phone"),
    (r"(^|_)(ssn|social_security|national_id|nid|id_card|id_number|resident_id|idcard"
     r"|citizen_id|tax_id|nino)(_|$)|身份证", "identity.national_id"),
    (r"(^|_)passport", "identity.passport"),
    (r"(^|_)(dob|birth_?date|date_of_birth|birthday)(_|$)|出生|生日", "identity.date_of_birth"),
    (r"(^|_)(card_?number|cc_?number|pan|credit_card)(_|$)", "financial.card"),
    (r"(^|_)(iban|bank_?account|account_?number|bank_?card)(_|$)|银行卡|卡号",
     "financial.bank_account"),
    (r"(^|_)(ip|ip_?addr|ip_?address|client_ip|remote_addr)(_|$)", "network.ip"),
    (r"(^|_)(device_?id|idfa|gaid|cookie_?id|advertising_id)(_|$)", "network.device_id"),
    (r"(^|_)(lat|lng|lon|latitude|longitude|geo|gps)(_|$)", "location.precise"),
    (r"(^|_)(address|street|addr|postcode|postal_code|zip|zipcode|city)(_|$)|地址|住址",
     "location.address"),
    (r"(^|_)(first_?name|last_?name|full_?name|given_?name|family_?name|surname|name"
     r"|customer_name|contact_name|name_zh|name_cn)(_|$)|姓名|名字", "identity.name"),
    (r"(^|_)(diagnosis|medical|health|allergy|condition|prescription)(_|$)|病历|诊断|健康",
     "health"),
    (r"(^|_)(religion|faith)(_|$)|宗教", "special.religion"),
    (r"(^|_)(ethnicity|race|ethnic)(_|$)|民族", "special.ethnicity"),
    (r"(^|_)(political|party_affiliation)(_|$)", "special.political"),
    (r"(^|_)(union_member|trade_union)", "special.trade_union"),
    (r"(^|_)(sexual_orientation|sex_life)(_|$)", "special.sex_life"),
    (r"(^|_)(fingerprint|face_?id|biometric|iris)(_|$)|指纹|人脸", "biometric"),
]
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
            return category
    return None
