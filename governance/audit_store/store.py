"""The audit store: the DuckDB database that is the system of record for scans and actions.

Connections are short-lived (one per operation) so that several processes, e.g. Dagster
steps scanning sources in parallel, can share one store file: DuckDB lets one process
write at a time, and a writer that finds the file locked waits and retries.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from governance.audit_store.audit_log import GENESIS_HASH, LogVerification, row_hash, verify_rows
from governance.audit_store.schema import MIGRATIONS, SCHEMA_VERSION
from governance.errors import AuditStoreError

DEFAULT_STORE_PATH = "govkit-audit.duckdb"
T = TypeVar("T")
LOCK_WAIT_SECONDS = 60.0


def default_store_path() -> Path:
    """The store path from GOVKIT_AUDIT_STORE, else ./govkit-audit.duckdb."""
    return Path(os.environ.get("GOVKIT_AUDIT_STORE", DEFAULT_STORE_PATH))


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class LogEntry:
    """One row of the audit log."""

    seq: int
    logged_at: datetime
    actor: str
    action: str
    target: str | None
    details: Any
    row_hash: str


class AuditStore:
    """Read and append to the audit store at ``path`` (created and migrated on first use)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self._migrated = False

    # -- connections ---------------------------------------------------------------
    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation; waits while another process holds the lock."""
        if not self._migrated:
            self._migrate()
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise AuditStoreError(
                        f"cannot open audit store {self.path}: {str(e).splitlines()[0]}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except duckdb.Error as e:
                raise AuditStoreError(
                    f"cannot open audit store {self.path}: {str(e).splitlines()[0]}") from None
        try:
            conn.execute("SET TimeZone = 'UTC'")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction, committed on success, rolled back on error."""
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        self._migrated = True
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.transaction() as conn:
            conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL)""")
            rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
            applied = {r[0] for r in rows}
            newer = [v for v in applied if v > SCHEMA_VERSION]
            if newer:
                raise AuditStoreError(
                    f"audit store {self.path} has schema version {max(newer)}, newer than this "
                    f"govkit understands ({SCHEMA_VERSION}); upgrade govkit")
            for m in MIGRATIONS:
                if m.version in applied:
                    continue
                for stmt in m.statements:
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                             [m.version, m.description, utcnow()])

    def schema_version(self) -> int:
        """The highest migration applied to this store."""
        with self.connect() as conn:
            return conn.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0]

    # -- scans ---------------------------------------------------------------------
    def start_scan(self, sources: Sequence[str], mode: str, inventory_path: str | None,
                   inventory_digest: str | None, sample_rows: int | None, seed: int | None,
                   orchestrator_run_id: str | None = None) -> str:
        """Record the start of a scan run and return its id."""
        run_id = f"scan-{utcnow():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO scan_runs (run_id, started_at, status, mode, inventory_path, "
                "inventory_digest, sources, sample_rows, seed, orchestrator_run_id) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                [run_id, utcnow(), mode, inventory_path, inventory_digest, list(sources),
                 sample_rows, seed, orchestrator_run_id])
        return run_id

    def finish_scan(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record how a scan run ended."""
        with self.transaction() as conn:
            conn.execute("UPDATE scan_runs SET finished_at = ?, status = ?, error = ? "
                         "WHERE run_id = ?", [utcnow(), status, error, run_id])

    def record_tables(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Store the declared-versus-found state of tables for a run."""
        self._insert("source_tables", run_id, rows)

    def record_findings(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Store column findings for a run (masked samples only)."""
        prepared = []
        for r in rows:
            r = dict(r)
            r["evidence"] = json.dumps(r.get("evidence") or {}, sort_keys=True, default=str)
            prepared.append(r)
        self._insert("column_findings", run_id, prepared)

    def _insert(self, table: str, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = ["run_id", *rows[0].keys()]
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(columns)
        with self.transaction() as conn:
            conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                             [[run_id, *r.values()] for r in rows])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts."""
        with self.connect() as conn:
            cur = conn.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def scan_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent scan runs, newest first."""
        return self.query("SELECT * FROM scan_runs ORDER BY started_at DESC LIMIT ?", [limit])

    def latest_run_id(self) -> str | None:
        """The id of the newest successful scan run, if any."""
        rows = self.query("SELECT run_id FROM scan_runs WHERE status = 'succeeded' "
                          "ORDER BY started_at DESC LIMIT 1")
        return rows[0]["run_id"] if rows else None

    def findings(self, run_id: str) -> list[dict[str, Any]]:
        """The column findings of a run."""
        return self.query("SELECT * FROM column_findings WHERE run_id = ? "
                          "ORDER BY source, table_name, column_name", [run_id])

    def tables(self, run_id: str) -> list[dict[str, Any]]:
        """The table states of a run."""
        return self.query("SELECT * FROM source_tables WHERE run_id = ? "
                          "ORDER BY source, table_name", [run_id])

    # -- audit log -----------------------------------------------------------------
    def write(self, change: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``change(conn)`` in one transaction, retried when a concurrent writer
        conflicts (it must be safe to run again); return what it returns."""
        for attempt in range(40):
            try:
                with self.transaction() as conn:
                    return change(conn)
            except duckdb.TransactionException:
                time.sleep(0.01 * (attempt + 1))
        raise AuditStoreError(f"could not write to the audit store {self.path}: contention")

    def append_log(self, actor: str, action: str, target: str | None = None,
                   details: Any = None) -> int:
        """Append one row to the hash-chained audit log and return its seq."""
        return self.write(lambda conn: append_log_row(conn, actor, action, target, details))

    def log_entries(self, limit: int | None = None) -> list[LogEntry]:
        """Audit-log rows in order (the last ``limit`` when given)."""
        sql = ("SELECT seq, logged_at, actor, action, target, details, row_hash FROM audit_log "
               "ORDER BY seq")
        with self.connect() as conn:
            rows = conn.execute(sql).fetchall()
        if limit is not None:
            rows = rows[-limit:]
        return [LogEntry(r[0], r[1], r[2], r[3], r[4],
                         json.loads(r[5]) if r[5] else None, r[6]) for r in rows]

    def verify_log(self) -> LogVerification:
        """Check that no audit-log row was edited, deleted or inserted out of the chain."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT seq, logged_at, actor, action, target, details, prev_hash, row_hash "
                "FROM audit_log ORDER BY seq").fetchall()
            head = _first(conn.execute(
                "SELECT seq, row_hash FROM audit_log_head WHERE id = 1").fetchall())
        return verify_rows(rows, tuple(head) if head else None)


def append_log_row(conn: duckdb.DuckDBPyConnection, actor: str, action: str,
                   target: str | None, details: Any) -> int:
    """Append one audit-log row inside the caller's transaction (so that a change and its
    record commit together) and return its seq."""
    head = _first(conn.execute("SELECT seq, row_hash FROM audit_log_head WHERE id = 1").fetchall())
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    now = utcnow()
    digest = row_hash(prev, seq, now, actor, action, target, details)
    conn.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 [seq, now, actor, action, target,
                  json.dumps(details, sort_keys=True, default=str), prev, digest])
    conn.execute("INSERT INTO audit_log_head VALUES (1, ?, ?) ON CONFLICT (id) "
                 "DO UPDATE SET seq = excluded.seq, row_hash = excluded.row_hash", [seq, digest])
    return seq


def _first(rows: list[tuple]) -> tuple | None:
    return rows[0] if rows else None
