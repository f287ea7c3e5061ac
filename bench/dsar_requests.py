"""Data-subject requests at scale: govkit against the same lookups written by hand in SQL.

Builds a users / orders / tickets estate of N subjects on SQLite, DuckDB and PostgreSQL
(users with e-mail and phone; two orders per user; one ticket per user, about 1% of whose
notes mention another user's e-mail address), then measures in the same run:

* the floor: the same lookups written by hand, with the same meaning: the user by e-mail
  in any letter case (``lower(email) = ?``, which the ``lower(email)`` index serves on
  SQLite and PostgreSQL; DuckDB has no expression index and scans), whether their phone
  number is anyone else's (its four written forms), their orders and tickets (by
  user_id), the tickets whose notes mention the e-mail in any case or the phone in either
  national form (one pass), and whose ticket each mention is; for an erasure, the same
  lookups, the deletes and the redaction in one transaction, and a verification (the same
  searches again, counted);
* govkit: ``plan_request`` of an erasure, an access run (export included) and an erasure
  run with its verification, each on its own subject, through RequestBook (create, verify,
  approve). Both sides are warmed first by doing what is timed: the floor by its lookup,
  govkit by planning an access request (which changes nothing) and by an access run for
  another subject (its time is printed apart: the first access in a process also loads
  what it loads once). Every figure is the median of three: the plan three times, the
  access and erasure runs and the floor's erasure on three subjects each.

The floor opens a fresh connection for each lookup and each erasure, as a request opens
each source: govkit never keeps a company's database open between requests (an open
DuckDB file locks out its other writers), and on DuckDB the buffer pool lives in the
connection, so a connection kept open would answer from memory a request never has. The
same lookups on one connection kept open are printed apart (``floor_warm_s``).

Each engine and scale runs in its own process (peak RSS is that process's). Usage:

    python bench/dsar_requests.py --subjects 100000            # quick
    python bench/dsar_requests.py --subjects 1000000 5000000   # the issue's scales
    python bench/dsar_requests.py --engines sqlite,duckdb --subjects 1000000

PostgreSQL: ``--pg-dsn`` (default postgresql://postgres@127.0.0.1:54329/postgres); the bench
creates and uses its own database ``govkit_bench_requests`` (schema per scale).
"""

# The estate's SQL is built from integers computed here and fixed names; every value a
# lookup searches for is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

# bench/ last on sys.path, as in the other scripts here: a module in it must never stand in
# for a library of the same name.
_HERE = Path(__file__).parent.resolve()
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

ENGINES = ("sqlite", "duckdb", "postgres")
PG_DB = "govkit_bench_requests"
DSN_ENV = "GOVKIT_BENCH_PG_DSN"
# Tickets whose notes mention another user's e-mail address: one in MENTION_EVERY.
MENTION_EVERY = 100


# -- the estate ------------------------------------------------------------------------
def _owner_of_ticket(i: int, n: int) -> int:
    return (i * 104729) % n + 1


def _mentioned_by_ticket(i: int, n: int) -> int:
    return (i * 7919) % n + 1


def email_of(uid: int) -> str:
    """Every tenth address is stored with capitals (found in any letter case)."""
    return f"User{uid}@Example.com" if uid % 10 == 0 else f"user{uid}@example.com"


def phone_of(uid: int) -> str:
    return f"+86138{uid:08d}"


def phone_forms(phone: str) -> tuple[str, str, str, str]:
    """The written forms of a +86 138 mobile number: E.164, international, national with
    spaces, national digits."""
    digits = phone.removeprefix("+86")
    national = f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    return phone, f"+86 {national}", national, digits


def subjects(n: int) -> dict[str, list[int]]:
    """Users mentioned in another user's ticket: three for access, three for erasure, three
    for the floor's erasure, one to warm govkit up."""
    out: dict[str, list[int]] = {}
    for role, ks in (("access", (3, 17, 19)), ("erasure", (7, 23, 29)),
                     ("floor", (11, 31, 37)), ("warm", (13,))):
        out[role] = [_mentioned_by_ticket(k * MENTION_EVERY, n) for k in ks]
    every = [u for us in out.values() for u in us]
    assert len(set(every)) == len(every)
    return out


def _notes_sql(ident: str, n: int, concat: str) -> str:
    """SQL building ticket ``ident``'s notes (a mention in one ticket of MENTION_EVERY)."""
    m = f"(({ident} * 7919) % {n} + 1)"
    email = (f"CASE WHEN {m} % 10 = 0 THEN 'User' {concat} CAST({m} AS TEXT) {concat} "
             f"'@Example.com' ELSE 'user' {concat} CAST({m} AS TEXT) {concat} "
             f"'@example.com' END")
    return (f"CASE WHEN {ident} % {MENTION_EVERY} = 0 THEN 'Customer wrote from ' {concat} "
            f"{email} {concat} ' asking about a late parcel.' ELSE 'Delivery question ' "
            f"{concat} CAST({ident} AS TEXT) {concat} ', no contact details given.' END")


def _user_sql(i: str, concat: str, pad: str) -> str:
    email = (f"CASE WHEN {i} % 10 = 0 THEN 'User' {concat} CAST({i} AS TEXT) {concat} "
             f"'@Example.com' ELSE 'user' {concat} CAST({i} AS TEXT) {concat} "
             "'@example.com' END")
    return (f"{i}, {email}, '+86138' {concat} {pad}, 'Name ' {concat} CAST({i} AS TEXT)")


DDL = [
    "CREATE TABLE users (user_id BIGINT PRIMARY KEY, email TEXT NOT NULL, phone TEXT, "
    "name TEXT)",
    "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, "
    "amount_cents BIGINT, status TEXT)",
    "CREATE TABLE tickets (ticket_id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, "
    "notes TEXT)",
]
INDEXES = [
    "CREATE INDEX users_email ON users (email)",
    "CREATE INDEX users_email_lower ON users (lower(email))",
    "CREATE INDEX users_phone ON users (phone)",
    "CREATE INDEX orders_user ON orders (user_id)",
    "CREATE INDEX tickets_user ON tickets (user_id)",
]


def build_sqlite(path: Path, n: int) -> None:
    path.unlink(missing_ok=True)
    c = sqlite3.connect(path)
    c.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
    for ddl in DDL:
        c.execute(ddl)
    seq = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {m}) "
    c.execute(seq.format(m=n) + "INSERT INTO users SELECT "
              + _user_sql("i", "||", "printf('%08d', i)") + " FROM s")
    c.execute(seq.format(m=2 * n) + f"INSERT INTO orders SELECT i, (i - 1) % {n} + 1, "
              "i * 37 % 100000, CASE WHEN i % 3 = 0 THEN 'shipped' ELSE 'paid' END FROM s")
    c.execute(seq.format(m=n) + f"INSERT INTO tickets SELECT i, (i * 104729) % {n} + 1, "
              + _notes_sql("i", n, "||") + " FROM s")
    for ddl in INDEXES:
        c.execute(ddl)
    c.execute("ANALYZE")
    c.commit()
    c.execute("PRAGMA journal_mode=DELETE")
    c.close()


def build_duckdb(path: Path, n: int) -> None:
    import duckdb

    path.unlink(missing_ok=True)
    c = duckdb.connect(str(path))
    for ddl in DDL:
        c.execute(ddl)
    c.execute("INSERT INTO users SELECT " + _user_sql("i", "||", "lpad(CAST(i AS TEXT), 8, '0')")
              + f" FROM range(1, {n + 1}) t(i)")
    c.execute(f"INSERT INTO orders SELECT i, (i - 1) % {n} + 1, i * 37 % 100000, CASE WHEN "
              f"i % 3 = 0 THEN 'shipped' ELSE 'paid' END FROM range(1, {2 * n + 1}) t(i)")
    c.execute(f"INSERT INTO tickets SELECT i, (i * 104729) % {n} + 1, "
              + _notes_sql("i", n, "||") + f" FROM range(1, {n + 1}) t(i)")
    c.execute("CHECKPOINT")
    c.close()


def pg_admin_dsn(base: str) -> str:
    return base


def pg_dsn(base: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + PG_DB


def build_postgres(base: str, schema: str, n: int) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            c.execute(f"CREATE DATABASE {PG_DB}")
    with psycopg.connect(pg_dsn(base), autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        c.execute(f"CREATE SCHEMA {schema}")
        c.execute(f"SET search_path = {schema}")
        for ddl in DDL:
            c.execute(ddl)
        c.execute("INSERT INTO users SELECT " + _user_sql("i", "||", "lpad(i::text, 8, '0')")
                  + f" FROM generate_series(1, {n}) i")
        c.execute(f"INSERT INTO orders SELECT i, (i - 1) % {n} + 1, i * 37 % 100000, CASE "
                  f"WHEN i % 3 = 0 THEN 'shipped' ELSE 'paid' END FROM generate_series(1, "
                  f"{2 * n}) i")
        c.execute(f"INSERT INTO tickets SELECT i, (i::bigint * 104729) % {n} + 1, "
                  + _notes_sql("i::bigint", n, "||") + f" FROM generate_series(1, {n}) i")
        for ddl in INDEXES:
            c.execute(ddl)
        c.execute("VACUUM ANALYZE users")
        c.execute("VACUUM ANALYZE orders")
        c.execute("VACUUM ANALYZE tickets")


INVENTORY = """version: 1
organization: bench
sources:
  - name: shop
    kind: {kind}
    owner: bench@example.org
    jurisdictions: [EU]
    connection: {{{connection}}}
    tables:
      - name: users
        subject_key: user_id
        columns:
          email: {{category: contact.email}}
          phone: {{category: contact.phone}}
          name: {{category: identity.name}}
      - name: orders
        references:
          - {{column: user_id, to: users.user_id, kind: owner}}
      - name: tickets
        references:
          - {{column: user_id, to: users.user_id, kind: owner}}
        columns:
          notes: {{category: free_text}}
"""


# -- the floor: the same lookups by hand ----------------------------------------------
class Hand:
    """The lookups written by hand, through the engine's own driver."""

    def __init__(self, engine: str, target: str):
        self.engine = engine
        if engine == "sqlite":
            self.c: Any = sqlite3.connect(target)
            self.p = "?"
        elif engine == "duckdb":
            import duckdb

            self.c = duckdb.connect(target)
            self.p = "?"
        else:
            import psycopg

            self.c = psycopg.connect(target)
            self.p = "%s"

    def q(self, sql: str, *params: Any) -> list[tuple]:
        cur = self.c.cursor()
        cur.execute(sql.replace("?", self.p), params)
        rows = cur.fetchall() if cur.description else []
        cur.close()
        return rows

    def folded(self) -> str:
        """The notes containing a lower-case pattern in any letter case, written the fastest
        way each engine has (PostgreSQL: lower() LIKE, about 2x faster than ILIKE here)."""
        return {"sqlite": "notes LIKE ?", "duckdb": "notes ILIKE ?",
                "postgres": "lower(notes) LIKE ?"}[self.engine]

    def look(self, email: str, phone: str) -> dict[str, Any]:
        """What a request must find, searched the way it must be: the user by e-mail in any
        letter case (the ``lower(email)`` index where the engine has indexes); whether their
        phone number is anyone else's too (its written forms); their orders and tickets;
        the notes that mention the e-mail (any case) or the phone (the national forms, of
        which the international ones contain one); and whose ticket each mention is."""
        email = email.lower()
        [user] = self.q("SELECT * FROM users WHERE lower(email) = ?", email)
        uid = user[0]
        forms = phone_forms(phone)
        holders = self.q("SELECT user_id FROM users WHERE phone IN (?, ?, ?, ?)", *forms)
        orders = self.q("SELECT * FROM orders WHERE user_id = ?", uid)
        tickets = self.q("SELECT * FROM tickets WHERE user_id = ?", uid)
        mentions = self.q(f"SELECT ticket_id, user_id, notes FROM tickets WHERE "
                          f"{self.folded()} OR notes LIKE ? OR notes LIKE ?", f"%{email}%",
                          f"%{forms[2]}%", f"%{forms[3]}%")
        owners = [self.q("SELECT user_id FROM users WHERE user_id = ?", m[1])
                  for m in mentions if m[1] != uid]
        if self.engine == "postgres":
            self.c.rollback()
        return {"uid": uid, "orders": orders, "tickets": tickets, "mentions": mentions,
                "holders": holders, "owners": owners}

    def erase(self, email: str, phone: str) -> dict[str, int]:
        """Look up, delete and redact in one transaction, then verify."""
        if self.engine == "duckdb":
            self.c.execute("BEGIN TRANSACTION")
        found = self.look(email, phone)
        uid = found["uid"]
        self.q("DELETE FROM tickets WHERE user_id = ?", uid)
        self.q("DELETE FROM orders WHERE user_id = ?", uid)
        for tid, _, _ in found["mentions"]:
            self.q("UPDATE tickets SET notes = replace(replace(notes, ?, '<EMAIL_ADDRESS>'), "
                   "?, '<PHONE_NUMBER>') WHERE ticket_id = ?", email, phone, tid)
        self.q("DELETE FROM users WHERE user_id = ?", uid)
        self.c.commit() if self.engine != "duckdb" else self.c.execute("COMMIT")
        forms = phone_forms(phone)
        left = self.q("SELECT count(*) FROM users WHERE lower(email) = ?", email.lower())[0][0]
        left += self.q("SELECT count(*) FROM users WHERE phone IN (?, ?, ?, ?)",
                       *forms)[0][0]
        left += self.q("SELECT count(*) FROM orders WHERE user_id = ?", uid)[0][0]
        left += self.q("SELECT count(*) FROM tickets WHERE user_id = ?", uid)[0][0]
        left += self.q(f"SELECT count(*) FROM tickets WHERE {self.folded()} OR notes LIKE ? "
                       "OR notes LIKE ?", f"%{email.lower()}%", f"%{forms[2]}%",
                       f"%{forms[3]}%")[0][0]
        if self.engine == "postgres":
            self.c.rollback()
        return {"left": left, "mentions": len(found["mentions"])}

    def close(self) -> None:
        self.c.close()


# -- one engine at one scale (run in its own process) ---------------------------------
def measure(engine: str, n: int, work: Path, base_dsn: str) -> dict[str, Any]:
    from governance.audit_store import AuditStore
    from governance.dsar.requests import RequestBook
    from governance.dsar.runner import plan_request, run_request
    from governance.inventory import load_inventory

    folder = work / f"{engine}-{n}"
    schema = f"bench_{n}"
    if engine == "sqlite":
        target, connection = str(folder / "shop.db"), "path: shop.db"
    elif engine == "duckdb":
        target, connection = str(folder / "shop.duckdb"), "path: shop.duckdb"
    else:
        os.environ[DSN_ENV] = pg_dsn(base_dsn)
        target, connection = pg_dsn(base_dsn), f"dsn_env: {DSN_ENV}, schema: {schema}"
    inv_path = folder / "inventory.yaml"
    inv_path.write_text(INVENTORY.format(kind=engine, connection=connection))
    inventory = load_inventory(inv_path)
    store_path = folder / "audit.duckdb"
    for p in folder.glob("audit.duckdb*"):
        p.unlink()
    store = AuditStore(store_path, create=True)
    book = RequestBook(store)
    who = subjects(n)
    out: dict[str, Any] = {"engine": engine, "subjects": n}

    def req(rtype: str, uid: int) -> str:
        r = book.create(rtype, [f"email={email_of(uid).lower()}"], "EU", "bench")
        book.verify(r.request_id, "bench", "identity checked")
        if rtype != "access" and hasattr(book, "approve"):
            book.approve(r.request_id, "bench-lead", "plan reviewed")
        return r.request_id

    def hand_open() -> Hand:
        hand = Hand(engine, target)
        if engine == "postgres":
            hand.q(f"SET search_path = {schema}")
            hand.c.commit()
        return hand

    def median(times: list[float]) -> float:
        return sorted(times)[len(times) // 2]

    # The floor, read-only lookups, each from a fresh connection as a request opens the
    # source (govkit never keeps a company's database open between requests; on DuckDB
    # the buffer pool lives in the connection). Warmed once, then the median of three.
    # The same lookups on one connection kept open are reported apart (floor_warm_s).
    a = who["access"][0]
    times = []
    for _ in range(4):
        t = time.perf_counter()
        hand = hand_open()
        floor_found = hand.look(email_of(a), phone_of(a))
        hand.close()
        times.append(time.perf_counter() - t)
    out["floor_lookup_s"] = median(times[1:])
    hand = hand_open()
    times = []
    for _ in range(4):
        t = time.perf_counter()
        hand.look(email_of(a), phone_of(a))
        times.append(time.perf_counter() - t)
    out["floor_warm_s"] = median(times[1:])
    hand.close()  # DuckDB allows one writer process-wide per file: govkit opens its own

    # govkit warmed the same way, by doing what is timed: a plan of an access request (it
    # changes nothing) and an access run for another subject (what a first access in a
    # process loads once, e.g. the public-suffix list the e-mail recognizer reads, is
    # reported apart as access_first_s).
    access_ids = [req("access", u) for u in who["access"]]
    plan_request(inventory, store, access_ids[0])
    t = time.perf_counter()
    warm = run_request(inventory, store, req("access", who["warm"][0]), "bench",
                       export_dir=folder / "exports")
    out["access_first_s"] = time.perf_counter() - t
    assert warm.status == "completed", warm.status
    erasure_ids = [req("erasure", u) for u in who["erasure"]]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        resolution, steps = plan_request(inventory, store, erasure_ids[0])
        times.append(time.perf_counter() - t)
    out["plan_s"] = median(times)
    out["plan_rows"] = resolution.row_count
    out["plan_blockers"] = len(resolution.blockers)

    # Access and erasure: the median of three runs, each on its own subject.
    times, statuses, rows = [], [], []
    for rid in access_ids:
        t = time.perf_counter()
        access = run_request(inventory, store, rid, "bench", export_dir=folder / "exports")
        times.append(time.perf_counter() - t)
        statuses.append(access.status)
        rows.append(access.found_rows)
    out["access_s"] = median(times)
    out["access_status"] = "/".join(sorted(set(statuses)))
    out["access_rows"] = rows[0]
    out["floor_rows"] = (1 + len(floor_found["orders"]) + len(floor_found["tickets"])
                         + len(floor_found["mentions"]))

    times, statuses, remaining = [], [], []
    for rid in erasure_ids:
        t = time.perf_counter()
        erased = run_request(inventory, store, rid, "bench", confirm=lambda s: True)
        times.append(time.perf_counter() - t)
        statuses.append(erased.status)
        remaining.append(erased.remaining)
    out["erasure_s"] = median(times)
    out["erasure_status"] = "/".join(sorted(set(statuses)))
    out["erasure_remaining"] = remaining

    times, left = [], 0
    for f in who["floor"]:
        t = time.perf_counter()
        hand = hand_open()
        left += hand.erase(email_of(f), phone_of(f))["left"]
        hand.close()
        times.append(time.perf_counter() - t)
    out["floor_erasure_s"] = median(times)
    out["floor_erasure_left"] = left
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def build(engine: str, n: int, work: Path, base_dsn: str) -> float:
    folder = work / f"{engine}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if engine == "sqlite":
        build_sqlite(folder / "shop.db", n)
    elif engine == "duckdb":
        build_duckdb(folder / "shop.duckdb", n)
    else:
        build_postgres(base_dsn, f"bench_{n}", n)
    return time.perf_counter() - t


def _child(args: argparse.Namespace) -> None:
    engine, n = args.one.split(":")
    if args.build_only:
        print(json.dumps({"build_s": build(engine, int(n), args.work, args.pg_dsn)}))
    else:
        print(json.dumps(measure(engine, int(n), args.work, args.pg_dsn), default=str))


def _table(results: list[dict[str, Any]]) -> str:
    head = ("| engine | subjects | floor lookup s | plan s (x) | access s (x) | "
            "floor erasure s | erasure run s (x) | status | first access in the process s | "
            "peak RSS MB |")
    lines = [head, "|" + "---|" * 10]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['engine']} | {r['subjects']:,} | error: {r['error']} |")
            continue
        fl, fe = r["floor_lookup_s"], r["floor_erasure_s"]
        lines.append(
            f"| {r['engine']} | {r['subjects']:,} | {fl:.4f} | {r['plan_s']:.3f} "
            f"({r['plan_s'] / fl:.1f}x) | {r['access_s']:.3f} ({r['access_s'] / fl:.1f}x) | "
            f"{fe:.4f} | {r['erasure_s']:.3f} ({r['erasure_s'] / fe:.1f}x) | "
            f"{r['access_status']}/{r['erasure_status']} | {r['access_first_s']:.3f} | "
            f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--work", type=Path, default=Path("bench-work/requests"))
    ap.add_argument("--pg-dsn", default=os.environ.get(
        "GOVKIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:54329/postgres"))
    ap.add_argument("--reuse", action="store_true", help="Keep estates already built.")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.work = args.work.resolve()
    if args.one:
        _child(args)
        return
    results = []
    for n in args.subjects:
        for engine in args.engines.split(","):
            row: dict[str, Any] = {"engine": engine, "subjects": n}
            try:
                marker = args.work / f"{engine}-{n}" / "built"
                if not (args.reuse and marker.exists()):
                    marker.unlink(missing_ok=True)
                    b = json.loads(_run(args, f"{engine}:{n}", True))
                    row["build_s"] = b["build_s"]
                    marker.write_text("")
                row.update(json.loads(_run(args, f"{engine}:{n}", False)))
                # An erasure changes the estate: build again next time.
                marker.unlink(missing_ok=True)
            except subprocess.CalledProcessError as e:
                row["error"] = (e.stderr or "").strip().splitlines()[-1:] or ["failed"]
            results.append(row)
            print(json.dumps(row, default=str), file=sys.stderr, flush=True)
    print(f"{date.today()}  {platform.node()}  {os.cpu_count()} CPUs  "
          f"Python {platform.python_version()}")
    print(_table(results))
    for r in results:
        if "floor_warm_s" in r:
            warm = r["floor_warm_s"]
            print(f"{r['engine']} {r['subjects']:,}: the floor's lookups on one connection "
                  f"kept open {warm:.4f} s (plan {r['plan_s'] / warm:.1f}x, access "
                  f"{r['access_s'] / warm:.1f}x of it)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


def _run(args: argparse.Namespace, one: str, build_only: bool) -> str:
    cmd = [sys.executable, __file__, "--one", one, "--work", str(args.work),
           "--pg-dsn", args.pg_dsn] + (["--build-only"] if build_only else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    main()
