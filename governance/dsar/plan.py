"""Plans of change for a located subject: what erasure or rectification will do, table by
table, before anything is done. A plan step holds personal data (its match values) and is
shown only through ``Step.describe()``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from governance.dsar.holds import LegalHold
from governance.dsar.identities import Identity
from governance.dsar.ownership import Edge
from governance.dsar.redaction import redact_identities
from governance.dsar.resolution import (
    FoundBy,
    Location,
    Relation,
    Resolution,
    _norm,
    coerce_values,
    file_sources,
    key_value,
    on_files,
)
from governance.errors import GovernanceError
from governance.inventory import ErasurePolicy, Inventory
from governance.sources import ColumnInfo, TableInfo
from governance.sources.base import ForeignKey
from governance.taxonomy import CATEGORIES

REDACTED = "[erased]"

# Shorthand field names for rectification, by the data category they correct.
FIELD_CATEGORIES = {
    "email": "contact.email",
    "phone": "contact.phone",
    "name": "identity.name",
    "address": "location.address",
    "date_of_birth": "identity.date_of_birth",
}


class PlanError(GovernanceError):
    """A plan cannot be made as the policy asks (e.g. a hash on a column not matched by)."""


class Action(StrEnum):
    """What a step does to the rows it matches."""

    DELETE = "delete"
    ANONYMIZE = "anonymize"   # keep the record, change the listed columns
    REDACT = "redact"         # rewrite free text without the subject's identities
    RECTIFY = "rectify"       # set corrected values
    HELD = "held"             # left untouched: a legal hold, or others refer to the rows
    DETACH = "detach"         # set a reference to an erased row to NULL or a placeholder
    DELETE_UNREFERENCED = "delete_unreferenced"  # a detail row, only if nobody refers to it


@dataclass
class Step:
    """One planned change to one table, matched through one column (or a key's columns,
    comma-separated)."""

    step_no: int
    source: str
    table: str
    found_by: str
    action: Action
    match_column: str
    values: list[Any]                                     # personal data
    changes: dict[str, Any] = field(default_factory=dict)  # column -> operator / new value;
    # for REDACT: old text -> new text; for DELETE_UNREFERENCED: {"guards": [[t, c, k]...]}
    planned_rows: int = 0
    status: str = "pending"                               # pending | done | held
    rows_affected: int | None = None
    note: str | None = None
    recorded_columns: list[str] | None = None             # as read back from the journal

    @property
    def columns(self) -> list[str]:
        """The columns the step changes."""
        if self.recorded_columns is not None:
            return list(self.recorded_columns)
        if self.action in (Action.REDACT, Action.DETACH):
            return [self.match_column]
        if self.action in (Action.ANONYMIZE, Action.RECTIFY):
            return sorted(c for c in self.changes if not c.startswith("_"))
        return []

    def referred(self) -> bool:
        """A HELD step that keeps rows because other rows refer to them (not a hold)."""
        return self.action is Action.HELD and (self.note or "").endswith(REFERRED)

    def describe(self) -> str:
        """One line for people; no value is shown."""
        what = {
            Action.DELETE: "delete rows",
            Action.ANONYMIZE: "anonymize " + ", ".join(
                f"{c}={self.changes[c]}" if c in self.changes else c for c in self.columns),
            Action.REDACT: f"redact the subject in {self.match_column}",
            Action.RECTIFY: "set " + ", ".join(self.columns),
            Action.HELD: f"keep ({self.note})" if self.referred()
                         else f"keep (legal hold: {self.note})",
            Action.DETACH: f"detach {self.match_column} ({self.note})",
            Action.DELETE_UNREFERENCED: "delete rows no other row refers to"
                                        + (f" ({self.note})" if self.note else ""),
        }[self.action]
        return (f"{self.step_no}. {self.source}.{self.table}: {self.planned_rows} row(s) "
                f"matched by {self.match_column} ({self.found_by}) -> {what}")

    def payload(self) -> dict[str, Any]:
        """The personal data of the step, for sealing in the journal."""
        return {"values": self.values, "changes": self.changes}


REFERRED = "kept: other rows refer to them"   # the end of such a HELD step's note
OWNED_BY = "_owned_by"    # in a DELETE or ANONYMIZE step's changes: see _Planner.owned_by


def row_digest(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """A digest of a row's values in ``columns`` as the driver returns them (an instant
    with a time zone as UTC, so that sessions in other zones agree)."""
    values = [v.astimezone(UTC) if isinstance(v, datetime) and v.tzinfo else v
              for v in (row.get(c) for c in columns)]
    return hashlib.sha256(repr(values).encode()).hexdigest()[:32]


_ORDER = {Action.REDACT: 0, Action.DETACH: 1, Action.RECTIFY: 2, Action.ANONYMIZE: 3,
          Action.DELETE: 3, Action.HELD: 3, Action.DELETE_UNREFERENCED: 4}


def _ordered(steps: list[tuple[int, bool, Step]],
             keys: Mapping[str, Sequence[ForeignKey]] | None = None) -> list[Step]:
    """Redactions and detachments first, then rows deepest in the ownership graph first,
    person tables after them, detail rows (addresses) last: no row is deleted while a row
    that stays, or is deleted later, still points at it. Among deletions, a table whose
    rows point at another's (a foreign key of ``keys``, by source, of any width) goes
    first, whatever their depths."""
    level = _pointer_levels([s for _, _, s in steps if s.action is Action.DELETE], keys or {})
    steps.sort(key=lambda t: (_ORDER[t[2].action],
                              level.get((t[2].source, t[2].table), 0)
                              if t[2].action is Action.DELETE else 0, -t[0], t[1]))
    out = []
    for n, (_, _, step) in enumerate(steps, 1):
        step.step_no = n
        out.append(step)
    return out


def _pointer_levels(deletions: Sequence[Step], keys: Mapping[str, Sequence[ForeignKey]]
                    ) -> dict[tuple[str, str], int]:
    """For each table deleted from: 0 when no other table deleted from points at it, else
    one more than the highest level of those that do. Keys that close a cycle between
    tables (orders -> customer and customer.last_order -> orders) give no order: those
    tables keep the ownership graph's order (deepest first, person tables last)."""
    tables = {(s.source, s.table) for s in deletions}
    pointed: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for source, declared in keys.items():
        for fk in declared:
            child, parent = (source, fk.table), (source, fk.ref_table)
            if child != parent and child in tables and parent in tables:
                pointed.setdefault(parent, set()).add(child)

    def reaches(start: tuple[str, str], goal: tuple[str, str]) -> bool:
        seen, todo = {start}, [start]
        while todo:
            for nxt in pointed.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    # child points at parent; drop it when parent also (through others) points at child.
    acyclic = {parent: {c for c in children if not reaches(c, parent)}
               for parent, children in pointed.items()}
    level: dict[tuple[str, str], int] = {}

    def level_of(table: tuple[str, str]) -> int:
        if table not in level:
            level[table] = 1 + max((level_of(c) for c in acyclic.get(table, ())), default=-1)
        return level[table]

    return {t: level_of(t) for t in tables}


_TEXT_TYPE = re.compile(r"char|text|string|clob|varchar|^any$|^$", re.IGNORECASE)


def _is_text(column: ColumnInfo) -> bool:
    return bool(_TEXT_TYPE.search(column.type or ""))


def _fits(value: Any, column: ColumnInfo) -> bool:
    """True when ``value`` can be written into ``column`` (type and NOT NULL)."""
    if value is None:
        return column.nullable
    if isinstance(value, int) and not isinstance(value, bool):
        return bool(re.search(r"int|num|dec|real|float|double|^any$", column.type, re.I)) \
            or _is_text(column)
    return _is_text(column)


class _Pointed(set[str]):
    """Ids of rows that staying rows point at, and how many rows point at them."""

    staying: int = 0


class _Planner:
    """Builds erasure steps for a resolution, collecting blockers instead of failing late."""

    def __init__(self, inventory: Inventory, resolution: Resolution, pool: Any,
                 table_holds: Mapping[tuple[str, str], LegalHold]):
        self.inv = inventory
        self.files = file_sources(inventory)
        self.res = resolution
        self.pool = pool
        self.holds = table_holds
        self.blockers = resolution.blockers
        self.steps: list[tuple[int, bool, Step]] = []
        self.by_role: set[tuple[str, str]] = set()   # tables stopped as tied by a role
        self._unfollowed: dict[str, list[ForeignKey]] = {}
        self.under: dict[tuple[str, str], tuple[set[str], str]] = {}

    def info(self, source: str, table: str) -> TableInfo | None:
        return self.res.catalogue.get(source, {}).get(table)

    def row_id(self, source: str, table: str, row: dict[str, Any]) -> str:
        info = self.info(source, table)
        cols = info.primary_key if info and info.primary_key else sorted(row)
        return repr(tuple(row.get(c) for c in cols))

    def validate_policy(self, source: str, table: str, policy: ErasurePolicy) -> None:
        info = self.info(source, table)
        if info is None:
            return
        for col, op in policy.columns.items():
            column = info.column(col)
            where = f"{source}.{table}: erasure.columns.{col}"
            if column is None:
                self.blockers.append(f"{where}: the table has no such column")
            elif op == "null" and not column.nullable:
                self.blockers.append(
                    f"{where}: null on a NOT NULL column; use another operator, detach it to a "
                    "placeholder row (on_erase: {set: KEY} on its reference), or delete the rows")
            elif op in ("hash", "redact") and not _is_text(column):
                self.blockers.append(
                    f"{where}: {op} writes text into a {column.type} column; use null (if the "
                    "column allows it) or delete the rows")

    def plan(self, identities: Sequence[Identity], exclusive: Sequence[Identity]) -> list[Step]:
        deleting: dict[tuple[str, str], set[str]] = {}   # rows removed, by row id
        kept_owned: dict[tuple[str, str], tuple[list[dict[str, Any]], set[str]]] = {}
        details = []
        self.check_inheriting()
        under = self.under = self.under_held_rows()
        for loc in self.res.locations:
            key = (loc.source, loc.table)
            decl = self.inv.source(loc.source).table(loc.table)
            hold = self.holds.get(key)
            person = bool(decl and decl.is_person)
            if hold is not None:
                self.steps.append((loc.depth, person, Step(
                    0, loc.source, loc.table, loc.found_by.value, Action.HELD,
                    loc.match_column, [], planned_rows=len(loc.rows), status="held",
                    note=hold.reason)))
                if loc.relation is Relation.OWNED:
                    kept_owned[key] = (loc.rows, set())
                continue
            if key in under and loc.relation is Relation.OWNED:
                ids, why = under[key]
                kept = [r for r in loc.rows if self.row_id(*key, r) in ids]
                self.steps.append((loc.depth, person, Step(
                    0, loc.source, loc.table, loc.found_by.value, Action.HELD,
                    loc.match_column, [], planned_rows=len(kept), status="held",
                    note=why)))
                rest = [r for r in loc.rows if self.row_id(*key, r) not in ids]
                kept_owned[key] = (kept, set())
                if not rest:
                    continue
                loc = replace(loc, rows=rest,
                              values=[key_value(r, loc.match_column) for r in rest])
            roles = self.res.graph.role_owner_edges(key) \
                if self.res.graph is not None and loc.relation is Relation.OWNED \
                and not person else []
            if roles:
                self.by_role.add(key)
                self.blockers.append(
                    f"{len(loc.rows)} row(s) of {loc.source}.{loc.table} are taken as the "
                    f"subject's through {roles[0].describe()}, a column named for a role "
                    "(a store's manager, the staff member who served): they may be the "
                    "business's records, not the person's. Say so in the inventory: `kind: "
                    "owner` on that reference if they are the person's (they are then "
                    "erased), or `kind: reference` with on_erase")
                continue
            if loc.relation is Relation.MENTION:
                scope = identities if loc.via == "all" else exclusive
                redacted = {text: redact_identities(text, scope) for text in loc.values}
                redacted = {old: new for old, new in redacted.items() if new != old}
                if redacted:
                    self.steps.append((loc.depth, False, Step(
                        0, loc.source, loc.table, loc.found_by.value, Action.REDACT,
                        loc.match_column, list(redacted), redacted, len(redacted))))
                continue
            if loc.relation is Relation.DETAIL:
                details.append(loc)
                continue
            policy = decl.erasure if decl is not None else ErasurePolicy()
            if policy.action == "anonymize":
                self.validate_policy(loc.source, loc.table, policy)
                nulled = {c for c, op in policy.columns.items() if op == "null"}
                if key in kept_owned:    # with rows kept whole under a hold: none nulled
                    kept_owned[key] = (kept_owned[key][0] + loc.rows, set())
                else:
                    kept_owned[key] = (loc.rows, nulled)
                changes: dict[str, Any] = dict(policy.columns)
                changes.update(self.owned_by(loc))
                hashed = [c for c, op in policy.columns.items() if op == "hash"]
                if hashed:
                    changes["_hash_inputs"] = {c: [[key_value(r, loc.match_column), r.get(c)]
                                                   for r in loc.rows] for c in hashed}
                self.steps.append((loc.depth, person, Step(
                    0, loc.source, loc.table, loc.found_by.value, Action.ANONYMIZE,
                    loc.match_column, list(loc.values), changes, len(loc.rows),
                    note=policy.basis)))
            else:
                deleting[key] = {self.row_id(loc.source, loc.table, r) for r in loc.rows}
                self.steps.append((loc.depth, person, Step(
                    0, loc.source, loc.table, loc.found_by.value, Action.DELETE,
                    loc.match_column, list(loc.values), self.owned_by(loc),
                    planned_rows=len(loc.rows))))
        for loc in details:
            self.plan_detail(loc, deleting, kept_owned)
        # Rows a hold keeps first: references to them then need no detaching.
        self.keep_under_holds(deleting)
        for loc in self.res.locations:
            key = (loc.source, loc.table)
            if key in deleting and loc.relation is not Relation.MENTION:
                self.check_referrers(loc, deleting, kept_owned)
        sources = {s.source for _, _, s in self.steps if s.action is Action.DELETE}
        keys = {src: self.pool.get(src).known_keys() for src in sources}
        ordered = _ordered(self.steps, keys)
        if self.clear_pointers_back(ordered, keys):
            ordered = _ordered(self.steps, keys)
        self.check_duckdb_updates(ordered)
        return ordered

    def check_duckdb_updates(self, steps: Sequence[Step]) -> None:
        """A blocker for a step that would change, on DuckDB, a key or indexed column of
        rows other rows point at through a declared foreign key: DuckDB rewrites such a row
        as a delete and an insert and refuses it, so the run would stop there for good,
        its earlier steps done."""
        for step in steps:
            conn = self.pool.get(step.source)
            if conn.kind != "duckdb" or not step.values or step.action not in (
                    Action.DETACH, Action.RECTIFY, Action.ANONYMIZE):
                continue
            keys = conn.known_keys()
            info = self.info(step.source, step.table)
            indexed = set(info.primary_key if info else ()) | {
                c for fk in keys if fk.table == step.table for c in fk.column.split(",")}
            touched = sorted(set(step.columns) & indexed)
            pointing = [fk for fk in keys if fk.ref_table == step.table
                        and "," not in fk.column and fk.schema is None]
            if not touched or not pointing:
                continue
            rows = conn.find_rows(step.table, step.match_column, step.values)
            referred = sum(len(conn.find_rows(fk.table, fk.column, values))
                           for fk in pointing
                           if (values := [r[fk.ref_column] for r in rows
                                          if r.get(fk.ref_column) is not None]))
            if referred:
                self.blockers.append(
                    f"{step.source}.{step.table}: the erasure would change {', '.join(touched)} "
                    f"of rows that {referred} row(s) of other tables point at through a "
                    "foreign key; DuckDB refuses that change (it rewrites a row whose key or "
                    "indexed column changes as a delete and an insert), so the run would "
                    "stop there with its earlier steps done. Drop the foreign key "
                    f"{', '.join(sorted({f'{fk.table}({fk.column})' for fk in pointing}))} "
                    "in the database (the inventory's references keep the link known to "
                    "govkit), then run the request again")

    def clear_pointers_back(self, ordered: Sequence[Step],
                            keys: Mapping[str, Sequence[ForeignKey]]) -> bool:
        """Keys that close a cycle between tables deleted from (an order's customer_id, the
        customer's last_order_id) give no order: the rows deleted later would still point
        at rows deleted before them, which a key checked at once refuses. Such a pointer in
        the subject's own rows is set to NULL first (a step of its own); one that cannot be
        NULL stops the plan. True when steps were added."""
        at: dict[tuple[str, str], int] = {}
        by_table: dict[tuple[str, str], list[Step]] = {}
        for n, step in enumerate(ordered):
            if step.action is Action.DELETE and step.values:
                at.setdefault((step.source, step.table), n)
                by_table.setdefault((step.source, step.table), []).append(step)
        added = False
        for source, declared in keys.items():
            for fk in declared:
                child, parent = (source, fk.table), (source, fk.ref_table)
                if fk.schema or "," in fk.column or child == parent or \
                        child not in at or parent not in at or at[parent] > at[child]:
                    continue
                column = self.info(*child).column(fk.column)  # type: ignore[union-attr]
                if column is None or not column.nullable:
                    self.blockers.append(
                        f"{source}.{fk.table}.{fk.column} points at {fk.ref_table} rows this "
                        f"erasure deletes first, while {fk.ref_table} rows point back at "
                        f"{fk.table}: the two keys close a cycle and {fk.column} cannot be "
                        "NULL, so no order of deletes satisfies both. Make one key DEFERRABLE "
                        "or ON DELETE SET NULL, or erase these rows by hand")
                    continue
                for step in by_table[child]:
                    self.steps.append((0, False, Step(
                        0, source, fk.table, step.found_by, Action.RECTIFY, step.match_column,
                        list(step.values), {fk.column: None}, step.planned_rows,
                        note=f"cleared first: it points at {fk.ref_table} rows deleted "
                             "before these")))
                    added = True
        return added

    def check_inheriting(self) -> None:
        """Tables that inherit from a table the subject's rows are in (PostgreSQL
        ``INHERITS``), when the inventory does not declare them, stop the plan: govkit reads
        and changes a table's own rows only (``ONLY``), so the subject's rows there would be
        neither found nor erased."""
        for source, table in dict.fromkeys((loc.source, loc.table)
                                           for loc in self.res.locations):
            conn = self.pool.get(source)
            missing = [t for t in conn.inheriting(table)
                       if "." in t or self.inv.source(source).table(t) is None]
            if missing:
                self.blockers.append(
                    f"{source}.{table} has tables that inherit from it ({', '.join(missing)}) "
                    "that the inventory does not declare: govkit reads and changes each "
                    "table's own rows, so the subject's rows there would be neither found nor "
                    f"erased. Declare them in the inventory (with {table}'s references)")

    def owned_by(self, loc: Location) -> dict[str, Any]:
        """What a run checks before it deletes or anonymizes ``loc``'s rows: digests of
        each row's match columns and of each of its owner columns (those leading to a
        person; a person's own row: its personal columns) as the plan reads them, and the
        same of the rows they lead to, up to the person (see ``owning_rows``), so that a row
        given to someone else since, or a row matched that the plan did not see, stops the
        run (see ``journal.check_owned``). Rows of others that the match would pick too
        (a key that is not unique) are a blocker."""
        conn = self.pool.get(loc.source)
        if not loc.values:
            return {}
        match = loc.match_column.split(",")
        rows = conn.find_rows(loc.table, loc.match_column, list(loc.values))
        self.ambiguous(loc.source, loc.table, loc.match_column, rows, loc.rows)
        owners = self.digested((loc.source, loc.table), match)
        graph = self.res.graph
        assert graph is not None
        spec: dict[str, Any] = {"columns": owners, "rows": sorted(
            [row_digest(r, match), [row_digest(r, [c]) for c in owners]] for r in rows),
            "person": graph.is_person((loc.source, loc.table))}
        parents = self.owning_rows(loc.source, loc.table, rows)
        if parents:
            spec["parents"] = parents
        return {OWNED_BY: spec}

    def digested(self, table: tuple[str, str], key: Sequence[str]) -> list[str]:
        """The columns of ``table``'s rows whose values a run compares with the plan's:
        its owner columns, or a person table's personal columns (those with a category:
        who the row is; the row a key names may be another person's since, while a login
        time may change), ``key`` left out."""
        graph = self.res.graph
        assert graph is not None
        if graph.is_person(table):
            cols = {c for (src, tab, c), cats in self.res.categories.items()
                    if (src, tab) == table and cats}
        else:
            cols = {e.column for e in graph.owner_edges(table)}
        return sorted(cols - set(key))

    def ambiguous(self, source: str, table: str, column: str, found: Sequence[dict[str, Any]],
                  subjects: Sequence[dict[str, Any]]) -> None:
        """A blocker when rows that are not among ``subjects`` (the subject's rows of the
        table) hold a value of ``column`` that one of the subject's rows holds too: the
        value does not tell them apart, so a change would reach another person's rows."""
        theirs = {row_digest(r, sorted(r)) for r in subjects}
        cols = column.split(",")
        mine = {row_digest(r, cols) for r in found if row_digest(r, sorted(r)) in theirs}
        others = [r for r in found if row_digest(r, sorted(r)) not in theirs
                  and row_digest(r, cols) in mine]
        why = (f"{source}.{table}: {len(others)} row(s) that are not the subject's have the "
               f"same {column} as the subject's rows, so {column} does not pick the "
               "subject's rows alone (a key that is not unique); nothing can be changed there "
               f"safely. Make {column} unique, or give the table a primary key")
        if others and why not in self.blockers:
            self.blockers.append(why)

    def owning_rows(self, source: str, table: str, rows: Sequence[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
        """The rows ``rows`` belong to, up to the person: for each owner reference (within
        the source), the referred rows' key values as the plan saw them and digests of
        their ``digested`` columns, then the same of theirs.
        A run finding one of them given to another person since stops: the rows below
        would be that person's now (an invoice given to another customer: its lines)."""
        graph = self.res.graph
        assert graph is not None
        out: list[dict[str, Any]] = []
        level = [((source, table), list(rows))]
        # Every owner reference, each once (a row's nearest owner may be empty, and two
        # references may lead to the same table).
        seen: set[tuple[str, str, str]] = set()
        while level:
            nxt = []
            for here, below in level:
                if graph.is_person(here):
                    continue
                for edge in graph.owner_edges(here):
                    parent = (edge.to_source, edge.to_table)
                    if edge.to_source != source or (*here, edge.column) in seen:
                        continue
                    seen.add((*here, edge.column))
                    values = list({repr(v): v for r in below
                                   if (v := r.get(edge.column)) is not None}.values())
                    if not values:
                        continue
                    found = self.pool.get(source).find_rows(edge.to_table, edge.to_column,
                                                            values)
                    mine = [r for loc in self.res.locations
                            if (loc.source, loc.table) == parent
                            and loc.relation is Relation.OWNED for r in loc.rows]
                    if mine:
                        self.ambiguous(source, edge.to_table, edge.to_column, found, mine)
                    owners = self.digested(parent, [edge.to_column])
                    out.append({"table": edge.to_table, "column": edge.to_column,
                                "values": values, "columns": owners,
                                "person": graph.is_person(parent), "rows": sorted(
                                    [row_digest(r, [edge.to_column]),
                                     [row_digest(r, [c]) for c in owners]] for r in found)})
                    if mine:    # (others' rows stop the plan above: not followed further)
                        theirs = {row_digest(r, sorted(r)) for r in mine}
                        found = [r for r in found if row_digest(r, sorted(r)) in theirs]
                    nxt.append((parent, found))
            level = nxt
        return out

    def referrers(self, edge: Edge, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows of the edge's referring table pointing at ``rows``."""
        info = self.info(*edge.origin)
        if info is None or edge.column not in info.column_names:
            return []
        values = coerce_values([r.get(edge.to_column) for r in rows],
                               info.column(edge.column).type)  # type: ignore[union-attr]
        if not values:
            return []
        return self.pool.get(edge.source).find_rows(edge.table, edge.column, values)

    def unfollowed_referrers(self, loc: Location, rows: Sequence[dict[str, Any]],
                             deleting: Mapping[tuple[str, str], set[str]]
                             ) -> dict[ForeignKey, _Pointed]:
        """For each foreign key ownership does not follow that points at ``loc``'s table
        (a composite key of the source, or a key of a table outside it): the ids of
        ``rows`` that rows staying after the erasure point at (keys with none left out).
        The rows are found by the database's own equality, as the key compares them."""
        if not rows:
            return {}
        conn = self.pool.get(loc.source)
        values = [key_value(r, loc.match_column) for r in rows]
        out: dict[ForeignKey, _Pointed] = {}
        for fk in self.unfollowed_keys(loc.source):
            if fk.ref_table != loc.table:
                continue
            found = conn.rows_pointing_at(fk, loc.match_column, values)
            if fk.schema is None:      # (outside the source nothing is ever deleted)
                gone = deleting.get((loc.source, fk.table), set())
                found = [(k, x) for k, x in found
                         if self.row_id(loc.source, fk.table, x) not in gone]
            if not found:
                continue
            hit = {repr(k) for k, _ in found}
            pointed = _Pointed(self.row_id(loc.source, loc.table, r) for r in rows
                               if repr(key_value(r, loc.match_column)) in hit)
            if not pointed:   # values that do not map back: every row counts as pointed at
                pointed = _Pointed(self.row_id(loc.source, loc.table, r) for r in rows)
            pointed.staying = len(found)
            out[fk] = pointed
        return out

    def unfollowed_keys(self, source: str) -> list[ForeignKey]:
        """The source's composite foreign keys, then the keys of tables outside it that
        point into it (read once per plan)."""
        keys = self._unfollowed.get(source)
        if keys is None:
            conn = self.pool.get(source)
            keys = self._unfollowed[source] = [*conn.known_composite_keys(),
                                               *conn.foreign_keys_from_elsewhere()]
        return keys

    def _staying(self, edge: Edge, refs: list[dict[str, Any]],
                 deleting: Mapping[tuple[str, str], set[str]],
                 kept_owned: Mapping[tuple[str, str], tuple[list[dict[str, Any]], set[str]]]
                 ) -> list[dict[str, Any]]:
        """Referring rows that stay pointing at the erased rows after the erasure."""
        gone = deleting.get(edge.origin, set())
        nulled = kept_owned.get(edge.origin, ([], set()))[1]
        if edge.column in nulled:
            owned = {self.row_id(*edge.origin, r) for r in kept_owned[edge.origin][0]}
            gone = gone | owned
        return [r for r in refs if self.row_id(*edge.origin, r) not in gone]

    def plan_detail(self, loc: Location, deleting: dict[tuple[str, str], set[str]],
                    kept_owned: Mapping[tuple[str, str], tuple[list[dict[str, Any]], set[str]]]
                    ) -> None:
        graph = self.res.graph
        assert graph is not None
        key = (loc.source, loc.table)
        info = self.info(*key)
        shared: set[str] = set()
        guards = []
        for edge in graph.in_edges(key):
            refs = self._staying(edge, self.referrers(edge, loc.rows), deleting, kept_owned)
            files = on_files(edge, self.files)
            for r in refs:
                shared.add(_norm(r.get(edge.column), files))
            if edge.source == loc.source:
                guards.append([edge.table, edge.column, edge.to_column])
        # Rows pointing through keys not followed are checked again as the rows are
        # deleted (a table outside the source named with its schema).
        guards += [[fk.table, fk.column, fk.ref_column, *([fk.schema] if fk.schema else [])]
                   for fk in self.unfollowed_keys(loc.source) if fk.ref_table == loc.table]
        mine = [(v, r) for v, r in zip(loc.values, loc.rows, strict=True)
                if not any(_norm(r.get(e.to_column), on_files(e, self.files)) in shared
                           for e in graph.in_edges(key))]
        pointed = {rid for ids in self.unfollowed_referrers(
            loc, [r for _, r in mine], deleting).values() for rid in ids}
        mine = [(v, r) for v, r in mine if self.row_id(*key, r) not in pointed]
        kept = len(loc.rows) - len(mine)
        note = f"{kept} {REFERRED}" if kept else None
        if not mine or info is None or not info.changeable:
            if kept:
                self.steps.append((-1, False, Step(
                    0, loc.source, loc.table, loc.found_by.value, Action.HELD,
                    loc.match_column, [], planned_rows=kept, status="held", note=note)))
            return
        deleting[key] = {self.row_id(loc.source, loc.table, r) for _, r in mine}
        self.steps.append((-1, False, Step(
            0, loc.source, loc.table, loc.found_by.value, Action.DELETE_UNREFERENCED,
            loc.match_column, [v for v, _ in mine], {"guards": guards}, len(mine), note=note)))

    def keep_pointed(self, loc: Location, edge: Edge, staying: Sequence[dict[str, Any]],
                     deleting: dict[tuple[str, str], set[str]], held: str
                     ) -> list[dict[str, Any]]:
        """Take the rows of ``loc`` that ``staying`` rows point at through ``edge`` out of
        its deletion, keep them (``held``: why the pointing rows stay, for the note), and
        return them."""
        files = on_files(edge, self.files)
        targets = {_norm(r.get(edge.column), files) for r in staying}
        rows = [r for r in loc.rows if _norm(r.get(edge.to_column), files) in targets]
        return self.keep_rows(loc, rows, deleting, f"rows of {edge.table} ({held}) point at "
                              f"them through the key {edge.table}({edge.column})")

    def keep_rows(self, loc: Location, rows: Sequence[dict[str, Any]],
                  deleting: dict[tuple[str, str], set[str]], why: str
                  ) -> list[dict[str, Any]]:
        """Take ``rows`` of ``loc`` out of its deletion and keep them, saying ``why``;
        return those that were to be deleted."""
        key = (loc.source, loc.table)
        kept = {self.row_id(*key, r) for r in rows} & deleting.get(key, set())
        if not kept:
            return []
        deleting[key] -= kept
        for _, _, step in self.steps:
            if step.action is Action.DELETE and (step.source, step.table) == key and \
                    (step.match_column, step.found_by) == (loc.match_column, loc.found_by.value):
                step.values = [v for v, r in zip(loc.values, loc.rows, strict=True)
                               if self.row_id(*key, r) in deleting[key]]
                step.planned_rows = len(step.values)
        self.steps = [t for t in self.steps if not (
            t[2].action is Action.DELETE and (t[2].source, t[2].table) == key
            and not t[2].values)]
        self.steps.append((-1, False, Step(
            0, loc.source, loc.table, loc.found_by.value, Action.HELD, loc.match_column, [],
            planned_rows=len(kept), status="held", note=f"{len(kept)} row(s): {why}; {REFERRED}")))
        return [r for r in loc.rows if self.row_id(*key, r) in kept]

    def held_pointing(self, loc: Location, deleting: dict[tuple[str, str], set[str]]
                      ) -> list[dict[str, Any]]:
        """Keep the rows of ``loc`` that rows of a held table point at through a key
        ownership does not follow (TPC-DS's held returns -> the sales they return)."""
        key = (loc.source, loc.table)
        out: list[dict[str, Any]] = []
        for fk in self.unfollowed_keys(loc.source):
            hold = self.holds.get((loc.source, fk.table))
            rows = [r for r in loc.rows if self.row_id(*key, r) in deleting.get(key, set())]
            if fk.ref_table != loc.table or fk.schema is not None or hold is None or not rows:
                continue
            found = self.pool.get(loc.source).rows_pointing_at(
                fk, loc.match_column, [key_value(r, loc.match_column) for r in rows])
            hit = {repr(k) for k, _ in found}
            pointed = [r for r in rows if repr(key_value(r, loc.match_column)) in hit]
            if found and not pointed:   # values that do not map back: keep them all
                pointed = rows
            out += self.keep_rows(loc, pointed, deleting,
                                  f"rows of {fk.table} (under a legal hold on {fk.table}) "
                                  f"point at them through the key {fk.table}({fk.column})")
        return out

    def under_held_rows(self) -> dict[tuple[str, str], tuple[set[str], str]]:
        """The subject's rows owned through rows a legal hold keeps (a held order's lines),
        by table: their row ids and why they are kept. Neither deleted nor anonymized: they
        are part of the held record."""
        graph = self.res.graph
        assert graph is not None
        kept: dict[tuple[str, str], list[dict[str, Any]]] = {
            (loc.source, loc.table): loc.rows for loc in self.res.locations
            if (loc.source, loc.table) in self.holds and loc.relation is Relation.OWNED}
        out: dict[tuple[str, str], tuple[set[str], str]] = {}
        owned = sorted((loc for loc in self.res.locations if loc.relation is Relation.OWNED
                        and (loc.source, loc.table) not in self.holds),
                       key=lambda loc: loc.depth)
        for loc in owned:
            key = (loc.source, loc.table)
            for edge in graph.out_edges(key, "owner"):
                parents = kept.get(edge.target)
                if not parents:
                    continue
                files = on_files(edge, self.files)
                targets = {_norm(p.get(edge.to_column), files) for p in parents}
                rows = [r for r in loc.rows if _norm(r.get(edge.column), files) in targets]
                if not rows:
                    continue
                ids = {self.row_id(*key, r) for r in rows}
                held = out.get(key, (set(), ""))[0] | ids
                hold = self.holds.get(edge.target)
                why = (f"{len(held)} row(s) belonging to rows of {edge.to_table} that a legal "
                       "hold keeps"
                       + (f" ({hold.reason})" if hold is not None else ""))
                out[key] = (held, why)
                kept[key] = [r for r in loc.rows if self.row_id(*key, r) in held]
        return out

    def keep_under_holds(self, deleting: dict[tuple[str, str], set[str]]) -> None:
        """Rows of a held table, and rows kept for them, keep the rows they point at (with
        a key the database declares, deleting those would fail or cascade into the kept
        rows; with a reference the inventory declares, the kept rows would point at
        nothing): from held tickets to the user row, from held messages to their tickets
        and on to the user row."""
        graph = self.res.graph
        assert graph is not None
        kept: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # The subject's rows kept with held rows (a held order's lines) keep what they point
        # at too (the shipments those lines were sent in).
        for loc in self.res.locations:
            ids = self.under.get((loc.source, loc.table), (set(), ""))[0]
            if ids and loc.relation is Relation.OWNED:
                kept.setdefault((loc.source, loc.table), []).extend(
                    r for r in loc.rows if self.row_id(loc.source, loc.table, r) in ids)
        changed = True
        while changed:
            changed = False
            for loc in self.res.locations:
                key = (loc.source, loc.table)
                if loc.relation is Relation.MENTION or not deleting.get(key):
                    continue
                got = self.held_pointing(loc, deleting)
                if got:
                    kept.setdefault(key, []).extend(got)
                    changed = True
                for edge in graph.in_edges(key):
                    hold = self.holds.get(edge.origin)
                    if hold is None and edge.origin not in kept:
                        continue
                    rows = [r for r in loc.rows
                            if self.row_id(*key, r) in deleting.get(key, set())]
                    staying = self.referrers(edge, rows) if hold is not None \
                        else kept[edge.origin]
                    got = self.keep_pointed(loc, edge, staying, deleting,
                                            f"under a legal hold on {edge.table}"
                                            if hold is not None else "kept for a legal hold")
                    if got:
                        kept.setdefault(key, []).extend(got)
                        changed = True

    def check_referrers(self, loc: Location, deleting: dict[tuple[str, str], set[str]],
                        kept_owned: Mapping[tuple[str, str], tuple[list[dict[str, Any]], set[str]]]
                        ) -> None:
        """Rows that stay and point at rows this erasure removes: detached when their
        reference says so, otherwise the plan is refused with the reason."""
        graph = self.res.graph
        assert graph is not None
        key = (loc.source, loc.table)
        rows = [r for r in loc.rows if self.row_id(*key, r) in deleting.get(key, set())]
        if not rows:
            return
        if loc.relation is not Relation.DETAIL:   # (detail rows pointed at are kept)
            for fk, pointed in self.unfollowed_referrers(loc, rows, deleting).items():
                cols, refs = fk.column.split(","), fk.ref_column.split(",")
                where = (f"{loc.source}.{fk.table}" if fk.schema is None
                         else f"{fk.schema}.{fk.table}, outside this source,")
                kind = "composite foreign key" if len(cols) > 1 else "foreign key"
                why = ("govkit does not follow composite keys" if fk.schema is None
                       else "govkit cannot change rows outside the source")
                self.blockers.append(
                    f"{len(pointed)} row(s) of {loc.source}.{loc.table} that erasure would "
                    f"delete are pointed at by {pointed.staying} row(s) of {where} that stay, "
                    f"through the {kind} {fk.table} ({', '.join(cols)}) -> {fk.ref_table} "
                    f"({', '.join(refs)}); {why}, and deleting would break those rows (or "
                    "the database would cascade to them). Erase or change those "
                    f"{fk.table} rows first, or keep the subject's {loc.table} rows")
        for edge in graph.in_edges(key):
            if loc.relation is Relation.DETAIL:
                continue  # detail rows are deleted only when nothing refers to them
            staying = self._staying(edge, self.referrers(edge, rows), deleting, kept_owned)
            # Rows kept with held rows are kept as they are, like a held table's.
            under = self.under.get(edge.origin, (set(), ""))[0]
            staying = [r for r in staying if self.row_id(*edge.origin, r) not in under]
            if not staying:
                continue
            where = f"{edge.source}.{edge.table}.{edge.column}"
            held = self.holds.get(edge.origin)
            if held is not None:
                continue  # a held table is kept as it is (see keep_under_holds)
            if edge.on_erase == "refuse" and edge.kind == "owner" and \
                    edge.origin in self.by_role:
                continue    # said already: its rows are tied to the subject by a role
            if edge.on_erase == "refuse" and edge.kind == "owner":
                # Rows an owner reference ties to the subject that resolution did not find
                # to be the subject's alone.
                people = [e for e in graph.owner_edges(edge.origin)
                          if graph.is_person(e.target)]
                if len(people) > 1 and any(e.inferred for e in people):
                    named = ", ".join(e.column for e in people)
                    self.blockers.append(
                        f"{len(staying)} row(s) of {edge.source}.{edge.table} point at the "
                        f"subject's {loc.table} rows through {where}, but the table has "
                        f"{len(people)} references to people ({named}) whose kind was "
                        "inferred, so each row belongs to two people and is never changed. "
                        "Say in the inventory which one makes the row someone's (kind: "
                        "owner) and what the other is (kind: reference, with on_erase); "
                        "`govkit inventory` lists them")
                    continue
                self.blockers.append(
                    f"{len(staying)} row(s) of {edge.source}.{edge.table} point at the "
                    f"subject's {loc.table} rows through {where}, an owner reference, but are "
                    "not the subject's alone: they also lead to another person (another "
                    "customer's payment for the subject's rental, a value two rows hold), "
                    "their key values are written differently from the subject's (1.0 "
                    "against 1, text against a number), or they were written after the "
                    "subject's rows were searched (an order placed meanwhile). Erasing would "
                    "break or change them: erase or change those rows first (if only their "
                    "form differs, correct it; if they are new, wait until none is being "
                    "added), then run the request again")
                continue
            if edge.on_erase == "refuse":
                self.blockers.append(
                    f"{len(staying)} row(s) of {edge.source}.{edge.table} that are not the "
                    f"subject's point at the subject's {loc.table} rows through {where}; erasing "
                    "would break or change them. Declare on that reference `kind: owner` if the "
                    "rows are the subject's, or `on_erase: detach` / `on_erase: {set: KEY}`")
                continue
            column = self.info(*edge.origin).column(edge.column)  # type: ignore[union-attr]
            value = None if edge.on_erase == "detach" else edge.placeholder
            if column is None or not _fits(value, column):
                self.blockers.append(
                    f"{where}: on_erase {edge.on_erase} cannot write "
                    f"{'NULL' if value is None else 'the placeholder'} into this "
                    f"{'NOT NULL ' if column is not None and not column.nullable else ''}"
                    "column; declare on_erase: {set: KEY} with a placeholder row's key")
                continue
            values = list(dict.fromkeys(r.get(edge.column) for r in staying))
            self.steps.append((graph.distance(edge.origin) + 1, False, Step(
                0, edge.source, edge.table, "reference", Action.DETACH, edge.column, values,
                {edge.column: value}, len(staying),
                note=f"points at erased {loc.table} rows; set to "
                     f"{'NULL' if value is None else 'the placeholder'}")))


def not_followed(inventory: Inventory, resolution: Resolution, pool: Any) -> dict[str, str]:
    """Rows that point at the subject's own rows through a foreign key ownership does not
    follow (a composite key, a table in another schema), and are not among the subject's
    rows found: what an access export may be missing, by place (counts, never values)."""
    planner = _Planner(inventory, resolution, pool, {})
    found = {(loc.source, loc.table): {planner.row_id(loc.source, loc.table, r)
                                       for r in loc.rows}
             for loc in resolution.locations if loc.relation is Relation.OWNED}
    out: dict[str, str] = {}
    for loc in resolution.locations:
        if loc.relation is not Relation.OWNED:
            continue
        for fk, pointed in planner.unfollowed_referrers(loc, loc.rows, found).items():
            where = (f"{loc.source}.{fk.table}" if fk.schema is None
                     else f"{fk.schema}.{fk.table} (outside the source)")
            cols = fk.column.replace(",", ", ")
            out[where] = (f"{pointed.staying} row(s) point at {len(pointed)} of the subject's "
                          f"{loc.table} rows through the foreign key ({cols}) that "
                          "ownership does not follow; they are not in the export (review "
                          "them)")
    return out


def plan_erasure(inventory: Inventory, resolution: Resolution,
                 identities: Sequence[Identity],
                 table_holds: Mapping[tuple[str, str], LegalHold],
                 pool: Any = None, exclusive: Sequence[Identity] | None = None) -> list[Step]:
    """The steps that erase exactly the located subject, following each table's erasure
    policy and the ownership graph. What stops the plan (a reference that would break, a
    policy that cannot be applied) is appended to ``resolution.blockers``: a run refuses to
    start while there is any."""
    if pool is None:
        raise PlanError("planning an erasure needs the open sources (pool)")
    planner = _Planner(inventory, resolution, pool, table_holds)
    return planner.plan(identities, identities if exclusive is None else exclusive)


def split_corrections(corrections: Mapping[str, str]
                      ) -> tuple[dict[str, str], dict[tuple[str, str, str], str]]:
    """Corrections keyed by data category (``phone`` -> ``contact.phone``), and those
    that name one column (``source.table.column``)."""
    by_category: dict[str, str] = {}
    by_column: dict[tuple[str, str, str], str] = {}
    for name, value in corrections.items():
        parts = name.split(".")
        if len(parts) == 3 and all(parts):
            by_column[(parts[0], parts[1], parts[2])] = value
            continue
        category = FIELD_CATEGORIES.get(name, name)
        if category not in CATEGORIES:
            raise PlanError(f"cannot rectify {name!r}: name a field "
                            f"({', '.join(FIELD_CATEGORIES)}), a data category, or one "
                            "column as source.table.column")
        check_corrected_value(name, category, value)
        by_category[category] = value
    return by_category, by_column


def check_corrected_value(name: str, category: str, value: str) -> None:
    """PlanError unless ``value`` is a valid value of its kind where the kind has a rule
    (a phone number, an e-mail address): a rectification never writes ``abc`` into a
    phone column."""
    if category == "contact.phone":
        digits = sum(ch.isdigit() for ch in value)
        if not _PHONE_TEXT.fullmatch(value.strip()) or not 6 <= digits <= 17:
            raise PlanError(f"--set {name}: the new value is not a phone number (digits, "
                            "spaces, + ( ) - . / only, 6 to 17 digits)")
    elif category == "contact.email":
        local, at, domain = value.strip().rpartition("@")
        if not at or not local or "." not in domain or any(ch.isspace() for ch in value.strip()):
            raise PlanError(f"--set {name}: the new value is not an e-mail address")


_PHONE_TEXT = re.compile(r"\+?[0-9 ()./-]+")


def corrected_categories(corrections: Mapping[str, str],
                         categories: Mapping[tuple[str, str, str], set[str]]) -> set[str]:
    """The data categories a rectification corrects: those it names, and those of the
    columns it names."""
    by_category, by_column = split_corrections(corrections)
    return {*by_category, *(c for place in by_column for c in categories.get(place, ()))}


def _key_columns(resolution: Resolution, loc: Location) -> set[str]:
    """Columns a rectification never sets: those of the links from and to its table
    (changing one would move rows between people or break a reference), and the row's
    key and primary key unless they hold personal data (a surrogate id says which row,
    not who; an e-mail used as the key is corrected like any e-mail)."""
    keys = set(loc.match_column.split(","))
    info = resolution.catalogue.get(loc.source, {}).get(loc.table)
    if info is not None:
        keys |= set(info.primary_key)
    keys = {c for c in keys if not resolution.categories.get((loc.source, loc.table, c))}
    if resolution.graph is not None:
        table = (loc.source, loc.table)
        keys |= {c for e in resolution.graph.out_edges(table) for c in e.column.split(",")}
        keys |= {c for e in resolution.graph.in_edges(table) for c in e.to_column.split(",")}
    return keys


def _named_columns(by_column: Mapping[tuple[str, str, str], str], loc: Location
                   ) -> dict[str, tuple[str, str, str]]:
    """The columns of ``loc``'s rows that corrections name (column -> the name given): by
    exact name, else in any letter case when that names one column (SQLite's names, and
    PostgreSQL's folded ones, are written in either case)."""
    cols = list(loc.rows[0]) if loc.rows else []
    out = {}
    for given in by_column:
        source, table, column = given
        if source != loc.source or table.casefold() != loc.table.casefold():
            continue
        found = [c for c in cols if c == column] or \
            [c for c in cols if c.casefold() == column.casefold()]
        if len(found) == 1:
            out[found[0]] = given
    return out


def _field_of(category: str) -> str:
    """The field a request names for a category (``phone`` for contact.phone)."""
    return next((f for f, c in FIELD_CATEGORIES.items() if c == category), category)


def plan_rectification(inventory: Inventory, resolution: Resolution,
                       identities: Sequence[Identity],
                       corrections: Mapping[str, str], first_plan: bool = True) -> list[Step]:
    """The steps that set the corrected values wherever the subject's data is held. A
    value given for a kind of data (``name``) that a table holds in several columns
    (first and last name) stops the plan: which part goes where is not guessed; the
    request names the columns instead (``source.table.column``). So does a kind of data
    no row of the subject's own holds (nothing would be corrected), on a ``first_plan``."""
    by_category, by_column = split_corrections(corrections)
    unused = set(by_column)
    cats = resolution.categories
    steps: list[tuple[int, bool, Step]] = []
    written: set[str] = set()        # categories some step corrects
    in_details: dict[str, set[str]] = {}    # category -> detail columns holding it
    for loc in resolution.locations:
        if loc.relation is Relation.DETAIL:
            # A detail row may be shared: corrections go to the subject's own rows.
            for col in loc.rows[0] if loc.rows else ():
                for category in cats.get((loc.source, loc.table, col), set()):
                    in_details.setdefault(category, set()).add(
                        f"{loc.source}.{loc.table}.{col}")
            continue
        if loc.found_by is FoundBy.FREE_TEXT:
            changes = {}
            for text in loc.values:
                new = text
                for ident in identities:
                    if ident.category in by_category:
                        new = redact_identities(new, [ident], by_category[ident.category])
                if new != text:
                    changes[text] = new
            if changes:
                written.update(i.category for i in identities if i.category in by_category)
                steps.append((loc.depth, False, Step(
                    0, loc.source, loc.table, loc.found_by.value, Action.REDACT,
                    loc.match_column, list(changes), changes, len(changes))))
            continue
        if not loc.rows:
            continue
        assign: dict[str, str] = {}
        keys = _key_columns(resolution, loc)
        named_here = _named_columns(by_column, loc)
        for col, given in named_here.items():
            unused.discard(given)
            if col in keys:
                resolution.blockers.append(
                    f"--set {'.'.join(given)}: a key column; a rectification does not "
                    "change which rows belong together (reject the request and file it "
                    "again without it)")
            else:
                try:
                    for cat in cats.get((loc.source, loc.table, col), set()):
                        check_corrected_value(".".join(given), cat, by_column[given])
                except PlanError as e:
                    resolution.blockers.append(str(e))
                    continue
                assign[col] = by_column[given]
        # A kind of data corrected by its name goes into the table's one column of that
        # kind; where the table has several, or the request names some of them, it is not
        # written there.
        held: dict[str, list[str]] = {}
        for col in loc.rows[0]:
            for category in cats.get((loc.source, loc.table, col), set()):
                if category in by_category:
                    held.setdefault(category, []).append(col)
        for category, cols in held.items():
            if set(cols) & set(named_here):
                written.add(category)   # the request names the columns it corrects here
                continue
            field_ = _field_of(category)
            if len(cols) == 1 and cols[0] in keys:
                resolution.blockers.append(
                    f"{field_}: {loc.source}.{loc.table}.{cols[0]} links rows together (a "
                    "key other rows refer to, or one that refers to another row): a "
                    "rectification does not change it; correct it by hand, or file the "
                    "request naming the other columns to correct")
                continue
            if len(cols) == 1:
                assign[cols[0]] = by_category[category]
                written.add(category)
                continue
            sets = " ".join(f"--set {loc.source}.{loc.table}.{c}=..." for c in cols)
            resolution.blockers.append(
                f"{field_}: {loc.source}.{loc.table} holds it in {len(cols)} columns "
                f"({', '.join(cols)}); which part of the new value goes where is not "
                f"guessed: reject the request and file it again with {sets}")
        info = resolution.catalogue.get(loc.source, {}).get(loc.table)
        kind = inventory.source(loc.source).kind
        for col, value in list(assign.items()):
            column = info.column(col) if info is not None else None
            room = column.max_chars(kind) if column is not None else None
            if room is not None and len(str(value)) > room:
                # Found by a helper: approved, then half applied across two sources.
                resolution.blockers.append(
                    f"{loc.source}.{loc.table}.{col} holds {room} characters and the new value "
                    f"has {len(str(value))}: widen the column first, then plan again")
                del assign[col]
        if assign:
            steps.append((loc.depth, False, Step(
                0, loc.source, loc.table, loc.found_by.value, Action.RECTIFY,
                loc.match_column, list(loc.values), assign, len(loc.rows))))
    for place in sorted(unused):
        resolution.blockers.append(
            f"--set {'.'.join(place)}: no row of the subject's own has that column (the "
            "table holds none of their rows, or it has no such column): nothing to correct "
            "there")
    for category in sorted(set(by_category) - written) if first_plan else ():
        field_ = _field_of(category)
        if resolution.blockers and any(b.startswith(f"{field_}: ") for b in
                                       resolution.blockers):
            continue    # already said why it is not written
        where = sorted(in_details.get(category, ()))
        resolution.blockers.append(
            f"{field_}: no row of the subject's own holds it, so nothing would be corrected"
            + (f"; it is held on {', '.join(where)}, a row the subject's rows point at "
               "(their address) that other people's rows may point at too: check who else "
               "uses it and correct it there by hand, then reject this request"
               if where else " (no column of that kind was found among their rows)"))
    return _ordered(steps)
