"""DuckDB database files, and CSV / Parquet / JSON-lines files read through DuckDB."""

from __future__ import annotations

import csv
import fcntl
import io
import itertools
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from governance.errors import SourceError
from governance.sources.base import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_SAMPLE_ROWS,
    ColumnInfo,
    ForeignKey,
    Leaving,
    TableInfo,
)
from governance.sources.key_text import key_text, key_text_array, key_text_sql
from governance.sources.sql import KEY_CHUNK, SqlConnector

# DuckDB tables with fewer rows than this are counted exactly; larger ones estimated.
EXACT_COUNT_BELOW = 100_000


class DuckDBConnector(SqlConnector):
    """A DuckDB database file, opened read-only unless changes are asked for."""

    kind = "duckdb"
    # Each change commits on its own: DuckDB refuses, within one transaction, to delete a
    # row whose referencing rows that transaction deleted (its foreign-key limitation), so
    # a request's steps on a DuckDB database cannot commit together.
    atomic = False

    def __init__(self, name: str, path: Path | None, writable: bool = False):
        super().__init__(name)
        if path is not None:
            if not path.exists():
                raise SourceError(f"source {name!r}: DuckDB file not found: {path}")
            try:
                self._conn = duckdb.connect(str(path), read_only=not writable)
            except duckdb.Error as e:
                raise SourceError(f"source {name!r}: cannot open {path}: "
                                  f"{str(e).splitlines()[0]}") from None

    def _read_catalogue(self) -> list[TableInfo]:
        rows = self._conn.execute(
            "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, t.table_type "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = 'main' ORDER BY c.table_name, c.ordinal_position").fetchall()
        keys = {r[0]: tuple(r[1]) for r in self._conn.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = 'main' AND constraint_type = 'PRIMARY KEY'").fetchall()}
        cols: dict[str, list[ColumnInfo]] = {}
        kinds: dict[str, str] = {}
        files = self.kind != "duckdb"  # a file source's tables are views over its files
        for table, column, dtype, nullable, ttype in rows:
            cols.setdefault(table, []).append(ColumnInfo(column, dtype, nullable != "NO"))
            kinds[table] = "table" if files or ttype == "BASE TABLE" else "view"
        sizes = {} if files else dict(self._conn.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name = 'main'").fetchall())
        out = []
        for table, columns in cols.items():
            count = sizes.get(table)
            if count is None or count < EXACT_COUNT_BELOW:
                # Views, files and small tables are counted; large tables are estimated
                # from the storage's own figure, without reading them.
                count = self._conn.execute(
                    f"SELECT count(*) FROM {self._ident(table)}").fetchall()[0][0]
            out.append(TableInfo(table, tuple(columns), int(count), kinds[table],
                                 keys.get(table, ())))
        return out

    def _declared_keys(self) -> list[ForeignKey]:
        """Every foreign key of a DuckDB database (files declare none)."""
        if self.kind != "duckdb":
            return []
        rows = self._conn.execute(
            "SELECT table_name, constraint_column_names, referenced_table, "
            "referenced_column_names FROM duckdb_constraints() WHERE schema_name = 'main' "
            "AND constraint_type = 'FOREIGN KEY'").fetchall()
        return [ForeignKey(t, ",".join(c), self.catalogue_name(rt), ",".join(rc))
                for t, c, rt, rc in rows if c and len(c) == len(rc)]

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._in_outer:
            # Inside a transaction: on the connection that holds it (a DuckDB cursor is a
            # connection of its own, outside the transaction).
            self._conn.execute(sql, list(params))
            return _InTransaction(self._conn)
        cur = self._conn.cursor()
        try:
            cur.execute(sql, list(params))
        except duckdb.Error:
            cur.close()
            raise
        return cur

    def search_substrings(self, table: str, columns: Sequence[str], forms_ci: Sequence[str],
                          forms_cs: Sequence[str]) -> dict[str, dict[str, int]] | None:
        """See SqlConnector.search_substrings; file sources answer None (their tables are
        searched batch by batch, with bounded memory, by the caller)."""
        if self.kind != "duckdb":
            return None
        return super().search_substrings(table, columns, forms_ci, forms_cs)

    def search_rows(self, table: str, columns: Sequence[str], forms_ci: Sequence[str],
                    forms_cs: Sequence[str]) -> dict[str, list[dict[str, Any]]] | None:
        """See SqlConnector.search_rows; None for file sources."""
        if self.kind != "duckdb":
            return None
        return super().search_rows(table, columns, forms_ci, forms_cs)

    def _find_condition(self, column: str, chunk: Sequence[Any], fold_case: bool
                        ) -> tuple[str, list[Any]]:
        """With ``fold_case``, the column's length is compared first: DuckDB has no index on
        ``lower(column)`` and would lower-case every cell, while ``length`` is read from the
        string's header. Exact: ``lower`` maps each code point to one code point, so a
        cell and its lower-cased form have the same length (about 10x faster at 1M rows)."""
        if not fold_case or "," in column:
            return super()._find_condition(column, chunk, fold_case)
        marks = ", ".join("?" * len(chunk))
        col = self._ident(column)
        lengths = ", ".join(["length(?)"] * len(chunk))
        return (f"length({col}) IN ({lengths}) AND lower({col}) IN ({marks})",
                [*chunk, *chunk])

    def _text_expr(self, column: str) -> str:
        return f"CAST({self._ident(column)} AS VARCHAR)"

    def _contains_any(self, expr: str, forms_ci: Sequence[str], forms_cs: Sequence[str]
                      ) -> tuple[str, list[Any]]:
        """As SqlConnector's, with each case-insensitive form first narrowed by its longest
        run of characters that have no letter case (``5@`` of ``joe5@x.org``), compared as
        written: lower-casing changes letters only, so a cell without that run cannot hold
        the form; most cells are then never lower-cased (exact, and faster)."""
        conds: list[str] = []
        params: list[Any] = []
        for form in forms_ci:
            run = _caseless_run(form)
            if run == form:
                conds.append(f"contains({expr}, ?)")
                params.append(form)
            elif run:
                conds.append(f"(contains({expr}, ?) AND contains(lower({expr}), ?))")
                params.extend([run, form.lower()])
            else:
                conds.append(f"contains(lower({expr}), ?)")
                params.append(form.lower())
        for form in forms_cs:
            conds.append(f"contains({expr}, ?)")
            params.append(form)
        return " OR ".join(conds), params

    def _sample_sql(self, table: str, cols: list[str], limit: int, seed: int) -> str:
        return (f"{self._select_sql(table, cols)} USING SAMPLE reservoir({int(limit)} ROWS) "
                f"REPEATABLE ({int(seed)})")

    def sample_rows(self, table: str, columns: Sequence[str] | None = None,
                    limit: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> pa.Table:
        cols = self.check_columns(table, columns)
        return self._conn.sql(self._sample_sql(table, cols, limit, seed)).to_arrow_table()

    def stream_rows(self, table: str, columns: Sequence[str] | None = None,
                    batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        reader = self._conn.sql(self._select_sql(table, columns)).to_arrow_reader(batch_size)
        yield from reader

    def _begin(self) -> None:
        self._conn.execute("BEGIN TRANSACTION")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def _changed(self, cur: Any) -> int:
        rows = cur.fetchall()
        cur.close()
        return int(rows[0][0]) if rows else 0


class _InTransaction:
    """The result of a statement run on the connection holding the transaction: read like
    a cursor; closing it leaves the connection open."""

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self._conn = conn

    def fetchall(self) -> list[Any]:
        return self._conn.fetchall()

    def fetchone(self) -> Any:
        return self._conn.fetchone()

    def fetchmany(self, size: int) -> list[Any]:
        return self._conn.fetchmany(size)

    def close(self) -> None:
        """Nothing to release."""


# File formats DuckDB reads, and how each is read and written back.
# Parquet is streamed and sampled with pyarrow, a row group at a time: DuckDB's reader
# buffers far more (about 1 GB for a 10M-row file) and its samples read the whole file.
PARQUET_READ_BUFFER = 1 << 20
# A Parquet sample is drawn from the first rows of at most this many row groups, chosen by
# the seed, at most SAMPLE_WINDOW_ROWS in all; a file with fewer rows is sampled whole.
SAMPLE_ROW_GROUPS = 16
SAMPLE_WINDOW_ROWS = 65_536
_SUFFIXES = {"csv": (".csv",), "parquet": (".parquet",), "jsonl": (".jsonl", ".ndjson", ".json")}

# A rewrite of ``dir/name`` writes ``dir/.name.govkit-rewrite.tmp`` and renames it over the
# file. A crash leaves that copy behind under this one name, where stale_temporaries()
# finds it; the next rewrite or remove_stale_temporaries() deletes it under the file's lock.
TEMP_SUFFIX = ".govkit-rewrite.tmp"
# Versions before it used tempfile.mkstemp: ``.name.XXXXXXXX.tmp``; those are found too.
_LEGACY_TEMP = r"\.{name}\.[a-z0-9_]{{8}}\.tmp"
# Records (CSV, JSON lines) copied between two checks of the fault hook.
REWRITE_BATCH_RECORDS = 65_536
# CSV and JSON lines are read in blocks of about this size; a block where no key is written
# is copied without parsing it.
CSV_BLOCK_BYTES = 1 << 20
# Fault injection for tests: GOVKIT_FAULT=file_rewrite:N (a comma-separated list may name
# other hooks) ends the process with status 137, as a kill would, once N batches (record
# batches of CSV / JSON lines, row groups of Parquet) of a rewrite are in its temporary copy.
FAULT_ENV = "GOVKIT_FAULT"


class FileConnector(DuckDBConnector):
    """CSV, Parquet or JSON-lines files: one file is one table named after the file's stem.

    ``path`` is a file or a folder of files of that format. CSV is read as text so that
    values such as ``007`` or ``+8613800000000`` keep their exact form. Reads notice a file
    replaced since they last looked (inode, size, mtime) and read it afresh, dialect
    included.

    A change (delete_rows, update_rows) holds an exclusive ``flock`` on the data file
    itself, re-reads the file under it, copies it to ``.<name>.govkit-rewrite.tmp`` and
    renames that over the file, keeping its mode and owner. CSV and JSON lines are copied
    line by line: only the matched records are dropped or re-written, every other byte stays
    as it was. Parquet keeps its schema, compression and row-group sizes.
    """

    atomic = False

    def __init__(self, name: str, kind: str, path: Path, writable: bool = False):
        super().__init__(name, None)
        self.kind = kind  # type: ignore[misc]
        self.writable = writable
        if not path.exists():
            raise SourceError(f"source {name!r}: path not found: {path}")
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES[kind]) \
            if path.is_dir() else [path]
        self._files: dict[str, Path] = {}
        self._seen: dict[str, tuple[int, ...] | None] = {}
        self._guards: dict[str, Callable[[], None]] = {}
        self._conn = duckdb.connect()
        for f in files:
            self._files[f.stem] = f
            self._open_view(f.stem)

    def _open_view(self, table: str) -> None:
        """(Re)create the view of ``table``'s file, sniffing its dialect afresh."""
        f = self._files[table]
        seen = _signature(f)
        try:
            self._relation(f).create_view(table)
        except duckdb.Error as e:
            raise SourceError(f"source {self.name!r}: cannot read {f} as {self.kind}: "
                              f"{str(e).splitlines()[0]}") from None
        self._seen[table] = seen
        self._forget_catalogue()

    def _relation(self, f: Path) -> duckdb.DuckDBPyRelation:
        if self.kind == "csv":
            return self._conn.read_csv(str(f), all_varchar=True, header=True)
        if self.kind == "parquet":
            return self._conn.read_parquet(str(f))
        rel = self._conn.read_json(str(f), format="newline_delimited")
        # A column whose lines hold values of different types (``"14"`` in one, ``14`` in
        # the next) is read as JSON text; it is read as the values' text instead, as the
        # rewrites read it (``14`` for both).
        mixed = [c for c, t in zip(rel.columns, rel.types, strict=True) if str(t) == "JSON"]
        if not mixed:
            return rel
        swap = ", ".join(f"json_extract_string({self._ident(c)}, '$') AS {self._ident(c)}"
                         for c in mixed)
        return rel.project(f"* REPLACE ({swap})")

    def list_tables(self) -> list[TableInfo]:
        """Every file's table; a file replaced since it was last read is read afresh."""
        for table, f in self._files.items():
            if _signature(f) != self._seen.get(table):
                self._open_view(table)
        return super().list_tables()

    def stream_rows(self, table: str, columns: Sequence[str] | None = None,
                    batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        if self.kind != "parquet":
            # On a cursor of its own, so that the connector can be queried while the rows
            # stream (a file has no transaction to share with it).
            cur = self._conn.cursor()
            try:
                yield from cur.sql(self._select_sql(table, columns)).to_arrow_reader(
                    batch_size)
            finally:
                cur.close()
            return
        cols = self.check_columns(table, columns)
        yield from self._parquet(table).iter_batches(batch_size=batch_size, columns=cols)

    def sample_rows(self, table: str, columns: Sequence[str] | None = None,
                    limit: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> pa.Table:
        """A seeded sample; for Parquet, ``limit`` rows drawn from the first rows of row
        groups chosen by the seed (the whole file when it is small), so that sampling a
        10M-row file reads a few thousand rows rather than all of them."""
        if self.kind != "parquet":
            return super().sample_rows(table, columns, limit, seed)
        cols = self.check_columns(table, columns)
        pf = self._parquet(table)
        rng = np.random.default_rng(seed)
        groups = [g for g in range(pf.metadata.num_row_groups)
                  if pf.metadata.row_group(g).num_rows]
        if len(groups) > SAMPLE_ROW_GROUPS:
            groups = sorted(rng.choice(groups, SAMPLE_ROW_GROUPS, replace=False).tolist())
        window = max(limit, SAMPLE_WINDOW_ROWS // max(len(groups), 1))
        parts = [next(pf.iter_batches(batch_size=window, row_groups=[g], columns=cols))
                 for g in groups]
        pool = pa.Table.from_batches(parts, schema=pf.schema_arrow.empty_table()
                                     .select(cols).schema)
        if pool.num_rows <= limit:
            return pool
        rows = np.sort(rng.choice(pool.num_rows, limit, replace=False))
        return pool.take(pa.array(rows))

    def _parquet(self, table: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.file_of(table), pre_buffer=False,
                              buffer_size=PARQUET_READ_BUFFER)

    def file_of(self, table: str) -> Path:
        """The file that holds ``table``."""
        self.table_info(table)
        return self._files[table]

    # -- temporary copies ------------------------------------------------------------
    def stale_temporaries(self) -> list[Path]:
        """Copies left beside this source's files by rewrites that did not finish (a
        crash, a kill); a rewrite running right now, which holds its file's lock, is not
        stale and its copy is not listed."""
        out = []
        for f in self._files.values():
            found = _temporaries(f)
            if found and not _busy(f):
                out.extend(found)
        return out

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the copies stale_temporaries() lists (each under its file's lock, after
        any rewrite in progress has finished); return the paths removed."""
        if not self.writable:
            raise SourceError(f"source {self.name!r} was opened read-only; cannot remove "
                              "temporary copies")
        removed = []
        for f in self._files.values():
            if not _temporaries(f):
                continue
            with _locked(f):
                for tmp in _temporaries(f):
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
            _sync_dir(f.parent)
        return removed

    # -- changing ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> int:
        self.check_columns(table, [column])
        return self._rewrite(table, column, values, None)

    def delete_owned(self, table: str, column: str, values: Sequence[Any],
                     leaving: Leaving | None = None,
                     unchanged: Callable[[], None] | None = None) -> int:
        """``delete_rows``, with ``unchanged`` checked under the file's lock, on the file
        the rewrite copies (files declare no foreign keys: the SQL connectors' key checks
        are not wanted here)."""
        with self.guarded(table, unchanged):
            return self.delete_rows(table, column, values)

    @contextmanager
    def guarded(self, table: str, check: Callable[[], None] | None) -> Iterator[None]:
        """Each rewrite of ``table``'s file inside the block runs ``check`` first, under
        the file's lock and on the file as it is then (another writer that takes the lock
        waits; one that does not is caught before the swap)."""
        if check is None:
            yield
            return
        if table in self._guards:
            raise RuntimeError(f"{table}: guarded blocks do not nest")
        self._guards[table] = check
        try:
            yield
        finally:
            del self._guards[table]

    def update_rows(self, table: str, column: str, values: Sequence[Any],
                    assignments: Mapping[str, Any]) -> int:
        self.check_columns(table, [column, *assignments])
        if not assignments:
            raise ValueError("update_rows needs at least one column to assign")
        return self._rewrite(table, column, values, dict(assignments))

    def _rewrite(self, table: str, column: str, values: Sequence[Any],
                 assignments: dict[str, Any] | None) -> int:
        """Delete (``assignments`` None) or update the rows whose ``column`` holds one of
        ``values`` (``rewrite_file``: re-read under the lock, renamed over the file only if
        a row matched)."""
        keys = {k for v in values if (k := key_text(v)) is not None}
        if not keys:
            self._writable_file(table)
            return 0

        def write(f: Path, out: BinaryIO) -> int:
            columns = self._columns(table)
            missing = [c for c in [column, *(assignments or {})] if c not in columns]
            if missing:
                raise SourceError(f"source {self.name!r}, table {table!r} has no column "
                                  f"{missing[0]!r}")
            return self._copy_changed(table, f, out, column, keys, assignments)

        return self.rewrite_file(table, write)

    def _writable_file(self, table: str) -> Path:
        """The real path of ``table``'s file (a symbolic link stays a link to the rewritten
        file); SourceError when the source was opened read-only."""
        f = self.file_of(table)
        if not self.writable:
            raise SourceError(f"source {self.name!r} was opened read-only; cannot change {f}")
        return Path(os.path.realpath(f))

    def rewrite_file(self, table: str, write: Callable[[Path, BinaryIO], int],
                     before_swap: Callable[[], None] | None = None) -> int:
        """Rewrite ``table``'s file aside and swap it in, all or nothing: under the file's
        lock (the view read afresh), ``write(file, out)`` copies it with its changes to a
        temporary copy beside it and returns how many rows it changed; when any did,
        ``before_swap`` runs, the file is checked unchanged by others meanwhile and the copy
        renamed over it. A file with other hard links or marked read-only is refused first.
        Returns what ``write`` returned."""
        f = self._writable_file(table)
        with _locked(f) as fd:
            before = os.fstat(fd)
            check_rewritable(f, before)
            tmp = _temporary(f)
            tmp.unlink(missing_ok=True)  # a crashed rewrite's copy
            self._open_view(table)  # what the file holds now, dialect sniffed under the lock
            check = self._guards.get(table)
            if check is not None:
                check()             # (see guarded)
            try:
                with _create_like(tmp, before) as out:
                    n = write(f, out)
                if n:
                    if before_swap is not None:
                        before_swap()
                    if _signature(f) != _stat_signature(before):
                        raise SourceError(f"source {self.name!r}: {f} was changed by another "
                                          "program during the rewrite; nothing was changed")
                    os.replace(tmp, f)
                    _sync_dir(f.parent)
            finally:
                tmp.unlink(missing_ok=True)
        if n:
            self._open_view(table)
        return n

    def _copy_changed(self, table: str, f: Path, out: BinaryIO, column: str, keys: set[str],
                      assignments: dict[str, Any] | None) -> int:
        """Write ``f`` with the change applied to ``out``; the number of rows matched."""
        if self.kind == "parquet":
            n = _copy_parquet(f, out, column, keys, assignments)
        elif self.kind == "csv":
            n = _copy_csv(f, out, list(self._columns(table)), column, keys, assignments,
                          self._csv_dialect(f))
        else:
            n = _copy_jsonl(f, out, column, keys, assignments)
        # An independent count by DuckDB's reader: the rewrite and the view that find_rows
        # searched (the plan, the checks) must agree on which rows match, or nothing is
        # changed (a key written two ways would otherwise change rows no one saw).
        expected = self._count_matches(table, column, keys)
        if n != expected:
            raise SourceError(
                f"source {self.name!r}: {f}: {n} row(s) matched by the rewrite but {expected} "
                f"through DuckDB in column {column!r}; the file's format is read two ways, so "
                "nothing was changed")
        return n

    def find_rows(self, table: str, column: str, values: Sequence[Any],
                  fold_case: bool = False) -> list[dict[str, Any]]:
        """The rows whose ``column`` holds one of ``values``, compared by ``key_text``
        (``14``, ``14.0`` and ``"14"`` alike, as the rewrites compare them); with
        ``fold_case`` or a composite column, SqlConnector.find_rows."""
        if fold_case or "," in column:
            return super().find_rows(table, column, values, fold_case)
        self.check_columns(table, [column])
        cols = self.table_info(table).column_names
        out: list[dict[str, Any]] = []
        for where, chunk in self._key_conditions(
                table, column, {k for v in values if (k := key_text(v)) is not None}):
            cur = self._run(f"{self._select_sql(table, cols)} WHERE {where}", chunk)
            out.extend(dict(zip(cols, row, strict=True)) for row in cur.fetchall())
            cur.close()
        return out

    def _key_conditions(self, table: str, column: str, keys: set[str]
                        ) -> Iterator[tuple[str, list[str]]]:
        """WHERE conditions (with their parameters), KEY_CHUNK keys at a time, of the rows
        whose ``column`` has one of ``keys`` as its ``key_text``."""
        target = key_text_sql(self._ident(column), self._columns(table)[column])
        vals = sorted(keys)
        for i in range(0, len(vals), KEY_CHUNK):
            chunk = vals[i:i + KEY_CHUNK]
            yield f"{target} IN ({', '.join('?' * len(chunk))})", chunk

    def _count_matches(self, table: str, column: str, keys: set[str]) -> int:
        """The rows whose ``column`` has one of ``keys`` as its ``key_text``."""
        return sum(self._conn.execute(f"SELECT count(*) FROM {self._ident(table)} WHERE "
                                      f"{where}", chunk).fetchall()[0][0]
                   for where, chunk in self._key_conditions(table, column, keys))

    def _columns(self, table: str) -> dict[str, str]:
        """The view's columns and their types, as read now (without counting rows)."""
        rel = self._conn.sql(f"SELECT * FROM {self._ident(table)} LIMIT 0")
        return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}

    def _csv_dialect(self, f: Path) -> _CsvDialect:
        """The dialect DuckDB sniffs in ``f`` (as its view reads it)."""
        row = self._conn.execute(
            "SELECT Delimiter, Quote, Escape, SkipRows, Comment FROM sniff_csv(?)",
            [str(f)]).fetchall()[0]

        def char(v: str) -> str:
            return "" if v in ("(empty)", None) else v

        delim, quote, escape, skip, comment = (char(row[0]), char(row[1]), char(row[2]),
                                               int(row[3]), char(row[4]))
        if len(delim) != 1 or len(quote) > 1 or len(escape) > 1 or comment:
            raise SourceError(f"source {self.name!r}: {f}: the CSV dialect (delimiter "
                              f"{delim!r}, quote {quote!r}, escape {escape!r}, comment "
                              f"{comment!r}) cannot be rewritten exactly; nothing was changed")
        return _CsvDialect(delim, quote, escape, skip)


class _CsvDialect:
    """Delimiter, quote and escape characters ('' for none) and lines before the header."""

    def __init__(self, delimiter: str, quote: str, escape: str, skip: int):
        self.delimiter, self.quote, self.escape, self.skip = delimiter, quote, escape, skip

    def reader_options(self) -> dict[str, Any]:
        """The same dialect for Python's csv module."""
        if not self.quote:
            return {"delimiter": self.delimiter, "quoting": csv.QUOTE_NONE,
                    "escapechar": self.escape or None}
        doubled = not self.escape or self.escape == self.quote
        return {"delimiter": self.delimiter, "quotechar": self.quote, "doublequote": doubled,
                "escapechar": None if doubled else self.escape, "strict": False}

    def split_raw(self, text: str) -> tuple[list[str], str]:
        """The fields of one record as written (quotes included), and its line ending."""
        body = text.rstrip("\r\n")
        ending = text[len(body):]
        q, e, d = self.quote, self.escape, self.delimiter
        fields, start, inside, i = [], 0, False, 0
        while i < len(body):
            ch = body[i]
            if inside:
                if e and e != q and ch == e:
                    i += 1
                elif ch == q:
                    if body[i + 1:i + 2] == q:
                        i += 1
                    else:
                        inside = False
            elif q and ch == q:
                inside = True
            elif ch == d:
                fields.append(body[start:i])
                start = i + 1
            i += 1
        fields.append(body[start:])
        return fields, ending

    def field(self, value: Any, was_quoted: bool) -> str:
        """``value`` written as a field: quoted where the original field was or where it
        must be; None as an empty field."""
        if value is None:
            return ""
        s = str(value)
        q = self.quote or '"'
        needs = (not s or any(c in s for c in (self.delimiter, q, "\r", "\n"))
                 or s != s.strip() or bool(self.escape and self.escape in s))
        if not (was_quoted or needs):
            return s
        if self.escape and self.escape != q:
            s = s.replace(self.escape, self.escape * 2).replace(q, self.escape + q)
        else:
            s = s.replace(q, q * 2)
        return q + s + q


def _records(f: BinaryIO, dialect: _CsvDialect) -> Iterator[tuple[bytes, list[str]]]:
    """Each record of a CSV file: its bytes exactly as written (line ending included, a
    quoted field may span lines) and its parsed fields."""
    taken: list[bytes] = []

    def lines() -> Iterator[str]:
        for raw in f:
            taken.append(raw)
            yield raw.decode("utf-8", "surrogateescape")

    for row in csv.reader(lines(), **dialect.reader_options()):
        raw = taken[0] if len(taken) == 1 else b"".join(taken)
        taken.clear()
        yield raw, row


class _Progress:
    """Counts the records copied, in batches of REWRITE_BATCH_RECORDS, for the fault hook."""

    def __init__(self, out: BinaryIO):
        self.out, self.records, self.batches = out, 0, 0

    def add(self, records: int) -> None:
        self.records += records
        while self.records >= REWRITE_BATCH_RECORDS:
            self.records -= REWRITE_BATCH_RECORDS
            self.batches += 1
            _fault_point(self.out, self.batches)

    def done(self) -> None:
        _fault_point(self.out, self.batches + 1)


def _to_record_end(src: BinaryIO, blob: bytes, quote: bytes) -> bytes:
    """``blob`` extended with the next lines of ``src`` until it holds an even count of
    quote characters (it then ends outside any quoted field), or ``src`` ends."""
    odd = bool(quote) and blob.count(quote) % 2 == 1
    while odd:
        line = src.readline()
        if not line:
            break
        blob += line
        odd ^= line.count(quote) % 2 == 1
    return blob


def _blocks(src: BinaryIO, quote: bytes) -> Iterator[bytes]:
    """The rest of ``src`` in blocks of about CSV_BLOCK_BYTES that end at a record's end:
    after a line end, outside any quoted field (an even count of quote characters)."""
    while True:
        blob = src.read(CSV_BLOCK_BYTES)
        if not blob:
            return
        if not blob.endswith(b"\n"):
            blob += src.readline()
        yield _to_record_end(src, blob, quote)


def _copy_csv(f: Path, out: BinaryIO, columns: list[str], column: str, keys: set[str],
              assignments: dict[str, Any] | None, dialect: _CsvDialect) -> int:
    """Copy ``f`` record by record, dropping or changing the matched ones. A block of the
    file in which no key is written at all is copied as it is, unparsed; elsewhere only the
    records that may match are parsed."""
    at = columns.index(column)
    targets = {columns.index(c): v for c, v in (assignments or {}).items()}
    n = 0
    progress = _Progress(out)
    # Blocks end at record ends found by counting quotes, which an escape character other
    # than the doubled quote would upset: such files are parsed record by record.
    blockwise = not (dialect.escape and dialect.escape != dialect.quote)
    # A matching field holds the key as written unless the key holds a character that is
    # doubled or escaped when quoted: only then may a block without the key be skipped.
    special = {dialect.quote, dialect.escape, "\r", "\n"} - {""}
    skip_absent = len(keys) <= 64 and not any(c in k for k in keys for c in special)
    raw_keys = {k.encode("utf-8", "surrogateescape") for k in keys}
    delim, quote = dialect.delimiter.encode(), dialect.quote.encode()

    def copy(records: Iterator[tuple[bytes, list[str]]]) -> None:
        nonlocal n
        for raw, row in records:
            # An empty field is NULL (as DuckDB reads it) and matches nothing.
            if len(row) > at and row[at] and key_text(row[at]) in keys:
                n += 1
                if assignments is not None:
                    out.write(_csv_changed(raw, row, targets, dialect, f))
            else:
                out.write(raw)

    def copy_lines(blob: bytes) -> None:
        """A record without quotes is one line whose fields split at the delimiter; it
        is parsed only if it matches. Quoted records (maybe several lines) are parsed."""
        pending: list[bytes] = []
        odd = False
        for raw in io.BytesIO(blob):
            if not pending and not (quote and quote in raw):
                fields = raw.rstrip(b"\r\n").split(delim)
                if len(fields) > at and _key_bytes(fields[at]) in raw_keys:
                    copy(_records(io.BytesIO(raw), dialect))
                else:
                    out.write(raw)
                continue
            pending.append(raw)
            odd ^= raw.count(quote) % 2 == 1
            if not odd:
                copy(_records(io.BytesIO(b"".join(pending)), dialect))
                pending.clear()
        if pending:
            copy(_records(io.BytesIO(b"".join(pending)), dialect))

    with f.open("rb") as src:
        for _ in range(dialect.skip):
            out.write(src.readline())
        header_lines = next(_blocks_of_one(src, dialect.quote.encode()), b"")
        header = next(_records(io.BytesIO(header_lines), dialect), None)
        if header is None:
            return 0
        out.write(header[0])
        names = header[1]
        if names and names[0].startswith("\ufeff"):
            names[0] = names[0][1:]
        if len(names) != len(columns):
            raise SourceError(f"{f}: the header has {len(names)} fields, DuckDB reads "
                              f"{len(columns)} columns; nothing was changed")
        if not blockwise:
            records = _records(src, dialect)
            while True:
                chunk = list(itertools.islice(records, REWRITE_BATCH_RECORDS))
                if not chunk:
                    break
                copy(iter(chunk))
                progress.add(len(chunk))
        for blob in _blocks(src, quote) if blockwise else ():
            if skip_absent and not any(k in blob for k in raw_keys):
                out.write(blob)
            else:
                copy_lines(blob)
            progress.add(blob.count(b"\n"))
    progress.done()
    return n


def _blocks_of_one(src: BinaryIO, quote: bytes) -> Iterator[bytes]:
    """The next record of ``src`` (its lines, up to an even count of quote characters)."""
    yield _to_record_end(src, src.readline(), quote)


def _csv_changed(raw: bytes, row: list[str], targets: dict[int, Any],
                 dialect: _CsvDialect, f: Path) -> bytes:
    """The record ``raw`` with the fields ``targets`` set, every other field as written."""
    fields, ending = dialect.split_raw(raw.decode("utf-8", "surrogateescape"))
    if len(fields) != len(row):
        raise SourceError(f"{f}: a matched record splits into {len(fields)} fields, not "
                          f"{len(row)}; nothing was changed")
    for i, value in targets.items():
        q = dialect.quote
        fields[i] = dialect.field(value, bool(q) and fields[i].startswith(q))
    text = dialect.delimiter.join(fields) + ending
    # A file with no quoted field has no quote character: a value that needs one gets '"'.
    quoted = dialect if dialect.quote else _CsvDialect(dialect.delimiter, '"', "", 0)
    check = next(csv.reader([text], **quoted.reader_options()), [])
    wanted = [("" if targets[i] is None else str(targets[i])) if i in targets else v
              for i, v in enumerate(row)]
    if check != wanted:
        raise SourceError(f"{f}: a changed record would not read back as written; "
                          "nothing was changed")
    return text.encode("utf-8", "surrogateescape")


_JSON = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _copy_jsonl(f: Path, out: BinaryIO, column: str, keys: set[str],
                assignments: dict[str, Any] | None) -> int:
    """Copy ``f`` line by line, dropping or changing the matched lines. A line (or a block
    of lines) without any key written in it and without escapes cannot match: it is
    copied unparsed."""
    n = 0
    progress = _Progress(out)
    raw_keys = [k.encode("utf-8", "surrogateescape") for k in keys]
    by_block = len(keys) <= 64
    with f.open("rb") as src:
        for blob in _blocks(src, b""):
            if by_block and b"\\" not in blob and not any(k in blob for k in raw_keys):
                out.write(blob)
            else:
                for raw in io.BytesIO(blob):
                    maybe = not by_block or b"\\" in raw or any(k in raw for k in raw_keys)
                    if maybe and _jsonl_matches(raw, column, keys):
                        n += 1
                        if assignments is not None:
                            out.write(_jsonl_changed(raw, assignments))
                    else:
                        out.write(raw)
            progress.add(blob.count(b"\n"))
    progress.done()
    return n


def _jsonl_matches(raw: bytes, column: str, keys: set[str]) -> bool:
    """Whether the object on line ``raw`` holds one of ``keys`` in ``column``, compared by
    ``key_text`` (``"14"``, ``14``, ``14.0`` and ``1.4e1`` alike; ``007`` is not ``7``):
    a number with a fraction or exponent as Python reads it, as DuckDB does."""
    if not raw.strip():
        return False
    try:
        obj = json.loads(raw, parse_int=str, parse_constant=lambda c: None)
    except ValueError:
        return False
    value = obj.get(column) if isinstance(obj, dict) else None
    return isinstance(value, str | float | bool) and key_text(value) in keys


def _key_bytes(field: bytes) -> bytes:
    """``key_text`` of an unquoted CSV field, as bytes."""
    return (key_text(field.decode("utf-8", "surrogateescape")) or "").encode(
        "utf-8", "surrogateescape")


def _jsonl_changed(raw: bytes, assignments: dict[str, Any]) -> bytes:
    """Line ``raw`` with the values of ``assignments`` replaced, every other byte kept."""
    text = raw.decode("utf-8", "surrogateescape")
    spans = _top_level_spans(text)
    ascii_only = text.isascii()
    edits = []
    for key, value in assignments.items():
        new = json.dumps(value, ensure_ascii=ascii_only, default=str)
        if key in spans:
            edits.append((*spans[key], new))
        elif value is not None:  # an absent member reads as null already
            end = text.rindex("}")
            colon = ": " if '": ' in text else ":"
            comma = ", " if ", " in text else ","
            sep = comma if spans else ""
            edits.append((end, end, f"{sep}{json.dumps(key, ensure_ascii=ascii_only)}"
                                    f"{colon}{new}"))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text.encode("utf-8", "surrogateescape")


def _top_level_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where each top-level member's value is written in the JSON object ``text``."""
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[i:i + 1] != "{":
        raise ValueError("not a JSON object")
    i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    spans: dict[str, tuple[int, int]] = {}
    if text[i:i + 1] == "}":
        return spans
    while True:
        key, i = _JSON.raw_decode(text, i)
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i:i + 1] != ":":
            raise ValueError("malformed JSON object")
        start = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        _, end = _JSON.raw_decode(text, start)
        spans[key] = (start, end)
        i = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[i:i + 1] == ",":
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        elif text[i:i + 1] == "}":
            return spans
        else:
            raise ValueError("malformed JSON object")


def _copy_parquet(f: Path, out: BinaryIO, column: str, keys: set[str],
                  assignments: dict[str, Any] | None) -> int:
    """Row group by row group, with the file's schema, compression and row-group sizes."""
    pf = pq.ParquetFile(f, pre_buffer=False, buffer_size=PARQUET_READ_BUFFER)
    meta, schema = pf.metadata, pf.schema_arrow
    key_set = pa.array(sorted(keys), pa.string())
    n = 0
    with pq.ParquetWriter(out, schema, **_parquet_options(meta)) as writer:
        for g in range(meta.num_row_groups):
            parts = []
            for batch in pf.iter_batches(batch_size=DEFAULT_BATCH_ROWS, row_groups=[g]):
                data = pa.Table.from_batches([batch], schema=schema)
                mask = pc.fill_null(pc.is_in(key_text_array(data[column]),
                                             value_set=key_set), False)
                hits = pc.sum(mask).as_py() or 0
                if hits:
                    n += hits
                    data = _parquet_changed(data, mask, assignments)
                parts.append(data)
            group = pa.concat_tables(parts) if parts else schema.empty_table()
            if group.num_rows:
                writer.write_table(group, row_group_size=group.num_rows)
            _fault_point(out, g + 1)
    return int(n)


def _parquet_changed(data: pa.Table, mask: pa.Array,
                     assignments: dict[str, Any] | None) -> pa.Table:
    if assignments is None:
        return data.filter(pc.invert(mask))
    for col, value in assignments.items():
        i = data.schema.get_field_index(col)
        typ = data.schema.field(i).type
        data = data.set_column(i, data.schema.field(i),
                               pc.if_else(mask, pa.scalar(value, typ), data[col]))
    return data


def _parquet_options(meta: pq.FileMetaData) -> dict[str, Any]:
    """Writer options that reproduce the file's format version, compression and
    dictionary encoding, as far as the file's metadata records them."""
    opts: dict[str, Any] = {"version": meta.format_version
                            if meta.format_version in ("1.0", "2.4", "2.6") else "2.6"}
    if meta.num_row_groups:
        group = meta.row_group(0)
        chunks = [group.column(j) for j in range(group.num_columns)]
        codecs = {c.path_in_schema: c.compression for c in chunks}
        if len(set(codecs.values())) == 1:
            opts["compression"] = next(iter(codecs.values()))
        else:
            opts["compression"] = codecs
        opts["use_dictionary"] = [c.path_in_schema for c in chunks
                                  if any("DICTIONARY" in e for e in c.encodings)]
    return opts


def _fault_point(out: BinaryIO, batches: int) -> None:
    """The GOVKIT_FAULT=file_rewrite:N test hook (see FAULT_ENV)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for part in spec.split(","):
        name, _, count = part.strip().partition(":")
        if name == "file_rewrite" and count.strip() == str(batches):
            out.flush()
            os.fsync(out.fileno())
            os._exit(137)


def _signature(f: Path) -> tuple[int, ...] | None:
    """What identifies one version of ``f``: device, inode, size, modification time."""
    try:
        return _stat_signature(f.stat())
    except FileNotFoundError:
        return None


def _stat_signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _temporary(f: Path) -> Path:
    """The one name a rewrite of ``f`` writes its copy under (beside the real file)."""
    f = Path(os.path.realpath(f))
    return f.with_name(f".{f.name}{TEMP_SUFFIX}")


def _temporaries(f: Path) -> list[Path]:
    """Rewrite copies of ``f`` present beside it (this version's and older ones')."""
    f = Path(os.path.realpath(f))
    legacy = re.compile(_LEGACY_TEMP.format(name=re.escape(f.name)))
    found = [_temporary(f)] if _temporary(f).exists() else []
    try:
        found += sorted(p for p in f.parent.iterdir() if legacy.fullmatch(p.name))
    except FileNotFoundError:
        pass
    return found


@contextmanager
def _locked(f: Path) -> Iterator[int]:
    """Hold an exclusive ``flock`` on the file ``f`` (waiting for other writers); yields
    the locked descriptor. A writer that was waiting while another replaced the file locks
    the new file, not the one it first opened."""
    while True:
        try:
            fd = os.open(f, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SourceError(f"{f} no longer exists") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, now = os.fstat(fd), f.stat()
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            break
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _busy(f: Path) -> bool:
    """Whether a rewrite of ``f`` holds its lock right now."""
    try:
        fd = os.open(f, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def check_rewritable(f: Path, st: os.stat_result) -> None:
    """Refuse to rewrite a file that is marked read-only or that has other hard links (the
    other names would keep the old content: the plaintext, the erased rows)."""
    if st.st_nlink > 1:
        raise SourceError(f"{f} has {st.st_nlink} hard links: rewriting it would leave the "
                          "other names holding its old content; remove the other links (or "
                          "make it a file of its own) first; nothing was changed")
    if not st.st_mode & 0o222:
        raise SourceError(f"{f} is read-only (mode {stat.S_IMODE(st.st_mode):04o}); make it "
                          "writable to let govkit rewrite it; nothing was changed")


@contextmanager
def _create_like(tmp: Path, like: os.stat_result) -> Iterator[BinaryIO]:
    """Create ``tmp`` (it must not exist) with the owner and group of ``like``; on a clean
    exit flush it to disk and give it ``like``'s permissions."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        mine = os.fstat(fd)
        if (mine.st_uid, mine.st_gid) != (like.st_uid, like.st_gid):
            try:
                os.fchown(fd, like.st_uid, like.st_gid)
            except PermissionError:
                raise SourceError(f"cannot give a rewritten copy the owner and group of "
                                  f"{tmp.name[1:-len(TEMP_SUFFIX)]} (uid {like.st_uid}, gid "
                                  f"{like.st_gid}); nothing was changed") from None
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "wb", buffering=1 << 20) as out:
        yield out
        out.flush()
        os.fchmod(fd, stat.S_IMODE(like.st_mode))
        os.fsync(fd)


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _caseless_run(form: str) -> str:
    """The longest run of ASCII characters without letter case in ``form`` ('' if none)."""
    best = ""
    for run in re.split(r"[^\x00-\x40\x5b-\x60\x7b-\x7f]+", form):
        if len(run) > len(best):
            best = run
    return best
