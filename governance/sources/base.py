"""The one narrow interface every data source is read and changed through.

Connectors take plain values (table, column, key values, batch size) and return plain rows
or Arrow data, so the discovery scan, data-subject requests and retention can share them.
Key values are always bound parameters; table and column names are quoted by the
driver's own mechanism and must first exist in the source.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from governance.errors import SourceError, StepStopped

DEFAULT_SAMPLE_ROWS = 200
DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ColumnInfo:
    """A column as found in the source."""

    name: str
    type: str
    nullable: bool = True

    def max_chars(self, kind: str) -> int | None:
        """The most characters the column holds when its type says so and a source of
        ``kind`` enforces it (PostgreSQL's ``varchar(n)``; SQLite and DuckDB take any
        length)."""
        if kind != "postgres":
            return None
        m = _DECLARED_LENGTH.search(self.type)
        return int(m.group(1)) if m else None


_DECLARED_LENGTH = re.compile(r"\b(?:VAR)?CHAR(?:ACTER)?(?: VARYING)?\s*\(\s*(\d+)\s*\)",
                              re.IGNORECASE)


@dataclass(frozen=True)
class TableInfo:
    """A table as found in the source, with its columns and row count.

    ``kind`` is ``table``, ``view`` or ``materialized_view``: only tables are ever changed.
    ``primary_key`` names the key columns when the source declares them.
    """

    name: str
    columns: tuple[ColumnInfo, ...]
    row_count: int | None = None
    kind: str = "table"
    primary_key: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        """The names of the columns, in source order."""
        return [c.name for c in self.columns]

    @property
    def changeable(self) -> bool:
        """True for base tables (views are read, never changed)."""
        return self.kind == "table"

    def column(self, name: str) -> ColumnInfo | None:
        """The column called ``name``, if present."""
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key declared in the source's own catalogue (a composite one names the
    columns of each side joined by commas, in the key's order). ``schema`` is set only for
    a key of a table outside the source (another PostgreSQL schema) pointing into it."""

    table: str
    column: str
    ref_table: str
    ref_column: str
    schema: str | None = None


# The rows a run deletes from a source, by table: (match column, values) of each deletion.
Leaving = Mapping[str, Sequence[tuple[str, Sequence[Any]]]]


class ReferencedRows(StepStopped):
    """Rows to be deleted are pointed at, through a declared key, by rows that stay."""

    def __init__(self, source: str, table: str, fk: ForeignKey, count: int):
        self.source, self.table, self.fk, self.count = source, table, fk, count
        where = f"{fk.schema}.{fk.table}" if fk.schema else fk.table
        super().__init__(
            f"{count} row(s) of {source}.{where} point at rows of {source}.{table} this "
            f"erasure would delete (key {where}({fk.column}) -> {table}({fk.ref_column})), "
            "and the plan does not erase them (added or changed after the plan was drawn "
            "up, or kept by a legal hold placed since). Deleting would make the database "
            "remove or change them, or fail: this step deleted nothing. Replan the request "
            "(govkit dsar replan) to review them")



class Connector(ABC):
    """Read and change one data source."""

    kind: ClassVar[str]
    # True when the changes made inside transaction() commit together or not at all.
    atomic: ClassVar[bool] = False

    def __init__(self, name: str):
        self.name = name
        self._tables: dict[str, TableInfo] | None = None
        self._keys: list[ForeignKey] | None = None
        # Relations present but holding no rows to read (a PostgreSQL materialized view
        # never populated), left out of list_tables: set when the catalogue is read.
        self.unpopulated: set[str] = set()

    # -- discovery ------------------------------------------------------------------
    @abstractmethod
    def _read_catalogue(self) -> list[TableInfo]:
        """Read every table (and view) with its columns and row count from the source."""

    def list_tables(self) -> list[TableInfo]:
        """Every table (and view) present in the source, with its columns (read once)."""
        if self._tables is None:
            self._tables = {t.name: t for t in self._read_catalogue()}
        return list(self._tables.values())

    def _forget_catalogue(self) -> None:
        """Drop the cached catalogue after a change (row counts move)."""
        self._tables = None
        self._keys = None

    def _declared_keys(self) -> list[ForeignKey]:
        """Every foreign key the source declares, of any width (none for files)."""
        return []

    def foreign_keys(self) -> list[ForeignKey]:
        """Single-column foreign keys the source declares (none for files)."""
        return [k for k in self._declared_keys() if "," not in k.column]

    def catalogue_name(self, name: str) -> str:
        """The table's name as the catalogue spells it, for a source whose names ignore
        letter case (SQLite, DuckDB: ``REFERENCES "SALES"`` names ``sales``); ``name``
        itself when no table, or more than one, matches."""
        self.list_tables()
        tables = self._tables or {}
        if name in tables:
            return name
        found = [t for t in tables if t.casefold() == name.casefold()]
        return found[0] if len(found) == 1 else name

    def composite_foreign_keys(self) -> list[ForeignKey]:
        """Foreign keys of two or more columns the source declares. Ownership does not
        follow them; an erasure refuses to delete a row they point at from a row that
        stays."""
        return [k for k in self._declared_keys() if "," in k.column]

    def foreign_keys_from_elsewhere(self) -> list[ForeignKey]:
        """Foreign keys of tables outside this source (another schema of the same
        database) that point at its tables: govkit cannot change their rows."""
        return []

    def rows_pointing_at(self, fk: ForeignKey, match_column: str, values: Sequence[Any]
                         ) -> list[tuple[Any, dict[str, Any]]]:
        """The rows of ``fk``'s table (in this source, or in ``fk.schema``) that point
        through ``fk`` at the rows of ``fk.ref_table`` whose ``match_column`` is one of
        ``values`` (lists for a composite column): (that row's ``match_column`` value, the
        pointing row). Compared by the database's own equality, as the key is. Sources
        without foreign keys have none."""
        return []

    def known_keys(self) -> list[ForeignKey]:
        """Every foreign key the source declares, of any width, read once per catalogue
        read."""
        if self._keys is None:
            self._keys = self._declared_keys()
        return self._keys

    def known_foreign_keys(self) -> list[ForeignKey]:
        """``foreign_keys()``, read once per catalogue read."""
        return [k for k in self.known_keys() if "," not in k.column]

    def known_composite_keys(self) -> list[ForeignKey]:
        """``composite_foreign_keys()``, read once per catalogue read."""
        return [k for k in self.known_keys() if "," in k.column]

    def test_connection(self) -> None:
        """Raise SourceError when the source cannot be read."""
        self.list_tables()

    def table_info(self, table: str) -> TableInfo:
        """The found table ``table``; SourceError if the source has no such table."""
        tables = {t.name: t for t in self.list_tables()}
        try:
            return tables[table]
        except KeyError:
            raise SourceError(
                f"source {self.name!r} has no table {table!r}"
            ) from None

    def check_columns(self, table: str, columns: Sequence[str] | None) -> list[str]:
        """Return ``columns`` (all when None) after checking each exists in ``table``."""
        info = self.table_info(table)
        if columns is None:
            return info.column_names
        missing = [c for c in columns if c not in info.column_names]
        if missing:
            raise SourceError(
                f"source {self.name!r}, table {table!r} has no column {missing[0]!r}"
            )
        return list(columns)

    # -- reading --------------------------------------------------------------------
    @abstractmethod
    def sample_rows(self, table: str, columns: Sequence[str] | None = None,
                    limit: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> pa.Table:
        """A deterministic sample of at most ``limit`` rows (same seed, same data: same rows)."""

    @abstractmethod
    def stream_rows(self, table: str, columns: Sequence[str] | None = None,
                    batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Every row of ``table`` as Arrow record batches of at most ``batch_size`` rows."""

    @abstractmethod
    def find_rows(self, table: str, column: str, values: Sequence[Any],
                  fold_case: bool = False) -> list[dict[str, Any]]:
        """The rows whose ``column`` equals one of ``values`` (text compared in lower case
        with ``fold_case``, e.g. for e-mail addresses)."""

    # -- changing -------------------------------------------------------------------
    @abstractmethod
    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> int:
        """Delete the rows whose ``column`` equals one of ``values``; return how many."""

    @abstractmethod
    def update_rows(self, table: str, column: str, values: Sequence[Any],
                    assignments: Mapping[str, Any]) -> int:
        """Set ``assignments`` on the rows whose ``column`` equals one of ``values``."""

    def delete_owned(self, table: str, column: str, values: Sequence[Any],
                     leaving: Leaving | None = None,
                     unchanged: Callable[[], None] | None = None) -> int:
        """Delete the rows whose ``column`` equals one of ``values``. First, in the same
        transaction and with the rows locked where the database can: ``unchanged`` (a check
        that raises when the rows are no longer what the plan saw), then that no row points
        at them through a key the source declares now, except rows that go too (these, and
        ``leaving``: by table, the match columns and values of the run's other deletions);
        ReferencedRows otherwise, with nothing deleted. Sources without foreign keys just
        check and delete."""
        with self.guarded(table, unchanged):
            return self.delete_rows(table, column, values)

    @contextmanager
    def guarded(self, table: str, check: Callable[[], None] | None) -> Iterator[None]:
        """Changes of ``table`` made inside the block happen only after ``check`` (which
        raises when the rows are no longer what the plan saw) passed with nothing able to
        change the table in between: files run it under their lock at each rewrite;
        elsewhere it runs once, at the start (a database's rows are locked by
        ``lock_rows`` in the caller's transaction)."""
        if check is not None:
            check()
        yield

    def lock_rows(self, table: str, column: str,  # noqa: B027 - most sources lock nothing
                  values: Sequence[Any]) -> None:
        """Lock the rows whose ``column`` equals one of ``values`` until the transaction
        ends, where the database can (nothing elsewhere)."""

    def inheriting(self, table: str) -> list[str]:
        """Tables that inherit ``table``'s columns and rows (PostgreSQL ``INHERITS``, not
        partitions), by name (``schema.name`` when in another schema); none elsewhere."""
        return []

    def current_keys(self) -> list[ForeignKey]:
        """Every foreign key the source declares now, of any width, those of tables outside
        it included (read again, not from the cache of the last catalogue read)."""
        self._forget_catalogue()
        return [*self.known_keys(), *self.foreign_keys_from_elsewhere()]

    def delete_unreferenced(self, table: str, column: str, values: Sequence[Any],
                            guards: Sequence[tuple[str, ...]]) -> int:
        """Delete the rows whose ``column`` equals one of ``values`` and that no row of a
        guard ``(table, column, referenced column[, schema])`` points at (a composite key's
        columns joined by commas on both sides; ``schema`` for a table outside the source);
        how many. Sources without
        transactions rely on the check made when the plan was drawn up."""
        return self.delete_rows(table, column, values)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the changes made inside it: on an ``atomic`` source they commit together
        or not at all; elsewhere each change is atomic on its own."""
        yield

    def dry_run(self, operation: str, table: str, column: str,
                assignments: Mapping[str, Any] | None = None) -> str:
        """The statement ``operation`` (find, delete, update) would run, values as placeholders."""
        return f"{operation} {table} where {column} in (?)"

    # -- lifetime -------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - connectors without a connection need nothing
        """Release the connection."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rows_to_table(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> pa.Table:
    """Build an Arrow table from row tuples; columns of mixed types become strings."""
    arrays = []
    for i, _ in enumerate(columns):
        values = [r[i] for r in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in values]))
    return pa.Table.from_arrays(arrays, names=list(columns)) if columns else pa.table({})
