"""Retention deletes people whose cells are encrypted: their data keys must not outlive
them. On Oracle's HR (MIT; SQLite), staff phones and e-mails encrypted per employee.

Found by a helper: retention deleted four employees, their keys stayed active, and a copy of
the database taken before still decrypted their phones with the live store. `retention
apply` now says so, and `crypto shred-departed` destroys the keys of subjects no person
row names and no live cell uses: the copy no longer decrypts for them, and does for
everyone else. Checked with the copy's own rows and the published data.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import yaml
from click.testing import CliRunner
from public_data import sample_schemas

from governance.audit_store import AuditStore
from governance.cli import main
from governance.encryption import Decryptor, SubjectKeys, keystore_for, load_policy
from governance.inventory import load_inventory


def test_the_keys_of_employees_retention_deleted_are_destroyed_and_no_one_elses(
        tmp_path: Path) -> None:
    """A call log in another source keeps one departed employee's key: their logged calls
    are still sealed under it (retention's cascades stay within a source)."""
    db = tmp_path / "hr.db"
    sample_schemas.load_sqlite(db, "hr")
    with sqlite3.connect(tmp_path / "calls.db") as c:
        c.execute("CREATE TABLE calls (call_id INTEGER PRIMARY KEY, employee_id INTEGER, "
                  "dialled TEXT)")
        c.execute("INSERT INTO calls VALUES (1, 102, '+44 20 7946 0958'), "
                  "(2, 109, '+44 20 7946 0959')")
    ref = {"kind": "reference", "on_erase": "detach"}
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text(yaml.safe_dump({"version": 1, "organization": "hr", "sources": [{
        "name": "hr", "kind": "sqlite", "connection": {"path": "hr.db"},
        "owner": "dpo@example.org", "jurisdictions": ["EU"], "tables": [
            {"name": "employees", "subject_key": "employee_id", "columns": {
                "phone_number": {"category": "contact.phone"},
                "email": {"category": "contact.email"}},
             "references": [{"column": "manager_id", "to": "employees.employee_id", **ref}]},
            {"name": "departments", "references": [
                {"column": "manager_id", "to": "employees.employee_id", **ref}]},
            {"name": "job_history", "references": [
                {"column": "employee_id", "to": "employees.employee_id", "kind": "owner"}]},
            {"name": "jobs"}, {"name": "locations"}, {"name": "countries"},
            {"name": "regions"}]}, {
        "name": "calls", "kind": "sqlite", "connection": {"path": "calls.db"},
        "owner": "dpo@example.org", "jurisdictions": ["EU"], "tables": [
            {"name": "calls", "columns": {"dialled": {"category": "contact.phone"}},
             "references": [{"column": "employee_id", "to": "hr.employees.employee_id",
                             "kind": "owner"}]}]}]}, sort_keys=False))
    (tmp_path / "encryption.yaml").write_text(
        "version: 1\nrequire: []\ncolumns:\n  - {column: hr.employees.phone_number}\n"
        "  - {column: hr.employees.email}\n  - {column: calls.calls.dialled}\n")
    (tmp_path / "retention.yaml").write_text(
        "version: 1\nprofile: hr\njurisdictions: [EU]\nrules:\n  - name: staff-9y\n"
        "    tables: [hr.employees]\n    retain: 9 years\n    clock: hire_date\n"
        "    action: delete\n    basis: \"Staff records: nine years after hiring\"\n")
    with sqlite3.connect(db) as c:
        plain = dict(c.execute("SELECT employee_id, phone_number FROM employees"))
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    args = ["-i", str(inv_path), "--store", str(store_path)]
    assert CliRunner().invoke(main, ["encrypt", *args, "--apply"]).exit_code == 0
    copy = tmp_path / "hr-before.db"
    shutil.copy2(db, copy)
    ret = CliRunner().invoke(main, ["retention", "apply", *args, "-p",
                                    str(tmp_path / "retention.yaml"), "--now", "2022-09-01",
                                    "--yes"])
    assert ret.exit_code == 0, ret.output
    with sqlite3.connect(db) as c:
        left = {r[0] for r in c.execute("SELECT employee_id FROM employees")}
    gone = set(plain) - left
    assert 102 in left and 109 not in left      # (102 manages others: kept)
    assert gone and f"note: {len(gone)} person row(s) deleted" in ret.output
    with sqlite3.connect(tmp_path / "calls.db") as c:
        assert [r[0][:4] for r in c.execute("SELECT dialled FROM calls")] == ["gk1:", "gk1:"]
    dry = CliRunner().invoke(main, ["crypto", "shred-departed", *args])
    assert dry.exit_code == 0, dry.output
    assert f"{len(gone) - 1} subject(s) gone with a data key left; 1 whose keys still seal " \
        "live cells keep them" in dry.output, dry.output
    done = CliRunner().invoke(main, ["crypto", "shred-departed", *args, "--apply"])
    assert done.exit_code == 0 and f"{len(gone) - 1} data key(s) destroyed" in done.output
    assert "no key left" in done.output
    # The copy taken before: the departed no longer decrypt; everyone else does.
    inv = load_inventory(inv_path)
    store = AuditStore(store_path)
    policy = load_policy(tmp_path / "encryption.yaml", inv)
    with sqlite3.connect(copy) as c:
        c.row_factory = sqlite3.Row
        rows = [dict(r) for r in c.execute("SELECT * FROM employees")]
    opened = Decryptor(inv, store, SubjectKeys(store, keystore_for(policy, store)), policy
                       ).open_rows("hr", "employees", rows, ["employee_id"], "dpo", "check")
    by_id = {r["employee_id"]: r["phone_number"] for r in opened.rows}
    assert {e for e in gone if by_id[e] is None} == gone - {109}
    assert {e: by_id[e] for e in left | {109}} == {e: plain[e] for e in left | {109}}
    # The call still sealed under 109's key reads back.
    with sqlite3.connect(tmp_path / "calls.db") as c:
        c.row_factory = sqlite3.Row
        calls = [dict(r) for r in c.execute("SELECT * FROM calls ORDER BY call_id")]
    read = Decryptor(inv, store, SubjectKeys(store, keystore_for(policy, store)), policy
                     ).open_rows("calls", "calls", calls, ["call_id"], "dpo", "check")
    assert [r["dialled"] for r in read.rows] == ["+44 20 7946 0958", "+44 20 7946 0959"]
    again = CliRunner().invoke(main, ["crypto", "shred-departed", *args, "--apply"])
    assert again.exit_code == 0 and "0 subject(s) gone" in again.output
