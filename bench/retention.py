"""Retention at scale: govkit's plan and apply against the same DELETE written by hand.

A DuckDB file holds ``users`` (subject key ``id``) and ``events`` (``user_id`` -> users, an
owner reference) with ``--rows`` events spread over two years; ``--held`` users are under
a legal hold by subject key. The rule deletes events older than one year (about half).
The file is copied twice: one copy gets the hand-written statement

    DELETE FROM events WHERE created_at < ? AND user_id NOT IN (<held ids>)

the other ``govkit retention apply`` (plan counted first, journal, batches, proof). Each
phase runs in its own process so that its peak RSS is its own. Both copies are then
checked to hold the same rows.

    python bench/retention.py --rows 10000000 --held 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# a module named like a library would shadow the requests library (Presidio imports it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CUTOFF = datetime(2025, 12, 1)


def build(folder: Path, rows: int, users: int, held: int) -> None:
    import duckdb

    con = duckdb.connect(str(folder / "estate.duckdb"))
    con.execute("CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR)")
    con.execute("INSERT INTO users SELECT i, 'user' || i || '@example.com' FROM range(?) t(i)",
                [users])
    con.execute("CREATE TABLE events (id BIGINT, user_id BIGINT, created_at TIMESTAMP, "
                "ip VARCHAR)")
    con.execute(
        "INSERT INTO events SELECT i, hash(i) % $users, TIMESTAMP '2024-12-01' + "
        "to_seconds(CAST(hash(i * 7) % (730 * 86400) AS BIGINT)), '10.' || (i % 250) || '.' || "
        "(i % 199) || '.1' FROM range($rows) t(i)", {"users": users, "rows": rows})
    con.close()
    (folder / "inventory.yaml").write_text("""version: 1
organization: bench
sources:
  - name: warehouse
    kind: duckdb
    connection: {path: estate.duckdb}
    owner: bench@example.com
    jurisdictions: [EU]
    tables:
      - name: users
        subject_key: id
        columns: {email: {category: contact.email}}
      - name: events
        references: [{column: user_id, to: users.id, kind: owner}]
        columns: {ip: {category: network.ip}}
""")
    (folder / "policy.yaml").write_text("""version: 1
profile: bench
jurisdictions: [EU]
rules:
  - name: events-one-year
    tables: [warehouse.events]
    retain: 1 year
    clock: created_at
    action: delete
    basis: "Security logs kept one year"
""")
    (folder / "held.txt").write_text("\n".join(str(i * 37 % users) for i in range(held)))


def phase(name: str, folder: Path, batch_rows: int) -> dict:
    """Run one phase in this process; return its figures."""
    import duckdb

    held = [int(x) for x in (folder / "held.txt").read_text().split()]
    out: dict = {"phase": name}
    if name == "hand":
        con = duckdb.connect(str(folder / "hand.duckdb"))
        t = time.perf_counter()
        n = con.execute("DELETE FROM events WHERE created_at < ? AND user_id NOT IN "
                        "(SELECT unnest(?))", [CUTOFF, held]).fetchall()[0][0]
        con.close()     # the checkpoint that makes it durable, as govkit's run includes
        out["seconds"] = time.perf_counter() - t
        out["rows"] = int(n)
    else:
        from governance.audit_store import AuditStore
        from governance.inventory import load_inventory
        from governance.retention.applying import apply_retention
        from governance.retention.holds import place_hold
        from governance.retention.planning import plan_retention
        from governance.retention.policy import load_policies

        inv = load_inventory(folder / "inventory.yaml")
        pols = load_policies([folder / "policy.yaml"])
        store = AuditStore(folder / "audit.duckdb", create=not (folder / "audit.duckdb").exists())
        if name == "plan":
            place_hold(store, reason="bench class action", actor="bench",
                       table="warehouse.users", subject_keys=held)
            t = time.perf_counter()
            plan = plan_retention(pols, inv, store, NOW)
            out["first_seconds"] = time.perf_counter() - t   # imports, cold caches
            t = time.perf_counter()
            plan = plan_retention(pols, inv, store, NOW)
            out["seconds"] = time.perf_counter() - t
            out["rows"] = plan.steps[0].due
            out["held_rows"] = plan.steps[0].held
        else:
            t = time.perf_counter()
            res = apply_retention(pols, inv, store, NOW, "bench", batch_rows)
            out["seconds"] = time.perf_counter() - t
            out["rows"] = res.changed
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--held", type=int, default=10_000)
    ap.add_argument("--batch-rows", type=int, default=2_000_000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.dir, args.batch_rows)))
        return
    folder = args.dir or Path(tempfile.mkdtemp(prefix="govkit-retention-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    build(folder, args.rows, args.users, args.held)
    print(f"built {args.rows:,} events, {args.users:,} users, {args.held:,} held in "
          f"{time.perf_counter() - t:.1f} s ({folder})")
    shutil.copy(folder / "estate.duckdb", folder / "hand.duckdb")
    results = {}
    for name in ("hand", "plan", "apply"):
        proc = subprocess.run([sys.executable, __file__, "--phase", name, "--dir", str(folder),
                               "--batch-rows", str(args.batch_rows)],
                              capture_output=True, text=True, check=True)
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[name]
        rate = "" if name == "plan" else f" = {r['rows'] / r['seconds'] / 1e6:5.2f} M rows/s"
        print(f"{name:>5}: {r['rows']:>11,} rows in {r['seconds']:6.2f} s{rate}"
              f"   peak RSS {r['peak_rss_mb']:.0f} MB")
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{folder / 'hand.duckdb'}' AS h (READ_ONLY)")
    con.execute(f"ATTACH '{folder / 'estate.duckdb'}' AS g (READ_ONLY)")
    diff = con.execute("SELECT (SELECT count(*) FROM (SELECT * FROM h.events EXCEPT ALL "
                       "SELECT * FROM g.events)) + (SELECT count(*) FROM (SELECT * FROM g.events "
                       "EXCEPT ALL SELECT * FROM h.events))").fetchall()[0][0]
    ratio = (results["apply"]["rows"] / results["apply"]["seconds"]) / \
        (results["hand"]["rows"] / results["hand"]["seconds"])
    print(f"same rows left in both copies: {diff == 0} ({diff} differing)")
    print(f"govkit apply rate / hand-written rate: {ratio:.0%} (target >= 50%); plan "
          f"{results['plan']['seconds']:.2f} s (target < 2 s; first plan of the process "
          f"{results['plan']['first_seconds']:.2f} s); held rows planned "
          f"{results['plan']['held_rows']:,}")


if __name__ == "__main__":
    main()
