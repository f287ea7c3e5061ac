"""Finding a data subject in every inventoried source: exactly their rows, nobody else's.

The search follows the ownership graph (``governance.dsar.ownership``):

1. by identity: the given identities are matched exactly in subject-key columns and in
   every column declared, or classified by the latest scan, as that kind of identity. The
   rows of person tables found so are the subject's person rows; one identity matching two
   people (a household's phone) stops the request for a decision;
2. identities written in the subject's own person rows (their e-mail when they gave their
   phone) are derived; a derived identity that no other person's row holds is matched like
   a given one, one that another person holds too is only reported (never used to match);
3. by ownership: rows reaching the subject's rows through ``owner`` edges, breadth first and
   across sources. Each candidate row's owner is decided by its nearest owner edges: a
   payment whose ``customer_id`` names B belongs to B even when its rental is A's; a row
   whose nearest owner edges name A and B is shared and never changed;
4. details: rows the subject's rows point at through ``detail`` edges (their address);
5. in free text: free-text columns are searched for the identities' written forms.

The result holds personal data: show it only through ``Location.describe()`` (counts, never
values). ``Resolution.owned`` and ``Resolution.detail`` are what an access request returns.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from governance.audit_store import AuditStore
from governance.crypto.field import looks_sealed
from governance.dsar.identities import CATEGORY_OF, Identity, IdentityError, IdentityType
from governance.dsar.ownership import (
    Edge,
    OwnershipGraph,
    TableKey,
    build_graph,
    personal_tables,
)
from governance.errors import GovernanceError
from governance.inventory import FILE_KINDS, Inventory
from governance.sources import Connector, ForeignKey, TableInfo
from governance.sources.key_text import key_text
from governance.sources.pool import ConnectorPool

FREE_TEXT = "free_text"
Progress = Callable[[str], None]
Row = dict[str, Any]
# Owner-edge hops followed when deciding whose a row is (guards against cyclic data).
MAX_OWNER_DEPTH = 32


class FoundBy(StrEnum):
    """How rows of a location were tied to the subject."""

    SUBJECT_KEY = "subject_key"  # the table's declared subject key
    IDENTITY = "identity"        # a column holding that kind of identity
    REFERENCE = "reference"      # an owner edge from the subject's rows
    DETAIL = "detail"            # a detail edge from the subject's rows (their address)
    FREE_TEXT = "free_text"      # an identity written inside free text


class Relation(StrEnum):
    """What rows are to the subject."""

    OWNED = "owned"       # the subject's own rows
    DETAIL = "detail"     # rows holding personal detail of the subject (may be shared)
    MENTION = "mention"   # text that mentions the subject inside a row that is not theirs


@dataclass
class Location:
    """Rows of one table tied to the subject, matched exactly through ``match_column``
    (the primary key when there is one; comma-separated for a composite key)."""

    source: str
    table: str
    found_by: FoundBy
    match_column: str
    via: str                       # identity type, reference, or free-text column
    depth: int = 0                 # owner edges from the subject's person rows
    values: list[Any] = field(default_factory=list)   # match values (personal data)
    rows: list[Row] = field(default_factory=list)
    relation: Relation = Relation.OWNED

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies this location in a plan."""
        return (self.source, self.table, self.relation.value, self.match_column)

    def describe(self) -> str:
        """One line for people: where, how, how many rows; never a value."""
        if self.relation is Relation.MENTION:
            whose = "their own rows" if self.via == "all" else "other people's rows"
            return (f"{self.source}.{self.table}: {len(self.rows)} text(s) in "
                    f"{self.match_column} mention the subject ({whose})")
        via = "" if self.via == self.match_column else f" via {self.via}"
        what = "" if self.relation is Relation.OWNED else f" [{self.relation}]"
        return (f"{self.source}.{self.table}: {len(self.rows)} row(s) by {self.found_by} "
                f"({self.match_column}{via}){what}")


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
    graph: OwnershipGraph | None = None
    catalogue: dict[str, dict[str, TableInfo]] = field(default_factory=dict)
    # Rows the subject shares with another person (never changed), per table.
    shared: dict[TableKey, list[Row]] = field(default_factory=dict)
    # Rows of other people that hold one of the subject's identifiers, per table: counts.
    others: dict[str, int] = field(default_factory=dict)
    # Derived identities another person's row holds too (reported, never matched).
    shared_identities: list[Identity] = field(default_factory=list)
    # Why the request cannot go on as it is (masked; no values): ambiguous identities, ...
    blockers: list[str] = field(default_factory=list)
    # Stored values that could not be used (masked reasons), e.g. a phone column's "n/a".
    notes: list[str] = field(default_factory=list)
    # Derived identities also found in rows that are someone else's (an employee or a
    # supplier with the customer's phone), and how many such rows each table has: left.
    elsewhere_identities: list[Identity] = field(default_factory=list)
    left_to_others: dict[str, int] = field(default_factory=dict)

    def tables(self) -> dict[tuple[str, str], list[Location]]:
        """Locations grouped by (source, table)."""
        out: dict[tuple[str, str], list[Location]] = defaultdict(list)
        for loc in self.locations:
            out[(loc.source, loc.table)].append(loc)
        return dict(out)

    def _rows(self, relation: Relation) -> dict[TableKey, list[Row]]:
        out: dict[TableKey, list[Row]] = defaultdict(list)
        for loc in self.locations:
            if loc.relation is relation:
                out[(loc.source, loc.table)].extend(loc.rows)
        return dict(out)

    @property
    def owned(self) -> dict[TableKey, list[Row]]:
        """The subject's own rows, per (source, table)."""
        return self._rows(Relation.OWNED)

    @property
    def detail(self) -> dict[TableKey, list[Row]]:
        """Rows holding the subject's personal detail (their address), per table."""
        return self._rows(Relation.DETAIL)

    @property
    def row_count(self) -> int:
        """Rows found in all locations (a row found twice counts twice)."""
        return sum(len(loc.rows) for loc in self.locations)


Categories = tuple[dict[tuple[str, str, str], set[str]], dict[str, str | None]]


def column_categories(inventory: Inventory, store: AuditStore | None) -> Categories:
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
            text = key_text(v.strip() if isinstance(v, str) else v) or ""
            if isinstance(v, int):
                out.append(v)
            elif re.fullmatch(r"-?\d{1,18}", text):    # 14.0 and "14.0" are 14 here
                out.append(int(text))
        else:
            out.append(v if isinstance(v, str) else str(v) if isinstance(v, bool)
                       else key_text(v))
    return list(dict.fromkeys(out))


def _forms(identities: Sequence[Identity]) -> tuple[list[str], list[str]]:
    """The written forms of ``identities`` searched inside text: those compared in any
    letter case (e-mail addresses), and those compared exactly."""
    ci: list[str] = []
    cs: list[str] = []
    for ident in identities:
        (ci if ident.case_insensitive else cs).extend(ident.text_variants())
    return list(dict.fromkeys(ci)), list(dict.fromkeys(cs))


def search_text(connector: Connector, table: str, columns: Sequence[str],
                identities: Sequence[Identity]) -> dict[str, dict[str, int]]:
    """Every cell of ``columns`` holding a written form of an identity: per column, the
    distinct matching texts with their cell counts. Sources that search text themselves
    (SQLite, PostgreSQL, DuckDB: ``search_substrings``) do it in one pass per table and
    return only the matching cells; files are read batch by batch through Arrow."""
    ci, cs = _forms(identities)
    found: dict[str, dict[str, int]] = {c: {} for c in columns}
    if not (ci or cs) or not columns:
        return found
    pushed = getattr(connector, "search_substrings", None)
    if pushed is not None:
        result = pushed(table, list(columns), ci, cs)
        if result is not None:
            return {c: result.get(c, {}) for c in columns}
    patterns = [(form, False) for form in cs] + [(form, True) for form in ci]
    for batch in connector.stream_rows(table, list(columns)):
        for name in columns:
            arr = batch.column(batch.schema.get_field_index(name))
            if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
                try:
                    arr = arr.cast(pa.string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
            hit = None
            for form, fold in patterns:
                m = pc.match_substring(arr, form, ignore_case=fold)
                hit = m if hit is None else pc.or_(hit, m)
            hits = arr.filter(pc.fill_null(hit, False))
            for text in hits.to_pylist():
                found[name][text] = found[name].get(text, 0) + 1
    return found


def search_text_rows(connector: Connector, table: str, columns: Sequence[str],
                     identities: Sequence[Identity]) -> dict[str, list[Row]]:
    """The rows whose cell in each of ``columns`` holds a written form of an identity,
    per column. SQL sources return them from the one pass that finds them; elsewhere the
    matching texts are found first (``search_text``) and their rows read by value."""
    ci, cs = _forms(identities)
    if not (ci or cs) or not columns:
        return {c: [] for c in columns}
    pushed = getattr(connector, "search_rows", None)
    if pushed is not None:
        result = pushed(table, list(columns), ci, cs)
        if result is not None:
            return {c: result.get(c, []) for c in columns}
    out: dict[str, list[Row]] = {}
    for col, texts in search_text(connector, table, columns, identities).items():
        out[col] = connector.find_rows(table, col, list(texts)) if texts else []
    return out


def _text_columns(info: TableInfo) -> list[str]:
    """Columns whose values may hold text."""
    numeric = re.compile(r"int|float|double|real|numeric|decimal|bool|date|time", re.I)
    return [c.name for c in info.columns if not numeric.search(c.type)]


SUBJECT = "subject"
OTHER = "other"
Owners = tuple[frozenset[str], int]     # who owns a row, and at how many owner hops
NOBODY: Owners = (frozenset(), 10**6)


def _norm(value: Any, files: bool = False) -> str:
    """A value as compared across columns of different types (``12`` and ``'12'``); with
    ``files`` (a reference in or to a file source) by ``key_text``, as file sources
    compare keys (``12.0`` too)."""
    if files and value is not None:
        return key_text(value) or ""
    return str(value)


def file_sources(inventory: Inventory) -> set[str]:
    """The names of the inventory's file sources (their keys compare by ``key_text``)."""
    return {s.name for s in inventory.sources if s.kind in FILE_KINDS}


def on_files(edge: Edge, files: set[str]) -> bool:
    """Whether ``edge`` is in or points into one of ``files`` (``file_sources``): its
    values then compare by ``key_text`` (``_norm``'s ``files``)."""
    return edge.source in files or edge.to_source in files


def match_key(info: TableInfo, decl_key: str | None, edges: Sequence[Edge]) -> str | None:
    """The column(s) that pick the subject's rows of a table exactly: its primary key, else
    its subject key, else its one owner column; None when none of these exists."""
    if info.primary_key:
        return ",".join(info.primary_key)
    if decl_key and decl_key in info.column_names:
        return decl_key
    owner_cols = {e.column for e in edges if e.column in info.column_names}
    if len(owner_cols) == 1:
        return owner_cols.pop()
    return None


def key_value(row: Row, column: str) -> Any:
    """The value of ``column`` in ``row``; a list of values for a composite key."""
    if "," in column:
        return [row.get(c) for c in column.split(",")]
    return row.get(column)


class _Resolver:
    def __init__(self, inventory: Inventory, pool: ConnectorPool,
                 categories: dict[tuple[str, str, str], set[str]], progress: Progress | None,
                 store: AuditStore | None = None):
        self.inv = inventory
        self.files = file_sources(inventory)
        self.pool = pool
        self.cats = categories
        self.progress = progress
        self.searched: list[Searched] = []
        self.unreachable: dict[str, str] = {}
        self.catalogue: dict[str, dict[str, TableInfo]] = {}
        fks: dict[str, list[ForeignKey]] = {}
        for src in inventory.sources:
            try:
                conn = pool.get(src.name)
                self.catalogue[src.name] = {t.name: t for t in conn.list_tables()}
                fks[src.name] = conn.known_foreign_keys()   # (read as the pool opened it)
            except GovernanceError as e:
                self.unreachable[src.name] = str(e).splitlines()[0]
                self.catalogue[src.name] = {}
        self.graph = build_graph(inventory, fks, personal_tables(categories))
        self.owned: dict[TableKey, dict[str, Row]] = defaultdict(dict)
        self.how: dict[TableKey, tuple[FoundBy, str, int]] = {}
        self.details: dict[TableKey, dict[str, Row]] = defaultdict(dict)
        self.detail_how: dict[TableKey, str] = {}
        self.shared: dict[TableKey, dict[str, Row]] = defaultdict(dict)
        self.others: dict[str, int] = defaultdict(int)
        self.mentions: list[Location] = []
        self.blockers: list[str] = []
        self._cache: dict[tuple[TableKey, str, str], Owners] = {}
        self.identity_column: dict[TableKey, str] = {}
        self.blind: dict[tuple[str, str, str], tuple[str, Callable[[str], str]]] = (
            blind_indexes(inventory, store) if store is not None else {})

    # -- catalogue -----------------------------------------------------------------
    def info(self, table: TableKey) -> TableInfo | None:
        """The found table, if its source is reachable and it exists."""
        return self.catalogue.get(table[0], {}).get(table[1])

    def tables(self) -> Iterable[tuple[TableKey, TableInfo]]:
        """Every base table of every reachable source (views hold no rows of their own)."""
        for source, tables in self.catalogue.items():
            for info in tables.values():
                if info.kind == "table":
                    yield (source, info.name), info

    def row_id(self, table: TableKey, row: Row) -> str:
        """A row's identity within its table: its primary key, else all its values."""
        info = self.info(table)
        cols = info.primary_key if info and info.primary_key else sorted(row)
        return repr(tuple(row.get(c) for c in cols))

    def find(self, table: TableKey, column: str, values: Iterable[Any],
             fold_case: bool = False) -> list[Row]:
        """Rows of ``table`` whose ``column`` equals one of ``values``."""
        info = self.info(table)
        if info is None or column not in info.column_names:
            return []
        ctype = next(c.type for c in info.columns if c.name == column)
        vals = coerce_values(values, ctype)
        if not vals:
            return []
        return self.pool.get(table[0]).find_rows(table[1], column, vals, fold_case)

    # -- whose row is it -------------------------------------------------------------
    def is_subject_person(self, table: TableKey, row: Row) -> bool:
        """True when ``row`` of a person table is one of the subject's person rows."""
        return self.row_id(table, row) in self.owned.get(table, {})

    def owners(self, table: TableKey, rows: list[Row], depth: int = 0) -> list[Owners]:
        """Who owns each row: the people its nearest owner edges lead to."""
        if self.graph.is_person(table):
            return [(frozenset({SUBJECT if self.is_subject_person(table, r) else OTHER}), 0)
                    for r in rows]
        result: list[Owners] = [NOBODY] * len(rows)
        if depth > MAX_OWNER_DEPTH:
            return result
        for edge in self.graph.owner_edges(table):
            files = on_files(edge, self.files)
            values = {_norm(r[edge.column], files): r[edge.column] for r in rows
                      if r.get(edge.column) is not None}
            if not values:
                continue
            resolved = self._resolve(edge, values, depth)
            for i, r in enumerate(rows):
                v = r.get(edge.column)
                if v is None:
                    continue
                who, hops = resolved.get(_norm(v, files), NOBODY)
                if not who:
                    continue
                hops += 1
                cur_who, cur_hops = result[i]
                if hops < cur_hops:
                    result[i] = (who, hops)
                elif hops == cur_hops:
                    result[i] = (cur_who | who, hops)
        return result

    def _resolve(self, edge: Edge, values: dict[str, Any], depth: int) -> dict[str, Owners]:
        out: dict[str, Owners] = {}
        unknown = []
        for key, value in values.items():
            cached = self._cache.get((edge.target, edge.to_column, key))
            if cached is None:
                unknown.append(value)
            else:
                out[key] = cached
        if unknown:
            rows = self.find(edge.target, edge.to_column, unknown)
            files = on_files(edge, self.files)
            found: dict[str, Owners] = {}
            for r, (who, hops) in zip(rows, self.owners(edge.target, rows, depth + 1),
                                      strict=True):
                key = _norm(r.get(edge.to_column), files)
                prev_who, prev_hops = found.get(key, NOBODY)
                found[key] = ((who, hops) if hops < prev_hops else
                              (prev_who | who, hops) if hops == prev_hops else
                              (prev_who, prev_hops))
            for value in unknown:
                key = _norm(value, files)
                out[key] = found.get(key, NOBODY)
                self._cache[(edge.target, edge.to_column, key)] = out[key]
        return out

    def _own(self, table: TableKey, rows: Iterable[Row], how: FoundBy, via: str,
             hops: int) -> list[Row]:
        """Record rows as the subject's; return those not known before."""
        new = []
        bucket = self.owned[table]
        info = self.info(table)
        # A value of the table's primary key names this row alone: rows pointing at it
        # are the subject's without asking again. Another column's value may be another
        # row's too (a file has no keys): those are asked (``_resolve``).
        unique = list(info.primary_key) if info is not None else []
        for r in rows:
            rid = self.row_id(table, r)
            if rid not in bucket:
                bucket[rid] = r
                new.append(r)
                for e in self.graph.in_edges(table):
                    if [e.to_column] == unique and r.get(e.to_column) is not None:
                        files = on_files(e, self.files)
                        self._cache[(table, e.to_column, _norm(r[e.to_column], files))] = (
                            frozenset({SUBJECT}), hops)
        if new:
            self.how.setdefault(table, (how, via, hops))
        return new

    # -- the ways of finding -----------------------------------------------------------
    def identity_columns(self, table: TableKey, info: TableInfo, ident: Identity) -> list[str]:
        """Columns of ``table`` an identity of this kind is matched in."""
        decl = self.inv.source(table[0]).table(table[1])
        if ident.type is IdentityType.USER_ID:
            # An account id means something only in a person table's own key: a column
            # that merely refers to some person (staff_id) must not match the same number.
            key = decl.subject_key if decl is not None and decl.is_person else None
            return [key] if key and key in info.column_names else []
        cols = []
        for col in info.columns:
            cats = self.cats.get((table[0], table[1], col.name), set())
            if ident.category in cats:
                cols.append(col.name)
        return cols

    def match_identities(self, identities: Sequence[Identity]
                         ) -> dict[TableKey, list[tuple[Row, Identity, str]]]:
        """Rows holding one of ``identities`` in a column of its kind, per table."""
        hits: dict[TableKey, list[tuple[Row, Identity, str]]] = defaultdict(list)
        for table, info in self.tables():
            for ident in identities:
                for col in self.identity_columns(table, info, ident):
                    searched = Searched(table[0], table[1], col, "exact")
                    if searched not in self.searched:
                        self.searched.append(searched)
                    rows = self.find(table, col, ident.variants(),
                                     fold_case=ident.type is IdentityType.EMAIL)
                    blind = self.blind.get((table[0], table[1], col))
                    if blind is not None:
                        # The column is encrypted: its keyed blind index is matched instead.
                        index_col, index_of = blind
                        self.searched.append(Searched(table[0], table[1], index_col, "exact"))
                        rows = [*rows, *self.find(table, index_col, list(dict.fromkeys(
                            index_of(v) for v in ident.variants())))]
                    hits[table].extend((r, ident, col) for r in rows)
        return hits

    def persons_of(self, hits: dict[TableKey, list[tuple[Row, Identity, str]]]
                   ) -> dict[TableKey, dict[str, Row]]:
        """The person rows among ``hits``, per person table."""
        out: dict[TableKey, dict[str, Row]] = defaultdict(dict)
        for table, found in hits.items():
            if self.graph.is_person(table):
                for row, _, _ in found:
                    out[table][self.row_id(table, row)] = row
        return out

    def derived_elsewhere(self, ident: Identity,
                          hits: dict[TableKey, list[tuple[Row, Identity, str]]],
                          subject_who: Sequence[Mapping[str, frozenset[str]]],
                          categories: Mapping[tuple[str, str, str], set[str]]
                          ) -> tuple[bool, dict[TableKey, set[str]]]:
        """Whether an identity read from the subject's rows is someone else's too, and the
        rows it finds that are not the subject's. Shared outright (it finds nothing new for
        them): another row of a person table where the subject has a row (a household
        member's account), or two rows of one person table. Rows left to others: a person
        row of another table naming someone else (by name, date of birth or ID number: an
        employee with the customer's phone), and a row no person owns that names someone
        else or holds it as a phone (a supplier's or shipper's switchboard; an e-mail
        alone in a sign-up list is the subject's)."""
        left: dict[TableKey, set[str]] = {}
        for t, found in hits.items():
            rows = {self.row_id(t, row): row for row, i, _ in found if i == ident}
            others = {k: v for k, v in rows.items() if k not in self.owned.get(t, {})}
            if not others:
                continue
            if self.graph.is_person(t):
                if self.owned.get(t) or len(rows) > 1:
                    return True, {}
                for k, row in others.items():
                    if not any(same_person(who_of(t, row, categories), w)
                               for w in subject_who):
                        left.setdefault(t, set()).add(k)
                continue
            listed = list(others.items())
            for (k, row), (who, _) in zip(listed, self.owners(t, [v for _, v in listed]),
                                          strict=True):
                if who:
                    continue    # owned by someone: claim_rows decides (another's: left)
                if ident.type is IdentityType.PHONE or not any(
                        same_person(who_of(t, row, categories), w) for w in subject_who):
                    left.setdefault(t, set()).add(k)
        return False, left

    def add_detail_persons(self, hits: dict[TableKey, list[tuple[Row, Identity, str]]]
                           ) -> None:
        """An identity found in a detail row (a phone kept on an address) names the person
        whose row points at it: that person row becomes a hit too. A detail row that two
        people's rows point at cannot say who asked: that stops the request."""
        from governance.masking import mask_value

        for table in list(hits):
            edges = [e for e in self.graph.in_edges(table, "detail")
                     if self.graph.is_person(e.origin)]
            if not edges or self.graph.is_person(table):
                continue
            for row, ident, col in list(hits[table]):
                people: list[tuple[TableKey, Row, str]] = []
                for edge in edges:
                    value = row.get(edge.to_column)
                    if value is None:
                        continue
                    people += [(edge.origin, r, edge.column)
                               for r in self.find(edge.origin, edge.column, [value])]
                distinct = len({(t, self.row_id(t, r)) for t, r, _ in people})
                if distinct > 1:
                    info = self.info(table)
                    key = ",".join(info.primary_key) if info and info.primary_key else None
                    where = f"{key}={mask_value(str(key_value(row, key)))}" if key else "a row"
                    self.blockers.append(
                        f"{ident.masked()} is held in {table[0]}.{table[1]} ({where}, column "
                        f"{col}), a row that {distinct} people's rows point at ("
                        + ", ".join(sorted({f"{t[0]}.{t[1]}.{c}" for t, _, c in people}))
                        + "): it cannot say which of them asked. Give an identity only this "
                        "person has (e.g. an e-mail), or reject the request")
                    continue
                for person, r, column in people:
                    hits[person].append((r, ident, column))

    def sealed_identity_columns(self, identities: Sequence[Identity]) -> list[str]:
        """Columns of the identities' kinds without a blind index where a sample of 2,000
        rows holds envelopes: an identity cannot be matched there."""
        out = []
        for table, info in self.tables():
            cols = {c for ident in identities for c in self.identity_columns(table, info, ident)
                    if (table[0], table[1], c) not in self.blind}
            for col in sorted(cols):
                try:
                    values = self.pool.get(table[0]).sample_rows(table[1], [col], 2000) \
                        .column(col).to_pylist()
                except GovernanceError:
                    continue
                if any(v is not None and looks_sealed(v) for v in values):
                    out.append(f"{table[0]}.{table[1]}.{col}")
        return out

    def check_unambiguous(self, hits: dict[TableKey, list[tuple[Row, Identity, str]]]) -> None:
        """One identity matching two people in one person table stops the request."""
        from governance.masking import mask_value

        for table, found in hits.items():
            if not self.graph.is_person(table):
                continue
            info = self.info(table)
            by_ident: dict[Identity, dict[str, Row]] = defaultdict(dict)
            for row, ident, _ in found:
                by_ident[ident][self.row_id(table, row)] = row
            for ident, people in by_ident.items():
                if ident.type is IdentityType.USER_ID:
                    tables = [t for t, f in hits.items() if self.graph.is_person(t)
                              and any(i == ident for _, i, _ in f)]
                    if len(tables) > 1 and table == tables[0]:
                        self.blockers.append(
                            f"{ident.masked()} names a row in {len(tables)} person tables "
                            f"({', '.join(f'{s}.{t}' for s, t in tables)}): an account id "
                            "is ambiguous across tables; give an e-mail, phone or ID number")
                if len(people) < 2:
                    continue
                key = ",".join(info.primary_key) if info and info.primary_key else None
                shown = []
                for row in list(people.values())[:5]:
                    label = f"{key}={mask_value(str(key_value(row, key)))}" if key else "row"
                    shown.append(label)
                self.blockers.append(
                    f"{ident.masked()} matches {len(people)} people in {table[0]}.{table[1]} "
                    f"({'; '.join(shown)}): it is shared, so it cannot say who asked. Give an "
                    "identity only this person has (e.g. user_id=...), or reject the request")
        self._check_across_tables(hits)

    def _check_across_tables(self, hits: dict[TableKey, list[tuple[Row, Identity, str]]]
                             ) -> None:
        """One identity matching person rows of two tables that name different people (a
        customer and an employee with the same e-mail, other names) stops the request: it
        cannot say who asked. Rows that agree (the same name), or that hold nothing to tell
        people apart, are one person (a user and their marketing contact)."""
        rows: dict[Identity, list[tuple[TableKey, Row]]] = defaultdict(list)
        for table, found in hits.items():
            if self.graph.is_person(table):
                for row, ident, _ in found:
                    if ident.type is not IdentityType.USER_ID:
                        rows[ident].append((table, row))
        for ident, people in rows.items():
            if len({t for t, _ in people}) < 2:
                continue
            who = [(t, who_of(t, r, self.cats)) for t, r in people]
            apart = sorted({f"{a[0]}.{a[1]} and {b[0]}.{b[1]}"
                            for i, (a, x) in enumerate(who) for b, y in who[i + 1:]
                            if a != b and not same_person(x, y)})
            if apart:
                self.blockers.append(
                    f"{ident.masked()} matches person rows of {apart[0]} whose names, dates "
                    "of birth or ID numbers differ: two people hold it, so it cannot say who "
                    "asked (nothing of either was taken). Give an identity only the subject "
                    "has (with user_id=... the table's own key), or reject the request")

    def claim_rows(self, hits: dict[TableKey, list[tuple[Row, Identity, str]]]) -> None:
        """Person rows found by identity are the subject's; other rows holding their identity
        are theirs unless a nearer owner says otherwise."""
        for table, people in self.persons_of(hits).items():
            decl = self.inv.source(table[0]).table(table[1])
            key = decl.subject_key if decl else None
            how = (FoundBy.SUBJECT_KEY if any(col == key for _, _, col in hits[table])
                   else FoundBy.IDENTITY)
            self._own(table, people.values(), how, hits[table][0][1].type.value, 0)
        for table, found in hits.items():
            if self.graph.is_person(table):
                continue
            rows = list({self.row_id(table, r): r for r, _, _ in found}.values())
            for r, (who, _) in zip(rows, self.owners(table, rows), strict=True):
                if who == {OTHER}:
                    self.others[f"{table[0]}.{table[1]}"] += 1
                elif OTHER in who:
                    self.shared[table][self.row_id(table, r)] = r
                else:
                    self._own(table, [r], FoundBy.IDENTITY, found[0][1].type.value,
                              self.graph.distance(table) if who else 0)
                    self.identity_column.setdefault(table, found[0][2])

    def check_undeclared_pointers(self) -> None:
        """Rows of a table the inventory does not list that may be the subject's: a column
        named for one of their person tables (``user_id`` for ``users.id``), or classified
        by the scan as account ids, that is no reference (no foreign key), holding the key
        of one of the subject's person rows. Whose rows these are is not known, so the
        request stops and asks (counts and names only)."""
        people = {t: rows for t, rows in self.owned.items() if self.graph.is_person(t)}
        if not people:
            return
        keyed: list[tuple[TableKey, str, list[Any]]] = []
        for table, rows in people.items():
            decl = self.inv.source(table[0]).table(table[1])
            info = self.info(table)
            key = decl.subject_key if decl is not None and decl.subject_key else (
                info.primary_key[0] if info is not None and len(info.primary_key) == 1
                else None)
            values = [r.get(key) for r in rows.values() if key and r.get(key) is not None]
            if key and values:
                keyed.append((table, key, values))
        for table, info in self.tables():
            if self.inv.source(table[0]).table(table[1]) is not None \
                    or self.graph.is_person(table):
                continue
            linked = {e.column for e in self.graph.out_edges(table)}
            for col in info.column_names:
                if col in linked:
                    continue
                ids = "identity.user_id" in self.cats.get((table[0], table[1], col), set())
                for person, key, values in keyed:
                    if not (ids or col.lower() in pointer_names(person[1], key)):
                        continue
                    found = self.find(table, col, values)
                    if found:
                        self.blockers.append(
                            f"{table[0]}.{table[1]}: {len(found)} row(s) whose {col} equals "
                            f"the {key} of the subject's {person[0]}.{person[1]} row; the table "
                            f"is not in the inventory and {col} is no reference (no foreign "
                            "key), so whose rows these are is not known and they were not "
                            "included. Declare the table in the inventory (with `references: "
                            f"[{{column: {col}, to: {person[1]}.{key}}}]` if it points there, "
                            "without if it does not) and run the request again")
                        break

    def follow_owners(self) -> None:
        """Rows reaching the subject's rows through owner edges, breadth first."""
        frontier = {t: list(rows.values()) for t, rows in self.owned.items()}
        while frontier:
            nxt: dict[TableKey, list[Row]] = defaultdict(list)
            for table, rows in frontier.items():
                for edge in self.graph.in_edges(table, "owner"):
                    child = edge.origin
                    info = self.info(child)
                    if info is None or info.kind != "table" or edge.column not in info.column_names:
                        continue
                    self.searched.append(Searched(child[0], child[1], edge.column, "reference"))
                    values = [r.get(edge.to_column) for r in rows]
                    candidates = [r for r in self.find(child, edge.column, values)
                                  if self.row_id(child, r) not in self.owned[child]
                                  and self.row_id(child, r) not in self.shared[child]]
                    if not candidates:
                        continue
                    for r, (who, hops) in zip(candidates, self.owners(child, candidates),
                                              strict=True):
                        if who == {SUBJECT}:
                            nxt[child].extend(self._own(child, [r], FoundBy.REFERENCE,
                                                        edge.describe(), hops))
                        elif SUBJECT in who:
                            self.shared[child][self.row_id(child, r)] = r
            frontier = {t: rows for t, rows in nxt.items() if rows}

    def follow_details(self) -> None:
        """Rows the subject's rows point at through detail edges (their address)."""
        for table, rows in list(self.owned.items()):
            for edge in self.graph.out_edges(table, "detail"):
                info = self.info(edge.target)
                if info is None or info.kind != "table":
                    continue
                values = [r.get(edge.column) for r in rows.values()]
                self.searched.append(Searched(edge.to_source, edge.to_table, edge.to_column,
                                              "reference"))
                for r in self.find(edge.target, edge.to_column, values):
                    rid = self.row_id(edge.target, r)
                    if rid not in self.owned.get(edge.target, {}):
                        self.details[edge.target][rid] = r
                        self.detail_how.setdefault(edge.target, edge.describe())

    def search_free_text(self, mine: Sequence[Identity], exclusive: Sequence[Identity]) -> None:
        """Free-text cells mentioning the subject. In the subject's own rows every identity
        counts; in other rows only those no other person holds (``exclusive``)."""
        for table, info in self.tables():
            cols = [c.name for c in info.columns
                    if FREE_TEXT in self.cats.get((table[0], table[1], c.name), set())]
            if not cols or not mine:
                continue
            for col in cols:
                self.searched.append(Searched(table[0], table[1], col, "substring"))
            found_rows = search_text_rows(self.pool.get(table[0]), table[1], cols, mine)
            for col, rows in found_rows.items():
                if not rows:
                    continue
                own: list[str] = []
                theirs: list[str] = []
                for r, (who, _) in zip(rows, self.owners(table, rows), strict=True):
                    (own if who == {SUBJECT} else theirs).append(r[col])
                own = list(dict.fromkeys(own))
                theirs = [t for t in dict.fromkeys(theirs) if t not in own]
                if own:
                    self.mentions.append(Location(
                        table[0], table[1], FoundBy.FREE_TEXT, col, "all", 0, own,
                        [{col: t} for t in own], Relation.MENTION))
                mention_ex = [t for t in theirs if _mentions(t, exclusive)]
                if mention_ex:
                    self.mentions.append(Location(
                        table[0], table[1], FoundBy.FREE_TEXT, col, "exclusive", 0,
                        mention_ex, [{col: t} for t in mention_ex], Relation.MENTION))
                shared_only = len(theirs) - len(mention_ex)
                if shared_only:
                    self.others[f"{table[0]}.{table[1]}.{col} (text naming a shared "
                                f"identifier)"] += shared_only

    def locations(self) -> list[Location]:
        """The subject's rows and details as locations matched by their exact keys."""
        out = []
        for table, rows in self.owned.items():
            if rows:
                out.append(self._location(table, rows, Relation.OWNED, *self.how[table]))
        for table, rows in self.details.items():
            if rows:
                out.append(self._location(table, rows, Relation.DETAIL, FoundBy.DETAIL,
                                          self.detail_how[table], -1))
        return out + self.mentions

    def _location(self, table: TableKey, rows: dict[str, Row], relation: Relation,
                  how: FoundBy, via: str, hops: int) -> Location:
        info = self.info(table)
        decl = self.inv.source(table[0]).table(table[1])
        key = match_key(info, decl.subject_key if decl else None,
                        self.graph.owner_edges(table)) if info else None
        if (key is None and relation is Relation.OWNED and table in self.identity_column
                and not self.shared.get(table)
                and not self.others.get(f"{table[0]}.{table[1]}")):
            # No key, but every row holding the subject's identifier there is theirs.
            key = self.identity_column[table]
        if key is None:
            self.blockers.append(
                f"{table[0]}.{table[1]}: has no primary key, subject key or single owner "
                "column, so its rows cannot be picked exactly; declare a subject_key or an "
                "owner reference")
            key = ""
        values = [key_value(r, key) for r in rows.values()] if key else []
        return Location(table[0], table[1], how, key, via, hops, values,
                        list(rows.values()), relation)


def pointer_names(table: str, key: str) -> set[str]:
    """Lower-case names a column pointing at ``table.key`` usually has: ``user_id`` and
    ``userid`` for ``users.id``, ``customer_id`` for ``customers.customer_id``."""
    t, k = table.lower(), key.lower()
    singular = {t, t[:-1] if t.endswith("s") else t, t[:-2] if t.endswith("es") else t,
                t[:-3] + "y" if t.endswith("ies") else t}
    names = {k} if k != "id" else set()
    for one in singular:
        names |= {f"{one}_{k}", f"{one}{k}", f"{one}_id", f"{one}id"}
    return names


def _mentions(text: str, identities: Sequence[Identity]) -> bool:
    for ident in identities:
        for form in ident.text_variants():
            if (form.lower() in text.lower()) if ident.case_insensitive else (form in text):
                return True
    return False


# Identity types read from the subject's own person rows to search for them further.
_DERIVABLE = (IdentityType.EMAIL, IdentityType.PHONE, IdentityType.NATIONAL_ID)


# The personal data that tells one person from another: stable attributes of who they
# are, not what an application updates on its own (an IP address, a location, a password
# hash) nor the e-mail or phone a request is matched by.
WHO_CATEGORIES = frozenset({"identity.name", "identity.date_of_birth",
                            "identity.national_id", "identity.passport"})
_WORD = re.compile(r"[^\W_]+")


def who_of(table: TableKey, row: Row, categories: Mapping[tuple[str, str, str], set[str]]
           ) -> dict[str, frozenset[str]]:
    """What tells one person from another in a row: the words of its name columns, and
    its dates of birth and ID numbers (normalised), by category; empty ones left out."""
    out: dict[str, set[str]] = {}
    for col, value in row.items():
        # (an encrypted cell says nothing here: two envelopes of one name differ)
        if value is None or isinstance(value, bytes | bytearray | memoryview) \
                or looks_sealed(value):
            continue
        for cat in categories.get((table[0], table[1], col), set()) & WHO_CATEGORIES:
            text = str(value)
            if cat == "identity.name":
                words = {w.casefold() for w in _WORD.findall(text)}
            elif cat == "identity.date_of_birth":
                words = {text.strip()[:10]}
            else:
                words = {"".join(ch for ch in text if ch.isalnum()).upper()}
            out.setdefault(cat, set()).update(w for w in words if w)
    return {c: frozenset(v) for c, v in out.items() if v}


def same_person(a: Mapping[str, frozenset[str]], b: Mapping[str, frozenset[str]]) -> bool:
    """Whether two rows' ``who_of`` can be one person: every kind both have agrees (a
    name's words: one set within the other, so a middle name or a title does not part
    them, but one word alone within a longer name does; a date of birth or an ID number:
    equal)."""
    for cat in set(a) & set(b):
        x, y = a[cat], b[cat]
        if cat == "identity.name" and not (x <= y or y <= x):
            return False
        if cat == "identity.name" and x != y and min(len(x), len(y)) < 2:
            # One word within another's name ("Jenkins" and "Gary Jenkins", a father and
            # a son sharing an e-mail) is too little to take them for one person.
            return False
        if cat != "identity.name" and not x & y:
            return False
    return True


def derive_identities(resolution_rows: Mapping[TableKey, Iterable[Row]],
                      categories: dict[tuple[str, str, str], set[str]],
                      known: Sequence[Identity]) -> tuple[list[Identity], list[str]]:
    """Identities written in the subject's person rows that were not given (the phone
    number of the user row found by e-mail), and why stored values were skipped (masked
    reasons: a phone column holding ``n/a``)."""
    by_category = {CATEGORY_OF[t]: t for t in _DERIVABLE}
    seen = {i.fingerprint_text() for i in known}
    out: list[Identity] = []
    skipped: list[str] = []
    for (source, table), rows in resolution_rows.items():
        for row in rows:
            for col, value in row.items():
                for cat in categories.get((source, table, col), set()):
                    if cat not in by_category or not isinstance(value, str) or not value.strip():
                        continue
                    if looks_sealed(value):
                        skipped.append(f"{source}.{table}.{col}: the stored value is "
                                       "encrypted; other rows were not searched by it")
                        continue
                    try:
                        ident = Identity(by_category[cat], value)
                        ident.canonical()
                    except (IdentityError, ValueError, AttributeError) as e:
                        # The parser's reason names no value (a phone's missing country
                        # code): said, so that people know why other rows holding it
                        # were not searched by it.
                        why = str(e).split(": ", 1)[-1] if isinstance(e, IdentityError) \
                            else "not readable"
                        skipped.append(f"{source}.{table}.{col}: a stored value is not a "
                                       f"usable {by_category[cat].value} ({why}); other "
                                       "rows were not searched by it")
                        continue
                    if ident.fingerprint_text() not in seen:
                        seen.add(ident.fingerprint_text())
                        out.append(ident)
    return out, list(dict.fromkeys(skipped))


def locate_subject(inventory: Inventory, identities: Sequence[Identity], pool: ConnectorPool,
                   store: AuditStore | None = None, progress: Progress | None = None,
                   categories_read: Categories | None = None, expand: bool = True
                   ) -> Resolution:
    """Find exactly the subject known by the given ``identities`` in every source of
    ``inventory`` (see the module docstring). With ``expand``, identities written in their
    own person rows are derived and used as described there. ``categories_read``: what
    ``column_categories`` returned, when the caller already read it from the store."""
    categories, runs = categories_read or column_categories(inventory, store)
    r = _Resolver(inventory, pool, categories, progress, store)
    given = list(identities)
    hits = r.match_identities(given)
    if not any(hits.values()):
        # Nothing found: say so only if every identity was looked for somewhere.
        unsearched = sorted({i.type.value for i in given if not any(
            r.identity_columns(t, info, i) for t, info in r.tables())})
        if unsearched:
            r.blockers.append(
                f"nothing was found, and no column of any source holds {' or '.join(unsearched)} "
                "identities (none is declared or detected as such), so they were not looked "
                "for: declare the column's category in the inventory (or run govkit scan) and "
                "run the request again, or give an identity of another kind")
        sealed = r.sealed_identity_columns(given)
        if sealed:
            r.blockers.append(
                "nothing was found, and these columns of the identities' kind hold "
                f"encrypted values with no blind index, so they could not be searched: "
                f"{', '.join(sealed)}. Add a blind index for them to the encryption policy "
                "and run govkit encrypt, or give an identity of another kind")
    r.add_detail_persons(hits)
    r.check_unambiguous(hits)
    if r.blockers:
        return Resolution([], r.searched, r.unreachable, runs, [], categories, r.graph,
                          r.catalogue, blockers=r.blockers)
    r.claim_rows(hits)
    derived: list[Identity] = []
    shared_ids: list[Identity] = []
    elsewhere_ids: list[Identity] = []
    left: dict[TableKey, set[str]] = {}
    notes: list[str] = []
    if expand:
        people = {t: list(rows.values()) for t, rows in r.owned.items() if r.graph.is_person(t)}
        derived, notes = derive_identities(people, categories, given)
        if derived:
            extra = r.match_identities(derived)
            subject_who = [who_of(t, row, categories) for t, rows in people.items()
                           for row in rows]
            for ident in derived:
                shared, rows_left = r.derived_elsewhere(ident, extra, subject_who, categories)
                if shared:
                    shared_ids.append(ident)
                elif rows_left:
                    elsewhere_ids.append(ident)
                    for t, ids in rows_left.items():
                        left.setdefault(t, set()).update(ids)
            exclusive = [i for i in derived if i not in shared_ids]
            # Rows found only by an exclusive derived identity are the subject's, including
            # their row in another person table (the marketing contact of a user), but for
            # rows that are someone else's.
            r.claim_rows({t: [h for h in found if h[1] in exclusive
                              and r.row_id(t, h[0]) not in left.get(t, set())]
                          for t, found in extra.items()})
        if progress:
            progress(f"{len(derived)} identities derived from the subject's rows "
                     f"({len(shared_ids)} shared with another person; "
                     f"{sum(len(v) for v in left.values())} row(s) holding one left as "
                     "someone else's)")
    r.follow_owners()
    r.check_undeclared_pointers()
    r.follow_details()
    exclusive_all = [*given, *[i for i in derived if i not in shared_ids]]
    r.search_free_text([*given, *derived], exclusive_all)
    if progress:
        progress("subject located")
    return Resolution(r.locations(), r.searched, r.unreachable, runs, derived, categories,
                      r.graph, r.catalogue,
                      {t: list(v.values()) for t, v in r.shared.items() if v},
                      dict(r.others), shared_ids, r.blockers, notes, elsewhere_ids,
                      {f"{t[0]}.{t[1]}": len(ids) for t, ids in left.items()})


Place = tuple[str, str, str]   # (source, table, column)


def search_everywhere(inventory: Inventory, identities: Sequence[Identity],
                      pool: ConnectorPool, progress: Progress | None = None
                      ) -> tuple[dict[Place, int], dict[str, str]]:
    """Cells of every text column of every table of every source holding a written form
    of an identity: counts per (source, table, column), and unreachable sources."""
    by_identity, unreachable = search_everywhere_by_identity(inventory, identities, pool,
                                                             progress)
    return {place: sum(texts.values()) for place, texts in _cells(by_identity).items()}, \
        unreachable


def _cells(by_identity: dict[Place, dict[Identity, dict[str, int]]]
           ) -> dict[Place, dict[str, int]]:
    out: dict[Place, dict[str, int]] = {}
    for place, per in by_identity.items():
        texts: dict[str, int] = {}
        for found in per.values():
            texts.update(found)
        out[place] = texts
    return out


def search_everywhere_by_identity(inventory: Inventory, identities: Sequence[Identity],
                                  pool: ConnectorPool, progress: Progress | None = None,
                                  columns: Callable[[str, TableInfo], list[str]] | None = None
                                  ) -> tuple[dict[Place, dict[Identity, dict[str, int]]],
                                             dict[str, str]]:
    """Like ``search_everywhere`` for all ``identities`` at once (one pass per table):
    per (source, table, column), which identities were found there, each with the distinct
    texts holding it and their cell counts; and the unreachable sources. ``columns(source,
    table)`` picks the columns searched (default: every text column)."""
    found: dict[Place, dict[Identity, dict[str, int]]] = {}
    unreachable: dict[str, str] = {}
    for src in inventory.sources:
        try:
            conn = pool.get(src.name)
            tables = conn.list_tables()
        except GovernanceError as e:
            unreachable[src.name] = str(e).splitlines()[0]
            continue
        for info in tables:
            cols = columns(src.name, info) if columns else _text_columns(info)
            if not cols:
                continue
            for col, texts in search_text(conn, info.name, cols, identities).items():
                for text, n in texts.items():
                    for ident in identities:
                        if _mentions(text, [ident]):
                            per = found.setdefault((src.name, info.name, col), {})
                            per.setdefault(ident, {})[text] = n
        if progress:
            progress(f"{src.name}: every text cell searched")
    return found, unreachable


def exact_hits(inventory: Inventory, identity: Identity, pool: ConnectorPool,
               store: AuditStore | None = None) -> dict[Place, int]:
    """Rows holding ``identity`` exactly in a column of its kind (declared or classified),
    in every base table of every reachable source: counts per (source, table, column)."""
    return {place: per[identity] for place, per in
            exact_hits_by_identity(inventory, [identity], pool, store).items()}


def exact_hits_by_identity(inventory: Inventory, identities: Sequence[Identity],
                           pool: ConnectorPool, store: AuditStore | None = None,
                           categories: dict[tuple[str, str, str], set[str]] | None = None
                           ) -> dict[Place, dict[Identity, int]]:
    """Like ``exact_hits`` for all ``identities`` at once (the catalogue, foreign keys and
    column categories read once, or given): per (source, table, column), rows per identity."""
    if categories is None:
        categories, _ = column_categories(inventory, store)
    r = _Resolver(inventory, pool, categories, None, store)
    out: dict[Place, dict[Identity, int]] = {}
    for table, found in r.match_identities(list(identities)).items():
        for _, ident, col in found:
            per = out.setdefault((table[0], table[1], col), {})
            per[ident] = per.get(ident, 0) + 1
    return out


def verification_hits(inventory: Inventory, identities: Sequence[Identity],
                      pool: ConnectorPool, store: AuditStore | None = None,
                      every_text_cell: bool = True, categories_read: Categories | None = None
                      ) -> tuple[dict[Place, set[Identity]], dict[Place, int], dict[str, str]]:
    """What verification finds of ``identities``, searching every source once for all of
    them: each identity exactly in the columns of its kind and inside every text cell.
    Returns per (source, table, column) which identities were found there, how many cells
    or rows the identity found most often there holds, and the unreachable sources.
    With ``every_text_cell=False`` only the columns classified as free text are searched
    for the written forms (the identity columns are matched exactly either way)."""
    free_text = None
    categories, _ = categories_read or column_categories(inventory, store)
    if not every_text_cell:

        def free_text(source: str, info: TableInfo) -> list[str]:
            return [c.name for c in info.columns
                    if FREE_TEXT in categories.get((source, info.name, c.name), set())]

    cells, unreachable = search_everywhere_by_identity(inventory, identities, pool,
                                                       columns=free_text)
    exact = exact_hits_by_identity(inventory, identities, pool, store, categories)
    found: dict[Place, set[Identity]] = {}
    counts: dict[Place, int] = {}
    for place, per_text in cells.items():
        for ident, texts in per_text.items():
            found.setdefault(place, set()).add(ident)
            counts[place] = max(counts.get(place, 0), sum(texts.values()))
    for place, per_row in exact.items():
        for ident, n in per_row.items():
            found.setdefault(place, set()).add(ident)
            counts[place] = max(counts.get(place, 0), n)
    return found, counts, unreachable


def index_advice(inventory: Inventory, pool: ConnectorPool,
                 store: AuditStore | None = None) -> list[str]:
    """Columns holding e-mail addresses (declared, or classified by the latest scan) that
    no index serves when they are matched in any letter case, with the index to create:
    without one, finding a subject by e-mail reads the whole table."""
    categories, _ = column_categories(inventory, store)
    email = CATEGORY_OF[IdentityType.EMAIL]
    out = []
    for (source, table, column), cats in sorted(categories.items()):
        if email not in cats:
            continue
        try:
            conn = pool.get(source)
            check = getattr(conn, "folded_index", None)
            if check is None or conn.table_info(table).kind != "table":
                continue
            if check(table, column) is None:
                # SQLite needs the index named; a name PostgreSQL accepts too.
                name = re.sub(r"\W+", "_", f"{table}_{column}_lower").lower()
                # A PostgreSQL source reads one schema: the table is named in it (the
                # index goes to the table's schema), whatever the reader's search_path.
                schema = getattr(conn, "schema", None)
                where = f"{_quoted(schema)}.{_quoted(table)}" if isinstance(schema, str) \
                    else _quoted(table)
                out.append(f"{source}.{table}.{column}: no index serves matching e-mail "
                           "addresses in any letter case, so each request reads the whole "
                           f"table; create one: CREATE INDEX {name} ON {where} "
                           f"(lower({_quoted(column)}))")
        except GovernanceError:
            continue
    return out


def _quoted(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (shown to people to paste; SQLite and
    PostgreSQL both read it)."""
    return '"' + name.replace('"', '""') + '"'


def blind_indexes(inventory: Inventory, store: AuditStore
                  ) -> dict[tuple[str, str, str], tuple[str, Callable[[str], str]]]:
    """Encrypted identity columns that have a keyed blind index (field-encryption policy
    beside the inventory): (source, table, column) -> (index column, index of a value)."""
    from governance.encryption.policy import POLICY_FILE

    if not (inventory.base_dir / POLICY_FILE).exists():
        return {}
    from governance.encryption import load_policy, subject_keys_for

    policy = load_policy(None, inventory)
    rules = [c for c in policy.columns if c.blind_index]
    if not rules:
        return {}
    keys = subject_keys_for(policy, store)
    out: dict[tuple[str, str, str], tuple[str, Callable[[str], str]]] = {}
    for rule in rules:
        source, table, column = rule.column.split(".")

        def index_of(value: str, s: str = source, t: str = table, c: str = column) -> str:
            return keys.blind_index(s, t, c, value) or ""

        out[(source, table, column)] = (str(rule.blind_index), index_of)
    return out
