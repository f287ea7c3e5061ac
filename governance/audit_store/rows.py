"""Row hashes: the audit log proves the current content of the record tables.

Every change to a tracked table (requests, their journal, legal holds, scan findings and
table states) is logged, in the same transaction, with the sha256 of the rows it left
(``record_row``). ``verify-log`` recomputes the hashes of the rows now in the tables and
compares them with the latest hash the chain holds for each: a row edited, inserted or
deleted outside govkit is reported.

Rows are hashed in groups (one request, one request's journal, one hold, one source's
findings in one scan run) so that a scan logs one hash per source, not one per column.
A row's hash covers its non-NULL columns, so a column added by a later migration (NULL in
old rows) leaves the hashes of old rows unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb


@dataclass(frozen=True)
class TrackedTable:
    """A table whose rows the audit log must prove."""

    name: str
    group_by: tuple[str, ...]       # the columns of a group's key
    order_by: tuple[str, ...]       # the primary key, to hash a group's rows in order
    excluded: frozenset[str] = frozenset()   # coordination state, not record (leases)
    deleted_means: str = "row deleted"


TRACKED: dict[str, TrackedTable] = {t.name: t for t in (
    TrackedTable("dsar_requests", ("request_id",), ("request_id",),
                 frozenset({"lease_owner", "lease_until"}), "request deleted"),
    TrackedTable("dsar_steps", ("request_id",), ("request_id", "step_no"),
                 deleted_means="journal deleted"),
    TrackedTable("legal_holds", ("hold_id",), ("hold_id",),
                 deleted_means="hold deleted: a hold lifted without a logged release"),
    TrackedTable("column_findings", ("run_id", "source"),
                 ("run_id", "source", "table_name", "column_name"),
                 deleted_means="findings deleted"),
    TrackedTable("source_tables", ("run_id", "source"), ("run_id", "source", "table_name"),
                 deleted_means="table states deleted"),
)}

ROW_HASHES = "row_hashes"
"""The key of an audit-log entry's details that holds ``[table, group key, sha256]``
triples (the sha256 is null when the group was emptied on purpose)."""


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def row_text(names: Sequence[str], row: Sequence[Any], excluded: Iterable[str] = ()) -> str:
    """The canonical text of one row: its non-NULL, non-excluded columns as sorted JSON."""
    skip = set(excluded)
    body = {n: _plain(v) for n, v in zip(names, row, strict=True)
            if v is not None and n not in skip}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def group_digest(texts: Iterable[str]) -> str:
    """The sha256 of a group's rows (their canonical texts, in primary-key order)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\n")
    return h.hexdigest()


def group_key(values: Sequence[Any]) -> str:
    """How a group is named in the log: its key values joined by ``/``."""
    return "/".join(str(v) for v in values)


def _key_values(table: TrackedTable, key: str | Sequence[str]) -> list[str]:
    values = [key] if isinstance(key, str) else list(key)
    if len(values) != len(table.group_by):
        raise ValueError(f"{table.name}: a group key has {len(table.group_by)} part(s) "
                         f"({', '.join(table.group_by)}), got {values!r}")
    return values


def current_digest(conn: duckdb.DuckDBPyConnection, table: str,
                   key: str | Sequence[str]) -> tuple[str, str | None]:
    """The group key and the sha256 of the rows of ``table`` in group ``key`` now (None
    when the group has no rows)."""
    t = TRACKED[table]
    values = _key_values(t, key)
    where = " AND ".join(f'"{c}" = ?' for c in t.group_by)
    order = ", ".join(f'"{c}"' for c in t.order_by)
    cur = conn.execute(f'SELECT * FROM "{t.name}" WHERE {where} ORDER BY {order}',  # noqa: S608
                       values)
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if not rows:
        return group_key(values), None
    return group_key(values), group_digest(row_text(names, r, t.excluded) for r in rows)


def all_digests(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """The sha256 of every group of ``table`` now, by group key."""
    t = TRACKED[table]
    order = ", ".join(f'"{c}"' for c in t.order_by)
    cur = conn.execute(f'SELECT * FROM "{t.name}" ORDER BY {order}')  # noqa: S608
    names = [d[0] for d in cur.description]
    idx = [names.index(c) for c in t.group_by]
    out: dict[str, str] = {}
    current: str | None = None
    h = hashlib.sha256()
    while True:
        batch = cur.fetchmany(10_000)
        if not batch:
            break
        for r in batch:
            k = group_key([r[i] for i in idx])
            if k != current:
                if current is not None:
                    out[current] = h.hexdigest()
                current, h = k, hashlib.sha256()
            h.update(row_text(names, r, t.excluded).encode())
            h.update(b"\n")
    if current is not None:
        out[current] = h.hexdigest()
    return out


def logged_digests(details_list: Iterable[Any]) -> dict[tuple[str, str], str | None]:
    """The latest hash the log holds for each (table, group key), from entries' details
    in log order."""
    latest: dict[tuple[str, str], str | None] = {}
    for details in details_list:
        if not isinstance(details, dict):
            continue
        for item in details.get(ROW_HASHES) or ():
            if isinstance(item, list) and len(item) == 3:
                latest[(str(item[0]), str(item[1]))] = item[2]
    return latest


def cross_check(conn: duckdb.DuckDBPyConnection,
                logged: Mapping[tuple[str, str], str | None]) -> list[str]:
    """Problems found comparing the tracked tables with the hashes the log holds."""
    problems: list[str] = []
    for name, t in TRACKED.items():
        now = all_digests(conn, name)
        for k, digest in now.items():
            if (name, k) not in logged:
                problems.append(f"{name} {k}: rows not recorded in the audit log "
                                "(inserted outside govkit)")
            elif logged[(name, k)] != digest:
                problems.append(f"{name} {k}: rows differ from the hash logged with their "
                                "last change (edited outside govkit)")
        for (table, k), last in logged.items():
            if table == name and last is not None and k not in now:
                problems.append(f"{name} {k}: {t.deleted_means}")
    return problems


AUDIT_RUN_ACTION = "audit.run_recorded"
"""The audit-log action of a compliance audit run; its details hold ``status`` and
``checks_sha256`` (over the run's rows of ``audit_checks``)."""


def audit_checks_digest(conn: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """The sha256 an audit run's log row holds over its check rows, from the table now."""
    rows = conn.execute(
        "SELECT run_id, seq, check_id, title, status, severity, articles, source, table_name, "
        "column_name, evidence, remediation, engine FROM audit_checks WHERE run_id = ? "
        "ORDER BY seq", [run_id]).fetchall()
    as_lists = [[*r[:6], list(r[6]), *r[7:]] for r in rows]
    return hashlib.sha256(json.dumps(as_lists, default=str, sort_keys=True).encode()).hexdigest()


def audit_run_problems(conn: duckdb.DuckDBPyConnection,
                       logged: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Compliance audit runs whose rows differ from what their log row recorded: checks
    edited or deleted (a failed check turned into a pass), the run's status changed or
    the run deleted. ``logged``: (run id, details) of each ``AUDIT_RUN_ACTION`` row."""
    problems = []
    runs = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT run_id, status, counts FROM audit_runs").fetchall()}
    for run_id, details in logged:
        want = details.get("checks_sha256")
        if run_id not in runs:
            problems.append(f"audit run {run_id}: deleted (its log row remains)")
            continue
        status, counts = runs[run_id]
        if details.get("status") is not None and status != details["status"]:
            problems.append(f"audit run {run_id}: status {status!r}, logged "
                            f"{details['status']!r} (edited outside govkit)")
        if details.get("counts") is not None and _json_value(counts) != details["counts"]:
            problems.append(f"audit run {run_id}: its counts differ from those logged "
                            "(edited outside govkit)")
        if want is not None and audit_checks_digest(conn, run_id) != want:
            problems.append(f"audit run {run_id}: its checks differ from the hash logged with "
                            "the run (edited or deleted outside govkit)")
    return problems


def _json_value(value: Any) -> Any:
    """A JSON column's value as Python (DuckDB returns JSON as text)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
