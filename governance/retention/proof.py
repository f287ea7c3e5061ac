"""Proof of disposal: audit-log entries, and a byte-level check of rewritten files.

Each applied step writes one row to the hash-chained audit log: the rule, the table, the
predicate with placeholders, the cutoff, the counts (planned, changed, held, left) and
when, never a value. After a file source is rewritten without expired rows, the file is
read back and searched, byte for byte, for every value that only the removed rows held;
a Parquet file (compressed) is also read decoded. The values live in memory only.
"""

# SQL here is built from identifiers quoted by the connector and placeholders; every value
# is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from governance.audit_store.store import append_log_row

# Values shorter than this are not searched for (a "7" occurs in any file).
MIN_VALUE_CHARS = 5
BLOCK = 1 << 20


def log_step(conn: Any, actor: str, run_id: str, step: Mapping[str, Any]) -> int:
    """Append the proof of one applied step (counts and predicate, never values)."""
    details = {k: step.get(k) for k in (
        "rule", "profile", "action", "columns", "predicate", "cutoff", "planned_rows",
        "rows_affected", "held_rows", "referenced_rows", "remaining", "batches", "note",
        "byte_check")}
    details["run_id"] = run_id
    return append_log_row(conn, actor, "retention.applied",
                          f"{step['source']}.{step['table_name']}", details)


def removed_values(duck: Any, view: str, where_sql: str, params: list[Any],
                   columns: Iterable[str], quote: Any) -> set[str]:
    """Distinct texts of ``columns`` in the rows about to be removed that no kept row holds
    in any column (those may legitimately remain)."""
    cols = list(columns)
    if not cols:
        return set()
    union = " UNION ".join(f"SELECT CAST({quote(c)} AS VARCHAR) AS v FROM {quote(view)} AS "
                           f"govkit_row WHERE {where_sql}" for c in cols)
    everything = duck.sql(f"SELECT * FROM {quote(view)} LIMIT 0").columns
    kept = " UNION ".join(f"SELECT CAST({quote(c)} AS VARCHAR) AS v FROM {quote(view)} AS "
                          f"govkit_row WHERE NOT COALESCE(({where_sql}), FALSE)"
                          for c in everything)
    rows = duck.execute(f"SELECT v FROM ({union}) WHERE v IS NOT NULL AND length(v) >= "
                        f"{MIN_VALUE_CHARS} EXCEPT SELECT v FROM ({kept})",
                        params * len(cols) + params * len(everything)).fetchall()
    return {r[0] for r in rows}


def values_left_in_file(path: Path, values: set[str], kind: str) -> int:
    """How many of ``values`` still occur whole in the file's bytes (as written in CSV, and
    as JSON writes them), plus, for Parquet, among its decoded values."""
    if not values:
        return 0
    forms: dict[bytes, str] = {}
    for v in values:
        forms[v.encode()] = v
        forms[json.dumps(v)[1:-1].encode()] = v
    # A value counts where it stands whole (not inside a longer word or number: "Name, 12"
    # is not found in "Name, 120").
    alternatives = b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    pattern = re.compile(b"(?<![0-9A-Za-z])(?:" + alternatives + b")(?![0-9A-Za-z])")
    longest = max(len(f) for f in forms)
    found: set[str] = set()
    with path.open("rb") as f:
        tail = b""
        while True:
            block = f.read(BLOCK)
            if not block:
                break
            data = tail + block
            for m in pattern.finditer(data):
                found.add(forms[m.group(0)])
            tail = data[-(longest - 1):] if longest > 1 else b""
    if kind == "parquet":
        import duckdb

        con = duckdb.connect()
        try:
            cols = con.execute("SELECT * FROM read_parquet(?) LIMIT 0", [str(path)]).description
            for (name, *_rest) in cols or []:
                q = '"' + name.replace('"', '""') + '"'
                rows = con.execute(
                    f"SELECT DISTINCT CAST({q} AS VARCHAR) FROM read_parquet(?) WHERE "
                    f"CAST({q} AS VARCHAR) IN (SELECT unnest(?))",
                    [str(path), sorted(values)]).fetchall()
                found.update(r[0] for r in rows)
        finally:
            con.close()
    return len(found)
