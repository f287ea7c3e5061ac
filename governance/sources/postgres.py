"""PostgreSQL databases through psycopg 3."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from governance.errors import SourceError
from governance.sources.base import (
    DEFAULT_BATCH_ROWS,
    ColumnInfo,
    ForeignKey,
    TableInfo,
    rows_to_table,
)
from governance.sources.sql import SqlConnector

# Tables with fewer rows than this are counted exactly; larger ones are estimated.
EXACT_COUNT_BELOW = 100_000
# A table never analysed is estimated from a sample from this many 8 kB pages on.
ESTIMATE_FROM_PAGES = 2_000


class PostgresConnector(SqlConnector):
    """One schema of a PostgreSQL database; identifiers quoted with psycopg.sql.Identifier."""

    kind = "postgres"
    placeholder = "%s"
    _lock_rows = " FOR UPDATE"

    def __init__(self, name: str, dsn: str, schema: str = "public", writable: bool = False):
        super().__init__(name)
        self.schema = schema
        self._inherited: set[str] = set()
        self._children: dict[str, list[str]] = {}
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
        return self._only(table) + sql.Identifier(self.schema, table).as_string(self._conn)

    def inheriting(self, table: str) -> list[str]:
        self.table_info(table)
        return list(self._children.get(table, []))

    def _only(self, table: str) -> str:
        """``ONLY `` for a table other tables inherit from: its own rows, not theirs (each
        inheriting table is a table of its own in the catalogue)."""
        return "ONLY " if table in self._inherited else ""

    def _read_catalogue(self) -> list[TableInfo]:
        # pg_catalog rather than information_schema: it lists materialized views, and it
        # tells a partitioned table (one table) from its partitions (never listed).
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT c.relname, c.relkind, c.reltuples::bigint, "
                "CASE WHEN c.relkind IN ('r', 'm') THEN pg_relation_size(c.oid) / 8192 END, "
                "a.attname, "
                "format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                "COALESCE(a.attnum = ANY(i.indkey), false), "
                "c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_inherits h "
                "WHERE h.inhparent = c.oid), c.relispopulated "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
                "AND NOT a.attisdropped "
                "LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                "AND NOT c.relispartition ORDER BY c.relname, a.attnum", (self.schema,))
            rows = cur.fetchall()
        self._end_read()
        # A materialized view created WITH NO DATA and never refreshed holds no rows, and
        # reading it is an error: it is left out until refreshed, and named.
        self.unpopulated = {r[0] for r in rows if not r[9]}
        rows = [r for r in rows if r[9]]
        kinds = {"r": "table", "p": "table", "f": "table", "v": "view",
                 "m": "materialized_view"}
        tables: dict[str, dict[str, Any]] = {}
        self._inherited = {r[0] for r in rows if r[8]}
        self._children = {}
        if self._inherited:
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT p.relname, c.relname, cn.nspname FROM pg_inherits i "
                    "JOIN pg_class p ON p.oid = i.inhparent "
                    "JOIN pg_namespace pn ON pn.oid = p.relnamespace "
                    "JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_namespace cn ON cn.oid = c.relnamespace "
                    "WHERE pn.nspname = %s AND p.relkind = 'r' AND NOT c.relispartition "
                    "ORDER BY 1, 3, 2", (self.schema,))
                for parent, child, schema in cur.fetchall():
                    self._children.setdefault(parent, []).append(
                        child if schema == self.schema else f"{schema}.{child}")
        for table, relkind, estimate, pages, column, dtype, notnull, is_pk, _, _ in rows:
            t = tables.setdefault(table, {"kind": kinds[relkind], "estimate": estimate,
                                          "pages": pages, "rel": relkind, "cols": [],
                                          "pk": []})
            t["cols"].append(ColumnInfo(column, dtype, not notnull))
            if is_pk:
                t["pk"].append(column)
        out = []
        for table, t in tables.items():
            count = t["estimate"]
            if count is None or count < 0 or count < EXACT_COUNT_BELOW:
                # Never analysed (-1), or small enough to count exactly.
                if t["rel"] in ("r", "m") and (t["pages"] or 0) >= ESTIMATE_FROM_PAGES:
                    count = self._sampled_count(table)  # large and never analysed
                else:
                    try:
                        with self._conn.cursor() as cur:
                            cur.execute(sql.SQL("SELECT count(*) FROM " + self._only(table)
                                                + "{}").format(
                                sql.Identifier(self.schema, table)))
                            count = cur.fetchone()[0]
                    except psycopg.Error as e:
                        self._conn.rollback()
                        raise SourceError(
                            f"source {self.name!r}: cannot read {self.schema}.{table} "
                            f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
            out.append(TableInfo(table, tuple(t["cols"]), count, t["kind"], tuple(t["pk"])))
        self._end_read()
        return out

    def _sampled_count(self, table: str) -> int:
        """The rows of a large table never analysed, estimated from a 1% block sample."""
        with self._conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM " + self._only(table)
                                + "{} TABLESAMPLE SYSTEM (1) REPEATABLE (0)").format(
                sql.Identifier(self.schema, table)))
            return int(cur.fetchone()[0]) * 100

    def folded_index(self, table: str, column: str) -> str | None:
        """``lower`` when an index of the table leads with lower(column) (it serves matching
        e-mail addresses in any letter case), else None (such a match reads the whole
        table; create one with ``CREATE INDEX ON t (lower(column))``)."""
        self.check_columns(table, [column])
        try:
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_get_indexdef(i.indexrelid, 1, true) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s AND i.indkey[0] = 0 "
                    "AND i.indpred IS NULL", (self.schema, table))
                keys = [r[0] for r in cur.fetchall()]
        finally:
            self._end_read()
        # lower(email), lower((email)::text), lower("E-mail"::text): the same key.
        wanted = "lower" + column
        keys = [re.sub(r'[()"]|::text|::charactervarying', "", "".join(k.split()))
                for k in keys]
        return "lower" if wanted in keys else None

    def _text_expr(self, column: str) -> str:
        return f"{self._ident(column)}::text"

    def _contains_any(self, expr: str, forms_ci: Sequence[str], forms_cs: Sequence[str]
                      ) -> tuple[str, list[Any]]:
        # LIKE ANY folds the text once per row for all forms; LIKE is much faster than
        # ILIKE or strpos here (measured in bench/requests.py).
        conds: list[str] = []
        params: list[Any] = []
        if forms_ci:
            conds.append(f"lower({expr}) LIKE ANY (%s)")
            params.append([self._contains_param(f.lower(), True) for f in forms_ci])
        if forms_cs:
            conds.append(f"{expr} LIKE ANY (%s)")
            params.append([self._contains_param(f, True) for f in forms_cs])
        return " OR ".join(conds), params

    def _end_search(self) -> None:
        self._end_read()

    def _lock_table(self, table: str) -> None:
        # ROW EXCLUSIVE, as a DELETE takes: a new foreign key to the table waits for the
        # transaction to end (ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE).
        self._run(f"LOCK TABLE {self._table_ref(table)} IN ROW EXCLUSIVE MODE").close()

    def current_keys(self) -> list[ForeignKey]:
        keys = [*self._declared_keys(), *self._declared_keys(elsewhere=True)]
        known = {t.name for t in self.list_tables()}
        if any(k.schema is None and (k.table not in known or k.ref_table not in known)
               for k in keys):
            self._forget_catalogue()      # a table made since the catalogue was read
        return keys

    def foreign_keys_from_elsewhere(self) -> list[ForeignKey]:
        return self._declared_keys(elsewhere=True)

    def _outside_ref(self, schema: str, table: str) -> str:
        return sql.Identifier(schema, table).as_string(self._conn)

    def _declared_keys(self, elsewhere: bool = False) -> list[ForeignKey]:
        """Every foreign key within the schema, its columns in the key's order (a
        partitioned table's once, a key declared on one partition as its table's);
        ``elsewhere``: those of other
        schemas' tables pointing into this one, with their schema."""
        with self._conn.cursor() as cur:
            cur.execute(
                # A key to or from a partition is read as a key to or from its
                # partitioned table (in that table's schema); the copies a key on a
                # partitioned table makes on its partitions (conparentid) are not read again.
                "SELECT root.relname, string_agg(a.attname, ',' ORDER BY u.ord), "
                "(SELECT r.relname FROM pg_class r WHERE r.oid = "
                "COALESCE(pg_partition_root(rc.oid), rc.oid)), "
                "string_agg(ra.attname, ',' ORDER BY u.ord), root.nspname "
                "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
                "CROSS JOIN LATERAL (SELECT r.relname, rs.nspname FROM pg_class r "
                "JOIN pg_namespace rs ON rs.oid = r.relnamespace "
                "WHERE r.oid = COALESCE(pg_partition_root(c.oid), c.oid)) AS root "
                "JOIN pg_class rc ON rc.oid = k.confrelid "
                "JOIN pg_namespace rn ON rn.oid = rc.relnamespace "
                "CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY "
                "AS u(attnum, refnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum "
                "JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = u.refnum "
                f"WHERE k.contype = 'f' AND root.nspname {'<>' if elsewhere else '='} %s "
                "AND rn.nspname = %s AND k.conparentid = 0 "
                "GROUP BY k.oid, root.nspname, root.relname, rc.oid ORDER BY 5, 1, 2",
                (self.schema, self.schema))
            rows = cur.fetchall()
        self._end_read()
        return list(dict.fromkeys(ForeignKey(r[0], r[1], r[2], r[3],
                                             schema=r[4] if elsewhere else None)
                                  for r in rows))

    def _sample_sql(self, table: str, cols: list[str], limit: int, seed: int) -> str:
        info = self.table_info(table)
        count = info.row_count or 0
        if count <= limit:
            return f"{self._select_sql(table, cols)} LIMIT {int(limit)}"
        select = ", ".join(self._ident(c) for c in cols)
        if info.kind != "table":
            # TABLESAMPLE works on tables only: a view is sampled by a seeded hash order.
            order = f"md5(({int(seed)})::text || row(v.*)::text)"
            return (f"SELECT {select} FROM {self._table_ref(table)} AS v "
                    f"ORDER BY {order} LIMIT {int(limit)}")
        # Oversample three times so that the LIMIT is nearly always reached.
        pct = min(100.0, 300.0 * limit / count)
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
