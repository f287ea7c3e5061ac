"""The journal of a request's changes: steps written before anything changes, each marked
done once its change is committed, so an interrupted run resumes where it stopped.

Executing a step twice is harmless (deleting deleted rows changes none; a redaction
matches the old text only), which covers the gap between a source's commit and the
journal's mark. Match values are sealed under the request's data key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from governance.audit_store import AuditStore
from governance.audit_store.store import record_row, utcnow
from governance.crypto.aead import open_json, seal_json
from governance.dsar.identities import Identity
from governance.dsar.plan import OWNED_BY, Action, Step, row_digest
from governance.errors import GovernanceError, StepStopped, refused_by_database
from governance.faults import fault_point
from governance.sources import Connector, Leaving
from governance.sources.pool import ConnectorPool

StepHook = Callable[[Step], None]


def _aad(request_id: str, step_no: int) -> bytes:
    return f"{request_id}/step/{step_no}".encode()


def write_journal(store: AuditStore, request_id: str, key: bytes, steps: Sequence[Step],
                  first_step: int = 1) -> None:
    """Record the planned steps, all at once, numbered from ``first_step`` (after the done
    steps of an earlier plan); refused while the journal still has pending steps."""
    def insert(conn: Any) -> None:
        if conn.execute("SELECT count(*) FROM dsar_steps WHERE request_id = ? AND "
                        "status = 'pending'", [request_id]).fetchall()[0][0]:
            raise GovernanceError(f"request {request_id} already has a journal with pending "
                                  "steps")
        if not steps:
            return
        for n, s in enumerate(steps, first_step):
            s.step_no = n
        conn.executemany(
            "INSERT INTO dsar_steps (request_id, step_no, source, table_name, found_by, action, "
            "match_column, columns, planned_rows, payload, status, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[request_id, s.step_no, s.source, s.table, s.found_by, s.action.value,
              s.match_column, s.columns, s.planned_rows,
              seal_json(key, s.payload(), _aad(request_id, s.step_no)), s.status, s.note]
             for s in steps])
        record_row(conn, "dsar_steps", request_id, "govkit", "dsar.journal_written",
                   {"steps": len(steps)})

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


def mark_done(store: AuditStore, request_id: str, steps: Sequence[Step],
              renew: Callable[[Any], None] | None = None, resumed: bool = False) -> None:
    """Record that ``steps`` were committed; their match values are then wiped. ``renew``
    (the run's lease, checked and extended in the same transaction) raises when another
    worker took the request over: then nothing is recorded. On a ``resumed`` run, steps
    that found nothing left to change are logged as such (an interrupted run changed their
    rows; its count was lost)."""
    now = utcnow()
    already = [s.step_no for s in steps if resumed and not s.rows_affected and s.planned_rows]
    store.write(lambda conn: (renew(conn) if renew else None, conn.executemany(
        "UPDATE dsar_steps SET status = 'done', rows_affected = ?, done_at = ?, payload = ''::BLOB "
        "WHERE request_id = ? AND step_no = ?",
        [[s.rows_affected, now, request_id, s.step_no] for s in steps]),
        record_row(conn, "dsar_steps", request_id, "govkit", "dsar.steps_done",
                   {"steps": [s.step_no for s in steps],
                    **({"found_already_done": already} if already else {})})))


def mark_held(store: AuditStore, request_id: str, steps: Sequence[Step],
              reasons: dict[tuple[str, str], str]) -> None:
    """Record that pending ``steps`` will not run because their table came under a legal
    hold after planning; their match values are wiped."""
    store.write(lambda conn: conn.executemany(
        "UPDATE dsar_steps SET status = 'held', note = ?, payload = ''::BLOB "
        "WHERE request_id = ? AND step_no = ? AND status = 'pending'",
        [[f"legal hold: {reasons[(s.source, s.table)]}", request_id, s.step_no]
         for s in steps]))


def drop_pending(store: AuditStore, request_id: str) -> None:
    """Remove the steps not yet done, so that the request can be planned again."""
    store.write(lambda conn: conn.execute(
        "DELETE FROM dsar_steps WHERE request_id = ? AND status = 'pending'", [request_id]))


def _redact(conn: Connector, step: Step, identities: Sequence[Identity]) -> int:
    """Rewrite the planned texts; a text that changed since planning (another request
    redacted someone else in the same cell) is redacted again from its current form."""
    from governance.dsar.redaction import redact_identities
    from governance.dsar.resolution import search_text

    changed = 0
    stale = False
    for old, new in step.changes.items():
        n = conn.update_rows(step.table, step.match_column, [old], {step.match_column: new})
        changed += n
        stale = stale or n == 0
    if stale and identities:
        scope = [i for i in identities if redact_identities(
            " ".join(step.changes), [i]) != " ".join(step.changes)] or list(identities)
        found = search_text(conn, step.table, [step.match_column], scope)
        for text in found.get(step.match_column, {}):
            new = redact_identities(text, scope)
            if new != text:
                changed += conn.update_rows(step.table, step.match_column, [text],
                                            {step.match_column: new})
    return changed


def apply_step(conn: Connector, step: Step, hash_value: Callable[[Any], str],
               identities: Sequence[Identity] = (), leaving: Leaving | None = None,
               changed: OwnChanges | None = None, checked: bool = False) -> int:
    """Make the change of one step on an open, writable connector; rows changed.
    ``leaving``: the rows this run deletes from the source, by table (see
    ``Connector.delete_owned``); ``changed``: by table, the columns the request's own
    steps change (see ``check_owned``); ``checked``: the step's rows were
    checked and locked earlier in this transaction (``_preflight``)."""
    unchanged = None if checked else (lambda: check_owned(conn, step, changed))
    if step.action is Action.DELETE:
        return conn.delete_owned(step.table, step.match_column, step.values, leaving,
                                 unchanged)
    if step.action is Action.DELETE_UNREFERENCED:
        return conn.delete_unreferenced(step.table, step.match_column, step.values,
                                        [tuple(g) for g in step.changes.get("guards", [])])
    if step.action is Action.REDACT:
        return _redact(conn, step, identities)
    if step.action in (Action.RECTIFY, Action.DETACH):
        return conn.update_rows(step.table, step.match_column, step.values, step.changes)
    if step.action is Action.ANONYMIZE:
        with conn.transaction():
            if unchanged is not None:
                _lock_checked(conn, step)
            with conn.guarded(step.table, unchanged):
                return _anonymize(conn, step, hash_value)
    return 0


ANY_VALUE = object()      # a column the request's own step sets to a value not known here
# By (source, table): the columns the request's own steps change, each with the value it
# leaves there (a frozenset of the values it may leave: keyed hashes of the rows' values;
# ANY_VALUE when that cannot be told: a redacted text).
OwnChanges = Mapping[tuple[str, str], Mapping[str, Any]]


def own_changes(steps: Sequence[Step], hash_value: Callable[[Any], str]
                ) -> dict[tuple[str, str], dict[str, Any]]:
    """What the request's own steps leave in the columns they change (see OwnChanges)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for s in steps:
        cols = out.setdefault((s.source, s.table), {})
        if s.status == "done" and not s.changes:
            # Recorded done: what it wrote was wiped with its values.
            if s.action in (Action.DETACH, Action.RECTIFY, Action.ANONYMIZE, Action.REDACT):
                cols.update(dict.fromkeys(s.columns, ANY_VALUE))
        elif s.action is Action.ANONYMIZE:
            hashed = s.changes.get("_hash_inputs") or {}
            for c, op in s.changes.items():
                if c.startswith("_"):
                    continue
                cols[c] = None if op == "null" else "[erased]" if op == "redact" else \
                    frozenset(hash_value(o) for _, o in hashed.get(c, []) if o is not None)
        elif s.action in (Action.DETACH, Action.RECTIFY):
            cols.update({c: v for c, v in s.changes.items() if not c.startswith("_")})
        elif s.action is Action.REDACT:
            cols.update(dict.fromkeys(s.columns, ANY_VALUE))
    return out


class RowsChanged(StepStopped):
    """Rows a step would change are not the rows the plan saw (their owner changed, or
    more rows match): nothing of the step was done."""


def check_owned(conn: Connector, step: Step, changed: OwnChanges | None = None) -> None:
    """Raise RowsChanged when a row the step would change is not one the plan saw: more
    rows match, or an owner column now names someone the plan did not see there (a row
    given to another person since); likewise the rows they lead to through owner
    references, up to the person, whose row is compared by its personal columns (an
    invoice given to another person: its lines are theirs now; a customer id naming
    another customer since). A column emptied since, or holding what the request's own
    steps leave there (``changed``: a run killed before it recorded them), does not count.
    Steps planned without digests (journals written before them) are not checked."""
    spec = step.changes.get(OWNED_BY)
    if not spec or not step.values:
        return
    changed = changed or {}
    verb = "delete" if step.action is Action.DELETE else "anonymize"
    unseen, differ = _unseen(conn.find_rows(step.table, step.match_column, step.values),
                             step.match_column.split(","), spec["columns"], spec["rows"],
                             changed.get((step.source, step.table), {}),
                             not spec.get("person", False))
    if unseen:
        raise RowsChanged(
            f"{unseen} row(s) of {step.source}.{step.table} that step {step.step_no} would "
            f"{verb} are not as the plan saw them (their {', '.join(differ)} changed since: "
            "another person's now, or new): this step changed nothing. Replan the request "
            "(govkit dsar replan) to review them")
    for parent in spec.get("parents", ()):
        unseen, differ = _unseen(
            conn.find_rows(parent["table"], parent["column"], parent["values"]),
            [parent["column"]], parent["columns"], parent["rows"],
            changed.get((step.source, parent["table"]), {}), not parent.get("person", False))
        if unseen:
            raise RowsChanged(
                f"{unseen} row(s) of {step.source}.{parent['table']} that the rows step "
                f"{step.step_no} would {verb} in {step.table} belong to are not as the plan "
                f"saw them (their {', '.join(differ)} changed since: another person's now, "
                "and so are those rows): this step changed nothing. Replan the request "
                "(govkit dsar replan) to review them")


def _unseen(rows: Sequence[dict[str, Any]], match: Sequence[str], owners: Sequence[str],
            seen_rows: Sequence[Sequence[Any]], own: Mapping[str, Any], emptied: bool
            ) -> tuple[int, list[str]]:
    """How many of ``rows`` fit none of the plan's digests (``[match digest, [owner
    digests]]``, each used once), and the columns that differ. A column fits when its
    digest is the plan's, when it holds what the request's own steps leave there
    (``own``), or, with ``emptied`` (owner columns; never a person's personal columns: a
    newcomer's row may have none yet), when it is empty now."""
    planned: dict[str, list[Sequence[str]]] = {}
    for m, seen in seen_rows:
        planned.setdefault(m, []).append(seen)

    def fits(r: dict[str, Any], c: str, d: str) -> bool:
        v = r.get(c)
        if row_digest(r, [c]) == d:
            return True
        if c in own:
            left = own[c]
            if left is ANY_VALUE:
                return True
            if isinstance(left, frozenset):
                return str(v) in left
            return v is None if left is None else (v is not None and str(v) == str(left))
        return emptied and v is None

    unseen, differ = 0, set[str]()
    for r in rows:
        candidates = planned.get(row_digest(r, list(match)), [])
        at = next((i for i, seen in enumerate(candidates) if all(
            fits(r, c, d) for c, d in zip(owners, seen, strict=True))), None)
        if at is not None:
            candidates.pop(at)
            continue
        unseen += 1
        if not candidates:
            differ.update(match)
        else:
            differ.update(c for c, d in zip(owners, candidates[0], strict=True)
                          if not fits(r, c, d))
    return unseen, sorted(differ)


def _anonymize(conn: Connector, step: Step, hash_value: Callable[[Any], str]) -> int:
    """The anonymization of one step's rows: fixed values, or keyed hashes per row."""
    ops = {c: op for c, op in step.changes.items() if not c.startswith("_")}
    fixed = {c: (None if op == "null" else "[erased]")
             for c, op in ops.items() if op != "hash"}
    hash_inputs: dict[str, list[list[Any]]] = step.changes.get("_hash_inputs") or {}
    if not hash_inputs:
        return conn.update_rows(step.table, step.match_column, step.values, fixed)
    # Each row's hashed columns get the keyed hash of that row's own value.
    per_row: dict[str, dict[str, Any]] = {}
    keys: dict[str, Any] = {}
    for col, pairs in hash_inputs.items():
        for key, original in pairs:
            per_row.setdefault(repr(key), {})[col] = (
                None if original is None else hash_value(original))
            keys[repr(key)] = key
    return sum(conn.update_rows(step.table, step.match_column, [keys[k]],
                                {**fixed, **assigned}) for k, assigned in per_row.items())


def _apply(conn: Connector, step: Step, hash_value: Callable[[Any], str],
           rolled_back: bool, identities: Sequence[Identity], leaving: Leaving,
           changed: OwnChanges) -> int:
    # On a source whose steps commit together, _preflight checked and locked every step's
    # rows in this same transaction: nothing can have changed them since.
    undone = (f"every change to {step.source} in this run was rolled back" if rolled_back
              else "earlier steps stay done")
    try:
        return apply_step(conn, step, hash_value, identities, leaving, changed, rolled_back)
    except StepStopped as e:
        raise e.with_outcome(undone) from None
    except GovernanceError:
        raise
    except Exception as e:
        # Only the first line (drivers add the failing row's values on the next ones), and
        # the values a database quotes in it masked (DuckDB's key "customer_id: 166").
        first = refused_by_database(e) or (str(e).splitlines()[0] if str(e) else "")
        hint = ""
        if conn.kind == "duckdb" and "foreign key" in first.lower():
            hint = (" (DuckDB refuses to change a key, unique or indexed column of a row "
                    "other rows point at through a foreign key: drop that foreign key in the "
                    "database; the inventory's references keep the link known to govkit)")
        raise GovernanceError(
            f"step {step.step_no} ({step.source}.{step.table}, {step.action}) failed: "
            f"{type(e).__name__}: {first}{hint}; {undone}. Fix the cause and run the request "
            "again: it resumes from the journal") from None


def _lock_checked(conn: Connector, step: Step) -> None:
    """Lock, where the database can, the rows ``check_owned`` reads for ``step``: its own
    and the rows they lead to (none is given away until the transaction ends)."""
    conn.lock_rows(step.table, step.match_column, step.values)
    for parent in (step.changes.get(OWNED_BY) or {}).get("parents", ()):
        conn.lock_rows(parent["table"], parent["column"], parent["values"])


def _preflight(conn: Connector, group: Sequence[Step], changed: OwnChanges) -> None:
    """Every step's rows checked (and locked where the database can) before the source's
    first change, so that a row given to another person since the plan stops the run
    before anything of it is done, even where steps commit one by one (DuckDB)."""
    for step in group:
        if step.action in (Action.DELETE, Action.ANONYMIZE) and OWNED_BY in step.changes:
            try:
                _lock_checked(conn, step)
                check_owned(conn, step, changed)
            except StepStopped as e:
                raise e.with_outcome(f"nothing in {step.source} was changed by this run") \
                    from None


def execute_journal(store: AuditStore, request_id: str, steps: Sequence[Step],
                    pool: ConnectorPool, hash_value: Callable[[Any], str],
                    on_step: StepHook | None = None,
                    identities: Sequence[Identity] = (),
                    renew: Callable[[Any], None] | None = None,
                    resumed: bool = False) -> list[Step]:
    """Run the pending steps, source by source; on a source that supports it all of its
    steps commit in one transaction. Returns the steps run now. ``renew`` and ``resumed``:
    see ``mark_done``."""
    pending = [s for s in steps if s.status == "pending"]
    sources = list(dict.fromkeys(s.source for s in pending))
    ran: list[Step] = []
    # What the request's own steps leave in the columns they change: on a resumed run,
    # every step's (one may have committed before the run was killed, unrecorded);
    # otherwise those done so far (a fresh run's check then sees another person's row that
    # merely looks erased, for what it is).
    changed = own_changes(steps if resumed else [s for s in steps if s.status == "done"],
                          hash_value)

    def applied(done: Sequence[Step]) -> None:
        if not resumed:
            for table, cols in own_changes(done, hash_value).items():
                changed.setdefault(table, {}).update(cols)

    for source in sources:
        conn = pool.get(source)
        group = [s for s in pending if s.source == source]
        leaving: dict[str, list[tuple[str, Sequence[Any]]]] = {}
        for s in group:
            if s.action is Action.DELETE:
                leaving.setdefault(s.table, []).append((s.match_column, s.values))
        if conn.atomic:
            with conn.transaction():
                _preflight(conn, group, changed)
                for step in group:
                    fault_point("journal.before_step")
                    step.rows_affected = _apply(conn, step, hash_value, True, identities,
                                                leaving, changed)
                    fault_point("journal.after_step")
                    if on_step:
                        on_step(step)
            fault_point("journal.after_commit")
            mark_done(store, request_id, group, renew, resumed)
            fault_point("journal.after_mark")
        else:
            _preflight(conn, group, changed)
            for step in group:
                fault_point("journal.before_step")
                step.rows_affected = _apply(conn, step, hash_value, False, identities,
                                            leaving, changed)
                applied([step])
                fault_point("journal.after_commit")
                mark_done(store, request_id, [step], renew, resumed)
                fault_point("journal.after_mark")
                if on_step:
                    on_step(step)
        for step in group:
            step.status = "done"
        if conn.atomic:
            applied(group)
        ran.extend(group)
    return ran
