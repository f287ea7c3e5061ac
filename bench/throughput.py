"""Throughput of the column engine against Presidio per cell, measured in one run.

    python bench/throughput.py --rows 1000000            # one scale
    python bench/throughput.py --rows 100000 1000000 10000000

For each scale, in a fresh subprocess (so peak RSS is that scale's own): generate (or
reuse) the seeded users table as Parquet, full-scan it through the same connector and
engine as ``govkit scan --mode full``, and time the sampled classification of the same
table. The baseline, Presidio's ``analyze()`` called once per cell on a seeded sample of
the same cells, is measured in the same run; figures are printed as ratios against it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/ last on sys.path: a module there may shadow a library (e.g. a file named like a library).
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]

import datagen  # noqa: E402

DATA = HERE.parent / "bench-data"


def _connector(parquet: Path):
    from governance.inventory import load_inventory
    from governance.sources import open_connector

    with tempfile.TemporaryDirectory(prefix="govkit-bench-") as folder:
        path = Path(folder) / "inventory.yaml"
        path.write_text(
            "version: 1\nallow_outside_paths: true\norganization: bench\nsources:\n"
            "  - name: bench\n    kind: parquet\n"
            f"    connection: {{path: {json.dumps(str(parquet.parent))}}}\n"
            "    owner: bench@example.org\n    jurisdictions: [EU]\n    tables: []\n")
        inv = load_inventory(path)
    return open_connector(inv, inv.source("bench"))


def measure_scale(rows: int, seed: int) -> dict:
    """Full scan and sampled classification of one generated table (run in a subprocess)."""
    from governance.detection.cell_scan import TableScanner
    from governance.detection.classifier import classify_column
    from governance.scan import full_scan_batch_rows

    parquet = DATA / f"users_{rows}" / "users.parquet"
    if not parquet.exists():  # generated in its own process: not part of this RSS
        subprocess.run([sys.executable, str(HERE / "datagen.py"), "--rows", str(rows),
                        "--seed", str(seed), "--out", str(parquet)], check=True)
    columns = list(datagen.COLUMNS)
    with _connector(parquet) as conn:

        def full_scan(names: list[str]) -> tuple[float, float, dict]:
            """Wall and CPU seconds (every thread of the process) of one full scan: on a
            shared machine the CPU seconds move less with the other processes' load."""
            t0, c0 = time.perf_counter(), time.process_time()
            with TableScanner(names) as scanner:
                found = scanner.scan(conn.stream_rows(
                    "users", names, batch_size=full_scan_batch_rows(len(names))))
            return time.perf_counter() - t0, time.process_time() - c0, found

        # One-time setup (recognizers loaded, phone metadata compiled, threads started),
        # paid once per process: measured apart, on the first rows.
        t0 = time.perf_counter()
        with TableScanner(columns) as scanner:
            scanner.add(conn.sample_rows("users", limit=1_000, seed=1))
        setup_s = time.perf_counter() - t0
        structured_s, structured_cpu, _ = full_scan(list(datagen.STRUCTURED))
        full_s, full_cpu, results = full_scan(columns)
        t0 = time.perf_counter()
        sample = conn.sample_rows("users", limit=200, seed=0)
        classified = {c: classify_column(c, sample.column(c).to_pylist()) for c in columns}
        sampled_s = time.perf_counter() - t0
    detected = {c: sorted(results[c].whole) for c in datagen.TRUTH}
    return {
        "rows": rows,
        "cells": rows * len(columns),
        "setup_s": round(setup_s, 3),
        "structured_cells": rows * len(datagen.STRUCTURED),
        "structured_scan_s": round(structured_s, 3),
        "full_scan_s": round(full_s, 3),
        "structured_cpu_s": round(structured_cpu, 3),
        "full_cpu_s": round(full_cpu, 3),
        "sampled_classification_s": round(sampled_s, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "truth_columns_found": sum(datagen.TRUTH[c] in detected[c] for c in datagen.TRUTH),
        "truth_columns": len(datagen.TRUTH),
        "sampled_categories": sum(1 for c in datagen.TRUTH if classified[c].category),
        "notes_matched_cells": results["notes"].matched_cells,
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux from VmHWM: ``ru_maxrss`` also counts
    what the parent held when it forked this process (kept across exec), and the parent
    may hold a large in-memory table."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def structured_rate(rows: int, seed: int) -> float:
    """Cells per second of the engine on the structured columns alone (in memory)."""
    from governance.detection.cell_scan import TableScanner

    batches = list(datagen.users_batches(rows, seed, chunk=65_536))
    names = list(datagen.STRUCTURED)
    t0 = time.perf_counter()
    with TableScanner(names) as scanner:
        for b in batches:
            scanner.add(b.select(names))
    return rows * len(names) / (time.perf_counter() - t0)


def presidio_rate(seed: int, cells: int) -> float:
    """Cells per second of Presidio's analyze() called per cell on a sample of the table."""
    from governance.detection.analyzer import analyze_text

    batch = next(datagen.users_batches(20_000, seed, chunk=20_000))
    rng = random.Random(seed)
    names = list(datagen.STRUCTURED)
    values = [str(batch.column(rng.choice(names))[rng.randrange(batch.num_rows)].as_py())
              for _ in range(cells)]
    analyze_text(values[0])  # build the analyzer outside the timing
    t0 = time.perf_counter()
    for v in values:
        analyze_text(v)
    return cells / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--presidio-cells", type=int, default=2_000)
    parser.add_argument("--one-scale", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_scale:
        print(json.dumps(measure_scale(args.one_scale, args.seed)))
        return 0

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    baseline = presidio_rate(args.seed, args.presidio_cells)
    print(f"baseline  Presidio analyze() per cell: {baseline:,.0f} cells/s "
          f"({args.presidio_cells:,} cells sampled from the same table)")
    structured_rate(1_000, args.seed)  # one-time setup outside the timing
    # At most 1M rows in memory here: the scales below run in child processes.
    in_memory = min(min(args.rows), 1_000_000)
    structured = structured_rate(in_memory, args.seed)
    print(f"engine    structured columns ({len(datagen.STRUCTURED)}), {in_memory:,} rows in "
          f"memory: {structured:,.0f} cells/s = {structured / baseline:,.0f}x Presidio")
    print(f"\nfull scans read the Parquet file through the connector; structured = the "
          f"{len(datagen.STRUCTURED)} columns without free text, "
          f"table = all {len(datagen.COLUMNS)}; CPU s = structured/table CPU seconds, "
          "all threads")
    print(f"{'rows':>11} {'structured':>11} {'cells/s':>11} {'x Presidio':>10} {'table s':>8} "
          f"{'cells/s':>11} {'s/M rows':>8} {'CPU s':>11} {'peak RSS':>9} {'sampled s':>9} "
          f"{'PII cols':>8}")
    setup: list[float] = []
    for rows in args.rows:
        out = subprocess.run([sys.executable, __file__, "--one-scale", str(rows),
                              "--seed", str(args.seed)], capture_output=True, text=True,
                             check=False)
        if out.returncode:
            print(f"{rows:>11,} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        srate = r["structured_cells"] / r["structured_scan_s"]
        rate = r["cells"] / r["full_scan_s"]
        print(f"{rows:>11,} {r['structured_scan_s']:>10.2f}s {srate:>11,.0f} "
              f"{srate / baseline:>10,.0f} {r['full_scan_s']:>7.2f}s {rate:>11,.0f} "
              f"{r['full_scan_s'] / rows * 1e6:>8.2f} "
              f"{r['structured_cpu_s']:>5.2f}/{r['full_cpu_s']:<5.2f} {r['peak_rss_mb']:>7,.0f}MB "
              f"{r['sampled_classification_s']:>8.2f}s {r['truth_columns_found']:>5}/"
              f"{r['truth_columns']}")
        setup.append(r["setup_s"])
    if setup:
        print(f"\none-time setup per process (first 1,000 rows, not in the figures above): "
              f"{min(setup):.2f} to {max(setup):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
