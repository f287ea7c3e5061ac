"""The audit store: the DuckDB database that is the system of record for scans and actions.

Connections are short-lived (one per operation) so that several processes, e.g. Dagster
steps scanning sources in parallel, can share one store file: DuckDB lets one process
write at a time, and a writer that finds the file locked waits and retries. A burst of
operations with no work on a source in between (a command that only reads or writes the
store, the bookkeeping before and after a request's searches) runs inside
``AuditStore.session()``, which keeps the file open for the burst instead of opening it
for every operation.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from governance.audit_store import attachments
from governance.audit_store.audit_log import GENESIS_HASH, LogVerification, row_hash, verify_rows
from governance.audit_store.files import PRIVATE_MODE, private_umask, write_private_text
from governance.audit_store.rows import (
    AUDIT_RUN_ACTION,
    ROW_HASHES,
    TRACKED,
    all_digests,
    audit_run_problems,
    cross_check,
    current_digest,
    logged_digests,
)
from governance.audit_store.schema import MIGRATIONS, SCHEMA_VERSION
from governance.errors import AuditStoreError
from governance.ids import new_id
from governance.workers import worker_gone, worker_id

DEFAULT_STORE_PATH = "govkit-audit.duckdb"
T = TypeVar("T")
LOCK_WAIT_SECONDS = 60.0
LOCK_RETRY_FIRST, LOCK_RETRY_MAX = 0.05, 0.3   # seconds between tries for a locked store


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
    """Read and append to the audit store at ``path``.

    A store that does not exist is an AuditStoreError, unless ``create`` is true (the
    commands meant to create one: ``init``, ``scan``, ``demo``); a new store is created
    with mode 0600, migrated, and its master key's fingerprint recorded.
    """

    def __init__(self, path: str | os.PathLike | None = None, create: bool = False):
        self.path = Path(path) if path is not None else default_store_path()
        self._key = str(self.path.resolve())   # this file's entry among open sessions
        self.create = create
        self._migrated = False
        self.created_now = False

    @property
    def anchor_path(self) -> Path:
        """The anchor file beside the store: the last seq and head hash of its log."""
        return self.path.with_name(self.path.name + ".anchor")

    # -- connections ---------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[AuditStore]:
        """Keep the store open in this process for a burst of operations (nested sessions
        share it; any AuditStore of the same file in this process uses it meanwhile).

        Other processes wait while a session is open, so open one only around work on the
        store, never around a search or a change on a source.
        """
        if not self._migrated and not self.path.exists():
            self._open()   # refused, or created: before the file is opened below
        key = self._key
        with _sessions_lock:
            held = _sessions.get(key)
            if held is not None:
                held[1] += 1
        if held is None:
            conn = self._connect_raw()
            with _sessions_lock:
                held = _sessions.setdefault(key, [conn, 0, False])
                held[1] += 1
            if held[0] is not conn:
                self._close_raw(conn)
        try:
            if not self._migrated:
                self._open()   # checked through the connection now held
            yield self
        finally:
            with _sessions_lock:
                held[1] -= 1
                last = held[1] == 0
                if last:
                    del _sessions[key]
            if last:
                try:
                    if held[2]:   # the log grew in this burst: the anchor follows once
                        with _commit_lock:
                            self._advance_anchor(held[0])
                finally:
                    self._close_raw(held[0])

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation; waits while another process holds the lock."""
        if not self._migrated:
            self._open()
        held = _sessions.get(self._key) if _sessions and not read_only else None
        with private_umask():
            conn = attachments.cursor(self._key) if held is not None \
                else self._connect_raw(read_only)
            try:
                conn.execute("SET TimeZone = 'UTC'")
                yield conn
            except duckdb.Error as e:
                if _is_corruption(e):
                    raise self._corrupt(e) from None
                raise
            finally:
                if held is not None:
                    conn.close()
                else:
                    self._close_raw(conn)

    def _connect_raw(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to this store's file, opened for it (see ``attachments``); give
        it back with ``_close_raw``."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = LOCK_RETRY_FIRST
        while True:
            try:
                attachments.attach(self._key, read_only)
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise self._corrupt(e) from None
                # Short, jittered retries: a burst holds the store for tens of
                # milliseconds, and long sleeps let others overtake a waiter again and again.
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, LOCK_RETRY_MAX)
                continue
            except duckdb.Error as e:
                raise self._corrupt(e) from None
            try:
                return attachments.cursor(self._key)
            except BaseException:
                attachments.detach(self._key)
                raise

    def _close_raw(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Close a connection from ``_connect_raw`` and let the file go."""
        try:
            conn.close()
        finally:
            attachments.detach(self._key)

    def _corrupt(self, e: BaseException) -> AuditStoreError:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        low = first.lower()
        hint = " (corrupt or truncated? restore it from a backup)" if any(
            w in low for w in ("corrupt", "checksum", "not a valid", "read enough", "truncat")
        ) else ""
        return AuditStoreError(f"cannot open audit store {self.path}: {first}{hint}")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction, committed on success, rolled back on error.

        After a commit that appended to the audit log, the anchor file is advanced while
        this process still holds the store (inside a session: once, when it ends), so
        anchors are written in log order (a missing anchor is written again only by the
        next append).
        """
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
                with _commit_lock:
                    conn.execute("COMMIT")
                    if _appended.pop(id(conn), False):
                        held = _sessions.get(self._key)
                        if held is not None:
                            held[2] = True
                        else:
                            self._advance_anchor(conn)
            except BaseException:
                _appended.pop(id(conn), None)
                try:
                    conn.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise

    def _open(self) -> None:
        """Check the store exists (or create it), migrate it, check its master key."""
        exists = self.path.exists()
        if not exists and not self.create:
            raise AuditStoreError(f"audit store {self.path} does not exist (create it with "
                                  "govkit init or govkit scan)")
        if not exists:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.created_now = True
        self._migrated = True
        try:
            if not (exists and self._current()):
                self._migrate(creating=not exists)
        except BaseException:
            self._migrated = False
            raise
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            if not exists and p.exists():
                os.chmod(p, PRIVATE_MODE)
        from governance.crypto.keyring import check_master_key, ensure_master_key

        if self.created_now:
            try:
                ensure_master_key(self)
            except BaseException:
                # Nothing half-done: a store without its key is not left behind.
                for p in (self.path, self.path.with_name(self.path.name + ".wal")):
                    p.unlink(missing_ok=True)
                self._migrated = self.created_now = False
                raise
        else:
            check_master_key(self)

    def _current(self) -> bool:
        """True when the store has every migration this govkit knows (read only, cheap)."""
        with self.connect() as conn:
            try:
                # Every row read (not max(), which the column statistics answer): a
                # damaged block is found here, as a migration would find it.
                rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
            except duckdb.CatalogException:
                return False
        return max((r[0] for r in rows), default=None) == SCHEMA_VERSION

    def _migrate(self, creating: bool = False) -> None:
        with self.transaction() as conn:
            has_table = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_catalog = "
                "current_database() AND table_name = 'schema_migrations'").fetchall()[0][0]
            if not has_table:
                others = conn.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_catalog = "
                    "current_database()").fetchall()[0][0]
                if others and not creating:
                    raise AuditStoreError(f"{self.path} is a DuckDB database but not a govkit "
                                          "audit store (no schema_migrations table)")
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
            new_meta = META_VERSION not in applied
            for m in MIGRATIONS:
                if m.version in applied:
                    continue
                for stmt in m.statements:
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                             [m.version, m.description, utcnow()])
            if new_meta:
                _start_meta(conn, upgraded=bool(applied))

    def meta(self, name: str) -> str | None:
        """A value of the store's ``store_meta`` table (None when not set)."""
        with self.connect() as conn:
            return get_meta(conn, name)

    def schema_version(self) -> int:
        """The highest migration applied to this store."""
        with self.connect() as conn:
            return conn.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0]

    # -- scans ---------------------------------------------------------------------
    def start_scan(self, sources: Sequence[str], mode: str, inventory_path: str | None,
                   inventory_digest: str | None, sample_rows: int | None, seed: int | None,
                   orchestrator_run_id: str | None = None) -> str:
        """Record the start of a scan run and return its id."""
        run_id = new_id("scan", f"{utcnow():%Y%m%dT%H%M%SZ}")
        self.mark_interrupted_scans()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO scan_runs (run_id, started_at, status, mode, inventory_path, "
                "inventory_digest, sources, sample_rows, seed, orchestrator_run_id, worker) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, utcnow(), mode, inventory_path, inventory_digest, list(sources),
                 sample_rows, seed, orchestrator_run_id, worker_id()])
        return run_id

    def mark_interrupted_scans(self) -> list[str]:
        """Scans still ``running`` whose process ran on this host and is gone (killed) are
        set ``interrupted``; their ids. A scan from another host is left as it is."""
        running = self.query("SELECT run_id, worker FROM scan_runs WHERE status = 'running' "
                             "AND worker IS NOT NULL")
        gone = [r["run_id"] for r in running if worker_gone(r["worker"])]
        if gone:
            self.write(lambda conn: conn.executemany(
                "UPDATE scan_runs SET status = 'interrupted', finished_at = ?, error = ? "
                "WHERE run_id = ? AND status = 'running'",
                [[utcnow(), "its process ended before the scan finished (killed?)", r]
                 for r in gone]))
        return gone

    def finish_scan(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record how a scan run ended."""
        with self.transaction() as conn:
            conn.execute("UPDATE scan_runs SET finished_at = ?, status = ?, error = ? "
                         "WHERE run_id = ?", [utcnow(), status, error, run_id])

    def record_tables(self, run_id: str, rows: Sequence[dict[str, Any]],
                      actor: str = "govkit") -> None:
        """Store the declared-versus-found state of tables for a run (logged with the
        rows' hashes)."""
        self._insert("source_tables", run_id, rows, actor, "scan.tables_recorded")

    def record_findings(self, run_id: str, rows: Sequence[dict[str, Any]],
                        actor: str = "govkit") -> None:
        """Store column findings for a run (masked samples only; logged with the rows'
        hashes)."""
        prepared = []
        for r in rows:
            r = dict(r)
            r["evidence"] = json.dumps(r.get("evidence") or {}, sort_keys=True, default=str)
            prepared.append(r)
        self._insert("column_findings", run_id, prepared, actor, "scan.findings_recorded")

    def _insert(self, table: str, run_id: str, rows: Sequence[dict[str, Any]], actor: str,
                action: str) -> None:
        if not rows:
            return
        columns = ["run_id", *rows[0].keys()]
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        sources = sorted({str(r["source"]) for r in rows})

        def insert(conn: duckdb.DuckDBPyConnection) -> None:
            conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})',  # noqa: S608
                             [[run_id, *r.values()] for r in rows])
            record_rows(conn, [(table, (run_id, s)) for s in sources], actor, action, run_id,
                        {"rows": len(rows)})

        self.write(insert)

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

    def log_events(self, actions: Sequence[str], target: str | None = None,
                   other_than: str | None = None) -> list[LogEntry]:
        """Audit-log rows of ``actions`` in order: of ``target`` only, or of every target but
        ``other_than``."""
        marks = ", ".join("?" * len(actions))
        where, params = f"action IN ({marks})", list(actions)
        if target is not None:
            where, params = where + " AND target = ?", [*params, target]
        if other_than is not None:
            where, params = where + " AND target <> ?", [*params, other_than]
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT seq, logged_at, actor, action, target, details, row_hash FROM "  # noqa: S608
                f"audit_log WHERE {where} ORDER BY seq", params).fetchall()
        return [LogEntry(r[0], r[1], r[2], r[3], r[4],
                         json.loads(r[5]) if r[5] else None, r[6]) for r in rows]

    def verify_log(self, anchor_file: str | os.PathLike | None = None,
                   expect_head: str | None = None, expect_count: int | None = None,
                   require_anchor: bool = False) -> LogVerification:
        """Check the audit log's chain, its head, its high-water mark, the anchor (the file
        given, else ``<store>.anchor`` when present; ``require_anchor``: its absence is a
        problem), an expected head hash recorded elsewhere, and that the tracked tables'
        rows match the hashes logged with their last change."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT seq, logged_at, actor, action, target, details, prev_hash, row_hash "
                "FROM audit_log ORDER BY seq").fetchall()
            head = _first(conn.execute(
                "SELECT seq, row_hash FROM audit_log_head WHERE id = 1").fetchall())
            meta = dict(conn.execute("SELECT name, value FROM store_meta").fetchall())
            details = [json.loads(r[5]) if isinstance(r[5], str) else r[5] for r in rows]
            row_problems = cross_check(conn, logged_digests(details))
            row_problems += audit_run_problems(conn, [
                (str(r[4]), d) for r, d in zip(rows, details, strict=True)
                if r[3] == AUDIT_RUN_ACTION and isinstance(d, dict)])
        result = verify_rows(rows, tuple(head) if head else None, details)
        last_seq = rows[-1][0] if rows else 0
        by_seq = {r[0]: r[7] for r in rows}
        hw = meta.get("log_high_water")
        if hw is None:
            result.problems.append("store_meta has no log_high_water (deleted?)")
        elif int(hw) > last_seq:
            result.problems.append(
                f"the log has held {int(hw)} rows but now ends at seq {last_seq} "
                + ("(log emptied)" if not rows else "(rows deleted from the end)"))
        elif int(hw) < last_seq:
            result.problems.append(f"store_meta log_high_water {hw} is behind the log "
                                   f"(seq {last_seq}): edited?")
        logged_fp = [(r[0], d.get("fingerprint")) for r, d in zip(rows, details, strict=True)
                     if r[3] == KEY_RECORDED_ACTION and isinstance(d, dict)]
        if logged_fp and meta.get("key_fingerprint") != logged_fp[-1][1]:
            result.problems.append("store_meta key_fingerprint does not match the one logged "
                                   f"at seq {logged_fp[-1][0]}")
        result.problems.extend(row_problems)
        path = Path(anchor_file) if anchor_file is not None else self.anchor_path
        if path.exists() or anchor_file is not None:
            try:
                anchor = read_anchor(path)
            except AuditStoreError as e:
                result.problems.append(str(e))
            else:
                result.anchor = f"{path} (seq {anchor['seq']})"
                if anchor.get("store_id") and anchor["store_id"] != meta.get("store_id"):
                    result.problems.append(f"anchor {path} belongs to another store "
                                           f"(store_id {anchor['store_id']})")
                result.problems.extend(_against(by_seq, last_seq, anchor["head"],
                                                int(anchor["seq"]), f"anchor {path}"))
        elif require_anchor and rows:
            result.problems.append(f"anchor file {path} is missing (deleted?); record the head "
                                   "elsewhere with `govkit audit anchor --out FILE`, or pass "
                                   "--no-anchor to check the chain alone")
        if expect_head is not None or expect_count is not None:
            result.problems.extend(_against(by_seq, last_seq, expect_head, expect_count,
                                            "expected head"))
        return result

    def write_anchor(self, out: str | os.PathLike | None = None) -> dict[str, Any]:
        """Write the log's current head (seq, hash, time) to ``out`` (default: the anchor
        beside the store), mode 0600; return it."""
        with self.connect() as conn:
            anchor = _anchor_now(conn)
        if anchor is None:
            raise AuditStoreError(f"the audit log of {self.path} is empty: nothing to anchor")
        write_private_text(out or self.anchor_path, json.dumps(anchor, indent=2) + "\n")
        return anchor

    def _advance_anchor(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Move the anchor beside the store to the log's head, only forward along the same
        chain: an anchor left by a longer or different log is kept as evidence."""
        try:
            anchor = _anchor_now(conn)
        except duckdb.CatalogException:
            return   # during the migration of an older store
        if anchor is None:
            return
        path = self.anchor_path
        if path.exists():
            try:
                old = read_anchor(path)
            except AuditStoreError:
                return
            same_store = old.get("store_id") == anchor["store_id"]
            if not same_store and not self.created_now:
                return
            if same_store:
                if int(old["seq"]) >= anchor["seq"]:
                    return
                at = _first(conn.execute("SELECT row_hash FROM audit_log WHERE seq = ?",
                                         [int(old["seq"])]).fetchall())
                if at is None or at[0] != old["head"]:
                    return
        write_private_text(path, json.dumps(anchor, indent=2) + "\n")


KEY_RECORDED_ACTION = "store.key_fingerprint_recorded"
ANCHOR_FORMAT = "govkit-audit-anchor-1"
META_VERSION = 3
_commit_lock = threading.Lock()
_appended: dict[int, bool] = {}   # connections whose open transaction appended to the log
# Stores held open by a session: resolved path -> [connection, depth, anchor due]. While
# one is held, every new connection to the same file uses the attachment already open.
_sessions: dict[str, list[Any]] = {}
_sessions_lock = threading.Lock()


def get_meta(conn: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """A value of ``store_meta`` read inside the caller's connection."""
    row = _first(conn.execute("SELECT value FROM store_meta WHERE name = ?", [name]).fetchall())
    return row[0] if row else None


def set_meta(conn: duckdb.DuckDBPyConnection, name: str, value: str) -> None:
    """Set a value of ``store_meta`` inside the caller's transaction."""
    conn.execute("INSERT INTO store_meta VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                 "value = excluded.value, updated_at = excluded.updated_at",
                 [name, value, utcnow()])


def _start_meta(conn: duckdb.DuckDBPyConnection, upgraded: bool) -> None:
    """Fill ``store_meta`` when migration 3 is applied; an older store's existing rows are
    logged once (their hashes), as the base the cross-check starts from."""
    set_meta(conn, "store_id", f"store-{uuid.uuid4().hex}")
    head = _first(conn.execute("SELECT seq FROM audit_log_head WHERE id = 1").fetchall())
    set_meta(conn, "log_high_water", str(head[0] if head else 0))
    if not upgraded:
        return
    groups = [[name, k, d] for name in TRACKED for k, d in all_digests(conn, name).items()]
    if groups:
        append_log_row(conn, "govkit", "store.rows_baselined", None, {
            "note": "rows present when the row cross-check was introduced (schema 3); their "
                    "earlier history is not proven by the log",
            ROW_HASHES: groups})


def _anchor_now(conn: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    head = _first(conn.execute("SELECT seq, row_hash FROM audit_log_head WHERE id = 1")
                  .fetchall())
    if head is None:
        return None
    return {"format": ANCHOR_FORMAT, "store_id": get_meta(conn, "store_id"),
            "seq": int(head[0]), "head": head[1], "written_at": utcnow().isoformat()}


def read_anchor(path: str | os.PathLike) -> dict[str, Any]:
    """An anchor file's content; AuditStoreError naming the file when it is not one."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        if value.get("format") != ANCHOR_FORMAT:
            raise ValueError("format")
        int(value["seq"])
        str(value["head"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise AuditStoreError(f"anchor {path}: not a govkit audit anchor (unreadable or "
                              "edited)") from None
    return value


def _against(by_seq: dict[int, str], last_seq: int, head: str | None, seq: int | None,
             what: str) -> list[str]:
    """Problems comparing the log with a head recorded elsewhere."""
    if seq is not None and seq > last_seq:
        return [f"{what}: the log held at least {seq} rows but now ends at seq {last_seq} "
                "(rows deleted from the end, or the log emptied)"]
    if head is None:
        return []
    if seq is not None:
        if by_seq.get(seq) != head:
            return [f"{what}: seq {seq} does not have hash {head} (chain rewritten)"]
        return []
    if head not in by_seq.values():
        return [f"{what}: no row of the log has hash {head} (rows deleted or chain "
                "rewritten)"]
    return []


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
    set_meta(conn, "log_high_water", str(seq))
    _appended[id(conn)] = True
    return seq


def record_rows(conn: duckdb.DuckDBPyConnection, groups: Sequence[tuple[str, Any]],
                actor: str, action: str, target: str | None = None,
                details: Mapping[str, Any] | None = None) -> int:
    """Log ``action`` with the hashes of the rows each ``(table, key)`` group now holds,
    inside the caller's transaction, after the change; ``verify-log`` checks the tables
    against them. Return the log row's seq."""
    hashes = [[table, *current_digest(conn, table, key)] for table, key in groups]
    return append_log_row(conn, actor, action, target, {**(details or {}), ROW_HASHES: hashes})


def record_row(conn: duckdb.DuckDBPyConnection, table: str, key: str | Sequence[str],
               actor: str, action: str, details: Mapping[str, Any] | None = None,
               target: str | None = None) -> int:
    """The one way to log a change of a tracked table (dsar_requests, dsar_steps,
    legal_holds, column_findings, source_tables): ``action`` with the hash of the rows of
    group ``key`` (e.g. a request id) as they are now. ``target`` defaults to the key."""
    return record_rows(conn, [(table, key)], actor, action,
                       target if target is not None else
                       (key if isinstance(key, str) else "/".join(key)), details)


def _is_corruption(e: BaseException) -> bool:
    if isinstance(e, duckdb.TransactionException | duckdb.ConstraintException):
        return False
    text = str(e).lower()
    return isinstance(e, duckdb.IOException | duckdb.SerializationException) or \
        "corrupt" in text or "checksum" in text


def _first(rows: list[tuple]) -> tuple | None:
    return rows[0] if rows else None
