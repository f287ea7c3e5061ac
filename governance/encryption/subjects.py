"""Whose row is it, for a whole table at once: the data subject each row is encrypted for.

The ownership graph the requests use (``governance.dsar.ownership``) decides: a person
table's row is its own subject's (its subject key, else its primary key); another table's
row belongs to the people its nearest owner edges lead to (an order's card number to its
customer). A row whose nearest owner edges name two different people is SHARED, and one
that reaches no person is NOBODY: neither is encrypted under a subject key (they are
reported). Intermediate tables are read once, as maps from the referenced column to the
owner, so a table of N rows costs one pass plus one pass per table on its owner path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from governance.dsar.ownership import UNREACHABLE, OwnershipGraph, TableKey, build_graph
from governance.errors import GovernanceError
from governance.inventory import Inventory
from governance.sources.pool import ConnectorPool

Owner = tuple[TableKey, str]            # person table, its key as text
SHARED: Any = "shared"
NOBODY: Any = None
MAX_DEPTH = 8


def person_key_column(inventory: Inventory, pool: ConnectorPool, table: TableKey) -> str:
    """The column that identifies the person of a person table's row."""
    decl = inventory.source(table[0]).table(table[1])
    if decl is not None and decl.subject_key:
        return decl.subject_key
    info = pool.get(table[0]).table_info(table[1])
    if info.primary_key:
        return ",".join(info.primary_key)
    raise GovernanceError(f"{table[0]}.{table[1]}: a person table without a subject_key or "
                          "primary key; declare its subject_key")


def _text(value: Any) -> str:
    return str(value)


def _key_of(row: dict[str, Any], column: str) -> str | None:
    if "," in column:
        parts = [row.get(c) for c in column.split(",")]
        return None if any(p is None for p in parts) else "\x1f".join(map(str, parts))
    v = row.get(column)
    return None if v is None else _text(v)


class OwnerIndex:
    """Finds the owner of rows of any table of ``inventory`` (sources from ``pool``)."""

    def __init__(self, inventory: Inventory, pool: ConnectorPool,
                 graph: OwnershipGraph | None = None):
        self.inv = inventory
        self.pool = pool
        if graph is None:
            keys = {s.name: pool.get(s.name).foreign_keys() for s in inventory.sources}
            graph = build_graph(inventory, keys)
        self.graph = graph
        self._maps: dict[tuple[TableKey, str], dict[str, Any]] = {}

    def needed_columns(self, table: TableKey) -> list[str]:
        """The columns of ``table`` its rows' owners are found from."""
        if self.graph.is_person(table):
            return person_key_column(self.inv, self.pool, table).split(",")
        return sorted({e.column for e in self.graph.owner_edges(table)})

    def owners(self, table: TableKey, rows: Sequence[dict[str, Any]], depth: int = 0
               ) -> list[Any]:
        """The owner of each row: ``(person table, key text)``, SHARED or NOBODY."""
        if self.graph.is_person(table):
            col = person_key_column(self.inv, self.pool, table)
            return [NOBODY if (k := _key_of(r, col)) is None else (table, k) for r in rows]
        result: list[Any] = [NOBODY] * len(rows)
        best = [UNREACHABLE] * len(rows)
        if depth > MAX_DEPTH:
            return result
        for edge in self.graph.owner_edges(table):
            hops = self.graph.distance(edge.target) + 1
            mapping = self._map(edge.target, edge.to_column, depth + 1)
            for i, r in enumerate(rows):
                v = r.get(edge.column)
                if v is None or hops > best[i]:
                    continue
                who = mapping.get(_text(v), NOBODY)
                if who is NOBODY:
                    continue
                if hops < best[i] or result[i] is NOBODY:
                    result[i], best[i] = who, hops
                elif result[i] != who:
                    result[i] = SHARED
        return result

    def _map(self, table: TableKey, column: str, depth: int) -> dict[str, Any]:
        """Value of ``table.column`` -> owner of the row(s) holding it."""
        cached = self._maps.get((table, column))
        if cached is not None:
            return cached
        conn = self.pool.get(table[0])
        cols = sorted({column, *self.needed_columns(table)})
        mapping: dict[str, Any] = {}
        for batch in conn.stream_rows(table[1], cols):
            rows = batch.to_pylist()
            for r, who in zip(rows, self.owners(table, rows, depth), strict=True):
                v = r.get(column)
                if v is None or who is NOBODY:
                    continue
                key = _text(v)
                prev = mapping.get(key, NOBODY)
                mapping[key] = who if prev is NOBODY or prev == who else SHARED
        self._maps[(table, column)] = mapping
        return mapping
