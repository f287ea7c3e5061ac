"""An approval approves a plan: whose rows and which changes (governance.dsar.approval).

On Chinook (public, MIT), on SQLite and PostgreSQL. Between the approval and the run the
data changes the way it does in a live system; every expectation comes from SQL written
here and from per-row hashes of every table (``public_data.oracle``), never from govkit.
Before approvals named a plan, the first case erased the customer who was given the
subject's old e-mail, and the second ended ``completed`` with nothing erased.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from click.testing import CliRunner
from public_data.fixtures import PublicDb
from public_data.oracle import (
    Db,
    assert_only_removed,
    chinook_customer,
    differences,
    row_hashes,
    subject_rows,
)

from governance.cli import main
from governance.dsar import RequestBook, RequestState, run_request
from governance.dsar.approval import approve_request, plan_binding
from governance.dsar.plan import PlanError
from governance.dsar.requests import RequestError
from governance.inventory import load_inventory


def _approved_erasure(db: PublicDb, email: str) -> tuple[str, Any]:
    """An erasure by ``email``, verified and approved as planned now: (id, inventory)."""
    book = RequestBook(db.store)
    rid = book.create("erasure", [f"email={email}"], "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked on a video call")
    inv = load_inventory(db.fk_inventory)
    approve_request(inv, db.store, rid, "dpo-lead", "plan reviewed")
    return rid, inv


def _other_customer(check: Db, cid: int) -> int:
    """Another customer with invoices (SQL written here)."""
    return int(check.query("SELECT min(customerid) FROM customers c WHERE customerid <> ? "
                           "AND EXISTS (SELECT 1 FROM invoices i WHERE i.customerid = "
                           "c.customerid)", (cid,))[0][0])


def _new_invoice(check: Db, cid: int) -> tuple[int, int]:
    """A new invoice of customer ``cid`` with one line (SQL written here): their ids."""
    invoice = int(check.query("SELECT max(invoiceid) + 1 FROM invoices")[0][0])
    line = int(check.query("SELECT max(invoicelineid) + 1 FROM invoice_items")[0][0])
    check.execute("INSERT INTO invoices (invoiceid, customerid, invoicedate, total) VALUES "
                  f"({invoice}, {int(cid)}, '2026-11-30', 0.99)",
                  "INSERT INTO invoice_items (invoicelineid, invoiceid, trackid, unitprice, "
                  f"quantity) VALUES ({line}, {invoice}, 1, 0.99, 1)")
    return invoice, line


def _run(db: PublicDb, rid: str, inv: Any) -> Any:
    return run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)


def _erases_exactly(db: PublicDb, rid: str, inv: Any, check: Db, before: Any,
                    own: dict[str, set[Any]]) -> None:
    """The run completes, and exactly ``own`` is gone since ``before`` (row hashes)."""
    outcome = _run(db, rid, inv)
    assert outcome.status == "completed", outcome.remaining
    assert_only_removed(before, row_hashes(check), own)


def test_an_email_given_to_another_customer_after_approval_stops_the_run(chinook: PublicDb
                                                                          ) -> None:
    """The subject changes their e-mail after the approval and another customer takes the
    old one: the run's plan now finds that customer. It stops before any change and says
    why; every row of both customers is as it was."""
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        other = _other_customer(check, cid)
        rid, inv = _approved_erasure(chinook, email)
        check.execute(f"UPDATE customers SET email = 'moved@example.net' WHERE customerid = "
                      f"{int(cid)}",
                      f"UPDATE customers SET email = '{email}' WHERE customerid = {other}")
        theirs = subject_rows(check, "chinook", other)
        before = row_hashes(check)
        for _ in range(2):    # refused again: nothing recorded lets it through
            with pytest.raises(PlanError, match=r"finds none of the approved person rows, "
                                                r"only others .* cannot move a request"):
                _run(chinook, rid, inv)
            assert differences(before, row_hashes(check)) == {}
        assert subject_rows(check, "chinook", other) == theirs
        assert RequestBook(chinook.store).get(rid).state is not RequestState.COMPLETED
        [refused] = chinook.store.query(
            "SELECT count(*) AS n FROM audit_log WHERE target = ? AND action = "
            "'dsar.plan_refused'", [rid])
        assert refused["n"] == 2
        assert email not in str(chinook.store.query("SELECT details FROM audit_log"))
        # Approving the plan as it is now would move the request to the other customer:
        # refused, nothing recorded (a helper erased them by following the run's advice).
        with pytest.raises(RequestError, match="finds none of the person rows of the plan "
                                               "approved before, only others"):
            approve_request(inv, chinook.store, rid, "dpo-lead", "plan reviewed")
        assert subject_rows(check, "chinook", other) == theirs
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_the_subject_changing_their_email_before_the_first_run_stops_it(chinook: PublicDb
                                                                         ) -> None:
    """The subject changes the e-mail the request names after the approval: the first plan
    finds nobody. It used to end ``completed`` with every row of theirs kept; now it stops.
    Once their rows are really gone, the DPO approves the plan that finds nobody (naming
    it: a stale name is refused) and the request completes."""
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        own = subject_rows(check, "chinook", cid)
        rid, inv = _approved_erasure(chinook, email)
        check.execute("UPDATE customers SET email = 'renamed@example.net' WHERE customerid = "
                      f"{int(cid)}")
        before = row_hashes(check)
        with pytest.raises(PlanError, match=r"no longer finds 1 of the 1 person row\(s\) "
                                            "approved"):
            _run(chinook, rid, inv)
        assert differences(before, row_hashes(check)) == {}
        assert subject_rows(check, "chinook", cid) == own
        assert RequestBook(chinook.store).get(rid).state is not RequestState.COMPLETED

        # Approving again names the plan reviewed; one the data no longer gives is refused.
        nobody = plan_binding(inv, chinook.store, rid)[2]
        assert nobody.people == () and nobody.changes == ()
        check.execute("UPDATE customers SET email = 'back@example.net' WHERE customerid = 1")
        with pytest.raises(RequestError, match=r"is not plan-0+ \(a mistyped name"):
            approve_request(inv, chinook.store, rid, "dpo-lead", "ok", "plan-000000000000")
        # The customer's rows are removed by other means; the DPO approves the empty plan.
        check.execute("DELETE FROM invoice_items WHERE invoiceid IN (SELECT invoiceid FROM "
                      f"invoices WHERE customerid = {int(cid)})",
                      f"DELETE FROM invoices WHERE customerid = {int(cid)}",
                      f"DELETE FROM customers WHERE customerid = {int(cid)}")
        approve_request(inv, chinook.store, rid, "dpo-lead", "rows removed by billing",
                        nobody.digest)
        assert _run(chinook, rid, inv).status == "completed"
        logged = chinook.store.query("SELECT details FROM audit_log WHERE target = ? AND "
                                     "action = 'dsar.approved' ORDER BY seq", [rid])
        assert len(logged) == 2 and nobody.digest in str(logged[1]["details"])
        assert "replaces" in str(logged[1]["details"])
        with pytest.raises(RequestError, match="is completed; nothing to approve"):
            approve_request(inv, chinook.store, rid, "dpo-lead", "again", nobody.digest)
    finally:
        check.close()


def test_a_new_invoice_of_the_subject_needs_no_new_approval(chinook: PublicDb) -> None:
    """The subject buys again between approval and run: more rows in tables the approved
    plan already erases. The run goes on and erases the new invoice and its line too, and
    nothing else."""
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        rid, inv = _approved_erasure(chinook, email)
        new_invoice, new_line = _new_invoice(check, cid)
        own = subject_rows(check, "chinook", cid)
        assert (new_invoice,) in own["invoices"] and (new_line,) in own["invoice_items"]
        before = row_hashes(check)
        outcome = _run(chinook, rid, inv)
        assert outcome.status == "completed", outcome.remaining
        assert subject_rows(check, "chinook", cid) == {}
        assert_only_removed(before, row_hashes(check), own)
    finally:
        check.close()


def test_erasing_a_table_the_approved_plan_did_not_stops_the_run(chinook: PublicDb) -> None:
    """A customer with no invoices at the approval buys before the run: the plan now also
    erases invoices and their lines, which the approver did not see. It stops, naming the
    tables; approved again, it erases exactly the customer's rows."""
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        check.execute("DELETE FROM invoice_items WHERE invoiceid IN (SELECT invoiceid FROM "
                      f"invoices WHERE customerid = {int(cid)})",
                      f"DELETE FROM invoices WHERE customerid = {int(cid)}")
        rid, inv = _approved_erasure(chinook, email)
        _new_invoice(check, cid)
        before = row_hashes(check)
        with pytest.raises(PlanError, match=r"makes changes the approved plan did not \("
                                            r"[^)]*invoice_items"):
            _run(chinook, rid, inv)
        assert differences(before, row_hashes(check)) == {}
        own = subject_rows(check, "chinook", cid)
        approve_request(inv, chinook.store, rid, "dpo-lead", "new purchase reviewed")
        _erases_exactly(chinook, rid, inv, check, before, own)
    finally:
        check.close()


def test_an_approval_recorded_before_approvals_named_a_plan_is_asked_again(
        chinook_sqlite: PublicDb) -> None:
    """An approval with no plan (recorded before migration 10) does not let a run change
    data: it stops and asks for the plan to be approved."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        rid, inv = _approved_erasure(db, email)
        db.store.write(lambda c: c.execute("UPDATE dsar_requests SET approved_plan = NULL "
                                           "WHERE request_id = ?", [rid]))
        before = row_hashes(check)
        with pytest.raises(PlanError, match="the approval names no plan"):
            _run(db, rid, inv)
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_the_cli_names_the_plan_and_approves_only_that_one(chinook_sqlite: PublicDb) -> None:
    """`govkit dsar plan` names the plan; `govkit dsar approve --plan` approves it, and
    refuses (one line, exit 2, nothing recorded) once the data gives another plan."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        book = RequestBook(db.store)
        rid = book.create("erasure", [f"email={email}"], "EU", "dpo").request_id
        book.verify(rid, "dpo", "identity checked")
        store = str(db.store.path)
        cli = CliRunner()
        base = ["--inventory", str(db.fk_inventory), "--store", store]
        shown = cli.invoke(main, ["dsar", "plan", rid, *base])
        assert shown.exit_code == 0, shown.output
        digest = shown.output.split("--plan ")[1].split()[0]
        assert digest.startswith("plan-") and email not in shown.output
        check.execute(f"UPDATE customers SET email = 'x@example.net' WHERE customerid = "
                      f"{int(cid)}")
        stale = cli.invoke(main, ["dsar", "approve", rid, *base, "--plan", digest,
                                  "--note", "ok"])
        assert stale.exit_code == 2 and f"is not {digest} (a mistyped name" in stale.output
        assert "plan-" not in stale.output.replace(digest, "")   # no name to copy
        assert len(stale.output.strip().splitlines()) == 1
        assert RequestBook(db.store).get(rid).approved_at is None
        check.execute(f"UPDATE customers SET email = '{email}' WHERE customerid = {int(cid)}")
        ok = cli.invoke(main, ["dsar", "approve", rid, *base, "--plan", digest,
                               "--note", "plan reviewed"])
        assert ok.exit_code == 0, ok.output
        assert f"approved {digest}" in ok.output
        assert RequestBook(db.store).get(rid).approved_plan["digest"] == digest
    finally:
        check.close()


def _replace_customer(check: Db, cid: int, email: str) -> None:
    """Customer ``cid`` and their invoices removed, and the id given to another person
    (another name) with the e-mail ``email``."""
    check.execute("DELETE FROM invoice_items WHERE invoiceid IN (SELECT invoiceid FROM "
                  f"invoices WHERE customerid = {int(cid)})",
                  f"DELETE FROM invoices WHERE customerid = {int(cid)}",
                  f"DELETE FROM customers WHERE customerid = {int(cid)}",
                  "INSERT INTO customers (customerid, firstname, lastname, email) VALUES "
                  f"({int(cid)}, 'Nora', 'Quist', '{email}')")


def test_another_person_given_the_subjects_id_and_email_is_not_erased(chinook: PublicDb
                                                                     ) -> None:
    """After the approval the customer's rows are removed by other means and their id and
    e-mail are given to someone else: the run stops (the person row's personal data differ),
    and the newcomer's row is as it was (found by a helper on Sakila: it was erased)."""
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        rid, inv = _approved_erasure(chinook, email)
        _replace_customer(check, cid, email)
        before = row_hashes(check)
        with pytest.raises(PlanError, match="finds none of the approved person rows, only "
                                            "others"):
            _run(chinook, rid, inv)
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_a_reused_id_is_not_taken_for_a_person_another_request_erased(chinook: PublicDb
                                                                      ) -> None:
    """Request A erases a customer; their id goes to a newcomer, whose own erasure B is
    approved, then the newcomer changes e-mail. B's plan finds nobody: the newcomer is not
    the person A erased, so B stops instead of completing with the newcomer's row kept."""
    check = chinook.connect()
    try:
        cid, email, _ = chinook_customer(check)
        first, inv = _approved_erasure(chinook, email)
        assert _run(chinook, first, inv).status == "completed"
        check.execute("INSERT INTO customers (customerid, firstname, lastname, email) VALUES "
                      f"({int(cid)}, 'Nora', 'Quist', 'nora@example.net')")
        second, _ = _approved_erasure(chinook, "nora@example.net")
        check.execute("UPDATE customers SET email = 'nora.q@example.net' WHERE customerid = "
                      f"{int(cid)}")
        before = row_hashes(check)
        with pytest.raises(PlanError, match="no longer finds 1 of the 1 person row"):
            _run(chinook, second, inv)
        assert differences(before, row_hashes(check)) == {}
        assert RequestBook(chinook.store).get(second).state is not RequestState.COMPLETED
    finally:
        check.close()


def test_a_shared_email_is_reported_as_shared_not_as_a_changed_identity(
        chinook_sqlite: PublicDb) -> None:
    """A second account gets the subject's e-mail after the approval: the run stops on the
    shared identity alone (the plan's person rows are not compared then)."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        rid, inv = _approved_erasure(db, email)
        other = _other_customer(check, cid)
        check.execute(f"UPDATE customers SET email = '{email}' WHERE customerid = {other}")
        before = row_hashes(check)
        with pytest.raises(PlanError) as refused:
            _run(db, rid, inv)
        assert "person row" not in str(refused.value) and email not in str(refused.value)
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_an_approved_second_account_no_longer_found_stops_the_run(chinook_sqlite: PublicDb
                                                                  ) -> None:
    """The approved plan covers two accounts of the subject (found by e-mail and by phone);
    the second changes its phone before the run. The run stops instead of erasing the
    first and saying ``completed`` with the second kept (found by a helper on Sakila)."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        phone = "+44 20 7946 0958"      # on the second account only
        second = int(check.query("SELECT max(customerid) + 1 FROM customers")[0][0])
        check.execute("INSERT INTO customers (customerid, firstname, lastname, email, phone) "
                      f"VALUES ({second}, 'Second', 'Account', 'second@example.net', "
                      f"'{phone}')")
        book = RequestBook(db.store)
        rid = book.create("erasure", [f"email={email}", f"phone={phone}"], "EU",
                          "dpo").request_id
        book.verify(rid, "dpo", "identity checked on a video call")
        inv = load_inventory(db.fk_inventory)
        _, plan, _ = approve_request(inv, db.store, rid, "dpo-lead", "both accounts")
        assert len(plan.people) == 2
        check.execute(f"UPDATE customers SET phone = '+1 555 0100' WHERE customerid = {second}")
        before = row_hashes(check)
        with pytest.raises(PlanError, match=r"no longer finds 1 of the 2 person row"):
            _run(db, rid, inv)
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_a_scan_between_approval_and_run_does_not_change_whose_rows_they_are(
        chinook_sqlite: PublicDb) -> None:
    """A scan after the approval finds personal data in more columns of the customers
    table: the run compares the person rows by the columns the approval used, and goes on
    (it stopped, and no approval could follow it)."""
    from governance.scan import run_scan

    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        rid, inv = _approved_erasure(db, email)
        approved = RequestBook(db.store).get(rid).approved_plan
        assert approved is not None
        run_scan(inv, db.store)
        now = plan_binding(inv, db.store, rid)[2]
        assert now.columns != approved["columns"]     # the scan found more
        own = subject_rows(check, "chinook", cid)
        before = row_hashes(check)
        _erases_exactly(db, rid, inv, check, before, own)
    finally:
        check.close()


def test_the_subject_moving_house_after_approval_needs_no_new_approval(
        chinook_sqlite: PublicDb) -> None:
    """The subject's own row changes address and phone after the approval (what tells one
    person from another is their key, name, date of birth or ID number): the run goes on
    and erases exactly their rows."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        rid, inv = _approved_erasure(db, email)
        check.execute("UPDATE customers SET address = '1 New Street', city = 'Leeds', "
                      f"phone = '+44 113 496 0000' WHERE customerid = {int(cid)}")
        own = subject_rows(check, "chinook", cid)
        before = row_hashes(check)
        _erases_exactly(db, rid, inv, check, before, own)
    finally:
        check.close()


def _erased_then_email_given_away(db: PublicDb, check: Db, fault: str,
                                  same_id: bool = False) -> tuple[str, Any, int, str]:
    """An approved erasure killed at ``fault`` (after the subject's rows went), and then
    a new customer (another name; the subject's id when ``same_id``) given the subject's
    e-mail: (id, inventory, the subject's id, the e-mail)."""
    from governance.faults import InjectedFault

    cid, email, _ = chinook_customer(check)
    rid, inv = _approved_erasure(db, email)
    os.environ["GOVKIT_FAULT"] = f"{fault}:raise"
    try:
        with pytest.raises(InjectedFault):
            _run(db, rid, inv)
    finally:
        del os.environ["GOVKIT_FAULT"]
    check.execute("INSERT INTO customers (customerid, firstname, lastname, email) VALUES "
                  f"({int(cid) if same_id else 9901}, 'Nora', 'Quist', '{email}')")
    return rid, inv, cid, email


@pytest.mark.parametrize("same_id", [False, True], ids=["new-id", "reused-id"])
def test_an_erasure_cut_short_whose_email_then_goes_to_someone_else_completes(
        chinook: PublicDb, same_id: bool) -> None:
    """The run dies after the subject's rows were erased, before it completed; then a new
    customer (under a new id, or the subject's reused one) is given their old e-mail. Run
    again, it changes nothing and completes: the person this request erased is gone, and
    the one holding the e-mail now is not them (another name). (Before, the run stopped
    with 'reject this request and file one anew', and no command could complete it.)"""
    check = chinook.connect()
    try:
        rid, inv, cid, email = _erased_then_email_given_away(
            chinook, check, "request.before_complete:1", same_id)
        assert check.query("SELECT count(*) FROM invoices WHERE customerid = ?",
                           (cid,))[0][0] == 0
        before = row_hashes(check)
        outcome = _run(chinook, rid, inv)
        assert outcome.status == "completed", outcome.remaining
        assert differences(before, row_hashes(check)) == {}     # the newcomer untouched
        assert any("another person's row holds the identifier now" in why
                   for why in outcome.kept.values()), outcome.kept
        logged = chinook.store.log_events(["dsar.identity_elsewhere"], target=rid)
        assert len(logged) == 1 and email not in str(logged[0].details)
    finally:
        check.close()


def test_the_subjects_email_found_beyond_the_newcomers_rows_is_not_explained_away(
        chinook_sqlite: PublicDb) -> None:
    """Killed after its first step; the e-mail goes to a newcomer and is also written in a
    text cell nobody's rows account for (a track's composer). The resumed run finishes its
    steps, the next run finds the newcomer: only as many cells as the newcomer's rows are
    theirs; the text cell remains, and the request is not completed."""
    db = chinook_sqlite
    check = db.connect()
    try:
        rid, inv, _, email = _erased_then_email_given_away(db, check, "journal.after_step:1")
        check.execute(f"UPDATE tracks SET composer = 'write to {email}' WHERE trackid = 1")
        book = RequestBook(db.store)
        for _ in range(2):     # the resumed steps, then the run that plans again
            try:
                outcome = run_request(inv, db.store, rid, "dpo",
                                      confirm=lambda steps: True, every_text_cell=True)
            except PlanError as e:
                raise AssertionError(f"stopped: {e}") from None
            assert outcome.status == "verification_failed", outcome.status
        assert any("tracks" in place for place in outcome.remaining), outcome.remaining
        assert not any("customers" in place for place in outcome.remaining)
        assert book.get(rid).state is RequestState.IN_PROGRESS
        assert check.query("SELECT count(*) FROM customers WHERE customerid = 9901")[0][0] == 1
    finally:
        check.close()


def test_a_run_after_a_failed_every_cell_verification_searches_every_cell_again(
        chinook_sqlite: PublicDb) -> None:
    """Found by a helper on Oracle's CO: an erasure whose `--verify-every-cell` found the
    subject's e-mail left in a column no scan classified failed; a plain run then said
    completed, the e-mail still there. A later run verifies at least as widely."""
    from public_data.oracle import chinook_customer

    from tests.request_worker import cleared_request

    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        check.execute(f"UPDATE tracks SET composer = 'write to {email}' WHERE trackid = 1")
        inv = load_inventory(db.fk_inventory)
        rid = cleared_request(db.store, "erasure", f"email={email}", inventory=inv)
        first = run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True,
                            every_text_cell=True)
        assert first.status == "verification_failed"
        assert any("tracks" in place for place in first.remaining), first.remaining
        again = run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert again.status == "verification_failed", again.status
        assert any("tracks" in place for place in again.remaining), again.remaining
        assert RequestBook(db.store).get(rid).state is RequestState.IN_PROGRESS
        assert check.query("SELECT count(*) FROM customers WHERE customerid = ?",
                           (cid,)) == [(0,)]
    finally:
        check.close()
