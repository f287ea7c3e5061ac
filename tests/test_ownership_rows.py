"""Whose row is it, on a schema shaped like Sakila's rental store: a payment belongs to the
customer its own customer_id names even when its rental is someone else's; an address is
the customer's detail (exported), kept when another person still refers to it; staff
pointing at the same address are other people. Checked with SQL written here."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from governance.audit_store import AuditStore
from governance.dsar import plan_request, run_request
from governance.dsar.plan import PlanError
from governance.inventory import load_inventory
from tests.request_worker import cleared_request

SCHEMA = """
CREATE TABLE address (address_id INTEGER PRIMARY KEY, address TEXT NOT NULL, phone TEXT);
CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT NOT NULL,
                       address_id INTEGER NOT NULL REFERENCES address(address_id));
CREATE TABLE staff (staff_id INTEGER PRIMARY KEY, email TEXT NOT NULL,
                    address_id INTEGER NOT NULL REFERENCES address(address_id));
CREATE TABLE rental (rental_id INTEGER PRIMARY KEY,
                     customer_id INTEGER NOT NULL REFERENCES customer(customer_id),
                     staff_id INTEGER NOT NULL REFERENCES staff(staff_id));
CREATE TABLE payment (payment_id INTEGER PRIMARY KEY,
                      customer_id INTEGER NOT NULL REFERENCES customer(customer_id),
                      staff_id INTEGER NOT NULL REFERENCES staff(staff_id),
                      rental_id INTEGER REFERENCES rental(rental_id), amount INTEGER);
INSERT INTO address VALUES (1, '1 Elm St', '+1 415 555 0101'), (2, '2 Oak St', NULL),
                           (3, '3 Shared Rd', NULL);
INSERT INTO customer VALUES (10, 'ana@example.org', 1), (11, 'ben@example.org', 3),
                            (12, 'cy@example.org', 3);
INSERT INTO staff VALUES (90, 'mgr@shop.example', 2);
INSERT INTO rental VALUES (100, 10, 90), (101, 11, 90);
-- Ben pays for Ana's rental 100: his payment, pointing at her rental.
INSERT INTO payment VALUES (1000, 10, 90, 100, 5), (1001, 11, 90, 100, 7),
                           (1002, 11, 90, 101, 3);
"""

INVENTORY = """
version: 1
organization: rental shop
sources:
  - name: shop
    kind: sqlite
    connection: {{path: shop.db}}
    owner: dba@example.org
    jurisdictions: [EU]
    tables:
      - name: customer
        subject_key: customer_id
        columns: {{email: {{category: contact.email}}}}
        references: [{{column: address_id, to: address.address_id}}]
      - name: staff
        subject_key: staff_id
        columns: {{email: {{category: contact.email}}}}
        references: [{{column: address_id, to: address.address_id}}]
      - name: address
        columns: {{address: {{category: location.address}}, phone: {{category: contact.phone}}}}
      - name: rental
        references:
          - {{column: customer_id, to: customer.customer_id, kind: owner}}
          - {{column: staff_id, to: staff.staff_id, kind: reference}}
      - name: payment
        references:
          - {{column: customer_id, to: customer.customer_id, kind: owner}}
          - {{column: staff_id, to: staff.staff_id, kind: reference}}
          - {{column: rental_id, to: rental.rental_id, kind: reference{detach}}}
"""


def _shop(tmp_path: Path, detach: bool) -> tuple[Path, AuditStore]:
    db = sqlite3.connect(tmp_path / "shop.db")
    db.executescript(SCHEMA)
    db.commit()
    db.close()
    (tmp_path / "inventory.yaml").write_text(
        INVENTORY.format(detach=", on_erase: detach" if detach else ""))
    return tmp_path / "inventory.yaml", AuditStore(tmp_path / "audit.duckdb", create=True)


def _request(store: AuditStore, rtype: str, identity: str) -> str:
    return cleared_request(store, rtype, identity if "=" in identity else f"email={identity}")


def _hashes(db: Path) -> dict[tuple[str, int], str]:
    c = sqlite3.connect(db)
    out = {}
    for t, k in [("address", "address_id"), ("customer", "customer_id"), ("staff", "staff_id"),
                 ("rental", "rental_id"), ("payment", "payment_id")]:
        for row in c.execute(f"SELECT * FROM {t} ORDER BY {k}"):
            out[(t, row[0])] = hashlib.sha256(repr(row).encode()).hexdigest()
    c.close()
    return out


def test_access_returns_own_rows_and_address_but_not_the_payment_of_another(
        tmp_path: Path) -> None:
    inv, store = _shop(tmp_path, detach=False)
    resolution, _ = plan_request(load_inventory(inv), store, _request(store, "access",
                                                                      "ana@example.org"))
    owned = {t: sorted(r[next(iter(r))] for r in rows)
             for (_, t), rows in resolution.owned.items()}
    assert owned == {"customer": [10], "rental": [100], "payment": [1000]}
    assert {t: [r["address_id"] for r in rows]
            for (_, t), rows in resolution.detail.items()} == {"address": [1]}
    assert ("shop", "staff") not in resolution.owned


def test_erasure_stops_when_another_persons_payment_points_at_the_subjects_rental(
        tmp_path: Path) -> None:
    inv, store = _shop(tmp_path, detach=False)
    before = _hashes(tmp_path / "shop.db")
    rid = _request(store, "erasure", "ana@example.org")
    with pytest.raises(PlanError, match=r"payment.*rental_id"):
        run_request(load_inventory(inv), store, rid, "dpo", confirm=lambda s: True)
    assert _hashes(tmp_path / "shop.db") == before


def test_erasure_with_detach_changes_only_the_reference_in_the_other_persons_payment(
        tmp_path: Path) -> None:
    inv, store = _shop(tmp_path, detach=True)
    before = _hashes(tmp_path / "shop.db")
    rid = _request(store, "erasure", "ana@example.org")
    out = run_request(load_inventory(inv), store, rid, "dpo", confirm=lambda s: True)
    assert out.status == "completed", out.remaining
    after = _hashes(tmp_path / "shop.db")
    gone = {k for k in before if k not in after}
    changed = {k for k in before if k in after and before[k] != after[k]}
    assert gone == {("customer", 10), ("rental", 100), ("payment", 1000), ("address", 1)}
    assert changed == {("payment", 1001)}
    c = sqlite3.connect(tmp_path / "shop.db")
    assert c.execute("SELECT customer_id, staff_id, rental_id, amount FROM payment "
                     "WHERE payment_id = 1001").fetchone() == (11, 90, None, 7)


def test_a_shared_address_is_kept_and_reported(tmp_path: Path) -> None:
    inv, store = _shop(tmp_path, detach=True)
    before = _hashes(tmp_path / "shop.db")
    out = run_request(load_inventory(inv), store, _request(store, "erasure", "cy@example.org"),
                      "dpo", confirm=lambda s: True)
    assert out.status == "completed", out.remaining
    after = _hashes(tmp_path / "shop.db")
    assert {k for k in before if k not in after} == {("customer", 12)}
    assert all(after[k] == v for k, v in before.items() if k in after)
    assert any("refer" in why for why in out.kept.values()), out.kept
    assert not out.held, out.held  # kept because others refer to it: not a legal hold


def test_a_foreign_key_only_the_catalogue_declares_makes_a_person_key(tmp_path: Path) -> None:
    """Issue 14 #2: a column that refers to a person row by a foreign key read from the
    source's catalogue (the inventory declares no reference) is identity.user_id."""
    from governance.scan import run_scan

    inv_path, store = _shop(tmp_path, detach=False)
    c = sqlite3.connect(tmp_path / "shop.db")
    c.execute("CREATE TABLE visit (visit_id INTEGER PRIMARY KEY, "
              "who INTEGER REFERENCES customer(customer_id), at TEXT)")
    c.executemany("INSERT INTO visit VALUES (?, ?, ?)",
                  [(n, 10 + n % 3, f"2026-01-{1 + n % 28:02d}") for n in range(60)])
    c.commit()
    c.close()
    result = run_scan(load_inventory(inv_path), store)
    by_col = {(f.table_name, f.column_name): f.detected_category for f in result.findings}
    assert by_col[("visit", "who")] == "identity.user_id"            # the catalogue's key
    assert by_col[("payment", "customer_id")] == "identity.user_id"  # a declared reference
    assert by_col[("visit", "visit_id")] != "identity.user_id"


def test_erasure_keeps_a_detail_row_another_row_points_at_through_a_composite_key(
        tmp_path: Path) -> None:
    """A staff delivery points at Ana's address through a composite foreign key, which
    ownership does not follow: her address is kept (not deleted from under it)."""
    inv, store = _shop(tmp_path, detach=True)
    db = sqlite3.connect(tmp_path / "shop.db")
    db.executescript("""
        CREATE UNIQUE INDEX address_text ON address(address_id, address);
        CREATE TABLE delivery (delivery_id INTEGER PRIMARY KEY,
                               staff_id INTEGER REFERENCES staff(staff_id),
                               address_id INTEGER, address TEXT,
                               FOREIGN KEY (address_id, address)
                                   REFERENCES address(address_id, address));
        INSERT INTO delivery VALUES (500, 90, 1, '1 Elm St');
    """)
    db.commit()
    db.close()
    before = _hashes(tmp_path / "shop.db")
    rid = _request(store, "erasure", "ana@example.org")
    out = run_request(load_inventory(inv), store, rid, "dpo", confirm=lambda s: True)
    assert out.status == "completed", out.remaining
    after = _hashes(tmp_path / "shop.db")
    assert {k for k in before if k not in after} == {("customer", 10), ("rental", 100),
                                                     ("payment", 1000)}
    assert {k for k in before if k in after and before[k] != after[k]} == {("payment", 1001)}
    c = sqlite3.connect(tmp_path / "shop.db")
    assert c.execute("SELECT address_id, address FROM delivery").fetchall() == [(1, "1 Elm St")]
    assert c.execute("SELECT count(*) FROM address WHERE address_id = 1").fetchone() == (1,)
