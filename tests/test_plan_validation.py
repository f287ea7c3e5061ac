"""Plans are validated before anything is journaled: an erasure block that cannot be
applied stops the run with the reason and changes nothing; a request whose journal cannot
proceed can be planned again after the inventory is fixed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from governance.audit_store import AuditStore
from governance.dsar.plan import PlanError
from governance.dsar.requests import RequestBook
from governance.dsar.runner import plan_request, replan_request, run_request
from governance.errors import GovernanceError
from governance.inventory import load_inventory
from tests.request_worker import cleared_request

INVENTORY = """
version: 1
organization: shop
sources:
  - name: shop
    kind: sqlite
    connection: {{path: shop.db}}
    owner: dba@example.org
    jurisdictions: [EU]
    tables:
      - name: users
        subject_key: id
        columns: {{email: {{category: contact.email}}}}
      - name: orders
        references: [{{column: user_id, to: users.id}}]
{erasure}
"""


def _estate(tmp_path: Path, erasure: str = "") -> tuple[Path, AuditStore]:
    db = sqlite3.connect(tmp_path / "shop.db")
    db.executescript("""
        CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
        CREATE TABLE orders (id INTEGER PRIMARY KEY,
                             user_id INTEGER NOT NULL REFERENCES users(id), amount INTEGER);
        INSERT INTO users VALUES (1, 'ana@example.org'), (2, 'ben@example.org');
        INSERT INTO orders VALUES (10, 1, 5), (11, 1, 7), (12, 2, 9);
    """)
    db.commit()
    db.close()
    (tmp_path / "inventory.yaml").write_text(INVENTORY.format(erasure=erasure))
    return tmp_path / "inventory.yaml", AuditStore(tmp_path / "audit.duckdb", create=True)


def _request(store: AuditStore) -> str:
    return cleared_request(store, "erasure", "email=ana@example.org")


def _dump(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT 'u', id, email, NULL FROM users UNION ALL "
                      "SELECT 'o', id, user_id, amount FROM orders ORDER BY 1, 2").fetchall()
    db.close()
    return rows


@pytest.mark.parametrize(("columns", "expected"), [
    ("{user_id: 'null'}", "null on a NOT NULL column"),
    ("{user_idd: 'null'}", "no such column"),
    ("{amount: hash}", "writes text into a INTEGER column"),
])
def test_an_erasure_block_that_cannot_apply_stops_before_the_journal(
        tmp_path: Path, columns: str, expected: str) -> None:
    erasure = (f"        erasure: {{action: anonymize, columns: {columns}, "
               "basis: 'tax law'}")
    inv_path, store = _estate(tmp_path, erasure)
    rid = _request(store)
    before = _dump(tmp_path / "shop.db")
    resolution, _ = plan_request(load_inventory(inv_path), store, rid)
    assert any(expected in b for b in resolution.blockers), resolution.blockers
    with pytest.raises(PlanError, match="nothing was changed"):
        run_request(load_inventory(inv_path), store, rid, "dpo", confirm=lambda s: True)
    assert _dump(tmp_path / "shop.db") == before
    assert RequestBook(store).get(rid).state.value == "verified"
    assert store.query("SELECT count(*) AS n FROM dsar_steps WHERE request_id = ?",
                       [rid])[0]["n"] == 0


def test_a_journal_that_cannot_proceed_is_planned_again(tmp_path: Path) -> None:
    inv_path, store = _estate(tmp_path)
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TRIGGER frozen BEFORE DELETE ON orders "
               "BEGIN SELECT RAISE(ABORT, 'orders are frozen'); END")
    db.commit()
    db.close()
    rid = _request(store)
    with pytest.raises(GovernanceError, match="failed"):
        run_request(load_inventory(inv_path), store, rid, "dpo", confirm=lambda s: True)
    assert RequestBook(store).get(rid).state.value == "in_progress"
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("DROP TRIGGER frozen")
    db.commit()
    db.close()
    dropped = replan_request(store, rid, "dpo", "trigger removed")
    assert dropped
    assert [e.action for e in store.log_entries()].count("dsar.replanned") == 1
    out = run_request(load_inventory(inv_path), store, rid, "dpo", confirm=lambda s: True)
    assert out.status == "completed", out.remaining
    assert _dump(tmp_path / "shop.db") == [("o", 12, 2, 9), ("u", 2, "ben@example.org", None)]
