"""Retention on a real PostgreSQL server, in a schema of its own: per-person deletion
through the ownership graph, holds by identity and by subject key, a kill midway."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from governance import faults
from governance.audit_store import AuditStore
from governance.dsar.holds import LegalHolds
from governance.dsar.identities import Identity
from governance.faults import InjectedFault
from governance.inventory import load_inventory
from governance.retention.applying import apply_retention
from governance.retention.holds import place_hold
from governance.retention.planning import plan_retention
from governance.retention.policy import load_policies

DSN = os.environ.get("GOVKIT_TEST_PG_DSN")
pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not DSN, reason="GOVKIT_TEST_PG_DSN is not set")]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture()
def pg(tmp_path: Path):
    import psycopg

    schema = f"ret_{uuid.uuid4().hex[:10]}"
    con = psycopg.connect(DSN, autocommit=True)
    con.execute(f'CREATE SCHEMA "{schema}"')
    con.execute(f'SET search_path TO "{schema}"')
    con.execute("CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, "
                "closed_at timestamptz)")
    con.execute("CREATE TABLE orders (id integer PRIMARY KEY, user_id integer NOT NULL "
                "REFERENCES users(id), address text, created_at timestamp NOT NULL)")
    con.execute("INSERT INTO users SELECT i, 'u' || i || '@example.com', CASE WHEN i % 3 = 0 "
                "THEN NULL ELSE timestamptz '2024-01-01 00:00+00' + (i || ' days')::interval "
                "END FROM generate_series(1, 900) i")
    con.execute("INSERT INTO orders SELECT i, 1 + (i * 7) % 900, 'Street ' || i, "
                "timestamp '2023-01-01' + (i || ' hours')::interval "
                "FROM generate_series(1, 4000) i")
    (tmp_path / "inventory.yaml").write_text(f"""version: 1
organization: pg
sources:
  - name: shop
    kind: postgres
    connection: {{dsn_env: GOVKIT_TEST_PG_DSN, schema: {schema}}}
    owner: shop@example.com
    jurisdictions: [EU]
    tables:
      - name: users
        subject_key: id
        columns: {{email: {{category: contact.email}}}}
      - name: orders
        references: [{{column: user_id, to: users.id, kind: owner}}]
        columns: {{address: {{category: location.address}}}}
""")
    (tmp_path / "policy.yaml").write_text("""version: 1
profile: pg
jurisdictions: [EU]
events:
  account_closed: {shop.users: closed_at}
rules:
  - name: closed-accounts
    tables: [shop.users]
    retain: 1 year
    starts_at: account_closed
    action: delete
    per_subject: true
    basis: "Contract ended; one year after the account closes"
""")
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    store.schema_version()
    yield {"con": con, "schema": schema, "store": store, "dir": tmp_path}
    con.execute(f'DROP SCHEMA "{schema}" CASCADE')
    con.close()


def digest(con, sql: str, params: tuple = ()) -> dict[int, str]:
    return {r[0]: hashlib.sha256(repr(r).encode()).hexdigest() for r in con.execute(sql, params)}


def test_per_person_deletion_with_holds_and_a_kill_on_postgres(pg: dict, monkeypatch) -> None:
    con, store, d = pg["con"], pg["store"], pg["dir"]
    held_keys = [3 * k + 1 for k in range(20)]               # closed long ago: due, but held
    place_hold(store, reason="Class action", actor="dpo", table="shop.users",
               subject_keys=held_keys)
    LegalHolds(store).place_on_subject([Identity("email", "U2@example.com")], "Case 2", "dpo")
    held = [*held_keys, 2]
    cutoff = datetime(2025, 12, 1, tzinfo=UTC)
    due_users = {r[0] for r in con.execute(
        "SELECT id FROM users WHERE closed_at < %s AND NOT (id = ANY(%s))", (cutoff, held))}
    due_orders = {r[0] for r in con.execute(
        "SELECT id FROM orders WHERE user_id = ANY(%s)", (list(due_users),))}
    kept_users = digest(con, "SELECT * FROM users WHERE NOT (id = ANY(%s)) ORDER BY id",
                        (list(due_users),))
    kept_orders = digest(con, "SELECT * FROM orders WHERE NOT (id = ANY(%s))",
                         (list(due_orders),))
    assert due_users and due_orders and len(kept_users) > len(held)

    inv = load_inventory(d / "inventory.yaml")
    policies = load_policies([d / "policy.yaml"])
    plan = plan_retention(policies, inv, store, NOW)
    by = {s.table: s for s in plan.steps}
    assert by["orders"].due == len(due_orders) and by["users"].due == len(due_users)
    assert by["users"].held == len(held)

    faults._hits.clear()
    monkeypatch.setenv("GOVKIT_FAULT", "retention.after_batch:3:raise")
    with pytest.raises(InjectedFault):
        apply_retention(policies, inv, store, NOW, "tester", batch_rows=100)
    monkeypatch.delenv("GOVKIT_FAULT")
    result = apply_retention(policies, inv, store, NOW, "tester", batch_rows=100)
    assert result.resumed
    assert {r[0] for r in con.execute("SELECT id FROM users")} == set(kept_users)
    assert digest(con, "SELECT * FROM users ORDER BY id") == kept_users
    assert digest(con, "SELECT * FROM orders") == kept_orders
    steps = store.query("SELECT table_name, planned_rows, rows_affected FROM retention_steps")
    assert {s["table_name"]: s["rows_affected"] for s in steps} == \
        {"orders": len(due_orders), "users": len(due_users)}
    assert plan_retention(policies, inv, store, NOW).due == 0
    assert apply_retention(policies, inv, store, NOW, "tester").changed == 0
    assert store.verify_log().ok
