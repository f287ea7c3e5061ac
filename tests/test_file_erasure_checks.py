"""An erasure on file sources checks, as it rewrites each file, that the rows it removes
are still the subject's: on Chinook (Luis Rocha, MIT licence; nobody on this project wrote
it) exported to CSV and Parquet files, three tables (customers, invoices, invoice lines).

The files have no primary keys, so invoices are picked by their customer and invoice
lines by their invoice: a line's owner is its invoice's customer.

- One of the subject's invoices is given to another customer between the plan and the run:
  the run stops before changing anything, and that invoice stays, with its lines (before,
  the lines were deleted and the run said ``completed``).
- The same change made by another program after the run's first checks, just before the
  invoice lines' file is rewritten: the rewrite checks again under the file's lock and
  stops, with nothing changed.

Expectations come from the files read here with Python's csv module and pyarrow, and from
per-row hashes of every file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from public_data.fixtures import PublicDb
from public_data.oracle import chinook_customer

from governance.dsar import RequestBook, run_request
from governance.dsar.journal import RowsChanged
from governance.inventory import load_inventory
from governance.sources.duckdb_source import FileConnector

TABLES = ("customers", "invoices", "invoice_items")


class Files:
    """Chinook's three tables as files of ``kind``, an inventory of them, a store."""

    def __init__(self, db: PublicDb, kind: str, folder: Path, kept: bool = False):
        self.kind, self.db = kind, db
        self.data = folder / "files"
        self.data.mkdir()
        src = sqlite3.connect(db.target)
        try:
            for table in TABLES:
                cur = src.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
                names = [d[0].lower() for d in cur.description]
                self.write(table, names, [list(r) for r in cur.fetchall()])
        finally:
            src.close()
        self.inventory = folder / "files.yaml"
        self.inventory.write_text(yaml.safe_dump({
            "version": 1, "organization": "chinook files", "sources": [{
                "name": "shop", "kind": kind, "connection": {"path": str(self.data)},
                "owner": "dpo@example.org", "jurisdictions": ["EU"], "tables": [
                    {"name": "customers", **_kept(kept, "email", "firstname", "lastname"),
                     "subject_key": "customerid", "columns": {
                        "email": {"category": "contact.email"},
                        "firstname": {"category": "identity.name"},
                        "lastname": {"category": "identity.name"}},
                     "references": [{"column": "supportrepid", "to": "customers.customerid",
                                     "kind": "reference", "on_erase": "detach"}]},
                    {"name": "invoices", **_kept(kept, "billingaddress"), "references": [
                        {"column": "customerid", "to": "customers.customerid",
                         "kind": "owner"}]},
                    {"name": "invoice_items", **_kept(kept, "unitprice"), "references": [
                        {"column": "invoiceid", "to": "invoices.invoiceid",
                         "kind": "owner"}]}]}]}, sort_keys=False))

    def path(self, table: str) -> Path:
        return self.data / f"{table}.{self.kind}"

    def write(self, table: str, names: list[str], rows: list[list[Any]]) -> None:
        """Write a table's file as another program would (a new file renamed over it)."""
        tmp = self.data / f".{table}.other-program"
        if self.kind == "csv":
            with tmp.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(names)
                w.writerows([["" if v is None else v for v in r] for r in rows])
        else:
            pq.write_table(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}),
                           tmp)
        tmp.replace(self.path(table))

    def read(self, table: str) -> tuple[list[str], list[list[Any]]]:
        """A table's columns and rows, read with csv / pyarrow (CSV values as text)."""
        if self.kind == "csv":
            with self.path(table).open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            return rows[0], rows[1:]
        t = pq.read_table(self.path(table))
        return t.column_names, [list(r.values()) for r in t.to_pylist()]

    def hashes(self) -> dict[str, list[str]]:
        out = {}
        for table in TABLES:
            _, rows = self.read(table)
            out[table] = sorted(hashlib.sha256(json.dumps(r, default=str).encode()).hexdigest()
                                for r in rows)
        return out

    def reassign(self, invoice: Any, to: Any) -> None:
        """Give one invoice to another customer (another program's change)."""
        names, rows = self.read("invoices")
        at, cust = names.index("invoiceid"), names.index("customerid")
        for r in rows:
            if str(r[at]) == str(invoice):
                r[cust] = to if self.kind == "parquet" else str(to)
        self.write("invoices", names, rows)

    def column(self, table: str, column: str, where: str, value: Any) -> list[str]:
        names, rows = self.read(table)
        return sorted(str(r[names.index(column)]) for r in rows
                      if str(r[names.index(where)]) == str(value))

    def erasure(self, email: str, confirm: Callable[[Any], bool]) -> Callable[[], Any]:
        book = RequestBook(self.db.store)
        rid = book.create("erasure", [f"email={email}"], "EU", "dpo").request_id
        book.verify(rid, "dpo", "identity checked on a call")
        book.approve(rid, "dpo", "plan reviewed")
        inv = load_inventory(self.inventory)
        return lambda: run_request(inv, self.db.store, rid, "dpo", confirm=confirm)


def _kept(kept: bool, *columns: str) -> dict[str, Any]:
    """A table's erasure: kept for the accounts with ``columns`` blanked, when ``kept``."""
    return {"erasure": {"action": "anonymize", "columns": dict.fromkeys(columns, "null"),
                        "basis": "accounting records"}} if kept else {}


def _subject(files: Files) -> tuple[Any, str, Any, Any]:
    """(customer id, e-mail, one of their invoices, another customer)."""
    check = files.db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        invoice = check.query("SELECT min(invoiceid) FROM invoices WHERE customerid = ?",
                              (cid,))[0][0]
        other = check.query("SELECT min(customerid) FROM customers WHERE customerid <> ?",
                            (cid,))[0][0]
    finally:
        check.close()
    return cid, email, invoice, other


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_an_invoice_given_to_another_customer_after_the_plan_stops_the_run(
        chinook_sqlite: PublicDb, tmp_path: Path, kind: str) -> None:
    files = Files(chinook_sqlite, kind, tmp_path)
    cid, email, invoice, other = _subject(files)
    ids = files.column("invoice_items", "invoicelineid", "invoiceid", invoice)
    assert ids
    seen: dict[str, Any] = {}

    def late_change(steps: Any) -> bool:
        files.reassign(invoice, other)
        seen["before"] = files.hashes()
        return True

    run = files.erasure(email, late_change)
    with pytest.raises(RowsChanged, match=r"1 row\(s\) of shop\.invoices that the rows step 1 "
                                          r"would delete in invoice_items belong to are not as "
                                          r"the plan saw them \(their customerid.*changed "
                                          r"nothing"):
        run()
    assert files.hashes() == seen["before"]
    assert files.column("invoices", "customerid", "invoiceid", invoice) == [str(other)]
    assert files.column("invoice_items", "invoicelineid", "invoiceid", invoice) == ids
    assert files.column("customers", "email", "customerid", cid) == [email]


@pytest.mark.parametrize(("kind", "kept"), [("csv", False), ("parquet", False),
                                            ("csv", True), ("parquet", True)])
def test_a_change_made_just_before_a_file_is_rewritten_is_checked_under_its_lock(
        chinook_sqlite: PublicDb, tmp_path: Path, kind: str, kept: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``kept``: every row is kept for the accounts with some columns blanked (anonymized)
    instead of deleted."""
    files = Files(chinook_sqlite, kind, tmp_path, kept)
    cid, email, invoice, other = _subject(files)
    ids = files.column("invoice_items", "invoicelineid", "invoiceid", invoice)
    seen: dict[str, Any] = {}
    real = FileConnector._open_view

    def late(self: FileConnector, table: str) -> None:
        # Another program gives one of the subject's invoices to another customer after
        # the run checked every step's rows, while the run waits for the invoice lines'
        # file (the rewrite reads the file afresh once it holds the lock).
        if table == "invoice_items" and self._guards and not seen:
            files.reassign(invoice, other)
            seen["before"] = files.hashes()
        real(self, table)

    monkeypatch.setattr(FileConnector, "_open_view", late)
    run = files.erasure(email, lambda steps: True)
    verb = "anonymize" if kept else "delete"
    with pytest.raises(RowsChanged, match=r"1 row\(s\) of shop\.invoices that the rows step 1 "
                                          rf"would {verb} in invoice_items belong to .*changed "
                                          r"nothing.*earlier steps stay done"):
        run()
    assert seen, "the rewrite never re-read the file under its lock"
    assert files.hashes() == seen["before"]
    assert files.column("invoices", "customerid", "invoiceid", invoice) == [str(other)]
    assert files.column("invoice_items", "invoicelineid", "invoiceid", invoice) == ids
    assert files.column("customers", "email", "customerid", cid) == [email]
