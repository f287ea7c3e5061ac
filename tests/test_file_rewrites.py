"""Changes to CSV, JSON-lines and Parquet files (data-subject erasure rewrites them):
every other row stays byte-identical, the file keeps its dialect, mode and owner, nothing
is left beside it, a crash leaves a findable copy, and concurrent writers lose nothing.

Expected bytes are built by the tests from the records they wrote, never read back
through the connector under test.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from governance.errors import SourceError
from governance.sources.duckdb_source import FileConnector

TEMP = ".govkit-rewrite.tmp"


def _write(path: Path, records: list[bytes], mode: int = 0o644) -> None:
    path.write_bytes(b"".join(records))
    os.chmod(path, mode)


def _csv_records(n: int, eol: bytes = b"\r\n", quote_all: bool = False,
                 delimiter: bytes = b",") -> list[bytes]:
    """A header and ``n`` records, some needing quotes (a comma, a quote, a line break)."""
    def rec(fields: list[str]) -> bytes:
        out = []
        for v in fields:
            b = v.encode()
            needs = delimiter in b or b'"' in b or b"\n" in b
            out.append(b'"' + b.replace(b'"', b'""') + b'"' if quote_all or needs else b)
        return delimiter.join(out) + eol

    rows = [rec(["id", "email", "phone", "note"])]
    for i in range(n):
        note = {0: "plain", 1: "with, comma", 2: 'say "hi"', 3: "two\nlines"}[i % 4]
        rows.append(rec([str(i), f"u{i}@example.com", f"+86138{i:08d}", note]))
    return rows


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- 1. a connector opened before another rewrite ------------------------------------

def test_connector_opened_before_another_rewrite_reads_and_deletes_the_new_file(
        tmp_path: Path) -> None:
    """Opened on an unquoted \\r\\n file, then another writer replaces it with a quoted \\n
    file: reads see the new file and a delete matches its row (it matched 0 before)."""
    f = tmp_path / "contacts.csv"
    _write(f, [b"id,email\r\n"] + [f"{i},u{i}@example.com\r\n".encode() for i in range(50)])
    stale = FileConnector("c", "csv", tmp_path, writable=True)
    assert stale.table_info("contacts").row_count == 50
    # Another program rewrites it: every field quoted, \n line ends, one row fewer.
    replaced = [b'"id","email"\n'] + [f'"{i}","u{i}@example.com"\n'.encode()
                                      for i in range(50) if i != 7]
    tmp = tmp_path / "other-writer.tmp"
    tmp.write_bytes(b"".join(replaced))
    os.replace(tmp, f)
    assert stale.table_info("contacts").row_count == 49
    assert [r["id"] for r in stale.find_rows("contacts", "email", ["u9@example.com"])] == ["9"]
    assert stale.delete_rows("contacts", "email", ["u9@example.com"]) == 1
    assert f.read_bytes() == b"".join(r for r in replaced if b"u9@" not in r)
    stale.close()


def test_a_delete_rereads_the_file_under_its_lock(tmp_path: Path) -> None:
    """Two connectors in one process: the second one's view predates the first one's
    rewrite of the same file, and its delete still finds its row."""
    f = tmp_path / "contacts.csv"
    records = [b"id,email,note\r\n"] + [f"{i},u{i}@example.com,n{i}\r\n".encode()
                                        for i in range(100)]
    _write(f, records)
    a = FileConnector("c", "csv", tmp_path, writable=True)
    b = FileConnector("c", "csv", tmp_path, writable=True)
    assert a.update_rows("contacts", "email", ["u3@example.com"], {"note": 'said "no", twice'}) == 1
    assert b.delete_rows("contacts", "email", ["u50@example.com"]) == 1
    expected = list(records)
    expected[4] = b'3,u3@example.com,"said ""no"", twice"\r\n'
    del expected[51]
    assert f.read_bytes() == b"".join(expected)
    a.close()
    b.close()


# -- 2. every other row byte-identical --------------------------------------------------

@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize("quote_all", [False, True])
@pytest.mark.parametrize("delimiter", [b",", b";", b"\t"])
def test_csv_delete_keeps_every_other_byte(tmp_path: Path, eol: bytes, quote_all: bool,
                                           delimiter: bytes) -> None:
    f = tmp_path / "people.csv"
    records = _csv_records(40, eol, quote_all, delimiter)
    _write(f, records)
    conn = FileConnector("p", "csv", tmp_path, writable=True)
    # Row 3 has a quoted field spanning two lines, row 6 a doubled quote.
    assert conn.delete_rows("people", "email", ["u3@example.com", "u6@example.com",
                                                "u10@example.com"]) == 3
    assert f.read_bytes() == b"".join(r for i, r in enumerate(records) if i not in (4, 7, 11))
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert _files(tmp_path) == ["people.csv"]
    conn.close()


@pytest.mark.parametrize("quote_all", [False, True])
def test_csv_update_rewrites_only_the_changed_fields(tmp_path: Path, quote_all: bool) -> None:
    """An updated record keeps its other fields as written; the new value is quoted where
    the file quoted that field, or where it must be."""
    f = tmp_path / "people.csv"
    records = _csv_records(20, b"\n", quote_all)
    _write(f, records)
    conn = FileConnector("p", "csv", tmp_path, writable=True)
    assert conn.update_rows("people", "email", ["u2@example.com"],
                            {"phone": None, "note": "[erased], ok"}) == 1
    assert conn.update_rows("people", "email", ["u5@example.com"], {"note": "short"}) == 1
    expected = list(records)
    if quote_all:
        expected[3] = b'"2","u2@example.com",,"[erased], ok"\n'
        expected[6] = b'"5","u5@example.com","+8613800000005","short"\n'
    else:
        expected[3] = b'2,u2@example.com,,"[erased], ok"\n'
        expected[6] = b'5,u5@example.com,+8613800000005,"short"\n'  # was quoted
    assert f.read_bytes() == b"".join(expected)
    conn.close()


def test_csv_keeps_bom_missing_final_newline_and_owner(tmp_path: Path) -> None:
    f = tmp_path / "people.csv"
    records = [b"\xef\xbb\xbfid,name,email\r\n", "1,Zoë,zoe@example.com\r\n".encode(),
               "2,Jürgen,j@example.com\r\n".encode(), b"3,Ann,ann@example.com"]
    _write(f, records, 0o640)
    if os.geteuid() == 0:
        os.chown(f, 65534, 65534)
    conn = FileConnector("p", "csv", tmp_path, writable=True)
    assert conn.delete_rows("people", "email", ["j@example.com"]) == 1
    assert f.read_bytes() == records[0] + records[1] + records[3]
    assert conn.update_rows("people", "email", ["ann@example.com"], {"name": "Anne"}) == 1
    assert f.read_bytes() == records[0] + records[1] + b"3,Anne,ann@example.com"
    st = f.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert _files(tmp_path) == ["people.csv"]
    conn.close()


JSONL = [
    b'{"id": 1, "email": "a@example.com", "seen": "2024-01-05T10:00:00Z", "big": 12345678901234567890}\n',  # noqa: E501
    b'{"id":2,"email":"b@example.com","seen":"2024-01-06T11:30:00+02:00","amount":1.10}\n',
    '{"id": 3, "email": "c@example.com", "name": "Zoë", "tags": ["x", "y"], "n": null}\n'
    .encode(),
    b'{"id": 4, "email": "d@example.com", "name": "\\u00c9mile", "note": "a \\"quote\\""}\r\n',
    b'{"id": 5, "email": "e@example.com", "nested": {"k": [1, 2.50, true]}, "big": 1e400}\n',
    b'{"id": 6, "email": "f@example.com", "seen": "2024-01-07T00:00:00Z"}',
]


def test_jsonl_rewrite_keeps_other_lines_and_members_byte_identical(tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    _write(f, JSONL)
    conn = FileConnector("e", "jsonl", tmp_path, writable=True)
    assert conn.delete_rows("events", "email", ["b@example.com"]) == 1
    assert f.read_bytes() == b"".join(JSONL[i] for i in (0, 2, 3, 4, 5))
    assert conn.update_rows("events", "email", ["d@example.com"],
                            {"email": None, "name": "[erased]"}) == 1
    assert conn.update_rows("events", "email", ["a@example.com"], {"email": "x@example.com"}) == 1
    changed_a = JSONL[0].replace(b'"a@example.com"', b'"x@example.com"')
    changed_d = b'{"id": 4, "email": null, "name": "[erased]", "note": "a \\"quote\\""}\r\n'
    assert f.read_bytes() == b"".join([changed_a, JSONL[2], changed_d, JSONL[4], JSONL[5]])
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert _files(tmp_path) == ["events.jsonl"]
    conn.close()


def _parquet_rows(path: Path) -> list[str]:
    """A sha256 per row, from pyarrow's own reading of the file."""
    return [hashlib.sha256(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()
            for r in pq.read_table(path).to_pylist()]


def test_parquet_rewrite_keeps_schema_compression_and_row_groups(tmp_path: Path) -> None:
    from datetime import datetime

    n = 3_000
    table = pa.table({
        "id": pa.array(range(n), pa.int32()),
        "email": pa.array([f"u{i}@example.com" for i in range(n)]),
        "seen": pa.array([datetime(2024, 1, 5, 10, tzinfo=UTC)] * n,
                         pa.timestamp("us", tz="UTC")),
        "amount": pa.array([i / 100 for i in range(n)], pa.float64()),
    }).replace_schema_metadata({"origin": "billing-export"})
    f = tmp_path / "events.parquet"
    pq.write_table(table, f, row_group_size=1_000, compression="zstd")
    os.chmod(f, 0o644)
    before = _parquet_rows(f)
    conn = FileConnector("e", "parquet", tmp_path, writable=True)
    assert conn.delete_rows("events", "email", ["u1500@example.com"]) == 1
    meta = pq.ParquetFile(f).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [1000, 999, 1000]
    assert {meta.row_group(g).column(c).compression for g in range(3) for c in range(4)} \
        == {"ZSTD"}
    assert pq.read_schema(f) == table.schema
    assert pq.read_schema(f).metadata[b"origin"] == b"billing-export"
    assert _parquet_rows(f) == before[:1500] + before[1501:]
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert _files(tmp_path) == ["events.parquet"]
    conn.close()


# -- 3. no lock file ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_nothing_is_left_beside_the_file(tmp_path: Path, kind: str) -> None:
    f = tmp_path / f"t.{kind}"
    if kind == "parquet":
        pq.write_table(pa.table({"email": ["a@x.com", "b@x.com"]}), f)
    elif kind == "csv":
        f.write_text("email\na@x.com\nb@x.com\n")
    else:
        f.write_text('{"email": "a@x.com"}\n{"email": "b@x.com"}\n')
    conn = FileConnector("t", kind, tmp_path, writable=True)
    assert conn.delete_rows("t", "email", ["a@x.com"]) == 1
    assert conn.delete_rows("t", "email", ["nobody@x.com"]) == 0
    assert _files(tmp_path) == [f.name]
    assert conn.stale_temporaries() == []
    conn.close()


# -- 4. a crash mid-rewrite --------------------------------------------------------------

CHILD = """
import sys
from pathlib import Path
from governance.sources.duckdb_source import FileConnector
conn = FileConnector("t", sys.argv[1], Path(sys.argv[2]), writable=True)
print(conn.delete_rows(sys.argv[3], "email", [sys.argv[4]]))
"""


def _big_file(folder: Path, kind: str, n: int) -> Path:
    if kind == "csv":
        f = folder / "people.csv"
        _write(f, _csv_records(n, b"\n"))
    elif kind == "plain-csv":  # no quoted field, \r\n (the dialect of issue 12)
        f = folder / "people.csv"
        _write(f, [b"id,email,note\r\n"] + [f"{i},u{i}@example.com,n{i}\r\n".encode()
                                            for i in range(n)])
    elif kind == "jsonl":
        f = folder / "people.jsonl"
        _write(f, [json.dumps({"id": i, "email": f"u{i}@example.com"}).encode() + b"\n"
                   for i in range(n)])
    else:
        f = folder / "people.parquet"
        pq.write_table(pa.table({"id": pa.array(range(n), pa.int64()),
                                 "email": [f"u{i}@example.com" for i in range(n)]}),
                       f, row_group_size=n // 3)
        os.chmod(f, 0o644)
    return f


def _run_child(kind: str, folder: Path, email: str,
               fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GOVKIT_FAULT"}
    if fault:
        env["GOVKIT_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", CHILD, kind, str(folder), "people", email],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_killed_rewrite_leaves_the_file_intact_and_its_copy_findable(tmp_path: Path,
                                                                     kind: str) -> None:
    n = 150_000  # three batches of records, or three row groups
    f = _big_file(tmp_path, kind, n)
    original = hashlib.sha256(f.read_bytes()).hexdigest()
    done = _run_child(kind, tmp_path, "u100@example.com", "other:1,file_rewrite:1")
    assert done.returncode == 137, done.stderr
    assert hashlib.sha256(f.read_bytes()).hexdigest() == original
    copy = tmp_path / f".{f.name}{TEMP}"
    assert copy.exists() and copy.stat().st_size > 0  # a batch reached it
    conn = FileConnector("t", kind, tmp_path, writable=True)
    assert conn.stale_temporaries() == [copy]
    assert conn.remove_stale_temporaries() == [copy]
    assert conn.stale_temporaries() == [] and _files(tmp_path) == [f.name]
    conn.close()
    rerun = _run_child(kind, tmp_path, "u100@example.com", None)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip() == "1"
    assert _files(tmp_path) == [f.name]
    if kind == "parquet":
        assert pq.read_table(f).num_rows == n - 1
    else:
        assert b"u100@example.com" not in f.read_bytes()


def test_a_rewrite_first_removes_a_stale_copy_and_legacy_copies_are_found(
        tmp_path: Path) -> None:
    f = tmp_path / "people.csv"
    _write(f, _csv_records(10))
    stale = tmp_path / f".people.csv{TEMP}"
    stale.write_bytes(b"id,email\n1,erased-person@example.com\n")
    legacy = tmp_path / ".people.csv.xqh3n9q2.tmp"  # the name older versions used
    legacy.write_bytes(b"id,email\n2,another@example.com\n")
    unrelated = tmp_path / ".people.csv.backup-2024.tmp"
    unrelated.write_bytes(b"not ours")
    conn = FileConnector("t", "csv", tmp_path, writable=True)
    assert conn.stale_temporaries() == [stale, legacy]
    assert conn.delete_rows("people", "email", ["u1@example.com"]) == 1
    assert not stale.exists()
    assert conn.stale_temporaries() == [legacy]
    ro = FileConnector("t", "csv", tmp_path)
    with pytest.raises(SourceError, match="read-only"):
        ro.remove_stale_temporaries()
    assert conn.remove_stale_temporaries() == [legacy]
    assert _files(tmp_path) == [".people.csv.backup-2024.tmp", "people.csv"]
    conn.close()
    ro.close()


def test_a_copy_being_written_is_not_stale(tmp_path: Path) -> None:
    """While a rewrite holds the file's lock its copy is in use, not stale."""
    import fcntl

    f = tmp_path / "people.csv"
    _write(f, _csv_records(5))
    copy = tmp_path / f".people.csv{TEMP}"
    copy.write_bytes(b"in progress")
    conn = FileConnector("t", "csv", tmp_path, writable=True)
    fd = os.open(f, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert conn.stale_temporaries() == []
    finally:
        os.close(fd)
    assert conn.stale_temporaries() == [copy]
    conn.close()


# -- 5. two processes at once -------------------------------------------------------------

def _erase(kind: str, folder: str, table: str, email: str, ready: Callable[[], object],
           out: multiprocessing.Queue) -> None:
    conn = FileConnector("t", kind, Path(folder), writable=True)
    conn.table_info(table)  # both views taken before either rewrite
    ready()
    out.put((email, conn.delete_rows(table, "email", [email])))
    conn.close()


@pytest.mark.parametrize("kind", ["plain-csv", "csv", "jsonl", "parquet"])
def test_two_processes_erasing_different_rows_lose_nothing(tmp_path: Path, kind: str) -> None:
    """Both processes open the file before either rewrites it, then erase one row each."""
    n = 60_000
    f = _big_file(tmp_path, kind, n)
    before_bytes = f.read_bytes()
    before_rows = _parquet_rows(f) if kind == "parquet" else []
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    victims = ["u1000@example.com", "u45000@example.com"]
    procs = [ctx.Process(target=_erase, args=(kind.removeprefix("plain-"), str(tmp_path),
                                              "people", v, barrier.wait,
                                              out)) for v in victims]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert results == {v: 1 for v in victims}
    if kind == "parquet":
        assert _parquet_rows(f) == [h for i, h in enumerate(before_rows) if i not in (1000, 45000)]
    else:
        # Records by index, header first (CSV records 3, 7, ... span two lines).
        lines = before_bytes.splitlines(keepends=True)
        records = {"csv": _csv_records(n, b"\n"), "plain-csv": lines}.get(kind, [b""] + lines)
        assert b"".join(records) == before_bytes
        assert f.read_bytes() == b"".join(r for i, r in enumerate(records)
                                          if i - 1 not in (1000, 45000))
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert _files(tmp_path) == [f.name]


# -- 6. exact matching --------------------------------------------------------------------

def test_csv_values_match_as_written(tmp_path: Path) -> None:
    f = tmp_path / "people.csv"
    records = [b"id,email,phone\n", b"1,Ann@Example.com,007\n", b"2,ann@example.com,7\n",
               b"3,bo@example.com,+8613800000000\n", b"4,cy@example.com,8613800000000\n",
               b'5,dee@example.com," 7"\n', b"6,,\n"]
    _write(f, records)
    conn = FileConnector("p", "csv", tmp_path, writable=True)
    assert len(conn.find_rows("people", "email", ["ann@example.com"], fold_case=True)) == 2
    assert conn.delete_rows("people", "phone", ["7"]) == 1
    assert conn.delete_rows("people", "phone", ["8613800000000"]) == 1
    assert conn.delete_rows("people", "email", ["ANN@EXAMPLE.COM", ""]) == 0
    assert f.read_bytes() == b"".join(records[i] for i in (0, 1, 3, 5, 6))
    conn.close()


def test_jsonl_values_match_as_written(tmp_path: Path) -> None:
    f = tmp_path / "ids.jsonl"
    lines = [b'{"ref": 7}\n', b'{"ref": "7"}\n', b'{"ref": 7.0}\n', b'{"ref": "007"}\n',
             b'{"ref": 12345678901234567890}\n', b'{"ref": 12345678901234567891}\n',
             b'{"ref": null}\n', b'{"other": 7}\n']
    _write(f, lines)
    conn = FileConnector("i", "jsonl", tmp_path, writable=True)
    assert conn.delete_rows("ids", "ref", ["12345678901234567890"]) == 1
    assert conn.delete_rows("ids", "ref", ["007"]) == 1
    assert f.read_bytes() == b"".join(lines[i] for i in (0, 1, 2, 5, 6, 7))
    conn.close()


def test_a_rewrite_stops_when_the_two_readings_disagree(tmp_path: Path) -> None:
    """DuckDB reads this column as a timestamp, the line copy as the text written: the
    rows each would change differ, so nothing is changed."""
    f = tmp_path / "events.jsonl"
    _write(f, JSONL)
    conn = FileConnector("e", "jsonl", tmp_path, writable=True)
    with pytest.raises(SourceError, match="nothing was changed"):
        conn.delete_rows("events", "seen", ["2024-01-07T00:00:00Z"])
    assert f.read_bytes() == b"".join(JSONL)
    assert _files(tmp_path) == ["events.jsonl"]
    conn.close()


@pytest.mark.parametrize("block", [64, 1 << 20])
def test_blocks_without_a_key_are_copied_and_records_spanning_lines_are_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """Tiny blocks cut the file between many records, some of them spanning two lines;
    keys that need quoting (a quote, a comma) are matched by parsing every record."""
    from governance.sources import duckdb_source

    monkeypatch.setattr(duckdb_source, "CSV_BLOCK_BYTES", block)
    f = tmp_path / "people.csv"
    records = _csv_records(400, b"\r\n")
    _write(f, records)
    conn = FileConnector("p", "csv", tmp_path, writable=True)
    # Notes: row i % 4 == 1 "with, comma", 2 'say "hi"', 3 "two\nlines".
    assert conn.delete_rows("people", "note", ["two\nlines"]) == 100
    assert conn.delete_rows("people", "note", ['say "hi"']) == 100
    assert conn.delete_rows("people", "email", ["u1@example.com", "u397@example.com"]) == 2
    many = [f"u{i}@example.com" for i in range(100, 170)] + ["nobody@example.com"]
    assert conn.delete_rows("people", "email", many) == 36  # more keys than are searched for
    gone = {i for i in range(400) if i % 4 in (2, 3) or 100 <= i < 170} | {1, 397}
    assert f.read_bytes() == b"".join(r for i, r in enumerate(records) if i - 1 not in gone)
    jl = tmp_path / "j"
    jl.mkdir()
    lines = [json.dumps({"id": i, "email": f"u{i}@example.com", "n": "é" if i % 3 else "\u00e9"},
                        ensure_ascii=bool(i % 2)).encode() + b"\n" for i in range(300)]
    _write(jl / "e.jsonl", lines)
    jconn = FileConnector("j", "jsonl", jl, writable=True)
    assert jconn.delete_rows("e", "email", ["u7@example.com", "u250@example.com"]) == 2
    assert jconn.delete_rows("e", "n", ["é"]) == 298
    assert (jl / "e.jsonl").read_bytes() == b""
    conn.close()
    jconn.close()


def test_a_linked_file_is_rewritten_where_it_lives(tmp_path: Path) -> None:
    """A source path that is a symbolic link stays a link; the real file is rewritten."""
    real = tmp_path / "data"
    real.mkdir()
    records = [b"id,email\n", b"1,a@example.com\n", b"2,b@example.com\n"]
    _write(real / "people.csv", records)
    src = tmp_path / "src"
    src.mkdir()
    (src / "people.csv").symlink_to(real / "people.csv")
    conn = FileConnector("p", "csv", src, writable=True)
    assert conn.delete_rows("people", "email", ["a@example.com"]) == 1
    assert (src / "people.csv").is_symlink()
    assert (real / "people.csv").read_bytes() == records[0] + records[2]
    assert _files(real) == ["people.csv"] and conn.stale_temporaries() == []
    conn.close()


@pytest.mark.parametrize("how", ["hard_link", "read_only"])
def test_a_file_with_other_hard_links_or_marked_read_only_is_not_rewritten(
        tmp_path: Path, how: str) -> None:
    """A rewrite replaces the file by a new one: another hard link would keep the old
    content (the erased rows, the plaintext), and a file marked read-only says not to
    change it. Both are refused with the reason, before anything is written, for an
    erasure (delete) and for field encryption alike; nothing is changed."""
    from governance.audit_store import AuditStore
    from governance.crypto.keystore import LocalKeyStore
    from governance.encryption import SubjectKeys, encrypt, load_policy
    from governance.inventory import load_inventory

    data = tmp_path / "data"
    data.mkdir()
    records = [b"id,email,card\n"] + [f"{i},u{i}@example.com,4{i:015d}\n".encode()
                                      for i in range(1, 6)]
    f = data / "people.csv"
    _write(f, records)
    if how == "hard_link":
        os.link(f, tmp_path / "copy.csv")
        reason = "has 2 hard links"
    else:
        os.chmod(f, 0o444)
        reason = "is read-only (mode 0444)"
    conn = FileConnector("p", "csv", data, writable=True)
    with pytest.raises(SourceError, match=re.escape(reason)):
        conn.delete_rows("people", "email", ["u1@example.com"])
    conn.close()
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text(
        "version: 1\norganization: t\nsources:\n  - name: p\n    kind: csv\n"
        f"    connection: {{path: {data}}}\n    owner: t@example.com\n"
        "    jurisdictions: [EU]\n    tables:\n      - name: people\n        subject_key: id\n"
        "        columns: {card: {category: financial.card}}\n")
    (tmp_path / "encryption.yaml").write_text(
        "version: 1\nrequire: [financial.card]\nexempt: []\n")
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    keys = SubjectKeys(store, LocalKeyStore(os.urandom(32)))
    run = encrypt(inv, store, keys, load_policy(tmp_path / "encryption.yaml", inv),
                  apply=True)
    assert not run.ok and reason in (run.tables[0].error or "")
    assert run.tables[0].cells_sealed == 0
    assert f.read_bytes() == b"".join(records) and _files(data) == ["people.csv"]
