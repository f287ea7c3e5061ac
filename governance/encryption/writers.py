"""Rewriting the cells of a table in place, one value per row, crash-safe.

``rewrite_table`` reads a table in batches (the row key, the columns to change and the
columns owners are found from), asks ``transform`` for each row's new values and writes
them back:

- SQL sources (SQLite, DuckDB, PostgreSQL): keyset pages ordered by the row key; each
  page's updates commit in one transaction, and each update applies only where the cell
  still holds the value read (``IS NOT DISTINCT FROM``), so a concurrent change is never
  overwritten. Killed midway, every cell is either as it was or fully rewritten.
- Files (CSV, JSON lines, Parquet): the file is copied with the changes under the
  connector's exclusive lock and renamed over it (all or nothing). CSV and JSON-lines
  records that do not change keep their bytes; Parquet keeps schema, compression and row
  groups. A Parquet file can also be rewritten column-wise (``batch_transform``: each row
  group as an Arrow table, the changes as arrays), its row groups written by a second
  thread while the next one is transformed; when the transform comes in two parts
  (``ColumnWise``), a forked copy of the process finishes every other row group
  (``governance.encryption.forked``).
Values are bound parameters; identifiers are quoted by the connector's mechanism.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from governance.errors import SourceError
from governance.inventory import FILE_KINDS
from governance.sources.base import Connector

Row = dict[str, Any]
# For each row: {column: new value} for the cells to change, or None to leave it.
Transform = Callable[[list[Row]], list[dict[str, Any] | None]]
PAGE_ROWS = 20_000
# Column-wise: for a batch (an Arrow table of the columns read), {column: (mask, values)}:
# the cells where ``mask`` (a numpy bool array as long as the batch) is True take
# ``values`` (an Arrow array holding one value per True, in row order).
BatchChanges = dict[str, tuple[np.ndarray, pa.Array]]
BatchTransform = Callable[[pa.Table], BatchChanges]


@dataclass(frozen=True)
class ColumnWise:
    """A column-wise transform in two parts: ``prepare`` decides, in this process (it may
    read stores and make keys); ``finish`` makes the changes from what ``prepare`` returned
    with the CPU alone, so that a forked process may run it for some row groups."""

    prepare: Callable[[pa.Table], Any]
    finish: Callable[[pa.Table, Any], BatchChanges]

    def __call__(self, data: pa.Table) -> BatchChanges:
        return self.finish(data, self.prepare(data))

TRANSFORM_ROWS = 262_144        # rows given to a column-wise transform at a time
FORK_WINDOW = 16                # row groups prepared (and held) before each fork


@dataclass
class RewriteResult:
    """Rows read and rows changed; rows left as they were because they changed meanwhile
    (SQL sources: a cell no longer held what was read)."""

    rows: int = 0
    changed: int = 0
    skipped: list[Row] = field(default_factory=list)


def rewrite_table(conn: Connector, table: str, key: list[str], read: list[str],
                  targets: list[str], transform: Transform, apply: bool,
                  progress: Callable[[int, int], None] | None = None,
                  page_rows: int | None = None,
                  batch_transform: BatchTransform | None = None,
                  before_swap: Callable[[], None] | None = None) -> RewriteResult:
    """Read ``read`` (which holds ``key``), change ``targets`` as ``transform`` says; write
    only with ``apply``. ``progress(rows_done, rows_changed)`` after each page.
    ``batch_transform``, when given, makes the same changes column-wise; it is used where
    that is faster (applying to a Parquet file). A file is rewritten aside and swapped in
    at the end; ``before_swap`` runs just before (an error from it changes nothing)."""
    read = list(dict.fromkeys([*key, *read, *targets]))
    conn.check_columns(table, read)
    if conn.kind in FILE_KINDS:
        return _rewrite_file(conn, table, read, targets, transform, apply, progress,
                             batch_transform, before_swap)
    return _rewrite_sql(conn, table, key, read, targets, transform, apply, progress,
                        page_rows or PAGE_ROWS)


# -- SQL -------------------------------------------------------------------------------

def _rewrite_sql(conn: Any, table: str, key: list[str], read: list[str], targets: list[str],
                 transform: Transform, apply: bool, progress: Callable[[int, int], None] | None,
                 page_rows: int) -> RewriteResult:
    ph = conn.placeholder
    ident = conn._ident
    ref = conn._table_ref(table)
    cols = ", ".join(ident(c) for c in read)
    order = ", ".join(ident(c) for c in key)
    key_expr = f"({order})" if len(key) > 1 else order
    after = f"({', '.join([ph] * len(key))})" if len(key) > 1 else ph
    result = RewriteResult()
    last: list[Any] | None = None
    while True:
        where = f" WHERE {key_expr} > {after}" if last is not None else ""
        # Identifiers quoted by the connector; values bound.
        sql = f"SELECT {cols} FROM {ref}{where} ORDER BY {order} LIMIT {int(page_rows)}"  # noqa: S608
        cur = conn._run(sql, last or [])
        rows = [dict(zip(read, r, strict=True)) for r in cur.fetchall()]
        cur.close()
        if not rows:
            _end_read(conn)
            break
        last = [rows[-1][k] for k in key]
        changes = transform(rows)
        todo = [(r, ch) for r, ch in zip(rows, changes, strict=True) if ch]
        result.rows += len(rows)
        result.changed += len(todo)
        if apply and todo:
            skipped = _apply_sql(conn, table, key, todo)
            result.changed -= len(skipped)
            result.skipped += skipped
        else:
            _end_read(conn)
        if progress:
            progress(result.rows, result.changed)
    return result


def _end_read(conn: Any) -> None:
    end = getattr(conn, "_end_read", None)
    if end is not None:
        end()


def _apply_sql(conn: Any, table: str, key: list[str], todo: list[tuple[Row, dict[str, Any]]]
               ) -> list[Row]:
    """One transaction: each row's new values, where its cells still hold what was read.
    Returns the rows left as they were (changed by someone else since they were read)."""
    ident, ph = conn._ident, conn.placeholder
    ref = conn._table_ref(table)
    groups: dict[tuple[str, ...], list[tuple[Row, dict[str, Any]]]] = {}
    for row, ch in todo:
        groups.setdefault(tuple(sorted(ch)), []).append((row, ch))
    updated = 0
    with conn.transaction():
        for cols, items in groups.items():
            if conn.kind == "duckdb":
                updated += _apply_duckdb(conn, ref, key, list(cols), items)
                continue
            sets = ", ".join(f"{ident(c)} = {ph}" for c in cols)
            keyq = " AND ".join(f"{ident(k)} = {ph}" for k in key)
            same = " AND ".join(f"{ident(c)} IS NOT DISTINCT FROM {ph}" for c in cols)
            sql = f"UPDATE {ref} SET {sets} WHERE {keyq} AND {same}"  # noqa: S608
            params = [[*(ch[c] for c in cols), *(row[k] for k in key), *(row[c] for c in cols)]
                      for row, ch in items]
            cur = conn._conn.cursor()
            try:
                cur.executemany(sql, params)
                updated += max(cur.rowcount, 0)   # the sum over the statements
            finally:
                cur.close()
        if updated >= len(todo):
            return []
        return _not_written(conn, ref, key, todo)


def _not_written(conn: Any, ref: str, key: list[str], todo: list[tuple[Row, dict[str, Any]]]
                 ) -> list[Row]:
    """The rows of ``todo`` whose cells do not hold their new values (read again, in the
    transaction that wrote them)."""
    ident, ph = conn._ident, conn.placeholder
    keyq = " AND ".join(f"{ident(k)} = {ph}" for k in key)
    out = []
    for row, ch in todo:
        cols = sorted(ch)
        cur = conn._run(f"SELECT {', '.join(ident(c) for c in cols)} FROM {ref} "  # noqa: S608
                        f"WHERE {keyq}", [row[k] for k in key])
        now = cur.fetchall()
        cur.close()
        if not now or any(v != ch[c] for c, v in zip(cols, now[0], strict=True)):
            out.append(row)
    return out


def _apply_duckdb(conn: Any, ref: str, key: list[str], cols: list[str],
                  items: list[tuple[Row, dict[str, Any]]]) -> int:
    """DuckDB: the page as an Arrow table joined in one UPDATE (executemany is slow); the
    rows it changed."""
    ident = conn._ident
    data: dict[str, list[Any]] = {f"k{i}": [r[k] for r, _ in items] for i, k in enumerate(key)}
    for i, c in enumerate(cols):
        data[f"n{i}"] = [ch[c] for _, ch in items]
        data[f"o{i}"] = [r[c] for r, _ in items]
    conn._conn.register("gk_page", pa.table(data))
    try:
        sets = ", ".join(f"{ident(c)} = u.n{i}" for i, c in enumerate(cols))
        keyq = " AND ".join(f"{ref}.{ident(k)} = u.k{i}" for i, k in enumerate(key))
        same = " AND ".join(f"{ref}.{ident(c)} IS NOT DISTINCT FROM u.o{i}"
                            for i, c in enumerate(cols))
        done = conn._conn.execute(f"UPDATE {ref} SET {sets} FROM gk_page AS u "  # noqa: S608
                                  f"WHERE {keyq} AND {same}").fetchall()
        return int(done[0][0]) if done else 0
    finally:
        conn._conn.unregister("gk_page")


# -- files -------------------------------------------------------------------------------

def _rewrite_file(conn: Any, table: str, read: list[str], targets: list[str],
                  transform: Transform, apply: bool,
                  progress: Callable[[int, int], None] | None,
                  batch_transform: BatchTransform | None = None,
                  before_swap: Callable[[], None] | None = None) -> RewriteResult:
    result = RewriteResult()
    if not apply:
        for batch in conn.stream_rows(table, read):
            rows = batch.to_pylist()
            result.rows += len(rows)
            result.changed += sum(1 for ch in transform(rows) if ch)
            if progress:
                progress(result.rows, result.changed)
        return result

    def write(f: Path, out: BinaryIO) -> int:
        if conn.kind == "parquet" and batch_transform is not None:
            _copy_parquet_columns(f, out, read, targets, batch_transform, result, progress)
        elif conn.kind == "parquet":
            _copy_parquet(f, out, read, transform, result, progress)
        elif conn.kind == "csv":
            _copy_csv(conn, table, f, out, read, transform, result, progress)
        else:
            _copy_jsonl(f, out, read, transform, result, progress)
        return result.changed

    conn.rewrite_file(table, write, before_swap)
    return result


def _copy_parquet(f: Path, out: BinaryIO, read: list[str], transform: Transform,
                  result: RewriteResult, progress: Callable[[int, int], None] | None) -> None:
    import pyarrow.parquet as pq

    from governance.sources import duckdb_source as ds

    pf = pq.ParquetFile(f)
    meta, schema = pf.metadata, pf.schema_arrow
    with pq.ParquetWriter(out, schema, **ds._parquet_options(meta)) as writer:
        for g in range(meta.num_row_groups):
            group = pf.read_row_group(g)
            rows = group.select(read).to_pylist()
            changes = transform(rows)
            result.rows += len(rows)
            changed_cols: dict[str, list[Any]] = {}
            for i, ch in enumerate(changes):
                if not ch:
                    continue
                result.changed += 1
                for c, v in ch.items():
                    if c not in changed_cols:
                        changed_cols[c] = group.column(c).to_pylist()
                    changed_cols[c][i] = v
            for c, values in changed_cols.items():
                idx = schema.get_field_index(c)
                group = group.set_column(idx, schema.field(idx),
                                         pa.array(values, schema.field(idx).type))
            if group.num_rows:
                writer.write_table(group, row_group_size=group.num_rows)
            if progress:
                progress(result.rows, result.changed)


def _copy_parquet_columns(f: Path, out: BinaryIO, read: list[str], targets: list[str],
                          transform: BatchTransform, result: RewriteResult,
                          progress: Callable[[int, int], None] | None) -> None:
    """``_copy_parquet`` with a column-wise transform; row group g is written and group
    g + 2 read (each by a thread of its own: Arrow releases the GIL for both) while group
    g + 1 is transformed, the odd groups of each window by a forked copy when it is
    worth one."""
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow.parquet as pq

    from governance.encryption.forked import ForkedGroups, fork_wanted
    from governance.sources import duckdb_source as ds

    pf = pq.ParquetFile(f)
    meta, schema = pf.metadata, pf.schema_arrow
    options = ds._parquet_options(meta)
    if isinstance(options.get("use_dictionary"), list):
        # Ciphertexts never repeat: a dictionary of them is built only to be dropped.
        options["use_dictionary"] = [c for c in options["use_dictionary"]
                                     if c not in targets]
    groups = meta.num_row_groups
    # A forked copy of this process finishes the odd row groups of each window of groups
    # (see governance.encryption.forked), when the transform comes in two parts.
    split = isinstance(transform, ColumnWise) and fork_wanted(groups, meta.num_rows)
    forked: ForkedGroups | None = None

    def slices_of(rows: int) -> list[tuple[int, int]]:
        # At most TRANSFORM_ROWS rows at a time, so that a large row group never has all
        # its cells in flight at once; the changed column is built slice by slice.
        return [(at, min(TRANSFORM_ROWS, rows - at)) for at in range(0, rows, TRANSFORM_ROWS)]

    with pq.ParquetWriter(out, schema, **options) as writer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="gk-parquet-w") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="gk-parquet-r") as reader:
        pending: Future[None] | None = None
        ahead: Future[pa.Table] | None = reader.submit(pf.read_row_group, 0) if groups else None
        try:
            for g in range(groups):
                assert ahead is not None
                group = ahead.result()
                if split and g % FORK_WINDOW == 0:
                    assert isinstance(transform, ColumnWise)
                    if forked is not None:
                        forked.close()
                    if pending is not None:   # forked with no Arrow work under way
                        pending.result()
                        pending = None
                    batches = {}
                    for h in range(g + 1, min(g + FORK_WINDOW, groups), 2):
                        theirs = pf.read_row_group(h, columns=read)
                        batches[h] = [(part, transform.prepare(part)) for part in
                                      (theirs.slice(at, n) for at, n in
                                       slices_of(theirs.num_rows))]
                    forked = ForkedGroups(transform, batches)
                    forked.start()
                ahead = reader.submit(pf.read_row_group, g + 1) if g + 1 < groups else None
                data = group.select(read)
                slices = slices_of(group.num_rows)
                if forked is not None and g in forked.batches:
                    parts = forked.take(g)
                else:
                    parts = [transform(data.slice(at, size)) for at, size in slices]
                changed = np.zeros(group.num_rows, bool)
                for c in dict.fromkeys(c for part in parts for c in part):
                    idx = schema.get_field_index(c)
                    fld = schema.field(idx)
                    chunks = []
                    for (at, size), part in zip(slices, parts, strict=True):
                        current = group.column(idx).slice(at, size).combine_chunks()
                        mask, values = part.get(c, (None, None))
                        count = 0 if mask is None else int(mask.sum())
                        if not count:
                            chunks.append(current)
                            continue
                        assert mask is not None and values is not None
                        if count != len(values) or len(mask) != size:
                            raise SourceError(f"{f}: a column-wise change of {c} does not match "
                                              "its rows")
                        changed[at:at + size] |= mask
                        if count == size:
                            chunks.append(values.cast(fld.type))   # every cell changes
                        else:
                            chunks.append(pc.replace_with_mask(current, pa.array(mask),
                                                               values.cast(fld.type)))
                    group = group.set_column(idx, fld, pa.chunked_array(chunks, fld.type))
                result.rows += group.num_rows
                result.changed += int(changed.sum())
                if pending is not None:
                    pending.result()
                    pending = None
                if group.num_rows:
                    pending = pool.submit(writer.write_table, group, group.num_rows)
                if progress:
                    progress(result.rows, result.changed)
            if pending is not None:
                pending.result()
        finally:
            if forked is not None:
                forked.close()


def _copy_csv(conn: Any, table: str, f: Path, out: BinaryIO, read: list[str],
              transform: Transform, result: RewriteResult,
              progress: Callable[[int, int], None] | None) -> None:
    from governance.sources import duckdb_source as ds

    dialect = conn._csv_dialect(f)
    columns = list(conn._columns(table))
    at = {c: columns.index(c) for c in read}
    with f.open("rb") as src:
        for _ in range(dialect.skip):
            out.write(src.readline())
        header_lines = next(ds._blocks_of_one(src, dialect.quote.encode()), b"")
        header = next(ds._records(io.BytesIO(header_lines), dialect), None)
        if header is None:
            return
        out.write(header[0])
        records = ds._records(src, dialect)
        while True:
            chunk = list(itertools.islice(records, ds.REWRITE_BATCH_RECORDS))
            if not chunk:
                break
            # An empty CSV field reads as NULL (as DuckDB reads it).
            rows = [{c: (row[i] if len(row) > i and row[i] != "" else None)
                     for c, i in at.items()} for _, row in chunk]
            for (raw, row), ch in zip(chunk, transform(rows), strict=True):
                result.rows += 1
                if not ch:
                    out.write(raw)
                    continue
                result.changed += 1
                targets = {columns.index(c): v for c, v in ch.items()}
                out.write(ds._csv_changed(raw, row, targets, dialect, f))
            if progress:
                progress(result.rows, result.changed)


def _copy_jsonl(f: Path, out: BinaryIO, read: list[str], transform: Transform,
                result: RewriteResult, progress: Callable[[int, int], None] | None) -> None:
    from governance.sources import duckdb_source as ds

    def lines() -> Iterator[bytes]:
        with f.open("rb") as src:
            yield from src

    it = lines()
    while True:
        chunk = list(itertools.islice(it, ds.REWRITE_BATCH_RECORDS))
        if not chunk:
            break
        objs: list[Row] = []
        for raw in chunk:
            try:
                obj = json.loads(raw) if raw.strip() else {}
            except ValueError:
                obj = {}
            objs.append({c: obj.get(c) for c in read} if isinstance(obj, dict) else {})
        for raw, obj, ch in zip(chunk, objs, transform(objs), strict=True):
            if not raw.strip():
                out.write(raw)
                continue
            result.rows += 1
            if not ch or not obj:
                out.write(raw)
                continue
            result.changed += 1
            out.write(ds._jsonl_changed(raw, ch))
        if progress:
            progress(result.rows, result.changed)


def column_kind(conn: Connector, table: str, column: str) -> str:
    """``text`` or ``bytes``: how envelopes fit this column; SourceError when neither does
    (a number or date column cannot hold a ciphertext)."""
    info = conn.table_info(table)
    col = info.column(column)
    if col is None:
        raise SourceError(f"source {conn.name!r}, table {table!r} has no column {column!r}")
    t = col.type.upper()
    if conn.kind in ("csv", "jsonl") or any(w in t for w in ("CHAR", "TEXT", "STRING", "CLOB",
                                                             "JSON")):
        return "text"
    if conn.kind == "sqlite" and t in ("", "ANY"):
        return "text"
    if any(w in t for w in ("BLOB", "BYTEA", "BINARY")):
        return "bytes"
    raise SourceError(f"{conn.name}.{table}.{column}: a {col.type} column cannot hold "
                      "ciphertext; change it to a text or binary type first")


KEY_ID_CHARS = 23              # "sk-" and 20 hex digits: the data key ids govkit makes
BLIND_INDEX_CHARS = 36         # "bx1-" and 32 hex digits


def declared_length(conn: Connector, table: str, column: str) -> int | None:
    """The most characters ``column`` holds when its type says so and the source enforces
    it (PostgreSQL's ``varchar(n)``; SQLite and DuckDB take any length)."""
    col = conn.table_info(table).column(column)
    return col.max_chars(conn.kind) if col is not None else None


def longest_envelope(conn: Connector, table: str, column: str) -> int:
    """Characters of the envelope of the text column's longest value not sealed yet: what
    the column must hold once it is sealed (a sealed cell keeps its length when its key
    is rotated)."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from governance.crypto.field import TEXT_PREFIX, seal_cell

    c: Any = conn
    col = c._ident(column)
    # Identifier quoted by the connector; the prefix a bound value.
    cur = c._run(f"SELECT max(length({col})) FROM {c._table_ref(table)} "  # noqa: S608
                 f"WHERE {col} NOT LIKE {c.placeholder}", [TEXT_PREFIX + "%"])
    longest = cur.fetchall()[0][0] or 0
    cur.close()
    _end_read(c)
    probe = seal_cell(AESGCM(os.urandom(32)), "sk-" + "0" * (KEY_ID_CHARS - 3),
                      "x" * int(longest), b"")
    return len(probe)


def sealed_cells(conn: Connector, table: str, columns: Sequence[str]) -> int:
    """Cells of the text ``columns`` that hold an envelope."""
    from governance.crypto.field import TEXT_PREFIX

    c: Any = conn
    any_sealed = " OR ".join(f"{c._ident(col)} LIKE {c.placeholder}" for col in columns)
    cur = c._run(f"SELECT count(*) FROM {c._table_ref(table)} WHERE {any_sealed}",  # noqa: S608
                 [TEXT_PREFIX + "%"] * len(columns))
    n = int(cur.fetchall()[0][0])
    cur.close()
    _end_read(c)
    return n


def unique_key(conn: Connector, table: str, key: Sequence[str]) -> bool:
    """Whether ``key`` identifies at most one row and is never empty (counted by the
    source itself)."""
    c: Any = conn
    cols = ", ".join(c._ident(k) for k in key)
    nulls = " OR ".join(f"{c._ident(k)} IS NULL" for k in key)
    # Identifiers quoted by the connector; no value in the statement.
    cur = c._run(f"SELECT count(*), count(DISTINCT ({cols})), "  # noqa: S608
                 f"sum(CASE WHEN {nulls} THEN 1 ELSE 0 END) FROM {c._table_ref(table)}")
    total, distinct, empty = cur.fetchall()[0]
    cur.close()
    _end_read(c)
    return total == distinct and not empty
