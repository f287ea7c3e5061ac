"""govkit inventories for the loaded copies, written as a new user would.

The *FK-only* inventory lists every table, marks the person tables with their subject key,
declares one reference per single-column foreign key read from the database's catalogue
(``PRAGMA foreign_key_list`` / ``pg_constraint``), and the categories of e-mail, phone, name
and address columns. Nothing else: no ``kind``, no ``on_erase``. A composite foreign key
(TPC-DS returns -> sales) cannot be written as a reference and is left out, with a comment.

The *declared* inventory is the same plus ``kind``/``on_erase`` (notes/OWNERSHIP.md) on the
references the FK-only one leaves ambiguous, and the references a DPO declares where the
database has no foreign key (``EXTRA``: Pagila's payments keep theirs on each monthly
partition only, and its stores' managers have none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .oracle import Db

PEOPLE = {
    "chinook": {"customers": "customerid", "employees": "employeeid"},
    "tpcds": {"customer": "c_customer_sk"},
    "northwind": {"customers": "customer_id", "employees": "employee_id"},
    "pagila": {"customer": "customer_id", "staff": "staff_id"},
    "co": {"customers": "customer_id"},
    "hr": {"employees": "employee_id"},
}
CATEGORIES = {
    "chinook": {
        "firstname": "identity.name", "lastname": "identity.name",
        "address": "location.address", "city": "location.address",
        "postalcode": "location.address", "billingaddress": "location.address",
        "billingcity": "location.address", "billingpostalcode": "location.address",
        "phone": "contact.phone", "fax": "contact.phone", "email": "contact.email",
        "birthdate": "identity.date_of_birth",
    },
    "northwind": {
        "contact_name": "identity.name", "first_name": "identity.name",
        "last_name": "identity.name", "ship_name": "identity.name",
        "address": "location.address", "city": "location.address",
        "postal_code": "location.address", "ship_address": "location.address",
        "ship_city": "location.address", "ship_postal_code": "location.address",
        "phone": "contact.phone", "fax": "contact.phone", "home_phone": "contact.phone",
        "birth_date": "identity.date_of_birth", "notes": "free_text",
    },
    "pagila": {
        "first_name": "identity.name", "last_name": "identity.name",
        "email": "contact.email", "phone": "contact.phone",
        "address": "location.address", "address2": "location.address",
        "district": "location.address", "postal_code": "location.address",
    },
    "co": {
        "email_address": "contact.email", "full_name": "identity.name",
        "delivery_address": "location.address",
    },
    "hr": {
        "first_name": "identity.name", "last_name": "identity.name", "email": "contact.email",
        "phone_number": "contact.phone",
    },
    "tpcds": {
        "c_first_name": "identity.name", "c_last_name": "identity.name",
        "c_email_address": "contact.email", "ca_street_number": "location.address",
        "ca_street_name": "location.address", "ca_suite_number": "location.address",
        "ca_city": "location.address", "ca_zip": "location.address",
    },
}
# (table, column) -> kind / on_erase; references not listed are declared kind: reference.
DECLARED: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "chinook": {
        ("customers", "supportrepid"): {"kind": "reference", "on_erase": "detach"},
        ("employees", "reportsto"): {"kind": "reference", "on_erase": "detach"},
        ("invoices", "customerid"): {"kind": "owner"},
        ("invoice_items", "invoiceid"): {"kind": "owner"},
    },
    "northwind": {
        ("orders", "customer_id"): {"kind": "owner"},
        ("orders", "employee_id"): {"kind": "reference", "on_erase": "detach"},
        ("employees", "reports_to"): {"kind": "reference", "on_erase": "detach"},
        ("order_details", "order_id"): {"kind": "owner"},
        ("customer_customer_demo", "customer_id"): {"kind": "owner"},
        ("employee_territories", "employee_id"): {"kind": "owner"},
    },
    "pagila": {
        ("customer", "address_id"): {"kind": "detail"},
        ("staff", "address_id"): {"kind": "detail"},
        ("rental", "customer_id"): {"kind": "owner"},
    },
    "co": {
        ("orders", "customer_id"): {"kind": "owner"},
        ("shipments", "customer_id"): {"kind": "owner"},
        ("order_items", "order_id"): {"kind": "owner"},
        ("order_items", "shipment_id"): {"kind": "owner"},
    },
    "hr": {
        ("employees", "manager_id"): {"kind": "reference", "on_erase": "detach"},
        ("departments", "manager_id"): {"kind": "reference", "on_erase": "detach"},
        ("job_history", "employee_id"): {"kind": "owner"},
    },
    "tpcds": {
        ("customer", "c_current_addr_sk"): {"kind": "detail"},
        ("store_sales", "ss_customer_sk"): {"kind": "owner"},
        ("store_returns", "sr_customer_sk"): {"kind": "owner"},
        ("web_sales", "ws_bill_customer_sk"): {"kind": "owner"},
        ("web_sales", "ws_ship_customer_sk"): {"kind": "reference", "on_erase": "detach"},
        ("web_returns", "wr_refunded_customer_sk"): {"kind": "owner"},
        ("web_returns", "wr_returning_customer_sk"): {"kind": "reference",
                                                      "on_erase": "detach"},
        ("web_page", "wp_customer_sk"): {"kind": "reference", "on_erase": "detach"},
    },
}


EXTRA: dict[str, dict[str, list[dict[str, Any]]]] = {
    "pagila": {
        "payment": [{"column": "customer_id", "to": "customer.customer_id", "kind": "owner"},
                    {"column": "rental_id", "to": "rental.rental_id", "kind": "owner"},
                    {"column": "staff_id", "to": "staff.staff_id", "kind": "reference"}],
        "store": [{"column": "manager_staff_id", "to": "staff.staff_id",
                   "kind": "reference"}],
    },
}


def foreign_keys(db: Db, table: str) -> list[tuple[list[str], str, list[str]]]:
    """(columns, referenced table, referenced columns) of each foreign key of ``table``."""
    if db.kind == "sqlite":
        fks: dict[int, tuple[list[str], str, list[str]]] = {}
        for fid, _seq, target, col, tcol, *_ in db.conn.execute(
                f'PRAGMA foreign_key_list("{table}")').fetchall():
            entry = fks.setdefault(fid, ([], target, []))
            entry[0].append(col)
            entry[2].append(tcol)
        return list(fks.values())
    rows = db.query("""
        SELECT con.oid, t.relname,
               array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                     ORDER BY k.o),
               array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                     ORDER BY k.o)
        FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_class t ON t.oid = con.confrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE con.contype = 'f' AND n.nspname = 'public' AND c.relname = ?
          AND con.conparentid = 0
        ORDER BY con.conname""", (table,))
    return [(list(cols), target, list(tcols)) for _, target, cols, tcols in rows]


def inventory(db: Db, dataset: str, source: dict[str, Any], declared: bool) -> dict[str, Any]:
    """The inventory (as a YAML-ready dict) of the copy ``db`` reaches, for ``source``
    (name, kind, connection)."""
    tables = []
    for table in db.tables():
        cols = _columns(db, table)
        entry: dict[str, Any] = {"name": table}
        key = PEOPLE[dataset].get(table.lower())
        if key:
            entry["subject_key"] = next(c for c in cols if c.lower() == key)
        refs = []
        for fcols, target, tcols in foreign_keys(db, table):
            if len(fcols) != 1:
                continue
            ref: dict[str, Any] = {"column": fcols[0], "to": f"{target}.{tcols[0]}"}
            if declared:
                ref.update(DECLARED[dataset].get((table.lower(), fcols[0].lower()),
                                                 {"kind": "reference"}))
            refs.append(ref)
        if declared:
            refs += EXTRA.get(dataset, {}).get(table.lower(), [])
        if refs:
            entry["references"] = refs
        cats = {c: {"category": CATEGORIES[dataset][c.lower()]} for c in cols
                if c.lower() in CATEGORIES[dataset]}
        if cats:
            entry["columns"] = cats
        tables.append(entry)
    return {"version": 1, "organization": f"Public sample: {dataset}",
            "sources": [{**source, "owner": "dpo@example.org", "jurisdictions": ["EU"],
                         "tables": tables}]}


def _columns(db: Db, table: str) -> list[str]:
    if db.kind == "sqlite":
        return [r[1] for r in db.conn.execute(f'PRAGMA table_info("{table}")').fetchall()]
    return [r[0] for r in db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = ? ORDER BY ordinal_position", (table,))]


def write_inventories(db: Db, dataset: str, source: dict[str, Any], folder: Path
                      ) -> tuple[Path, Path]:
    """Write ``fk-only.yaml`` and ``declared.yaml`` into ``folder``; return their paths."""
    composite = sorted(f"{t}({', '.join(c)}) -> {target}" for t in db.tables()
                       for c, target, _ in foreign_keys(db, t) if len(c) > 1)
    note = "".join(f"# not expressible as a reference (composite foreign key): {c}\n"
                   for c in composite)
    paths = []
    for name, declared in (("fk-only.yaml", False), ("declared.yaml", True)):
        path = folder / name
        path.write_text(note + yaml.safe_dump(inventory(db, dataset, source, declared),
                                              sort_keys=False, allow_unicode=True))
        paths.append(path)
    return paths[0], paths[1]
