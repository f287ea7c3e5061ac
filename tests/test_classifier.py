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
    c = classify_column("full_name", ["Qzx Vwk", "Brrt Tpq"])
    assert c.category == "identity.name"
    assert c.evidence["method"] == "name"
    c = classify_column("full_name", ["Alice Martin", "王芳"])
    assert c.category == "identity.name"
    assert c.evidence["method"] == "values+name"


def test_column_name_signals() -> None:
    assert category_from_name("userEmail") == "contact.email"
    assert category_from_name("手机号") == "contact.phone"
    assert category_from_name("id_card_no") == "identity.national_id"
    assert category_from_name("client_ip") == "network.ip"
    assert category_from_name("diagnosis") == "health"
    assert category_from_name("created_at") is None


# --- issue 14: misses on public schemas -------------------------------------------------------

import hashlib  # noqa: E402

import pytest  # noqa: E402

LOOKUP_NAMES = {
    "category": ["Action", "Animation", "Children", "Classics", "Comedy", "Documentary",
                 "Drama", "Family", "Foreign", "Games", "Horror", "Music", "New", "Sci-Fi",
                 "Sports", "Travel"],
    "language": ["English", "Italian", "Japanese", "Mandarin", "French", "German"],
    "genres": ["Rock", "Jazz", "Metal", "Alternative & Punk", "Rock And Roll", "Blues",
               "Latin", "Reggae", "Pop", "Soundtrack", "Bossa Nova", "Easy Listening"],
    "media_types": ["MPEG audio file", "Protected AAC audio file", "Protected MPEG-4 video file",
                    "Purchased AAC audio file", "AAC audio file"],
    "playlists": ["Music", "Movies", "TV Shows", "Audiobooks", "90’s Music", "Grunge",
                  "Classical", "Brazilian Music", "Heavy Metal Classic", "On-The-Go 1"],
    "artists": ["AC/DC", "Accept", "Aerosmith", "Alanis Morissette", "Alice In Chains",
                "Antônio Carlos Jobim", "Apocalyptica", "Audioslave", "BackBeat",
                "Billy Cobham", "Black Label Society", "Black Sabbath", "Body Count",
                "Bruce Dickinson", "Buddy Guy", "Caetano Veloso", "Chico Buarque"],
    "product": ["Chai", "Chang", "Aniseed Syrup", "Chef Anton's Cajun Seasoning",
                "Grandma's Boysenberry Spread", "Uncle Bob's Organic Dried Pears",
                "Northwoods Cranberry Sauce", "Mishi Kobe Niku", "Ikura", "Queso Cabrales"],
}


@pytest.mark.parametrize("table", sorted(LOOKUP_NAMES))
def test_name_of_a_lookup_table_is_no_persons_name(table: str) -> None:
    c = classify_column("name", LOOKUP_NAMES[table] * 3, table=table)
    assert c.category is None, (table, c.evidence)
    assert c.evidence["name_context"]


def test_name_of_a_table_of_people_is_a_persons_name() -> None:
    c = classify_column("name", ["Luís Gonçalves", "Leonie Köhler", "François Tremblay",
                                 "Bjørn Hansen", "Helena Holý", "Astrid Gruber"], table="customer")
    assert c.category == "identity.name"


@pytest.mark.parametrize("column", ["address_id", "city_id", "shipping_address_id",
                                    "billing_address_id", "AddressId"])
def test_integer_keys_are_not_addresses(column: str) -> None:
    assert category_from_name(column) is None
    assert classify_column(column, list(range(1, 300))).category is None


def test_integer_under_an_address_name_is_no_address() -> None:
    c = classify_column("address", list(range(1, 300)))
    assert c.category is None and c.evidence["name_context"] == "integers are not addresses"


@pytest.mark.parametrize(("column", "values", "category"), [
    ("district", ["Alberta", "QLD", "Nagasaki", "California", "Attika"], "location.address"),
    ("State", ["SP", "QC", "AB", "CA", "WA", None, "RJ"], "location.address"),
    ("BillingState", ["SP", "QC", "AB", "CA", "WA", "RJ"], "location.address"),
    ("house", [12, 7, 101, 3, 45], "location.address"),
    ("ccn", ["4111111111111111", "5555555555554444", "378282246310005"], "financial.card"),
    ("username", ["jdoe", "mmiller", "wang.fang", "ann_k"], "identity.user_id"),
])
def test_issue_misses_are_classified(column: str, values: list, category: str) -> None:
    assert classify_column(column, values).category == category


def test_composer_column_of_person_names_is_a_name() -> None:
    values = ["Angus Young, Malcolm Young, Brian Johnson", None, "Jerry Cantrell",
              "Steven Tyler, Joe Perry, Jack Blades, Tommy Shaw", "J.C. Fogerty",
              "F. Baltes, S. Kaufman, U. Dirkscneider & W. Hoffman", "Jimi Hendrix",
              "Eric Clapton", "Billy Cobham", "Bruce Dickinson"]
    c = classify_column("Composer", values, table="tracks")
    assert c.category == "identity.name"
    assert c.evidence["method"] == "values"


def test_state_of_an_order_is_no_address() -> None:
    c = classify_column("state", ["pending", "shipped", "cancelled", "paid"] * 10)
    assert c.category is None


def test_customer_id_referring_to_a_person_is_a_user_id() -> None:
    c = classify_column("customer_ref", list(range(1, 60)), person_key=True)
    assert c.category == "identity.user_id"
    assert c.evidence["method"] == "reference"
    assert classify_column("customer_ref", list(range(1, 60))).category is None


def _sha1(pw: str) -> str:
    return hashlib.sha1(pw.encode()).hexdigest()


PASSWORDS = ["hunter2", "correct horse", "Passw0rd!", "letmein", "qwerty123", "dragon"]


def test_plaintext_password_column_is_graded_weak() -> None:
    c = classify_column("password", PASSWORDS)
    assert c.category == "credential.password"
    finding = c.evidence["finding"]
    assert (finding["scheme"], finding["grade"], finding["severity"]) == \
        ("plaintext", "weak", "critical")
    assert c.masked_samples == []
    assert not any(p in str(c.evidence) for p in PASSWORDS)


def test_unsalted_sha1_password_column_is_graded_weak() -> None:
    digests = [_sha1(p) for p in PASSWORDS]
    c = classify_column("password", digests)
    assert c.category == "credential.password"
    finding = c.evidence["finding"]
    assert (finding["scheme"], finding["salted"], finding["grade"], finding["severity"]) == \
        ("sha1_hex", False, "weak", "high")
    assert c.masked_samples == []
    assert not any(d in str(c.evidence) for d in digests)


def test_bcrypt_password_column_is_graded_strong_even_without_a_name() -> None:
    bcrypt = pytest.importorskip("bcrypt")
    hashes = [bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode() for p in PASSWORDS]
    assert all(bcrypt.checkpw(p.encode(), h.encode()) for p, h in zip(PASSWORDS, hashes,
                                                                        strict=True))
    for column in ("password", "pw_col"):
        c = classify_column(column, hashes)
        assert c.category == "credential.password", column
        finding = c.evidence["finding"]
        assert (finding["scheme"], finding["grade"], finding["severity"]) == \
            ("bcrypt", "strong", "info")


@pytest.mark.parametrize(("value", "scheme", "grade"), [
    # Django's documented format; 1,000 iterations is far under OWASP's 600,000.
    ("pbkdf2_sha256$1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "pbkdf2_sha256", "acceptable"),
    ("pbkdf2_sha256$600000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "pbkdf2_sha256", "strong"),
    ("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
     "argon2", "strong"),
    ("$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD",
     "scrypt", "strong"),
    (hashlib.md5(b"x").hexdigest(), "md5_hex", "weak"),
    (hashlib.sha256(b"x").hexdigest(), "sha256_hex", "weak"),
])
def test_password_hash_schemes_are_named_and_graded(value: str, scheme: str, grade: str) -> None:
    c = classify_column("password_hash", [value] * 3)
    assert c.category == "credential.password"
    assert (c.evidence["finding"]["scheme"], c.evidence["finding"]["grade"]) == (scheme, grade)


def test_secret_column() -> None:
    c = classify_column("api_key", ["sk_live_51H8xXb2eZvKYlo2C", "sk_live_51H8xXb2eZvKYlo3D"])
    assert c.category == "credential.token"
    assert c.masked_samples == []


def test_person_key_columns_follow_declared_references(tmp_path) -> None:
    from governance.inventory import load_inventory
    from governance.scan import person_key_columns

    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\norganization: t\nsources:\n"
        "  - name: shop\n    kind: sqlite\n    connection: {path: shop.db}\n"
        "    owner: a@example.org\n    jurisdictions: [EU]\n    tables:\n"
        "      - name: customer\n        subject_key: customer_id\n"
        "      - name: address\n"
        "      - name: rental\n        references:\n"
        "          - {column: customer_id, to: customer.customer_id}\n"
        "          - {column: address_id, to: address.address_id}\n"
        "  - name: crm\n    kind: sqlite\n    connection: {path: crm.db}\n"
        "    owner: a@example.org\n    jurisdictions: [EU]\n    tables:\n"
        "      - name: ticket\n        references:\n"
        "          - {column: shop_customer, to: shop.customer.customer_id}\n",
        encoding="utf-8")
    inv = load_inventory(path)
    shop, crm = inv.source("shop"), inv.source("crm")
    assert person_key_columns(shop, "customer") == {"customer_id"}
    assert person_key_columns(shop, "rental") == {"customer_id"}  # not address_id
    assert person_key_columns(crm, "ticket", inv) == {"shop_customer"}
    assert person_key_columns(shop, "address") == set()


def test_names_with_surnames_no_list_has_are_names_by_their_values() -> None:
    """Found by a helper: Oracle's CO customers' full names ("Michael Marker", "Tamika
    Hu": invented surnames) under a neutral column name were not found (the name lists
    knew the given names but not most surnames)."""
    from public_data import sample_schemas

    names = [r["full_name"] for t, r in sample_schemas.rows("co") if t == "customers"]
    got = classify_column("c2", names, table="t1")
    assert got.category == "identity.name" and got.evidence["method"] == "values"
    # Products and stores of the same sample stay what they are.
    products = [r["product_name"] for t, r in sample_schemas.rows("co") if t == "products"]
    assert classify_column("c3", products, table="t2").category is None
