"""Chinook, the music-store sample database, loaded as published.

Chinook is by Luis Rocha (MIT licence). The SQL scripts come from the ``dictum-core``
wheel on PyPI (see ``sources.py``). The SQLite script is run as it is (it starts with
``PRAGMA foreign_keys=OFF`` and declares its foreign keys in each CREATE TABLE, so SQLite
enforces none of them by default). The PostgreSQL script is a pg_dump (real foreign keys,
lower-case names); it is run statement by statement, its COPY blocks through psycopg's
COPY, leaving out only its ``ALTER ... OWNER TO chinook`` lines (that role does not exist
here). The PostgreSQL copy also gets a view and a materialized view over customer data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg

from .sources import chinook_sql


def load_sqlite(path: Path) -> None:
    """Create Chinook in a new SQLite file from the published script."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(chinook_sql("sqlite"))
        conn.commit()
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        assert not broken, f"Chinook violates its own foreign keys: {broken[:5]}"
    finally:
        conn.close()


def _dump_statements(script: str) -> Iterator[tuple[str, str | None]]:
    """(statement, COPY data or None) in the order of a plain-format pg_dump script."""
    lines = iter(script.splitlines(keepends=True))
    buf: list[str] = []
    for line in lines:
        if not buf and (line.startswith("--") or not line.strip()):
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            stmt = "".join(buf)
            buf = []
            if stmt.startswith("COPY ") and stmt.rstrip().endswith("FROM stdin;"):
                data = []
                for row in lines:
                    if row.rstrip("\n") == "\\.":
                        break
                    data.append(row)
                yield stmt.rstrip().rstrip(";"), "".join(data)
            else:
                yield stmt, None


PG_EXTRAS = """
CREATE VIEW public.customer_contacts AS
    SELECT customerid, firstname, lastname, email, phone, supportrepid FROM public.customers;
CREATE MATERIALIZED VIEW public.customer_spend AS
    SELECT customerid, count(*) AS invoices, sum(total) AS total
    FROM public.invoices GROUP BY customerid;
"""


def load_postgres(dsn: str) -> None:
    """Create Chinook in the empty database at ``dsn`` from the published pg_dump."""
    with psycopg.connect(dsn) as conn:
        for stmt, data in _dump_statements(chinook_sql("postgres")):
            if " OWNER TO " in stmt:
                continue
            if data is None:
                conn.execute(stmt)
            else:
                with conn.cursor().copy(stmt) as copy:
                    copy.write(data)
        conn.execute(PG_EXTRAS)
