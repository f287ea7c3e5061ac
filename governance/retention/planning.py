"""What retention would do now: per rule and table, the rows due, counted by the source.

``plan_retention`` resolves the rules of every table (``conflicts``), compiles each to a
predicate (``predicates``) and asks the source ``SELECT count(*) ... WHERE <predicate>``:
no table is read into Python. A deletion also takes the rows that the deleted rows own
(the ownership graph's owner references in the same source: a due person's orders, a due
ticket's messages), children first, and a row goes only once no row refers to it.
"""

# SQL here is built from identifiers quoted by the connector and placeholders; every value
# is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from governance.audit_store import AuditStore
from governance.dsar.ownership import OwnershipGraph, build_graph, personal_tables
from governance.errors import GovernanceError, RetentionError
from governance.inventory import FILE_KINDS, Inventory
from governance.legal_holds import Hold, holds_in_force
from governance.retention.conflicts import RuleOnTable, TableDecision, decide
from governance.retention.holds import held_subject_keys
from governance.retention.policy import Estate, Policy, check_policy, load_estate
from governance.retention.predicates import (
    ALIAS,
    TRUE,
    Clause,
    Compiler,
    Dialect,
    negate,
    text_of,
)
from governance.sources.pool import ConnectorPool

# Rows past their period that a step keeps because other rows still refer to them (a
# customer's payments kept for tax keep the customer): reported, never counted as gone.
REFERENCED = "past the period kept: other rows still refer to them"


@dataclass
class Step:
    """One rule applied to one table: the predicate, its counts, how it is applied."""

    rule: str
    profile: str
    source: str
    table: str
    action: str                          # delete | anonymize | review
    columns: dict[str, str]
    cutoff: datetime | None
    where: Clause                        # the rows to act on now
    held_where: Clause                   # the rows a hold keeps
    due: int = 0
    held: int = 0
    file_key: str | None = None          # file tables: the row key the rewrite matches
    strict_where: Clause | None = None   # person rows of a per-subject rule, when applied
    cascade_of: str | None = None        # per-subject: the person table this follows
    blocked: str | None = None           # why it cannot be applied (reported, not applied)
    past_where: Clause | None = None     # past the period, before the reference guards
    referenced: int = 0                  # rows past the period kept: other rows refer to them

    @property
    def predicate(self) -> str:
        """The predicate as recorded: placeholders only."""
        return text_of(self.strict_where or self.where)

    def describe(self) -> str:
        """One line for people: what, where, how many."""
        what = self.action + (f" {', '.join(self.columns)}" if self.columns else "")
        via = f" (rows owned by rows due in {self.cascade_of})" if self.cascade_of else ""
        held = f", {self.held} held" if self.held else ""
        kept = f", {self.referenced} {REFERENCED}" if self.referenced else ""
        block = f"  NOT APPLIED: {self.blocked}" if self.blocked else ""
        return (f"{self.rule}: {self.source}.{self.table}: {what}{via}: {self.due} row(s) "
                f"due{held}{kept}{block}")


@dataclass
class RetentionPlan:
    """The steps of a retention run at ``now``, with each table's decision."""

    now: datetime
    steps: list[Step]
    decisions: dict[tuple[str, str], TableDecision]
    holds: list[Hold]
    notes: list[str] = field(default_factory=list)

    @property
    def due(self) -> int:
        """Rows that applying would delete or anonymize."""
        return sum(s.due for s in self.steps if s.action != "review" and not s.blocked)

    def as_json(self) -> dict[str, Any]:
        """The plan without values: predicates with placeholders, counts."""
        return {"now": self.now.isoformat(), "due": self.due, "notes": self.notes,
                "steps": [{"rule": s.rule, "profile": s.profile, "source": s.source,
                           "table": s.table, "action": s.action, "columns": list(s.columns),
                           "cutoff": s.cutoff.isoformat() if s.cutoff else None,
                           "predicate": s.predicate, "due": s.due, "held": s.held,
                           "referenced": s.referenced,
                           "cascade_of": s.cascade_of, "blocked": s.blocked}
                          for s in self.steps],
                "tables": {f"{s}.{t}": d.as_json() for (s, t), d in self.decisions.items()}}


def build_steps(policies: Sequence[Policy], inventory: Inventory, store: AuditStore,
                pool: ConnectorPool, now: datetime, sources: Iterable[str] | None = None,
                estate: Estate | None = None) -> RetentionPlan:
    """The steps at ``now`` with their predicates (not counted yet)."""
    wanted = set(sources) if sources is not None else {s.name for s in inventory.sources}
    estate = estate or load_estate(inventory, store, pool)
    for p in policies:
        check_policy(p, estate, pool)
    holds = holds_in_force(store, now)
    keys: dict[str, Any] = {}
    for src in inventory.sources:
        try:
            keys[src.name] = pool.get(src.name).foreign_keys()
        except GovernanceError:
            continue
    graph = build_graph(inventory, keys, personal_tables(estate.categories))
    held_keys = held_subject_keys(store, holds, inventory, pool, estate.categories)
    decisions = decide(policies, estate, holds)
    plan = RetentionPlan(now, [], decisions, holds)
    for (source, table), decision in sorted(decisions.items()):
        if source not in wanted or not decision.applying:
            continue
        if decision.whole_hold is not None:
            plan.notes.append(f"{source}.{table}: held ({decision.whole_hold.describe()}); "
                              "nothing is touched")
            continue
        conn = pool.get(source)
        comp = Compiler(Dialect(conn, estate), decision, now, held_keys, graph, holds)
        for r in decision.applying:
            try:
                plan.steps.extend(_steps_for(comp, r, decisions, graph, estate))
            except RetentionError as e:
                plan.notes.append(f"{r.name}: {source}.{table}: not applied: {e}")
    return plan


def _steps_for(comp: Compiler, r: RuleOnTable, decisions: dict[tuple[str, str], TableDecision],
               graph: OwnershipGraph, estate: Estate) -> list[Step]:
    where, held = comp.due(r)
    step = Step(r.name, r.policy.profile.profile, r.source, r.table, r.rule.action,
                r.columns if r.rule.action == "anonymize" else {}, comp.cutoff(r), where, held)
    src = estate.inventory.source(r.source)
    if src.kind in FILE_KINDS and r.rule.action != "review":
        step.file_key = _file_key(r.policy, estate, r.source, r.table)
        if step.file_key is None:
            step.blocked = (f"a file table needs a row key to remove rows by: add keys: "
                            f"{{{r.source}.{r.table}: COLUMN}} to the policy")
    if r.rule.action != "delete" or step.blocked:
        return [step]
    # Files too: the rows the due rows own go first, and a row other rows still refer to
    # stays (the references come from the inventory; files declare no foreign keys).
    return [*_cascade(comp, r, step, decisions, graph, estate), step]


def _file_key(policy: Policy, estate: Estate, source: str, table: str,
              fallback: str | None = None) -> str | None:
    """The column a file table's rewrite removes rows by: the policy's ``keys``, else the
    table's subject key, else ``fallback`` (a cascade's owner column: every row sharing
    a value goes only when all of them are due)."""
    decl = estate.inventory.source(source).table(table)
    return policy.profile.keys.get(f"{source}.{table}") or \
        (decl.subject_key if decl else None) or fallback


def _cascade(comp: Compiler, r: RuleOnTable, person: Step,
             decisions: dict[tuple[str, str], TableDecision], graph: OwnershipGraph,
             estate: Estate) -> list[Step]:
    """Steps deleting the rows owned by the rows ``person`` deletes (deepest first; e.g. a
    due person's orders, a due ticket's messages), and the guard of ``person``. A row owned
    through a row that a keeping obligation or a hold keeps stays with it (an invoice kept
    for tax keeps its lines); a row goes only when no row of its source refers to it any
    more (a rental another customer's payment points at stays, and so its customer)."""
    d = comp.d
    source = r.source
    due_of: dict[tuple[str, str], Clause] = {(source, r.table): person.where}
    held_of: dict[tuple[str, str], Clause] = {}
    owner_column: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    changed = True
    while changed:     # tables whose nearest owner edge leads (within the source) to due persons
        changed = False
        for e in graph.edges:
            if e.kind != "owner" or e.origin in due_of or e.source != source \
                    or e.to_source != source or e.target not in due_of:
                continue
            if graph.owner_edges(e.origin)[:1] != [e]:
                continue
            inner = due_of[e.target]     # the parent rows that go (kept ones keep theirs)
            owned = Clause(
                f"{d.q(e.column)} IN (SELECT {d.q(e.to_column)} FROM {d.table(e.to_table)} "
                f"WHERE {inner.sql})", list(inner.params))
            dec = decisions.get(e.origin) or TableDecision(*e.origin)
            held = comp.held(e.origin[1], None)
            where = owned & comp.obligations_over(None, e.origin[1], dec)
            if _held_whole(comp, source, e.origin[1]):
                held_of[e.origin], due_of[e.origin] = where, Clause("FALSE")
            else:
                held_of[e.origin] = where & held if held.sql else Clause("FALSE")
                due_of[e.origin] = where & negate(held) if held.sql else where
            order.append(e.origin)
            owner_column[e.origin] = e.column
            changed = True
    files = estate.inventory.source(source).kind in FILE_KINDS
    steps: list[Step] = []
    going: dict[tuple[str, str], Clause] = {}
    for key in _referrers_first(list(reversed(order)), graph):     # deepest first
        lenient, strict = _guards(comp, graph, key, going)
        going[key] = due_of[key]
        steps.append(Step(r.name, r.policy.profile.profile, source, key[1], "delete", {},
                          person.cutoff, due_of[key] & lenient, held_of[key],
                          strict_where=due_of[key] & strict, cascade_of=r.table,
                          past_where=due_of[key],
                          file_key=_file_key(r.policy, estate, source, key[1],
                                             owner_column[key]) if files else None))
    lenient, strict = _guards(comp, graph, (source, r.table), going)
    person.past_where = person.where
    person.strict_where = person.where & strict
    person.where = person.where & lenient
    return steps


def _held_whole(comp: Compiler, source: str, table: str) -> bool:
    """Whether a hold keeps every row of ``table`` that a cascade reaches: one on the
    table or its source, or one on a time range of it (a cascade reads no clock on the
    tables it reaches, so the whole table is kept, as an erasure keeps it)."""
    return any(h.covers_table(source, table) and (h.whole or h.scope == "range")
               for h in comp.holds)


def _guards(comp: Compiler, graph: OwnershipGraph, key: tuple[str, str],
            due_of: Mapping[tuple[str, str], Clause]) -> tuple[Clause, Clause]:
    """What keeps a row of ``key`` that other rows of its source still refer to (a rental
    another customer's payment points at), through any link, declared or found in the
    catalogue: (lenient, strict). Lenient, for the plan's counts: no referring row but those
    due before it in the same run (``due_of``: their predicates, written with bare column
    names, so that they read the referring row inside the subquery; a referring row that
    its own guard keeps is counted as going). Strict, as it is applied: no referring row at
    all (those that go are gone by then)."""
    d = comp.d
    lenient, strict = TRUE, TRUE
    for e in graph.in_edges(key):
        if e.source != key[0]:
            continue
        ref = f"SELECT 1 FROM {d.table(e.table)} AS govkit_ref WHERE " \
              f"govkit_ref.{d.q(e.column)} = {ALIAS}.{d.q(e.to_column)}"
        strict = strict & Clause(f"NOT EXISTS ({ref})")
        if e.origin in due_of and e.origin != key:
            inner = negate(due_of[e.origin])
            lenient = lenient & Clause(f"NOT EXISTS ({ref} AND {inner.sql})", inner.params)
        else:
            lenient = lenient & Clause(f"NOT EXISTS ({ref})")
    return lenient, strict


def _referrers_first(tables: list[tuple[str, str]], graph: OwnershipGraph
                     ) -> list[tuple[str, str]]:
    """``tables`` reordered so that a table whose rows refer to another's comes before it
    (payments before the rentals they point at), else in the order given; a cycle keeps
    the order given."""
    out: list[tuple[str, str]] = []
    left = list(tables)
    while left:
        pick = next((t for t in left if not any(
            e.origin in left and e.origin != t for e in graph.in_edges(t))), left[0])
        out.append(pick)
        left.remove(pick)
    return out


def count_step(pool: ConnectorPool, step: Step, strict: bool = False) -> tuple[int, int]:
    """Rows due and rows held of ``step``, counted by the source in one pass."""
    return count_on(pool.get(step.source), step, strict)


def count_on(conn: Any, step: Step, strict: bool = False) -> tuple[int, int]:
    """``count_step`` on the step's source, already open."""
    where = step.strict_where if strict and step.strict_where is not None else step.where
    due, held = _count_rows(conn, step.table, [where, step.held_where])
    return due, held


def count_referenced(pool: ConnectorPool, step: Step, strict: bool = False) -> int:
    """Rows of ``step`` past their period (not held) that it keeps because other rows of
    the source still refer to them (with ``strict``: as applied, after the rows that go)."""
    if step.past_where is None:
        return 0
    where = step.strict_where if strict and step.strict_where is not None else step.where
    past = step.past_where
    kept = Clause(f"({past.sql or 'TRUE'}) AND NOT COALESCE(({where.sql or 'TRUE'}), FALSE)",
                  [*past.params, *where.params])
    return _count_rows(pool.get(step.source), step.table, [kept])[0]


def _count_rows(conn: Any, table: str, filters: Sequence[Clause]) -> list[int]:
    """The rows of ``table`` each of ``filters`` holds for, counted in one pass."""
    cur = conn._run(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {f.sql or 'TRUE'})" for f in filters)
        + f" FROM {conn._table_ref(table)} AS {ALIAS}", [p for f in filters for p in f.params])
    try:
        return [int(n) for n in cur.fetchall()[0]]
    finally:
        cur.close()
        if hasattr(conn, "_end_read"):
            conn._end_read()


def plan_retention(policies: Sequence[Policy], inventory: Inventory, store: AuditStore,
                   now: datetime, sources: Iterable[str] | None = None,
                   pool: ConnectorPool | None = None) -> RetentionPlan:
    """The dry run: every step with its rows due and held, counted by the sources."""
    own = pool is None
    pool = pool or ConnectorPool(inventory)
    try:
        plan = build_steps(policies, inventory, store, pool, now, sources)
        for s in plan.steps:
            s.due, s.held = count_step(pool, s)
            s.referenced = count_referenced(pool, s)
        return plan
    finally:
        if own:
            pool.close()
