"""SQLite database files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from governance.errors import SourceError
from governance.sources.base import ColumnInfo, TableInfo
from governance.sources.sql import SqlConnector


class SqliteConnector(SqlConnector):
    """A SQLite database file, opened read-only unless changes are asked for."""

    kind = "sqlite"

    def __init__(self, name: str, path: Path, writable: bool = False):
        super().__init__(name)
        if not path.exists():
            raise SourceError(f"source {name!r}: SQLite file not found: {path}")
        mode = "rw" if writable else "ro"
        try:
            # Read-ahead of a full scan fetches from a worker thread (one user at a time).
            self._conn = sqlite3.connect(f"{path.as_uri()}?mode={mode}", uri=True,
                                         check_same_thread=False)
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as e:
            raise SourceError(f"source {name!r}: cannot open {path} as SQLite: {e}") from None

    def _read_catalogue(self) -> list[TableInfo]:
        names = [r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        tables = []
        for name in names:
            cols = tuple(ColumnInfo(r[1], r[2] or "ANY") for r in self._conn.execute(
                f"PRAGMA table_info({self._ident(name)})"))
            count = self._conn.execute(f"SELECT count(*) FROM {self._ident(name)}").fetchone()[0]
            tables.append(TableInfo(name, cols, count))
        return tables

    def _sample_sql(self, table: str, cols: list[str], limit: int, seed: int) -> str:
        ref = self._table_ref(table)
        has_rowid = self._conn.execute(
            "SELECT type FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0] == "table"
        if not has_rowid:
            return f"{self._select_sql(table, cols)} LIMIT {int(limit)}"
        # A seeded, repeatable pseudo-random order over rowids.
        order = f"((rowid * 1103515245 + {int(seed)}) % 2147483647)"
        return (f"{self._select_sql(table, cols)} WHERE rowid IN "
                f"(SELECT rowid FROM {ref} ORDER BY {order} LIMIT {int(limit)})")
