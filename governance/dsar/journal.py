"""The journal of a request's changes: steps written before anything changes, each marked
done once its change is committed, so an interrupted run resumes where it stopped.

Executing a step twice is harmless (deleting deleted rows changes none; a redaction
matches the old text only), which covers the gap between a source's commit and the
journal's mark. Match values are sealed under the request's data key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from governance.audit_store import AuditStore
from governance.audit_store.store import utcnow
from governance.crypto.aead import open_json, seal_json
from governance.dsar.plan import Action, Step
from governance.errors import GovernanceError
from governance.sources import Connector
from governance.sources.pool import ConnectorPool

StepHook = Callable[[Step], None]


def _aad(request_id: str, step_no: int) -> bytes:
    return f"{request_id}/step/{step_no}".encode()


def write_journal(store: AuditStore, request_id: str, key: bytes, steps: Sequence[Step]) -> None:
    """Record the planned steps (all at once; refused if a journal already exists)."""
    def insert(conn: Any) -> None:
        if conn.execute("SELECT count(*) FROM dsar_steps WHERE request_id = ?",
                        [request_id]).fetchall()[0][0]:
            raise GovernanceError(f"request {request_id} already has a journal")
        if not steps:
            return
        conn.executemany(
            "INSERT INTO dsar_steps (request_id, step_no, source, table_name, found_by, action, "
            "match_column, columns, planned_rows, payload, status, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[request_id, s.step_no, s.source, s.table, s.found_by, s.action.value,
              s.match_column, s.columns, s.planned_rows,
              seal_json(key, s.payload(), _aad(request_id, s.step_no)), s.status, s.note]
             for s in steps])

    store.write(insert)


def read_journal(store: AuditStore, request_id: str, key: bytes | None) -> list[Step]:
    """The journal's steps in order; match values are opened when ``key`` is given."""
    rows = store.query("SELECT * FROM dsar_steps WHERE request_id = ? ORDER BY step_no",
                       [request_id])
    steps = []
    for r in rows:
        payload: dict[str, Any] = {"values": [], "changes": {}}
        if key is not None and r["status"] == "pending":
            payload = open_json(key, bytes(r["payload"]), _aad(request_id, r["step_no"]),
                                what=f"journal step {r['step_no']}")  # type: ignore[assignment]
        steps.append(Step(r["step_no"], r["source"], r["table_name"], r["found_by"],
                          Action(r["action"]), r["match_column"], payload["values"],
                          payload["changes"], r["planned_rows"], r["status"],
                          r["rows_affected"], r["note"], list(r["columns"] or [])))
    return steps


def mark_done(store: AuditStore, request_id: str, steps: Sequence[Step]) -> None:
    """Record that ``steps`` were committed; their match values are then wiped."""
    now = utcnow()
    store.write(lambda conn: conn.executemany(
        "UPDATE dsar_steps SET status = 'done', rows_affected = ?, done_at = ?, payload = ''::BLOB "
        "WHERE request_id = ? AND step_no = ?",
        [[s.rows_affected, now, request_id, s.step_no] for s in steps]))


def apply_step(conn: Connector, step: Step, hash_value: Callable[[Any], str]) -> int:
    """Make the change of one step on an open, writable connector; rows changed."""
    if step.action is Action.DELETE:
        return conn.delete_rows(step.table, step.match_column, step.values)
    if step.action is Action.REDACT:
        return sum(conn.update_rows(step.table, step.match_column, [old], {step.match_column: new})
                   for old, new in step.changes.items())
    if step.action is Action.RECTIFY:
        return conn.update_rows(step.table, step.match_column, step.values, step.changes)
    if step.action is Action.ANONYMIZE:
        fixed = {c: (None if op == "null" else "[erased]")
                 for c, op in step.changes.items() if op != "hash"}
        hashed = [c for c, op in step.changes.items() if op == "hash"]
        if not hashed:
            return conn.update_rows(step.table, step.match_column, step.values, fixed)
        return sum(conn.update_rows(step.table, step.match_column, [v],
                                    {**fixed, **{c: hash_value(v) for c in hashed}})
                   for v in step.values)
    return 0


def _apply(conn: Connector, step: Step, hash_value: Callable[[Any], str],
           rolled_back: bool) -> int:
    try:
        return apply_step(conn, step, hash_value)
    except GovernanceError:
        raise
    except Exception as e:
        # Only the first line: drivers add the failing row's values on the next ones.
        first = str(e).splitlines()[0] if str(e) else ""
        undone = (f"every change to {step.source} in this run was rolled back" if rolled_back
                  else "earlier steps stay done")
        raise GovernanceError(
            f"step {step.step_no} ({step.source}.{step.table}, {step.action}) failed: "
            f"{type(e).__name__}: {first}; {undone}. Fix the cause and run the request "
            "again: it resumes from the journal") from None


def execute_journal(store: AuditStore, request_id: str, steps: Sequence[Step],
                    pool: ConnectorPool, hash_value: Callable[[Any], str],
                    on_step: StepHook | None = None) -> list[Step]:
    """Run the pending steps, source by source; on a source that supports it all of its
    steps commit in one transaction. Returns the steps run now."""
    pending = [s for s in steps if s.status == "pending"]
    sources = list(dict.fromkeys(s.source for s in pending))
    ran: list[Step] = []
    for source in sources:
        conn = pool.get(source)
        group = [s for s in pending if s.source == source]
        if conn.atomic:
            with conn.transaction():
                for step in group:
                    step.rows_affected = _apply(conn, step, hash_value, rolled_back=True)
                    if on_step:
                        on_step(step)
            mark_done(store, request_id, group)
        else:
            for step in group:
                step.rows_affected = _apply(conn, step, hash_value, rolled_back=False)
                mark_done(store, request_id, [step])
                if on_step:
                    on_step(step)
        for step in group:
            step.status = "done"
        ran.extend(group)
    return ran
