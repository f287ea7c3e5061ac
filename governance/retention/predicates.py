"""A table's retention rules compiled to SQL predicates the source evaluates.

Each rule becomes one ``WHERE`` clause over the table (aliased ``govkit_row``): the clock
before the cutoff, every keeping obligation of the table run out, the rule's exceptions
left out, rows of held persons and held time ranges left out (an anti-join with the held
subject keys, bound as one array parameter), and for anonymization, rows not yet
anonymized. Identifiers are quoted by the connector; every value is a bound parameter.
The clause text (placeholders only) is what the audit log records.
"""

# SQL here is built from identifiers quoted by the connector and placeholders; every value
# is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from governance.dsar.ownership import OwnershipGraph
from governance.errors import RetentionError
from governance.legal_holds import Hold
from governance.retention.conflicts import RuleOnTable, TableDecision
from governance.retention.policy import REDACTED, ColumnFacts, Estate

ALIAS = "govkit_row"
_INT_TYPES = ("INT", "SERIAL")


@dataclass
class Clause:
    """Part of a predicate: SQL text with placeholders and its bound values."""

    sql: str
    params: list[Any] = field(default_factory=list)

    def __and__(self, other: Clause) -> Clause:
        if not other.sql:
            return self
        if not self.sql:
            return other
        return Clause(f"{self.sql} AND {other.sql}", [*self.params, *other.params])


TRUE = Clause("")


class Dialect:
    """How one connector's SQL says the things predicates need."""

    def __init__(self, connector: Any, estate: Estate):
        self.conn = connector
        self.kind = "postgres" if connector.kind == "postgres" else \
            "sqlite" if connector.kind == "sqlite" else "duckdb"
        self.ph = connector.placeholder
        self.estate = estate

    def q(self, name: str) -> str:
        """A quoted identifier."""
        return self.conn._ident(name)

    def table(self, table: str) -> str:
        """The table's reference, checked against the catalogue."""
        return self.conn._table_ref(table)

    def facts(self, table: str, column: str) -> ColumnFacts:
        """The column as the catalogue has it."""
        return self.estate.columns.get((self.conn.name, table), {}).get(column) or \
            ColumnFacts("")

    def clock_expr(self, table: str, column: str, prefix: str = "") -> str:
        """The clock column as a comparable timestamp."""
        col = prefix + self.q(column)
        if self.kind == "sqlite":
            return f"datetime({col})"
        if self.facts(table, column).is_text:
            return f"TRY_CAST({col} AS TIMESTAMP)" if self.kind == "duckdb" \
                else f"CAST({col} AS timestamp)"
        return col

    def moment(self, table: str, column: str, at: datetime) -> Any:
        """``at`` as the value compared with the column (UTC; aware for zoned types)."""
        at = at.astimezone(UTC)
        if self.kind == "sqlite":
            return at.strftime("%Y-%m-%d %H:%M:%S")
        t = self.facts(table, column).type.upper()
        if "TIME ZONE" in t or "TIMESTAMPTZ" in t:
            return at
        return at.replace(tzinfo=None)

    def before(self, table: str, column: str, at: datetime, prefix: str = "") -> Clause:
        """Rows whose clock is before ``at``."""
        return Clause(f"{self.clock_expr(table, column, prefix)} < {self.ph}",
                      [self.moment(table, column, at)])

    def in_keys(self, table: str, column: str, keys: Sequence[str], prefix: str = ""
                ) -> Clause:
        """Rows whose ``column`` holds one of ``keys`` (one array parameter)."""
        col = prefix + self.q(column)
        ints = any(k in self.facts(table, column).type.upper() for k in _INT_TYPES) and \
            all(_is_int(k) for k in keys)
        if self.kind == "sqlite":
            return Clause(f"CAST({col} AS TEXT) IN (SELECT value FROM json_each({self.ph}))",
                          [json.dumps(sorted(keys))])
        if self.kind == "duckdb":
            if ints:
                return Clause(f"{col} IN (SELECT unnest(CAST({self.ph} AS BIGINT[])))",
                              [sorted(int(k) for k in keys)])
            return Clause(f"CAST({col} AS VARCHAR) IN (SELECT unnest(CAST({self.ph} AS "
                          "VARCHAR[])))", [sorted(keys)])
        if ints:
            return Clause(f"{col} IN (SELECT unnest(CAST({self.ph} AS bigint[])))",
                          [sorted(int(k) for k in keys)])
        return Clause(f"CAST({col} AS text) IN (SELECT unnest(CAST({self.ph} AS text[])))",
                      [sorted(keys)])

    def distinct_from(self, column: str, value: Any) -> Clause:
        """The column differs from ``value`` (NULL differs from a value)."""
        op = "IS NOT" if self.kind == "sqlite" else "IS DISTINCT FROM"
        return Clause(f"{self.q(column)} {op} {self.ph}", [value])


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def negate(c: Clause) -> Clause:
    """Rows for which ``c`` is not true (NULL counts as not true)."""
    return Clause(f"NOT COALESCE(({c.sql}), FALSE)", list(c.params))


class Compiler:
    """Compile the rules of one table of one source."""

    def __init__(self, dialect: Dialect, decision: TableDecision, now: datetime,
                 held_keys: Mapping[tuple[str, str], set[str]], graph: OwnershipGraph,
                 holds: Sequence[Hold]):
        self.d = dialect
        self.decision = decision
        self.now = now
        self.held_keys = held_keys
        self.graph = graph
        self.holds = holds

    @property
    def source(self) -> str:
        """The source compiled for."""
        return self.decision.source

    def cutoff(self, r: RuleOnTable) -> datetime:
        """Rows whose clock is before this are past ``r``'s period."""
        return r.rule.period.before(self.now)

    def obligations_over(self, r: RuleOnTable | None, table: str,
                         decision: TableDecision | None = None) -> Clause:
        """Every keeping obligation of the table (other than ``r``) has run out."""
        out = TRUE
        for o in (decision or self.decision).obligations:
            if r is not None and o.name == r.name:
                continue
            out = out & self.d.before(table, str(o.clock), self.cutoff(o))
        return out

    def exceptions(self, r: RuleOnTable) -> Clause:
        """The rule's exceptions left out."""
        out = TRUE
        for exc in r.rule.exceptions:
            text = self.d.facts(r.table, exc.column).is_text
            values = [str(v) if text else v for v in exc.values]
            marks = ", ".join([self.d.ph] * len(values))
            out = out & negate(Clause(f"{self.d.q(exc.column)} IN ({marks})", values))
        return out

    def not_done(self, r: RuleOnTable) -> Clause:
        """For anonymization: rows where some listed column is not anonymized yet."""
        if r.rule.action != "anonymize":
            return TRUE
        parts: list[Clause] = []
        for col, op in r.columns.items():
            parts.append(Clause(f"{self.d.q(col)} IS NOT NULL") if op == "null"
                         else self.d.distinct_from(col, REDACTED))
        return Clause("(" + " OR ".join(p.sql for p in parts) + ")",
                      [v for p in parts for v in p.params])

    def held(self, table: str, clock: str | None) -> Clause:
        """Rows some hold covers: persons held (through the ownership graph) or a time
        range of the clock. Empty when nothing is held."""
        parts: list[Clause] = []
        owned = self.owned_by_held(table)
        if owned is not None:
            parts.append(owned)
        for h in self.holds:
            if h.scope == "range" and h.covers_table(self.source, table) and clock:
                a, b = h.covers_from, h.covers_to
                expr = self.d.clock_expr(table, clock)
                parts.append(Clause(f"({expr} >= {self.d.ph} AND {expr} <= {self.d.ph})",
                                    [self.d.moment(table, clock, a),      # type: ignore[arg-type]
                                     self.d.moment(table, clock, b)]))   # type: ignore[arg-type]
        if not parts:
            return TRUE
        return Clause("(" + " OR ".join(p.sql for p in parts) + ")",
                      [v for p in parts for v in p.params])

    def owned_by_held(self, table: str, depth: int = 0) -> Clause | None:
        """Rows of ``table`` owned by a held person (None when no held person can own
        them). RetentionError when held persons' rows cannot be told apart here."""
        key = (self.source, table)
        if depth > 8:
            raise RetentionError(f"{self.source}.{table}: owner references too deep to leave "
                                 "held persons' rows out")
        if self.graph.is_person(key):
            decl = self.d.estate.inventory.source(self.source).table(table)
            keys = self.held_keys.get(key)
            if not keys or decl is None or not decl.subject_key:
                return None
            return self.d.in_keys(table, decl.subject_key, sorted(keys))
        parts: list[Clause] = []
        for e in self.graph.owner_edges(key):
            target_keys = self.held_keys.get(e.target)
            tdecl = None
            if self.graph.is_person(e.target):
                src = self.d.estate.inventory.source(e.to_source)
                tdecl = src.table(e.to_table)
            if tdecl is not None and tdecl.subject_key == e.to_column:
                if target_keys:
                    parts.append(self.d.in_keys(table, e.column, sorted(target_keys)))
                continue
            if not self._any_held_below(e.target):
                continue
            if e.to_source != self.source:
                raise RetentionError(
                    f"{self.source}.{table}: its owners are reached through "
                    f"{e.describe()} in another source; held persons' rows cannot be left out "
                    "by one query (declare a direct reference to the person table)")
            inner = self.owned_by_held(e.to_table, depth + 1)
            if inner is not None:
                parts.append(Clause(f"{self.d.q(e.column)} IN (SELECT {self.d.q(e.to_column)} "
                                    f"FROM {self.d.table(e.to_table)} WHERE {inner.sql})",
                                    inner.params))
        if not parts:
            return None
        return Clause("(" + " OR ".join(p.sql for p in parts) + ")",
                      [v for p in parts for v in p.params])

    def _any_held_below(self, target: tuple[str, str], seen: frozenset = frozenset()) -> bool:
        if target in seen:
            return False
        if self.graph.is_person(target):
            return bool(self.held_keys.get(target))
        return any(self._any_held_below(e.target, seen | {target})
                   for e in self.graph.owner_edges(target))

    def base(self, r: RuleOnTable) -> Clause:
        """Rows past ``r``'s period, every other keeping obligation run out, the rule's
        exceptions left out, not yet anonymized (holds not applied)."""
        return (self.d.before(r.table, str(r.clock), self.cutoff(r))
                & self.obligations_over(r, r.table) & self.exceptions(r) & self.not_done(r))

    def due(self, r: RuleOnTable) -> tuple[Clause, Clause]:
        """The predicate of rows ``r`` acts on now, and that of rows it would act on but
        a hold keeps."""
        base = self.base(r)
        held = self.held(r.table, r.clock)
        if not held.sql:
            return base, Clause("FALSE")
        return base & negate(held), base & held


def text_of(clause: Clause) -> str:
    """The clause as recorded: placeholders, never values."""
    return clause.sql
