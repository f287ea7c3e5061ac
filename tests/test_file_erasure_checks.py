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

Cases a helper found trying these files (each failed before its fix):

- The subject's customer id names another customer after the plan (an export renumbered):
  the run stops; before, the other customer's row and invoices were deleted.
- A key two rows share (a customer id on two customers' rows, an invoice id on two
  customers' invoices): the plan stops, naming the key; before, the other customer's row
  or invoice lines were deleted, and an access request exported the other's lines.
- A hold on the invoice lines, with notes on the lines: an invoice given to another
  customer after the plan stops the run before the notes are touched (the check walks up
  to the person, not one level).

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
from governance.dsar.export import read_export
from governance.dsar.journal import RowsChanged
from governance.dsar.plan import PlanError
from governance.inventory import load_inventory
from governance.sources.duckdb_source import FileConnector
from tests.request_worker import approve_plan

TABLES = ("customers", "invoices", "invoice_items")


class Files:
    """Chinook's three tables as files of ``kind``, an inventory of them, a store."""

    def __init__(self, db: PublicDb, kind: str, folder: Path, kept: bool = False,
                 notes: bool = False):
        self.kind, self.db = kind, db
        self.data = folder / "files"
        self.data.mkdir()
        src = sqlite3.connect(db.target)
        try:
            for table in TABLES:
                cur = src.execute(f"SELECT * FROM {table}")
                names = [d[0].lower() for d in cur.description]
                self.write(table, names, [list(r) for r in cur.fetchall()])
            if notes:   # a note on each invoice line (a table of our own on Chinook's)
                lines = src.execute("SELECT invoicelineid FROM invoice_items").fetchall()
                self.write("line_notes", ["noteid", "invoicelineid", "note"],
                           [[i + 1, r[0], f"gift wrap {i}"] for i, r in enumerate(lines)])
        finally:
            src.close()
        self.tables = (*TABLES, "line_notes") if notes else TABLES
        extra = [{"name": "line_notes", "references": [
            {"column": "invoicelineid", "to": "invoice_items.invoicelineid",
             "kind": "owner"}]}] if notes else []
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
                         "kind": "owner"}]}, *extra]}]}, sort_keys=False))

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
        for table in self.tables:
            _, rows = self.read(table)
            out[table] = sorted(hashlib.sha256(json.dumps(r, default=str).encode()).hexdigest()
                                for r in rows)
        return out

    def reassign(self, invoice: Any, to: Any) -> None:
        """Give one invoice to another customer (another program's change)."""
        self.set("invoices", "invoiceid", invoice, "customerid", to)

    def reassigned_after_plan(self, invoice: Any, to: Any, seen: dict[str, Any]
                              ) -> Callable[[Any], bool]:
        """A ``confirm`` that gives ``invoice`` to customer ``to`` between the plan and the
        run, then keeps every file's hashes in ``seen["before"]``."""
        def confirm(steps: Any) -> bool:
            self.reassign(invoice, to)
            seen["before"] = self.hashes()
            return True

        return confirm

    def set(self, table: str, where: str, value: Any, column: str, to: Any,
            first: bool = False) -> None:
        """Set ``column`` to ``to`` in the rows whose ``where`` is ``value`` (the first
        one only with ``first``), as another program would."""
        names, rows = self.read(table)
        at, col = names.index(where), names.index(column)
        for r in rows:
            if str(r[at]) == str(value):
                r[col] = to if self.kind == "parquet" else str(to)
                if first:
                    break
        self.write(table, names, rows)

    def column(self, table: str, column: str, where: str, value: Any) -> list[str]:
        names, rows = self.read(table)
        return sorted(str(r[names.index(column)]) for r in rows
                      if str(r[names.index(where)]) == str(value))

    def erasure(self, email: str, confirm: Callable[[Any], bool],
                kind: str = "erasure", **kw: Any) -> Callable[[], Any]:
        book = RequestBook(self.db.store)
        rid = book.create(kind, [f"email={email}"], "EU", "dpo").request_id
        book.verify(rid, "dpo", "identity checked on a call")
        inv = load_inventory(self.inventory)
        if kind == "erasure":
            approve_plan(self.db.store, rid, inv)
        return lambda: run_request(inv, self.db.store, rid, "dpo", confirm=confirm, **kw)


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
    run = files.erasure(email, files.reassigned_after_plan(invoice, other, seen))
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


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_customer_id_that_names_another_customer_since_the_plan_stops_the_run(
        chinook_sqlite: PublicDb, tmp_path: Path, kind: str) -> None:
    """Between the plan and the run an export renumbers two customers: the subject's id is
    the other customer's now (the invoices keep their ids, so they are the other
    customer's now). Nothing is changed."""
    files = Files(chinook_sqlite, kind, tmp_path)
    cid, email, _, other = _subject(files)
    seen: dict[str, Any] = {}

    def renumbered(steps: Any) -> bool:
        files.set("customers", "customerid", cid, "customerid", -1)
        files.set("customers", "customerid", other, "customerid", cid)
        files.set("customers", "customerid", -1, "customerid", other)
        seen["before"] = files.hashes()
        return True

    run = files.erasure(email, renumbered)
    with pytest.raises(RowsChanged, match=r"shop\.customers .*not as the plan saw them .*email"):
        run()
    assert files.hashes() == seen["before"]
    assert files.column("customers", "email", "customerid", other) == [email]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("shared", ["customers", "invoices"])
def test_a_key_two_customers_rows_share_stops_the_plan_and_is_not_exported(
        chinook_sqlite: PublicDb, tmp_path: Path, kind: str, shared: str) -> None:
    """Another customer's row is given the subject's customer id, or another customer's
    invoice the id of one of the subject's invoices (its lines following it): the erasure
    is refused with nothing changed, and an access request exports none of the other
    customer's rows."""
    files = Files(chinook_sqlite, kind, tmp_path)
    cid, email, invoice, other = _subject(files)
    theirs = files.column("invoices", "invoiceid", "customerid", other)[0]
    if shared == "customers":
        files.set("customers", "customerid", other, "customerid", cid)
    else:
        files.set("invoices", "invoiceid", theirs, "invoiceid", invoice)
        files.set("invoice_items", "invoiceid", theirs, "invoiceid", invoice)
    before = files.hashes()
    run = files.erasure(email, lambda steps: True)
    why = {"customers": r"customers: 1 row\(s\) that are not the subject's have the same "
                        r"customerid .*not unique",
           "invoices": r"shop\.invoice_items\.invoiceid, an owner reference, but are not the "
                       r"subject's alone"}[shared]
    with pytest.raises(PlanError, match=r"nothing was changed: .*" + why):
        run()
    assert files.hashes() == before

    export = files.erasure(email, lambda steps: True, "access",
                           export_dir=tmp_path / "exports")()
    got = read_export(export.export_path, export.passphrase)
    exported = {t: json.loads(got[f"data/shop/{t}.json"]) for t in TABLES
                if f"data/shop/{t}.json" in got}
    rows = {t: doc if isinstance(doc, list) else doc.get("rows", []) for t, doc in
            exported.items()}
    # Every exported row is the subject's alone (SQL-like reading of the files here).
    assert {str(r["email"]) for r in rows.get("customers", [])} == {email}
    # (With two customers named by one id, whose the invoices are cannot be told: none.)
    assert bool(rows.get("invoice_items")) == (shared == "invoices")
    mine = {i for i in files.column("invoices", "invoiceid", "customerid", cid)}
    if shared == "invoices":
        mine.discard(str(invoice))    # its id names another customer's invoice too
    for line in rows.get("invoice_items", []):
        assert str(line["invoiceid"]) in mine
    assert not any(str(r["customerid"]) != str(cid) for r in rows.get("invoices", []))


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_with_the_lines_held_an_invoice_given_away_keeps_its_notes(
        chinook_sqlite: PublicDb, tmp_path: Path, kind: str) -> None:
    """Notes on invoice lines, a legal hold on the lines: the notes of the held lines are
    kept with them (part of the held record), so when one of the subject's invoices is
    given to another customer after the plan, its lines and notes stay as they are. (Before
    holds kept the rows owned through held rows, the notes step was what checked every row
    up to the customer; with nothing kept, it stopped the run.)"""
    from governance.dsar.holds import LegalHolds

    files = Files(chinook_sqlite, kind, tmp_path, notes=True)
    cid, email, invoice, other = _subject(files)
    LegalHolds(files.db.store).place_on_table("shop.invoice_items", "litigation", "dpo",
                                              load_inventory(files.inventory))
    seen: dict[str, Any] = {}
    run = files.erasure(email, files.reassigned_after_plan(invoice, other, seen))
    outcome = run()
    after = files.hashes()
    assert {t: after[t] for t in ("invoice_items", "line_notes")} == \
        {t: seen["before"][t] for t in ("invoice_items", "line_notes")}
    assert files.column("invoices", "customerid", "invoiceid", invoice) == [str(other)]
    assert outcome.status == "completed", outcome.remaining


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_hold_on_invoices_keeps_the_customer_row_they_point_at(
        chinook_sqlite: PublicDb, tmp_path: Path, kind: str) -> None:
    """Files have no foreign keys: invoices point at their customer through a reference
    the inventory declares. A legal hold on the invoices keeps them, their lines, and the
    customer row they point at (before, the customer row was deleted and the held invoices
    pointed at nobody); every other file is unchanged, and the run says why it kept the
    customer."""
    from governance.dsar.holds import LegalHolds

    files = Files(chinook_sqlite, kind, tmp_path)
    cid, email, _, _ = _subject(files)
    LegalHolds(files.db.store).place_on_table("shop.invoices", "tax audit", "dpo",
                                              load_inventory(files.inventory))
    before = files.hashes()
    outcome = files.erasure(email, lambda steps: True)()
    assert outcome.status == "completed", outcome.remaining
    assert files.hashes() == before
    assert files.column("customers", "email", "customerid", cid) == [email]
    assert any("legal hold on invoices" in why for why in outcome.kept.values()), outcome.kept
