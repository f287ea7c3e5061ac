"""Audit-store files opened by this process, each attached to one in-memory DuckDB.

Opening a DuckDB file as a database of its own starts a new DuckDB instance: about 15 ms,
even for an empty store. Attaching the file to an instance this process already has costs
about 2 ms, and detaching it closes the file as closing a connection would: the WAL is
checkpointed and the lock released for other processes. Every AuditStore of one file in
this process shares one attachment, counted: the file is detached when the last user
lets it go.
"""

from __future__ import annotations

import itertools
import os
import threading

import duckdb

_lock = threading.Lock()
_host: duckdb.DuckDBPyConnection | None = None
_host_pid = 0
_attached: dict[str, list] = {}   # file path -> [alias, users, read only]
_names = itertools.count(1)


def _quoted(alias: str) -> str:
    return '"' + alias.replace('"', '""') + '"'


def _instance() -> duckdb.DuckDBPyConnection:
    """The in-memory instance files are attached to (a new one in a forked child: a
    DuckDB instance must not cross a fork)."""
    global _host, _host_pid
    if _host is None or _host_pid != os.getpid():
        _host, _host_pid = duckdb.connect(":memory:"), os.getpid()
        _attached.clear()
    return _host


def attach(path: str, read_only: bool = False) -> None:
    """Open ``path`` for one more user (attached if no one in this process has it open).
    DuckDB's errors pass through: a file another process holds raises IOException."""
    with _lock:
        host = _instance()
        found = _attached.get(path)
        if found is not None:
            if found[2] and not read_only:
                raise duckdb.ConnectionException(
                    f"{path} is open read-only in this process; it cannot be written now")
            found[1] += 1
            return
        alias = f"gk_store_{next(_names)}"
        host.execute(f"ATTACH ? AS {_quoted(alias)}" + (" (READ_ONLY)" if read_only else ""),
                     [path])
        _attached[path] = [alias, 1, read_only]


def cursor(path: str) -> duckdb.DuckDBPyConnection:
    """A new connection whose default database is the attached ``path``."""
    with _lock:
        found = _attached.get(path)
        if found is None:
            raise duckdb.ConnectionException(f"{path} is not open in this process")
        conn = _instance().cursor()
        alias = found[0]
    try:
        conn.execute(f"USE {_quoted(alias)}")
    except BaseException:
        conn.close()
        raise
    return conn


def detach(path: str) -> None:
    """Let ``path`` go for one user; the last one detaches it (checkpointed, unlocked)."""
    with _lock:
        found = _attached.get(path)
        if found is None:
            return
        found[1] -= 1
        if found[1] > 0:
            return
        del _attached[path]
        try:
            _instance().execute(f"DETACH {_quoted(found[0])}")
        except BaseException:
            _attached[path] = found   # still attached: the next user takes it over
            raise


def is_attached(path: str) -> bool:
    """Whether ``path`` is open in this process."""
    with _lock:
        return path in _attached and _host_pid == os.getpid()
