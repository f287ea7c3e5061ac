"""Erasure killed at step boundaries on PostgreSQL, DuckDB and JSON lines, and the same
request run by two workers at once: a rerun finishes it, only the subject's rows are gone
(checked with SQL and bytes written here), and the request is completed."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import duckdb
import psycopg
import pytest

from governance.audit_store import AuditStore
from governance.dsar.requests import RequestBook
from governance.dsar.runner import run_request
from governance.faults import POINTS  # every step boundary, on every source kind
from governance.inventory import load_inventory
from tests.request_worker import cleared_request, start_worker

pytestmark = pytest.mark.postgres

USERS = [(i, f"user{i}@example.org", f"+44 20 7946 0{i:03d}") for i in range(1, 31)]


@pytest.fixture()
def estate(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    schema = f"faults_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.users (id int PRIMARY KEY, email text NOT NULL, "
                     "phone text)")
        conn.execute(f"CREATE TABLE {schema}.orders (id int PRIMARY KEY, user_id int NOT NULL "
                     f"REFERENCES {schema}.users(id), total numeric(10,2))")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {schema}.users VALUES (%s, %s, %s)", USERS)
            cur.executemany(f"INSERT INTO {schema}.orders VALUES (%s, %s, %s)",
                            [(n, 1 + n % 30, n * 1.5) for n in range(1, 91)])
    db = duckdb.connect(str(tmp_path / "sessions.duckdb"))
    db.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER, ip VARCHAR)")
    db.executemany("INSERT INTO sessions VALUES (?, ?, ?)",
                   [[n, 1 + n % 30, f"10.0.{n % 7}.{n}"] for n in range(1, 121)])
    db.close()
    lines = [json.dumps({"email": e, "ts": "2024-01-05T10:00:00Z",
                         "n": 12345678901234567890 + i}) for i, e, _ in USERS]
    (tmp_path / "newsletter.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("FAULTS_PG_DSN", pg_dsn)
    (tmp_path / "inventory.yaml").write_text(f"""
version: 1
organization: fault tests
sources:
  - name: crm
    kind: postgres
    connection: {{dsn_env: FAULTS_PG_DSN, schema: {schema}}}
    owner: dba@example.org
    jurisdictions: [EU]
    tables:
      - name: users
        subject_key: id
        columns: {{email: {{category: contact.email}}, phone: {{category: contact.phone}}}}
      - name: orders
        references: [{{column: user_id, to: users.id}}]
  - name: web
    kind: duckdb
    connection: {{path: sessions.duckdb}}
    owner: web@example.org
    jurisdictions: [EU]
    tables:
      - name: sessions
        references: [{{column: user_id, to: crm.users.id}}]
        columns: {{ip: {{category: network.ip}}}}
  - name: mailing
    kind: jsonl
    connection: {{path: newsletter.jsonl}}
    owner: marketing@example.org
    jurisdictions: [EU]
    tables:
      - name: newsletter
        columns: {{email: {{category: contact.email}}}}
""")
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    yield tmp_path, schema, store
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _request(store: AuditStore, email: str) -> str:
    return cleared_request(store, "erasure", f"email={email}")


def _child(folder: Path, store: AuditStore, rid: str, fault: str | None
           ) -> subprocess.Popen:
    return start_worker(folder / "inventory.yaml", store.path, rid, fault)


def _state(pg_dsn: str, schema: str, folder: Path) -> dict:
    with psycopg.connect(pg_dsn) as conn:
        users = conn.execute(f"SELECT id, email, phone FROM {schema}.users ORDER BY id").fetchall()
        orders = conn.execute(f"SELECT id, user_id, total FROM {schema}.orders ORDER BY id"
                              ).fetchall()
    db = duckdb.connect(str(folder / "sessions.duckdb"), read_only=True)
    sessions = db.execute("SELECT * FROM sessions ORDER BY id").fetchall()
    db.close()
    return {"users": users, "orders": orders, "sessions": sessions,
            "jsonl": (folder / "newsletter.jsonl").read_bytes().splitlines(keepends=True)}


def _expect_erased(before: dict, after: dict, uid: int, email: str) -> None:
    assert after["users"] == [u for u in before["users"] if u[0] != uid]
    assert after["orders"] == [o for o in before["orders"] if o[1] != uid]
    assert after["sessions"] == [s for s in before["sessions"] if s[1] != uid]
    assert after["jsonl"] == [line for line in before["jsonl"]
                              if f'"{email}"'.encode() not in line]


@pytest.mark.parametrize("point", POINTS)
def test_killed_erasure_resumes_on_postgres_duckdb_and_jsonl(estate, pg_dsn: str,
                                                             point: str) -> None:
    folder, schema, store = estate
    uid, email, _ = USERS[6]
    before = _state(pg_dsn, schema, folder)
    rid = _request(store, email)
    proc = _child(folder, store, rid, f"{point}:1")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 137, (out, err[-2000:])
    done = run_request(load_inventory(folder / "inventory.yaml"), store, rid, "dpo",
                       confirm=lambda steps: True, take_over=True)
    assert done.status == "completed", done.remaining
    _expect_erased(before, _state(pg_dsn, schema, folder), uid, email)
    assert [p for p in folder.iterdir() if p.name.endswith((".tmp", ".lock"))] == []


def test_the_same_request_run_twice_at_once_completes_once(estate, pg_dsn: str) -> None:
    folder, schema, store = estate
    uid, email, _ = USERS[11]
    before = _state(pg_dsn, schema, folder)
    rid = _request(store, email)
    procs = [start_worker(folder / "inventory.yaml", store.path, rid, take_over=False)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    statuses = [o.strip().splitlines()[-1] if o.strip() else e[-300:] for o, e in outs]
    assert statuses.count("completed") == 1, statuses
    other = next(s for s in statuses if s != "completed")
    assert other.startswith("refused:"), statuses   # being run / already completed
    assert RequestBook(store).get(rid).state.value == "completed"
    _expect_erased(before, _state(pg_dsn, schema, folder), uid, email)


def test_two_requests_for_the_same_subject_at_once(estate, pg_dsn: str) -> None:
    """Two requests naming one person (by e-mail and by phone) run at the same time: both
    finish, the person is erased once, and nobody else is touched."""
    folder, schema, store = estate
    uid, email, phone = USERS[20]
    before = _state(pg_dsn, schema, folder)
    first = _request(store, email)
    second = cleared_request(store, "erasure", f"phone={phone}")
    procs = [_child(folder, store, rid, None) for rid in (first, second)]
    outs = [p.communicate(timeout=240) for p in procs]
    for rid, (out, err) in zip((first, second), outs, strict=True):
        if RequestBook(store).get(rid).state.value != "completed":
            done = run_request(load_inventory(folder / "inventory.yaml"), store, rid, "dpo",
                               confirm=lambda steps: True, take_over=True)
            assert done.status == "completed", (out, err[-1500:], done.remaining)
    _expect_erased(before, _state(pg_dsn, schema, folder), uid, email)
