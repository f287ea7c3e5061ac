"""A database's refusal is shown in one line without the values it quotes: errors raised
by the real drivers (SQLite, DuckDB, PostgreSQL).

Found by a helper on Oracle's HR: a refused change printed a whole envelope (with its key
id) that PostgreSQL quoted in its first line (invalid input syntax for type numeric:
"gk1:sk-..."). Names of constraints and tables stay: they say what refused.
"""

from __future__ import annotations

import sqlite3

import duckdb
import pytest

from governance.errors import refused_by_database

SECRET = "gk1:sk-4304f222dbc7812b3091:HoNqSecret"


def _raised(call) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        call()
    except Exception as e:  # the driver's own error is what is tested
        return e
    raise AssertionError("the driver accepted it")


def test_duckdb_quoted_values_are_masked_and_names_kept() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    con.execute("INSERT INTO t VALUES (5, 1)")
    dup = refused_by_database(_raised(lambda: con.execute("INSERT INTO t VALUES (5, 2)")))
    conv = refused_by_database(_raised(lambda: con.execute(
        "INSERT INTO t VALUES (6, ?)", [SECRET])))
    assert dup is not None and conv is not None
    assert "5" not in dup.split("Duplicate key")[1].split("violates")[0], dup
    assert SECRET not in conv and "sk-4304" not in conv and "\n" not in conv, conv


def test_sqlite_refusal_keeps_the_constraint_it_names() -> None:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n TEXT CHECK (length(n) < 5))")
    got = refused_by_database(_raised(lambda: con.execute("INSERT INTO t VALUES (1, ?)",
                                                          [SECRET])))
    assert got is not None and got.startswith("CHECK constraint failed") and SECRET not in got


@pytest.mark.postgres
def test_postgres_invalid_input_names_the_type_not_the_value(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, salary numeric(8,2))")
        c.execute("INSERT INTO t VALUES (1, 10)")
        bad = refused_by_database(_raised(lambda: c.execute(
            "INSERT INTO t VALUES (2, %s)", [SECRET])))
        dup = refused_by_database(_raised(lambda: c.execute("INSERT INTO t VALUES (1, 1)")))
    assert bad == 'InvalidTextRepresentation: invalid input syntax for type numeric: "***"' \
        or bad == 'invalid input syntax for type numeric: "***"', bad
    assert dup is not None and 'unique constraint "t_pkey"' in dup, dup
