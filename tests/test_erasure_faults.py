"""Erasure killed at every step boundary, and run twice at once, on the demo estate (SQLite,
CSV and Parquet): a rerun finishes it, the subject is gone, every other row is as it was,
and no temporary copy is left. Checked with SQL, csv and pyarrow written here, not with
govkit's own readers."""

from __future__ import annotations

import csv
import hashlib
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from governance.audit_store import AuditStore
from governance.demo import DemoPaths, build_demo
from governance.dsar.requests import RequestBook, RequestError
from governance.dsar.runner import run_request
from governance.faults import POINTS
from governance.inventory import load_inventory
from governance.scan import run_scan
from tests.request_worker import cleared_request, run_worker, start_worker

KILL_POINTS = list(POINTS)


def _store(paths: DemoPaths) -> AuditStore:
    return AuditStore(paths.root / "audit.duckdb", create=True)


@pytest.fixture(scope="module")
def scanned_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    paths = build_demo(tmp_path_factory.mktemp("template") / "acme", users=60)
    run_scan(load_inventory(paths.inventory), _store(paths))
    return paths.root


@pytest.fixture()
def estate(scanned_template: Path, tmp_path: Path) -> tuple[DemoPaths, AuditStore]:
    root = tmp_path / "acme"
    shutil.copytree(scanned_template, root)
    paths = DemoPaths(root, root / "inventory.yaml", root / "app.db",
                      root / "marketing" / "contacts.csv", root / "events")
    return paths, AuditStore(root / "audit.duckdb")


def _subject(paths: DemoPaths, rank: int = 0) -> dict:
    """A user with orders, a ticket, events and a marketing contact (picked by SQL)."""
    db = sqlite3.connect(paths.app_db)
    contacts = {r["email"] for r in csv.DictReader(paths.marketing_csv.open(newline=""))}
    rows = db.execute(
        "SELECT u.id, u.email, u.phone FROM users u WHERE EXISTS (SELECT 1 FROM orders o "
        "WHERE o.user_id = u.id) AND EXISTS (SELECT 1 FROM support_tickets t "
        "WHERE t.user_id = u.id) ORDER BY u.id").fetchall()
    db.close()
    events = set(pq.read_table(paths.events_dir / "events.parquet",
                               columns=["user_id"]).column(0).to_pylist())
    chosen = [r for r in rows if r[1] in contacts and r[0] in events]
    uid, email, phone = chosen[rank]
    return {"id": uid, "email": email, "phone": phone}


def _erasure(store: AuditStore, email: str) -> str:
    return cleared_request(store, "erasure", f"email={email}")


def _sqlite_rows(db_path: Path) -> dict[str, dict[int, str]]:
    db = sqlite3.connect(db_path)
    out = {}
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        out[table] = {r[0]: hashlib.sha256(repr(r[1:]).encode()).hexdigest()
                      for r in db.execute(f'SELECT rowid, * FROM "{table}"')}
    db.close()
    return out


def _snapshot(paths: DemoPaths) -> dict:
    return {"sqlite": _sqlite_rows(paths.app_db),
            "csv": paths.marketing_csv.read_bytes().splitlines(keepends=True),
            "parquet": pq.read_table(paths.events_dir / "events.parquet").to_pylist()}


def _mentions(value: object, subject: dict) -> bool:
    text = str(value)
    return subject["email"].lower() in text.lower() or (
        bool(subject["phone"]) and subject["phone"] in text)


def _check_erased(paths: DemoPaths, before: dict, subjects: list[dict]) -> None:
    """The subjects are gone; every other row is byte-identical; rows that mentioned a
    subject in text are kept without the mention."""
    after = _snapshot(paths)
    db = sqlite3.connect(paths.app_db)
    ids = [s["id"] for s in subjects]
    for s in subjects:
        assert db.execute("SELECT count(*) FROM users WHERE lower(email) = lower(?)",
                          [s["email"]]).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM legacy_newsletter_signups WHERE "
                          "lower(email_address) = lower(?)", [s["email"]]).fetchone()[0] == 0
        for table in ("orders", "support_tickets", "user_kyc"):
            assert db.execute(f"SELECT count(*) FROM {table} WHERE user_id = ?",
                              [s["id"]]).fetchone()[0] == 0, table
    # Rows of other people: unchanged, unless their text named a subject (then redacted).
    subject_rowids = {t: set() for t in before["sqlite"]}
    src = sqlite3.connect(":memory:")
    del src
    gone_tickets = set()
    for table, rows in before["sqlite"].items():
        for rowid, digest in rows.items():
            if rowid in after["sqlite"][table] and after["sqlite"][table][rowid] == digest:
                continue
            subject_rowids[table].add(rowid)
    # Every changed or removed row must be explainable: the subject's own, or a mention.
    db_before = {t: set(r) for t, r in before["sqlite"].items()}
    assert db_before  # the snapshot read the tables
    for rowid in subject_rowids["users"]:
        assert rowid in ids
    for rowid in subject_rowids["support_tickets"]:
        row = db.execute("SELECT user_id, notes FROM support_tickets WHERE id = ?",
                         [rowid]).fetchone()
        if row is None:
            gone_tickets.add(rowid)
            continue
        assert row[0] not in ids and not any(_mentions(row[1], s) for s in subjects)
    for rowid in subject_rowids["orders"]:
        row = db.execute("SELECT user_id, shipping_address FROM orders WHERE id = ?",
                         [rowid]).fetchone()
        assert row == (None, None), "only the subjects' orders are anonymized"
    for rowid in subject_rowids["ticket_messages"]:
        row = db.execute("SELECT ticket_id, body FROM ticket_messages WHERE id = ?",
                         [rowid]).fetchone()
        if row is not None:
            assert not any(_mentions(row[1], s) for s in subjects)
    db.close()
    # CSV: the subjects' lines are gone, every other line is byte-identical.
    kept = [line for line in before["csv"]
            if not any(s["email"].encode() in line for s in subjects)]
    assert after["csv"] == kept
    # Parquet: exactly the subjects' events are gone.
    assert after["parquet"] == [r for r in before["parquet"] if r["user_id"] not in ids]
    # No temporary copy left anywhere in the estate.
    leftovers = [p for p in paths.root.rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert leftovers == []


def _note_of_a_third_person(paths: DemoPaths, a: dict, b: dict, text: str) -> int:
    """Write ``text`` into the notes of a ticket belonging to neither subject; its id."""
    db = sqlite3.connect(paths.app_db)
    third = db.execute("SELECT id FROM support_tickets WHERE user_id NOT IN (?, ?) "
                       "ORDER BY id LIMIT 1", [a["id"], b["id"]]).fetchone()[0]
    db.execute("UPDATE support_tickets SET notes = ? WHERE id = ?", [text, third])
    db.commit()
    db.close()
    return third


def _run_in_child(paths: DemoPaths, store: AuditStore, request_id: str,
                  fault: str | None) -> subprocess.CompletedProcess:
    code, out, err = run_worker(paths.inventory, store.path, request_id, fault)
    return subprocess.CompletedProcess([], code, out, err)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_request_killed_at_each_step_boundary_finishes_on_rerun(estate, point: str) -> None:
    paths, store = estate
    subject = _subject(paths)
    before = _snapshot(paths)
    rid = _erasure(store, subject["email"])
    killed = _run_in_child(paths, store, rid, f"{point}:1")
    assert killed.returncode == 137, (killed.stdout, killed.stderr[-2000:])
    out = run_request(load_inventory(paths.inventory), store, rid, "dpo",
                      confirm=lambda steps: True, take_over=True)
    assert out.status == "completed", out.remaining
    assert RequestBook(store).get(rid).state.value == "completed"
    _check_erased(paths, before, [subject])


def test_a_crash_after_identities_were_derived_never_widens_the_subject(estate) -> None:
    """Issue 12 #2: a phone read from the subject's row is shared by another user; after a
    crash the resumed run must not delete that other user."""
    paths, store = estate
    subject = _subject(paths)
    db = sqlite3.connect(paths.app_db)
    other = db.execute("SELECT id FROM users WHERE id <> ? ORDER BY id LIMIT 1",
                       [subject["id"]]).fetchone()[0]
    db.execute("UPDATE users SET phone = ? WHERE id = ?", [subject["phone"], other])
    db.commit()
    db.close()
    before = _snapshot(paths)
    rid = _erasure(store, subject["email"])
    killed = _run_in_child(paths, store, rid, "request.after_start:1")
    assert killed.returncode == 137
    out = run_request(load_inventory(paths.inventory), store, rid, "dpo",
                      confirm=lambda steps: True, take_over=True)
    assert out.status == "completed", out.remaining
    assert sqlite3.connect(paths.app_db).execute(
        "SELECT count(*) FROM users WHERE id = ?", [other]).fetchone()[0] == 1
    assert any("another person" in why for why in out.kept.values()), out.kept
    _check_erased(paths, before, [subject])


def test_two_erasures_at_once_on_the_same_sources(estate) -> None:
    paths, store = estate
    a, b = _subject(paths, 0), _subject(paths, 1)
    # One text cell of a third person's ticket names both subjects.
    third = _note_of_a_third_person(paths, a, b,
                                    f"Merged accounts of {a['email']} and {b['email']} on request")
    before = _snapshot(paths)
    ra, rb = _erasure(store, a["email"]), _erasure(store, b["email"])
    procs = [start_worker(paths.inventory, store.path, rid, take_over=False)
             for rid in (ra, rb)]
    results = [p.communicate(timeout=300) for p in procs]
    for rid, (out, err) in zip((ra, rb), results, strict=True):
        state = RequestBook(store).get(rid).state.value
        if state != "completed":  # a verification that ran while the other rewrote text
            rerun = run_request(load_inventory(paths.inventory), store, rid, "dpo",
                                confirm=lambda steps: True)
            assert rerun.status == "completed", (out, err[-2000:], rerun.remaining)
    _check_erased(paths, before, [a, b])
    note = sqlite3.connect(paths.app_db).execute(
        "SELECT notes FROM support_tickets WHERE id = ?", [third]).fetchone()[0]
    assert a["email"] not in note and b["email"] not in note
    assert note.startswith("Merged accounts of ") and note.endswith(" on request")


def test_a_redaction_planned_before_another_request_rewrote_the_cell(estate) -> None:
    """Issue 12 #5: B's journal plans a redaction of a cell naming A and B; A's erasure then
    rewrites the cell; B, resumed, redacts the cell as it is now and completes."""
    paths, store = estate
    a, b = _subject(paths, 0), _subject(paths, 1)
    third = _note_of_a_third_person(paths, a, b, f"Merged {a['email']} into {b['email']}")
    before = _snapshot(paths)
    rb = _erasure(store, b["email"])
    killed = _run_in_child(paths, store, rb, "request.after_journal:1")
    assert killed.returncode == 137
    ra = _erasure(store, a["email"])
    assert run_request(load_inventory(paths.inventory), store, ra, "dpo",
                       confirm=lambda steps: True).status == "completed"
    out = run_request(load_inventory(paths.inventory), store, rb, "dpo",
                      confirm=lambda steps: True, take_over=True)
    assert out.status == "completed", out.remaining
    note = sqlite3.connect(paths.app_db).execute(
        "SELECT notes FROM support_tickets WHERE id = ?", [third]).fetchone()[0]
    assert note.startswith("Merged ") and a["email"] not in note and b["email"] not in note
    _check_erased(paths, before, [a, b])


@pytest.mark.parametrize("via_cli", [False, True])
def test_after_a_kill_between_commit_and_mark_the_rerun_counts_honestly(
        estate, via_cli: bool) -> None:
    """A worker killed after its source committed but before the journal said so: the rerun
    (no --take-over needed: the dead worker ran on this host) finds nothing left to change
    and says so, instead of recording '0 rows changed' as if nothing had been erased."""
    from governance.dsar.runner import describe_outcome

    paths, store = estate
    subject = _subject(paths)
    before = _snapshot(paths)
    rid = _erasure(store, subject["email"])
    killed = _run_in_child(paths, store, rid, "journal.after_commit:1")
    assert killed.returncode == 137, killed.stderr[-2000:]
    if via_cli:
        # `govkit dsar run` says the same as the outcome (it printed "[done, 0 changed]").
        from click.testing import CliRunner

        from governance.cli import main

        ran = CliRunner().invoke(main, ["dsar", "run", rid, "--yes", "--store",
                                        str(store.path), "-i", str(paths.inventory)])
        assert ran.exit_code == 0, ran.output
        assert "done before an interruption" in ran.output
        assert "[done, 0 changed]" not in ran.output
        _check_erased(paths, before, [subject])
        return
    out = run_request(load_inventory(paths.inventory), store, rid, "dpo",
                      confirm=lambda steps: True, take_over=False)
    assert out.status == "completed", out.remaining
    taken = [e for e in store.log_entries() if e.action == "dsar.lease_taken_over"]
    assert taken and taken[-1].details["reason"].startswith("its process on this host")
    outcome = RequestBook(store).get(rid).outcome
    assert out.found_done and outcome["done_before_an_interruption"]
    # The steps the killed run committed (one source) are not counted as changed now.
    done_now = sum(s.rows_affected or 0 for s in out.steps if s.step_no not in out.found_done)
    assert outcome["rows_changed"] == done_now
    shown = describe_outcome(out)["steps"]
    assert sum("done before an interruption" in line for line in shown) == len(out.found_done)
    logged = [e.details for e in store.log_entries() if e.action == "dsar.steps_done"
              and e.target == rid]
    assert sorted(n for d in logged for n in d.get("found_already_done", [])) == \
        sorted(out.found_done)
    _check_erased(paths, before, [subject])


def test_a_worker_whose_lease_was_taken_over_records_nothing_more(estate) -> None:
    """Worker A is slow; B takes the request over (--take-over). A must stop before it
    records anything (no journal mark, no completion after B's), and B completes."""
    paths, store = estate
    subject = _subject(paths)
    before = _snapshot(paths)
    rid = _erasure(store, subject["email"])
    inv = load_inventory(paths.inventory)

    def taken_over(step: object) -> None:   # while A is inside its first source change
        RequestBook(store).claim(rid, "dpo@elsewhere:4242", take_over=True)

    with pytest.raises(RequestError, match="no longer holds its lease"):
        run_request(inv, store, rid, "dpo-a", confirm=lambda steps: True, on_step=taken_over)
    actions = [e.action for e in store.log_entries() if e.target == rid]
    assert actions[-1] == "dsar.lease_taken_over" and "dsar.steps_done" not in actions
    out = run_request(inv, store, rid, "dpo-b", confirm=lambda steps: True, take_over=True)
    assert out.status == "completed", out.remaining
    after = [e.action for e in store.log_entries() if e.target == rid]
    assert after[-1] == "dsar.completed" and after.count("dsar.completed") == 1
    _check_erased(paths, before, [subject])


def test_a_request_that_changed_data_cannot_be_rejected(estate) -> None:
    """Found by a helper on Oracle's CO and HR: an erasure killed after one source had
    committed was then rejected (exit 0): the request read "rejected" (closed without
    acting on it) while an employee, his job history and his reports' pointers were
    already changed, and it could no longer be run. A request that changed data is finished,
    not rejected."""
    from governance.dsar.requests import RequestError

    paths, store = estate
    subject = _subject(paths)
    before = _snapshot(paths)
    rid = _erasure(store, subject["email"])
    book = RequestBook(store)
    # Killed with its journal written, nothing applied: it may not be rejected either
    # (one killed between a commit and its journal's mark looks the same).
    killed = _run_in_child(paths, store, rid, "request.after_journal:1")
    assert killed.returncode == 137, (killed.stdout, killed.stderr[-2000:])
    with pytest.raises(RequestError, match=r"a run that stopped midway and may have changed"):
        book.reject(rid, "dpo", "the subject withdrew")
    # Killed after its first source committed and was marked done.
    killed = _run_in_child(paths, store, rid, "journal.after_mark:1")
    assert killed.returncode == 137, (killed.stdout, killed.stderr[-2000:])
    with pytest.raises(RequestError, match=r"has changed data already \(\d+ step\(s\) done"):
        book.reject(rid, "dpo", "the subject withdrew")
    assert book.get(rid).state.value == "in_progress"
    out = run_request(load_inventory(paths.inventory), store, rid, "dpo",
                      confirm=lambda steps: True, take_over=True)
    assert out.status == "completed", out.remaining
    _check_erased(paths, before, [subject])
