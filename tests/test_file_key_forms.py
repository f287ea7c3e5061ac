"""Requests on file sources whose ids are written more than one way, as real exports write
them: pandas writes an integer column holding a null as ``14.0``, a JSON-lines export
writes ``"14"`` in one line and ``14`` in the next, a Parquet file holds ids as doubles.
On Chinook (Luis Rocha, MIT licence; nobody on this project wrote it) exported to CSV,
JSON lines and Parquet: customers, invoices, invoice lines.

Found by a helper: erasures ended ``completed`` with the subject's invoices and lines left,
access ended ``completed`` without them, and a JSON-lines invoice id written ``"4"`` for
another customer and ``4`` for the subject had the other customer's lines deleted. File
sources now compare keys by one rule (``key_text``) in the plan, the checks and the
rewrites.

Expectations come from Chinook's SQLite file read here with SQL, and from per-row hashes
of every file read with csv / json / pyarrow.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from public_data.fixtures import PublicDb
from public_data.oracle import chinook_customer

from governance.dsar import RequestBook, run_request
from governance.dsar.export import open_export
from governance.dsar.plan import PlanError
from governance.inventory import load_inventory
from governance.sources.key_text import key_text, key_text_array, key_text_sql
from tests.request_worker import approve_plan

TABLES = {"customers": "customerid", "invoices": "invoiceid", "invoice_items": "invoicelineid"}


def _export(db: PublicDb, kind: str, folder: Path, rewrite: Any) -> tuple[Path, Path]:
    """Chinook's three tables as ``kind`` files, each row passed through ``rewrite(table,
    row)`` first; an inventory of them."""
    data = folder / "files"
    data.mkdir()
    src = sqlite3.connect(db.target)
    try:
        for table in TABLES:
            cur = src.execute(f"SELECT * FROM {table}")
            names = [d[0].lower() for d in cur.description]
            rows = [rewrite(table, dict(zip(names, r, strict=True))) for r in cur.fetchall()]
            path = data / f"{table}.{kind}"
            if kind == "csv":
                with path.open("w", newline="", encoding="utf-8") as f:
                    w = csv.writer(f)
                    w.writerow(names)
                    w.writerows([["" if r[n] is None else r[n] for n in names] for r in rows])
            elif kind == "jsonl":
                # "__num:1.4e1" is written as the bare JSON number 1.4e1.
                path.write_text("".join(re.sub(r'"__num:([^"]*)"', r"\1", json.dumps(r)) + "\n"
                                        for r in rows))
            else:
                pq.write_table(pa.Table.from_pylist(rows), path)
    finally:
        src.close()
    inventory = folder / "files.yaml"
    inventory.write_text(yaml.safe_dump({
        "version": 1, "organization": "chinook files", "sources": [{
            "name": "shop", "kind": kind, "connection": {"path": str(data)},
            "owner": "dpo@example.org", "jurisdictions": ["EU"], "tables": [
                {"name": "customers", "subject_key": "customerid",
                 "columns": {"email": {"category": "contact.email"}}},
                {"name": "invoices", "references": [
                    {"column": "customerid", "to": "customers.customerid", "kind": "owner"}]},
                {"name": "invoice_items", "references": [
                    {"column": "invoiceid", "to": "invoices.invoiceid", "kind": "owner"}]}]}]},
        sort_keys=False))
    return data, inventory


def _read(data: Path, kind: str, table: str) -> list[dict[str, Any]]:
    path = data / f"{table}.{kind}"
    if kind == "csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if kind == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pq.read_table(path).to_pylist()


def _hashes(data: Path, kind: str) -> dict[str, Counter[str]]:
    return {t: Counter(hashlib.sha256(json.dumps(r, sort_keys=True, default=str).encode())
                       .hexdigest() for r in _read(data, kind, t)) for t in TABLES}


def _ids(rows: list[dict[str, Any]], table: str) -> set[int]:
    # (ids moved up by 1e15 in a layout come back as Chinook's)
    return {int(float(r[TABLES[table]])) % 10 ** 15 for r in rows}


def _subject(db: PublicDb) -> tuple[int, str, dict[str, set[int]]]:
    """The customer, their e-mail, and their rows' ids by table (SQL on Chinook)."""
    check = db.connect()
    try:
        cid, email, _ = chinook_customer(check)
        invoices = {r[0] for r in check.query(
            "SELECT invoiceid FROM invoices WHERE customerid = ?", (cid,))}
        lines = {r[0] for r in check.query(
            "SELECT l.invoicelineid FROM invoice_items l JOIN invoices i ON i.invoiceid = "
            "l.invoiceid WHERE i.customerid = ?", (cid,))}
    finally:
        check.close()
    return cid, email, {"customers": {cid}, "invoices": invoices, "invoice_items": lines}


def _request(db: PublicDb, inventory: Path, email: str, kind: str) -> Any:
    book = RequestBook(db.store)
    rid = book.create(kind, [f"email={email}"], "EU", "dpo").request_id
    book.verify(rid, "dpo", "identity checked on a call")
    if kind == "erasure":
        approve_plan(db.store, rid, inventory)
    return run_request(load_inventory(inventory), db.store, rid, "dpo",
                       confirm=lambda steps: True)


def _every_other(column: str, form: Any) -> Any:
    """A rewrite writing ``column`` as ``form(value)`` in the rows with an even key."""
    def rewrite(table: str, row: dict[str, Any]) -> dict[str, Any]:
        if column in row and row[column] is not None and row[TABLES[table]] % 2 == 0:
            row[column] = form(row[column])
        return row
    return rewrite


LAYOUTS = {
    # pandas: an integer column with a null is written as floats
    "csv, customer ids as 14.0 in every other row": ("csv", _every_other("customerid",
                                                                         float)),
    "jsonl, customer ids as \"14\" in every other line": ("jsonl",
                                                        _every_other("customerid", str)),
    "jsonl, invoice ids as \"4\" in every other line": ("jsonl",
                                                      _every_other("invoiceid", str)),
    "jsonl, customer ids as 14.0 in every other line": ("jsonl",
                                                      _every_other("customerid", float)),
    "parquet, customer ids as doubles": (
        "parquet", lambda t, r: {**r, "customerid": float(r["customerid"])}
        if t == "customers" else r),
    "parquet, lines' invoice ids as doubles": (
        "parquet", lambda t, r: {**r, "invoiceid": float(r["invoiceid"])}
        if t == "invoice_items" else r),
    # Arrow writes these doubles 1e+15 and 1.000000000000004e+15; Python and DuckDB write
    # them whole (the erasure deleted the lines, then stopped: their invoices not found).
    "parquet, invoice ids as doubles from 1e15": (
        "parquet", lambda t, r: {**r, "invoiceid": float(10 ** 15 + r["invoiceid"])}
        if t != "customers" else r),
    # A column of strings and numbers (DuckDB reads it as JSON), numbers written 1.4e1.
    "jsonl, customer ids as \"14\" and 1.4e1 in some lines": (
        "jsonl", lambda t, r: {**r, "customerid": (
            str(r["customerid"]) if r[TABLES[t]] % 3 == 0 else
            f"__num:{r['customerid'] / 10}e1" if r[TABLES[t]] % 3 == 1 else r["customerid"])}
        if r.get("customerid") is not None else r),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_ids_written_another_way_are_still_the_subjects(chinook_sqlite: PublicDb,
                                                        tmp_path: Path, layout: str) -> None:
    kind, rewrite = LAYOUTS[layout]
    _, email, own = _subject(chinook_sqlite)
    data, inventory = _export(chinook_sqlite, kind, tmp_path, rewrite)
    before = {t: _read(data, kind, t) for t in TABLES}

    access = _request(chinook_sqlite, inventory, email, "access")
    assert access.status == "completed" and not access.not_followed
    files = open_export(access.export_path, access.passphrase)
    exported = {name.split("/")[2].removesuffix(".json"): _ids(rows, name.split("/")[2]
                                                               .removesuffix(".json"))
                for name, rows in files.items() if name.startswith("data/") and rows}
    assert exported == own, "the export is not exactly the customer's rows"

    erasure = _request(chinook_sqlite, inventory, email, "erasure")
    assert erasure.status == "completed", erasure.remaining
    for t in TABLES:
        after = _read(data, kind, t)
        assert _ids(after, t) == _ids(before[t], t) - own[t], t
        # Every other row as it was, byte for byte as read.
        kept = [r for r in before[t] if int(float(r[TABLES[t]])) % 10 ** 15 not in own[t]]
        assert Counter(json.dumps(r, sort_keys=True, default=str) for r in kept) == \
            Counter(json.dumps(r, sort_keys=True, default=str) for r in after), t


def test_an_invoice_id_another_customer_holds_written_as_text_stops_the_erasure(
        chinook_sqlite: PublicDb, tmp_path: Path) -> None:
    """Another customer's invoice (and its lines) carries the subject's invoice id written
    as text (``"4"`` against ``4``): the plan stops, nothing changes (the lines of both
    were deleted before), and access exports none of the other customer's lines, naming
    the rows it leaves out."""
    cid, email, own = _subject(chinook_sqlite)
    theirs = min(own["invoices"])
    check = chinook_sqlite.connect()
    try:
        other = check.query("SELECT min(invoiceid) FROM invoices WHERE customerid <> ?",
                            (cid,))[0][0]
        other_lines = {r[0] for r in check.query(
            "SELECT invoicelineid FROM invoice_items WHERE invoiceid = ?", (other,))}
    finally:
        check.close()

    def rewrite(table: str, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("invoiceid") == other:
            row["invoiceid"] = str(theirs)
        return row

    data, inventory = _export(chinook_sqlite, "jsonl", tmp_path, rewrite)
    before = _hashes(data, "jsonl")
    with pytest.raises(PlanError, match="not the subject's alone"):
        _request(chinook_sqlite, inventory, email, "erasure")
    assert _hashes(data, "jsonl") == before

    access = _request(chinook_sqlite, inventory, email, "access")
    files = open_export(access.export_path, access.passphrase)
    lines = {r["invoicelineid"] for name, rows in files.items()
             if name.endswith("/invoice_items.json") for r in rows}
    assert lines and not lines & other_lines
    assert "shop.invoice_items" in access.not_followed


def test_the_key_rule_is_the_same_in_python_arrow_and_duckdb() -> None:
    """``key_text`` written three ways gives the same text for the same values."""
    import duckdb

    # (Arrow's own cast writes 1e+15 and 1.23456789012e+11, where Python and DuckDB write
    # the whole number: ids of a Parquet double column from 1e11 on were missed.)
    doubles = [14.0, 1.5, -3.0, 0.0, -0.0, 1e20, 100.0, 123456789012.0, 1e15, 1e15 + 2,
               9.5e15, 2.0 ** 53, 1e16, 1e-7, 0.1]
    texts = ["14", "14.0", "14.00", "014", "014.0", "-3.00", "1.5", "abc", "0.0", "1e5"]
    py_d, py_t = [key_text(v) for v in doubles], [key_text(v) for v in texts]
    assert py_t == ["14", "14", "14", "014", "014.0", "-3", "1.5", "abc", "0", "1e5"]
    assert key_text_array(pa.array(doubles)).to_pylist() == py_d
    assert key_text_array(pa.array(texts)).to_pylist() == py_t
    con = duckdb.connect()
    sql_d = [r[0] for r in con.execute(
        f"SELECT {key_text_sql('x', 'DOUBLE')} FROM unnest(?::DOUBLE[]) t(x)",
        [doubles]).fetchall()]
    sql_t = [r[0] for r in con.execute(
        f"SELECT {key_text_sql('x', 'VARCHAR')} FROM unnest(?::VARCHAR[]) t(x)",
        [texts]).fetchall()]
    sql_j = [r[0] for r in con.execute(
        f"SELECT {key_text_sql('x', 'JSON')} FROM unnest(?::JSON[]) t(x)",
        [['"14"', "14", "14.0", '"abc"', "1e1", "1.0E2", '"1e1"', "1e15"]]).fetchall()]
    singles = pa.array([0.1, 14.0, 1e15, None], pa.float32())    # read by Python as doubles
    sql_s = [r[0] for r in con.execute(
        f"SELECT {key_text_sql('x', 'FLOAT')} FROM unnest(?::FLOAT[]) t(x)",
        [singles.to_pylist()]).fetchall()]
    assert key_text_array(singles).to_pylist() == [key_text(v) for v in singles.to_pylist()] \
        == sql_s == ["0.10000000149011612", "14", "999999986991104", None]
    # A JSON number is compared as Python's json module reads it (1e1 is 10.0).
    assert py_d[7:12] == ["123456789012", "1000000000000000", "1000000000000002",
                          "9500000000000000", "9007199254740992"]
    assert (sql_d, sql_t) == (py_d, py_t)
    assert sql_j == [key_text(json.loads(v)) for v in
                     ['"14"', "14", "14.0", '"abc"', "1e1", "1.0E2", '"1e1"', "1e15"]]
