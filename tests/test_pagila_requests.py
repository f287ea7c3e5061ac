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


def _request(db: PublicDb, kind: str, identity: str,
             corrections: dict[str, str] | None = None) -> tuple[str, Any]:
    book = RequestBook(db.store)
    rid = book.create(kind, [identity], "EU", "dpo", corrections=corrections).request_id
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


@pytest.mark.parametrize("field", ["phone", "address"])
def test_a_correction_of_data_kept_only_on_the_address_stops_and_says_where(
        pagila_pg: PublicDb, field: str) -> None:
    """Rectifying the phone or the address of a customer (Pagila keeps both on the
    address row, which others may share) stops, naming the column, with nothing changed:
    before, the plan changed nothing and the run said ``completed``."""
    db = pagila_pg
    check = db.connect()
    try:
        customer, _, _ = _alone_at_address(check)
        email = check.query("SELECT email FROM customer WHERE customer_id = ?",
                            (customer,))[0][0]
        value = "+44 20 7946 0123" if field == "phone" else "1 New Street"
        rid, inv = _request(db, "rectify", f"email={email}", {field: value})
        before = row_hashes(check)
        resolution, steps = plan_request(inv, db.store, rid)
        held = "pagila.address.phone" if field == "phone" else "pagila.address.address"
        assert any(b.startswith(f"{field}: no row of the subject's own holds it") and held in b
                   for b in resolution.blockers), resolution.blockers
        assert row_hashes(check) == before
    finally:
        check.close()


@pytest.mark.parametrize("fault", [None, "journal.after_commit", "journal.after_mark",
                                   "request.before_complete"])
def test_an_email_correction_changes_that_cell_alone(pagila_pg: PublicDb,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     fault: str | None) -> None:
    """Also when the run is stopped after the change (committed, or marked done, or before
    the request is closed) and run again: the run again completes, changing nothing more
    (the new e-mail it finds in the subject's row is the subject's own)."""
    from governance.faults import InjectedFault

    db = pagila_pg
    check = db.connect()
    try:
        customer, _, _ = _alone_at_address(check)
        email = check.query("SELECT email FROM customer WHERE customer_id = ?",
                            (customer,))[0][0]
        rid, inv = _request(db, "rectify", f"email={email}", {"email": "new.address@example.org"})
        approve_plan(db.store, rid, inv)
        before = row_hashes(check)
        if fault:
            monkeypatch.setenv("GOVKIT_FAULT", f"{fault}:1:raise")
            with pytest.raises(InjectedFault):
                run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
            monkeypatch.delenv("GOVKIT_FAULT")
        outcome = run_request(inv, db.store, rid, "dpo", confirm=lambda steps: True)
        assert outcome.status == "completed", outcome.remaining
        assert differences(before, row_hashes(check)) == {
            "customer": {"removed": set(), "added": set(), "changed": {(customer,)}}}
        assert check.query("SELECT email FROM customer WHERE customer_id = ?",
                           (customer,)) == [("new.address@example.org",)]
    finally:
        check.close()


def test_an_email_correction_to_another_customers_email_stops(pagila_pg: PublicDb) -> None:
    """Found by a helper: the correction gave two customers one e-mail, and the other
    customer's own erasure then stopped as "matches 2 people". It now stops at planning,
    with nothing changed."""
    db = pagila_pg
    check = db.connect()
    try:
        (mine, email), (_, theirs) = check.query(
            "SELECT customer_id, email FROM customer ORDER BY customer_id LIMIT 2")
        rid, inv = _request(db, "rectify", f"email={email}", {"email": theirs.upper()})
        before = row_hashes(check)
        resolution, _ = plan_request(inv, db.store, rid)
        assert any("already held by 1 other person row(s) of pagila.customer" in b
                   for b in resolution.blockers), resolution.blockers
        assert row_hashes(check) == before
        assert check.query("SELECT email FROM customer WHERE customer_id = ?",
                           (mine,)) == [(email,)]
    finally:
        check.close()


def test_a_store_its_manager_runs_is_not_erased_with_the_manager(pagila_pg: PublicDb,
                                                                tmp_path: Any) -> None:
    """``store.manager_staff_id`` written without a kind (as the README's examples write
    references): the store was inferred to be its manager's, and erasing that staff member
    deleted the store and said ``completed`` (found by a helper). A reference named for a
    role now stops the erasure, naming it, with nothing changed; ``govkit inventory``'s
    review names it too."""
    import yaml

    from governance.dsar.ownership import build_graph, review

    db = pagila_pg
    check = db.connect()
    try:
        doc = yaml.safe_load(db.declared_inventory.read_text())
        for table in doc["sources"][0]["tables"]:
            for ref in table.get("references", []):
                if (table["name"], ref["column"]) == ("store", "manager_staff_id"):
                    del ref["kind"]
        path = tmp_path / "undeclared-manager.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        inv = load_inventory(path)
        assert any(line.startswith("pagila.store: taken as a person's rows through")
                   for line in review(build_graph(inv), inv))
        # A manager of a store whom nothing else points at (no rental, payment, customer).
        staff, email = check.query(
            "SELECT s.staff_id, s.email FROM staff s WHERE EXISTS (SELECT 1 FROM store t "
            "WHERE t.manager_staff_id = s.staff_id) AND NOT EXISTS (SELECT 1 FROM rental r "
            "WHERE r.staff_id = s.staff_id) AND NOT EXISTS (SELECT 1 FROM payment p WHERE "
            "p.staff_id = s.staff_id) AND NOT EXISTS (SELECT 1 FROM store t JOIN customer c "
            "ON c.store_id = t.store_id WHERE t.manager_staff_id = s.staff_id) AND NOT "
            "EXISTS (SELECT 1 FROM store t JOIN staff o ON o.store_id = t.store_id WHERE "
            "t.manager_staff_id = s.staff_id) AND NOT EXISTS (SELECT 1 FROM store t JOIN "
            "inventory i ON i.store_id = t.store_id WHERE t.manager_staff_id = s.staff_id) "
            "AND s.email IS NOT NULL ORDER BY s.staff_id LIMIT 1")[0]
        book = RequestBook(db.store)
        rid = book.create("erasure", [f"email={email}"], "EU", "dpo").request_id
        book.verify(rid, "dpo", "identity checked on a call")
        before = row_hashes(check)
        resolution, _ = plan_request(inv, db.store, rid)
        assert any("pagila.store are taken as the subject's through" in b and
                   "a column named for a role" in b for b in resolution.blockers), \
            resolution.blockers
        # (and not also blamed on another person or on the key's values)
        assert not any("not the subject's alone" in b for b in resolution.blockers)
        assert row_hashes(check) == before
        assert check.query("SELECT count(*) FROM store WHERE manager_staff_id = ?",
                           (staff,)) == [(1,)]
    finally:
        check.close()


def test_a_phone_encrypted_without_a_blind_index_is_said_to_be_unsearchable(
        pagila_pg: PublicDb) -> None:
    """The address phones sealed (no blind index): a request by such a phone found
    nothing and completed, the customer's rows left (found by a helper). It now stops,
    naming the column it could not search."""
    from governance.encryption import SubjectKeys, encrypt, keystore_for, load_policy

    db = pagila_pg
    check = db.connect()
    try:
        customer, _, phone = _alone_at_address(check)
        inv = load_inventory(db.declared_inventory)
        path = db.declared_inventory.parent / "encryption.yaml"
        path.write_text("version: 1\nrequire: [contact.phone]\n")
        policy = load_policy(path, inv)
        keys = SubjectKeys(db.store, keystore_for(policy, db.store))
        out = encrypt(inv, db.store, keys, policy, apply=True, tables=["pagila.address"])
        assert out.ok and out.tables[0].cells_sealed > 0
        sealed = check.query("SELECT a.phone FROM address a JOIN customer c USING "
                             "(address_id) WHERE c.customer_id = ?", (customer,))[0][0]
        assert sealed.startswith("gk1:")
        for kind in ("access", "erasure"):
            rid, _ = _request(db, kind, f"phone={phone}")
            resolution, _ = plan_request(inv, db.store, rid)
            assert any("could not be searched: pagila.address.phone" in b
                       for b in resolution.blockers), resolution.blockers
    finally:
        check.close()
