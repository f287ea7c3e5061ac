"""Data-subject requests from Dagster (jobs, sensor), the CLI, and on PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from governance.audit_store import AuditStore
from governance.cli import main
from governance.dsar import RequestBook, RequestState, run_request
from governance.dsar.export import open_export
from governance.dsar.runner import delivery_passphrase
from governance.errors import GovernanceError
from governance.inventory import load_inventory
from governance.scan import run_scan
from pipelines.build import build_definitions
from pipelines.resources import GovernanceResource
from pipelines.sensors import build_verified_requests_sensor
from tests.request_worker import approve_plan


def _subject(db: Path) -> tuple[int, str]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT id, email FROM users ORDER BY id LIMIT 1").fetchone()


def _every_row(c: sqlite3.Connection) -> dict[str, list[str]]:
    """Every row of every table (SQL written here)."""
    names = [t for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: sorted(map(repr, c.execute(f'SELECT * FROM "{t}"').fetchall())) for t in names}


def _scanned(fresh_demo: Any) -> tuple[dg.Definitions, AuditStore, Path, int, str]:
    """The demo's Dagster definitions, its scanned store, the store's path, and a user's id
    and e-mail."""
    store_path = fresh_demo.root / "audit.duckdb"
    defs = build_definitions(fresh_demo.inventory, store_path)
    store = AuditStore(store_path, create=True)
    run_scan(load_inventory(fresh_demo.inventory), store)
    uid, email = _subject(fresh_demo.app_db)
    return defs, store, store_path, uid, email


def test_sensor_launches_verified_requests_and_jobs_run_them(fresh_demo) -> None:
    defs, store, store_path, uid, email = _scanned(fresh_demo)
    book = RequestBook(store)
    waiting = book.create("erasure", [f"email={email}"], "EU", "dpo")
    erase = book.create("erasure", [f"email={email}"], "EU", "dpo")
    access = book.create("access", [f"user_id={uid}"], "US-CA", "dpo")
    for r in (erase, access):
        book.verify(r.request_id, "dpo", "checked")
    approve_plan(store, erase.request_id, fresh_demo.inventory)
    sensor = defs.get_sensor_def("verified_requests")
    resource = GovernanceResource(inventory_path=str(fresh_demo.inventory),
                                  audit_store_path=str(store_path))
    with dg.build_sensor_context(resources={"governance": resource}) as ctx:
        requests = list(sensor(ctx))
    assert {(r.run_key, r.job_name) for r in requests} == {
        (erase.request_id, "dsar_erasure"), (access.request_id, "dsar_access")}
    for req in sorted(requests, key=lambda r: r.job_name):   # access before erasure
        job = defs.get_job_def(req.job_name)
        result = job.execute_in_process(run_config=req.run_config)
        assert result.success
    assert book.get(access.request_id).state is RequestState.COMPLETED
    export = fresh_demo.root / "exports" / f"{access.request_id}.zip"
    files = open_export(export, delivery_passphrase(store, access.request_id))
    assert [u["email"] for u in files["data/app_db/users.json"]] == [email]
    assert book.get(erase.request_id).state is RequestState.COMPLETED
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert c.execute("SELECT count(*) FROM users WHERE id = ?", (uid,)).fetchone()[0] == 0
    assert book.get(waiting.request_id).state is RequestState.RECEIVED
    # A job refuses a request of another type, and an unverified one.
    wrong = defs.get_job_def("dsar_access").execute_in_process(
        run_config={"ops": {"run_access_request": {"config": {
            "request_id": waiting.request_id}}}}, raise_on_error=False)
    assert not wrong.success
    with dg.build_sensor_context(resources={"governance": resource}) as ctx:
        assert list(sensor(ctx)) == []


def test_an_erasure_job_whose_plan_is_not_the_approved_one_fails_and_changes_nothing(
        fresh_demo) -> None:
    """The Dagster erasure job of an approved request whose e-mail was given to another user
    after the approval fails before any change, with the reason (no value) in Dagster's
    event log; both users' rows are as they were."""
    defs, store, _, uid, email = _scanned(fresh_demo)
    book = RequestBook(store)
    r = book.create("erasure", [f"email={email}"], "EU", "dpo")
    book.verify(r.request_id, "dpo", "checked")
    approve_plan(store, r.request_id, fresh_demo.inventory)
    with sqlite3.connect(fresh_demo.app_db) as c:
        other = c.execute("SELECT max(id) FROM users").fetchone()[0]
        c.execute("UPDATE users SET email = 'moved@example.net' WHERE id = ?", (uid,))
        c.execute("UPDATE users SET email = ? WHERE id = ?", (email, other))
        before = _every_row(c)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.get_job_def("dsar_erasure").execute_in_process(
        run_config={"ops": {"run_erasure_request": {"config": {
            "request_id": r.request_id}}}}, instance=instance, raise_on_error=False)
    assert not result.success
    logged = "".join(repr(e) for e in instance.all_logs(result.run_id))
    # The e-mail now names another user, and the subject's marketing contact still holds
    # it under the subject's name: two people hold it, which stops the run before the
    # approved plan is even compared.
    assert "two people hold it" in logged and email not in logged
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert _every_row(c) == before
    assert book.get(r.request_id).state is not RequestState.COMPLETED


def test_sensor_definition_is_in_the_definitions(fresh_demo) -> None:
    defs = build_definitions(fresh_demo.inventory, fresh_demo.root / "audit.duckdb")
    assert {j for j in ("dsar_access", "dsar_erasure", "dsar_rectify")
            if defs.get_job_def(j)} == {"dsar_access", "dsar_erasure", "dsar_rectify"}
    assert isinstance(build_verified_requests_sensor([]), dg.SensorDefinition)


def _intake_config(path: Path, **extra: object) -> dict:
    return {"ops": {"record_request": {"config": {
        "request_type": "access", "jurisdiction": "EU", "intake_file": str(path), **extra}}}}


def test_dagster_intake_keeps_identities_out_of_dagster(fresh_demo, tmp_path: Path) -> None:
    """A request recorded by the intake job: identities come from the intake file, which
    is removed; Dagster's run storage and event log hold the file's path, never a value."""
    store_path = fresh_demo.root / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()   # the store exists (govkit init)
    defs = build_definitions(fresh_demo.inventory, store_path)
    _, email = _subject(fresh_demo.app_db)
    phone = "+44 20 7946 0958"
    intake = tmp_path / "subject.yaml"
    intake.write_text(f"identities:\n  email: {email}\n  phone: ['{phone}']\n")
    instance = dg.DagsterInstance.ephemeral()
    job = defs.get_job_def("dsar_intake")
    result = job.execute_in_process(run_config=_intake_config(intake), instance=instance)
    assert result.success
    rid = result.output_for_node("record_request")
    book = RequestBook(AuditStore(store_path))
    request = book.get(rid)
    assert request.state is RequestState.RECEIVED and request.jurisdiction == "EU"
    assert request.created_by == f"dagster:{result.run_id}"
    assert sorted(i.value for i in book.identities(request)) == sorted([email, phone])
    assert not intake.exists()
    stored = instance.get_run_by_id(result.run_id).run_config
    dagster_text = repr(stored) + "".join(
        repr(e) for e in instance.all_logs(result.run_id))
    assert str(intake) in dagster_text and "a***" not in email
    assert email not in dagster_text and phone not in dagster_text
    assert request.masked_identities[0] in dagster_text  # shown masked

    # Bad files fail with the file and field named, keep the file, record nothing.
    before = len(book.list_requests(open_only=False))
    for text, expected in [("identities: [oops\n", "malformed YAML"),
                           ("identities:\n  email: not-an-address\n", "identities.email"),
                           ("identities: {}\n", "identities"),
                           ("identities:\n  email: a@example.org\nset:\n  phone: x\n",
                            "only for rectify")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        failed = job.execute_in_process(run_config=_intake_config(bad), instance=instance,
                                        raise_on_error=False)
        assert not failed.success
        message = failed.failure_data_for_node("record_request").error.message
        assert expected in message and "not-an-address" not in message, message
        assert bad.exists()
    assert len(book.list_requests(open_only=False)) == before
    missing = job.execute_in_process(run_config=_intake_config(tmp_path / "gone.yaml"),
                                     instance=instance, raise_on_error=False)
    assert not missing.success


def test_cli_intake_file(fresh_demo, monkeypatch, tmp_path: Path) -> None:
    """`dsar new --from-file`: a rectification recorded from a file, which is removed."""
    monkeypatch.setenv("GOVKIT_AUDIT_STORE", str(fresh_demo.root / "audit.duckdb"))
    monkeypatch.setenv("GOVKIT_ACTOR", "dpo-cli")
    _, email = _subject(fresh_demo.app_db)
    intake = tmp_path / "subject.json"
    intake.write_text(f'{{"identities": {{"email": "{email}"}}, '
                      f'"set": {{"phone": "+44 20 7946 0959"}}}}')
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    both = runner.invoke(main, ["dsar", "new", "--type", "rectify", "--from-file", str(intake),
                                "--identity", f"email={email}", "--jurisdiction", "UK"])
    assert both.exit_code == 2 and "one of the two" in both.output and intake.exists()
    new = runner.invoke(main, ["dsar", "new", "--type", "rectify", "--from-file", str(intake),
                               "--jurisdiction", "UK"])
    assert new.exit_code == 0, new.output
    assert email not in new.output and not intake.exists()
    book = RequestBook(AuditStore(fresh_demo.root / "audit.duckdb", create=True))
    request = book.get(new.output.split()[0])
    assert request.created_by == "dpo-cli"
    assert book.corrections(request) == {"phone": "+44 20 7946 0959"}


def test_cli_request_lifecycle(fresh_demo, monkeypatch) -> None:
    store = fresh_demo.root / "audit.duckdb"
    monkeypatch.setenv("GOVKIT_AUDIT_STORE", str(store))
    monkeypatch.setenv("GOVKIT_INVENTORY", str(fresh_demo.inventory))
    monkeypatch.setenv("GOVKIT_ACTOR", "dpo-cli")
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    _, email = _subject(fresh_demo.app_db)
    bad = runner.invoke(main, ["dsar", "new", "--type", "access", "--identity", "mail=x",
                               "--jurisdiction", "EU"])
    assert bad.exit_code == 2 and "unknown identity type 'mail'" in bad.output
    new = runner.invoke(main, ["dsar", "new", "--type", "access", "--identity",
                               f"email={email}", "--jurisdiction", "CN"])
    assert new.exit_code == 0, new.output
    rid = new.output.split()[0]
    assert "PIPL" in new.output and email not in new.output
    listed = runner.invoke(main, ["dsar", "list"])
    assert rid in listed.output and "day(s) left" in listed.output
    refused = runner.invoke(main, ["dsar", "run", rid, "--yes"])
    assert refused.exit_code == 2 and "verify the subject's identity first" in refused.output
    assert runner.invoke(main, ["dsar", "verify", rid, "--note", "ID card"]).exit_code == 0
    plan = runner.invoke(main, ["dsar", "plan", rid])
    assert "app_db.users: 1 row(s) by identity" in plan.output and email not in plan.output
    ran = runner.invoke(main, ["dsar", "run", rid, "--yes", "--out", str(fresh_demo.root)])
    assert ran.exit_code == 0, ran.output
    passphrase = ran.output.split("Passphrase (send it to the subject by another channel): ")[
        1].split()[0]
    export = next(fresh_demo.root.glob("dsar-*.zip"))
    out = fresh_demo.root / "opened"
    opened = runner.invoke(main, ["dsar", "open-export", str(export), "--passphrase",
                                  passphrase, "--out", str(out)])
    assert opened.exit_code == 0 and (out / "data" / "app_db" / "users.json").exists()
    wrong = runner.invoke(main, ["dsar", "open-export", str(export), "--passphrase", "x",
                                 "--out", str(out)])
    assert wrong.exit_code == 2 and "wrong passphrase" in wrong.output
    shown = runner.invoke(main, ["dsar", "show", rid])
    assert "dsar.completed" in shown.output and "dpo-cli" in shown.output
    hold = runner.invoke(main, ["dsar", "hold", "add", "--table", "app_db.orders",
                                "--reason", "Tax audit 2026"])
    assert hold.exit_code == 0 and "Tax audit 2026" in hold.output
    assert "app_db.orders" in runner.invoke(main, ["dsar", "hold", "list"]).output
    assert runner.invoke(main, ["audit", "verify-log"]).exit_code == 0
    log = AuditStore(store).path.read_bytes()
    assert email.encode() not in log


@pytest.fixture()
def pg_estate(pg_dsn: str, tmp_path: Path, monkeypatch):
    schema = f"dsar_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(f'CREATE TABLE "{schema}".customers (id integer PRIMARY KEY, '
                  'email text NOT NULL, phone text)')
        c.execute(f'CREATE TABLE "{schema}".invoices (id integer PRIMARY KEY, customer_id '
                  f'integer REFERENCES "{schema}".customers(id), billing_name text NOT NULL, '
                  'total_cents integer NOT NULL)')
        c.execute(f'CREATE TABLE "{schema}".notes (id integer PRIMARY KEY, customer_id '
                  f'integer NOT NULL REFERENCES "{schema}".customers(id), body text)')
        for i in range(1, 21):
            c.execute(f'INSERT INTO "{schema}".customers VALUES (%s, %s, %s)',
                      (i, f"c{i}@example.org", f"+1 415-555-01{i:02d}"))
            c.execute(f'INSERT INTO "{schema}".invoices VALUES (%s, %s, %s, %s)',
                      (i, i, f"Name {i}", 1000 * i))
            c.execute(f'INSERT INTO "{schema}".notes VALUES (%s, %s, %s)',
                      (i, i, f"call c{i}@example.org"))
        c.execute(f'INSERT INTO "{schema}".customers VALUES (99, %s, NULL)',
                  ("x'; DROP TABLE customers; --@example.org",))
    monkeypatch.setenv("GOVKIT_TEST_PG_DSN", pg_dsn)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"""version: 1
organization: PG test
sources:
  - name: crm
    kind: postgres
    connection: {{dsn_env: GOVKIT_TEST_PG_DSN, schema: {schema}}}
    owner: crm@example.org
    jurisdictions: [EU]
    tables:
      - name: customers
        subject_key: id
        columns:
          email: {{category: contact.email}}
          phone: {{category: contact.phone}}
      - name: invoices
        references: [{{column: customer_id, to: customers.id}}]
        columns:
          billing_name: {{category: identity.name}}
        erasure:
          action: anonymize
          columns: {{billing_name: redact, customer_id: "null"}}
          basis: tax law
      - name: notes
        references: [{{column: customer_id, to: customers.id}}]
        columns:
          body: {{category: free_text}}
""")
    yield load_inventory(inv), AuditStore(tmp_path / "audit.duckdb", create=True), schema
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgres_erasure_respects_foreign_keys_and_binds_values(pg_estate, pg_dsn) -> None:
    inventory, store, schema = pg_estate
    book = RequestBook(store)
    ids = []
    for email in ("c7@example.org", "x'; DROP TABLE customers; --@example.org"):
        r = book.create("erasure", [f"email={email}"], "EU", "dpo")
        book.verify(r.request_id, "dpo", "checked")
        approve_plan(store, r.request_id, inventory)
        ids.append(r.request_id)
    outcome = run_request(inventory, store, ids[0], "dpo")
    assert outcome.status == "completed", outcome.remaining
    with psycopg.connect(pg_dsn) as c:
        q = lambda sql: c.execute(sql.replace("S.", f'"{schema}".')).fetchall()  # noqa: E731
        assert q("SELECT count(*) FROM S.customers") == [(20,)]
        assert q("SELECT count(*) FROM S.notes WHERE customer_id = 7") == [(0,)]
        assert q("SELECT customer_id, billing_name, total_cents FROM S.invoices "
                 "WHERE id = 7") == [(None, "[erased]", 7000)]
    # The SQL-looking e-mail is just a value: one row deleted, the table still there.
    assert run_request(inventory, store, ids[1], "dpo").status == "completed"
    with psycopg.connect(pg_dsn) as c:
        assert c.execute(f'SELECT count(*) FROM "{schema}".customers').fetchone() == (19,)


@pytest.mark.postgres
def test_postgres_failure_rolls_back_the_whole_source(pg_estate, pg_dsn) -> None:
    inventory, store, schema = pg_estate
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        # customer_id becomes NOT NULL: the anonymization that nulls it is refused when the
        # plan is checked, before anything is journaled ...
        c.execute(f'ALTER TABLE "{schema}".invoices ALTER COLUMN customer_id SET NOT NULL')
    book = RequestBook(store)
    r = book.create("erasure", ["email=c3@example.org"], "EU", "dpo")
    book.verify(r.request_id, "dpo", "checked")
    with pytest.raises(GovernanceError, match=r"null on a NOT NULL column"):
        approve_plan(store, r.request_id, inventory)
        run_request(inventory, store, r.request_id, "dpo")
    assert book.get(r.request_id).state.value == "verified"
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        # ... and a failure while applying (a trigger refusing the last delete) rolls back
        # every change made to the source in this run.
        c.execute(f'ALTER TABLE "{schema}".invoices ALTER COLUMN customer_id DROP NOT NULL')
        c.execute(f'CREATE FUNCTION "{schema}".keep() RETURNS trigger LANGUAGE plpgsql AS '
                  "$$ BEGIN RAISE EXCEPTION 'customers are frozen'; END $$")
        c.execute(f'CREATE TRIGGER keep BEFORE DELETE ON "{schema}".customers '
                  f'FOR EACH ROW EXECUTE FUNCTION "{schema}".keep()')
    with pytest.raises(GovernanceError, match=r"RaiseException.*rolled back") as err:
        run_request(inventory, store, r.request_id, "dpo")
    assert "c3@example.org" not in str(err.value) and "\n" not in str(err.value)
    # ... and nothing of the source changed: notes and the customer are still there.
    with psycopg.connect(pg_dsn) as c:
        assert c.execute(f'SELECT count(*) FROM "{schema}".notes WHERE customer_id = 3'
                         ).fetchone() == (1,)
        assert c.execute(f'SELECT count(*) FROM "{schema}".customers WHERE id = 3'
                         ).fetchone() == (1,)


def test_dsar_list_with_holds_of_every_scope_loads_no_heavy_module(fresh_demo, tmp_path: Path
                                                                   ) -> None:
    """``dsar list`` reads requests and holds only: in a fresh process, with a subject hold
    and a retention hold in the store, it marks the held request and imports neither
    Presidio, spaCy, pandas, pyarrow, Dagster, pydantic nor the retention engine."""
    import json
    import os
    import subprocess
    import sys

    from governance.dsar import LegalHolds, parse_identity
    from governance.retention.holds import place_hold

    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    book = RequestBook(store)
    held = book.create("erasure", ["email=held.person@example.com"], "EU", "dpo")
    free = book.create("erasure", ["email=free.person@example.com"], "EU", "dpo")
    LegalHolds(store).place_on_subject([parse_identity("email=held.person@example.com")],
                                       "Litigation L-4", "counsel")
    place_hold(store, reason="Regulator inquiry", actor="counsel", source="app_db")
    heavy = ["presidio_analyzer", "spacy", "pandas", "pyarrow", "dagster", "pydantic",
             "governance.retention", "governance.inventory"]
    code = (
        "import json, sys\nfrom governance.cli import main\n"
        "try:\n    main(['dsar', 'list', '--store', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(store.path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == []
    out = "\n".join(lines[:-1])
    held_line = out.split(held.request_id)[1].split("dsar-")[0]
    assert "HELD" in held_line and "HELD" not in out.split(free.request_id)[1].split("dsar-")[0]
