"""Field encryption on Chinook (public, MIT), on SQLite and PostgreSQL.

A customer's address and phone columns, their invoices' billing address and the
employees' own are required encrypted. Checked independently of the code under test: the
envelopes' key ids are read with a regular expression written here (an invoice's cells
must be under its customer's key, found through the foreign key), every column that is
not encrypted is compared value by value, other tables by per-row hashes, and a
shredded customer's cells are tried with a fresh key ring (another process's view).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from public_data.fixtures import PublicDb
from public_data.oracle import Db, chinook_customer, row_hashes

from governance.encryption import (
    Decryptor,
    SubjectKeys,
    encrypt,
    encryption_status,
    keystore_for,
    load_policy,
    shred_person_rows,
)
from governance.inventory import load_inventory

ENVELOPE = re.compile(r"^gk1:(sk-[0-9a-f]{20}):[A-Za-z0-9_-]+$")
SEALED = {
    "customers": {"address", "city", "postalcode", "phone", "fax"},
    "invoices": {"billingaddress", "billingcity", "billingpostalcode"},
    "employees": {"address", "city", "postalcode", "phone", "fax"},
}
KEY = {"customers": "customerid", "invoices": "invoiceid", "employees": "employeeid"}


def _table(check: Db, table: str, lower: bool = True) -> dict[Any, dict[str, Any]]:
    """Rows of ``table`` by key, column names in lower case (or as the database spells
    them: a cell's associated data names its column so)."""
    cols, rows = check.rows(table)
    out = {}
    for r in rows:
        row = {(c.lower() if lower else c): v for c, v in zip(cols, r, strict=True)}
        out[r[[c.lower() for c in cols].index(KEY[table])]] = row
    return out


def _setup(db: PublicDb) -> tuple[Any, Any, Any]:
    inv = load_inventory(db.fk_inventory)
    path = Path(db.fk_inventory).parent / "encryption.yaml"
    path.write_text("version: 1\nrequire: [location.address, contact.phone]\n")
    policy = load_policy(path, inv)
    return inv, policy, SubjectKeys(db.store, keystore_for(policy, db.store))


def _opened(db: PublicDb, inv: Any, policy: Any, table: str, rows: dict[Any, dict[str, Any]]
            ) -> dict[Any, dict[str, Any]]:
    """``rows`` (column names as the database spells them) decrypted by a fresh key ring
    (as another process would), column names in lower case."""
    fresh = SubjectKeys(db.store, keystore_for(policy, db.store))
    dec = Decryptor(inv, db.store, fresh, policy)
    listed = list(rows.values())
    key = next(c for c in listed[0] if c.lower() == KEY[table])
    res = dec.open_rows("chinook", table, listed, [key], "tester", "check")
    return {r[key]: {c.lower(): v for c, v in r.items()} for r in res.rows}


def _sealed_key(value: Any) -> str:
    m = ENVELOPE.match(value)
    assert m, "not an envelope"
    return m.group(1)


@pytest.fixture
def sealed(chinook: PublicDb) -> Any:
    """Chinook with the policy's columns encrypted: (db, check, inventory, policy, keys,
    plaintext rows by table, row hashes before)."""
    check = chinook.connect()
    plain = {t: _table(check, t) for t in SEALED}
    before = row_hashes(check)
    inv, policy, keys = _setup(chinook)
    out = encrypt(inv, chinook.store, keys, policy, apply=True)
    assert out.ok, [t.describe() for t in out.tables]
    yield chinook, check, inv, policy, keys, plain, before
    check.close()


def test_every_required_cell_is_sealed_under_its_owners_key_and_nothing_else_changes(
        sealed: Any) -> None:
    db, check, inv, policy, keys, plain, before = sealed
    after = row_hashes(check)
    assert {t: h for t, h in after.items() if t not in SEALED} == \
        {t: h for t, h in before.items() if t not in SEALED}
    key_of: dict[tuple[str, Any], str] = {}
    for table, cols in SEALED.items():
        now = _table(check, table)
        assert set(now) == set(plain[table])
        for k, row in now.items():
            for c, v in row.items():
                if c not in cols or plain[table][k][c] is None:
                    assert v == plain[table][k][c], (table, k, c)
                    continue
                kid = _sealed_key(v)
                assert key_of.setdefault((table, k), kid) == kid    # one key per row
    # An invoice's cells are under its customer's key; each person has their own.
    for k, row in plain["invoices"].items():
        if (("invoices", k)) in key_of:
            assert key_of[("invoices", k)] == key_of[("customers", row["customerid"])]
    people = [v for (t, _), v in key_of.items() if t != "invoices"]
    assert len(people) == len(set(people))
    # Decrypted by another process's key ring: exactly the plaintext.
    for table in SEALED:
        assert _opened(db, inv, policy, table, _table(check, table, lower=False)) == \
            plain[table]
    # Encrypting again seals nothing twice.
    again = row_hashes(check)
    out = encrypt(inv, db.store, keys, policy, apply=True)
    assert out.ok and sum(t.cells_sealed for t in out.tables) == 0
    assert row_hashes(check) == again
    assert all(s.ok for s in encryption_status(inv, db.store, policy)
               if s.table in SEALED)


def test_a_shredded_customers_cells_are_unreadable_also_in_a_copy_others_stay_readable(
        sealed: Any) -> None:
    db, check, inv, policy, keys, plain, _ = sealed
    cid = chinook_customer(check)[0]
    copy = {t: _table(check, t, lower=False) for t in ("customers", "invoices")}  # a backup
    theirs = {k for k, r in plain["invoices"].items() if r["customerid"] == cid}
    assert theirs
    person = "CustomerId" if db.kind == "sqlite" else "customerid"
    outcome = shred_person_rows(inv, keys, {("chinook", "customers"): [{person: cid}]},
                                "tester", "erasure test", "dsar-test")
    assert outcome.verified and len(outcome.keys_destroyed) == 1
    for table, rows in copy.items():
        opened = _opened(db, inv, policy, table, rows)
        for k, row in opened.items():
            mine = k == cid if table == "customers" else k in theirs
            for c in SEALED[table]:
                if plain[table][k][c] is None:
                    continue
                assert row[c] == (None if mine else plain[table][k][c]), (table, k, c)


def test_a_ciphertext_moved_to_another_row_or_column_does_not_decrypt(sealed: Any) -> None:
    db, check, inv, policy, _, plain, _ = sealed
    rows = _table(check, "customers", lower=False)
    phone, fax, address = (next(c for c in rows[1] if c.lower() == n)
                           for n in ("phone", "fax", "address"))
    a, b = sorted(k for k, r in rows.items() if r[phone] is not None and r[fax]
                  is not None)[:2]
    moved = {a: {**rows[a], phone: rows[b][phone], fax: rows[a][phone]}}
    opened = _opened(db, inv, policy, "customers", moved)[a]
    assert opened["phone"] is None and opened["fax"] is None
    assert opened["address"] == plain["customers"][a]["address"] and address
