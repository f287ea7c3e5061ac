"""Every connector behind the same interface, including a real PostgreSQL server."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from governance.errors import SourceError
from governance.sources.base import Connector
from governance.sources.duckdb_source import DuckDBConnector, FileConnector
from governance.sources.postgres import PostgresConnector
from governance.sources.sqlite import SqliteConnector

INJECTION = "x'; DROP TABLE users; --"
ROWS = [
    {"id": 1, "email": "ann@example.com", "phone": "13812345678", "zip": "01234"},
    {"id": 2, "email": "bo@example.com", "phone": "+1 415-555-0132", "zip": None},
    {"id": 3, "email": INJECTION, "phone": "007", "zip": "99999"},
] + [{"id": i, "email": f"user{i}@example.com", "phone": None, "zip": "10115"}
     for i in range(4, 301)]
KINDS = ["sqlite", "duckdb", "csv", "parquet", "jsonl", "postgres"]


def _make(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Connector:
    table = pa.Table.from_pylist(ROWS, schema=pa.schema([
        ("id", pa.int64()), ("email", pa.string()), ("phone", pa.string()), ("zip", pa.string())]))
    if kind == "sqlite":
        path = tmp_path / "app.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, phone TEXT, "
                     "zip TEXT)")
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)",
                         [tuple(r.values()) for r in ROWS])
        conn.commit()
        conn.close()
        return SqliteConnector("t", path, writable=True)
    if kind == "duckdb":
        path = tmp_path / "app.duckdb"
        conn = duckdb.connect(str(path))
        conn.register("src", table)
        conn.execute("CREATE TABLE users AS SELECT * FROM src")
        conn.close()
        return DuckDBConnector("t", path, writable=True)
    if kind == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        schema = f"t_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'CREATE TABLE "{schema}".users (id INTEGER PRIMARY KEY, email TEXT, '
                         'phone TEXT, zip TEXT)')
            with conn.cursor() as cur:
                cur.executemany(f'INSERT INTO "{schema}".users VALUES (%s, %s, %s, %s)',
                                [tuple(r.values()) for r in ROWS])

        def drop() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

        request.addfinalizer(drop)
        return PostgresConnector("t", dsn, schema=schema, writable=True)
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "csv":
        pacsv.write_csv(table, folder / "users.csv")
    elif kind == "parquet":
        pq.write_table(table, folder / "users.parquet")
    else:
        (folder / "users.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return FileConnector("t", kind, folder, writable=True)


@pytest.fixture(params=KINDS)
def connector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connector]:
    conn = _make(request.param, tmp_path, request)
    yield conn
    conn.close()


def test_list_tables_and_columns(connector: Connector) -> None:
    [info] = connector.list_tables()
    assert info.name == "users"
    assert info.column_names == ["id", "email", "phone", "zip"]
    assert info.row_count == len(ROWS)


def test_sample_is_deterministic_and_bounded(connector: Connector) -> None:
    a = connector.sample_rows("users", limit=50, seed=7)
    b = connector.sample_rows("users", limit=50, seed=7)
    assert 0 < a.num_rows <= 50
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    everything = connector.sample_rows("users", ["email"], limit=10_000)
    assert everything.num_rows == len(ROWS)
    assert everything.column_names == ["email"]


def test_stream_rows_reads_every_row_in_batches(connector: Connector) -> None:
    batches = list(connector.stream_rows("users", ["id", "zip"], batch_size=64))
    assert len(batches) >= 2
    assert all(b.num_rows <= 64 for b in batches)
    ids = [i for b in batches for i in b.column(0).to_pylist()]
    assert sorted(int(i) for i in ids) == list(range(1, len(ROWS) + 1))


def test_find_rows_binds_values(connector: Connector) -> None:
    rows = connector.find_rows("users", "email", ["ann@example.com", "nobody@example.com"])
    assert len(rows) == 1
    assert rows[0]["zip"] == "01234"  # leading zero kept
    # A value that looks like SQL is just a value: it matches its own row only.
    [hit] = connector.find_rows("users", "email", [INJECTION])
    assert str(hit["id"]) == "3"
    assert connector.find_rows("users", "id", ["2"])[0]["email"] == "bo@example.com"
    assert connector.table_info("users").row_count == len(ROWS)


def test_find_rows_can_ignore_letter_case(connector: Connector) -> None:
    assert connector.find_rows("users", "email", ["ANN@Example.com"]) == []
    [row] = connector.find_rows("users", "email", ["ANN@Example.com"], fold_case=True)
    assert row["email"] == "ann@example.com"
    [row] = connector.find_rows("users", "email", [INJECTION.upper()], fold_case=True)
    assert row["email"] == INJECTION  # a value, never SQL


def test_update_and_delete_by_key(connector: Connector) -> None:
    assert connector.update_rows("users", "email", ["bo@example.com"], {"phone": None}) == 1
    assert connector.find_rows("users", "email", ["bo@example.com"])[0]["phone"] is None
    assert connector.delete_rows("users", "email", ["ann@example.com", INJECTION]) == 2
    assert connector.find_rows("users", "email", ["ann@example.com", INJECTION]) == []
    remaining = sum(b.num_rows for b in connector.stream_rows("users"))
    assert remaining == len(ROWS) - 2
    # Idempotent: deleting again changes nothing.
    assert connector.delete_rows("users", "email", ["ann@example.com"]) == 0


def test_unknown_and_unsafe_identifiers_are_refused(connector: Connector) -> None:
    with pytest.raises(SourceError, match="has no table 'users; DROP TABLE users'"):
        connector.find_rows("users; DROP TABLE users", "email", ["a"])
    with pytest.raises(SourceError, match="has no column"):
        connector.find_rows("users", 'email" OR 1=1 --', ["a"])
    assert connector.table_info("users").row_count == len(ROWS)


def test_dry_run_shows_placeholders_not_values(connector: Connector) -> None:
    sql = connector.dry_run("delete", "users", "email")
    assert "users" in sql and "email" in sql and "ann@" not in sql


def test_read_only_by_default(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    writable = _make("sqlite", tmp_path, request)
    writable.close()
    ro = SqliteConnector("t", tmp_path / "app.db")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.delete_rows("users", "id", [1])
    ro.close()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="SQLite file not found"):
        SqliteConnector("app", tmp_path / "missing.db")
    (tmp_path / "bad.db").write_text("not a database at all " * 100)
    with pytest.raises(SourceError, match="cannot open"):
        SqliteConnector("app", tmp_path / "bad.db").list_tables()


def test_file_sources_are_read_only_unless_asked(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "users.csv").write_text("id,email\n1,ann@example.com\n")
    ro = FileConnector("t", "csv", folder)
    with pytest.raises(SourceError, match="opened read-only"):
        ro.delete_rows("users", "id", ["1"])
    assert (folder / "users.csv").read_text() == "id,email\n1,ann@example.com\n"


def test_catalogue_is_read_once_and_refreshed_after_changes(tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    conn = _make("sqlite", tmp_path, request)
    assert conn.list_tables() is not conn.list_tables()  # fresh lists ...
    assert conn.list_tables()[0] is conn.list_tables()[0]  # ... of one cached read
    conn.delete_rows("users", "id", [1])
    assert conn.table_info("users").row_count == len(ROWS) - 1
    conn.close()


def test_parquet_sample_reads_seeded_row_groups_only(tmp_path: Path) -> None:
    """A large Parquet file is sampled from the heads of seeded row groups: repeatable,
    spread over the file, and every sampled row is a real row of the file."""
    from governance.sources import duckdb_source

    folder = tmp_path / "big"
    folder.mkdir()
    n, group = 200_000, 10_000  # 20 row groups, more than SAMPLE_ROW_GROUPS
    table = pa.table({"id": pa.array(range(n), pa.int64()),
                      "email": pa.array([f"u{i}@example.com" for i in range(n)])})
    pq.write_table(table, folder / "events.parquet", row_group_size=group)
    conn = FileConnector("t", "parquet", folder)
    a = conn.sample_rows("events", limit=300, seed=3)
    assert a.to_pylist() == conn.sample_rows("events", limit=300, seed=3).to_pylist()
    assert a.column("id").to_pylist() != conn.sample_rows("events", limit=300, seed=4)\
        .column("id").to_pylist()
    ids = a.column("id").to_pylist()
    assert len(ids) == 300 == len(set(ids))
    assert all(a.column("email")[k].as_py() == f"u{i}@example.com" for k, i in enumerate(ids))
    groups = {i // group for i in ids}
    assert len(groups) == duckdb_source.SAMPLE_ROW_GROUPS
    window = duckdb_source.SAMPLE_WINDOW_ROWS // duckdb_source.SAMPLE_ROW_GROUPS
    assert all(i % group < window for i in ids)
    only = conn.sample_rows("events", ["email"], limit=10, seed=3)
    assert only.column_names == ["email"] and only.num_rows == 10
    streamed = [b.num_rows for b in conn.stream_rows("events", ["id"], batch_size=5_000)]
    assert sum(streamed) == n and max(streamed) <= 5_000
    conn.close()


@pytest.mark.parametrize("kind", ["parquet", "csv", "jsonl"])
def test_file_changes_stream_large_files_and_keep_types(tmp_path: Path, kind: str) -> None:
    """A change to a file larger than one batch rewrites it batch by batch: rows in every
    batch are changed, the others kept in order, Parquet types unchanged."""
    from datetime import datetime

    n = 150_000  # three read batches
    table = pa.table({
        "id": pa.array(range(n), pa.int32()),
        "email": pa.array([f"u{i}@example.com" for i in range(n)]),
        "seen": pa.array([datetime(2024, 1, 1)] * n, pa.timestamp("ms")),
    })
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "parquet":
        pq.write_table(table, folder / "events.parquet", row_group_size=50_000)
    elif kind == "csv":
        pacsv.write_csv(table, folder / "events.csv")
    else:
        (folder / "events.jsonl").write_text("".join(
            json.dumps({"id": i, "email": f"u{i}@example.com"}) + "\n" for i in range(n)))
    conn = FileConnector("t", kind, folder, writable=True)
    doomed = ["u5@example.com", "u70000@example.com", "u149999@example.com"]
    assert conn.delete_rows("events", "email", doomed) == 3
    assert conn.update_rows("events", "email", ["u100000@example.com"],
                            {"email": None}) == 1
    assert conn.delete_rows("events", "email", ["nobody@example.com"]) == 0
    rows = pa.Table.from_batches(list(conn.stream_rows("events", ["id", "email"])))
    ids = [int(i) for i in rows.column("id").to_pylist()]
    assert ids == [i for i in range(n) if i not in (5, 70_000, 149_999)]
    emails = rows.column("email").to_pylist()
    assert emails[ids.index(100_000)] is None and emails[0] == "u0@example.com"
    if kind == "parquet":
        assert pq.read_schema(folder / "events.parquet") == table.schema
    assert not [p for p in folder.iterdir() if p.suffix == ".tmp"]
    conn.close()


def test_sources_opened_in_the_background_raise_in_the_caller(tmp_path: Path) -> None:
    """A source opened in the pool's background thread that cannot be opened raises its
    error where the caller asks for it; the others are ready, catalogue read."""
    import duckdb

    from governance.errors import SourceError
    from governance.inventory import load_inventory
    from governance.sources.pool import ConnectorPool

    with duckdb.connect(str(tmp_path / "ok.duckdb")) as c:
        c.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR)")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        "version: 1\norganization: t\nsources:\n"
        "  - name: ok\n    kind: duckdb\n    owner: a@example.com\n    jurisdictions: [EU]\n"
        "    connection: {path: ok.duckdb}\n    tables:\n      - name: people\n"
        "        subject_key: id\n"
        "  - name: gone\n    kind: duckdb\n    owner: a@example.com\n    jurisdictions: [EU]\n"
        "    connection: {path: missing.duckdb}\n    tables:\n      - name: people\n"
        "        subject_key: id\n")
    with ConnectorPool(load_inventory(inv)) as pool:
        pool.open_in_background()
        with pytest.raises(SourceError, match="missing.duckdb"):
            pool.get("gone")
        assert [t.name for t in pool.get("ok").list_tables()] == ["people"]
    with duckdb.connect(str(tmp_path / "ok.duckdb")) as c:   # closed: writable again
        c.execute("INSERT INTO people VALUES (1, 'a@example.com')")


def test_duckdb_reads_composite_foreign_keys_in_key_order(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE sales (ticket INTEGER, item INTEGER, customer INTEGER, "
                     "PRIMARY KEY (ticket, item))")
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE returns (r_item INTEGER, r_ticket INTEGER, "
                     "who INTEGER REFERENCES people (id), FOREIGN KEY (r_ticket, r_item) "
                     "REFERENCES sales (ticket, item))")
    c = DuckDBConnector("shop", db)
    try:
        assert [(k.table, k.column, k.ref_table, k.ref_column)
                for k in c.composite_foreign_keys()] == [
            ("returns", "r_ticket,r_item", "sales", "ticket,item")]
        assert [(k.table, k.column, k.ref_table, k.ref_column) for k in c.foreign_keys()] == [
            ("returns", "who", "people", "id")]
    finally:
        c.close()



def test_a_sqlite_view_over_a_dropped_table_is_left_out_not_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A view whose table was dropped cannot be read: the catalogue leaves it out with a
    warning instead of failing every command with sqlite3's error (found by a helper)."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as c:
        c.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);"
                        "CREATE TABLE scratch (x INT); CREATE VIEW scratch_v AS SELECT x "
                        "FROM scratch; DROP TABLE scratch;")
    conn = SqliteConnector("app", db)
    try:
        assert [t.name for t in conn.list_tables()] == ["users"]
    finally:
        conn.close()
    assert "view 'scratch_v' left out: it cannot be read" in caplog.text
