"""Pagila, the PostgreSQL port of MySQL's Sakila sample (a DVD rental business).

``pagila/pagila-schema.sql`` and ``pagila/pagila-data.sql`` are the files of GitHub's
devrimgunduz/pagila at commit e0e35a6 (2024), committed here unchanged with its licence
(``pagila/LICENSE.txt``, which asks that copies keep it). Customers and staff are people;
each points at an address row (a phone is kept there, on the address); rentals and
payments point at a customer and a staff member; stores at their manager and an
address; payments are partitioned by month (``payment_p2022_01`` .. ``_07``; the last
partition has no foreign keys). The scripts are run as published: the schema as one
script, the data's ``COPY ... FROM stdin`` blocks through psycopg's COPY.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

FOLDER = Path(__file__).with_name("pagila")


def load_postgres(dsn: str) -> None:
    """Create Pagila in the (empty) database ``dsn`` from the published scripts."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((FOLDER / "pagila-schema.sql").read_text(encoding="utf-8"))  # type: ignore[arg-type]
        with conn.transaction(), conn.cursor() as cur:
            statement: list[str] = []
            lines = iter((FOLDER / "pagila-data.sql").read_text(encoding="utf-8").splitlines())
            for line in lines:
                if line.startswith("COPY ") and line.endswith(" FROM stdin;"):
                    with cur.copy(line[:-len(" FROM stdin;")] + " FROM STDIN") as copy:  # type: ignore[arg-type]
                        for row in lines:
                            if row == "\\.":
                                break
                            copy.write(row + "\n")
                    continue
                if line.startswith("--") or not line.strip():
                    continue
                statement.append(line)
                if line.rstrip().endswith(";"):
                    cur.execute("\n".join(statement))  # type: ignore[arg-type]
                    statement = []
