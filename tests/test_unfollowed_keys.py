"""Foreign keys ownership does not follow (composite keys, keys of tables in another
PostgreSQL schema) never let an erasure delete, break or cascade to a row that stays.

The cases a helper found by trying the composite-key guard on schemas of its own; every
expectation is checked with per-row hashes of every table read here with plain SQL.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from governance.audit_store import AuditStore
from governance.cli import main
from governance.dsar import run_request
from governance.dsar.plan import PlanError
from governance.inventory import load_inventory
from tests.request_worker import cleared_request

CUSTOMER = """      - name: customer
        subject_key: customer_id
        columns: {email: {category: contact.email}}
"""


def _inventory(path: Path, kind: str, connection: str, tables: str) -> Path:
    path.write_text("version: 1\norganization: shop\nsources:\n  - name: shop\n"
                    f"    kind: {kind}\n    connection: {connection}\n"
                    "    owner: dba@example.org\n    jurisdictions: [EU]\n    tables:\n"
                    + CUSTOMER + tables)
    return path


# The customer's address is a detail of theirs (after CUSTOMER).
ADDRESS = ("        references: [{column: address_id, to: address.address_id, kind: detail}]\n"
           "      - name: address\n        columns: {street: {category: location.address}}\n")


def _owned(*tables: str) -> str:
    return "".join(f"      - name: {t}\n        references: [{{column: customer_id, to: "
                   "customer.customer_id, kind: owner}]\n" for t in tables)


@pytest.fixture()
def pg_db(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, empty PostgreSQL database (its DSN also in GOVKIT_TEST_SHOP_DSN)."""
    name = "gk_unfollowed_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = re.sub(r"/[^/]*$", f"/{name}", pg_dsn)
    monkeypatch.setenv("GOVKIT_TEST_SHOP_DSN", dsn)
    yield dsn
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_rows(dsn: str) -> dict[str, list[str]]:
    """Every row of every base table of every schema, as JSON text, sorted."""
    with psycopg.connect(dsn) as c:
        tables = c.execute("SELECT table_schema, table_name FROM information_schema.tables "
                           "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
                           "('pg_catalog', 'information_schema')").fetchall()
        return {f"{s}.{t}": sorted(r[0] for r in c.execute(
            f'SELECT row_to_json(x)::text FROM "{s}"."{t}" x'))
            for s, t in tables}


def _sqlite_rows(path: Path) -> dict[str, list[str]]:
    c = sqlite3.connect(path)
    try:
        names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = "
                                          "'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: sorted(repr(r) for r in c.execute(f'SELECT * FROM "{t}"'))
                for t in names}
    finally:
        c.close()


def _erase(inv: Path, store: AuditStore, email: str, confirm: Any = None) -> Any:
    rid = cleared_request(store, "erasure", f"email={email}")
    return run_request(load_inventory(inv), store, rid, "dpo",
                       confirm=confirm or (lambda steps: True))


def _erase_ana_while(dsn: str, inv: Path, tmp_path: Path, late: str) -> Any:
    """Ana's erasure, with ``late`` run on the database while the plan is being read."""
    def confirm(steps: Any) -> bool:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(late)
        return True

    return _erase(inv, AuditStore(tmp_path / "audit.duckdb", create=True), "ana@example.org",
                  confirm)


def _refused_or_erased(inv: Path, tmp_path: Path, rows: Any, refused: str | None
                       ) -> tuple[Any, Any]:
    """Ana's erasure: refused naming ``refused`` with nothing changed, or (None) completed.
    The rows (``rows()`` reads every table) before and after it."""
    before = rows()
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    if refused is not None:
        with pytest.raises(PlanError, match=refused):
            _erase(inv, store, "ana@example.org")
        assert rows() == before
        return before, before
    out = _erase(inv, store, "ana@example.org")
    assert out.status == "completed", out.remaining
    return before, rows()


def _pg_inventory(tmp_path: Path, tables: str) -> Path:
    return _inventory(tmp_path / "inventory.yaml", "postgres",
                      "{dsn_env: GOVKIT_TEST_SHOP_DSN}", tables)


SALES = """
CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT NOT NULL);
CREATE TABLE sales (ticket INTEGER NOT NULL, item INTEGER NOT NULL,
                    customer_id INTEGER NOT NULL REFERENCES customer(customer_id),
                    PRIMARY KEY (ticket, item));
INSERT INTO customer VALUES (10, 'ana@example.org'), (11, 'ben@example.org');
INSERT INTO sales VALUES (1, 1, 10), (2, 1, 11);
"""


def test_sqlite_key_naming_its_parent_in_another_letter_case_without_columns(
        tmp_path: Path) -> None:
    """``REFERENCES "SALES"`` (no column list: the primary key) names table ``sales``."""
    db = tmp_path / "shop.db"
    c = sqlite3.connect(db)
    c.executescript(SALES + """
        CREATE TABLE ret (return_id INTEGER PRIMARY KEY,
                          customer_id INTEGER NOT NULL REFERENCES customer(customer_id),
                          ticket INTEGER, item INTEGER,
                          FOREIGN KEY (ticket, item) REFERENCES "SALES" ON DELETE CASCADE);
        INSERT INTO ret VALUES (500, 11, 1, 1);   -- Ben returns Ana's sale
    """)
    c.commit()
    c.close()
    inv = _inventory(tmp_path / "inventory.yaml", "sqlite", "{path: shop.db}",
                     _owned("sales", "ret"))
    before = _sqlite_rows(db)
    with pytest.raises(PlanError, match=r"ret.*composite foreign key.*sales"):
        _erase(inv, AuditStore(tmp_path / "audit.duckdb", create=True), "ana@example.org")
    assert _sqlite_rows(db) == before


@pytest.mark.parametrize("cascade", [False, True])
def test_pg_keys_of_another_schemas_tables_stop_the_erasure(
        pg_db: str, tmp_path: Path, cascade: bool) -> None:
    """billing.ret points at public.sales (composite) and billing.gift at public.customer
    (one column): govkit cannot change those rows, so deleting what they point at is
    refused, with ON DELETE CASCADE as without."""
    action = " ON DELETE CASCADE" if cascade else ""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(SALES + f"""
            CREATE SCHEMA billing;
            CREATE TABLE billing.ret (return_id INTEGER PRIMARY KEY, ticket INTEGER,
                item INTEGER, FOREIGN KEY (ticket, item) REFERENCES public.sales{action});
            INSERT INTO billing.ret VALUES (500, 1, 1);
        """)
    inv = _pg_inventory(tmp_path, _owned("sales"))
    listed = CliRunner().invoke(main, ["inventory", "-i", str(inv), "--json"]).output
    assert json.loads(listed[listed.index("{"):])["unfollowed_keys"] == [
        "billing.ret (outside the source) (ticket, item) -> shop.sales (ticket, item)"]
    before = _pg_rows(pg_db)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    with pytest.raises(PlanError, match=r"billing\.ret, outside this source.*sales"):
        _erase(inv, store, "ana@example.org")
    assert _pg_rows(pg_db) == before
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("DELETE FROM billing.ret")
        c.execute("CREATE TABLE billing.gift (gift_id INTEGER PRIMARY KEY, "
                  f"to_customer INTEGER REFERENCES public.customer (customer_id){action})")
        c.execute("INSERT INTO billing.gift VALUES (1, 10)")
    before = _pg_rows(pg_db)
    with pytest.raises(PlanError, match=r"billing\.gift, outside this source.*customer"):
        _erase(inv, store, "ana@example.org")
    assert _pg_rows(pg_db) == before


def test_pg_a_composite_reference_made_after_the_plan_keeps_the_detail_row(
        pg_db: str, tmp_path: Path) -> None:
    """Ben's delivery starts pointing at Ana's address (composite key, ON DELETE CASCADE)
    while the plan is being read: the address is checked again as it is deleted, and kept."""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("""
            CREATE TABLE address (address_id INTEGER PRIMARY KEY, zip TEXT NOT NULL,
                                  street TEXT NOT NULL, UNIQUE (address_id, zip));
            CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT NOT NULL,
                                   address_id INTEGER NOT NULL REFERENCES address);
            CREATE TABLE delivery (delivery_id INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customer, zip TEXT,
                address_id INTEGER, FOREIGN KEY (zip, address_id)
                REFERENCES address (zip, address_id) ON DELETE CASCADE);
            INSERT INTO address VALUES (1, '75001', '1 Rue A'), (2, '10115', '2 Str B');
            INSERT INTO customer VALUES (10, 'ana@example.org', 1),
                                        (11, 'ben@example.org', 2);
            INSERT INTO delivery VALUES (700, 10, '75001', 1), (702, 11, '10115', 2);
        """)
    out = _erase_ana_while(pg_db, _pg_inventory(tmp_path, ADDRESS + _owned("delivery")),
                           tmp_path, "INSERT INTO delivery VALUES (701, 11, '75001', 1)")
    assert out.status == "completed", out.remaining
    rows = _pg_rows(pg_db)
    assert rows["public.address"] == sorted([
        '{"address_id":1,"zip":"75001","street":"1 Rue A"}',
        '{"address_id":2,"zip":"10115","street":"2 Str B"}'])
    assert rows["public.delivery"] == sorted([
        '{"delivery_id":701,"customer_id":11,"zip":"75001","address_id":1}',
        '{"delivery_id":702,"customer_id":11,"zip":"10115","address_id":2}'])
    assert rows["public.customer"] == ['{"customer_id":11,"email":"ben@example.org",'
                                       '"address_id":2}']


@pytest.mark.parametrize("order", [("sales", "ret"), ("ret", "sales")])
def test_pg_the_subjects_own_return_is_deleted_before_their_sale(
        pg_db: str, tmp_path: Path, order: tuple[str, str]) -> None:
    """Ana's return points at Ana's sale through a composite key (NO ACTION): whatever the
    inventory's order, the return goes first and the erasure completes."""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(SALES + """
            CREATE TABLE ret (return_id INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customer(customer_id),
                ticket INTEGER, item INTEGER,
                FOREIGN KEY (ticket, item) REFERENCES sales (ticket, item));
            INSERT INTO ret VALUES (501, 10, 1, 1);
        """)
    inv = _pg_inventory(tmp_path, _owned(*order))
    before = _pg_rows(pg_db)
    out = _erase(inv, AuditStore(tmp_path / "audit.duckdb", create=True), "ana@example.org")
    assert out.status == "completed", out.remaining
    after = _pg_rows(pg_db)
    gone = {t: sorted(set(before[t]) - set(after[t])) for t in before if before[t] != after[t]}
    assert gone == {"public.customer": ['{"customer_id":10,"email":"ana@example.org"}'],
                    "public.sales": ['{"ticket":1,"item":1,"customer_id":10}'],
                    "public.ret": ['{"return_id":501,"customer_id":10,"ticket":1,"item":1}']}


def test_pg_a_key_to_a_table_whose_name_differs_only_in_case_is_not_applied(
        pg_db: str, tmp_path: Path) -> None:
    """"Sales" and sales are two tables in PostgreSQL: a key to "Sales" says nothing about
    rows of sales, so it does not stop Ana's erasure."""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(SALES + """
            CREATE TABLE "Sales" (ticket INTEGER, item INTEGER, PRIMARY KEY (ticket, item));
            INSERT INTO "Sales" VALUES (1, 1);
            CREATE TABLE notes (note_id INTEGER PRIMARY KEY, ticket INTEGER, item INTEGER,
                FOREIGN KEY (ticket, item) REFERENCES "Sales" (ticket, item));
            INSERT INTO notes VALUES (1, 1, 1);
        """)
    inv = _pg_inventory(tmp_path, _owned("sales"))
    out = _erase(inv, AuditStore(tmp_path / "audit.duckdb", create=True), "ana@example.org")
    assert out.status == "completed", out.remaining
    rows = _pg_rows(pg_db)
    assert rows["public.notes"] == ['{"note_id":1,"ticket":1,"item":1}']
    assert rows["public.Sales"] == ['{"ticket":1,"item":1}']
    assert rows["public.sales"] == ['{"ticket":2,"item":1,"customer_id":11}']


@pytest.mark.parametrize("owned", ["orders", "a_orders"])
def test_pg_keys_in_a_cycle_leave_the_ownership_order(
        pg_db: str, tmp_path: Path, owned: str) -> None:
    """customer.last_order_id -> orders (SET NULL) and orders.customer_id -> customer close
    a cycle: it gives no order, so the order goes before the person row whatever its name
    (a second round of the helper found that it depended on the name)."""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(f"""
            CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT NOT NULL,
                                   last_order_id INTEGER);
            CREATE TABLE {owned} (order_id INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customer (customer_id));
            ALTER TABLE customer ADD FOREIGN KEY (last_order_id) REFERENCES {owned}
                (order_id) ON DELETE SET NULL;
            INSERT INTO customer VALUES (10, 'ana@example.org', NULL),
                                        (11, 'ben@example.org', NULL);
            INSERT INTO {owned} VALUES (100, 10), (101, 11);
            UPDATE customer SET last_order_id = 100 + customer_id - 10;
        """)
    inv = _pg_inventory(tmp_path, _owned(owned))
    out = _erase(inv, AuditStore(tmp_path / "audit.duckdb", create=True), "ana@example.org")
    assert out.status == "completed", out.remaining
    rows = _pg_rows(pg_db)
    assert rows["public.customer"] == ['{"customer_id":11,"email":"ben@example.org",'
                                       '"last_order_id":101}']
    assert rows[f"public.{owned}"] == ['{"order_id":101,"customer_id":11}']


@pytest.mark.parametrize("types", [("char(5)", "varchar(5)", "'AB'"),
                                   ("numeric(10,2)", "numeric", "1.5"),
                                   ("date", "timestamp", "'2024-01-01'")])
@pytest.mark.parametrize("target", ["sale", "address"])
def test_pg_keys_between_columns_of_different_types_are_matched_as_the_database_does(
        pg_db: str, tmp_path: Path, types: tuple[str, str, str], target: str) -> None:
    """'AB' in char(5) and varchar, 1.50 and 1.5, a date and a timestamp at midnight are
    equal to the key: Ben's row in billing pointing at Ana's sale refuses the erasure, and
    pointing at her address keeps it."""
    parent, child, value = types
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(f"""
            CREATE SCHEMA billing;
            CREATE TABLE address (address_id INT PRIMARY KEY, code {parent} NOT NULL UNIQUE,
                                  street TEXT NOT NULL);
            CREATE TABLE customer (customer_id INT PRIMARY KEY, email TEXT NOT NULL,
                                   address_id INT REFERENCES address);
            CREATE TABLE sale (sale_id INT PRIMARY KEY, code {parent} NOT NULL,
                item INT NOT NULL, customer_id INT NOT NULL REFERENCES customer,
                UNIQUE (code, item));
            CREATE TABLE billing.ret (return_id INT PRIMARY KEY, code {child}, item INT,
                FOREIGN KEY (code, item) REFERENCES public.sale (code, item)
                ON DELETE CASCADE);
            CREATE TABLE billing.delivery (delivery_id INT PRIMARY KEY,
                code {child} REFERENCES public.address (code) ON DELETE CASCADE);
            INSERT INTO address VALUES (1, {value}, '1 Rue A');
            INSERT INTO customer VALUES (10, 'ana@example.org', 1);
            INSERT INTO sale VALUES (1, {value}, 1, 10);
        """)
        if target == "sale":
            c.execute(f"INSERT INTO billing.ret VALUES (500, {value}, 1)")
        else:
            c.execute("DELETE FROM sale")
            c.execute(f"INSERT INTO billing.delivery VALUES (700, {value})")
    inv = _pg_inventory(tmp_path, ADDRESS + _owned("sale"))
    before, after = _refused_or_erased(
        inv, tmp_path, lambda: _pg_rows(pg_db),
        r"1 row\(s\) of shop\.sale .* 1 row\(s\) of billing\.ret, outside this source"
        if target == "sale" else None)
    if target == "sale":
        return
    assert after["public.address"] == before["public.address"]
    assert after["billing.delivery"] == before["billing.delivery"]
    assert after["public.customer"] == []


@pytest.mark.parametrize("where", ["public", "billing"])
def test_pg_a_key_to_a_partition_is_a_key_to_its_table(
        pg_db: str, tmp_path: Path, where: str) -> None:
    """ret -> sale_p1, a partition of sale: Ben's return of Ana's sale refuses the erasure
    (the catalogue lists sale, never its partitions)."""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(f"""
            CREATE SCHEMA IF NOT EXISTS billing;
            CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT NOT NULL);
            CREATE TABLE sale (ticket INT NOT NULL, item INT NOT NULL,
                customer_id INT NOT NULL REFERENCES customer, PRIMARY KEY (ticket, item))
                PARTITION BY RANGE (ticket);
            CREATE TABLE sale_p1 PARTITION OF sale FOR VALUES FROM (0) TO (100);
            CREATE TABLE sale_p2 PARTITION OF sale FOR VALUES FROM (100) TO (1000);
            CREATE TABLE {where}.ret (return_id INT PRIMARY KEY, ticket INT, item INT,
                FOREIGN KEY (ticket, item) REFERENCES public.sale_p1 (ticket, item)
                ON DELETE CASCADE);
            INSERT INTO customer VALUES (10, 'ana@example.org'), (11, 'ben@example.org');
            INSERT INTO sale VALUES (1, 1, 10), (2, 2, 11);
            INSERT INTO {where}.ret VALUES (500, 1, 1);
        """)
    inv = _pg_inventory(tmp_path, _owned("sale"))
    before = _pg_rows(pg_db)
    with pytest.raises(PlanError, match=r"ret.*foreign key ret \(ticket, item\) -> sale"):
        _erase(inv, AuditStore(tmp_path / "audit.duckdb", create=True), "ana@example.org")
    assert _pg_rows(pg_db) == before


def test_pg_a_reference_from_another_schema_made_after_the_plan_keeps_the_detail_row(
        pg_db: str, tmp_path: Path) -> None:
    """Ben's billing.delivery starts pointing at Ana's address (ON DELETE CASCADE) while the
    plan is read: the address is kept, Ben's row stays, and the outcome says so."""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("""
            CREATE TABLE address (address_id INTEGER PRIMARY KEY, street TEXT NOT NULL);
            CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT NOT NULL,
                                   address_id INTEGER REFERENCES address);
            CREATE SCHEMA billing;
            CREATE TABLE billing.delivery (delivery_id INTEGER PRIMARY KEY,
                address_id INTEGER REFERENCES public.address ON DELETE CASCADE);
            INSERT INTO address VALUES (1, '1 Rue A');
            INSERT INTO customer VALUES (10, 'ana@example.org', 1);
        """)
    out = _erase_ana_while(pg_db, _pg_inventory(tmp_path, ADDRESS), tmp_path,
                           "INSERT INTO billing.delivery VALUES (701, 1)")
    assert out.status == "completed", out.remaining
    assert "another row referred to them" in out.kept["shop.address"]
    rows = _pg_rows(pg_db)
    assert rows["public.address"] == ['{"address_id":1,"street":"1 Rue A"}']
    assert rows["billing.delivery"] == ['{"delivery_id":701,"address_id":1}']
    assert rows["public.customer"] == []


@pytest.mark.parametrize("case", ["parent_nocase", "parent_rtrim", "child_nocase", "detail"])
def test_sqlite_keys_compare_with_the_referenced_columns_collation(
        tmp_path: Path, case: str) -> None:
    """SQLite checks a key with the referenced column's collation: Ben's 'ab' points at
    Ana's 'AB' when sale.ticket is NOCASE (refused), 'AB ' does under RTRIM (refused), and
    does not when only ret.ticket is NOCASE (Ana's erasure goes ahead); a NOCASE zip keeps
    her address under Ben's delivery. A third round of the helper found the first and the
    last completed, leaving Ben's row pointing at a deleted one."""
    parent = {"parent_nocase": "COLLATE NOCASE", "parent_rtrim": "COLLATE RTRIM"}.get(case, "")
    child = "COLLATE NOCASE" if case == "child_nocase" else ""
    pointer = {"parent_rtrim": "AB "}.get(case, "ab")
    db = tmp_path / "shop.db"
    c = sqlite3.connect(db)
    c.executescript(f"""
        CREATE TABLE address (address_id INTEGER PRIMARY KEY, zip TEXT COLLATE NOCASE,
                              street TEXT, UNIQUE (address_id, zip));
        CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT NOT NULL,
                               address_id INTEGER REFERENCES address (address_id));
        CREATE TABLE sale (ticket TEXT {parent}, item INTEGER,
            customer_id INTEGER NOT NULL REFERENCES customer (customer_id),
            PRIMARY KEY (ticket, item));
        CREATE TABLE ret (return_id INTEGER PRIMARY KEY, ticket TEXT {child}, item INTEGER,
            FOREIGN KEY (ticket, item) REFERENCES sale (ticket, item) ON DELETE CASCADE);
        CREATE TABLE delivery (delivery_id INTEGER PRIMARY KEY, address_id INTEGER,
            zip TEXT, FOREIGN KEY (address_id, zip) REFERENCES address (address_id, zip));
        INSERT INTO address VALUES (1, 'AB1', '1 Rue A');
        INSERT INTO customer VALUES (10, 'ana@example.org', 1), (11, 'ben@example.org', NULL);
        INSERT INTO sale VALUES ('AB', 1, 10), ({"'CD'" if parent else "'ab'"}, 1, 11);
    """)
    if case == "detail":
        c.execute("DELETE FROM sale WHERE customer_id = 10")
        c.execute("INSERT INTO delivery VALUES (700, 1, 'ab1')")
    else:
        c.execute("INSERT INTO ret VALUES (500, ?, 1)", (pointer,))
    c.commit()
    c.close()
    inv = _inventory(tmp_path / "inventory.yaml", "sqlite", "{path: shop.db}",
                     ADDRESS + _owned("sale"))
    refused = case in ("parent_nocase", "parent_rtrim")
    before, after = _refused_or_erased(inv, tmp_path, lambda: _sqlite_rows(db),
                                       r"1 row\(s\) of shop\.sale .* shop\.ret" if refused
                                       else None)
    if refused:
        return
    assert after["ret"] == before["ret"] and after["delivery"] == before["delivery"]
    assert after["address"] == before["address"] if case == "detail" else True
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    check.close()
