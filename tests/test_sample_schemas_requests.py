"""Requests on Oracle's sample schemas CO and HR (MIT; nobody on this project wrote them),
on SQLite and PostgreSQL.

CO: an order line points at its order and at the shipment that carried it (key: order id,
line number), so a line has two ways to its owner. HR: employees point at their manager, a
department at its manager, and job history (key: employee, start date) at its employee.
Every expectation is SQL written here and per-row hashes of every table, never govkit.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from public_data.fixtures import PublicDb
from public_data.oracle import Db, assert_only_removed, differences, keys_of, row_hashes

from governance.dsar import RequestBook, RequestState, run_request
from governance.errors import GovernanceError
from governance.inventory import load_inventory
from tests.request_worker import approve_plan, exported_tables


def _request(db: PublicDb, rtype: str, identity: str, declared: bool = False) -> str:
    book = RequestBook(db.store)
    rid = book.create(rtype, [identity], "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked")
    if rtype != "access":
        approve_plan(db.store, rid, db.declared_inventory if declared else db.fk_inventory)
    return rid


def _run(db: PublicDb, rid: str, declared: bool = False) -> Any:
    inv = load_inventory(db.declared_inventory if declared else db.fk_inventory)
    return run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)


def _co_rows(check: Db, customer_id: int) -> dict[str, set[tuple[Any, ...]]]:
    """A CO customer's own rows by primary key: their row, orders, shipments, and the lines
    of their orders (each also in one of their shipments or in none)."""
    out = {
        "customers": set(check.query("SELECT customer_id FROM customers WHERE customer_id = ?",
                                     (customer_id,))),
        "orders": set(check.query("SELECT order_id FROM orders WHERE customer_id = ?",
                                  (customer_id,))),
        "shipments": set(check.query("SELECT shipment_id FROM shipments WHERE customer_id = ?",
                                     (customer_id,))),
        "order_items": set(check.query(
            "SELECT i.order_id, i.line_item_id FROM order_items i JOIN orders o "
            "ON o.order_id = i.order_id WHERE o.customer_id = ?", (customer_id,))),
    }
    return {t: keys for t, keys in out.items() if keys}


def _co_customer(check: Db) -> tuple[int, str]:
    """The customer with the most order lines (ties: lowest id) and their e-mail."""
    cid, email = check.query(
        "SELECT c.customer_id, c.email_address FROM customers c JOIN orders o "
        "ON o.customer_id = c.customer_id JOIN order_items i ON i.order_id = o.order_id "
        "JOIN shipments s ON s.shipment_id = i.shipment_id "
        "GROUP BY c.customer_id, c.email_address ORDER BY count(*) DESC, c.customer_id "
        "LIMIT 1")[0]
    return int(cid), str(email)


def test_co_access_exports_exactly_the_customers_orders_lines_and_shipments(
        oracle_co: PublicDb) -> None:
    check = oracle_co.connect()
    try:
        cid, email = _co_customer(check)
        expected = _co_rows(check, cid)
        assert {"orders", "shipments", "order_items"} <= set(expected)
        outcome = _run(oracle_co, _request(oracle_co, "access", f"email={email}"))
        assert outcome.status == "completed"
        exported = {t.lower(): keys_of(check, t, rows)
                    for t, rows in exported_tables(outcome).items()}
        assert exported == expected
    finally:
        check.close()


def test_co_erasure_removes_the_customers_rows_and_changes_no_other_row(
        oracle_co: PublicDb) -> None:
    check = oracle_co.connect()
    try:
        cid, email = _co_customer(check)
        own = _co_rows(check, cid)
        before = row_hashes(check)
        outcome = _run(oracle_co, _request(oracle_co, "erasure", f"email={email}"))
        assert outcome.status == "completed", outcome.remaining
        assert _co_rows(check, cid) == {}
        assert_only_removed(before, row_hashes(check), own)
    finally:
        check.close()


def test_co_a_line_shipped_in_another_customers_shipment_stops_the_erasure(
        oracle_co: PublicDb) -> None:
    """One line of the subject's order moved into another customer's shipment (an
    edit of the public data): that line is both people's, so nothing is erased."""
    check = oracle_co.connect()
    try:
        cid, email = _co_customer(check)
        order_id, line = check.query(
            "SELECT i.order_id, min(i.line_item_id) FROM order_items i JOIN orders o "
            "ON o.order_id = i.order_id WHERE o.customer_id = ? GROUP BY i.order_id "
            "ORDER BY i.order_id LIMIT 1", (cid,))[0]
        other = check.query("SELECT min(shipment_id) FROM shipments WHERE customer_id <> ?",
                            (cid,))[0][0]
        check.execute(f"UPDATE order_items SET shipment_id = {int(other)} WHERE order_id = "
                      f"{int(order_id)} AND line_item_id = {int(line)}")
        before = row_hashes(check)
        rid = _request(oracle_co, "erasure", f"email={email}")
        with pytest.raises(GovernanceError, match=re.compile("order_items", re.I)):
            _run(oracle_co, rid)
        assert RequestBook(oracle_co.store).get(rid).state is RequestState.VERIFIED
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_co_a_hold_on_orders_keeps_the_shipments_their_lines_were_sent_in(
        oracle_co: PublicDb) -> None:
    """Found by a helper: with orders under a legal hold, the plan kept the customer's
    orders and their lines but deleted the shipments those lines point at; every run then
    stopped, blaming a change made after the plan that never happened. Kept lines keep
    their shipments; the run completes, deleting only the customer's shipments no line
    points at (SQL written here), and the customer row the held orders point at stays."""
    from governance.dsar import LegalHolds

    check = oracle_co.connect()
    try:
        cid, email = _co_customer(check)
        LegalHolds(oracle_co.store).place_on_table("co.orders", "tax audit 2026", "dpo")
        free = set(check.query(
            "SELECT s.shipment_id FROM shipments s WHERE s.customer_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM order_items i WHERE i.shipment_id = s.shipment_id)", (cid,)))
        before = row_hashes(check)
        outcome = _run(oracle_co, _request(oracle_co, "erasure", f"email={email}"))
        assert outcome.status == "completed", outcome.remaining
        assert_only_removed(before, row_hashes(check), {"shipments": free} if free else {})
    finally:
        check.close()


# -- HR ----------------------------------------------------------------------------------

def _hr_manager(check: Db) -> tuple[int, str]:
    """An employee who manages a department and other employees and has job history, and
    the identity a request names them by: their employee id (HR's ``email`` holds the
    address's local part only, ``SKING``)."""
    eid = check.query(
        "SELECT e.employee_id FROM employees e WHERE EXISTS (SELECT 1 FROM "
        "departments d WHERE d.manager_id = e.employee_id) AND EXISTS (SELECT 1 FROM "
        "employees r WHERE r.manager_id = e.employee_id) AND EXISTS (SELECT 1 FROM "
        "job_history j WHERE j.employee_id = e.employee_id) ORDER BY e.employee_id "
        "LIMIT 1")[0][0]
    return int(eid), f"user_id={int(eid)}"


def test_hr_erasing_a_manager_with_the_fk_only_inventory_changes_nothing(
        oracle_hr: PublicDb) -> None:
    """Other employees point at the manager, and job history through a column named for a
    role: with nothing declared, the erasure stops before any change, naming both."""
    check = oracle_hr.connect()
    try:
        _, identity = _hr_manager(check)
        before = row_hashes(check)
        rid = _request(oracle_hr, "erasure", identity)
        with pytest.raises(GovernanceError, match=r"needs a decision, nothing was changed.*"
                           r"job_history\.employee_id.*employees\.manager_id"):
            _run(oracle_hr, rid)
        assert RequestBook(oracle_hr.store).get(rid).state is RequestState.VERIFIED
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_hr_erasing_a_manager_declared_detach_clears_only_the_pointers_to_them(
        oracle_hr: PublicDb) -> None:
    """Declared: manager pointers are references cleared on erasure, job history is the
    employee's own. Their row and job history go; the employees and departments they
    managed lose only the pointer; every other cell of every other row is unchanged."""
    check = oracle_hr.connect()
    try:
        eid, identity = _hr_manager(check)
        reports = set(check.query("SELECT employee_id FROM employees WHERE manager_id = ?",
                                  (eid,)))
        depts = set(check.query("SELECT department_id FROM departments WHERE manager_id = ?",
                                (eid,)))
        history = set(check.query("SELECT employee_id, start_date FROM job_history WHERE "
                                  "employee_id = ?", (eid,)))
        before = row_hashes(check)
        cols = {t: check.rows(t) for t in ("employees", "departments")}
        outcome = _run(oracle_hr, _request(oracle_hr, "erasure", identity, declared=True),
                       declared=True)
        assert outcome.status == "completed", outcome.remaining
        after = row_hashes(check)
        diff = differences(before, after)
        assert set(diff) == {"employees", "departments", "job_history"}
        assert check.query("SELECT count(*) FROM employees WHERE employee_id = ?",
                           (eid,)) == [(0,)]
        assert check.query("SELECT count(*) FROM job_history WHERE employee_id = ?",
                           (eid,)) == [(0,)]
        assert not set(before["job_history"]) - set(after["job_history"]) - history
        assert set(before["job_history"]) - set(after["job_history"]) == history
        # The rows that pointed at them: the same but for the one column, now empty.
        for table, key, changed in (("employees", "employee_id", reports),
                                    ("departments", "department_id", depts)):
            names, old = cols[table]
            _, new = check.rows(table)
            at, m = names.index(key), names.index("manager_id")
            new_by = {r[at]: r for r in new}
            for r in old:
                if r[at] == eid:
                    assert r[at] not in new_by
                elif (r[at],) in changed:
                    assert new_by[r[at]][m] is None
                    assert new_by[r[at]][:m] + new_by[r[at]][m + 1:] == r[:m] + r[m + 1:]
                else:
                    assert new_by[r[at]] == r
    finally:
        check.close()


# -- CO as Parquet files (no primary keys: rows are matched through their references) -----

def _row_digest(row: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def _parquet_rows(folder: Any) -> dict[str, list[str]]:
    """Each file's rows as sorted per-row SHA-256 digests, read with pyarrow."""
    import pyarrow.parquet as pq

    return {p.stem: sorted(_row_digest(r) for r in pq.read_table(p).to_pylist())
            for p in sorted(folder.glob("*.parquet"))}


def _co_files(db: PublicDb, folder: Any) -> tuple[Any, dict[str, Any], int, str,
                                                dict[str, list[str]]]:
    """CO's tables written as Parquet files (from the SQLite copy, with pyarrow), the
    FK-only inventory of them (files have no foreign keys: the references come from the
    SQLite catalogue), the customer with the most order lines, their e-mail, and their own
    rows as per-row digests (SQL written here)."""
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq
    from public_data.inventories import inventory

    data = folder / "files"
    data.mkdir()
    src = sqlite3.connect(db.target)
    check = db.connect()
    try:
        cid, email = _co_customer(check)
        own: dict[str, list[str]] = {}
        for table in ("customers", "orders", "shipments", "order_items", "stores",
                      "products", "inventory"):
            cur = src.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            pq.write_table(pa.Table.from_pylist(rows), data / f"{table}.parquet")
        own_sql = {
            "customers": "SELECT * FROM customers WHERE customer_id = ?",
            "orders": "SELECT * FROM orders WHERE customer_id = ?",
            "shipments": "SELECT * FROM shipments WHERE customer_id = ?",
            "order_items": "SELECT i.* FROM order_items i JOIN orders o ON o.order_id = "
                           "i.order_id WHERE o.customer_id = ?",
        }
        for table, text in own_sql.items():
            cur = src.execute(text, (cid,))
            names = [d[0] for d in cur.description]
            own[table] = sorted(_row_digest(dict(zip(names, r, strict=True)))
                                for r in cur.fetchall())
        inv = inventory(check, "co", {"name": "co", "kind": "parquet",
                                      "connection": {"path": str(data)}}, declared=False)
    finally:
        src.close()
        check.close()
    return data, inv, cid, email, own


@pytest.mark.parametrize("oracle_co", ["sqlite"], indirect=True)
def test_co_as_parquet_files_erasure_removes_exactly_the_customers_rows(
        oracle_co: PublicDb, tmp_path: Any) -> None:
    """Files have no primary key: an order line, with an owner column to its order and one
    to its shipment, cannot be picked exactly until the inventory says which owns it (the
    erasure stops, nothing changed); declared, the erasure removes exactly the customer's
    rows (the order's lines)."""
    import yaml

    data, inv, _, email, own = _co_files(oracle_co, tmp_path)
    path = tmp_path / "files.yaml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    before = _parquet_rows(data)
    book = RequestBook(oracle_co.store)
    rid = book.create("erasure", [f"email={email}"], "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked")
    approve_plan(oracle_co.store, rid, path)
    with pytest.raises(GovernanceError, match=r"nothing was changed: co\.order_items: has no "
                       r"primary key, subject key or single owner column"):
        run_request(load_inventory(path), oracle_co.store, rid, "dpo",
                    confirm=lambda steps: True)
    assert _parquet_rows(data) == before
    lines = next(t for t in inv["sources"][0]["tables"] if t["name"] == "order_items")
    for ref in lines["references"]:
        ref["kind"] = "owner" if ref["column"] == "order_id" else "reference"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    outcome = run_request(load_inventory(path), oracle_co.store, rid, "dpo",
                          confirm=lambda steps: True)
    assert outcome.status == "completed", outcome.remaining
    after = _parquet_rows(data)
    for table, rows in before.items():
        gone = list(rows)
        for d in after[table]:
            gone.remove(d)      # every row left was there before, unchanged
        assert sorted(gone) == own.get(table, []), table


@pytest.mark.parametrize("oracle_co", ["sqlite"], indirect=True)
def test_co_a_file_the_inventory_omits_with_the_customers_id_stops_the_request(
        oracle_co: PublicDb, tmp_path: Any) -> None:
    """The inventory leaves out the shipments file (files have no foreign keys): its
    customer_id column names the customers' key. An access stops rather than answer
    without the customer's shipments (and an erasure without erasing them); declared,
    the access exports them."""
    import yaml

    data, inv, cid, email, own = _co_files(oracle_co, tmp_path)
    tables = inv["sources"][0]["tables"]
    declared = next(t for t in tables if t["name"] == "shipments")
    for t in tables:      # the lines' owner is their order; no reference to shipments
        if t["name"] == "order_items":
            t["references"] = [r for r in t["references"] if r["column"] != "shipment_id"]
    inv["sources"][0]["tables"] = [t for t in tables if t["name"] != "shipments"]
    path = tmp_path / "files.yaml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    before = _parquet_rows(data)
    book = RequestBook(oracle_co.store)
    for rtype in ("access", "erasure"):
        rid = book.create(rtype, [f"email={email}"], "EU", "dpo").request_id
        book.verify(rid, "dpo", "identity checked")
        if rtype == "erasure":
            approve_plan(oracle_co.store, rid, path)
        with pytest.raises(GovernanceError, match=(
                rf"co\.shipments: {len(own['shipments'])} row\(s\) whose customer_id equals "
                r"the customer_id of the subject's co\.customers row; the table is not in the "
                r"inventory")):
            run_request(load_inventory(path), oracle_co.store, rid, "dpo",
                        confirm=lambda steps: True)
        assert _parquet_rows(data) == before
    inv["sources"][0]["tables"].append(declared)
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    rid = book.create("access", [f"email={email}"], "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked")
    outcome = run_request(load_inventory(path), oracle_co.store, rid, "dpo",
                          confirm=lambda steps: True)
    assert outcome.status == "completed"
    shipped = exported_tables(outcome)["shipments"]
    assert sorted(_row_digest(r) for r in shipped) == own["shipments"]
    assert all(r["customer_id"] == cid for r in shipped)


# -- CO and HR in one database: one e-mail on a customer and on an employee ----------------

def _co_and_hr(tmp_path: Any) -> tuple[Any, Any, Any]:
    """CO and HR loaded into one SQLite file (their table names do not meet), an inventory
    a DPO would write for it, and an audit store."""
    import yaml
    from public_data import sample_schemas

    from governance.audit_store import AuditStore

    db = tmp_path / "shop.db"
    sample_schemas.load_sqlite(db, "co")
    sample_schemas.load_sqlite(db, "hr")
    ref = {"kind": "reference", "on_erase": "detach"}
    tables = [
        {"name": "customers", "subject_key": "customer_id", "columns": {
            "email_address": {"category": "contact.email"},
            "full_name": {"category": "identity.name"}}},
        {"name": "employees", "subject_key": "employee_id", "columns": {
            "email": {"category": "contact.email"}, "first_name": {"category": "identity.name"},
            "last_name": {"category": "identity.name"},
            "phone_number": {"category": "contact.phone"}},
         "references": [{"column": "manager_id", "to": "employees.employee_id", **ref}]},
        {"name": "departments", "references": [
            {"column": "manager_id", "to": "employees.employee_id", **ref}]},
        {"name": "job_history", "references": [
            {"column": "employee_id", "to": "employees.employee_id", "kind": "owner"}]},
        {"name": "order_items", "references": [
            {"column": "shipment_id", "to": "shipments.shipment_id", "kind": "reference"}]},
        {"name": "orders"}, {"name": "shipments"},
    ]
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"version": 1, "organization": "oracle samples", "sources": [
        {"name": "shop", "kind": "sqlite", "connection": {"path": "shop.db"},
         "owner": "dpo@example.org", "jurisdictions": ["EU"], "tables": tables}]},
        sort_keys=False))
    return db, inv, AuditStore(tmp_path / "audit.duckdb", create=True)


def test_an_email_a_customer_and_another_named_employee_hold_stops_access_and_erasure(
        tmp_path: Any) -> None:
    """Found by a helper: with employee 145 (John Singh) given customer 3's e-mail (Gary
    Jenkins), an erasure by that e-mail deleted the employee, detached his six reports and
    his department, and said completed; an access exported his row (salary included) to
    the customer. Two person tables whose rows name different people: nothing is taken."""
    db, inv, store = _co_and_hr(tmp_path)
    check = Db("sqlite", db)
    try:
        email, name = check.query("SELECT email_address, full_name FROM customers WHERE "
                                  "customer_id = 3")[0]
        first, last = check.query("SELECT first_name, last_name FROM employees WHERE "
                                  "employee_id = 145")[0]
        assert set(str(name).split()) != {first, last}
        check.execute(f"UPDATE employees SET email = '{email}' WHERE employee_id = 145")
        before = row_hashes(check)
        book = RequestBook(store)
        for rtype in ("access", "erasure"):
            rid = book.create(rtype, [f"email={email}"], "EU", "dpo").request_id
            book.verify(rid, "dpo", "identity checked")
            with pytest.raises(GovernanceError, match=r"matches person rows of shop\.customers "
                               r"and shop\.employees whose names, dates of birth or ID "
                               r"numbers differ"):
                if rtype == "erasure":
                    approve_plan(store, rid, inv)
                run_request(load_inventory(inv), store, rid, "dpo", confirm=lambda s: True)
            assert differences(before, row_hashes(check)) == {}
            assert book.get(rid).state is RequestState.VERIFIED
    finally:
        check.close()


def test_an_email_a_customer_and_the_same_named_employee_hold_is_one_person(
        tmp_path: Any) -> None:
    """A customer who is also an employee (the same name on both rows): the access
    returns both person rows and what each owns."""
    db, inv, store = _co_and_hr(tmp_path)
    check = Db("sqlite", db)
    try:
        email, name = check.query("SELECT email_address, full_name FROM customers WHERE "
                                  "customer_id = 3")[0]
        first, last = str(name).split()
        check.execute(f"UPDATE employees SET email = '{email}', first_name = '{first}', "
                      f"last_name = '{last}' WHERE employee_id = 145")
        book = RequestBook(store)
        rid = book.create("access", [f"email={email}"], "EU", "dpo").request_id
        book.verify(rid, "dpo", "identity checked")
        outcome = run_request(load_inventory(inv), store, rid, "dpo", confirm=lambda s: True)
        assert outcome.status == "completed"
        people = exported_tables(outcome)
        assert [r["customer_id"] for r in people["customers"]] == [3]
        assert [r["employee_id"] for r in people["employees"]] == [145]
    finally:
        check.close()


def test_hr_a_departments_manager_pointer_makes_no_department_an_employees_detail(
        oracle_hr: PublicDb) -> None:
    """Found by a helper: the scan classifies ``departments.manager_id`` as account ids,
    which made departments "hold personal data", so ``employees.department_id`` was
    inferred a detail: erasing employee 200 (the only member and the manager of department
    10) planned the department's deletion, dropped its declared detach, and every run
    stopped, blaming a change made after the plan. A table holding only account ids holds
    no one's detail: the erasure completes, the department stays, its manager cleared."""
    from governance.scan import run_scan

    check = oracle_hr.connect()
    try:
        eid = 200
        dept = check.query("SELECT department_id FROM departments WHERE manager_id = ?",
                           (eid,))
        assert dept and check.query("SELECT count(*) FROM employees WHERE department_id = ?",
                                    (dept[0][0],)) == [(1,)]
        # As the helper's DPO wrote it: the manager pointers and job history declared,
        # every other reference left to inference (employees.department_id among them).
        import yaml

        inv = yaml.safe_load(oracle_hr.fk_inventory.read_text())
        for t in inv["sources"][0]["tables"]:
            for ref in t.get("references", []):
                if ref["column"] == "manager_id":
                    ref.update(kind="reference", on_erase="detach")
                elif (t["name"], ref["column"]) == ("job_history", "employee_id"):
                    ref["kind"] = "owner"
        oracle_hr.declared_inventory.write_text(yaml.safe_dump(inv, sort_keys=False))
        run_scan(load_inventory(oracle_hr.declared_inventory), oracle_hr.store)
        cats = oracle_hr.store.query(
            "SELECT detected_category AS c FROM column_findings WHERE table_name = "
            "'departments' AND column_name = 'manager_id'")
        assert {r["c"] for r in cats} == {"identity.user_id"}
        history = set(check.query("SELECT employee_id, start_date FROM job_history WHERE "
                                  "employee_id = ?", (eid,)))
        before = row_hashes(check)
        names, rows = check.rows("departments")
        outcome = _run(oracle_hr, _request(oracle_hr, "erasure", f"user_id={eid}",
                                           declared=True), declared=True)
        assert outcome.status == "completed", outcome.remaining
        after = row_hashes(check)
        assert set(differences(before, after)) == {"employees", "departments", "job_history"}
        assert set(before["job_history"]) - set(after["job_history"]) == history
        assert set(before["employees"]) - set(after["employees"]) == {(eid,)}
        _, now = check.rows("departments")
        m, k = names.index("manager_id"), names.index("department_id")
        old = {r[k]: r[:m] + (None if r[m] == eid else r[m],) + r[m + 1:] for r in rows}
        assert {r[k]: r for r in now} == old
    finally:
        check.close()


@pytest.mark.parametrize("given", ["+1 515 555 0101", "+15155550101", "+1-515-555-0101"])
def test_hr_a_phone_given_in_international_form_finds_the_employee_stored_with_dots(
        oracle_hr: PublicDb, given: str) -> None:
    """Found by a helper: HR stores staff phones as ``1.515.555.0101`` (the country code
    without its "+"); a request by the same number written internationally found nothing
    and completed with an empty export."""
    check = oracle_hr.connect()
    try:
        (eid,), = check.query("SELECT employee_id FROM employees WHERE phone_number = ?",
                              ("1.515.555.0101",))
        history = set(check.query("SELECT employee_id, start_date FROM job_history WHERE "
                                  "employee_id = ?", (eid,)))
        outcome = _run(oracle_hr, _request(oracle_hr, "access", f"phone={given}"),
                       declared=True)
        assert outcome.status == "completed"
        got = exported_tables(outcome)
        assert [r["employee_id"] for r in got["employees"]] == [eid]
        assert {(r["employee_id"], str(r["start_date"])[:10]) for r in got.get("job_history", [])} \
            == {(e, str(d)[:10]) for e, d in history}
    finally:
        check.close()


def test_a_surname_alone_on_another_table_is_not_taken_for_the_subject(
        tmp_path: Any) -> None:
    """Found by a helper: employee 145 recorded only as "Jenkins", with customer 3's
    (Gary Jenkins) e-mail, was taken for him ({jenkins} within {gary, jenkins}) and erased
    with him, his reports and department detached. One word is too little: it stops."""
    db, inv, store = _co_and_hr(tmp_path)
    check = Db("sqlite", db)
    try:
        email = check.query("SELECT email_address FROM customers WHERE customer_id = 3")[0][0]
        check.execute(f"UPDATE employees SET email = '{email}', first_name = NULL, "
                      "last_name = 'Jenkins' WHERE employee_id = 145")
        before = row_hashes(check)
        book = RequestBook(store)
        rid = book.create("erasure", [f"email={email}"], "EU", "dpo").request_id
        book.verify(rid, "dpo", "identity checked")
        with pytest.raises(GovernanceError, match="two people hold it"):
            approve_plan(store, rid, inv)
            run_request(load_inventory(inv), store, rid, "dpo", confirm=lambda s: True)
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


@pytest.mark.parametrize("oracle_hr", [pytest.param("pg", marks=pytest.mark.postgres)],
                         indirect=True)
def test_hr_a_correction_longer_than_its_column_is_refused_at_planning(
        oracle_hr: PublicDb) -> None:
    """Found by a helper: a rectification whose new e-mail did not fit HR's email
    varchar(25) was approved, then half applied across two sources, its error naming only
    the source rolled back. The plan names the column and its width; nothing changes."""
    from governance.dsar import plan_request

    check = oracle_hr.connect()
    try:
        book = RequestBook(oracle_hr.store)
        new = "neena.yang.new-address@example.com"
        assert len(new) > 25
        rid = book.create("rectify", ["user_id=101"], "EU", "dpo", {"email": new}).request_id
        book.verify(rid, "dpo", "identity checked")
        before = row_hashes(check)
        resolution, _ = plan_request(load_inventory(oracle_hr.declared_inventory),
                                     oracle_hr.store, rid)
        assert any("hr.employees.email holds 25 characters and the new value has "
                   f"{len(new)}" in b for b in resolution.blockers), resolution.blockers
        with pytest.raises(GovernanceError, match="holds 25 characters"):
            approve_plan(oracle_hr.store, rid, oracle_hr.declared_inventory)
            _run(oracle_hr, rid, declared=True)
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_co_on_duckdb_a_refused_correction_says_why_without_the_key(tmp_path: Any) -> None:
    """Found by a helper: on DuckDB with CO's constraints (customers' e-mail UNIQUE, orders
    pointing at customers), correcting a customer's e-mail failed with DuckDB's raw error,
    which quotes the customer's key. The refusal is one line with the value masked and
    says what to do; nothing changes."""
    import duckdb
    import yaml
    from public_data import sample_schemas

    from governance.audit_store import AuditStore

    db = tmp_path / "co.duckdb"
    con = duckdb.connect(str(db))
    for stmt in sample_schemas.ddl("co", "sqlite"):
        con.execute(stmt)
    by_table: dict[str, list[dict[str, Any]]] = {}
    for table, row in sample_schemas.rows("co"):
        by_table.setdefault(table, []).append(row)
    for table in sample_schemas.CO_TABLES:
        cols = list(by_table[table][0])
        con.executemany(f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(cols))})',
                        [[r[c] for c in cols] for r in by_table[table]])
    email = con.execute("SELECT email_address FROM customers WHERE customer_id = 3"
                        ).fetchone()[0]
    con.close()
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump({"version": 1, "organization": "co", "sources": [{
        "name": "co", "kind": "duckdb", "connection": {"path": "co.duckdb"},
        "owner": "dpo@example.org", "jurisdictions": ["EU"], "tables": [
            {"name": "customers", "subject_key": "customer_id",
             "columns": {"email_address": {"category": "contact.email"}}},
            *({"name": t} for t in sample_schemas.CO_TABLES if t != "customers")]}]},
        sort_keys=False))
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    book = RequestBook(store)
    rid = book.create("rectify", [f"email={email}"], "EU", "dpo",
                      {"email": "gary.new@example.com"}).request_id
    book.verify(rid, "dpo", "identity checked")
    approve_plan(store, rid, inv)
    with pytest.raises(GovernanceError) as e:
        run_request(load_inventory(inv), store, rid, "dpo", confirm=lambda s: True)
    said = str(e.value)
    assert "\n" not in said and "drop that foreign key" in said and "customer_id: 3" not in said
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT email_address FROM customers WHERE customer_id = 3"
                       ).fetchone()[0] == email
    con.close()
