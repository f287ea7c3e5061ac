"""Requests on Pagila (PostgreSQL port of Sakila, MIT-style licence; committed in
``public_data/pagila``): a customer's phone is kept on their address row, not on their
customer row.

Found by a helper: an access request by that phone returned the address row alone (not the
customer's row, rentals or payments) and said ``completed``; an erasure by it stopped with
a false reason (the customer row "not the subject's"), and following its advice deleted the
address and re-pointed the subject's own customer row at a placeholder, with their name,
e-mail, rentals and payments left, and said ``completed``. A phone found on a detail row
now names the one person whose row points at it; a row two people's rows point at stops
the request. Expectations are SQL written here and per-row hashes of every table.
"""

from __future__ import annotations

from typing import Any

import pytest
from public_data.fixtures import PublicDb
from public_data.oracle import Db, differences, row_hashes
from request_worker import approve_plan

from governance.dsar import RequestBook, plan_request, run_request
from governance.inventory import load_inventory

pytestmark = pytest.mark.postgres


def _international(phone: str) -> str | None:
    """The phone as a caller would give it: with a country code under which the digits
    Pagila stores (random ones) are a valid national number (libphonenumber's rules)."""
    import phonenumbers

    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        try:
            number = phonenumbers.parse(f"+{code} {phone}")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and \
                str(number.national_number) == phone.lstrip("0"):
            return f"+{code} {phone}"
    return None


def _alone_at_address(check: Db) -> tuple[int, int, str]:
    """(customer id, address id, phone in international form) of a customer whose address
    no other customer, staff member or store points at, with a phone written there."""
    rows = check.query(
        "SELECT c.customer_id, a.address_id, a.phone FROM customer c JOIN address a USING "
        "(address_id) WHERE a.phone <> '' AND NOT EXISTS (SELECT 1 FROM customer o WHERE "
        "o.address_id = a.address_id AND o.customer_id <> c.customer_id) AND NOT EXISTS "
        "(SELECT 1 FROM staff s WHERE s.address_id = a.address_id) AND NOT EXISTS (SELECT "
        "1 FROM store t WHERE t.address_id = a.address_id) AND EXISTS (SELECT 1 FROM "
        "rental r WHERE r.customer_id = c.customer_id) ORDER BY c.customer_id")
    for customer, address, phone in rows:
        written = _international(phone)
        if written:
            return customer, address, written
    raise AssertionError("no Pagila customer alone at an address with a valid phone")


def _own_rows(check: Db, customer: int, address: int) -> dict[str, set[tuple[Any, ...]]]:
    """The customer's rows, by table, keyed as ``row_hashes`` keys them (SQL written here)."""
    return {
        "customer": {(customer,)},
        "rental": set(check.query("SELECT rental_id FROM rental WHERE customer_id = ?",
                                  (customer,))),
        "payment": set(check.query("SELECT payment_date, payment_id FROM payment WHERE "
                                   "customer_id = ?", (customer,))),
        "address": {(address,)},
    }


def _request(db: PublicDb, kind: str, identity: str) -> tuple[str, Any]:
    book = RequestBook(db.store)
    rid = book.create(kind, [identity], "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked on a call")
    return rid, load_inventory(db.declared_inventory)


def test_access_by_the_phone_on_a_customers_address_finds_the_customer(pagila_pg: PublicDb
                                                                       ) -> None:
    db = pagila_pg
    check = db.connect()
    try:
        customer, address, phone = _alone_at_address(check)
        own = _own_rows(check, customer, address)
        rid, inv = _request(db, "access", f"phone={phone}")
        resolution, _ = plan_request(inv, db.store, rid)
        found = {}
        for loc in resolution.locations:
            found[loc.table] = found.get(loc.table, 0) + len(loc.rows)
        assert found == {t: len(keys) for t, keys in own.items()}
        assert [r["customer_id"] for loc in resolution.locations if loc.table == "customer"
                for r in loc.rows] == [customer]
    finally:
        check.close()


def test_erasure_by_the_phone_on_a_customers_address_erases_exactly_them(
        pagila_pg: PublicDb) -> None:
    db = pagila_pg
    check = db.connect()
    try:
        customer, address, phone = _alone_at_address(check)
        own = _own_rows(check, customer, address)
        rid, inv = _request(db, "erasure", f"phone={phone}")
        approve_plan(db.store, rid, inv)
        before = row_hashes(check)
        outcome = run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert outcome.status == "completed", outcome.remaining
        assert differences(before, row_hashes(check)) == {
            t: {"removed": keys, "added": set(), "changed": set()} for t, keys in own.items()}
    finally:
        check.close()


def test_a_phone_on_an_address_two_people_share_stops_the_request(pagila_pg: PublicDb
                                                                  ) -> None:
    """A customer and a staff member at one address: its phone cannot say who asked."""
    db = pagila_pg
    check = db.connect()
    try:
        shared = check.query(
            "SELECT a.phone FROM address a WHERE a.phone <> '' AND EXISTS "
            "(SELECT 1 FROM customer c WHERE c.address_id = a.address_id) AND EXISTS "
            "(SELECT 1 FROM staff s WHERE s.address_id = a.address_id) ORDER BY a.address_id")
        phone = next(p for p in (_international(r[0]) for r in shared) if p)
        before = row_hashes(check)
        for kind in ("access", "erasure"):
            rid, inv = _request(db, kind, f"phone={phone}")
            resolution, _ = plan_request(inv, db.store, rid)
            assert any("cannot say which of them asked" in b for b in resolution.blockers), \
                resolution.blockers
            assert not resolution.locations
        assert row_hashes(check) == before
    finally:
        check.close()
