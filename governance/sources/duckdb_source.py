"""DuckDB database files, and CSV / Parquet / JSON-lines files read through DuckDB."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    TableInfo,
)
from governance.sources.sql import SqlConnector


class DuckDBConnector(SqlConnector):
    """A DuckDB database file, opened read-only unless changes are asked for."""

    kind = "duckdb"

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
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall()
        cols: dict[str, list[ColumnInfo]] = {}
        for table, column, dtype in rows:
            cols.setdefault(table, []).append(ColumnInfo(column, dtype))
        out = []
        for table, columns in cols.items():
            count = self._conn.execute(
                f"SELECT count(*) FROM {self._ident(table)}").fetchall()[0][0]
            out.append(TableInfo(table, tuple(columns), count))
        return out

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._conn.cursor()
        try:
            cur.execute(sql, list(params))
        except duckdb.Error:
            cur.close()
            raise
        return cur

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


# File formats DuckDB reads, and how each is read and written back.
# Parquet is streamed and sampled with pyarrow, a row group at a time: DuckDB's reader
# buffers far more (about 1 GB for a 10M-row file) and its samples read the whole file.
PARQUET_READ_BUFFER = 1 << 20
# A Parquet sample is drawn from the first rows of at most this many row groups, chosen by
# the seed, at most SAMPLE_WINDOW_ROWS in all; a file with fewer rows is sampled whole.
SAMPLE_ROW_GROUPS = 16
SAMPLE_WINDOW_ROWS = 65_536
_SUFFIXES = {"csv": (".csv",), "parquet": (".parquet",), "jsonl": (".jsonl", ".ndjson", ".json")}


class FileConnector(DuckDBConnector):
    """CSV, Parquet or JSON-lines files: one file is one table named after the file's stem.

    ``path`` is a file or a folder of files of that format. CSV is read as text so that
    values such as ``007`` or ``+8613800000000`` keep their exact form. Changes rewrite the
    file to a temporary copy and replace it atomically, holding an exclusive lock on the
    file so that two writers (two erasures, say) never lose each other's changes.
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
        self._conn = duckdb.connect()
        for f in files:
            self._files[f.stem] = f
            try:
                self._relation(f).create_view(f.stem)
            except duckdb.Error as e:
                raise SourceError(f"source {name!r}: cannot read {f} as {kind}: "
                                  f"{str(e).splitlines()[0]}") from None

    def _relation(self, f: Path) -> duckdb.DuckDBPyRelation:
        if self.kind == "csv":
            return self._conn.read_csv(str(f), all_varchar=True, header=True)
        if self.kind == "parquet":
            return self._conn.read_parquet(str(f))
        return self._conn.read_json(str(f), format="newline_delimited")

    def stream_rows(self, table: str, columns: Sequence[str] | None = None,
                    batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        if self.kind != "parquet":
            yield from super().stream_rows(table, columns, batch_size)
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

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def _rewrite(self, table: str, column: str, values: Sequence[Any],
                 change: Any) -> int:
        f = self.file_of(table)
        if not self.writable:
            raise SourceError(f"source {self.name!r} was opened read-only; cannot change {f}")
        with _locked(f):
            return self._rewrite_locked(f, table, column, values, change)

    def _rewrite_locked(self, f: Path, table: str, column: str, values: Sequence[Any],
                        change: Any) -> int:
        """Stream ``table`` into a temporary copy with ``change`` applied to the batches
        holding a matching row, then replace the file (only if a row matched)."""
        keys = pa.array([str(v) for v in values], pa.string())
        fd, tmp = tempfile.mkstemp(dir=f.parent, prefix=f".{f.name}.", suffix=".tmp")
        os.close(fd)
        n = 0
        try:
            with _Writer(self.kind, Path(tmp)) as out:
                for batch in self._all_batches(table):
                    data = pa.Table.from_batches([batch])
                    mask = pc.fill_null(pc.is_in(data[column].cast(pa.string()),
                                                 value_set=keys), False)
                    hits = pc.sum(mask).as_py() or 0
                    n += hits
                    out.write(change(data, mask) if hits else data)
            if n:
                os.replace(tmp, f)
                _sync_dir(f.parent)
        finally:
            Path(tmp).unlink(missing_ok=True)
        if n:
            self._conn.execute(f"DROP VIEW {self._ident(table)}")
            self._relation(f).create_view(table)
            self._forget_catalogue()
        return int(n)

    def _all_batches(self, table: str) -> Iterator[pa.RecordBatch]:
        """Every row of ``table`` with all its columns, in the file's own types."""
        if self.kind == "parquet":
            yield from self._parquet(table).iter_batches(batch_size=DEFAULT_BATCH_ROWS)
            return
        reader = self._conn.sql(f"SELECT * FROM {self._ident(table)}").to_arrow_reader(
            DEFAULT_BATCH_ROWS)
        yield from reader

    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> int:
        self.check_columns(table, [column])
        return self._rewrite(table, column, values,
                             lambda data, mask: data.filter(pc.invert(mask)))

    def update_rows(self, table: str, column: str, values: Sequence[Any],
                    assignments: Mapping[str, Any]) -> int:
        self.check_columns(table, [column, *assignments])

        def change(data: pa.Table, mask: pa.Array) -> pa.Table:
            for col, value in assignments.items():
                i = data.schema.get_field_index(col)
                typ = data.schema.field(i).type
                data = data.set_column(i, col, pc.if_else(mask, pa.scalar(value, typ), data[col]))
            return data

        return self._rewrite(table, column, values, change)


@contextmanager
def _locked(f: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for rewriting ``f`` (waits for other writers)."""
    lock = f.with_name(f".{f.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class _Writer:
    """Writes Arrow tables one after another to a CSV, Parquet or JSON-lines file, and
    flushes it to disk on close."""

    def __init__(self, kind: str, path: Path):
        self.kind, self.path = kind, path
        self._out: Any = None

    def __enter__(self) -> _Writer:
        return self

    def write(self, table: pa.Table) -> None:
        """Append the rows of ``table``."""
        if self._out is None:
            if self.kind == "csv":
                import pyarrow.csv as pacsv

                self._out = pacsv.CSVWriter(str(self.path), table.schema)
            elif self.kind == "parquet":
                self._out = pq.ParquetWriter(str(self.path), table.schema)
            else:
                self._out = self.path.open("w", encoding="utf-8")
        if self.kind == "jsonl":
            import json

            for row in table.to_pylist():
                self._out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        else:
            self._out.write_table(table)

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            self._out.close()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
