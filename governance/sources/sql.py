"""Shared behaviour of connectors that speak SQL through a DB-API driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from governance.errors import SourceError
from governance.sources.base import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_SAMPLE_ROWS,
    Connector,
    ForeignKey,
    Leaving,
    ReferencedRows,
    rows_to_table,
)

# How many key values go into one IN (...) list.
KEY_CHUNK = 500
# A-Z to a-z and nothing else: the letter case SQLite's LIKE, NOCASE and lower() ignore.
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


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

    def _end_read(self) -> None:
        """End the read-only transaction a query opened (PostgreSQL; nothing here)."""

    def _outside_ref(self, schema: str, table: str) -> str:
        """A table of another schema of the same database (PostgreSQL only)."""
        raise SourceError(f"source {self.name!r} has no schemas: {schema}.{table}")

    def rows_pointing_at(self, fk: ForeignKey, match_column: str, values: Sequence[Any]
                         ) -> list[tuple[Any, dict[str, Any]]]:
        cols, refs = fk.column.split(","), fk.ref_column.split(",")
        match = self.check_columns(fk.ref_table, match_column.split(","))
        self.check_columns(fk.ref_table, refs)
        if fk.schema is None:
            child = self._table_ref(fk.table)
            shown = self.table_info(fk.table).column_names
            self.check_columns(fk.table, cols)
        else:
            child, shown = self._outside_ref(fk.schema, fk.table), cols
        ident = self._ident
        # The referenced column on the left: SQLite compares with the left column's
        # collation (NOCASE, RTRIM), and its own key check uses the referenced column's.
        on = " AND ".join(f"p.{ident(r)} = c.{ident(c)}" for c, r in zip(cols, refs,
                                                                           strict=True))
        picked = ", ".join([f"p.{ident(m)}" for m in match] + [f"c.{ident(c)}" for c in shown])
        one = "(" + ", ".join([self.placeholder] * len(match)) + ")" if len(match) > 1 \
            else self.placeholder
        target = "(" + ", ".join(f"p.{ident(m)}" for m in match) + ")" if len(match) > 1 \
            else f"p.{ident(match[0])}"
        out: list[tuple[Any, dict[str, Any]]] = []
        for chunk in _chunks(values):
            # Identifiers quoted by the connector; values bound.
            cur = self._run(f"SELECT {picked} FROM {child} AS c "
                            f"JOIN {self._table_ref(fk.ref_table)} AS p ON {on} "
                            f"WHERE {target} IN ({', '.join([one] * len(chunk))})",
                            self._flat(chunk))
            for row in cur.fetchall():
                key = list(row[:len(match)]) if len(match) > 1 else row[0]
                out.append((key, dict(zip(shown, row[len(match):], strict=True))))
            cur.close()
        self._end_read()
        return out

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

    def _find_condition(self, column: str, chunk: Sequence[Any], fold_case: bool
                        ) -> tuple[str, list[Any]]:
        """The WHERE condition (and its parameters) of the rows whose ``column`` is one of
        ``chunk`` (lower-cased values compared with the lower-cased column: ``fold_case``)."""
        return self._where_in(column, len(chunk), fold_case), self._flat(chunk)

    def find_rows(self, table: str, column: str, values: Sequence[Any],
                  fold_case: bool = False) -> list[dict[str, Any]]:
        self.check_columns(table, column.split(","))
        cols = self.table_info(table).column_names
        if fold_case:
            values = [str(v).lower() for v in values]
        out: list[dict[str, Any]] = []
        for chunk in _chunks(values):
            where, params = self._find_condition(column, chunk, fold_case)
            cur = self._run(f"{self._select_sql(table, cols)} WHERE {where}", params)
            out.extend(dict(zip(cols, row, strict=True)) for row in cur.fetchall())
            cur.close()
        return out

    # Searching inside text -------------------------------------------------------------
    def _text_expr(self, column: str) -> str:
        """``column`` as text (its values compared as they are written)."""
        return self._ident(column)

    def _contains(self, expr: str, ignore_case: bool) -> str:
        """A condition true when ``expr`` contains the bound form (ASCII letter case
        ignored with ``ignore_case``; the form is bound as a LIKE pattern then)."""
        if ignore_case:
            return f"{expr} LIKE {self.placeholder} ESCAPE '\\'"
        return f"instr({expr}, {self.placeholder}) > 0"

    def _contains_param(self, form: str, ignore_case: bool) -> str:
        if not ignore_case:
            return form
        escaped = form.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"

    def _contains_any(self, expr: str, forms_ci: Sequence[str], forms_cs: Sequence[str]
                      ) -> tuple[str, list[Any]]:
        """A condition true when ``expr`` contains one of the forms, and its parameters."""
        conds: list[str] = []
        params: list[Any] = []
        for forms, fold in ((forms_ci, True), (forms_cs, False)):
            for form in forms:
                # A form without ASCII letters is the same searched either way; LIKE is
                # the faster of the two on SQLite.
                like = fold or (self.kind == "sqlite" and not _has_ascii_letter(form))
                conds.append(self._contains(expr, like))
                params.append(self._contains_param(form, like))
        return " OR ".join(conds), params

    def _search_where(self, table: str, columns: Sequence[str], forms_ci: Sequence[str],
                      forms_cs: Sequence[str]
                      ) -> tuple[list[str], list[str], list[str], str, list[Any]] | None:
        """The checked columns, the reduced forms, and the WHERE condition (with its
        parameters) true for rows whose cell in one of ``columns`` contains a form; None
        when a case-insensitive form is not plain ASCII."""
        cols = self.check_columns(table, list(columns))
        ci = _minimal([f for f in forms_ci if f], True)
        cs = [f for f in _minimal([f for f in forms_cs if f], False)
              if not any(g in f.translate(ASCII_LOWER) for g in ci)]
        if not all(f.isascii() for f in ci):
            return None
        conds: list[str] = []
        params: list[Any] = []
        for col in cols:
            cond, bound = self._contains_any(self._text_expr(col), ci, cs)
            conds.append(cond)
            params.extend(bound)
        return cols, ci, cs, " OR ".join(conds), params

    def search_substrings(self, table: str, columns: Sequence[str], forms_ci: Sequence[str],
                          forms_cs: Sequence[str]) -> dict[str, dict[str, int]] | None:
        """The cells of ``columns`` that contain one of ``forms_ci`` (ASCII letter case
        ignored) or ``forms_cs`` (exactly): per column, the distinct matching texts with
        their cell counts. The source finds them in one pass over the table and returns only
        the matching rows. None when a case-insensitive form is not plain ASCII (letter case
        beyond ASCII is not folded the same way by every source): search another way."""
        search = self._search_where(table, columns, forms_ci, forms_cs)
        if search is None:
            return None
        cols, ci, cs, where, params = search
        found: dict[str, dict[str, int]] = {c: {} for c in cols}
        if not cols or not (ci or cs):
            return found
        select = ", ".join(self._text_expr(c) for c in cols)
        cur = self._run(f"SELECT {select} FROM {self._table_ref(table)} WHERE {where}", params)
        try:
            while True:
                rows = cur.fetchmany(DEFAULT_BATCH_ROWS)
                if not rows:
                    break
                for row in rows:
                    for col, value in zip(cols, row, strict=True):
                        if value is None:
                            continue
                        text = value if isinstance(value, str) else str(value)
                        if contains_any(text, ci, cs):
                            found[col][text] = found[col].get(text, 0) + 1
        finally:
            cur.close()
            self._end_search()
        return found

    def search_rows(self, table: str, columns: Sequence[str], forms_ci: Sequence[str],
                    forms_cs: Sequence[str]) -> dict[str, list[dict[str, Any]]] | None:
        """Like ``search_substrings``, but the whole rows whose cell in each column holds a
        form (one pass; no second read to fetch the rows of the matching texts)."""
        search = self._search_where(table, columns, forms_ci, forms_cs)
        if search is None:
            return None
        cols, ci, cs, where, params = search
        found: dict[str, list[dict[str, Any]]] = {c: [] for c in cols}
        if not cols or not (ci or cs):
            return found
        names = self.table_info(table).column_names
        cur = self._run(f"{self._select_sql(table, names)} WHERE {where}", params)
        try:
            for values in cur.fetchall():
                row = dict(zip(names, values, strict=True))
                for col in cols:
                    v = row.get(col)
                    if v is not None and contains_any(v if isinstance(v, str) else str(v),
                                                      ci, cs):
                        found[col].append(row)
        finally:
            cur.close()
            self._end_search()
        return found

    def _end_search(self) -> None:
        """End the read a search began (sources with implicit transactions)."""

    # Changing --------------------------------------------------------------------------
    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> int:
        self.check_columns(table, column.split(","))
        return self._in_transaction(
            lambda chunk: f"DELETE FROM {self._table_ref(table)} WHERE "
                          f"{self._where_in(column, len(chunk))}", values)

    # Appended to the statement that reads the rows a deletion is about to remove: locks
    # them where the database can (PostgreSQL), so that no key can point at them meanwhile.
    _lock_rows = ""

    def delete_owned(self, table: str, column: str, values: Sequence[Any],
                     leaving: Leaving | None = None,
                     unchanged: Callable[[], None] | None = None) -> int:
        leaving = dict(leaving or {})
        leaving[table] = [(column, values), *leaving.get(table, [])]
        with self.transaction():
            # The table locked against new keys, the rows against new references (where
            # the database can); then the keys as they are now, and every row pointing at
            # the rows, less those that go too (compared by stored values).
            self._lock_table(table)
            self.lock_rows(table, column, values)
            if unchanged is not None:
                unchanged()
            keys = [k for k in self.current_keys() if k.ref_table == table]
            going: dict[str, list[tuple[list[str], set[Any]]]] = {}
            for fk in keys:
                pointing = [r for _, r in self.rows_pointing_at(fk, column, values)]
                if pointing and fk.schema is None and fk.table in leaving:
                    if fk.table not in going:
                        going[fk.table] = [(c.split(","), self._stored(fk.table, c, v))
                                           for c, v in leaving[fk.table]]
                    pointing = [r for r in pointing if not any(
                        _row_value(r, cols) in stored for cols, stored in going[fk.table])]
                if pointing:
                    raise ReferencedRows(self.name, table, fk, len(pointing))
            return self.delete_rows(table, column, values)

    def _lock_table(self, table: str) -> None:
        """Lock ``table`` against changes to its keys until the transaction ends (where
        the database has table locks)."""

    def lock_rows(self, table: str, column: str, values: Sequence[Any]) -> None:
        if self._lock_rows:
            self._stored(table, column, values, self._lock_rows)

    def _stored(self, table: str, column: str, values: Sequence[Any], suffix: str = ""
                ) -> set[Any]:
        """The stored values of ``column`` (tuples for a composite one) of the rows whose
        ``column`` is one of ``values``."""
        cols = self.check_columns(table, column.split(","))
        picked = ", ".join(self._ident(c) for c in cols)
        out: set[Any] = set()
        for chunk in _chunks(values):
            # Identifiers quoted by the connector; values bound.
            cur = self._run(f"SELECT {picked} FROM {self._table_ref(table)} WHERE "
                            f"{self._where_in(column, len(chunk))}{suffix}", self._flat(chunk))
            out.update(r[0] if len(cols) == 1 else tuple(r) for r in cur.fetchall())
            cur.close()
        return out

    def delete_unreferenced(self, table: str, column: str, values: Sequence[Any],
                            guards: Sequence[tuple[str, ...]]) -> int:
        self.check_columns(table, column.split(","))
        ref = self._table_ref(table)
        conds = []
        for g_table, g_column, target, *outside in guards:
            # A composite guard names its columns, and theirs, joined by commas; a guard
            # with a schema is a table outside the source (not in its catalogue).
            theirs = g_column.split(",") if outside \
                else self.check_columns(g_table, g_column.split(","))
            pairs = list(zip(theirs, self.check_columns(table, target.split(",")),
                             strict=True))
            # The referenced column on the left: SQLite compares with the left column's
            # collation, and its own key check uses the referenced column's.
            match = " AND ".join(f"{ref}.{self._ident(t)} = g.{self._ident(c)}"
                                 for c, t in pairs)
            g_ref = self._outside_ref(outside[0], g_table) if outside \
                else self._table_ref(g_table)
            conds.append(f"NOT EXISTS (SELECT 1 FROM {g_ref} AS g WHERE {match})")
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


def contains_any(text: str, forms_ci: Sequence[str], forms_cs: Sequence[str]) -> bool:
    """Whether ``text`` contains one of ``forms_ci`` (letter case ignored, ASCII or
    Unicode folding) or one of ``forms_cs`` exactly."""
    if any(f in text for f in forms_cs):
        return True
    if not forms_ci:
        return False
    folded, lowered = text.translate(ASCII_LOWER), text.lower()
    return any(f.translate(ASCII_LOWER) in folded or f.lower() in lowered for f in forms_ci)


def _minimal(forms: Sequence[str], ignore_case: bool) -> list[str]:
    """``forms`` without those that contain another (a cell holding the longer form holds
    the shorter one too), so that each cell is compared with as few forms as possible."""
    key = (lambda f: f.translate(ASCII_LOWER)) if ignore_case else (lambda f: f)
    uniq = list(dict.fromkeys(key(f) for f in forms))
    return [f for f in uniq if not any(g != f and g in f for g in uniq)]


def _row_value(row: Mapping[str, Any], cols: Sequence[str]) -> Any:
    """A row's value of one column, or the tuple of several."""
    return row[cols[0]] if len(cols) == 1 else tuple(row[c] for c in cols)


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    values = list({repr(v): v for v in values}.values())  # composite keys are lists
    for i in range(0, len(values), KEY_CHUNK):
        yield values[i:i + KEY_CHUNK]


def _has_ascii_letter(text: str) -> bool:
    return any("a" <= c.lower() <= "z" for c in text)
