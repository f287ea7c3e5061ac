"""Independent checks, in plain SQL written for these schemas (never through govkit).

``subject_rows`` is the ownership model of notes/OWNERSHIP.md applied by hand to each
schema, for an inventory written from the foreign keys alone:

- Chinook: a customer owns their ``customers`` row, their ``invoices`` and those invoices'
  ``invoice_items``; their support rep (an employee) is another person. An employee owns
  only their ``employees`` row (``customers.SupportRepId`` and ``employees.ReportsTo`` go
  from one person table to another: mere references).
- TPC-DS: a customer owns their ``customer`` row, the sales and returns whose customer
  columns name them and no one else (a ``web_sales`` row billed to A and shipped to B is
  shared, owned by neither), the returns whose customer column is empty but whose sale is
  theirs, and the web pages naming them. Their ``customer_address`` is a *detail* row
  (``detail_rows``): exported with access, erased only when no other row refers to it.
  The pickers below never choose the owner of a web page (rows reached through it at
  distance two are not modelled here).

Names are written in lower case without quotes, which both SQLite (case-insensitive) and
PostgreSQL (folded to lower case) resolve for both schemas.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

Key = tuple[Any, ...]


class Db:
    """A plain connection to one loaded copy (SQLite file or PostgreSQL database)."""

    def __init__(self, kind: str, target: str | Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.conn: Any = sqlite3.connect(target)
        else:
            self.conn = psycopg.connect(str(target), autocommit=True)

    def query(self, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``text`` (written with ``?`` placeholders) for ``params``."""
        if self.kind == "postgres":
            text = text.replace("?", "%s")
        return [tuple(r) for r in self.conn.execute(text, params).fetchall()]

    def execute(self, *statements: str) -> None:
        """Run ``statements`` (no parameters), committed."""
        for text in statements:
            self.conn.execute(text)
        if self.kind == "sqlite":
            self.conn.commit()

    def tables(self) -> list[str]:
        """Base tables; a partitioned table once, never its partitions; no views."""
        if self.kind == "sqlite":
            return [r[0] for r in self.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                "'sqlite_%' ORDER BY name")]
        return [r[0] for r in self.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "ORDER BY c.relname")]

    def pk_columns(self, table: str) -> list[str]:
        """The primary-key columns of ``table`` in key order (empty when it has none)."""
        if self.kind == "sqlite":
            info = self.conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            return [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        return [r[0] for r in self.query(
            "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE i.indisprimary AND n.nspname = 'public' AND c.relname = ? ORDER BY k.ord",
            (table,))]

    def rows(self, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and every row of ``table``."""
        if self.kind == "sqlite":
            cur = self.conn.execute(f'SELECT * FROM "{table}"')
        else:
            cur = self.conn.execute(sql.SQL("SELECT * FROM {}").format(
                sql.Identifier("public", table)))
        return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _keys(db: Db, text: str, *params: Any) -> set[Key]:
    return set(db.query(text, params))


def subject_rows(db: Db, dataset: str, subject_id: int, person: str = "customer"
                 ) -> dict[str, set[Key]]:
    """Primary keys, per table, of the rows the subject owns (tables with none left out)."""
    if (dataset, person) == ("chinook", "customer"):
        out = {
            "customers": _keys(db, "SELECT customerid FROM customers WHERE customerid = ?",
                               subject_id),
            "invoices": _keys(db, "SELECT invoiceid FROM invoices WHERE customerid = ?",
                              subject_id),
            "invoice_items": _keys(db, "SELECT ii.invoicelineid FROM invoice_items ii JOIN "
                                   "invoices i ON i.invoiceid = ii.invoiceid "
                                   "WHERE i.customerid = ?", subject_id),
        }
    elif (dataset, person) == ("chinook", "employee"):
        out = {"employees": _keys(db, "SELECT employeeid FROM employees WHERE employeeid = ?",
                                  subject_id)}
    elif (dataset, person) == ("tpcds", "customer"):
        c = subject_id
        out = {
            "customer": _keys(db, "SELECT c_customer_sk FROM customer WHERE c_customer_sk = ?",
                              c),
            "store_sales": _keys(db, "SELECT ss_item_sk, ss_ticket_number FROM store_sales "
                                 "WHERE ss_customer_sk = ?", c),
            "store_returns": _keys(
                db, "SELECT sr_item_sk, sr_ticket_number FROM store_returns r WHERE "
                "r.sr_customer_sk = ? OR (r.sr_customer_sk IS NULL AND EXISTS (SELECT 1 "
                "FROM store_sales s WHERE s.ss_item_sk = r.sr_item_sk AND "
                "s.ss_ticket_number = r.sr_ticket_number AND s.ss_customer_sk = ?))", c, c),
            "web_sales": _keys(
                db, "SELECT ws_item_sk, ws_order_number FROM web_sales WHERE "
                "(ws_bill_customer_sk = ? AND (ws_ship_customer_sk = ? OR "
                "ws_ship_customer_sk IS NULL)) OR (ws_ship_customer_sk = ? AND "
                "ws_bill_customer_sk IS NULL)", c, c, c),
            "web_returns": _keys(
                db, "SELECT wr_item_sk, wr_order_number FROM web_returns WHERE "
                "(wr_refunded_customer_sk = ? AND (wr_returning_customer_sk = ? OR "
                "wr_returning_customer_sk IS NULL)) OR (wr_returning_customer_sk = ? AND "
                "wr_refunded_customer_sk IS NULL)", c, c, c),
            "web_page": _keys(db, "SELECT wp_web_page_sk FROM web_page WHERE "
                              "wp_customer_sk = ?", c),
        }
    else:
        raise ValueError(f"no ownership oracle for {dataset} {person}")
    return {t: keys for t, keys in out.items() if keys}


def detail_rows(db: Db, dataset: str, customer_id: int) -> dict[str, set[Key]]:
    """Rows holding personal detail of the subject that the subject's rows point at."""
    if dataset == "tpcds":
        keys = _keys(db, "SELECT c_current_addr_sk FROM customer WHERE c_customer_sk = ? "
                     "AND c_current_addr_sk IS NOT NULL", customer_id)
        return {"customer_address": keys} if keys else {}
    return {}


def row_hashes(db: Db) -> dict[str, dict[Key, str]]:
    """Every row of every table: primary key -> sha256 of the whole row. A table without
    a primary key is keyed by the row's own hash (and its occurrence number)."""
    out: dict[str, dict[Key, str]] = {}
    for table in db.tables():
        pk = [c.lower() for c in db.pk_columns(table)]
        cols, rows = db.rows(table)
        idx = [[c.lower() for c in cols].index(k) for k in pk]
        hashes: dict[Key, str] = {}
        for row in rows:
            digest = hashlib.sha256(json.dumps(
                dict(zip(cols, row, strict=True)), default=str, sort_keys=True).encode()
            ).hexdigest()
            if idx:
                hashes[tuple(row[i] for i in idx)] = digest
            else:
                n = sum(1 for k in hashes if k[:2] == ("#", digest))
                hashes[("#", digest, n)] = digest
        out[table] = hashes
    return out


def differences(before: dict[str, dict[Key, str]], after: dict[str, dict[Key, str]]
                ) -> dict[str, dict[str, set[Key]]]:
    """Per table: keys of rows removed, added and changed (tables unchanged left out)."""
    out: dict[str, dict[str, set[Key]]] = {}
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table, {}), after.get(table, {})
        diff = {"removed": set(b) - set(a), "added": set(a) - set(b),
                "changed": {k for k in set(a) & set(b) if a[k] != b[k]}}
        if any(diff.values()):
            out[table] = diff
    return out


def assert_only_removed(before: dict[str, dict[Key, str]], after: dict[str, dict[Key, str]],
                        removed: dict[str, set[Key]]) -> None:
    """Exactly ``removed`` (keys per table) is gone between the two hashings; no row was
    added or changed anywhere."""
    diff = differences(before, after)
    assert {t: d["removed"] for t, d in diff.items()} == removed
    assert all(not d["added"] and not d["changed"] for d in diff.values()), diff


def keys_of(db: Db, table: str, rows: list[dict[str, Any]]) -> set[Key]:
    """The primary keys of ``rows`` (dicts as govkit returns them) of ``table``."""
    pk = db.pk_columns(table)
    out = set()
    for row in rows:
        lower = {str(k).lower(): v for k, v in row.items()}
        out.add(tuple(lower.get(c.lower()) for c in pk))
    return out


# -- choosing subjects by SQL ---------------------------------------------------------

def chinook_customer(db: Db) -> tuple[int, str, str]:
    """(id, e-mail, phone) of the first customer with invoices and a phone number."""
    return db.query("SELECT customerid, email, phone FROM customers c WHERE phone IS NOT "
                    "NULL AND EXISTS (SELECT 1 FROM invoices i WHERE i.customerid = "
                    "c.customerid) ORDER BY customerid LIMIT 1")[0]


def chinook_employee_with_customers(db: Db) -> tuple[int, str]:
    """(id, e-mail) of the employee who is support rep of the most customers."""
    return db.query("SELECT e.employeeid, e.email FROM employees e JOIN customers c ON "
                    "c.supportrepid = e.employeeid GROUP BY e.employeeid, e.email "
                    "ORDER BY count(*) DESC, e.employeeid LIMIT 1")[0]


_TPCDS_PLAIN = """
    c.c_email_address IS NOT NULL
    AND (SELECT count(*) FROM customer o WHERE o.c_email_address = c.c_email_address) = 1
    AND NOT EXISTS (SELECT 1 FROM web_page p WHERE p.wp_customer_sk = c.c_customer_sk)
"""


def tpcds_customer_sharing_address(db: Db, with_returns: bool = False) -> tuple[int, str]:
    """(id, e-mail) of a customer whose address another customer shares, who has store
    sales, no web sale or web return at all, and whose sales no one else returned (so
    nothing of anyone else points at what erasure deletes)."""
    returns = ("AND EXISTS (SELECT 1 FROM store_returns r WHERE r.sr_customer_sk = "
               "c.c_customer_sk)") if with_returns else ""
    return db.query(f"""
        SELECT c.c_customer_sk, c.c_email_address FROM customer c
        WHERE {_TPCDS_PLAIN}
          AND EXISTS (SELECT 1 FROM customer o WHERE o.c_current_addr_sk =
                      c.c_current_addr_sk AND o.c_customer_sk <> c.c_customer_sk)
          AND EXISTS (SELECT 1 FROM store_sales s WHERE s.ss_customer_sk = c.c_customer_sk)
          AND NOT EXISTS (SELECT 1 FROM web_sales w WHERE c.c_customer_sk IN
                          (w.ws_bill_customer_sk, w.ws_ship_customer_sk))
          AND NOT EXISTS (SELECT 1 FROM web_returns w WHERE c.c_customer_sk IN
                          (w.wr_refunded_customer_sk, w.wr_returning_customer_sk))
          AND NOT EXISTS (SELECT 1 FROM store_returns r JOIN store_sales s ON
                          s.ss_item_sk = r.sr_item_sk AND s.ss_ticket_number =
                          r.sr_ticket_number WHERE s.ss_customer_sk = c.c_customer_sk
                          AND (r.sr_customer_sk IS NULL OR r.sr_customer_sk <>
                               c.c_customer_sk))
          {returns}
        ORDER BY c.c_customer_sk LIMIT 1""")[0]


def tpcds_customer_shipping_to_another(db: Db) -> tuple[int, str]:
    """(id, e-mail) of a customer billed for a web sale shipped to another customer."""
    return db.query(f"""
        SELECT c.c_customer_sk, c.c_email_address FROM customer c
        WHERE {_TPCDS_PLAIN}
          AND EXISTS (SELECT 1 FROM web_sales w WHERE w.ws_bill_customer_sk =
                      c.c_customer_sk AND w.ws_ship_customer_sk <> c.c_customer_sk)
        ORDER BY c.c_customer_sk LIMIT 1""")[0]


def tpcds_customer_whose_sale_another_returned(db: Db, returner: str = "other"
                                               ) -> tuple[int, str] | None:
    """(id, e-mail) of a customer with a store sale that a return points at through the
    composite foreign key (sr_item_sk, sr_ticket_number) -> store_sales, the return naming
    another customer (``returner="other"``) or no customer (``"nobody"``); None if the
    loaded subset has none."""
    who = ("r.sr_customer_sk IS NOT NULL AND r.sr_customer_sk <> c.c_customer_sk"
           if returner == "other" else "r.sr_customer_sk IS NULL")
    rows = db.query(f"""
        SELECT c.c_customer_sk, c.c_email_address FROM customer c
        WHERE {_TPCDS_PLAIN}
          AND EXISTS (SELECT 1 FROM store_returns r JOIN store_sales s ON
                      s.ss_item_sk = r.sr_item_sk AND s.ss_ticket_number =
                      r.sr_ticket_number WHERE s.ss_customer_sk = c.c_customer_sk
                      AND {who})
        ORDER BY c.c_customer_sk LIMIT 1""")
    return rows[0] if rows else None

