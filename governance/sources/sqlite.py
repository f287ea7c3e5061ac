"""SQLite database files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from governance.errors import SourceError
from governance.sources.base import ColumnInfo, ForeignKey, TableInfo
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
        names = self._conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        tables = []
        for name, kind in names:
            info = self._conn.execute(f"PRAGMA table_info({self._ident(name)})").fetchall()
            cols = tuple(ColumnInfo(r[1], r[2] or "ANY", not r[3] and not r[5]) for r in info)
            pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            count = self._conn.execute(f"SELECT count(*) FROM {self._ident(name)}").fetchone()[0]
            tables.append(TableInfo(name, cols, count, kind, pk))
        return tables

    def foreign_keys(self) -> list[ForeignKey]:
        out = []
        for t in self.list_tables():
            if t.kind != "table":
                continue
            rows = self._conn.execute(
                f"PRAGMA foreign_key_list({self._ident(t.name)})").fetchall()
            by_id: dict[int, list[tuple]] = {}
            for r in rows:
                by_id.setdefault(r[0], []).append(r)
            for parts in by_id.values():
                if len(parts) != 1:
                    continue  # composite keys are not followed
                _, _, ref_table, column, ref_column = parts[0][:5]
                if ref_column is None:  # REFERENCES t without a column: its primary key
                    target = self._tables.get(ref_table) if self._tables else None
                    if target is None or len(target.primary_key) != 1:
                        continue
                    ref_column = target.primary_key[0]
                out.append(ForeignKey(t.name, column, ref_table, ref_column))
        return out

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
