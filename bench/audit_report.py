"""Render an audit report from a store holding 1M audit-log rows and 100 past audit runs.

    python bench/audit_report.py [--log-rows 1000000] [--runs 100] [--dir /tmp/govkit-bench]

The demo is generated, scanned and audited once (a real run gives the snapshot and check
rows); the store is then filled with ``--log-rows`` audit-log rows (generated in DuckDB,
not chained: the report reads only their count) and ``--runs`` past runs copied from the
real one with varying figures. Each format is rendered and written as
``govkit audit report`` does; the time of each, and the baseline of reading the run's rows
alone, are printed. Target: under 10 s per report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from governance.audit.report import load_report_data, write_audit_report
    from governance.audit.runner import run_audit
    from governance.audit_store import AuditStore
    from governance.demo import build_demo
    from governance.inventory import load_inventory
    from governance.scan import run_scan

    ap = argparse.ArgumentParser()
    ap.add_argument("--log-rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/govkit-bench-audit"))
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    demo = build_demo(args.dir / "demo")
    store = AuditStore(demo.root / "audit.duckdb", create=True)
    inv = load_inventory(demo.inventory)
    run_scan(inv, store)
    t = time.perf_counter()
    real = run_audit(inv, store)
    print(f"one audit run on the demo: {time.perf_counter() - t:.2f} s "
          f"({len(real.results)} check rows)")
    t = time.perf_counter()
    with store.connect() as c:
        [(base,)] = c.execute("SELECT max(seq) FROM audit_log").fetchall()
        c.execute(
            "INSERT INTO audit_log SELECT ? + i, now() - to_seconds(? - i), 'bench', "
            "'bench.event', 'target-' || (i % 1000), '{\"n\": ' || i || '}', "
            "sha256(CAST(i - 1 AS VARCHAR)), sha256(CAST(i AS VARCHAR)) "
            "FROM range(1, ? + 1) t(i)", [base, args.log_rows, args.log_rows])
        [row] = c.execute("SELECT * FROM audit_runs WHERE run_id = ?",
                          [real.run_id]).fetchall()
        names = [d[0] for d in c.description]
        run = dict(zip(names, row, strict=True))
        for k in range(args.runs - 1):
            rid = f"audit-bench-{k:04d}"
            metrics = json.loads(run["metrics"])
            metrics.update(failing_checks=k % 7, undeclared_columns=k % 4,
                           requests_overdue=k % 3, requests_on_time_rate=(k % 10) / 10)
            vals = {**run, "run_id": rid, "metrics": json.dumps(metrics),
                    "started_at": run["started_at"] - timedelta(days=7 * (args.runs - k))}
            c.execute(f"INSERT INTO audit_runs ({', '.join(names)}) VALUES "  # noqa: S608
                      f"({', '.join('?' for _ in names)})", list(vals.values()))
            c.execute("INSERT INTO audit_checks SELECT ? AS run_id, * EXCLUDE (run_id) "
                      "FROM audit_checks WHERE run_id = ?", [rid, real.run_id])
        [(n_log,)] = c.execute("SELECT count(*) FROM audit_log").fetchall()
        [(n_runs,)] = c.execute("SELECT count(*) FROM audit_runs").fetchall()
    print(f"store filled in {time.perf_counter() - t:.1f} s: {n_log:,} audit-log rows, "
          f"{n_runs} audit runs")
    t = time.perf_counter()
    store.query("SELECT * FROM audit_checks WHERE run_id = ?", [real.run_id])
    print(f"baseline, reading the run's check rows: {time.perf_counter() - t:.3f} s")
    t = time.perf_counter()
    data = load_report_data(store, "latest")
    print(f"load_report_data (run, checks, {len(data['trend'])}-run trend, log count): "
          f"{time.perf_counter() - t:.3f} s")
    for fmt in ("html", "md", "json"):
        t = time.perf_counter()
        path, records = write_audit_report(store, "latest", fmt, args.dir / "reports")
        took = time.perf_counter() - t
        print(f"govkit audit report --format {fmt}: {took:.2f} s ({path.stat().st_size:,} "
              f"bytes, {len(records)} records files) {'OK' if took < 10 else 'OVER 10 s'}")


if __name__ == "__main__":
    main()
