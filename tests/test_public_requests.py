"""Data-subject requests are exact on public sample databases nobody on this project wrote
(Chinook, TPC-DS), on SQLite and PostgreSQL (issue 11).

Every expectation comes from SQL written in ``public_data/oracle.py`` against the schema
and from per-row hashes of every table, never from govkit. The ownership rules are those of
notes/OWNERSHIP.md.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from public_data.fixtures import PublicDb
from public_data.oracle import (
    Db,
    assert_only_removed,
    chinook_customer,
    chinook_employee_with_customers,
    detail_rows,
    differences,
    keys_of,
    row_hashes,
    subject_rows,
    tpcds_customer_sharing_address,
    tpcds_customer_shipping_to_another,
    tpcds_customer_whose_sale_another_returned,
)

from governance.dsar import (
    LegalHolds,
    RequestBook,
    RequestState,
    parse_identity,
    plan_request,
    run_request,
)
from governance.dsar.runner import replan_request
from governance.errors import GovernanceError
from governance.inventory import load_inventory
from governance.sources.postgres import PostgresConnector
from tests.request_worker import approve_plan, exported_tables


def _request(db: PublicDb, rtype: str, *identities: str, declared: bool = False) -> str:
    book = RequestBook(db.store)
    rid = book.create(rtype, list(identities), "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked on a video call")
    if rtype != "access":  # runs that change data need an approved plan
        approve_plan(db.store, rid, db.declared_inventory if declared else db.fk_inventory)
    return rid


def _run(db: PublicDb, rid: str, declared: bool = False) -> Any:
    inv = load_inventory(db.declared_inventory if declared else db.fk_inventory)
    return run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)


def _by_table(check: Db, source: str, places: dict[tuple[str, str], list[dict]]
              ) -> dict[str, set]:
    out: dict[str, set] = {}
    for (src, table), rows in places.items():
        assert src == source
        if rows:
            out[table.lower()] = keys_of(check, table, rows)
    return out


def _hashes(db: PublicDb) -> dict:
    check = db.connect()
    try:
        return row_hashes(check)
    finally:
        check.close()


def _assert_refused_untouched(db: PublicDb, rid: str, before: dict, reference: str,
                              declared: bool = False) -> None:
    """The run stops naming ``reference``; nothing changed, nothing journaled."""
    with pytest.raises(GovernanceError, match=re.compile(reference, re.I)):
        _run(db, rid, declared)
    assert RequestBook(db.store).get(rid).state is RequestState.VERIFIED
    assert db.store.query("SELECT count(*) AS n FROM dsar_steps WHERE request_id = ?",
                          [rid])[0]["n"] == 0
    assert differences(before, _hashes(db)) == {}


# -- a) access -------------------------------------------------------------------------

def test_access_by_email_returns_exactly_the_customers_own_rows(chinook: PublicDb) -> None:
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        expected = subject_rows(check, "chinook", cid)
        rid = _request(chinook, "access", f"email={email}")
        resolution, steps = plan_request(load_inventory(chinook.fk_inventory), chinook.store,
                                         rid)
        assert steps == []
        # Exported: the package's rows, table by table, by primary key.
        outcome = _run(chinook, rid)
        assert outcome.status == "completed"
        exported = {t.lower(): keys_of(check, t, rows)
                    for t, rows in exported_tables(outcome).items()}
        assert exported == expected, "the export is not exactly the customer's own rows"
        # The resolution says the same (OWNERSHIP.md: owned rows, detail rows).
        assert _by_table(check, chinook.source, resolution.owned) == expected
        assert _by_table(check, chinook.source, resolution.detail) == {}
    finally:
        check.close()


# -- b) erasure of a customer ----------------------------------------------------------

def test_erasure_of_a_customer_changes_no_one_elses_row(chinook: PublicDb) -> None:
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        own = subject_rows(check, "chinook", cid)
        before = row_hashes(check)
        outcome = _run(chinook, _request(chinook, "erasure", f"email={email}"))
        assert outcome.status == "completed", outcome.remaining
        assert subject_rows(check, "chinook", cid) == {}
        assert_only_removed(before, row_hashes(check), own)
    finally:
        check.close()


# -- c) erasure of an employee who is the support rep of customers ---------------------

def test_erasing_a_support_rep_with_the_fk_only_inventory_stops_before_any_change(
        chinook: PublicDb) -> None:
    check = chinook.connect()
    try:
        eid, email = chinook_employee_with_customers(check)
        assert check.query("SELECT count(*) FROM customers WHERE supportrepid = ?",
                           (eid,))[0][0] > 0
        before = row_hashes(check)
    finally:
        check.close()
    rid = _request(chinook, "erasure", f"email={email}")
    _assert_refused_untouched(chinook, rid, before, r"supportrepid")


def test_erasing_a_support_rep_with_on_erase_detach_deletes_only_the_employee(
        chinook: PublicDb) -> None:
    check = chinook.connect()
    try:
        eid, email = chinook_employee_with_customers(check)
        served = {r[0] for r in check.query(
            "SELECT customerid FROM customers WHERE supportrepid = ?", (eid,))}
        reports = {r[0] for r in check.query(
            "SELECT employeeid FROM employees WHERE reportsto = ?", (eid,))}
        cols = {t: check.rows(t)[0] for t in ("customers", "employees")}
        rows_before = {t: {r[0]: r for r in check.rows(t)[1]} for t in cols}
        before = row_hashes(check)
        outcome = _run(chinook, _request(chinook, "erasure", f"email={email}", declared=True),
                       declared=True)
        assert outcome.status == "completed", outcome.remaining
        diff = differences(before, row_hashes(check))
        assert diff.get("employees", {}).get("removed") == {(eid,)}
        assert diff.get("customers", {}).get("changed", set()) == {(c,) for c in served}
        assert diff.get("employees", {}).get("changed", set()) == {(e,) for e in reports}
        assert set(diff) <= {"customers", "employees"}
        assert all(not d["added"] for d in diff.values())
        # Column by column: only the pointer to the erased employee became NULL.
        for table, pointer, ids in (("customers", "supportrepid", served),
                                    ("employees", "reportsto", reports)):
            now = {r[0]: r for r in check.rows(table)[1]}
            for row_id in ids:
                for n, col in enumerate(cols[table]):
                    want = None if col.lower() == pointer else rows_before[table][row_id][n]
                    assert now[row_id][n] == want, (table, row_id, col)
    finally:
        check.close()


# -- d) TPC-DS: shared address, web sale shipped to someone else -----------------------

@pytest.mark.parametrize("with_returns", [False, True])
def test_tpcds_erasure_keeps_a_shared_address_and_deletes_the_customers_sales(
        tpcds: PublicDb, with_returns: bool) -> None:
    """``with_returns``: the customer returned some of their own sales; those returns point
    at the sales through the composite key and go with them (no refusal)."""
    check = tpcds.connect()
    try:
        cid, email = tpcds_customer_sharing_address(check, with_returns)
        own = subject_rows(check, "tpcds", cid)
        assert own.get("store_sales")
        assert bool(own.get("store_returns")) == with_returns
        (addr,) = detail_rows(check, "tpcds", cid)["customer_address"]
        before = row_hashes(check)
        outcome = _run(tpcds, _request(tpcds, "erasure", f"email={email.strip()}"))
        assert outcome.status == "completed", outcome.remaining
        assert subject_rows(check, "tpcds", cid) == {}
        after = row_hashes(check)
        assert after["customer_address"][addr] == before["customer_address"][addr]
        assert_only_removed(before, after, own)
    finally:
        check.close()


def test_tpcds_erasure_stops_on_a_web_sale_shipped_to_another_customer(
        tpcds: PublicDb) -> None:
    check = tpcds.connect()
    try:
        cid, email = tpcds_customer_shipping_to_another(check)
        before = row_hashes(check)
    finally:
        check.close()
    rid = _request(tpcds, "erasure", f"email={email.strip()}")
    _assert_refused_untouched(tpcds, rid, before, r"ws_bill_customer_sk|web_sales")


def test_foreign_keys_of_every_width_are_read_from_the_catalogue(tpcds: PublicDb) -> None:
    """Against the DDL's own declaration (public_data/tpcds.py), not govkit's reading:
    single-column keys through foreign_keys(), the others through composite_foreign_keys()
    with their columns in the key's order."""
    from public_data.tpcds import SCHEMA

    from governance.sources.pool import ConnectorPool

    declared = {(t, ",".join(c), target, ",".join(tc))
                for t, (_, fks) in SCHEMA.items() for c, target, tc in fks}
    with ConnectorPool(load_inventory(tpcds.fk_inventory)) as pool:
        conn = pool.get(tpcds.source)
        single = {(k.table, k.column, k.ref_table, k.ref_column) for k in conn.foreign_keys()}
        wide = {(k.table, k.column, k.ref_table, k.ref_column)
                for k in conn.composite_foreign_keys()}
    assert wide == {k for k in declared if "," in k[1]}
    assert {("store_returns", "sr_item_sk,sr_ticket_number", "store_sales",
             "ss_item_sk,ss_ticket_number")} <= wide
    assert single == {k for k in declared if "," not in k[1]}


def _erasure_refused_for_a_returned_sale(db: PublicDb, returner: str, reference: str,
                                         cascade: bool = False) -> None:
    """Erasing a customer whose sale a return points at (through the composite key
    store_returns -> store_sales) stops naming ``reference``; no row of any table changes.
    ``cascade``: the key is first made ON DELETE CASCADE (PostgreSQL)."""
    check = db.connect()
    try:
        if cascade:
            check.conn.execute("ALTER TABLE store_returns DROP CONSTRAINT "
                               "store_returns_sr_item_sk_sr_ticket_number_fkey")
            check.conn.execute("ALTER TABLE store_returns ADD FOREIGN KEY (sr_item_sk, "
                               "sr_ticket_number) REFERENCES store_sales (ss_item_sk, "
                               "ss_ticket_number) ON DELETE CASCADE")
        found = tpcds_customer_whose_sale_another_returned(check, returner)
        assert found is not None, f"the subset has no sale returned by {returner}"
        before = row_hashes(check)
    finally:
        check.close()
    rid = _request(db, "erasure", f"email={found[1].strip()}")
    _assert_refused_untouched(db, rid, before, reference)


def test_inventory_lists_the_keys_requests_do_not_follow(tpcds: PublicDb) -> None:
    """`govkit inventory --json` names TPC-DS's two composite keys (from the DDL's own
    declaration), so a DPO sees before any request what erasure will refuse."""
    import json

    from click.testing import CliRunner
    from public_data.tpcds import SCHEMA

    from governance.cli import main

    result = CliRunner().invoke(main, ["inventory", "-i", str(tpcds.fk_inventory), "--json"])
    listed = json.loads(result.output[result.output.index("{"):])["unfollowed_keys"]
    declared = sorted(f"tpcds.{t} ({', '.join(c)}) -> tpcds.{target} ({', '.join(tc)})"
                      for t, (_, fks) in SCHEMA.items() for c, target, tc in fks if len(c) > 1)
    assert sorted(listed) == declared and len(declared) == 2


def test_access_names_the_returns_pointing_at_the_subjects_sales_it_does_not_export(
        tpcds: PublicDb) -> None:
    """A return naming nobody whose sale is the subject's is reached only through the
    composite key: not exported, and the outcome says how many such rows there are (counted
    here with SQL of its own)."""
    check = tpcds.connect()
    try:
        found = tpcds_customer_whose_sale_another_returned(check, "nobody")
        assert found is not None
        cid, email = found
        (want,) = check.query(
            "SELECT count(*) FROM store_returns r JOIN store_sales s ON s.ss_item_sk = "
            "r.sr_item_sk AND s.ss_ticket_number = r.sr_ticket_number WHERE "
            "s.ss_customer_sk = ? AND (r.sr_customer_sk IS NULL OR r.sr_customer_sk <> ?)",
            (cid, cid))[0]
    finally:
        check.close()
    out = _run(tpcds, _request(tpcds, "access", f"email={email.strip()}"))
    assert out.status == "completed"
    note = out.not_followed["tpcds.store_returns"]
    assert note.startswith(f"{want} row(s) point at") and "not in the export" in note


@pytest.mark.parametrize("returner", ["other", "nobody"])
def test_tpcds_erasure_stops_on_a_return_pointing_at_the_sale_through_a_composite_key(
        tpcds: PublicDb, returner: str) -> None:
    """store_returns (sr_item_sk, sr_ticket_number) -> store_sales is a composite foreign
    key, which ownership does not follow: deleting a sale that a return points at would
    break the return (or cascade to it), so the erasure stops before any change."""
    _erasure_refused_for_a_returned_sale(
        tpcds, returner, r"store_returns.*composite foreign key.*store_sales")


@pytest.mark.postgres
def test_tpcds_erasure_stops_before_a_composite_key_would_cascade(tpcds_pg: PublicDb) -> None:
    """With ON DELETE CASCADE on the composite key, deleting the sale would silently delete
    another customer's return: the plan refuses."""
    _erasure_refused_for_a_returned_sale(
        tpcds_pg, "other", r"store_returns.*composite foreign key.*cascade", cascade=True)


@pytest.mark.parametrize("point", ["request.after_journal", "journal.after_step",
                                   "journal.after_commit", "journal.after_mark"])
def test_tpcds_erasure_with_own_returns_killed_midway_finishes_on_rerun(
        tpcds: PublicDb, point: str) -> None:
    """The customer's returns point at their sales through the composite key (deleted
    first): killed at a step boundary, the rerun completes and removes exactly their rows
    (SQL of its own), nobody else's."""
    from tests.request_worker import run_worker

    check = tpcds.connect()
    try:
        cid, email = tpcds_customer_sharing_address(check, with_returns=True)
        own = subject_rows(check, "tpcds", cid)
        before = row_hashes(check)
        rid = _request(tpcds, "erasure", f"email={email.strip()}")
        code, out, err = run_worker(tpcds.fk_inventory, tpcds.store.path, rid, f"{point}:1")
        assert code == 137, (out, err[-2000:])
        done = _run(tpcds, rid)
        assert done.status == "completed", done.remaining
        assert_only_removed(before, row_hashes(check), own)
    finally:
        check.close()


def test_tpcds_the_same_erasure_run_twice_at_once_completes_once(tpcds: PublicDb) -> None:
    from tests.request_worker import start_worker

    check = tpcds.connect()
    try:
        cid, email = tpcds_customer_sharing_address(check, with_returns=True)
        own = subject_rows(check, "tpcds", cid)
        before = row_hashes(check)
        rid = _request(tpcds, "erasure", f"email={email.strip()}")
        procs = [start_worker(tpcds.fk_inventory, tpcds.store.path, rid, take_over=False)
                 for _ in range(2)]
        outs = [p.communicate(timeout=240) for p in procs]
        statuses = [o.strip().splitlines()[-1] if o.strip() else e[-300:] for o, e in outs]
        assert statuses.count("completed") == 1, statuses
        assert next(s for s in statuses if s != "completed").startswith("refused:"), statuses
        assert_only_removed(before, row_hashes(check), own)
    finally:
        check.close()


# -- e) PostgreSQL: views, a partitioned table, a trigger ------------------------------

@pytest.mark.postgres
def test_pg_views_are_never_changed_and_a_partitioned_table_is_one_table(
        tpcds_pg: PublicDb) -> None:
    check = tpcds_pg.connect()
    try:
        cid, email = tpcds_customer_sharing_address(check, with_returns=True)
        own = subject_rows(check, "tpcds", cid)
        assert own.get("store_returns")
        before = row_hashes(check)
        connector = PostgresConnector("tpcds", tpcds_pg.target)
        try:
            listed = {t.name for t in connector.list_tables()}
        finally:
            connector.close()
        assert {"customer_contacts", "customer_store_spend", "store_returns"} <= listed
        assert not {"store_returns_p1", "store_returns_p2"} & listed
        rid = _request(tpcds_pg, "erasure", f"email={email.strip()}")
        _, steps = plan_request(load_inventory(tpcds_pg.fk_inventory), tpcds_pg.store, rid)
        planned = {s.table for s in steps}
        assert "store_returns" in planned
        assert not planned & {"customer_contacts", "customer_store_spend",
                              "store_returns_p1", "store_returns_p2"}
        outcome = _run(tpcds_pg, rid)  # the last_update trigger is on customer
        assert outcome.status == "completed", outcome.remaining
        assert subject_rows(check, "tpcds", cid) == {}
        assert_only_removed(before, row_hashes(check), own)
    finally:
        check.close()


# -- f) a legal hold on one identity blocks a request by another -----------------------

def test_a_hold_on_the_email_blocks_an_erasure_requested_by_phone(chinook: PublicDb) -> None:
    check = chinook.connect()
    try:
        _, email, phone = chinook_customer(check)
        before = row_hashes(check)
    finally:
        check.close()
    LegalHolds(chinook.store).place_on_subject([parse_identity(f"email={email}")],
                                               "Litigation hold, case 2026-311", "counsel")
    rid = _request(chinook, "erasure", f"phone={phone}")
    with pytest.raises(GovernanceError, match="Litigation hold, case 2026-311"):
        _run(chinook, rid)
    assert differences(before, _hashes(chinook)) == {}


# -- a subject who changed the e-mail the request names --------------------------------



def test_a_replan_that_finds_none_of_the_subjects_rows_stops_and_asks(chinook: PublicDb
                                                                      ) -> None:
    """The customer changes the e-mail the request names between the plan and the run:
    the run stops (their row differs). After ``dsar replan`` the new plan finds nobody; it
    used to end ``completed`` with nothing erased and the customer's rows all kept. Now it
    stops, saying why, with nothing changed; ``nothing_left`` (the rows were removed
    meanwhile) completes it, recorded with who confirmed."""
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        own = subject_rows(check, "chinook", cid)
        rid = _request(chinook, "erasure", f"email={email}")
        inv = load_inventory(chinook.fk_inventory)
        changed = "UPDATE customers SET email = 'renamed@example.net' WHERE customerid = " \
            f"{int(cid)}"

        def renamed(steps: Any) -> bool:
            check.execute(changed)
            return True

        with pytest.raises(GovernanceError, match="not as the plan saw them"):
            run_request(inv, chinook.store, rid, "dpo", confirm=renamed)
        before = row_hashes(check)
        replan_request(chinook.store, rid, "dpo", "the customer changed their e-mail")
        with pytest.raises(GovernanceError, match="finds none of the subject's rows, where "
                           r"the plan a replan dropped had \d+ row"):
            run_request(inv, chinook.store, rid, "dpo", confirm=lambda steps: True)
        assert differences(before, row_hashes(check)) == {}
        assert RequestBook(chinook.store).get(rid).state is not RequestState.COMPLETED
        assert subject_rows(check, "chinook", cid) == own     # all still there
        # Refused again on a second try (nothing was recorded that would let it through).
        with pytest.raises(GovernanceError, match="finds none of the subject's rows"):
            run_request(inv, chinook.store, rid, "dpo", confirm=lambda steps: True)

        # The customer's rows are removed by other means; the DPO confirms nothing is left.
        check.execute("DELETE FROM invoice_items WHERE invoiceid IN (SELECT invoiceid FROM "
                      f"invoices WHERE customerid = {int(cid)})",
                      f"DELETE FROM invoices WHERE customerid = {int(cid)}",
                      f"DELETE FROM customers WHERE customerid = {int(cid)}")
        # --nothing-left alone does not approve a plan without the approved person row.
        with pytest.raises(GovernanceError, match="no longer finds 1 of the 1 person row"):
            run_request(inv, chinook.store, rid, "dpo", confirm=lambda steps: True,
                        nothing_left=True)
        approve_plan(chinook.store, rid, inv)     # the DPO names the plan that finds nobody
        outcome = run_request(inv, chinook.store, rid, "dpo", confirm=lambda steps: True,
                              nothing_left=True)
        assert outcome.status == "completed"
        confirmed = chinook.store.query(
            "SELECT actor FROM audit_log WHERE target = ? AND action = "
            "'dsar.nothing_left_confirmed'", [rid])
        assert [r["actor"] for r in confirmed] == ["dpo"]
    finally:
        check.close()
