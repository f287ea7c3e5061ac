"""Whose row is it, for a whole table at once: the data subject each row is encrypted for.

The ownership graph the requests use (``governance.dsar.ownership``) decides: a person
table's row is its own subject's (its subject key, else its primary key); another table's
row belongs to the people its nearest owner edges lead to (an order's card number to its
customer); a row holding personal detail of the rows pointing at it (a customer's
address, a ``detail`` link) is their owner's. A row whose nearest owner edges (or whose
referrers) name two different people is SHARED, and one
that reaches no person is NOBODY: neither is encrypted under a subject key (they are
reported). Intermediate tables are read once, as maps from the referenced column to the
owner, so a table of N rows costs one pass plus one pass per table on its owner path.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from governance.dsar.ownership import UNREACHABLE, OwnershipGraph, TableKey, build_graph
from governance.errors import GovernanceError
from governance.inventory import Inventory
from governance.sources.pool import ConnectorPool

Owner = tuple[TableKey, str]            # person table, its key as text
SHARED: Any = "shared"
NOBODY: Any = None
MAX_DEPTH = 8
# Owner codes of ``OwnerIndex.owner_codes``: an index into ``OwnerIndex.known``, or these.
CODE_NOBODY = -1
CODE_SHARED = -2


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


def _texts(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``_text`` of each value (None stays None), as an Arrow string array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t):
        return values.cast(pa.string())
    return pa.array([None if v is None else _text(v) for v in values.to_pylist()], pa.string())


def _int64(values: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """An integer array's values as int64 (nulls as 0) and where they are valid; None for
    other types, or integers beyond int64."""
    if not pa.types.is_integer(values.type):
        return None
    try:
        as64 = values.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return (as64.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64),
            as64.is_valid().to_numpy(zero_copy_only=False))


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
        self._coded: dict[tuple[TableKey, str], tuple[pa.Array, np.ndarray]] = {}
        # Integer keys of a person table: (smallest key, owner code of each key from it on)
        # when the keys are dense enough, else (sorted keys, their owner codes).
        self._int_coded: dict[tuple[TableKey, str], tuple[np.ndarray, np.ndarray]] = {}
        self._dense: dict[tuple[TableKey, str], tuple[int, np.ndarray]] = {}
        self.known: list[Owner] = []          # owner code -> owner
        self._code: dict[Owner, int] = {}

    def codes_of(self, table: TableKey, texts: Sequence[str]) -> np.ndarray:
        """``code_of`` of the owner (``table``, text) of each text."""
        owners = list(zip(itertools.repeat(table), texts))
        out = np.fromiter(map(self._code.get, owners, itertools.repeat(-1)), np.int64,
                          len(owners))
        new = np.flatnonzero(out < 0).tolist()
        if new:
            fresh = list(dict.fromkeys(owners[i] for i in new))
            start = len(self.known)
            self.known.extend(fresh)
            self._code.update(zip(fresh, range(start, start + len(fresh)), strict=True))
            out[new] = [self._code[owners[i]] for i in new]
        return out

    def code_of(self, owner: Owner) -> int:
        """The owner code of ``owner`` (the same owner always gets the same code)."""
        found = self._code.get(owner)
        if found is None:
            found = self._code[owner] = len(self.known)
            self.known.append(owner)
        return found

    def needed_columns(self, table: TableKey) -> list[str]:
        """The columns of ``table`` its rows' owners are found from."""
        if self.graph.is_person(table):
            return person_key_column(self.inv, self.pool, table).split(",")
        return sorted({e.column for e in self.graph.owner_edges(table)}
                      | {e.to_column for e in self._detail_edges(table)})

    def _detail_edges(self, table: TableKey) -> list[Any]:
        """Links from rows whose personal detail ``table``'s rows hold (a customer's
        address), when ``table`` has no owner of its own: a detail row is its referrers'
        owner's (shared when they are two people's)."""
        if self.graph.owner_edges(table):
            return []
        return [e for e in self.graph.in_edges(table, "detail") if e.origin != table]

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
        # (Only for the table's own rows: a row pointing at a detail row does not take
        # its owner from it.)
        for edge in self._detail_edges(table) if depth == 0 else []:
            mapping = self._map(edge.origin, edge.column, depth + 1)
            for i, r in enumerate(rows):
                v = r.get(edge.to_column)
                who = NOBODY if v is None else mapping.get(_text(v), NOBODY)
                if who is NOBODY:
                    continue
                result[i] = who if result[i] in (NOBODY, who) else SHARED
        return result

    def owner_codes(self, table: TableKey, data: pa.Table) -> np.ndarray:
        """``owners`` of a whole batch as codes (an index into ``known``, CODE_SHARED or
        CODE_NOBODY): the same decisions, taken by Arrow and numpy instead of per row."""
        n = data.num_rows
        if self.graph.is_person(table):
            col = person_key_column(self.inv, self.pool, table)
            if "," in col:
                rows = data.select(col.split(",")).to_pylist()
                return np.array([CODE_NOBODY if o is NOBODY else self.code_of(o)
                                 for o in self.owners(table, rows)], np.int64)
            encoded = pc.dictionary_encode(_texts(data.column(col)))
            codes = np.append(self.codes_of(table, encoded.dictionary.to_pylist()),
                              CODE_NOBODY)
            idx = encoded.indices.fill_null(len(codes) - 1).to_numpy(zero_copy_only=False)
            return codes[idx]
        result = np.full(n, CODE_NOBODY, np.int64)
        best = np.full(n, UNREACHABLE, np.int64)
        for edge in self.graph.owner_edges(table):
            hops = self.graph.distance(edge.target) + 1
            keys, codes = self._coded_map(edge.target, edge.to_column)
            ints = self._int_coded.get((edge.target, edge.to_column))
            dense = self._dense.get((edge.target, edge.to_column))
            column = data.column(edge.column).combine_chunks()
            as_int = _int64(column) if ints is not None else None
            if dense is not None and as_int is not None:
                low, by_offset = dense
                values, valid = as_int
                offset = values - low
                hit = valid & (offset >= 0) & (offset < len(by_offset))
                who = np.full(n, CODE_NOBODY, np.int64)
                who[hit] = by_offset[offset[hit]]
            elif ints is not None and as_int is not None:
                # Integers on both sides: str(a) == str(b) exactly when a == b.
                sorted_keys, int_codes = ints
                values, valid = as_int
                who = np.full(n, CODE_NOBODY, np.int64)
                if len(sorted_keys):
                    pos = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
                    hit = valid & (sorted_keys[pos] == values)
                    who[hit] = int_codes[pos[hit]]
            else:
                at = pc.index_in(_texts(column), value_set=keys)
                who = codes[at.fill_null(len(codes) - 1).to_numpy(zero_copy_only=False)]
            found = (who != CODE_NOBODY) & (hops <= best)
            take = found & ((hops < best) | (result == CODE_NOBODY))
            clash = found & ~take & (result != who)
            result[take], best[take] = who[take], hops
            result[clash] = CODE_SHARED
        for edge in self._detail_edges(table):
            keys, codes = self._coded_map(edge.origin, edge.column)
            at = pc.index_in(_texts(data.column(edge.to_column)), value_set=keys)
            who = codes[at.fill_null(len(codes) - 1).to_numpy(zero_copy_only=False)]
            found = who != CODE_NOBODY
            take = found & (result == CODE_NOBODY)
            clash = found & ~take & (result != who)
            result[take] = who[take]
            result[clash] = CODE_SHARED
        return result

    def _coded_map(self, table: TableKey, column: str) -> tuple[pa.Array, np.ndarray]:
        """``_map`` as Arrow keys and owner codes (the last code, CODE_NOBODY, for misses)."""
        found = self._coded.get((table, column))
        if found is None and self.graph.is_person(table) and \
                person_key_column(self.inv, self.pool, table) == column:
            # A person table referred to by its own key: each key value is its own owner.
            raw = [b.column(0) for b in self.pool.get(table[0]).stream_rows(table[1], [column])]
            values = pc.unique(pa.concat_arrays(raw)).drop_null() if raw else pa.array([])
            texts = _texts(values)
            codes = np.append(self.codes_of(table, texts.to_pylist()), CODE_NOBODY)
            found = self._coded[(table, column)] = (texts, codes)
            as_int = _int64(values)
            if as_int is not None:
                order = np.argsort(as_int[0], kind="stable")
                self._int_coded[(table, column)] = (as_int[0][order], codes[:-1][order])
                if len(order):
                    low, high = int(as_int[0].min()), int(as_int[0].max())
                    if high - low < 4 * len(order) + 1024:
                        by_offset = np.full(high - low + 1, CODE_NOBODY, np.int64)
                        by_offset[as_int[0] - low] = codes[:-1]
                        self._dense[(table, column)] = (low, by_offset)
        if found is None:
            mapping = self._map(table, column, 1)
            codes = np.array([CODE_SHARED if w is SHARED else self.code_of(w)
                              for w in mapping.values()] + [CODE_NOBODY], np.int64)
            found = self._coded[(table, column)] = (pa.array(list(mapping), pa.string()), codes)
        return found

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
