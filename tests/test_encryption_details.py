"""Field encryption of detail rows, on TPC-DS (its customers and their addresses).

A customer's current address (``customer.c_current_addr_sk -> customer_address``, a
detail link) holds that customer's personal data: it is encrypted under their key, and an
address two customers share, or nobody's, stays in clear (reported). Before, every
address stayed in clear as "a row of nobody" (found on Sakila by a helper). Expectations
are SQL written here; a shredded customer's address is tried by a fresh key ring.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from public_data.fixtures import PublicDb

from governance.encryption import (
    Decryptor,
    SubjectKeys,
    encrypt,
    keystore_for,
    load_policy,
    shred_person_rows,
)
from governance.inventory import load_inventory

ENVELOPE = re.compile(r"^gk1:(sk-[0-9a-f]{20}):[A-Za-z0-9_-]+$")
SEALED = ("ca_street_name", "ca_city", "ca_zip")


def test_an_address_is_sealed_under_its_one_customers_key(tpcds: PublicDb,
                                                          tmp_path: Path) -> None:
    db = tpcds
    check = db.connect()
    try:
        inv = load_inventory(db.declared_inventory)
        path = tmp_path / "encryption.yaml"
        path.write_text("version: 1\nrequire: []\ncolumns:\n" + "".join(
            f"  - {{column: tpcds.customer_address.{c}}}\n" for c in SEALED))
        policy = load_policy(path, inv)
        keys = SubjectKeys(db.store, keystore_for(policy, db.store))
        cols = ", ".join(SEALED)
        plain = {r[0]: r[1:] for r in check.query(
            f"SELECT ca_address_sk, {cols} FROM customer_address")}
        owners: dict[Any, set[Any]] = {}
        for cust, addr in check.query("SELECT c_customer_sk, c_current_addr_sk FROM "
                                      "customer WHERE c_current_addr_sk IS NOT NULL"):
            owners.setdefault(addr, set()).add(cust)
        one = {a: next(iter(c)) for a, c in owners.items() if len(c) == 1}
        assert one and any(len(c) > 1 for c in owners.values())
        out = encrypt(inv, db.store, keys, policy, apply=True, tables=["customer_address"])
        assert out.ok, [t.describe() for t in out.tables]
        now = {r[0]: r[1:] for r in check.query(
            f"SELECT ca_address_sk, {cols} FROM customer_address")}
        for addr, values in now.items():
            if addr in one:     # every cell that held a value now holds an envelope
                assert [v is None for v in values] == [v is None for v in plain[addr]]
                assert all(v is None or ENVELOPE.match(v) for v in values), addr
            else:                  # shared, or nobody's: as it was
                assert values == plain[addr], addr
        assert sum(v is not None for a in one for v in now[a]) > len(one)
        # Shred one customer: their address no longer reads; another's does.
        full = [a for a in one if None not in plain[a]]
        victim_addr, other_addr = full[0], full[1]
        victim = one[victim_addr]
        done = shred_person_rows(inv, keys, {("tpcds", "customer"):
                                             [{"c_customer_sk": victim}]}, "t", "test")
        assert done.verified and done.keys_destroyed
        fresh = SubjectKeys(db.store, keystore_for(policy, db.store))
        rows = [dict(zip(("ca_address_sk", *SEALED), (a, *now[a]), strict=True))
                for a in (victim_addr, other_addr)]
        opened = Decryptor(inv, db.store, fresh, policy).open_rows(
            "tpcds", "customer_address", rows, ["ca_address_sk"], "t", "check").rows
        assert all(opened[0][c] is None for c in SEALED)
        assert tuple(opened[1][c] for c in SEALED) == plain[other_addr]
    finally:
        check.close()
