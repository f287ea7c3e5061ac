"""Access, erasure and rectification run end to end on the demo estate (real files)."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass

import pyarrow.parquet as pq
import pytest

from governance.audit_store import AuditStore
from governance.crypto.aead import DecryptionError
from governance.demo import DemoPaths
from governance.dsar import (
    LegalHolds,
    RequestBook,
    RequestError,
    RequestState,
    parse_identity,
    plan_request,
    run_request,
)
from governance.dsar.export import open_export
from governance.dsar.journal import read_journal
from governance.dsar.runner import delivery_passphrase
from governance.inventory import Inventory, load_inventory
from governance.scan import run_scan
from tests.request_worker import approve_plan

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
INJECTION = "x'; DROP TABLE users; --"


@dataclass
class Estate:
    demo: DemoPaths
    inventory: Inventory
    store: AuditStore
    book: RequestBook
    user_id: int
    email: str
    phone: str

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.demo.app_db)

    def count(self, sql: str, *params: object) -> int:
        with self.db() as c:
            return c.execute(sql, params).fetchone()[0]

    def contacts(self) -> list[dict]:
        with self.demo.marketing_csv.open(encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def events(self) -> list[dict]:
        return pq.read_table(self.demo.events_dir / "events.parquet").to_pylist()

    def request(self, rtype: str, *identities: str, verify: bool = True, **kw: object) -> str:
        r = self.book.create(rtype, list(identities or [f"email={self.email}"]), "EU", "dpo",
                             **kw)
        if verify:
            self.book.verify(r.request_id, "dpo", "identity checked against the account")
            if rtype != "access":   # erasure/rectify also need a recorded approval
                approve_plan(self.store, r.request_id, self.inventory)
        return r.request_id


@pytest.fixture()
def estate(fresh_demo: DemoPaths) -> Estate:
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(fresh_demo.root / "audit.duckdb", create=True)
    run_scan(inv, store)
    emails = {row["email"] for row in csv.DictReader(fresh_demo.marketing_csv.open())}
    with sqlite3.connect(fresh_demo.app_db) as c:
        rows = c.execute("SELECT u.id, u.email, u.phone FROM users u WHERE EXISTS (SELECT 1 "
                         "FROM orders o WHERE o.user_id = u.id) AND EXISTS (SELECT 1 FROM "
                         "support_tickets t WHERE t.user_id = u.id) ORDER BY u.id").fetchall()
        uid, email, phone = next(r for r in rows if r[1] in emails)
        # Another customer's ticket mentions our subject: only the mention is theirs.
        c.execute("INSERT INTO support_tickets VALUES (9001, ?, 'Other', ?, '2026-01-02')",
                  (rows[-1][0] if rows[-1][0] != uid else rows[0][0],
                   f"Forwarded by {email.upper()}; reach them on {phone}. "
                   "Cc ops.lead@acme-support.com"))
    return Estate(fresh_demo, inv, store, RequestBook(store), uid, email, phone)


def test_access_exports_everything_about_the_subject_and_nothing_else(estate: Estate) -> None:
    rid = estate.request("access")
    resolution, steps = plan_request(estate.inventory, estate.store, rid)
    places = {(loc.source, loc.table, loc.found_by.value) for loc in resolution.locations}
    assert {("app_db", "users", "identity"), ("app_db", "orders", "reference"),
            ("app_db", "ticket_messages", "reference"), ("event_log", "events", "reference"),
            ("marketing_export", "contacts", "subject_key"),
            ("app_db", "support_tickets", "free_text")} <= places
    assert steps == []
    outcome = run_request(estate.inventory, estate.store, rid, "dpo")
    assert outcome.status == "completed"
    assert outcome.request.state is RequestState.COMPLETED
    raw = outcome.export_path.read_bytes()
    assert estate.email.encode() not in raw and estate.email.split("@")[0].encode() not in raw
    with pytest.raises(DecryptionError, match="wrong passphrase"):
        open_export(outcome.export_path, "not-the-passphrase")
    files = open_export(outcome.export_path, outcome.passphrase)
    users = files["data/app_db/users.json"]
    assert [u["id"] for u in users] == [estate.user_id]
    orders = files["data/app_db/orders.json"]
    assert len(orders) == estate.count("SELECT count(*) FROM orders WHERE user_id = ?",
                                       estate.user_id)
    assert {o["user_id"] for o in orders} == {estate.user_id}
    events = files["data/event_log/events.json"]
    assert len(events) == sum(e["user_id"] == estate.user_id for e in estate.events())
    assert files["data/marketing_export/contacts.json"][0]["email"] == estate.email
    # The other customer's ticket contributes only the text, with a third party masked.
    mention = [t for t in files["data/app_db/support_tickets.json"] if "Forwarded" in
               t.get("notes", "")]
    assert mention == [{"notes": mention[0]["notes"]}]
    assert "ops.lead@acme-support.com" not in mention[0]["notes"]
    assert "<EMAIL_ADDRESS>" in mention[0]["notes"]
    # No one else's e-mail address anywhere in the package.
    everything = json.dumps(files, ensure_ascii=False)
    assert {e.lower() for e in EMAIL_RE.findall(everything)} == {estate.email.lower()}
    manifest = files["manifest.json"]
    searched = {(s["source"], s["table"], s["column"]) for s in manifest["searched"]}
    assert ("app_db", "legacy_newsletter_signups", "email_address") in searched
    assert manifest["identities"][0] == parse_identity(f"email={estate.email}").masked()
    assert files["summary.json"]["tables"]
    assert estate.store.verify_log().ok


def test_erasure_deletes_anonymizes_redacts_and_verifies(estate: Estate) -> None:
    users_before = estate.count("SELECT count(*) FROM users")
    orders = estate.count("SELECT count(*) FROM orders WHERE user_id = ?", estate.user_id)
    amounts = estate.count("SELECT sum(amount_cents) FROM orders")
    other_events = sum(e["user_id"] != estate.user_id for e in estate.events())
    contacts = len(estate.contacts())
    rid = estate.request("erasure")
    outcome = run_request(estate.inventory, estate.store, rid, "dpo")
    assert outcome.status == "completed", outcome.remaining
    assert estate.count("SELECT count(*) FROM users") == users_before - 1
    assert estate.count("SELECT count(*) FROM users WHERE email = ?", estate.email) == 0
    # Orders are kept for tax law: personal data removed, amounts kept.
    assert estate.count("SELECT count(*) FROM orders WHERE user_id IS NULL AND "
                        "shipping_address IS NULL") == orders
    assert estate.count("SELECT sum(amount_cents) FROM orders") == amounts
    assert estate.count("SELECT count(*) FROM support_tickets WHERE user_id = ?",
                        estate.user_id) == 0
    # The other customer's ticket stays, with the subject redacted in place.
    with estate.db() as c:
        notes = c.execute("SELECT notes FROM support_tickets WHERE id = 9001").fetchone()[0]
    assert notes.startswith("Forwarded by <EMAIL_ADDRESS>; reach them on <PHONE_NUMBER>.")
    assert "ops.lead@acme-support.com" in notes
    assert len(estate.contacts()) == contacts - 1
    assert sum(e["user_id"] != estate.user_id for e in estate.events()) == other_events
    assert not any(e["user_id"] == estate.user_id for e in estate.events())
    steps = read_journal(estate.store, rid, None)
    assert steps and all(s.status == "done" for s in steps)
    assert outcome.request.outcome["rows_changed"] == sum(s.rows_affected for s in steps)
    # Done steps keep no match values.
    raw = estate.store.path.read_bytes()
    assert estate.email.encode() not in raw
    # Erasing the same subject again finds nothing and completes honestly.
    again = run_request(estate.inventory, estate.store, estate.request("erasure"), "dpo")
    assert again.status == "completed" and again.steps == []
    with pytest.raises(RequestError, match="completed; nothing to run"):
        run_request(estate.inventory, estate.store, rid, "dpo")


def test_an_email_stored_in_another_letter_case_is_found_and_erased(estate: Estate) -> None:
    """The undeclared signups table holds the subject's address in capitals: the request,
    made in lower case, still finds it, and the erasure removes exactly that row."""
    shouted = estate.email.upper()
    with estate.db() as c:
        c.execute("INSERT INTO legacy_newsletter_signups VALUES (990001, ?, 'x', 'y', "
                  "'2020-01-01')", (shouted,))
    others = estate.count("SELECT count(*) FROM legacy_newsletter_signups")
    rid = estate.request("erasure", f"email={estate.email.lower()}")
    resolution, _ = plan_request(estate.inventory, estate.store, rid)
    found = next(loc for loc in resolution.locations if loc.table == "legacy_newsletter_signups")
    assert shouted in [r["email_address"] for r in found.rows]
    outcome = run_request(estate.inventory, estate.store, rid, "dpo")
    assert outcome.status == "completed", outcome.remaining
    assert estate.count("SELECT count(*) FROM legacy_newsletter_signups WHERE "
                        "lower(email_address) = ?", estate.email.lower()) == 0
    assert estate.count("SELECT count(*) FROM legacy_newsletter_signups") == others - len(
        found.values)


def test_unknown_subject_completes_with_an_empty_honest_result(estate: Estate) -> None:
    rid = estate.request("access", "email=nobody@nowhere.example.org")
    outcome = run_request(estate.inventory, estate.store, rid, "dpo")
    files = open_export(outcome.export_path, outcome.passphrase)
    assert outcome.status == "completed" and outcome.found_rows == 0
    assert files["manifest.json"]["found"] == [] and files["manifest.json"]["searched"]
    assert [n for n in files if n.startswith("data/")] == []
    erase = run_request(estate.inventory, estate.store,
                        estate.request("erasure", "email=nobody@nowhere.example.org"), "dpo")
    assert erase.status == "completed" and erase.steps == []


def test_identity_values_are_bound_parameters(estate: Estate) -> None:
    users = estate.count("SELECT count(*) FROM users")
    rid = estate.request("erasure", f"email={INJECTION}@example.com",
                         f"user_id={INJECTION}", "national_id=1' OR '1'='1")
    outcome = run_request(estate.inventory, estate.store, rid, "dpo")
    assert outcome.status == "completed" and outcome.steps == []
    assert estate.count("SELECT count(*) FROM users") == users
    assert len(estate.contacts()) > 0


def test_unverified_request_is_not_run(estate: Estate) -> None:
    rid = estate.request("erasure", verify=False)
    with pytest.raises(RequestError, match="verify the subject's identity first"):
        run_request(estate.inventory, estate.store, rid, "dpo")
    assert estate.count("SELECT count(*) FROM users WHERE id = ?", estate.user_id) == 1


def test_legal_hold_on_the_subject_refuses_erasure(estate: Estate) -> None:
    holds = LegalHolds(estate.store)
    hold = holds.place_on_subject([parse_identity(f"email={estate.email.upper()}")],
                                  "Litigation hold, case 2026-114", "counsel")
    rid = estate.request("erasure")
    with pytest.raises(RequestError, match="Litigation hold, case 2026-114"):
        run_request(estate.inventory, estate.store, rid, "dpo")
    assert estate.count("SELECT count(*) FROM users WHERE id = ?", estate.user_id) == 1
    assert estate.store.log_entries(1)[0].action == "dsar.refused_legal_hold"
    # Access is still allowed under a hold.
    access = run_request(estate.inventory, estate.store, estate.request("access"), "dpo")
    assert access.status == "completed"
    holds.release(hold.hold_id, "counsel")
    assert run_request(estate.inventory, estate.store, rid, "dpo").status == "completed"


def test_table_hold_is_kept_and_reported_with_its_reason(estate: Estate) -> None:
    LegalHolds(estate.store).place_on_table("event_log.events", "Fraud investigation FR-9",
                                            "counsel")
    events = sum(e["user_id"] == estate.user_id for e in estate.events())
    outcome = run_request(estate.inventory, estate.store, estate.request("erasure"), "dpo")
    assert outcome.status == "completed"
    assert sum(e["user_id"] == estate.user_id for e in estate.events()) == events > 0
    assert any("Fraud investigation FR-9" in r for r in outcome.held.values())
    held = [s for s in outcome.steps if s.status == "held"]
    assert sorted((s.source, s.table) for s in held) == [("app_db", "users"),
                                                        ("event_log", "events")]
    # The held events point at the user row (a reference the inventory declares, across
    # sources): it is kept with them, so that they do not point at nobody.
    assert estate.count("SELECT count(*) FROM users WHERE id = ?", estate.user_id) == 1
    assert any("legal hold on events" in why for why in outcome.kept.values())


def _app_rows(estate: Estate) -> dict[str, list[tuple]]:
    """Every row of the demo's SQLite tables (SQL written here)."""
    with estate.db() as c:
        names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = "
                                          "'table' AND name NOT LIKE 'sqlite_%'")]
        return {n: sorted(map(tuple, c.execute(f'SELECT * FROM "{n}"').fetchall()),
                          key=repr) for n in names}


@pytest.mark.parametrize("scope", ["source", "range", "ended"])
def test_erasure_honours_source_and_time_range_holds_placed_by_retention(
        estate: Estate, scope: str) -> None:
    """Holds placed with retention's scopes stop erasure too: a held source's tables are
    left whole, a time-range hold holds its table whole (erasure reads no retention
    clock), and a hold whose end date has passed no longer applies."""
    from datetime import UTC, datetime

    from governance.retention.holds import place_hold

    inv = estate.inventory
    if scope == "range":
        place_hold(estate.store, reason="Regulator inquiry R-7", actor="counsel",
                   table="app_db.support_tickets", inventory=inv,
                   covers=(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 12, 31, tzinfo=UTC)))
    else:
        place_hold(estate.store, reason="Regulator inquiry R-7", actor="counsel",
                   source="event_log", inventory=inv,
                   ends_at=datetime(2001, 1, 1, tzinfo=UTC) if scope == "ended" else None)
    events = sum(e["user_id"] == estate.user_id for e in estate.events())
    tickets = estate.count("SELECT count(*) FROM support_tickets WHERE user_id = ?",
                           estate.user_id)
    assert events > 0 and tickets > 0
    outcome = run_request(estate.inventory, estate.store, estate.request("erasure"), "dpo")
    assert outcome.status == "completed", outcome.remaining
    # The held tickets point at the user row through a declared key (support_tickets.user_id
    # -> users.id): deleting it would fail, or cascade into them, so it is kept with them;
    # the held events point at it through a reference the inventory declares: kept too.
    assert estate.count("SELECT count(*) FROM users WHERE id = ?", estate.user_id) == \
        (0 if scope == "ended" else 1)
    left_events = sum(e["user_id"] == estate.user_id for e in estate.events())
    left_tickets = estate.count("SELECT count(*) FROM support_tickets WHERE user_id = ?",
                                estate.user_id)
    held = {(s.source, s.table) for s in outcome.steps if s.status == "held"}
    if scope == "source":
        assert left_events == events and held == {("event_log", "events"), ("app_db", "users")}
        assert any("Regulator inquiry R-7" in r for r in outcome.held.values())
        assert any("legal hold on events" in r for r in outcome.kept.values())
        assert left_tickets == 0
    elif scope == "range":
        assert left_tickets == tickets and held >= {("app_db", "support_tickets")}
        assert any("erasure leaves the whole table" in r for r in outcome.held.values())
        assert any("legal hold on support_tickets" in r for r in outcome.kept.values())
        assert "app_db.users" not in outcome.held
        assert left_events == 0
    else:
        assert left_events == 0 and left_tickets == 0 and held == set()


@pytest.mark.parametrize("when", ["before_the_plan", "after_the_plan", "another_person"])
def test_a_hold_on_persons_by_key_refuses_the_erasure_of_a_held_person(
        estate: Estate, when: str) -> None:
    """A hold on persons by their subject keys (retention's scope) refuses an erasure of
    one of them: placed before the plan, or after it was approved (checked again right
    before anything changes, the journal then waits); another person's key hold does not
    stop it. Refused, nothing of the estate changes."""
    from governance.dsar.plan import PlanError
    from governance.retention.holds import place_hold

    rid = estate.request("erasure")
    with estate.db() as c:
        other = c.execute("SELECT min(id) FROM users WHERE id <> ?",
                          (estate.user_id,)).fetchone()[0]

    def hold() -> None:
        place_hold(estate.store, reason="Class action CA-12", actor="counsel",
                   table="app_db.users", inventory=estate.inventory,
                   subject_keys=[other if when == "another_person" else estate.user_id])

    before = _app_rows(estate)
    if when == "after_the_plan":
        def confirm(steps: object) -> bool:
            hold()      # after the plan was shown, before the journal runs
            return True

        with pytest.raises(RequestError, match="Class action CA-12"):
            run_request(estate.inventory, estate.store, rid, "dpo", confirm=confirm)
        assert _app_rows(estate) == before
        assert read_journal(estate.store, rid, None)   # the journal waits
        return
    hold()
    resolution, _ = plan_request(estate.inventory, estate.store, rid)
    if when == "another_person":
        assert not resolution.blockers
        outcome = run_request(estate.inventory, estate.store, rid, "dpo")
        assert outcome.status == "completed"
        assert estate.count("SELECT count(*) FROM users WHERE id = ?", other) == 1
        return
    assert any("Class action CA-12" in b for b in resolution.blockers)
    with pytest.raises(PlanError, match="Class action CA-12"):
        run_request(estate.inventory, estate.store, rid, "dpo")
    assert _app_rows(estate) == before


def test_rectification_updates_the_field_everywhere(estate: Estate) -> None:
    new_phone = "+44 20 7946 0999"
    rid = estate.request("rectify", f"email={estate.email}", f"phone={estate.phone}",
                         corrections={"phone": new_phone})
    outcome = run_request(estate.inventory, estate.store, rid, "dpo")
    assert outcome.status == "completed", outcome.remaining
    with estate.db() as c:
        assert c.execute("SELECT phone FROM users WHERE id = ?",
                         (estate.user_id,)).fetchone()[0] == new_phone
        notes = c.execute("SELECT notes FROM support_tickets WHERE id = 9001").fetchone()[0]
        assert new_phone in notes and estate.phone not in notes
        assert c.execute("SELECT count(*) FROM users WHERE phone = ?",
                         (estate.phone,)).fetchone()[0] == 0
    assert estate.count("SELECT count(*) FROM users WHERE email = ?", estate.email) == 1


def _crashing_run(estate: Estate, rid: str, crash_source: str) -> subprocess.CompletedProcess:
    """Run the request in another process that dies abruptly (os._exit) after a step of
    ``crash_source`` ran: no cleanup, no rollback by Python."""
    code = f"""
import os
from governance.audit_store import AuditStore
from governance.dsar import run_request
from governance.inventory import load_inventory

def crash(step):
    if step.source == {crash_source!r}:
        os._exit(9)

run_request(load_inventory({str(estate.demo.inventory)!r}),
            AuditStore({str(estate.store.path)!r}), {rid!r}, "dpo", on_step=crash)
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ})


@pytest.mark.parametrize("crash_source", ["app_db", "event_log"])
def test_killed_erasure_resumes_without_redoing_or_missing_rows(estate: Estate,
                                                                crash_source: str) -> None:
    rid = estate.request("erasure")
    _, planned = plan_request(estate.inventory, estate.store, rid)
    died = _crashing_run(estate, rid, crash_source)
    assert died.returncode == 9, died.stderr
    journal = read_journal(estate.store, rid, None)
    done = {s.step_no for s in journal if s.status == "done"}
    if crash_source == "app_db":
        # Killed inside the SQLite transaction: nothing of app_db was committed.
        assert done == set()
        assert estate.count("SELECT count(*) FROM users WHERE id = ?", estate.user_id) == 1
    else:
        # app_db committed and journaled; the events file step done; contacts pending.
        assert {s.step_no for s in journal if s.source in ("app_db", "event_log")} == done
        assert estate.count("SELECT count(*) FROM users WHERE id = ?", estate.user_id) == 0
        assert any(r["email"] == estate.email for r in estate.contacts())
    assert estate.book.get(rid).state is RequestState.IN_PROGRESS
    # The dead worker ran on this host, so a plain rerun may take its lease over; a worker
    # that may be alive on another host is not overtaken without --take-over.
    estate.book.claim(rid, "dpo@elsewhere:1", take_over=True)
    with pytest.raises(RequestError, match="--take-over"):
        run_request(estate.inventory, estate.store, rid, "dpo")
    outcome = run_request(estate.inventory, estate.store, rid, "dpo", take_over=True)
    assert outcome.status == "completed", outcome.remaining
    final = read_journal(estate.store, rid, None)
    assert [(s.step_no, s.table, s.planned_rows) for s in final] == \
        [(s.step_no, s.table, s.planned_rows) for s in planned]
    by_table: dict[str, int] = {}
    for s in final:
        by_table[s.table] = by_table.get(s.table, 0) + (s.rows_affected or 0)
    # Each planned row changed exactly once over the crash and the resume.
    for s in planned:
        if s.found_by != "free_text":
            assert by_table[s.table] >= s.planned_rows
    assert by_table["users"] == 1
    assert by_table["events"] == sum(s.planned_rows for s in planned if s.table == "events")
    actions = [e.action for e in estate.store.log_entries() if e.target == rid]
    assert "dsar.resumed" in actions and "dsar.lease_taken_over" in actions
    assert not any(e["user_id"] == estate.user_id for e in estate.events())


def test_two_erasures_of_the_same_subject_at_once(estate: Estate) -> None:
    users = estate.count("SELECT count(*) FROM users")
    contacts = len(estate.contacts())
    others = sum(e["user_id"] != estate.user_id for e in estate.events())
    ids = [estate.request("erasure"), estate.request("erasure")]
    env = {**os.environ, "GOVKIT_AUDIT_STORE": str(estate.store.path),
           "GOVKIT_INVENTORY": str(estate.demo.inventory)}
    procs = [subprocess.Popen([sys.executable, "-m", "governance.cli", "dsar", "run", rid,
                               "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for rid in ids]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    assert all(estate.book.get(r).state is RequestState.COMPLETED for r in ids)
    assert estate.count("SELECT count(*) FROM users") == users - 1
    assert len(estate.contacts()) == contacts - 1
    assert sum(e["user_id"] != estate.user_id for e in estate.events()) == others
    assert not any(e["user_id"] == estate.user_id for e in estate.events())
    assert estate.store.verify_log().ok



def _store_free(path: object) -> bool:
    """Whether another process can open the audit store right now (DuckDB's own lock)."""
    probe = ("import duckdb, sys\ntry:\n    duckdb.connect(sys.argv[1]).close()\n"
             "    print('opened')\nexcept duckdb.IOException as e:\n"
             "    print('locked' if 'lock' in str(e).lower() else 'other')\n")
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    assert out in ("opened", "locked"), out
    return out == "opened"


def test_the_store_is_not_held_while_sources_are_searched_or_changed(estate: Estate) -> None:
    """Bookkeeping runs in short bursts that hold the store; searching and changing sources
    (which may wait on a source's own locks) never do, so other processes are not blocked
    behind a long search and no process waits on a source while holding the store."""
    seen: list[tuple[str, bool]] = []
    rid = estate.request("erasure")
    outcome = run_request(estate.inventory, estate.store, rid, "dpo",
                          progress=lambda msg: seen.append((msg, _store_free(estate.store.path))),
                          on_step=lambda step: seen.append((step.describe(),
                                                            _store_free(estate.store.path))))
    assert outcome.status == "completed", outcome.remaining
    assert len(seen) >= 4 and all(free for _, free in seen), seen
    access = estate.request("access", f"email={estate.contacts()[-1]['email']}")
    seen.clear()
    run_request(estate.inventory, estate.store, access, "dpo",
                progress=lambda msg: seen.append((msg, _store_free(estate.store.path))))
    assert seen and all(free for _, free in seen), seen


def test_an_access_request_exports_nothing_when_a_source_cannot_be_searched(
        estate: Estate) -> None:
    rid = estate.request("access")
    estate.demo.marketing_csv.rename(estate.demo.marketing_csv.with_suffix(".moved"))
    exports = estate.store.path.parent / "exports"
    with pytest.raises(RequestError, match="could not be searched, nothing was exported"):
        run_request(estate.inventory, estate.store, rid, "dpo", export_dir=exports)
    assert not list(exports.glob(f"{rid}*"))
    assert estate.book.get(rid).state.value == "verified"
    assert [e.action for e in estate.store.log_entries() if e.target == rid][-1] == \
        "dsar.incomplete"
    # The lease is given back: the source restored, the request runs and completes.
    estate.demo.marketing_csv.with_suffix(".moved").rename(estate.demo.marketing_csv)
    done = run_request(estate.inventory, estate.store, rid, "dpo", export_dir=exports)
    assert done.status == "completed" and done.export_path is not None
    assert estate.store.query("SELECT lease_owner FROM dsar_requests WHERE request_id = ?",
                              [rid]) == [{"lease_owner": None}]
    assert delivery_passphrase(estate.store, rid) == done.passphrase


def test_a_hold_on_persons_by_key_says_how_many_keys_it_holds(estate: Estate) -> None:
    """Three subject keys held: described as 3 keys (it said "1 person(s)" whatever the
    count), and never by a key's value."""
    from governance.retention.holds import place_hold

    hold = place_hold(estate.store, reason="Class action CA-12", actor="counsel",
                      table="app_db.users", inventory=estate.inventory,
                      subject_keys=[70001, 70002, 70003])
    text = hold.describe()
    assert "3 key(s) of persons of app_db.users" in text, text
    assert "7000" not in text


def test_a_name_rectification_killed_after_its_change_finishes_when_run_again(
        estate: Estate, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rectification of the subject's name dies after its changes were committed: run
    again, its plan finds the row with the new name, which is still the approved person
    (the corrected columns do not tell people apart), and it completes (a helper found it
    stuck: the run stopped and no approval could follow)."""
    from governance.faults import InjectedFault

    rid = estate.request("rectify", f"email={estate.email}",
                         corrections={"name": "Ada Quist",
                                      "marketing_export.contacts.first_name": "Ada",
                                      "marketing_export.contacts.last_name": "Quist"})
    # After every step is done, before the request completes (a rerun plans again).
    monkeypatch.setenv("GOVKIT_FAULT", "request.before_complete:1:raise")
    with pytest.raises(InjectedFault):
        run_request(estate.inventory, estate.store, rid, "dpo")
    monkeypatch.delenv("GOVKIT_FAULT")
    outcome = run_request(estate.inventory, estate.store, rid, "dpo")
    assert outcome.status == "completed", outcome.remaining
    assert estate.count("SELECT count(*) FROM users WHERE id = ? AND full_name = ?",
                        estate.user_id, "Ada Quist") == 1
    theirs = [r for r in estate.contacts() if r["email"] == estate.email]
    assert [(r["first_name"], r["last_name"]) for r in theirs] == [("Ada", "Quist")]
