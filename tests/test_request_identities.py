"""Which identities may match rows: a shared phone stops the request; an e-mail read from the
subject's own row reaches rows found only by it; an identifier another person also holds is
never used to match or redact that person's rows. Checked with SQL written here."""

from __future__ import annotations

import sqlite3

import pytest

from governance.audit_store import AuditStore
from governance.demo import DemoPaths
from governance.dsar import RequestBook, plan_request, run_request
from governance.dsar.plan import PlanError
from governance.inventory import load_inventory
from governance.scan import run_scan
from tests.request_worker import cleared_request


@pytest.fixture()
def estate(fresh_demo: DemoPaths):
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(fresh_demo.root / "audit.duckdb", create=True)
    run_scan(inv, store)
    db = sqlite3.connect(fresh_demo.app_db)
    (a_id, a_email, a_phone), (b_id, _, _) = db.execute(
        "SELECT id, email, phone FROM users u WHERE EXISTS (SELECT 1 FROM support_tickets t "
        "WHERE t.user_id = u.id) ORDER BY id LIMIT 2").fetchall()
    # A household: B has A's phone number, and B's own ticket mentions it.
    db.execute("UPDATE users SET phone = ? WHERE id = ?", [a_phone, b_id])
    db.execute("INSERT INTO support_tickets VALUES (9101, ?, 'Callback', ?, '2026-01-03')",
               [b_id, f"Please call us back on {a_phone} after six"])
    # A newsletter signup that holds only A's e-mail and name (an undeclared table; a
    # signup under another name is someone else's: tests/test_derived_identities.py).
    a_name = db.execute("SELECT full_name FROM users WHERE id = ?", [a_id]).fetchone()[0]
    db.execute("INSERT INTO legacy_newsletter_signups VALUES (9102, ?, ?, '10.1.1.1', "
               "'2021-01-01')", [a_email, a_name])
    db.commit()
    db.close()
    return fresh_demo, inv, store, (a_id, a_email, a_phone), b_id


def _request(store: AuditStore, rtype: str, identity: str) -> str:
    return cleared_request(store, rtype, identity if "=" in identity else f"email={identity}")


def _dump(demo: DemoPaths) -> list:
    db = sqlite3.connect(demo.app_db)
    rows = [(t, *r) for t in ("users", "support_tickets", "legacy_newsletter_signups", "orders")
            for r in db.execute(f"SELECT * FROM {t} ORDER BY 1")]
    db.close()
    return rows


def test_a_phone_two_people_share_stops_the_request_and_changes_nothing(estate) -> None:
    demo, inv, store, (_, _, phone), _ = estate
    rid = _request(store, "erasure", f"phone={phone}")
    before = _dump(demo)
    resolution, steps = plan_request(inv, store, rid)
    assert any("matches 2 people" in b for b in resolution.blockers), resolution.blockers
    assert phone not in " ".join(resolution.blockers)       # candidates shown masked
    with pytest.raises(PlanError, match="needs a decision"):
        run_request(inv, store, rid, "dpo", confirm=lambda s: True)
    assert _dump(demo) == before


def test_an_email_derived_from_the_subjects_row_reaches_rows_found_only_by_it(estate) -> None:
    demo, inv, store, (a_id, a_email, _), b_id = estate
    rid = _request(store, "erasure", f"user_id={a_id}")
    out = run_request(inv, store, rid, "dpo", confirm=lambda s: True)
    assert out.status == "completed", out.remaining
    db = sqlite3.connect(demo.app_db)
    assert db.execute("SELECT count(*) FROM legacy_newsletter_signups WHERE "
                      "lower(email_address) = lower(?)", [a_email]).fetchone()[0] == 0
    # B shares the phone: B's account and B's ticket mentioning the number are untouched.
    assert db.execute("SELECT count(*) FROM users WHERE id = ?", [b_id]).fetchone()[0] == 1
    note = db.execute("SELECT notes FROM support_tickets WHERE id = 9101").fetchone()[0]
    assert note.startswith("Please call us back on +") and "<" not in note
    assert any("another person" in why for why in out.kept.values()), out.kept


def test_access_by_email_returns_no_row_of_the_household_member(estate) -> None:
    demo, inv, store, (a_id, a_email, _), b_id = estate
    rid = _request(store, "access", f"email={a_email}")
    resolution, _ = plan_request(inv, store, rid)
    users = resolution.owned[("app_db", "users")]
    assert [u["id"] for u in users] == [a_id]
    tickets = resolution.owned.get(("app_db", "support_tickets"), [])
    assert all(t["user_id"] == a_id for t in tickets)
    mentions = [loc for loc in resolution.locations if loc.table == "support_tickets"
                and loc.relation.value == "mention"]
    assert not any("call us back" in str(v) for loc in mentions for v in loc.values)


def test_holds_refuse_undeclared_tables_and_show_on_requests_they_block(estate) -> None:
    from click.testing import CliRunner

    from governance.cli import main
    from governance.dsar import LegalHolds, parse_identity
    from governance.errors import GovernanceError

    demo, inv, store, (a_id, a_email, _), _ = estate
    holds = LegalHolds(store)
    with pytest.raises(GovernanceError, match="declares no table 'userz'"):
        holds.place_on_table("app_db.userz", "litigation", "dpo", inv)
    # A hold on the e-mail; the request names the account id only: the e-mail is derived.
    rid = _request(store, "erasure", f"user_id={a_id}")
    resolution, _ = plan_request(inv, store, rid)
    hold = holds.place_on_subject([parse_identity(f"email={a_email}")], "litigation", "dpo")
    RequestBook(store).add_derived(RequestBook(store).get(rid), resolution.derived, "dpo")
    result = CliRunner().invoke(main, ["dsar", "list", "--store", str(store.path)])
    assert result.exit_code == 0, result.output
    assert f"HELD: legal hold {hold.hold_id}" in result.output
    resolution, _ = plan_request(inv, store, rid)
    assert any(hold.hold_id in b for b in resolution.blockers)
    with pytest.raises(GovernanceError, match="legal hold"):
        run_request(inv, store, rid, "dpo", confirm=lambda s: True)


def test_dsar_list_shows_a_hold_on_a_derived_identity_of_a_request_planned_before(estate
                                                                                  ) -> None:
    """Requests planned by an older govkit kept derived identities only in their sealed
    payload (not among the request's fingerprints): dsar list still finds the hold."""
    from click.testing import CliRunner

    from governance.cli import main
    from governance.dsar import LegalHolds, RequestState, parse_identity

    demo, inv, store, (a_id, a_email, _), _ = estate
    rid = _request(store, "erasure", f"user_id={a_id}")
    given = RequestBook(store).get(rid).fingerprints
    resolution, _ = plan_request(inv, store, rid)
    book = RequestBook(store)
    book.add_derived(book.get(rid), resolution.derived, "dpo")
    assert set(book.get(rid).fingerprints) > set(given)
    book.transition(rid, RequestState.IN_PROGRESS, "dpo")
    import duckdb

    conn = duckdb.connect(str(store.path))   # as an older govkit left it
    conn.execute("UPDATE dsar_requests SET fingerprints = ? WHERE request_id = ?",
                 [given, rid])
    conn.close()
    hold = LegalHolds(store).place_on_subject([parse_identity(f"email={a_email}")],
                                              "litigation", "dpo")
    result = CliRunner().invoke(main, ["dsar", "list", "--store", str(store.path)])
    assert result.exit_code == 0, result.output
    assert f"HELD: legal hold {hold.hold_id}" in result.output


def test_an_erasure_by_phone_reaches_rows_found_only_by_the_subjects_email(estate) -> None:
    """Issue 12 #8: the undeclared newsletter table holds only the e-mail."""
    demo, inv, store, _, _ = estate
    db = sqlite3.connect(demo.app_db)
    uid, email, phone = db.execute(
        "SELECT id, email, phone FROM users u WHERE phone IS NOT NULL AND (SELECT count(*) "
        "FROM users v WHERE v.phone = u.phone) = 1 ORDER BY id DESC LIMIT 1").fetchone()
    db.execute("INSERT INTO legacy_newsletter_signups VALUES (9103, ?, NULL, '10.2.2.2', "
               "'2021-02-02')", [email.upper()])
    db.commit()
    out = run_request(inv, store, _request(store, "erasure", f"phone={phone}"), "dpo",
                      confirm=lambda s: True)
    assert out.status == "completed", out.remaining
    assert db.execute("SELECT count(*) FROM legacy_newsletter_signups WHERE "
                      "lower(email_address) = lower(?)", [email]).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM users WHERE id = ?", [uid]).fetchone()[0] == 0


def test_a_signup_with_the_subjects_email_under_another_name_is_left_and_reported(
        estate) -> None:
    """The e-mail read from the subject's row is also in a signup that names someone else:
    that row is not taken for theirs (it may be another person's); the erasure completes,
    saying so."""
    demo, inv, store, (a_id, a_email, _), _ = estate
    db = sqlite3.connect(demo.app_db)
    db.execute("UPDATE legacy_newsletter_signups SET name = 'Petra Winkler' WHERE "
               "signup_id = 9102")
    db.commit()
    out = run_request(inv, store, _request(store, "erasure", f"user_id={a_id}"), "dpo",
                      confirm=lambda s: True)
    assert out.status == "completed", out.remaining
    assert db.execute("SELECT count(*) FROM legacy_newsletter_signups WHERE signup_id = "
                      "9102 AND email_address = ?", [a_email]).fetchone()[0] == 1
    assert any("another person's or firm's record" in why for why in out.kept.values()), \
        out.kept
