"""Shared behaviour of connectors that speak SQL through a DB-API driver."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from governance.sources.base import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_SAMPLE_ROWS,
    Connector,
    rows_to_table,
)

# How many key values go into one IN (...) list.
KEY_CHUNK = 500


def quote_ident(name: str) -> str:
    """Quote an identifier the way SQLite and DuckDB define it: double quotes, doubled inside."""
    return '"' + name.replace('"', '""') + '"'


class SqlConnector(Connector):
    """A connector over a DB-API connection with ``?`` or ``%s`` placeholders."""

    placeholder = "?"
    atomic = True

    def __init__(self, name: str):
        super().__init__(name)
        self._conn: Any = None
        self._in_outer = False

    # Dialect hooks -------------------------------------------------------------------
    def _ident(self, name: str) -> str:
        return quote_ident(name)

    def _table_ref(self, table: str) -> str:
        self.table_info(table)
        return self._ident(table)

    def _select_sql(self, table: str, columns: Sequence[str] | None) -> str:
        cols = self.check_columns(table, columns)
        return f"SELECT {', '.join(self._ident(c) for c in cols)} FROM {self._table_ref(table)}"

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._conn.cursor()
        cur.execute(sql, list(params))
        return cur

    def _begin(self) -> None:
        """Start a transaction (drivers that open one implicitly need nothing)."""

    def _commit(self) -> None:
        self._conn.commit()

    def _rollback(self) -> None:
        self._conn.rollback()

    # Reading ---------------------------------------------------------------------------
    def stream_rows(self, table: str, columns: Sequence[str] | None = None,
                    batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        cols = self.check_columns(table, columns)
        cur = self._run(self._select_sql(table, cols))
        try:
            while True:
                rows = cur.fetchmany(batch_size)
                if not rows:
                    break
                yield from rows_to_table(rows, cols).to_batches()
        finally:
            cur.close()

    def sample_rows(self, table: str, columns: Sequence[str] | None = None,
                    limit: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> pa.Table:
        cols = self.check_columns(table, columns)
        cur = self._run(self._sample_sql(table, cols, limit, seed))
        rows = cur.fetchall()
        cur.close()
        return rows_to_table(rows, cols)

    def _sample_sql(self, table: str, cols: list[str], limit: int, seed: int) -> str:
        return f"{self._select_sql(table, cols)} LIMIT {int(limit)}"

    def _where_in(self, column: str, n: int, fold_case: bool = False) -> str:
        if "," in column:  # a composite key: (a, b) IN ((?, ?), ...)
            cols = column.split(",")
            one = "(" + ", ".join([self.placeholder] * len(cols)) + ")"
            target = "(" + ", ".join(self._ident(c) for c in cols) + ")"
            return f"{target} IN ({', '.join([one] * n)})"
        marks = ", ".join([self.placeholder] * n)
        target = f"lower({self._ident(column)})" if fold_case else self._ident(column)
        return f"{target} IN ({marks})"

    @staticmethod
    def _flat(chunk: Sequence[Any]) -> list[Any]:
        """Bound parameters of a chunk of key values (composite keys are lists)."""
        out: list[Any] = []
        for v in chunk:
            out.extend(v) if isinstance(v, list | tuple) else out.append(v)
        return out

    def find_rows(self, table: str, column: str, values: Sequence[Any],
                  fold_case: bool = False) -> list[dict[str, Any]]:
        self.check_columns(table, [column])
        cols = self.table_info(table).column_names
        if fold_case:
            values = [str(v).lower() for v in values]
        out: list[dict[str, Any]] = []
        for chunk in _chunks(values):
            cur = self._run(f"{self._select_sql(table, cols)} WHERE "
                            f"{self._where_in(column, len(chunk), fold_case)}", chunk)
            out.extend(dict(zip(cols, row, strict=True)) for row in cur.fetchall())
            cur.close()
        return out

    # Changing --------------------------------------------------------------------------
    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> int:
        self.check_columns(table, column.split(","))
        return self._in_transaction(
            lambda chunk: f"DELETE FROM {self._table_ref(table)} WHERE "
                          f"{self._where_in(column, len(chunk))}", values)

    def delete_unreferenced(self, table: str, column: str, values: Sequence[Any],
                            guards: Sequence[tuple[str, str, str]]) -> int:
        self.check_columns(table, column.split(","))
        ref = self._table_ref(table)
        conds = []
        for g_table, g_column, target in guards:
            self.check_columns(g_table, [g_column])
            self.check_columns(table, [target])
            conds.append(f"NOT EXISTS (SELECT 1 FROM {self._table_ref(g_table)} AS g "
                         f"WHERE g.{self._ident(g_column)} = {ref}.{self._ident(target)})")
        extra = "".join(f" AND {c}" for c in conds)
        return self._in_transaction(
            lambda chunk: f"DELETE FROM {ref} WHERE "
                          f"{self._where_in(column, len(chunk))}{extra}", values)

    def update_rows(self, table: str, column: str, values: Sequence[Any],
                    assignments: Mapping[str, Any]) -> int:
        self.check_columns(table, column.split(","))
        targets = self.check_columns(table, list(assignments))
        if not targets:
            raise ValueError("update_rows needs at least one column to assign")
        sets = ", ".join(f"{self._ident(c)} = {self.placeholder}" for c in targets)
        assigned = [assignments[c] for c in targets]
        return self._in_transaction(
            lambda chunk: f"UPDATE {self._table_ref(table)} SET {sets} WHERE "
                          f"{self._where_in(column, len(chunk))}", values, prefix=assigned)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_outer:
            yield
            return
        self._begin()
        self._in_outer = True
        try:
            yield
            self._commit()
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_outer = False
            self._forget_catalogue()

    def _in_transaction(self, make_sql: Any, values: Sequence[Any],
                        prefix: Sequence[Any] = ()) -> int:
        total = 0
        with self.transaction():
            for chunk in _chunks(values):
                total += self._changed(self._run(make_sql(chunk),
                                                 [*prefix, *self._flat(chunk)]))
        return total

    def _changed(self, cur: Any) -> int:
        """How many rows the statement just run on ``cur`` changed (and close it)."""
        n = max(cur.rowcount or 0, 0)
        cur.close()
        return n

    def dry_run(self, operation: str, table: str, column: str,
                assignments: Mapping[str, Any] | None = None) -> str:
        where = f"WHERE {self._ident(column)} IN ({self.placeholder}, ...)"
        if operation == "find":
            return f"{self._select_sql(table, None)} {where}"
        if operation == "delete":
            return f"DELETE FROM {self._table_ref(table)} {where}"
        if operation == "update":
            sets = ", ".join(f"{self._ident(c)} = {self.placeholder}" for c in assignments or {})
            return f"UPDATE {self._table_ref(table)} SET {sets} {where}"
        raise ValueError(f"unknown operation {operation!r}; use find, delete or update")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    values = list({repr(v): v for v in values}.values())  # composite keys are lists
    for i in range(0, len(values), KEY_CHUNK):
        yield values[i:i + KEY_CHUNK]
