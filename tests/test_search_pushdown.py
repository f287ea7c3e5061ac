"""Searches pushed into the source: text searched in SQL, e-mail matches an index can serve,
catalogues that do not count every table, verification in one pass for every identity."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from governance.dsar.identities import parse_identity
from governance.dsar.resolution import search_text
from governance.sources.base import Connector
from governance.sources.duckdb_source import DuckDBConnector, FileConnector
from governance.sources.postgres import PostgresConnector
from governance.sources.sqlite import SqliteConnector

NOTES = [
    (1, "Customer wrote from Ann.Lee@Example.COM about a parcel", "+86 138 1234 5678"),
    (2, "no contact given", "13812345678"),
    (3, "call back on 13812345678 please", None),
    (4, None, "n/a"),
    (5, "ann.lee@example.com.evil", "0"),             # a longer address holds the form
    (6, "annxlee@example.com and ann%lee@example.com", "1"),  # LIKE wildcards are literal
    (7, "ANN.LEE@EXAMPLE.COM, ann.lee@example.com", "2"),
    (8, "Ännä wrote from nobody@example.com", "3"),
] + [(i, f"Delivery question {i}", f"+8613900{i:06d}") for i in range(9, 400)]
IDENTITIES = [parse_identity("email=ann.lee@example.com"),
              parse_identity("phone=+8613812345678"),
              parse_identity("email=ann_lee@example.com")]
SQL_KINDS = ["sqlite", "duckdb", "postgres"]


def _expected(column: int) -> dict[str, int]:
    """What the search must find, computed independently in Python."""
    out: dict[str, int] = {}
    for row in NOTES:
        text = row[column]
        if text is None:
            continue
        hit = False
        for ident in IDENTITIES:
            for form in ident.text_variants():
                if (form.lower() in text.lower()) if ident.case_insensitive else form in text:
                    hit = True
        if hit:
            out[text] = out.get(text, 0) + 1
    return out


def _connector(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Connector:
    ddl = "CREATE TABLE tickets (id INTEGER PRIMARY KEY, notes TEXT, phone TEXT)"
    if kind == "sqlite":
        path = tmp_path / "t.db"
        with sqlite3.connect(path) as c:
            c.execute(ddl)
            c.executemany("INSERT INTO tickets VALUES (?, ?, ?)", NOTES)
        return SqliteConnector("t", path)
    if kind == "duckdb":
        path = tmp_path / "t.duckdb"
        c = duckdb.connect(str(path))
        c.execute(ddl)
        c.executemany("INSERT INTO tickets VALUES (?, ?, ?)", NOTES)
        c.close()
        return DuckDBConnector("t", path)
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(ddl.replace("tickets", f'"{schema}".tickets'))
        with c.cursor() as cur:
            cur.executemany(f'INSERT INTO "{schema}".tickets VALUES (%s, %s, %s)', NOTES)

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')

    request.addfinalizer(drop)
    return PostgresConnector("t", dsn, schema=schema)


@pytest.fixture(params=SQL_KINDS)
def sql_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connector]:
    conn = _connector(request.param, tmp_path, request)
    yield conn
    conn.close()


def test_text_is_searched_in_the_source_and_finds_what_python_finds(
        sql_source: Connector, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_streaming(*a: Any, **k: Any) -> None:
        raise AssertionError("a SQL source's cells were streamed through Python")

    monkeypatch.setattr(sql_source, "stream_rows", no_streaming)
    found = search_text(sql_source, "tickets", ["notes", "phone"], IDENTITIES)
    assert found["notes"] == _expected(1)
    assert found["phone"] == _expected(2)
    # Letter case of the e-mail ignored, the longer address found, wildcards literal.
    assert "ANN.LEE@EXAMPLE.COM, ann.lee@example.com" in found["notes"]
    assert "annxlee@example.com and ann%lee@example.com" not in found["notes"]
    assert len(found["notes"]) == 4 and len(found["phone"]) == 2


def test_file_sources_keep_their_batched_search(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    lines = ["id,notes,phone"] + [
        f'{i},"{(n or "").replace(chr(34), chr(34) * 2)}",{p or ""}' for i, n, p in NOTES]
    (folder / "tickets.csv").write_text("\n".join(lines) + "\n")
    conn = FileConnector("t", "csv", folder)
    assert conn.search_substrings("tickets", ["notes"], ["x@example.com"], []) is None
    found = search_text(conn, "tickets", ["notes", "phone"], IDENTITIES)
    assert found["notes"] == _expected(1)
    conn.close()


def test_a_non_ascii_form_is_left_to_the_exact_search(tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    conn = _connector("sqlite", tmp_path, request)
    assert conn.search_substrings("tickets", ["notes"], ["ännä@example.com"], []) is None
    ident = parse_identity("email=Ännä@example.com")
    assert search_text(conn, "tickets", ["notes"], [ident])["notes"] == {}
    conn.close()


def _sqlite_users(path: Path, index: str | None) -> SqliteConnector:
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        c.executemany("INSERT INTO users VALUES (?, ?)",
                      [(i, f"User{i}@Example.com" if i % 2 else f"user{i}@example.com")
                       for i in range(1, 2001)] + [(5000, "JÖRG@example.com")])
        if index:
            c.execute(index)
    return SqliteConnector("t", path)


@pytest.mark.parametrize(("index", "kind"), [
    (None, None),
    ("CREATE INDEX e ON users (email)", None),
    ("CREATE INDEX e ON users (lower(email))", "lower"),
    ('CREATE INDEX e ON users (LOWER( "email" ))', "lower"),
    ("CREATE INDEX e ON users (email COLLATE NOCASE)", "nocase"),
])
def test_sqlite_email_match_uses_the_index_it_has_and_finds_the_same_rows(
        tmp_path: Path, index: str | None, kind: str | None) -> None:
    conn = _sqlite_users(tmp_path / "u.db", index)
    assert conn.folded_index("users", "email") == kind
    wanted = ["USER7@example.COM", "user8@EXAMPLE.com", "jÖrg@example.com", "nobody@x.org"]
    rows = conn.find_rows("users", "email", wanted, fold_case=True)
    with sqlite3.connect(tmp_path / "u.db") as c:  # the rule written independently
        expected = c.execute("SELECT id FROM users WHERE lower(email) IN (?, ?, ?, ?)",
                             [w.lower() for w in wanted]).fetchall()
        conn._folding = conn.folded_index("users", "email")  # as find_rows sets it
        where = conn._where_in("email", 4, fold_case=True)
        plan = c.execute("EXPLAIN QUERY PLAN SELECT * FROM users WHERE " + where,
                         [w.lower() for w in wanted]).fetchall()
    # Same rows as lower(email) IN (...): A-Z folded, Ö not (SQLite's own rule, as before).
    assert sorted(r["id"] for r in rows) == sorted(i for (i,) in expected) == [7, 8]
    uses_index = any("INDEX e" in str(p[-1]) for p in plan)
    assert uses_index == (kind is not None)
    conn.close()


def test_postgres_reports_whether_an_index_serves_email_in_any_case(pg_dsn: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(f'CREATE TABLE "{schema}".users (id INT PRIMARY KEY, email VARCHAR(200), '
                  'alt TEXT)')
        c.execute(f'CREATE INDEX ON "{schema}".users (email)')
        c.execute(f'CREATE INDEX ON "{schema}".users (lower(alt))')
    try:
        conn = PostgresConnector("t", pg_dsn, schema=schema)
        assert conn.folded_index("users", "email") is None
        assert conn.folded_index("users", "alt") == "lower"
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute(f'CREATE INDEX ON "{schema}".users (lower(email))')
        assert conn.folded_index("users", "email") == "lower"
        conn.close()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_reading_the_catalogue_does_not_count_large_tables(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)")
        c.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                  "WHERE i < 150000) INSERT INTO big SELECT i, 'x' FROM s")
        c.execute("CREATE TABLE small (id INTEGER PRIMARY KEY)")
        c.execute("INSERT INTO small VALUES (1), (2), (3)")
        c.execute("DELETE FROM big WHERE id <= 10")
    conn = SqliteConnector("t", path)
    statements: list[str] = []
    conn._conn.set_trace_callback(statements.append)
    tables = {t.name: t.row_count for t in conn.list_tables()}
    assert tables["small"] == 3                        # small: counted exactly
    assert tables["big"] == 150_000                    # large: estimated (largest rowid)
    assert not any("count(*)" in s and '"big"' in s for s in statements)
    conn.close()
    with sqlite3.connect(path) as c:
        c.execute("ANALYZE")
    conn = SqliteConnector("t", path)
    assert conn.table_info("big").row_count == 149_990   # ANALYZE's own figure
    conn.close()


def test_duckdb_catalogue_estimates_large_tables(tmp_path: Path) -> None:
    path = tmp_path / "big.duckdb"
    c = duckdb.connect(str(path))
    c.execute("CREATE TABLE big AS SELECT range AS id FROM range(200000)")
    c.execute("CREATE TABLE small AS SELECT range AS id FROM range(5)")
    c.close()
    conn = DuckDBConnector("t", path)
    counts = {t.name: t.row_count for t in conn.list_tables()}
    assert counts == {"big": 200_000, "small": 5}
    conn.close()


def test_verification_searches_every_identity_at_once_with_the_same_result(demo: Any) -> None:
    """One pass for all identities finds, per place, exactly what one search per identity
    finds (the runner's verification used to search once per identity)."""
    from governance.dsar.resolution import (
        exact_hits,
        search_everywhere,
        verification_hits,
    )
    from governance.inventory import load_inventory
    from governance.sources.pool import ConnectorPool

    inventory = load_inventory(demo.inventory)
    with sqlite3.connect(demo.app_db) as c:
        rows = c.execute("SELECT email, phone FROM users ORDER BY id LIMIT 3").fetchall()
    identities = [parse_identity(f"email={rows[0][0].upper()}"),
                  parse_identity(f"phone={rows[0][1]}"), parse_identity(f"email={rows[1][0]}"),
                  parse_identity(f"phone={rows[2][1]}")]
    with ConnectorPool(inventory) as pool:
        found, counts, unreachable = verification_hits(inventory, identities, pool)
        expected_found: dict[tuple[str, str, str], set[Any]] = {}
        expected_counts: dict[tuple[str, str, str], int] = {}
        for ident in identities:
            cells, _ = search_everywhere(inventory, [ident], pool)
            for per in (cells, exact_hits(inventory, ident, pool)):
                for place, n in per.items():
                    expected_found.setdefault(place, set()).add(ident)
                    expected_counts[place] = max(expected_counts.get(place, 0), n)
    assert unreachable == {}
    assert found == expected_found and counts == expected_counts
    assert {place[1] for place in found} >= {"users", "support_tickets"}


def test_matching_rows_come_back_from_the_same_pass(sql_source: Connector) -> None:
    """search_text_rows returns the rows the two-step way finds (texts, then their rows)."""
    from governance.dsar.resolution import search_text_rows

    rows = search_text_rows(sql_source, "tickets", ["notes", "phone"], IDENTITIES)
    for col, texts in search_text(sql_source, "tickets", ["notes", "phone"],
                                  IDENTITIES).items():
        two_step = sql_source.find_rows("tickets", col, list(texts))
        assert sorted(r["id"] for r in rows[col]) == sorted(r["id"] for r in two_step)
        assert rows[col] and all(set(r) == {"id", "notes", "phone"} for r in rows[col])


def test_the_index_advice_is_a_statement_sqlite_runs_as_written(tmp_path: Path) -> None:
    from governance.dsar.resolution import index_advice
    from governance.inventory import load_inventory
    from governance.sources.pool import ConnectorPool

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as c:
        c.execute('CREATE TABLE "Customer" ("CustomerId" INTEGER PRIMARY KEY, "Email" TEXT)')
    (tmp_path / "inventory.yaml").write_text(
        "version: 1\norganization: t\nsources:\n  - name: shop\n    kind: sqlite\n"
        "    connection: {path: shop.db}\n    owner: dpo@example.com\n"
        "    jurisdictions: [EU]\n    tables:\n      - name: Customer\n"
        "        subject_key: CustomerId\n        columns: {Email: {category: contact.email}}\n")
    inv = load_inventory(tmp_path / "inventory.yaml")
    with ConnectorPool(inv) as pool:
        [advice] = index_advice(inv, pool)
    statement = advice.split("create one: ", 1)[1]
    with sqlite3.connect(db) as c:
        c.execute(statement)   # pasted as written
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                         ).fetchone()[0] == 1
    with ConnectorPool(inv) as pool:
        assert index_advice(inv, pool) == []


@pytest.mark.postgres
def test_the_index_advice_names_the_postgres_schema(tmp_path: Path, pg_dsn: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a helper on classicmodels loaded in a schema of its own: the advice named
    the table alone, and ``CREATE INDEX`` as printed failed (relation does not exist)."""
    from governance.dsar.resolution import index_advice
    from governance.inventory import load_inventory
    from governance.sources.pool import ConnectorPool

    schema = f"Shop_{uuid.uuid4().hex[:6]}"     # mixed case: quoted to be found
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(f'CREATE TABLE "{schema}".customer (id INT PRIMARY KEY, email TEXT)')
    try:
        (tmp_path / "inventory.yaml").write_text(
            "version: 1\norganization: t\nsources:\n  - name: shop\n    kind: postgres\n"
            f"    connection: {{dsn_env: GK_ADVICE_PG, schema: '{schema}'}}\n"
            "    owner: dpo@example.com\n    jurisdictions: [EU]\n    tables:\n"
            "      - name: customer\n        subject_key: id\n"
            "        columns: {email: {category: contact.email}}\n")
        monkeypatch.setenv("GK_ADVICE_PG", pg_dsn)
        inv = load_inventory(tmp_path / "inventory.yaml")
        with ConnectorPool(inv) as pool:
            [advice] = index_advice(inv, pool)
        statement = advice.split("create one: ", 1)[1]
        with psycopg.connect(pg_dsn, autocommit=True) as c:   # search_path: public
            c.execute(statement)   # pasted as written
            assert c.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND "
                             "indexdef LIKE %s", (schema, "%lower(email)%")).fetchone()[0] == 1
        with ConnectorPool(inv) as pool:
            assert index_advice(inv, pool) == []
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')


# Letter case beyond ASCII, and characters whose lower case is an ASCII letter.
_TRICKY = ["Joe5@Example.com", "joe5@example.com", "JOE5@EXAMPLE.COM", "\u212aim@x.org",
           "kim@x.org", "\u0130nci@x.org", "i\u0307nci@x.org", "STRASSE@x.de",
           "stra\u1e9ee@x.de", "stra\u00dfe@x.de", "\u03a3\u03c3@x.gr", "e\u0301@x.fr",
           "joe5@example.co", "xjoe5@example.com", None, ""]


def _duckdb_column(tmp_path: Path, table: str, column: str, values: list[str | None]
                   ) -> tuple[Path, DuckDBConnector]:
    """A DuckDB file with one table of (id, column) rows, and a connector to it."""
    path = tmp_path / f"{table}.duckdb"
    with duckdb.connect(str(path)) as c:
        c.execute(f"CREATE TABLE {table} (id INTEGER, {column} VARCHAR)")
        c.executemany(f"INSERT INTO {table} VALUES (?, ?)", list(enumerate(values)))
    return path, DuckDBConnector(table, path)


def _ids(path: Path, sql: str, value: str) -> list[int]:
    """The sorted ids a query written here finds (independent of the connector)."""
    with duckdb.connect(str(path), read_only=True) as c:
        return sorted(r[0] for r in c.execute(sql, [value]).fetchall())


def test_duckdb_email_in_any_case_finds_exactly_what_lower_finds(tmp_path: Path) -> None:
    """The length test DuckDB's lookup adds before ``lower`` changes nothing: the rows
    are those the plain ``lower(col) = ?`` written here finds, tricky Unicode included."""
    path, conn = _duckdb_column(tmp_path, "people", "email", _TRICKY)
    try:
        for wanted in [*(v for v in _TRICKY if v), "k\u0131m@x.org", "ss@x.de"]:
            got = sorted(r["id"] for r in conn.find_rows("people", "email", [wanted],
                                                          fold_case=True))
            assert got == _ids(path, "SELECT id FROM people WHERE lower(email) = ?",
                               wanted.lower()), wanted
        got = conn.find_rows("people", "email", ["joe5@example.com", "kim@x.org"],
                             fold_case=True)
        assert len(got) == 5   # three letter cases of joe5's; kim's and the Kelvin sign's
    finally:
        conn.close()


def test_duckdb_text_search_in_any_case_finds_exactly_what_lower_finds(tmp_path: Path
                                                                        ) -> None:
    """The narrowing by a form's caseless run (``5@`` of ``joe5@...``) finds the same cells
    as ``contains(lower(notes), form)`` written here, for forms with and without one."""
    notes = [f"wrote from {v} today" if v else v for v in _TRICKY] + [
        "joe5@ without the rest", "JOE5@example.com, twice: joe5@EXAMPLE.com", "5@5@5@"]
    path, conn = _duckdb_column(tmp_path, "notes", "body", notes)
    try:
        for form in ["joe5@example.com", "kim@x.org", "5@", "x.org", "strasse", "e@x"]:
            found = conn.search_rows("notes", ["body"], [form], [])
            assert found is not None
            got = sorted(r["id"] for r in found["body"])
            assert got == _ids(path, "SELECT id FROM notes WHERE contains(lower(body), ?)",
                               form.lower()), form
            assert got, form
    finally:
        conn.close()
