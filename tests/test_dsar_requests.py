"""Data-subject request intake: identities, deadlines, lifecycle, leases, no plaintext stored."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from governance.audit_store import AuditStore
from governance.crypto.keyring import KeyMaterialError, KeyRing
from governance.dsar import RequestBook, RequestError, RequestState, parse_identity
from governance.dsar.deadlines import add_working_days, rule_for
from governance.dsar.identities import IdentityError
from governance.errors import GovernanceError

EMAIL = "ann.lee@example.org"


@pytest.fixture()
def book(tmp_path: Path) -> RequestBook:
    return RequestBook(AuditStore(tmp_path / "audit.duckdb", create=True))


def test_gdpr_deadline_is_one_month_and_extends_by_two() -> None:
    gdpr = rule_for("EU")
    assert gdpr.due(date(2026, 1, 31)) == date(2026, 2, 28)      # clamped to month end
    assert gdpr.due(date(2026, 1, 31), extended=True) == date(2026, 4, 30)
    assert gdpr.due(date(2026, 3, 15)) == date(2026, 4, 15)
    assert rule_for("UK").law == "GDPR"


def test_ccpa_deadline_is_45_days_and_extends_once_by_45() -> None:
    ccpa = rule_for("US-CA")
    assert ccpa.due(date(2026, 11, 25)) == date(2027, 1, 9)
    assert ccpa.due(date(2026, 11, 25), extended=True) == date(2027, 2, 23)


def test_pipl_deadline_counts_working_days_and_holidays() -> None:
    # Wednesday 2026-11-25 + 15 working days = Wednesday 2026-12-16.
    assert rule_for("CN").due(date(2026, 11, 25)) == date(2026, 12, 16)
    assert rule_for("CN", 10).due(date(2026, 11, 25)) == date(2026, 12, 9)
    holiday = date(2026, 12, 1)
    assert rule_for("CN", holidays=[holiday]).due(date(2026, 11, 25)) == date(2026, 12, 17)
    assert add_working_days(date(2026, 11, 27), 1) == date(2026, 11, 30)  # Fri -> Mon
    assert not rule_for("CN").extendable
    with pytest.raises(GovernanceError, match="US-CA"):
        rule_for("US")


def test_identity_forms_and_errors() -> None:
    phone = parse_identity("phone=+86 138 1234 5678")
    assert {"+8613812345678", "13812345678", "+86 138 1234 5678"} <= set(phone.variants())
    assert parse_identity("phone=13812345678").canonical() == "+8613812345678"
    assert parse_identity("email=Ann@Example.org").canonical() == "ann@example.org"
    assert parse_identity("user_id=17").text_variants() == []
    assert parse_identity(f"email={EMAIL}").masked() == "email=a***@example.org"
    for bad, message in [("email", "type=value"), ("iban=DE44", "unknown identity type"),
                         ("email=", "empty value"), ("email=nobody", "not an e-mail"),
                         ("phone=12", "country code"), ("phone=+1 12", "phone")]:
        with pytest.raises(IdentityError, match=message):
            parse_identity(bad)
    with pytest.raises(IdentityError) as bare:  # a value given without its type
        parse_identity(EMAIL)
    assert EMAIL not in str(bare.value) and "type=value" in str(bare.value)


def test_lifecycle_is_enforced_and_logged_with_actor(book: RequestBook) -> None:
    r = book.create("erasure", [f"email={EMAIL}"], "EU", "dpo-anna")
    assert r.state is RequestState.RECEIVED and r.law == "GDPR"
    assert r.due_date == rule_for("EU").due(r.received_at.date())
    with pytest.raises(RequestError, match="cannot become completed"):
        book.transition(r.request_id, "completed", "dpo-anna")
    extended = book.extend(r.request_id, "dpo-ben", "complex request across 12 systems")
    assert extended.state is RequestState.EXTENDED and extended.extended
    assert extended.due_date == rule_for("EU").due(r.received_at.date(), extended=True)
    with pytest.raises(RequestError, match="already extended"):
        book.extend(r.request_id, "dpo-ben", "again")
    with pytest.raises(RequestError, match="not been verified"):
        book.transition(r.request_id, "in_progress", "dpo-anna")
    with pytest.raises(RequestError, match="how the identity was verified"):
        book.verify(r.request_id, "dpo-anna", " ")
    book.verify(r.request_id, "dpo-anna", "passport seen")
    book.transition(r.request_id, "in_progress", "dpo-ben")
    done = book.complete(r.request_id, "dpo-ben", {"rows_changed": 0})
    assert done.state is RequestState.COMPLETED and done.closed_at is not None
    with pytest.raises(RequestError, match="cannot become"):
        book.reject(r.request_id, "dpo-ben", "too late")
    entries = [e for e in book.store.log_entries() if e.target == r.request_id]
    assert [(e.action, e.actor) for e in entries] == [
        ("dsar.received", "dpo-anna"), ("dsar.extended", "dpo-ben"),
        ("dsar.verified", "dpo-anna"), ("dsar.in_progress", "dpo-ben"),
        ("dsar.completed", "dpo-ben")]
    assert entries[1].details["reason"] == "complex request across 12 systems"
    assert book.store.verify_log().ok


def test_pipl_request_cannot_be_extended_and_rectify_needs_corrections(book) -> None:
    r = book.create("access", ["phone=13812345678"], "CN", "dpo")
    assert r.law == "PIPL"
    with pytest.raises(RequestError, match="PIPL gives no extension"):
        book.extend(r.request_id, "dpo", "busy")
    with pytest.raises(RequestError, match="at least one correction"):
        book.create("rectify", [f"email={EMAIL}"], "EU", "dpo")
    with pytest.raises(RequestError, match="only for rectify"):
        book.create("access", [f"email={EMAIL}"], "EU", "dpo", {"phone": "+44 20 7946 0000"})
    with pytest.raises(RequestError, match="unknown request type"):
        book.create("delete", [f"email={EMAIL}"], "EU", "dpo")
    with pytest.raises(RequestError, match="no data-subject request"):
        book.get("dsar-nope")


def test_list_shows_open_requests_overdue_first(book: RequestBook) -> None:
    old = book.create("access", [f"email={EMAIL}"], "US-CA", "dpo",
                      received_at=datetime.now(UTC) - timedelta(days=50))
    new = book.create("access", ["email=bo@example.org"], "EU", "dpo")
    closed = book.create("access", ["email=cy@example.org"], "EU", "dpo")
    book.reject(closed.request_id, "dpo", "duplicate of an earlier request")
    listed = book.list_requests()
    assert [r.request_id for r in listed] == [old.request_id, new.request_id]
    assert listed[0].days_left() == -5
    assert len(book.list_requests(open_only=False)) == 3


def test_identities_are_sealed_never_stored_in_plaintext(book: RequestBook) -> None:
    r = book.create("rectify", [f"email={EMAIL}", "phone=+44 20 7946 0123"], "EU", "dpo",
                    {"phone": "+44 20 7946 0999"})
    assert [i.value for i in book.identities(r)] == [EMAIL, "+44 20 7946 0123"]
    assert book.corrections(r) == {"phone": "+44 20 7946 0999"}
    raw = book.store.path.read_bytes()
    for secret in (EMAIL, "7946 0123", "7946 0999", "ann.lee"):
        assert secret.encode() not in raw
    conn = duckdb.connect(str(book.store.path), read_only=True)
    text = str(conn.execute("SELECT * FROM dsar_requests").fetchall()) + \
        str(conn.execute("SELECT * FROM audit_log").fetchall())
    conn.close()
    assert EMAIL not in text and "a***@example.org" in text


def test_data_keys_can_be_destroyed(book: RequestBook) -> None:
    r = book.create("access", [f"email={EMAIL}"], "EU", "dpo")
    ring = KeyRing(book.store)
    assert ring.destroy(r.key_id) and not ring.destroy(r.key_id)
    with pytest.raises(KeyMaterialError, match="destroyed"):
        book.identities(r)


def test_a_wrong_master_key_is_refused(tmp_path: Path, monkeypatch) -> None:
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    r = RequestBook(store).create("access", [f"email={EMAIL}"], "EU", "dpo")
    assert (tmp_path / "audit.duckdb.key").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("GOVKIT_MASTER_KEY", "A" * 44)
    with pytest.raises(KeyMaterialError, match="master key"):
        RequestBook(store).identities(r)
    monkeypatch.setenv("GOVKIT_MASTER_KEY", "not base64!")
    with pytest.raises(KeyMaterialError, match="GOVKIT_MASTER_KEY"):
        RequestBook(store)


def test_lease_keeps_a_second_worker_out(book: RequestBook) -> None:
    r = book.create("access", [f"email={EMAIL}"], "EU", "dpo")
    book.claim(r.request_id, "worker-a")
    with pytest.raises(RequestError, match="being run by worker-a"):
        book.claim(r.request_id, "worker-b")
    book.claim(r.request_id, "worker-b", take_over=True)
    assert book.store.log_entries(1)[0].action == "dsar.lease_taken_over"
    book.release(r.request_id, "worker-b")
    book.claim(r.request_id, "worker-a")
