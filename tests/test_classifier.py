from __future__ import annotations

from governance.detection.classifier import classify_column
from governance.detection.column_names import category_from_name


def test_structured_column_classified_by_values_with_masked_samples() -> None:
    c = classify_column("contact", ["ann@example.com", "bo@example.org", None, "", "cy@ex.net"])
    assert c.category == "contact.email"
    assert c.entity_types == ["EMAIL_ADDRESS"]
    assert c.non_null == 3 and c.matched == 3
    assert c.confidence >= 0.9
    assert c.masked_samples[0] == "a***@example.com"
    assert "ann@example.com" not in c.masked_samples


def test_mixed_phone_column_counts_as_one_category() -> None:
    c = classify_column("phone", ["13812345678", "+1 415-555-0132", "+44 20 7946 0958",
                                  "13912345678"])
    assert c.category == "contact.phone"
    assert set(c.entity_types) == {"PHONE_NUMBER", "CN_MOBILE"}


def test_free_text_reports_entity_types() -> None:
    c = classify_column("notes", [
        "Customer wrote from ann@example.com about a late delivery today",
        "用户来电，要求把手机号改为13812345678，已核实身份。",
        "Customer asked how to change the delivery slot; explained options",
    ])
    assert c.category == "free_text"
    assert c.free_text
    assert set(c.entity_types) == {"EMAIL_ADDRESS", "CN_MOBILE"}


def test_non_personal_columns_stay_unclassified() -> None:
    assert classify_column("amount_cents", ["1200", "599", "30000"]).category is None
    assert classify_column("order_no", ["20231105123456", "20231105123457"]).category is None
    assert classify_column("file_name", ["a.txt", "b.txt"]).category is None


def test_name_signal_alone() -> None:
    c = classify_column("full_name", ["Alice Martin", "王芳"])
    assert c.category == "identity.name"
    assert c.evidence["method"] == "name"


def test_column_name_signals() -> None:
    assert category_from_name("userEmail") == "contact.email"
    assert category_from_name("手机号") == "contact.phone"
    assert category_from_name("id_card_no") == "identity.national_id"
    assert category_from_name("client_ip") == "network.ip"
    assert category_from_name("diagnosis") == "health"
    assert category_from_name("created_at") is None
