"""PostgreSQL databases through psycopg 3."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from governance.errors import SourceError
from governance.sources.base import DEFAULT_BATCH_ROWS, ColumnInfo, TableInfo, rows_to_table
from governance.sources.sql import SqlConnector


class PostgresConnector(SqlConnector):
    """One schema of a PostgreSQL database; identifiers quoted with psycopg.sql.Identifier."""

    kind = "postgres"
    placeholder = "%s"

    def __init__(self, name: str, dsn: str, schema: str = "public", writable: bool = False):
        super().__init__(name)
        self.schema = schema
        try:
            self._conn = psycopg.connect(dsn, connect_timeout=10)
        except psycopg.Error as e:
            # The DSN may hold a password: never echo it.
            raise SourceError(f"source {name!r}: cannot connect to PostgreSQL: "
                              f"{type(e).__name__}") from None
        if not writable:
            self._conn.read_only = True

    def _end_read(self) -> None:
        """End the implicit read transaction, unless changes are being grouped in one."""
        if not self._in_outer:
            self._conn.rollback()

    def _ident(self, name: str) -> str:
        return sql.Identifier(name).as_string(self._conn)

    def _table_ref(self, table: str) -> str:
        self.table_info(table)
        return sql.Identifier(self.schema, table).as_string(self._conn)

    def _read_catalogue(self) -> list[TableInfo]:
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s ORDER BY table_name, ordinal_position", (self.schema,))
            rows = cur.fetchall()
        self._end_read()
        cols: dict[str, list[ColumnInfo]] = {}
        for table, column, dtype in rows:
            cols.setdefault(table, []).append(ColumnInfo(column, dtype))
        out = []
        for table, columns in cols.items():
            with self._conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier(self.schema, table)))
                count = cur.fetchone()[0]
            out.append(TableInfo(table, tuple(columns), count))
        self._end_read()
        return out

    def _sample_sql(self, table: str, cols: list[str], limit: int, seed: int) -> str:
        count = self.table_info(table).row_count or 0
        if count <= limit:
            return f"{self._select_sql(table, cols)} LIMIT {int(limit)}"
        # Oversample three times so that the LIMIT is nearly always reached.
        pct = min(100.0, 300.0 * limit / count)
        select = ", ".join(self._ident(c) for c in cols)
        return (f"SELECT {select} FROM {self._table_ref(table)} TABLESAMPLE BERNOULLI "
                f"({pct:.6f}) REPEATABLE ({int(seed)}) LIMIT {int(limit)}")

    def sample_rows(self, table: str, columns: Sequence[str] | None = None,
                    limit: int = 200, seed: int = 0) -> pa.Table:
        try:
            return super().sample_rows(table, columns, limit, seed)
        finally:
            self._end_read()

    def stream_rows(self, table: str, columns: Sequence[str] | None = None,
                    batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        cols = self.check_columns(table, columns)
        query = self._select_sql(table, cols)
        # A server-side cursor keeps memory bounded on large tables.
        with self._conn.cursor(name=f"govkit_stream_{id(self)}") as cur:
            cur.execute(query)
            while True:
                rows = cur.fetchmany(batch_size)
                if not rows:
                    break
                yield from rows_to_table(rows, cols).to_batches()
        self._end_read()

    def find_rows(self, table: str, column: str, values: Sequence[Any],
                  fold_case: bool = False) -> list[dict[str, Any]]:
        try:
            return super().find_rows(table, column, values, fold_case)
        finally:
            self._end_read()
