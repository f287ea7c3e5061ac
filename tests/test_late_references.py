"""Rows that point at what an erasure deletes, through keys the database declares, on
TPC-DS (SQLite and PostgreSQL; nobody on this project wrote its schema).

- A row changed after the plan was drawn up to point at the subject's customer row (another
  customer's web sale now shipped to them): the run stops before deleting, nothing changes,
  and the replanned request is refused at planning, naming the row's table. With the key
  made ``ON DELETE CASCADE`` on PostgreSQL, the erasure would otherwise have deleted the
  other customer's web sale.
- Rows kept by a legal hold that point at the subject's customer row: the customer row is
  kept with them (deleting it would fail, or cascade into the held rows); every other row of
  the subject is erased.

Expectations come from SQL written here and in ``public_data/oracle.py``, and from per-row
hashes of every table.
"""

from __future__ import annotations

from typing import Any

import pytest
from public_data.fixtures import PublicDb
from public_data.oracle import (
    Db,
    assert_only_removed,
    chinook_customer,
    differences,
    row_hashes,
    subject_rows,
    tpcds_customer_sharing_address,
)

from governance.dsar import RequestBook, run_request
from governance.dsar.plan import PlanError
from governance.dsar.runner import replan_request
from governance.inventory import load_inventory
from governance.sources import ReferencedRows
from tests.request_worker import approve_plan

CASES = [("sqlite", False), pytest.param("pg", False, marks=pytest.mark.postgres),
         pytest.param("pg", True, marks=pytest.mark.postgres)]


def _db(request: pytest.FixtureRequest, backend: str) -> PublicDb:
    db: PublicDb = request.getfixturevalue(f"tpcds_{backend}")
    return db


def _cascade(check: Db, table: str, column: str) -> None:
    """Make the key ``table(column) -> customer`` ON DELETE CASCADE (PostgreSQL)."""
    check.conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_{column}_fkey")
    check.conn.execute(f"ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES "
                       "customer (c_customer_sk) ON DELETE CASCADE")


def _write(check: Db, text: str, params: tuple[Any, ...]) -> None:
    if check.kind == "sqlite":
        check.conn.execute(text, params)
        check.conn.commit()
    else:
        check.conn.execute(text.replace("?", "%s"), params)


def _erasure(db: PublicDb, email: str, confirm: Any) -> tuple[str, Any]:
    book = RequestBook(db.store)
    rid = book.create("erasure", [f"email={email.strip()}"], "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked on a video call")
    inv = load_inventory(db.fk_inventory)
    approve_plan(db.store, rid, inv)
    return rid, lambda: run_request(inv, db.store, rid, "dpo", confirm=confirm)


@pytest.mark.parametrize(("backend", "cascade"), CASES)
def test_a_row_made_to_point_at_the_subject_after_the_plan_stops_the_erasure(
        request: pytest.FixtureRequest, backend: str, cascade: bool) -> None:
    db = _db(request, backend)
    check = db.connect()
    try:
        cid, email = tpcds_customer_sharing_address(check)
        if cascade:
            _cascade(check, "web_sales", "ws_ship_customer_sk")
        ((item, order, payer),) = check.query(
            "SELECT ws_item_sk, ws_order_number, ws_bill_customer_sk FROM web_sales "
            "WHERE ws_bill_customer_sk <> ? AND ws_ship_customer_sk <> ? "
            "ORDER BY ws_item_sk, ws_order_number LIMIT 1", (cid, cid))
        seen: dict[str, Any] = {}

        def late_change(steps: Any) -> bool:
            # Between the plan and the first change: another customer's web sale is now
            # shipped to the subject.
            _write(check, "UPDATE web_sales SET ws_ship_customer_sk = ? WHERE ws_item_sk = ? "
                   "AND ws_order_number = ?", (cid, item, order))
            seen["before"] = row_hashes(check)
            return True

        rid, run = _erasure(db, email, late_change)
        with pytest.raises(ReferencedRows, match=r"1 row\(s\) of tpcds\.web_sales .*after the "
                                                 r"plan.*this step deleted nothing.*every "
                                                 r"change to tpcds in this run was rolled back"):
            run()
        assert differences(seen["before"], row_hashes(check)) == {}
        assert check.query("SELECT ws_bill_customer_sk, ws_ship_customer_sk FROM web_sales "
                           "WHERE ws_item_sk = ? AND ws_order_number = ?",
                           (item, order)) == [(payer, cid)]
        # Replanned, the erasure is refused at planning, naming the web sale's key.
        replan_request(db.store, rid, "dpo", "a web sale changed after the plan")
        with pytest.raises(PlanError, match=r"web_sales"):
            run()
        assert differences(seen["before"], row_hashes(check)) == {}
    finally:
        check.close()


@pytest.mark.postgres
def test_a_row_pointing_at_the_subject_from_a_transaction_still_open_is_waited_for(
        tpcds_pg: PublicDb) -> None:
    """Another session makes a web sale point at the subject's customer row (key ON DELETE
    CASCADE) and commits only once the erasure has reached the customer row: the erasure
    locks the row before it checks, so it waits, sees the web sale and stops; the other
    customer's web sale is intact."""
    import threading

    import psycopg

    check = tpcds_pg.connect()
    other = psycopg.connect(tpcds_pg.target)
    try:
        cid, email = tpcds_customer_sharing_address(check)
        _cascade(check, "web_sales", "ws_ship_customer_sk")
        ((item, order),) = check.query(
            "SELECT ws_item_sk, ws_order_number FROM web_sales WHERE ws_bill_customer_sk <> ? "
            "AND ws_ship_customer_sk <> ? ORDER BY 1, 2 LIMIT 1", (cid, cid))
        before = row_hashes(check)

        def open_transaction(steps: Any) -> bool:
            other.execute("UPDATE web_sales SET ws_ship_customer_sk = %s WHERE ws_item_sk = %s "
                          "AND ws_order_number = %s", (cid, item, order))
            threading.Timer(2.0, other.commit).start()
            return True

        _, run = _erasure(tpcds_pg, email, open_transaction)
        with pytest.raises(ReferencedRows, match=r"tpcds\.web_sales"):
            run()
        diff = differences(before, row_hashes(check))
        assert list(diff) == ["web_sales"] and not diff["web_sales"]["removed"], diff
        assert check.query("SELECT ws_ship_customer_sk FROM web_sales WHERE ws_item_sk = ? "
                           "AND ws_order_number = ?", (item, order)) == [(cid,)]
    finally:
        other.close()
        check.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def test_a_track_changed_on_the_subjects_invoice_line_after_the_plan_is_no_reason_to_stop(
        request: pytest.FixtureRequest, backend: str) -> None:
    """Chinook, the inventory written from foreign keys alone: ``invoice_items.trackid ->
    tracks`` is an owner reference that leads to no person. A line's track corrected
    between the plan and the run changes nobody's ownership: the erasure completes with
    exactly the customer's rows (it stopped: "another person's now")."""
    db: PublicDb = request.getfixturevalue(f"chinook_{backend}")
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        own = subject_rows(check, "chinook", cid)
        (line,) = min(own["invoice_items"])
        seen: dict[str, Any] = {}

        def correct_track(steps: Any) -> bool:
            _write(check, "UPDATE invoice_items SET trackid = CASE WHEN trackid = 1 THEN 2 "
                   "ELSE 1 END WHERE invoicelineid = ?", (line,))
            seen["before"] = row_hashes(check)
            return True

        _, run = _erasure(db, email, correct_track)
        outcome = run()
        assert outcome.status == "completed", outcome.remaining
        assert_only_removed(seen["before"], row_hashes(check), own)
    finally:
        check.close()


@pytest.mark.parametrize("held", ["store_sales", "store_returns"])
@pytest.mark.parametrize(("backend", "cascade"), CASES)
def test_rows_held_by_a_legal_hold_keep_what_they_point_at(
        request: pytest.FixtureRequest, backend: str, cascade: bool, held: str) -> None:
    """A hold on ``store_sales`` keeps the customer row the sales point at (deleting it
    would fail, or cascade into the held sales). A hold on ``store_returns``, whose rows
    point at sales through the composite key ``(sr_item_sk, sr_ticket_number) ->
    store_sales`` (a key ownership does not follow), keeps the returned sales, and the
    customer row with them (the erasure was refused, naming the held returns as rows to
    "erase or change first"). Every other row of the customer's goes."""
    from governance.retention.holds import place_hold

    db = _db(request, backend)
    check = db.connect()
    try:
        cid, email = tpcds_customer_sharing_address(check, with_returns=True)
        if cascade:
            _cascade(check, "store_sales", "ss_customer_sk")
        own = subject_rows(check, "tpcds", cid)
        returned = set(check.query(
            "SELECT DISTINCT s.ss_item_sk, s.ss_ticket_number FROM store_sales s JOIN "
            "store_returns r ON r.sr_item_sk = s.ss_item_sk AND r.sr_ticket_number = "
            "s.ss_ticket_number WHERE s.ss_customer_sk = ?", (cid,)))
        assert returned and own["store_sales"] - returned and own.get("customer")
        place_hold(db.store, reason="Tax audit TA-3", actor="counsel",
                   table=f"tpcds.{held}", inventory=load_inventory(db.fk_inventory))
        before = row_hashes(check)
        _, run = _erasure(db, email, lambda steps: True)
        outcome = run()
        assert outcome.status == "completed", outcome.remaining
        expected = {t: rows for t, rows in own.items() if t not in (held, "customer")}
        if held == "store_returns":
            expected["store_sales"] = own["store_sales"] - returned
        assert_only_removed(before, row_hashes(check), expected)
        assert check.query("SELECT count(*) FROM customer WHERE c_customer_sk = ?",
                           (cid,)) == [(1,)]
        assert any(f"legal hold on {held}" in why for why in outcome.kept.values())
        assert any("Tax audit TA-3" in why for why in outcome.held.values())
    finally:
        check.close()
