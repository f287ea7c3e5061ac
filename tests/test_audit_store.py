from __future__ import annotations

import multiprocessing
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from governance.audit_store import AuditStore
from governance.audit_store.schema import SCHEMA_VERSION
from governance.cli import main
from governance.errors import AuditStoreError


def _filled(tmp_path: Path, n: int = 6) -> AuditStore:
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    for i in range(n):
        store.append_log("dpo", "request.received", f"req-{i}", {"step": i, "note": "masked"})
    return store


def _raw(store: AuditStore, sql: str) -> None:
    conn = duckdb.connect(str(store.path))
    conn.execute(sql)
    conn.close()


def test_store_created_and_migrated_on_first_use(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "sub" / "audit.duckdb", create=True)
    assert store.schema_version() == SCHEMA_VERSION
    tables = {r["table_name"] for r in store.query(
        "SELECT table_name FROM information_schema.tables")}
    assert {"scan_runs", "column_findings", "source_tables", "audit_log",
            "audit_log_head", "schema_migrations"} <= tables
    # Reopening does not re-apply migrations.
    assert AuditStore(store.path).schema_version() == SCHEMA_VERSION
    assert len(store.query("SELECT * FROM schema_migrations")) == len(
        {SCHEMA_VERSION} | set(range(1, SCHEMA_VERSION + 1)))


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = _filled(tmp_path, 1)
    _raw(store, "INSERT INTO schema_migrations VALUES (999, 'future', now())")
    with pytest.raises(AuditStoreError, match="newer than this govkit understands"):
        AuditStore(store.path).schema_version()


def test_chain_links_rows(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    entries = store.log_entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert len({e.row_hash for e in entries}) == 6
    assert store.verify_log().ok


def test_edited_row_is_detected(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    _raw(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    result = store.verify_log()
    assert not result.ok
    assert result.problems == ["seq 3: row content does not match its hash (edited)"]


def test_edited_details_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    _raw(store, "UPDATE audit_log SET details = '{\"step\": 99}', row_hash = repeat('a', 64) "
                "WHERE seq = 2")
    problems = store.verify_log().problems
    assert any(p.startswith("seq 2:") for p in problems)
    assert "seq 3: prev_hash does not match the row before it" in problems


@pytest.mark.parametrize(("seq", "expected"), [
    (2, "seq 2 missing (row deleted)"),
    (6, "head records seq 6 but the log ends at seq 5 (rows deleted from the end)"),
])
def test_deleted_row_is_detected(tmp_path: Path, seq: int, expected: str) -> None:
    store = _filled(tmp_path)
    _raw(store, f"DELETE FROM audit_log WHERE seq = {seq}")
    assert expected in store.verify_log().problems


def test_verify_log_command(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify-log", "--store", str(store.path)])
    assert ok.exit_code == 0, ok.output
    assert "audit log OK: 6 rows" in ok.output
    _raw(store, "UPDATE audit_log SET action = 'request.rejected' WHERE seq = 4")
    bad = runner.invoke(main, ["audit", "verify-log", "--store", str(store.path)])
    assert bad.exit_code == 1
    assert "TAMPERED" in bad.output and "seq 4" in bad.output
    missing = runner.invoke(main, ["audit", "verify-log", "--store", str(tmp_path / "no.duckdb")])
    assert missing.exit_code == 2
    assert missing.output.strip().count("\n") == 0


def _append_many(path: str, actor: str, n: int) -> None:
    store = AuditStore(path)
    for i in range(n):
        store.append_log(actor, "test.append", None, {"i": i})


def test_appends_from_concurrent_processes_keep_the_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.duckdb")
    AuditStore(path, create=True).schema_version()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, f"p{i}", 15)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = AuditStore(path)
    assert [e.seq for e in store.log_entries()] == list(range(1, 31))
    assert store.verify_log().ok


_PROBE = ("import duckdb, sys\n"
          "try:\n"
          "    duckdb.connect(sys.argv[1]).close()\n"
          "    print('opened')\n"
          "except duckdb.IOException as e:\n"
          "    print('locked' if 'lock' in str(e).lower() else f'other: {e}')\n")


def _probe(path: Path) -> str:
    """Whether another process can open the store now (DuckDB's own lock, no govkit code)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_a_session_keeps_the_store_open_for_its_burst_and_then_lets_others_in(
        tmp_path: Path) -> None:
    store = _filled(tmp_path, 2)
    assert _probe(store.path) == "opened"          # between operations, nothing is held
    with store.session():
        # Operations of any AuditStore of this file in this process share the open store.
        other = AuditStore(store.path)
        with other.session():
            other.append_log("dpo", "test.nested", None, {"i": 1})
        store.append_log("dpo", "test.in_session", None, {"i": 2})
        assert _probe(store.path) == "locked"      # other processes wait meanwhile
        assert [e.action for e in other.log_entries()][-2:] == ["test.nested",
                                                                 "test.in_session"]
    assert _probe(store.path) == "opened"          # released when the burst ends
    assert store.verify_log().ok


def test_a_session_is_released_when_its_burst_fails(tmp_path: Path) -> None:
    store = _filled(tmp_path, 1)
    with pytest.raises(RuntimeError), store.session():
        store.append_log("dpo", "test.before_failure", None, {})
        raise RuntimeError("a step failed")
    assert _probe(store.path) == "opened"
    assert store.log_entries()[-1].action == "test.before_failure"


def test_the_anchor_follows_the_log_once_a_session_ends(tmp_path: Path) -> None:
    from governance.audit_store.store import read_anchor

    store = _filled(tmp_path, 2)
    assert read_anchor(store.anchor_path)["seq"] == 2
    with store.session():
        for i in range(3):
            store.append_log("dpo", "test.burst", None, {"i": i})
    head = store.log_entries()[-1]
    anchor = read_anchor(store.anchor_path)
    assert (anchor["seq"], anchor["head"]) == (head.seq, head.row_hash) == (5, head.row_hash)
    assert store.verify_log(require_anchor=True).ok


def test_a_scan_whose_process_was_killed_is_marked_interrupted(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    store.schema_version()   # created now
    code = ("import os, sys\nfrom governance.audit_store import AuditStore\n"
            "print(AuditStore(sys.argv[1]).start_scan(['app'], 'sampled', None, None, 200, 0),"
            " flush=True)\nos._exit(9)\n")
    out = subprocess.run([sys.executable, "-c", code, str(store.path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 9, out.stderr
    killed = out.stdout.strip()
    alive = store.start_scan(["app"], "sampled", None, None, 200, 0)   # this process: alive
    result = CliRunner().invoke(main, ["scans", "--store", str(store.path), "--json"])
    assert result.exit_code == 0, result.output
    runs = {r["run_id"]: r for r in json.loads(result.output)}
    assert runs[killed]["status"] == "interrupted"
    assert "killed" in runs[killed]["error"]
    assert runs[alive]["status"] == "running"


def test_stores_attached_in_one_process_stay_apart_and_are_let_go(tmp_path: Path) -> None:
    """Store files share one in-process DuckDB (attached, not each opened as a database of
    its own): a store created while another is held sees only its own tables, each file is
    released to other processes when its last user lets it go, and a second
    AuditStore of the same file shares the attachment."""
    from governance.audit_store import attachments

    a = AuditStore(tmp_path / "a.duckdb", create=True)
    a.append_log("tester", "test.a", None, {})
    with a.session():
        # Created while a is attached: a's tables must not make it "not a govkit store".
        b = AuditStore(tmp_path / "b.duckdb", create=True)
        b.append_log("tester", "test.b", None, {})
        assert [e.action for e in b.log_entries()][-1] == "test.b"
        assert "test.b" not in [e.action for e in a.log_entries()]
        assert _probe(tmp_path / "a.duckdb") == "locked"
        assert _probe(tmp_path / "b.duckdb") == "opened"   # b was let go after each use
        again = AuditStore(tmp_path / "a.duckdb")
        again.append_log("tester", "test.a2", None, {})     # the same attachment
    assert not attachments.is_attached(str((tmp_path / "a.duckdb").resolve()))
    assert _probe(tmp_path / "a.duckdb") == "opened"
    assert [e.action for e in a.log_entries()][-2:] == ["test.a", "test.a2"]
    assert a.verify_log().ok and b.verify_log().ok
    # Nothing is left in a WAL once the file is let go (detaching checkpoints it).
    assert not (tmp_path / "a.duckdb.wal").exists()
