"""Who owns which rows: the ownership graph of an inventory, built as plain data.

Every reference between two tables (declared in the inventory, or a foreign key read from
a source's catalogue) becomes an ``Edge`` with a kind:

- ``owner``: a row belongs to whoever owns the row it points at (rental -> customer,
  invoice_line -> invoice);
- ``detail``: the row pointed at holds personal detail of the referring row's owner (a
  customer's address): exported with access, erased only when nobody else refers to it;
- ``reference``: a mere pointer (a store, a film, the employee who served). Never followed
  to find a subject's rows.

Person tables hold one person per row (a table with a ``subject_key``, or ``person: true``).
When the inventory does not say the kind, it is inferred so that a graph written from
foreign keys alone is safe: person -> person is a ``reference`` (the support rep is another
person), person -> other is ``detail`` when the target holds personal data and a
``reference`` otherwise, anything else -> ``owner``. The graph is checked without touching
a database (``OwnershipGraph.problems``); the resolver then runs the queries it prescribes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from governance.inventory import Inventory, PlaceholderTarget, Reference
from governance.sources import ForeignKey

TableKey = tuple[str, str]          # (source, table)
# A referring column named for a role a person plays for the row (its manager, the staff
# member or agent who served, who created or approved it): a row pointing at a person that
# way is often the business's, not that person's.
_ROLE = re.compile(r"(^|_)(manager|mgr|staff|employee|emp|rep|agent|clerk|cashier|"
                   r"salesperson|supervisor|approver|approved_by|created_by|updated_by|"
                   r"modified_by|handled_by|assigned|assignee|reviewer|operator|teller)"
                   r"(_|$|id$)", re.IGNORECASE)


def names_a_role(column: str) -> bool:
    """Whether ``column`` reads as the role a person plays for the row (``manager_staff_id``,
    ``sales_rep``, ``created_by``), not as whose the row is."""
    return bool(_ROLE.search(column))
UNREACHABLE = 10**6                 # distance of a table that leads to no person table


@dataclass(frozen=True)
class Edge:
    """``source.table.column`` points at ``to_source.to_table.to_column``."""

    source: str
    table: str
    column: str
    to_source: str
    to_table: str
    to_column: str
    kind: str                       # owner | detail | reference
    on_erase: str = "refuse"        # refuse | detach | set
    placeholder: Any = None         # with on_erase == "set"
    declared: bool = True           # False: read from the source's catalogue only
    inferred: bool = False          # the kind was not written in the inventory

    @property
    def origin(self) -> TableKey:
        """The referring table."""
        return (self.source, self.table)

    @property
    def target(self) -> TableKey:
        """The table pointed at."""
        return (self.to_source, self.to_table)

    def describe(self) -> str:
        """``rental.customer_id -> customer.customer_id (owner)``, with sources when they differ."""
        left = f"{self.source}.{self.table}.{self.column}"
        right = (f"{self.to_table}.{self.to_column}" if self.to_source == self.source
                 else f"{self.to_source}.{self.to_table}.{self.to_column}")
        how = f"{self.kind}, inferred" if self.inferred else self.kind
        return f"{left} -> {right} ({how})"


@dataclass
class OwnershipGraph:
    """The person tables and the typed edges between the tables of an inventory."""

    persons: set[TableKey]
    edges: list[Edge]
    _out: dict[TableKey, list[Edge]] = field(default_factory=dict, repr=False)
    _in: dict[TableKey, list[Edge]] = field(default_factory=dict, repr=False)
    _distance: dict[TableKey, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        out: dict[TableKey, list[Edge]] = defaultdict(list)
        into: dict[TableKey, list[Edge]] = defaultdict(list)
        for e in self.edges:
            out[e.origin].append(e)
            into[e.target].append(e)
        self._out, self._in = dict(out), dict(into)
        self._distance = self._distances()

    def is_person(self, table: TableKey) -> bool:
        """True when each row of ``table`` is one person."""
        return table in self.persons

    def out_edges(self, table: TableKey, kind: str | None = None) -> list[Edge]:
        """Edges from ``table`` (of ``kind`` when given)."""
        return [e for e in self._out.get(table, []) if kind is None or e.kind == kind]

    def in_edges(self, table: TableKey, kind: str | None = None) -> list[Edge]:
        """Edges pointing at ``table`` (of ``kind`` when given)."""
        return [e for e in self._in.get(table, []) if kind is None or e.kind == kind]

    def distance(self, table: TableKey) -> int:
        """Owner edges from ``table`` to the nearest person table (0 for a person table)."""
        return self._distance.get(table, UNREACHABLE)

    def owner_edges(self, table: TableKey) -> list[Edge]:
        """The owner edges of ``table`` that lead to a person table, nearest first."""
        edges = [e for e in self.out_edges(table, "owner")
                 if self.distance(e.target) < UNREACHABLE]
        return sorted(edges, key=lambda e: (self.distance(e.target), e.column))

    def _distances(self) -> dict[TableKey, int]:
        dist = {t: 0 for t in self.persons}
        changed = True
        while changed:
            changed = False
            for e in self.edges:
                if e.kind != "owner" or e.origin in self.persons:
                    continue
                d = dist.get(e.target, UNREACHABLE) + 1
                if d < dist.get(e.origin, UNREACHABLE):
                    dist[e.origin] = d
                    changed = True
        return dist

    def role_owner_edges(self, table: TableKey) -> list[Edge]:
        """The nearest owner edges of ``table``, when each was inferred and names a role
        (``store.manager_staff_id``): whether its rows are the person's is not known."""
        edges = self.owner_edges(table)
        if not edges:
            return []
        nearest = [e for e in edges if self.distance(e.target) == self.distance(
            edges[0].target)]
        return nearest if all(e.inferred and names_a_role(e.column) for e in nearest) else []

    def problems(self) -> list[str]:
        """What makes requests stop on this graph: tables whose rows may belong to two
        people at once because two inferred owner edges at the same distance lead to
        person tables (declare which one is the owner), and tables taken as a person's
        through an inferred reference named for a role (a store's manager)."""
        out = []
        for table in sorted({e.origin for e in self.edges}):
            roles = self.role_owner_edges(table)
            if len(roles) == 1:
                out.append(f"{table[0]}.{table[1]}: taken as a person's rows through "
                           f"{roles[0].describe()}, a column named for a role; an erasure "
                           "of that person would delete them. Declare `kind: owner` if they "
                           "are the person's, or `kind: reference` (with on_erase)")
        for table in sorted({e.origin for e in self.edges}):
            edges = self.owner_edges(table)
            if len(edges) < 2:
                continue
            nearest = self.distance(edges[0].target)
            tied = [e for e in edges if self.distance(e.target) == nearest]
            if len(tied) > 1 and any(e.inferred for e in tied):
                cols = ", ".join(e.describe() for e in tied)
                out.append(f"{table[0]}.{table[1]}: rows may belong to two people ({cols}); "
                           "mark the reference that is the owner `kind: owner` and the "
                           "others `kind: reference`")
        return out


def _edge_from(source: str, table: str, ref: Reference, kind: str, inferred: bool,
               declared: bool = True) -> Edge:
    placeholder: Any = None
    if isinstance(ref.on_erase, PlaceholderTarget):
        placeholder, on_erase = ref.on_erase.set, "set"
    else:
        on_erase = str(ref.on_erase)
    return Edge(source, table, ref.column, ref.source or source, ref.table,
                ref.target_column, kind, on_erase, placeholder, declared, inferred)


def infer_kind(origin_is_person: bool, target_is_person: bool,
               target_has_personal_data: bool) -> str:
    """The kind of a reference the inventory does not qualify (see the module docstring)."""
    if origin_is_person:
        if target_is_person:
            return "reference"
        return "detail" if target_has_personal_data else "reference"
    return "owner"


# Categories that name an account rather than describe a person: a table whose only
# personal data is such a column (a department's manager_id) holds no detail of anyone.
POINTER_CATEGORIES = frozenset({"identity.user_id", "identity.organization_id"})


def personal_tables(categories: Mapping[tuple[str, str, str], Any]) -> set[TableKey]:
    """Tables with a column of a category that describes a person (``categories``:
    (source, table, column) -> a category or a set of them), account ids left out."""
    out: set[TableKey] = set()
    for (source, table, _), cats in categories.items():
        found = {cats} if isinstance(cats, str) else set(cats or ())
        if found - POINTER_CATEGORIES:
            out.add((source, table))
    return out


def build_graph(inventory: Inventory,
                catalogue_keys: Mapping[str, Iterable[ForeignKey]] | None = None,
                personal_tables: Iterable[TableKey] = ()) -> OwnershipGraph:
    """The ownership graph of ``inventory``, with the foreign keys each source's catalogue
    declares (``catalogue_keys``: source -> keys) that the inventory does not.
    ``personal_tables`` are tables known to hold personal data (declared column categories
    are added here), which decides whether a person table's pointer is a detail."""
    persons: set[TableKey] = set()
    personal = set(personal_tables)
    for src in inventory.sources:
        for t in src.tables:
            if t.is_person:
                persons.add((src.name, t.name))
            if any(c.category and c.category not in POINTER_CATEGORIES
                   for c in t.columns.values()):
                personal.add((src.name, t.name))

    def kind_of(origin: TableKey, target: TableKey) -> str:
        return infer_kind(origin in persons, target in persons, target in personal)

    edges: list[Edge] = []
    seen: set[tuple[str, str, str]] = set()
    for src in inventory.sources:
        for t in src.tables:
            for ref in t.references:
                target = (ref.source or src.name, ref.table)
                kind = ref.kind or kind_of((src.name, t.name), target)
                edges.append(_edge_from(src.name, t.name, ref, kind, ref.kind is None))
                seen.add((src.name, t.name, ref.column))
    for source, keys in (catalogue_keys or {}).items():
        for fk in keys:
            if (source, fk.table, fk.column) in seen:
                continue
            seen.add((source, fk.table, fk.column))
            kind = kind_of((source, fk.table), (source, fk.ref_table))
            edges.append(Edge(source, fk.table, fk.column, source, fk.ref_table,
                              fk.ref_column, kind, declared=False, inferred=True))
    return OwnershipGraph(persons, edges)


IDENTITY_CATEGORIES = ("contact.email", "contact.phone", "identity.national_id",
                       "identity.user_id")


def review(graph: OwnershipGraph, inventory: Inventory,
           categories: Mapping[tuple[str, str, str], set[str]] | None = None) -> list[str]:
    """What requests cannot do safely on this inventory, one line each: tables whose rows
    may belong to two people, references declared to cross from one person to another, and
    tables holding personal data that neither an identity nor an owner reference reaches."""
    out = list(graph.problems())
    for e in graph.edges:
        if e.kind in ("owner", "detail") and e.origin in graph.persons \
                and e.target in graph.persons:
            out.append(f"{e.describe()}: crosses from one person to another; a request for "
                       "one would take the other's row (use kind: reference)")
    cats: dict[tuple[str, str], set[str]] = defaultdict(set)
    for src in inventory.sources:
        for t in src.tables:
            for decl in t.columns.values():
                if decl.category:
                    cats[(src.name, t.name)].add(decl.category)
    for (source, table, _), found in (categories or {}).items():
        cats[(source, table)] |= set(found)
    details = {e.target for e in graph.edges if e.kind == "detail"}
    for key, found in sorted(cats.items()):
        personal = found - {"free_text"}
        if (not personal or key in graph.persons or key in details
                or graph.distance(key) < UNREACHABLE
                or personal & set(IDENTITY_CATEGORIES)):
            continue
        out.append(f"{key[0]}.{key[1]}: holds personal data ({', '.join(sorted(personal))}) "
                   "that no identity column or owner reference reaches: requests will not find "
                   "it (declare a reference to its owner, or a subject_key)")
    return out
