"""Oracle's sample schemas CO (customer orders) and HR (human resources).

``sample_schemas/`` holds the files of GitHub's oracle-samples/db-sample-schemas at commit
6660bad, unchanged, with their licence (``LICENSE.txt``: MIT). The data comes from the
published ``*_populate.sql`` scripts, parsed here statement by statement (Oracle's
``TO_DATE``/``TO_TIMESTAMP`` read with their own format masks); the tables are created by
the DDL below, which keeps every primary key, unique key and foreign key that
``*_create.sql`` declares (Oracle's identity columns become plain integers: the scripts
give every id). Products' JSON details and the stores' logos are left out (NULL).

CO: customers are people (e-mail, full name); an order and a shipment each name their
customer (and a store); an order line points at its order *and* at the shipment that
carried it (a composite key: order id, line number); inventory belongs to stores.
HR: employees are people (name, e-mail, phone, salary); an employee points at their
manager, a department at its manager, a job-history row (key: employee, start date) at
its employee and department.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).with_name("sample_schemas")

CO_TABLES = ("customers", "stores", "products", "orders", "shipments", "order_items",
             "inventory")
HR_TABLES = ("regions", "countries", "locations", "departments", "jobs", "employees",
             "job_history")

# Per table: (column, PostgreSQL type, SQLite type), NOT NULLs as in *_create.sql.
_CO = {
    "customers": [("customer_id", "integer not null", "integer not null"),
                  ("email_address", "varchar(255) not null", "text not null"),
                  ("full_name", "varchar(255) not null", "text not null")],
    "stores": [("store_id", "integer not null", "integer not null"),
               ("store_name", "varchar(255) not null", "text not null"),
               ("web_address", "varchar(100)", "text"),
               ("physical_address", "varchar(512)", "text"),
               ("latitude", "numeric(9,6)", "real"), ("longitude", "numeric(9,6)", "real")],
    "products": [("product_id", "integer not null", "integer not null"),
                 ("product_name", "varchar(255) not null", "text not null"),
                 ("unit_price", "numeric(10,2)", "real")],
    "orders": [("order_id", "integer not null", "integer not null"),
               ("order_tms", "timestamp not null", "text not null"),
               ("customer_id", "integer not null", "integer not null"),
               ("order_status", "varchar(10) not null", "text not null"),
               ("store_id", "integer not null", "integer not null")],
    "shipments": [("shipment_id", "integer not null", "integer not null"),
                  ("store_id", "integer not null", "integer not null"),
                  ("customer_id", "integer not null", "integer not null"),
                  ("delivery_address", "varchar(512) not null", "text not null"),
                  ("shipment_status", "varchar(100) not null", "text not null")],
    "order_items": [("order_id", "integer not null", "integer not null"),
                    ("line_item_id", "integer not null", "integer not null"),
                    ("product_id", "integer not null", "integer not null"),
                    ("unit_price", "numeric(10,2) not null", "real not null"),
                    ("quantity", "integer not null", "integer not null"),
                    ("shipment_id", "integer", "integer")],
    "inventory": [("inventory_id", "integer not null", "integer not null"),
                  ("store_id", "integer not null", "integer not null"),
                  ("product_id", "integer not null", "integer not null"),
                  ("product_inventory", "integer not null", "integer not null")],
}
_HR = {
    "regions": [("region_id", "integer not null", "integer not null"),
                ("region_name", "varchar(25)", "text")],
    "countries": [("country_id", "char(2) not null", "text not null"),
                  ("country_name", "varchar(60)", "text"), ("region_id", "integer", "integer")],
    "locations": [("location_id", "integer not null", "integer not null"),
                  ("street_address", "varchar(40)", "text"),
                  ("postal_code", "varchar(12)", "text"),
                  ("city", "varchar(30) not null", "text not null"),
                  ("state_province", "varchar(25)", "text"),
                  ("country_id", "char(2)", "text")],
    "departments": [("department_id", "integer not null", "integer not null"),
                    ("department_name", "varchar(30) not null", "text not null"),
                    ("manager_id", "integer", "integer"),
                    ("location_id", "integer", "integer")],
    "jobs": [("job_id", "varchar(10) not null", "text not null"),
             ("job_title", "varchar(35) not null", "text not null"),
             ("min_salary", "integer", "integer"), ("max_salary", "integer", "integer")],
    "employees": [("employee_id", "integer not null", "integer not null"),
                  ("first_name", "varchar(20)", "text"),
                  ("last_name", "varchar(25) not null", "text not null"),
                  ("email", "varchar(25) not null", "text not null"),
                  ("phone_number", "varchar(20)", "text"),
                  ("hire_date", "date not null", "text not null"),
                  ("job_id", "varchar(10) not null", "text not null"),
                  ("salary", "numeric(8,2)", "real"),
                  ("commission_pct", "numeric(2,2)", "real"),
                  ("manager_id", "integer", "integer"),
                  ("department_id", "integer", "integer")],
    "job_history": [("employee_id", "integer not null", "integer not null"),
                    ("start_date", "date not null", "text not null"),
                    ("end_date", "date not null", "text not null"),
                    ("job_id", "varchar(10) not null", "text not null"),
                    ("department_id", "integer", "integer")],
}
# Keys as *_create.sql declares them: (table, primary key, unique keys, foreign keys).
_CO_KEYS: dict[str, tuple[tuple[str, ...], list[tuple[str, ...]], list[tuple[str, str, str]]]] = {
    "customers": (("customer_id",), [("email_address",)], []),
    "stores": (("store_id",), [("store_name",)], []),
    "products": (("product_id",), [], []),
    "orders": (("order_id",), [], [("customer_id", "customers", "customer_id"),
                                   ("store_id", "stores", "store_id")]),
    "shipments": (("shipment_id",), [], [("store_id", "stores", "store_id"),
                                         ("customer_id", "customers", "customer_id")]),
    "order_items": (("order_id", "line_item_id"), [("product_id", "order_id")],
                    [("order_id", "orders", "order_id"),
                     ("shipment_id", "shipments", "shipment_id"),
                     ("product_id", "products", "product_id")]),
    "inventory": (("inventory_id",), [("store_id", "product_id")],
                  [("store_id", "stores", "store_id"), ("product_id", "products", "product_id")]),
}
_HR_KEYS: dict[str, tuple[tuple[str, ...], list[tuple[str, ...]], list[tuple[str, str, str]]]] = {
    "regions": (("region_id",), [], []),
    "countries": (("country_id",), [], [("region_id", "regions", "region_id")]),
    "locations": (("location_id",), [], [("country_id", "countries", "country_id")]),
    "departments": (("department_id",), [], [("location_id", "locations", "location_id"),
                                             ("manager_id", "employees", "employee_id")]),
    "jobs": (("job_id",), [], []),
    "employees": (("employee_id",), [("email",)],
                  [("department_id", "departments", "department_id"),
                   ("job_id", "jobs", "job_id"), ("manager_id", "employees", "employee_id")]),
    "job_history": (("employee_id", "start_date"), [],
                    [("job_id", "jobs", "job_id"), ("employee_id", "employees", "employee_id"),
                     ("department_id", "departments", "department_id")]),
}
DATASETS = {"co": (_CO, _CO_KEYS, "co_populate.sql"), "hr": (_HR, _HR_KEYS, "hr_populate.sql")}

_INSERT = re.compile(r"INSERT\s+INTO\s+(\w+)\s*(\(([^)]*)\))?\s*VALUES\s*\(", re.I)
_TOKEN = re.compile(r"\s*(?:'((?:[^']|'')*)'|(-?(?:\d+(?:\.\d*)?|\.\d+))|(NULL)\b"
                    r"|([A-Za-z][\w.]*)\s*\(|([A-Za-z][\w.]*)|(,)|(\)))", re.I | re.S)
_MASKS = {"DD": "%d", "MON": "%b", "MM": "%m", "YYYY": "%Y", "HH24": "%H", "MI": "%M",
          "SS": "%S"}


def _oracle_time(text: str, mask: str, kind: str) -> date | datetime:
    """An Oracle TO_DATE/TO_TIMESTAMP literal read with its own format mask."""
    fraction = ""
    if kind == "TO_TIMESTAMP" and mask.upper().endswith(".FF"):
        text, fraction = text.rsplit(".", 1)
        mask = mask[:-3]
    fmt = re.sub(r"HH24|YYYY|MON|DD|MM|MI|SS", lambda m: _MASKS[m.group(0)], mask.upper())
    got = datetime.strptime(text.title(), fmt)
    if kind == "TO_DATE":
        return got.date()
    return got.replace(microsecond=int((fraction + "000000")[:6])) if fraction else got


def _values(sql: str, at: int) -> tuple[list[Any], int]:
    """The values of one VALUES ( ... ) list starting after its '(' at ``at``."""
    out: list[Any] = []
    while True:
        m = _TOKEN.match(sql, at)
        if m is None:
            raise ValueError(f"cannot read a value at {sql[at:at + 60]!r}")
        at = m.end()
        text, num, null, func, name, comma, close = m.groups()
        if text is not None:
            out.append(text.replace("''", "'"))
        elif num is not None:
            out.append(Decimal(num) if "." in num else int(num))
        elif null is not None or name is not None:   # a PL/SQL variable: left out
            out.append(None)
        elif func is not None:
            args, at = _values(sql, at)
            kind = func.upper()
            out.append(_oracle_time(args[0], args[1], kind)
                       if kind in ("TO_DATE", "TO_TIMESTAMP") else None)
        elif close is not None:
            return out, at
        elif comma is None:
            raise ValueError(f"unexpected {m.group(0)!r}")


def rows(dataset: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, row) for each INSERT of the dataset's populate script, in script order;
    only the columns of the DDL here are kept."""
    columns, keys, script = DATASETS[dataset]
    sql = (FOLDER / script).read_text(encoding="utf-8")
    issued: dict[str, int] = {}     # an identity key the script leaves out: 1, 2, ...
    for m in _INSERT.finditer(sql):
        table = m.group(1).lower()
        names = [c.strip().lower() for c in m.group(3).split(",")] if m.group(3) \
            else [c for c, _, _ in columns[table]]
        values, _ = _values(sql, m.end())
        if len(values) != len(names):
            raise ValueError(f"{script}: {table}: {len(names)} columns, {len(values)} values")
        row = dict(zip(names, values, strict=True))
        (pk, *more), _, _ = keys[table]
        if not more and pk not in row:
            row[pk] = issued[table] = issued.get(table, 0) + 1
        yield table, {c: row.get(c) for c, _, _ in columns[table]}


def ddl(dataset: str, kind: str, schema: str | None = None) -> list[str]:
    """CREATE TABLE statements (``kind``: "sqlite" or "postgres") with primary and unique
    keys; the foreign keys come from ``foreign_keys`` (added after the rows)."""
    columns, keys, _ = DATASETS[dataset]
    q = (lambda t: f'"{schema}"."{t}"') if schema else (lambda t: f'"{t}"')
    out = []
    for table, cols in columns.items():
        pk, uniques, fks = keys[table]
        parts = [f'"{c}" {pg if kind == "postgres" else lite}' for c, pg, lite in cols]
        parts.append(f"PRIMARY KEY ({', '.join(pk)})")
        parts += [f"UNIQUE ({', '.join(u)})" for u in uniques]
        if kind == "sqlite":     # SQLite takes foreign keys only in CREATE TABLE
            parts += [f'FOREIGN KEY ("{c}") REFERENCES "{t}" ("{tc}")' for c, t, tc in fks]
        out.append(f"CREATE TABLE {q(table)} ({', '.join(parts)})")
    return out


def foreign_keys(dataset: str, schema: str | None = None) -> list[str]:
    """ALTER TABLE statements adding the dataset's foreign keys (PostgreSQL)."""
    _, keys, _ = DATASETS[dataset]
    q = (lambda t: f'"{schema}"."{t}"') if schema else (lambda t: f'"{t}"')
    return [f"ALTER TABLE {q(table)} ADD FOREIGN KEY (\"{c}\") REFERENCES {q(t)} (\"{tc}\")"
            for table, (_, _, fks) in keys.items() for c, t, tc in fks]


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return v


def load_sqlite(path: Path, dataset: str) -> None:
    """Create the dataset in a new SQLite file (foreign keys declared and checked)."""
    conn = sqlite3.connect(path)
    try:
        for stmt in ddl(dataset, "sqlite"):
            conn.execute(stmt)
        for table, row in rows(dataset):
            conn.execute(f'INSERT INTO "{table}" ({", ".join(row)}) VALUES '
                         f'({", ".join("?" * len(row))})', [_sqlite_value(v) for v in row.values()])
        conn.commit()
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            raise ValueError(f"{dataset}: rows breaking a foreign key: {bad[:3]}")
    finally:
        conn.close()


def load_postgres(dsn: str, dataset: str, schema: str | None = None) -> None:
    """Create the dataset in PostgreSQL (``schema`` made when given), foreign keys added
    after the rows."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=False) as conn:
        if schema:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for stmt in ddl(dataset, "postgres", schema):
            conn.execute(stmt)  # type: ignore[arg-type]
        by_table: dict[str, list[dict[str, Any]]] = {}
        for table, row in rows(dataset):
            by_table.setdefault(table, []).append(row)
        with conn.cursor() as cur:
            for table, items in by_table.items():
                cols = list(items[0])
                target = sql.Identifier(schema, table) if schema else sql.Identifier(table)
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                        target, sql.SQL(", ").join(map(sql.Identifier, cols)))) as copy:
                    for r in items:
                        copy.write_row([r[c] for c in cols])
        for stmt in foreign_keys(dataset, schema):
            conn.execute(stmt)  # type: ignore[arg-type]
        conn.commit()


def write_parquet(folder: Path, dataset: str) -> None:
    """One Parquet file per table of the dataset in ``folder`` (dates as dates, amounts as
    decimals, as the scripts give them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, _, _ = DATASETS[dataset]
    by_table: dict[str, list[dict[str, Any]]] = {t: [] for t in columns}
    for table, row in rows(dataset):
        by_table[table].append(row)
    folder.mkdir(parents=True, exist_ok=True)
    for table, items in by_table.items():
        pq.write_table(pa.Table.from_pylist(items), folder / f"{table}.parquet")
