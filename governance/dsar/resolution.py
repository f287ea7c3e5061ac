"""Finding a data subject in every inventoried source, from the identities they gave.

The subject is found (like fides' graph traversal, but over plain connectors):

1. by identity: in subject-key columns and in every column the inventory declares, or
   the latest discovery scan classified, as holding that kind of identity (an e-mail
   column of an undeclared table is searched too);
2. by reference: rows that point at the subject's rows through declared references
   (orders -> users, ticket messages -> tickets -> users, across sources too), and the
   person rows that rows found by identity point at;
3. in free text: every cell of free-text columns is searched for the identities' forms.

The result lists, for each place, how the subject was found and the rows. It holds
personal data: show it only through ``Location.describe()`` (counts, never values).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from governance.audit_store import AuditStore
from governance.dsar.identities import Identity, IdentityType
from governance.errors import GovernanceError
from governance.inventory import Inventory, Reference, SourceDecl
from governance.sources import Connector, TableInfo
from governance.sources.pool import ConnectorPool

FREE_TEXT = "free_text"
Progress = Callable[[str], None]


class FoundBy(StrEnum):
    """How rows of a location were tied to the subject."""

    SUBJECT_KEY = "subject_key"  # the table's declared subject key
    IDENTITY = "identity"        # a column holding that kind of identity
    REFERENCE = "reference"      # a declared reference from or to the subject's rows
    FREE_TEXT = "free_text"      # an identity written inside free text


@dataclass
class Location:
    """Rows of one table tied to the subject through one column."""

    source: str
    table: str
    found_by: FoundBy
    match_column: str
    via: str                       # identity type, reference, or free-text column
    depth: int = 0                 # references followed from a row found by identity
    values: list[Any] = field(default_factory=list)   # match values (personal data)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies this location in a plan."""
        return (self.source, self.table, self.found_by.value, self.match_column)

    def describe(self) -> str:
        """One line for people: where, how, how many rows; never a value."""
        via = "" if self.via == self.match_column else f" via {self.via}"
        return (f"{self.source}.{self.table}: {len(self.rows)} row(s) by {self.found_by} "
                f"({self.match_column}{via})")


@dataclass
class Searched:
    """One column searched, for the manifest of what was looked at."""

    source: str
    table: str
    column: str
    method: str                    # exact | reference | substring


@dataclass
class Resolution:
    """Everything found about a subject, and what was searched to find it."""

    locations: list[Location]
    searched: list[Searched]
    unreachable: dict[str, str]    # source -> error
    findings_run: dict[str, str | None]  # source -> scan run the categories came from
    derived: list[Identity] = field(default_factory=list)  # read from the subject's rows
    # The categories of every column the search used: declared, and detected by the scan.
    categories: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)

    def tables(self) -> dict[tuple[str, str], list[Location]]:
        """Locations grouped by (source, table)."""
        out: dict[tuple[str, str], list[Location]] = defaultdict(list)
        for loc in self.locations:
            out[(loc.source, loc.table)].append(loc)
        return dict(out)

    @property
    def row_count(self) -> int:
        """Rows found in all locations (a row found twice counts twice)."""
        return sum(len(loc.rows) for loc in self.locations)


def column_categories(inventory: Inventory, store: AuditStore | None
                      ) -> tuple[dict[tuple[str, str, str], set[str]], dict[str, str | None]]:
    """The categories of every column: declared, plus detected by the latest successful
    scan of each source. Also returns which scan run each source's categories came from."""
    cats: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for src in inventory.sources:
        for t in src.tables:
            for col, decl in t.columns.items():
                if decl.category:
                    cats[(src.name, t.name, col)].add(decl.category)
    runs: dict[str, str | None] = {s.name: None for s in inventory.sources}
    if store is not None and store.path.exists():
        rows = store.query("""
            SELECT f.source, f.table_name, f.column_name, f.detected_category, f.run_id
            FROM column_findings f JOIN (
                SELECT s.source, r.run_id FROM scan_runs r, unnest(r.sources) AS s(source)
                WHERE r.status IN ('succeeded', 'partial')
                QUALIFY row_number() OVER (PARTITION BY s.source ORDER BY r.started_at DESC) = 1
            ) latest ON latest.source = f.source AND latest.run_id = f.run_id
            WHERE f.detected_category IS NOT NULL""")
        for r in rows:
            cats[(r["source"], r["table_name"], r["column_name"])].add(r["detected_category"])
            runs[r["source"]] = r["run_id"]
    return dict(cats), runs


def coerce_values(values: Iterable[Any], column_type: str) -> list[Any]:
    """``values`` in the form a column of ``column_type`` compares with: integers for
    integer columns (non-numbers dropped), text otherwise."""
    out: list[Any] = []
    integer = re.search(r"int", column_type, re.IGNORECASE) is not None
    for v in values:
        if v is None:
            continue
        if integer:
            if isinstance(v, bool):
                continue
            if isinstance(v, int):
                out.append(v)
            elif isinstance(v, str) and re.fullmatch(r"-?\d{1,18}", v.strip()):
                out.append(int(v.strip()))
        else:
            out.append(v if isinstance(v, str) else str(v))
    return list(dict.fromkeys(out))


def search_text(connector: Connector, table: str, columns: Sequence[str],
                identities: Sequence[Identity]) -> dict[str, dict[str, int]]:
    """Every cell of ``columns`` holding a written form of an identity: per column, the
    distinct matching texts with their cell counts (reads the whole columns)."""
    patterns = [(form, i.case_insensitive) for i in identities for form in i.text_variants()]
    found: dict[str, dict[str, int]] = {c: {} for c in columns}
    if not patterns or not columns:
        return found
    for batch in connector.stream_rows(table, list(columns)):
        for name in columns:
            arr = batch.column(batch.schema.get_field_index(name))
            if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
                try:
                    arr = arr.cast(pa.string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
            hit = None
            for form, ci in patterns:
                m = pc.match_substring(arr, form, ignore_case=ci)
                hit = m if hit is None else pc.or_(hit, m)
            hits = arr.filter(pc.fill_null(hit, False))
            for text in hits.to_pylist():
                found[name][text] = found[name].get(text, 0) + 1
    return found


def _text_columns(info: TableInfo) -> list[str]:
    """Columns whose values may hold text."""
    numeric = re.compile(r"int|float|double|real|numeric|decimal|bool|date|time", re.I)
    return [c.name for c in info.columns if not numeric.search(c.type)]


class _Resolver:
    def __init__(self, inventory: Inventory, identities: Sequence[Identity],
                 pool: ConnectorPool, categories: dict[tuple[str, str, str], set[str]],
                 progress: Progress | None):
        self.inv = inventory
        self.identities = identities
        self.pool = pool
        self.cats = categories
        self.progress = progress
        self.locations: dict[tuple[str, str, str, str], Location] = {}
        self.subject_rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.searched: list[Searched] = []
        self.unreachable: dict[str, str] = {}
        self.catalogue: dict[str, dict[str, TableInfo]] = {}

    # -- helpers -------------------------------------------------------------------
    def _tables(self, src: SourceDecl) -> dict[str, TableInfo]:
        if src.name not in self.catalogue:
            try:
                conn = self.pool.get(src.name)
                self.catalogue[src.name] = {t.name: t for t in conn.list_tables()}
            except GovernanceError as e:
                self.unreachable[src.name] = str(e).splitlines()[0]
                self.catalogue[src.name] = {}
        return self.catalogue[src.name]

    def _add(self, loc: Location, rows: list[dict[str, Any]], values: list[Any]) -> int:
        """Merge newly found rows into a location; return how many are new subject rows."""
        existing = self.locations.setdefault(loc.key, loc)
        existing.values = list(dict.fromkeys([*existing.values, *values]))
        seen = {_row_key(r) for r in existing.rows}
        existing.rows.extend(r for r in rows if _row_key(r) not in seen)
        if loc.found_by is FoundBy.FREE_TEXT:
            return 0
        subject = self.subject_rows[(loc.source, loc.table)]
        known = {_row_key(r) for r in subject}
        new = [r for r in rows if _row_key(r) not in known]
        subject.extend(new)
        return len(new)

    def _find(self, src: str, info: TableInfo, column: str, values: list[Any],
              fold_case: bool = False) -> list[dict[str, Any]]:
        ctype = next(c.type for c in info.columns if c.name == column)
        vals = coerce_values(values, ctype)
        return self.pool.get(src).find_rows(info.name, column, vals, fold_case) if vals else []

    # -- the three ways of finding -------------------------------------------------
    def by_identity(self, text_identities: Sequence[Identity], free_text_only: bool = False
                    ) -> None:
        """Rows holding an identity in a column of its kind (unless ``free_text_only``),
        and free-text cells mentioning one of ``text_identities``."""
        for src in self.inv.sources:
            tables = self._tables(src)
            for info in tables.values():
                decl = src.table(info.name)
                free_text_cols = []
                for col in info.columns:
                    cats = self.cats.get((src.name, info.name, col.name), set())
                    if FREE_TEXT in cats:
                        free_text_cols.append(col.name)
                    is_key = decl is not None and decl.subject_key == col.name
                    for ident in [] if free_text_only else self.identities:
                        if not (ident.category in cats or (
                                is_key and not cats and ident.type is IdentityType.USER_ID)):
                            continue
                        self.searched.append(Searched(src.name, info.name, col.name, "exact"))
                        # E-mail addresses are matched whatever their letter case.
                        rows = self._find(src.name, info, col.name, ident.variants(),
                                          fold_case=ident.type is IdentityType.EMAIL)
                        if rows:
                            found_by = FoundBy.SUBJECT_KEY if is_key else FoundBy.IDENTITY
                            self._add(Location(src.name, info.name, found_by, col.name,
                                               ident.type.value), rows,
                                      [r[col.name] for r in rows])
                if free_text_cols and text_identities:
                    self._free_text(src.name, info, free_text_cols, text_identities)
            if self.progress:
                self.progress(f"{src.name}: searched by identity")

    def _free_text(self, src: str, info: TableInfo, columns: list[str],
                   identities: Sequence[Identity]) -> None:
        for col in columns:
            searched = Searched(src, info.name, col, "substring")
            if searched not in self.searched:
                self.searched.append(searched)
        hits = search_text(self.pool.get(src), info.name, columns, identities)
        for col, texts in hits.items():
            if texts:
                rows = [{col: t} for t in texts]
                self._add(Location(src, info.name, FoundBy.FREE_TEXT, col, col),
                          rows, list(texts))

    def _references_to(self, source: str, table: str
                       ) -> list[tuple[SourceDecl, str, Reference]]:
        """Declared references pointing at ``source.table``: (source, table, reference)."""
        out = []
        for src in self.inv.sources:
            for t in src.tables:
                for ref in t.references:
                    if ref.table == table and (ref.source or src.name) == source:
                        out.append((src, t.name, ref))
        return out

    def up(self) -> None:
        """Person rows that rows found by identity point at."""
        for (source, table), rows in list(self.subject_rows.items()):
            decl = self.inv.source(source).table(table)
            for ref in decl.references if decl else []:
                target_src = self.inv.source(ref.source or source)
                target = target_src.table(ref.table)
                info = self._tables(target_src).get(ref.table)
                if target is None or target.subject_key is None or info is None:
                    continue
                values = [r.get(ref.column) for r in rows]
                self.searched.append(Searched(target_src.name, ref.table, ref.target_column,
                                              "reference"))
                found = self._find(target_src.name, info, ref.target_column, values)
                if found:
                    self._add(Location(target_src.name, ref.table, FoundBy.REFERENCE,
                                       ref.target_column, f"{source}.{table}.{ref.column}"),
                              found, [r[ref.target_column] for r in found])

    def down(self) -> None:
        """Rows pointing at the subject's rows, breadth first, across sources."""
        queue = deque((key, 0) for key in list(self.subject_rows))
        while queue:
            (source, table), depth = queue.popleft()
            rows = self.subject_rows[(source, table)]
            for src, child, ref in self._references_to(source, table):
                info = self._tables(src).get(child)
                if info is None or ref.column not in info.column_names:
                    continue
                values = [r.get(ref.target_column) for r in rows]
                self.searched.append(Searched(src.name, child, ref.column, "reference"))
                found = self._find(src.name, info, ref.column, values)
                if found and self._add(
                        Location(src.name, child, FoundBy.REFERENCE, ref.column,
                                 f"{source}.{table}.{ref.target_column}", depth + 1),
                        found, [r[ref.column] for r in found]):
                    queue.append(((src.name, child), depth + 1))


def _row_key(row: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in row.items()))


# Identity types read from the subject's own person rows to search for them further.
_DERIVABLE = (IdentityType.EMAIL, IdentityType.PHONE, IdentityType.NATIONAL_ID)


def derive_identities(inventory: Inventory, resolution_rows: dict[tuple[str, str], list[dict]],
                      categories: dict[tuple[str, str, str], set[str]],
                      known: Sequence[Identity]) -> list[Identity]:
    """Identities of the subject written in their rows of person tables (tables with a
    subject key) that were not given: the phone number of the user row found by e-mail."""
    from governance.dsar.identities import CATEGORY_OF, IdentityError

    by_category = {CATEGORY_OF[t]: t for t in _DERIVABLE}
    seen = {i.fingerprint_text() for i in known}
    out: list[Identity] = []
    for (source, table), rows in resolution_rows.items():
        decl = inventory.source(source).table(table)
        if decl is None or decl.subject_key is None:
            continue
        for row in rows:
            for col, value in row.items():
                for cat in categories.get((source, table, col), set()):
                    if cat not in by_category or not isinstance(value, str) or not value:
                        continue
                    try:
                        ident = Identity(by_category[cat], value)
                        ident.canonical()
                    except IdentityError:
                        continue  # not usable as an identity (e.g. a malformed number)
                    if ident.fingerprint_text() not in seen:
                        seen.add(ident.fingerprint_text())
                        out.append(ident)
    return out


def locate_subject(inventory: Inventory, identities: Sequence[Identity], pool: ConnectorPool,
                   store: AuditStore | None = None, progress: Progress | None = None,
                   expand: bool = True, also_in_text: Sequence[Identity] = (),
                   given_in_text: bool = True) -> Resolution:
    """Find the subject known by ``identities`` in every source of ``inventory``; with
    ``expand``, free text is also searched for the e-mail addresses, phone numbers and ID
    numbers their own person rows hold (``Resolution.derived``). Derived identities never
    match rows by themselves: a phone number shared by a household must not pull in
    another person's account. ``also_in_text`` are searched in free text only, too.
    ``given_in_text=False`` leaves ``identities`` out of the free-text search (for a
    caller that has searched every text cell for them already)."""
    categories, runs = column_categories(inventory, store)
    r = _Resolver(inventory, identities, pool, categories, progress)
    r.by_identity(identities if given_in_text else [])
    r.up()
    derived: list[Identity] = []
    if expand:
        derived = derive_identities(inventory, r.subject_rows, categories,
                                    [*identities, *also_in_text])
    text_only = [*also_in_text, *derived]
    if text_only:
        r.by_identity(text_only, free_text_only=True)
    r.down()
    return Resolution(list(r.locations.values()), r.searched, r.unreachable, runs, derived,
                      categories)


def search_everywhere(inventory: Inventory, identities: Sequence[Identity],
                      pool: ConnectorPool, progress: Progress | None = None
                      ) -> tuple[dict[tuple[str, str, str], int], dict[str, str]]:
    """Cells of every text column of every table of every source holding a written form
    of an identity: counts per (source, table, column), and unreachable sources."""
    remaining: dict[tuple[str, str, str], int] = {}
    unreachable: dict[str, str] = {}
    for src in inventory.sources:
        try:
            conn = pool.get(src.name)
            tables = conn.list_tables()
        except GovernanceError as e:
            unreachable[src.name] = str(e).splitlines()[0]
            continue
        for info in tables:
            for col, texts in search_text(conn, info.name, _text_columns(info),
                                          identities).items():
                if texts:
                    remaining[(src.name, info.name, col)] = sum(texts.values())
        if progress:
            progress(f"{src.name}: every text cell searched")
    return remaining, unreachable
