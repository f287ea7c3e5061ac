"""SQLite database files."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from governance.errors import SourceError
from governance.sources.base import ColumnInfo, ForeignKey, TableInfo
from governance.sources.sql import SqlConnector

_log = logging.getLogger(__name__)

# Tables with fewer rows than this are counted exactly; larger ones are estimated.
EXACT_COUNT_BELOW = 100_000


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

    def _begin(self) -> None:
        """Take the write lock now: what a change checks before it writes stays true."""
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")

    def _read_catalogue(self) -> list[TableInfo]:
        names = self._conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        tables = []
        for name, kind in names:
            try:
                info = self._conn.execute(f"PRAGMA table_info({self._ident(name)})").fetchall()
                count = self._row_count(name, kind)
            except sqlite3.OperationalError as e:
                if kind == "view":
                    # A view over a table that is gone holds nothing and is never changed.
                    _log.warning("source %r: view %r left out: it cannot be read (%s)",
                                 self.name, name, e)
                    continue
                raise SourceError(f"source {self.name!r}: table {name!r} cannot be read: "
                                  f"{e}") from None
            cols = tuple(ColumnInfo(r[1], r[2] or "ANY", not r[3] and not r[5]) for r in info)
            pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            tables.append(TableInfo(name, cols, count, kind, pk))
        return tables

    def _row_count(self, table: str, kind: str) -> int:
        """The table's rows: exact below EXACT_COUNT_BELOW, else an estimate that reads no
        rows (the ANALYZE statistics, else the largest rowid), so that reading the catalogue
        does not count every table."""
        ref = self._ident(table)
        if kind == "table":
            try:
                top = self._conn.execute(f"SELECT max(rowid) FROM {ref}").fetchone()[0]
            except sqlite3.OperationalError:  # WITHOUT ROWID
                top = None
            if top is not None and top >= EXACT_COUNT_BELOW:
                stat = self._stat1(table)
                return stat if stat is not None else int(top)
        return int(self._conn.execute(f"SELECT count(*) FROM {ref}").fetchone()[0])

    def _stat1(self, table: str) -> int | None:
        """The row count ANALYZE recorded for ``table``, if it was analysed."""
        try:
            row = self._conn.execute(
                "SELECT stat FROM sqlite_stat1 WHERE tbl = ? ORDER BY idx IS NOT NULL LIMIT 1",
                (table,)).fetchone()
        except sqlite3.OperationalError:  # never analysed: no sqlite_stat1
            return None
        try:
            return int(str(row[0]).split()[0]) if row else None
        except ValueError:
            return None

    def folded_index(self, table: str, column: str) -> str | None:
        """How an index serves matching ``column`` in any letter case: ``lower`` (an index
        on lower(column)), ``nocase`` (an index on the column with COLLATE NOCASE), or None
        (no such index: matching it in any letter case reads the whole table)."""
        self.check_columns(table, [column])
        col = column.lower()
        nocase = False
        for idx in self._conn.execute(f"PRAGMA index_list({self._ident(table)})").fetchall():
            info = self._conn.execute(f"PRAGMA index_xinfo({self._ident(idx[1])})").fetchall()
            lead = next((r for r in info if r[5]), None)  # the first key column
            if lead is None:
                continue
            if lead[1] >= 0 and str(lead[2]).lower() == col and str(lead[4]).upper() == "NOCASE":
                nocase = True
            elif lead[1] == -2:  # an expression: read it from the index's SQL
                sql = self._conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' "
                                         "AND name = ?", (idx[1],)).fetchone()
                if sql and sql[0] and _lower_of(sql[0], column):
                    return "lower"
        return "nocase" if nocase else None

    def _where_in(self, column: str, n: int, fold_case: bool = False) -> str:
        if fold_case and "," not in column and self._fold_with_nocase(column):
            # Same rows as lower(column) IN (...) (both fold A-Z only), served by the index.
            marks = ", ".join([self.placeholder] * n)
            return f"{self._ident(column)} COLLATE NOCASE IN ({marks})"
        return super()._where_in(column, n, fold_case)

    def find_rows(self, table: str, column: str, values: Sequence[Any],
                  fold_case: bool = False) -> list[dict[str, Any]]:
        self._folding = self.folded_index(table, column) if fold_case else None
        try:
            return super().find_rows(table, column, values, fold_case)
        finally:
            self._folding = None

    def _fold_with_nocase(self, column: str) -> bool:
        return getattr(self, "_folding", None) == "nocase"

    def _spelled(self, table: str, column: str) -> str:
        """``column`` of ``table`` as the catalogue spells it (SQLite ignores letter case)."""
        known = self._tables.get(table) if self._tables else None
        if known is None or column in known.column_names:
            return column
        return next((c for c in known.column_names if c.lower() == column.lower()), column)

    def _declared_keys(self) -> list[ForeignKey]:
        """Every foreign key of every table, its columns in the key's order."""
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
                parts.sort(key=lambda r: r[1])          # by position in the key
                ref_table = self.catalogue_name(parts[0][2])
                # Column names as the catalogue spells them (SQLite ignores their case).
                columns = [self._spelled(t.name, r[3]) for r in parts]
                if any(r[4] is None for r in parts):  # REFERENCES t without columns: its key
                    target = self._tables.get(ref_table) if self._tables else None
                    if target is None or len(target.primary_key) != len(parts):
                        continue
                    ref_columns = list(target.primary_key)
                else:
                    ref_columns = [self._spelled(ref_table, r[4]) for r in parts]
                out.append(ForeignKey(t.name, ",".join(columns), ref_table,
                                      ",".join(ref_columns)))
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


def _lower_of(index_sql: str, column: str) -> bool:
    """Whether a CREATE INDEX statement's first key is lower(column)."""
    body = index_sql[index_sql.find("(") + 1:]
    name = re.escape(column)
    return re.match(rf'\s*lower\s*\(\s*(?:"{name}"|`{name}`|\[{name}\]|{name})\s*\)',
                    body, re.IGNORECASE) is not None
