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
from governance.dsar.export import open_export
from governance.errors import GovernanceError
from governance.inventory import load_inventory
from tests.request_worker import approve_plan


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
        files = open_export(outcome.export_path, outcome.passphrase)
        exported = {name.split("/")[2].removesuffix(".json").lower():
                    keys_of(check, name.split("/")[2].removesuffix(".json"), rows)
                    for name, rows in files.items() if name.startswith("data/") and rows}
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
