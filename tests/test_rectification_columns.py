"""A rectification sets each corrected column to what the subject asked for, never a guess.

On Chinook (public, MIT), SQLite and PostgreSQL: a customer's name is held in two columns
(firstname, lastname), their phone in two (phone, fax) and their address in three (address,
city, postalcode). Before this, ``--set name="Ada Quist"`` wrote "Ada Quist" into both
firstname and lastname, and ``--set phone=...`` overwrote the fax number too, and the
request said ``completed``. Expectations come from SQL written here and per-row hashes of
every table (``public_data.oracle``).
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from public_data.fixtures import PublicDb
from public_data.oracle import Db, chinook_customer, differences, row_hashes
from request_worker import approve_plan

from governance.cli import main
from governance.dsar import RequestBook, plan_request, run_request
from governance.dsar.approval import approve_request
from governance.dsar.plan import PlanError
from governance.dsar.requests import RequestError
from governance.inventory import load_inventory


def _rectify(db: PublicDb, email: str, corrections: dict[str, str]) -> tuple[str, Any]:
    """A verified rectify request by ``email``: (id, inventory)."""
    book = RequestBook(db.store)
    rid = book.create("rectify", [f"email={email}"], "EU", "dpo", corrections).request_id
    book.verify(rid, "dpo", "identity checked on a video call")
    return rid, load_inventory(db.fk_inventory)


def _customer(check: Db, cid: int) -> dict[str, Any]:
    cols, rows = check.rows("customers")
    row = next(r for r in rows if r[[c.lower() for c in cols].index("customerid")] == cid)
    return {c.lower(): v for c, v in zip(cols, row, strict=True)}


@pytest.mark.parametrize(("field", "columns"), [
    ("name", "firstname, lastname"),
    ("phone", "phone, fax"),
    ("address", "address, city, postalcode"),
])
def test_a_value_for_data_held_in_several_columns_stops_the_plan(
        chinook: PublicDb, field: str, columns: str) -> None:
    db = chinook
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        before = row_hashes(check)
        value = {"name": "Ada Quist", "phone": "+44 20 7946 0000",
                 "address": "1 Quist Lane"}[field]
        rid, inv = _rectify(db, email, {field: value})
        resolution, _ = plan_request(inv, db.store, rid)
        said = [b.lower() for b in resolution.blockers
                if b.startswith(f"{field}: chinook.customers holds")]
        assert len(said) == 1, resolution.blockers
        assert f"chinook.customers holds it in {len(columns.split(', '))} columns " \
               f"({columns})" in said[0]
        assert "--set chinook.customers.firstname=..." in said[0] or field != "name"
        assert value not in " ".join(resolution.blockers)
        approve_plan(db.store, rid, inv)
        with pytest.raises(PlanError, match="holds it in"):
            run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert row_hashes(check) == before           # nothing changed anywhere
    finally:
        check.close()


def test_each_column_named_gets_its_own_value_and_nothing_else_changes(chinook: PublicDb
                                                                      ) -> None:
    db = chinook
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        old = _customer(check, cid)
        before = row_hashes(check)
        rid, inv = _rectify(db, email, {"chinook.customers.firstname": "Ada",
                                        "chinook.customers.lastname": "Quist",
                                        "chinook.customers.fax": "+44 20 7946 0000"})
        approve_request(inv, db.store, rid, "dpo-lead", "reviewed")
        outcome = run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert outcome.status == "completed", outcome.remaining
        new = _customer(check, cid)
        assert (new["firstname"], new["lastname"], new["fax"]) == \
            ("Ada", "Quist", "+44 20 7946 0000")
        assert {k: v for k, v in new.items() if k not in ("firstname", "lastname", "fax")} \
            == {k: v for k, v in old.items() if k not in ("firstname", "lastname", "fax")}
        assert differences(before, row_hashes(check)) == {
            "customers": {"removed": set(), "added": set(), "changed": {(cid,)}}}
    finally:
        check.close()


def test_a_field_named_with_some_of_its_columns_leaves_the_others_as_they_are(
        chinook_sqlite: PublicDb) -> None:
    """``name`` and the first-name column: the last name is not given the whole name."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        old = _customer(check, cid)
        rid, inv = _rectify(db, email, {"name": "Ada Quist",
                                        "chinook.customers.firstname": "Ada"})
        approve_request(inv, db.store, rid, "dpo-lead", "reviewed")
        outcome = run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert outcome.status == "completed", outcome.remaining
        new = _customer(check, cid)
        assert (new["firstname"], new["lastname"]) == ("Ada", old["lastname"])
    finally:
        check.close()


def test_a_one_column_field_still_goes_wherever_the_subject_is(chinook_sqlite: PublicDb
                                                               ) -> None:
    """The e-mail is one column of customers: ``--set email=`` corrects it as before."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        before = row_hashes(check)
        rid, inv = _rectify(db, email, {"email": "ada.quist@example.org"})
        approve_request(inv, db.store, rid, "dpo-lead", "reviewed")
        outcome = run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert outcome.status == "completed", outcome.remaining
        assert _customer(check, cid)["email"] == "ada.quist@example.org"
        assert differences(before, row_hashes(check)) == {
            "customers": {"removed": set(), "added": set(), "changed": {(cid,)}}}
    finally:
        check.close()


def test_a_one_column_field_that_links_rows_stops_the_plan(chinook_sqlite: PublicDb) -> None:
    """Another table refers to customers by e-mail: correcting the e-mail would leave its
    rows pointing at nobody, so the plan stops and says so."""
    db = chinook_sqlite
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        check.execute("CREATE UNIQUE INDEX customers_email ON customers (Email)",
                      "CREATE TABLE newsletter (id INTEGER PRIMARY KEY, subscriber TEXT "
                      "REFERENCES customers (Email))",
                      f"INSERT INTO newsletter VALUES (1, '{email}')")
        before = row_hashes(check)
        rid, inv = _rectify(db, email, {"email": "ada.quist@example.org"})
        resolution, _ = plan_request(inv, db.store, rid)
        assert any(b.lower().startswith("email: chinook.customers.email links rows")
                   for b in resolution.blockers), resolution.blockers
        approve_plan(db.store, rid, inv)
        with pytest.raises(PlanError, match="links rows together"):
            run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert row_hashes(check) == before
    finally:
        check.close()


@pytest.mark.parametrize(("column", "why"), [
    ("chinook.customers.customerid", "a key column"),
    ("chinook.customers.supportrepid", "a key column"),     # points at an employee
    ("chinook.customers.nickname", "no row of the subject's own has that column"),
    ("chinook.tracks.name", "no row of the subject's own has that column"),
])
def test_a_column_that_is_a_key_or_not_the_subjects_stops_the_plan(
        chinook_sqlite: PublicDb, column: str, why: str) -> None:
    db = chinook_sqlite
    check = db.connect()
    try:
        _, email, _ = chinook_customer(check)
        before = row_hashes(check)
        rid, inv = _rectify(db, email, {column: "3"})
        resolution, _ = plan_request(inv, db.store, rid)
        assert any(b.lower().startswith(f"--set {column}: {why}")
                   for b in resolution.blockers), \
            resolution.blockers
        approve_plan(db.store, rid, inv)
        with pytest.raises(PlanError, match=why):
            run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert row_hashes(check) == before
    finally:
        check.close()


def test_an_unknown_field_is_refused_when_the_request_is_filed(chinook_sqlite: PublicDb
                                                               ) -> None:
    book = RequestBook(chinook_sqlite.store)
    with pytest.raises(RequestError, match="cannot rectify 'nickname'"):
        book.create("rectify", ["email=a@example.org"], "EU", "dpo", {"nickname": "Ada"})
    assert book.list_requests(open_only=False) == []
    out = CliRunner().invoke(main, ["dsar", "new", "--type", "rectify", "--store",
                                    str(chinook_sqlite.store.path), "--identity",
                                    "email=a@example.org", "--jurisdiction", "EU",
                                    "--set", "nick=Ada"])
    assert out.exit_code == 2, out.output
    assert len(out.output.strip().splitlines()) == 1 and "cannot rectify 'nick'" in out.output


def test_a_value_that_is_not_a_phone_or_an_email_is_not_written(chinook_sqlite: PublicDb
                                                                ) -> None:
    """`--set phone=abc` was written into the phone column (found by a helper on
    Northwind): refused when filed (a field) or when planned (a phone column named)."""
    db = chinook_sqlite
    check = db.connect()
    try:
        _, email, _ = chinook_customer(check)
        book = RequestBook(db.store)
        for bad in ({"phone": "abc"}, {"email": "not-an-address"}):
            with pytest.raises(RequestError, match="the new value is not"):
                book.create("rectify", [f"email={email}"], "EU", "dpo", bad)
        before = row_hashes(check)
        rid, inv = _rectify(db, email, {"chinook.customers.Fax": "call me"})
        resolution, _ = plan_request(inv, db.store, rid)
        assert any("the new value is not a phone number" in b for b in resolution.blockers)
        approve_plan(db.store, rid, inv)
        with pytest.raises(PlanError, match="not a phone number"):
            run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert row_hashes(check) == before
    finally:
        check.close()


def test_dsar_plan_does_not_offer_to_approve_a_plan_that_cannot_run(chinook_sqlite: PublicDb
                                                                    ) -> None:
    """A plan with what stops it says so instead of printing the approve command (a helper
    followed it, and the run then stopped)."""
    db = chinook_sqlite
    check = db.connect()
    try:
        _, email, _ = chinook_customer(check)
    finally:
        check.close()
    rid, _ = _rectify(db, email, {"name": "Ada Quist"})
    shown = CliRunner().invoke(main, ["dsar", "plan", rid, "--inventory",
                                      str(db.fk_inventory), "--store", str(db.store.path)])
    assert shown.exit_code == 0, shown.output
    assert "holds it in 2 columns" in shown.output
    assert "not to approve yet" in shown.output and "dsar approve" not in shown.output
