"""Applying a retention plan: in batches, each committed in the source, from a journal.

A run is written to the audit store (``retention_runs``, ``retention_steps``) with the
plan, logged, before the first change. Each step then runs batches of
``DELETE/UPDATE ... WHERE rowid IN (SELECT rowid ... WHERE <predicate> LIMIT n)`` (ctid
on PostgreSQL), one source transaction per batch; the journal records what each batch
changed after its commit. A run killed midway is resumed by the next ``apply`` with its
own clock: a batch whose commit was not journaled is recognised by counting what is
still due (``in_flight`` holds the due rows before it), so nothing is done or counted
twice. The predicate leaves out what is already done, so a step run twice changes
nothing. File tables are rewritten once per step through the connector's own delete or
update path (rows matched by a row key that only due rows hold), then checked byte by
byte. Every finished step is logged with its counts as proof.
"""

# SQL here is built from identifiers quoted by the connector and placeholders; every value
# is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from governance.audit_store import AuditStore
from governance.audit_store.files import held_exclusively
from governance.audit_store.store import append_log_row, utcnow
from governance.errors import RetentionError, refused_by_database
from governance.faults import fault_point
from governance.ids import new_id
from governance.inventory import Inventory
from governance.legal_holds import holds_in_force
from governance.retention.planning import (
    REFERENCED,
    RetentionPlan,
    Step,
    build_steps,
    count_on,
    count_referenced,
    count_step,
)
from governance.retention.policy import REDACTED, Policy
from governance.retention.predicates import ALIAS, negate
from governance.retention.proof import log_step, removed_values, values_left_in_file
from governance.sources.pool import ConnectorPool

DEFAULT_BATCH_ROWS = 500_000
Progress = Callable[[str], None]


@dataclass
class RunResult:
    """What a run did, per step."""

    run_id: str
    resumed: bool
    now: datetime
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """Rows deleted or anonymized by the run (all its sessions)."""
        return sum(int(s["rows_affected"]) for s in self.steps)


def persons_deleted(inventory: Inventory, result: RunResult) -> int:
    """Rows of person tables a run deleted (all its sessions)."""
    return sum(int(s["rows_affected"]) for s in result.steps if s["action"] == "delete"
               and (t := inventory.source(s["source"]).table(s["table_name"])) is not None
               and t.is_person)


def policy_digest(policies: Sequence[Policy]) -> str:
    """sha256 over the policy files' bytes, in order."""
    h = hashlib.sha256()
    for p in policies:
        h.update(p.loaded.raw)
    return h.hexdigest()


def unfinished_run(store: AuditStore) -> dict[str, Any] | None:
    """The run a kill left unfinished, if any."""
    rows = store.query("SELECT * FROM retention_runs WHERE status = 'running' "
                       "ORDER BY started_at LIMIT 1")
    return rows[0] if rows else None


def apply_retention(policies: Sequence[Policy], inventory: Inventory, store: AuditStore,
                    now: datetime, actor: str, batch_rows: int = DEFAULT_BATCH_ROWS,
                    sources: Sequence[str] | None = None, progress: Progress | None = None,
                    plan_logged: Callable[[RetentionPlan], None] | None = None) -> RunResult:
    """Apply the policies at ``now`` (or finish the unfinished run, at its own clock). One
    apply at a time per audit store: a second one waits for the first, then finds what is
    left (or resumes it, if the first died)."""
    say = progress or (lambda _m: None)
    with held_exclusively(store.path.with_name(store.path.name + ".retention.lock"),
                          lambda: say("another retention apply is running on this audit "
                                      "store: waiting for it to end")):
        return _apply(policies, inventory, store, now, actor, batch_rows, sources, say,
                      plan_logged)


def _apply(policies: Sequence[Policy], inventory: Inventory, store: AuditStore,
           now: datetime, actor: str, batch_rows: int, sources: Sequence[str] | None,
           say: Progress, plan_logged: Callable[[RetentionPlan], None] | None) -> RunResult:
    digest = policy_digest(policies)
    run = unfinished_run(store)
    with ConnectorPool(inventory, writable=True) as pool:
        if run is not None:
            if run["policy_digest"] != digest:
                raise RetentionError(
                    f"retention run {run['run_id']} was started with other policy files "
                    f"({', '.join(run['policies'])}) and did not finish; apply those to finish it")
            now = run["clock_at"]
            say(f"resuming retention run {run['run_id']} (clock {now:%Y-%m-%d %H:%M})")
        plan = build_steps(policies, inventory, store, pool, now, sources)
        if run is None:
            for s in plan.steps:
                s.due, s.held = count_step(pool, s)
                s.referenced = count_referenced(pool, s)
            if plan_logged is not None:
                plan_logged(plan)
            run_id = _start(store, plan, policies, digest, actor)
            fault_point("retention.after_journal")
        else:
            run_id = run["run_id"]
        result = RunResult(run_id, run is not None, now, notes=list(plan.notes))
        journal = {r["step_no"]: r for r in store.query(
            "SELECT * FROM retention_steps WHERE run_id = ? ORDER BY step_no", [run_id])}
        by_key = {(s.rule, s.source, s.table): s for s in plan.steps}
        guard = _HoldGuard(store, run_id, now, actor)
        for no, row in sorted(journal.items()):
            step = by_key.get((row["rule"], row["source"], row["table_name"]))
            if row["status"] in ("done", "skipped"):
                result.steps.append(row)
                continue
            guard.check(f"step {no} ({row['rule']} on {row['source']}.{row['table_name']})")
            if step is None or step.predicate != row["predicate"]:
                _fail(store, run_id, actor, f"step {no} ({row['rule']} on {row['source']}."
                      f"{row['table_name']}): the policy or inventory changed since the run "
                      "was planned; nothing more was changed")
            try:
                result.steps.append(_run_step(store, pool, run_id, no, row, step,
                                              batch_rows, actor, say, guard))
            except Exception as e:
                refused = refused_by_database(e)
                if refused is None:
                    raise
                # The database refused a batch (its transaction rolled back): the run
                # stops, recorded.
                _fail(store, run_id, actor, f"step {no} ({row['rule']} on {row['source']}."
                      f"{row['table_name']}): the database refused a change ({refused}); "
                      "that batch was rolled back and nothing more was changed")
        _finish(store, run_id, actor, result)
    return result


def _start(store: AuditStore, plan: RetentionPlan, policies: Sequence[Policy], digest: str,
           actor: str) -> str:
    run_id = new_id("ret", f"{plan.now:%Y%m%d}")

    def write(conn: Any) -> None:
        conn.execute("INSERT INTO retention_runs VALUES (?, ?, NULL, 'running', ?, ?, ?, ?, NULL)",
                     [run_id, utcnow(), plan.now, [str(p.path) for p in policies], digest, actor])
        for no, s in enumerate(plan.steps, 1):
            status = "skipped" if s.blocked else "pending"
            conn.execute(
                "INSERT INTO retention_steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, "
                "NULL, ?, ?, NULL)",
                [run_id, no, s.rule, s.source, s.table, s.action, list(s.columns), s.predicate,
                 s.cutoff, s.due, s.held, status, s.blocked])
        for (source, table), d in plan.decisions.items():
            conn.execute("INSERT INTO retention_decisions VALUES (?, ?, ?, ?, ?, ?)",
                         [source, table, utcnow(), run_id, d.deciding, _json(d.as_json())])
        append_log_row(conn, actor, "retention.planned", run_id, {
            "clock": plan.now.isoformat(), "policies": [str(p.path) for p in policies],
            "holds": sorted(h.hold_id for h in plan.holds),
            "steps": [{"rule": s.rule, "table": f"{s.source}.{s.table}", "action": s.action,
                       "predicate": s.predicate, "due": s.due, "held": s.held,
                       "blocked": s.blocked} for s in plan.steps]})

    store.write(write)
    return run_id


class _HoldGuard:
    """Stops a run when a legal hold is placed after it was planned: the plan's steps do
    not know it (a hold on payments placed while the run deletes orders), so nothing more
    is changed and the next apply plans with it. A hold lifted meanwhile changes nothing
    (the rows it covered stay until the next run)."""

    def __init__(self, store: AuditStore, run_id: str, now: datetime, actor: str):
        self.store, self.run_id, self.now, self.actor = store, run_id, now, actor
        logged = store.log_events(["retention.planned"], target=run_id)
        details = logged[0].details if logged else None
        planned = details.get("holds") if isinstance(details, dict) else None
        # (A run planned before holds were recorded with it is not checked.)
        self.planned: set[str] | None = set(planned) if planned is not None else None

    def check(self, where: str) -> None:
        """RetentionError (the run marked failed) when a hold was placed since planning."""
        if self.planned is None:
            return
        new = [h for h in holds_in_force(self.store, self.now)
               if h.hold_id not in self.planned]
        if new:
            _fail(self.store, self.run_id, self.actor,
                  f"legal hold {', '.join(h.hold_id for h in new)} ({new[0].place}) was "
                  f"placed after this run was planned; it stops {where}, and nothing more "
                  "was changed: run retention apply again, which plans with it")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _fail(store: AuditStore, run_id: str, actor: str, message: str) -> NoReturn:
    def write(conn: Any) -> None:
        conn.execute("UPDATE retention_runs SET status = 'failed', error = ?, finished_at = ? "
                     "WHERE run_id = ?", [message, utcnow(), run_id])
        append_log_row(conn, actor, "retention.failed", run_id, {"error": message})

    store.write(write)
    raise RetentionError(message)


def _finish(store: AuditStore, run_id: str, actor: str, result: RunResult) -> None:
    def write(conn: Any) -> None:
        conn.execute("UPDATE retention_runs SET status = 'completed', finished_at = ? "
                     "WHERE run_id = ?", [utcnow(), run_id])
        append_log_row(conn, actor, "retention.completed", run_id,
                       {"steps": len(result.steps), "rows_changed": result.changed})

    store.write(write)


def _journal(store: AuditStore, run_id: str, no: int, **values: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in values)   # keys are this module's column names
    store.write(lambda conn: conn.execute(
        f"UPDATE retention_steps SET {sets} WHERE run_id = ? AND step_no = ?",
        [*values.values(), run_id, no]))


def _run_step(store: AuditStore, pool: ConnectorPool, run_id: str, no: int,
              row: dict[str, Any], step: Step, batch_rows: int, actor: str,
              say: Progress, guard: _HoldGuard) -> dict[str, Any]:
    row = dict(row)
    conn = pool.get(step.source)
    name = f"{step.source}.{step.table}"
    if row["in_flight"] is not None:      # a batch was running when the run died
        left, _ = count_step(pool, step, strict=True)
        done = max(int(row["in_flight"]) - left, 0)
        row["rows_affected"] += done
        row["batches"] += 1 if done else 0
        _journal(store, run_id, no, rows_affected=row["rows_affected"], batches=row["batches"],
                 in_flight=None)
        say(f"{step.rule}: {name}: a batch interrupted earlier had changed {done} row(s)")
    note = None
    byte_check = None
    if step.action != "review" and step.file_key is None and not row["rows_affected"] \
            and not row["batches"]:
        # Counted again as the step starts: the run's earlier steps may have freed rows
        # the plan counted as still referred to (a rule's payments gone, its rentals due),
        # or taken rows the plan counted here too (a person's order lines, gone with the
        # person). The journal's count is then exact, so that a batch cut short is
        # measured against it when the run resumes.
        due_now, _ = count_step(pool, step, strict=True)
        if due_now != int(row["planned_rows"]):
            why = "freed the others" if due_now > int(row["planned_rows"]) else \
                "took the others"
            say(f"{step.rule}: {name}: {due_now} row(s) due now, {row['planned_rows']} "
                f"when planned (earlier steps of this run {why})")
            row["planned_rows"] = due_now
            _journal(store, run_id, no, planned_rows=due_now)
    if step.action == "review":
        note = f"{row['planned_rows']} row(s) to review; nothing changed"
    elif step.file_key is not None:
        n, note, byte_check = _apply_file(store, pool, run_id, no, row, step, say)
        row["rows_affected"] += n
    else:
        _apply_sql(store, conn, run_id, no, row, step, batch_rows, say, guard)
    left, held = count_step(pool, step, strict=True)
    if step.action != "review" and left and step.file_key is None:
        note = f"{left} row(s) still due after the step (changed meanwhile?)"
    referenced = count_referenced(pool, step, strict=True)
    if referenced:
        note = "; ".join(filter(None, [note, f"{referenced} row(s) {REFERENCED}"]))
    row.update(status="done", note=note, done_at=utcnow())
    proof = {**row, "table_name": step.table, "remaining": left, "held_rows": held,
             "referenced_rows": referenced,
             "profile": step.profile, "columns": list(step.columns),
             "cutoff": str(step.cutoff), "byte_check": byte_check}

    def write(c: Any) -> None:
        c.execute("UPDATE retention_steps SET status = 'done', rows_affected = ?, batches = ?, "
                  "held_rows = ?, note = ?, done_at = ?, in_flight = NULL "
                  "WHERE run_id = ? AND step_no = ?",
                  [row["rows_affected"], row["batches"], held, note, row["done_at"], run_id, no])
        log_step(c, actor, run_id, proof)

    store.write(write)
    fault_point("retention.after_step")
    say(f"{step.rule}: {name}: {step.action} done: {row['rows_affected']} row(s), "
        f"{held} held")
    row["held_rows"] = held
    row["referenced_rows"] = referenced
    return row


def _batch_sql(conn: Any, step: Step, n: int) -> tuple[str, list[Any]]:
    """One batch: at most ``n`` due rows (PostgreSQL), or the due rows among the ``n``
    rowids from the first bound parameter on (SQLite, DuckDB: a range the source reads
    alone, so a run reads the table about once)."""
    where = step.strict_where or step.where
    ref = conn._table_ref(step.table)
    if conn.kind == "postgres":
        # A ctid names a row only within one table: in a partitioned (or inheriting)
        # table the same ctid is a row of each partition. The rows changed are those at
        # the picked ctids that are due themselves (the predicate again, on each).
        pick = f"SELECT {ALIAS}.ctid FROM {ref} AS {ALIAS} WHERE {where.sql} LIMIT {int(n)}"
        table = f"{ref} AS {ALIAS}"
        target = f"{where.sql} AND {ALIAS}.ctid = ANY(ARRAY({pick}))"
        lead: list[Any] = [*where.params]
    else:
        rng = f"rowid >= {conn.placeholder} AND rowid < {conn.placeholder}"
        pick = (f"SELECT {ALIAS}.rowid FROM {ref} AS {ALIAS} WHERE {ALIAS}.{rng} "
                f"AND {where.sql}")
        table, target, lead = ref, f"{rng} AND rowid IN ({pick})", ["lo", "hi", "lo", "hi"]
    if step.action == "delete":
        return f"DELETE FROM {table} WHERE {target}", [*lead, *where.params]
    sets, values = [], []
    for col, op in step.columns.items():
        sets.append(f"{conn._ident(col)} = {conn.placeholder}")
        values.append(None if op == "null" else REDACTED)
    return (f"UPDATE {table} SET {', '.join(sets)} WHERE {target}",
            [*values, *lead, *where.params])


def _bind(params: list[Any], lo: int, hi: int) -> list[Any]:
    return [lo if p == "lo" and isinstance(p, str) else hi if p == "hi" and isinstance(p, str)
            else p for p in params]


MAX_PASSES = 8     # passes over a table per step (chains of rows pointing at each other)


def _apply_sql(store: AuditStore, conn: Any, run_id: str, no: int, row: dict[str, Any],
               step: Step, batch_rows: int, say: Progress, guard: _HoldGuard) -> None:
    sql, params = _batch_sql(conn, step, batch_rows)
    ranged = conn.kind != "postgres"
    for _pass in range(MAX_PASSES):   # a pass covers the table; another if rows remain
        if ranged:
            cur = conn._run(f"SELECT max(rowid) FROM {conn._table_ref(step.table)}")
            top = cur.fetchall()[0][0]
            cur.close()
            bounds: Iterable[tuple[int, int]] = [
                (lo, lo + batch_rows) for lo in range(0, int(top or 0) + 1, batch_rows)]
        else:
            bounds = itertools.repeat((0, 0))
        changed = 0
        for lo, hi in bounds:
            before = max(int(row["planned_rows"]) - int(row["rows_affected"]), 0)
            if before == 0:
                break
            guard.check(f"step {no} ({step.rule} on {step.source}.{step.table}) before its "
                        f"batch {row['batches'] + 1}")
            _journal(store, run_id, no, in_flight=before)
            fault_point("retention.before_batch")
            with conn.transaction():
                n = conn._changed(conn._run(sql, _bind(params, lo, hi) if ranged else params))
            fault_point("retention.after_batch")
            changed += n
            row["rows_affected"] += n
            row["batches"] += 1 if n else 0
            _journal(store, run_id, no, rows_affected=row["rows_affected"],
                     batches=row["batches"], in_flight=None)
            if n:
                say(f"{step.rule}: {step.source}.{step.table}: batch {row['batches']}: {n} "
                    f"row(s); {row['rows_affected']} of {row['planned_rows']}")
            if not ranged and n < batch_rows:
                break
        if not changed:
            break
        if int(row["rows_affected"]) >= int(row["planned_rows"]):
            # Rows this pass freed (an employee whose reports it removed) are due now.
            freed, _ = count_on(conn, step, strict=True)
            if not freed:
                break
            row["planned_rows"] = int(row["planned_rows"]) + freed
            _journal(store, run_id, no, planned_rows=row["planned_rows"])


def _apply_file(store: AuditStore, pool: ConnectorPool, run_id: str, no: int,
                row: dict[str, Any], step: Step, say: Progress
                ) -> tuple[int, str | None, dict[str, Any] | None]:
    """Rewrite a file table without (or with anonymized) due rows, through the connector;
    only row keys that no kept row shares are used. Then search the file for removed values."""
    conn: Any = pool.get(step.source)
    q = conn._ident
    view = step.table
    # As applied: no row refers to it any more (the rows due before it are gone by now).
    where = step.strict_where or step.where
    key = q(str(step.file_key))
    keys = [r[0] for r in conn._conn.execute(
        f"SELECT CAST({key} AS VARCHAR) FROM {q(view)} AS {ALIAS} WHERE {where.sql} AND "
        f"{key} IS NOT NULL EXCEPT SELECT CAST({key} AS VARCHAR) FROM {q(view)} AS {ALIAS} "
        f"WHERE {negate(where).sql}", [*where.params, *negate(where).params]).fetchall()]
    due, _ = count_step(pool, step)
    note = None
    if due:
        kept = due - int(conn._conn.execute(
            f"SELECT count(*) FROM {q(view)} WHERE CAST({key} AS VARCHAR) IN "
            "(SELECT unnest(?))", [keys]).fetchall()[0][0]) if keys else due
        if kept:
            note = (f"{kept} due row(s) kept: their key {step.file_key} is empty or shared "
                    "with a row that is not due")
    if not keys:
        return 0, note, None
    personal = [c for c in conn.table_info(view).column_names]
    values = removed_values(conn._conn, view, where.sql, list(where.params),
                            personal if step.action == "delete" else list(step.columns), q)
    _journal(store, run_id, no, in_flight=due)
    fault_point("retention.before_batch")
    if step.action == "delete":
        n = conn.delete_rows(view, str(step.file_key), keys)
    else:
        n = conn.update_rows(view, str(step.file_key), keys,
                             {c: (None if op == "null" else REDACTED)
                              for c, op in step.columns.items()})
    fault_point("retention.after_batch")
    _journal(store, run_id, no, rows_affected=int(row["rows_affected"]) + n,
             batches=int(row["batches"]) + 1, in_flight=None)
    row["batches"] += 1
    left = values_left_in_file(conn.file_of(view), values, conn.kind)
    check = {"values_checked": len(values), "values_left": left}
    say(f"{step.rule}: {step.source}.{step.table}: file rewritten, {n} row(s); byte check: "
        f"{left} of {len(values)} removed value(s) left")
    if left:
        note = (note + "; " if note else "") + f"{left} removed value(s) still in the file"
    return n, note, check
