"""Retention end to end on the demo estate with a fixed clock, checked with our own SQL.

Every claim is checked independently of the code under test: rows expected to go are
computed with plain SQL on the source before the run, held rows are compared by per-row
sha256, files by their bytes, the audit log by verify_log.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from governance.audit_store import AuditStore
from governance.demo import build_demo
from governance.dsar.holds import LegalHolds
from governance.dsar.identities import Identity
from governance.errors import ConfigError
from governance.inventory import load_inventory
from governance.legal_holds import holds_in_force
from governance.retention.applying import apply_retention
from governance.retention.conflicts import decide
from governance.retention.holds import place_hold
from governance.retention.planning import plan_retention
from governance.retention.policy import Period, check_policy, load_estate, load_policies
from governance.sources.pool import ConnectorPool

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TICKET_CUTOFF = "2024-12-01 00:00:00"      # 2 years before NOW
ORDER_CUTOFF = "2025-11-01 00:00:00"       # 13 months before NOW

POLICY = """version: 1
profile: acme
jurisdictions: [EU]
events:
  collected: {app_db.orders: created_at, app_db.support_tickets: opened_at}
rules:
  - name: tickets
    tables: [app_db.support_tickets]
    retain: 2 years
    starts_at: collected
    action: delete
    basis: "Complaints: limitation period"
  - name: orders-minimise
    tables: [app_db.orders]
    retain: 13 months
    starts_at: collected
    action: anonymize
    columns: {shipping_address: "null"}
    basis: "No longer needed for delivery"
"""


def rows_digest(db: Path, sql: str, params: tuple = ()) -> dict[int, str]:
    """sha256 of every row the query returns (its first column is the row id)."""
    con = sqlite3.connect(db)
    try:
        return {r[0]: hashlib.sha256(repr(r).encode()).hexdigest()
                for r in con.execute(sql, params)}
    finally:
        con.close()


def csv(values: object) -> str:
    """Integer ids as a SQL list (ids only, never text)."""
    return ",".join(str(int(v)) for v in values)  # type: ignore[attr-defined]


def ids(db: Path, sql: str, params: tuple = ()) -> set[int]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute(sql, params)}
    finally:
        con.close()


@pytest.fixture()
def estate(tmp_path: Path) -> dict:
    demo = build_demo(tmp_path / "demo")
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    assert store.schema_version() >= 6      # created now, as govkit init would
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY)
    return {"demo": demo, "store": store, "policy": policy, "db": demo.app_db,
            "inventory": load_inventory(demo.inventory)}


def _held_user(db: Path) -> tuple[int, str]:
    con = sqlite3.connect(db)
    uid, email = con.execute(
        "SELECT u.id, u.email FROM users u JOIN support_tickets t ON t.user_id = u.id "
        "WHERE datetime(t.opened_at) < ? ORDER BY u.id LIMIT 1", (TICKET_CUTOFF,)).fetchone()
    con.close()
    return uid, email


def test_period_parsing_and_calendar_months() -> None:
    assert Period.parse("13 months").before(datetime(2026, 3, 31, tzinfo=UTC)) == \
        datetime(2025, 2, 28, tzinfo=UTC)
    assert Period.parse("2 years").before(NOW) == datetime(2024, 12, 1, tzinfo=UTC)
    assert Period.parse("90 days").before(NOW) == datetime(2026, 9, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown unit 'yaers'"):
        Period.parse("2 yaers")


def test_plan_and_apply_remove_exactly_the_expected_rows_and_keep_held_ones(estate: dict
                                                                              ) -> None:
    db, store, inv = estate["db"], estate["store"], estate["inventory"]
    uid, email = _held_user(db)
    LegalHolds(store).place_on_subject([Identity("email", email)], "Case 7", "dpo")
    place_hold(store, reason="Audit of Q1 2023", actor="dpo", table="app_db.support_tickets",
               covers=(datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 3, 31, tzinfo=UTC)))
    # Our own SQL: the tickets that must go, and the rows that must survive unchanged.
    old = "datetime(opened_at) < ?"
    in_range = "datetime(opened_at) BETWEEN '2023-01-01 00:00:00' AND '2023-03-31 00:00:00'"
    expected_tickets = ids(db, f"SELECT id FROM support_tickets WHERE {old} AND user_id <> ? "
                               f"AND NOT ({in_range})", (TICKET_CUTOFF, uid))
    held_tickets = rows_digest(db, f"SELECT * FROM support_tickets WHERE {old} AND "
                                   f"(user_id = ? OR {in_range})", (TICKET_CUTOFF, uid))
    kept_tickets = rows_digest(db, f"SELECT * FROM support_tickets WHERE NOT ({old})",
                               (TICKET_CUTOFF,))
    msgs = "SELECT {} FROM ticket_messages WHERE ticket_id IN ({})"
    expected_msgs = ids(db, msgs.format("id", csv(expected_tickets)))
    held_msgs = rows_digest(db, msgs.format("*", csv(held_tickets)))
    old_orders = ids(db, "SELECT id FROM orders WHERE datetime(created_at) < ?",
                     (ORDER_CUTOFF,))
    held_orders = rows_digest(db, "SELECT * FROM orders WHERE user_id = ?", (uid,))
    new_orders = rows_digest(db, "SELECT * FROM orders WHERE datetime(created_at) >= ?",
                             (ORDER_CUTOFF,))
    assert expected_tickets and held_tickets and old_orders and held_orders

    policies = load_policies([estate["policy"]])
    plan = plan_retention(policies, inv, store, NOW)
    by = {(s.rule, s.table): s for s in plan.steps}
    assert by[("tickets", "support_tickets")].due == len(expected_tickets)
    assert by[("tickets", "support_tickets")].held == len(held_tickets)
    assert by[("tickets", "ticket_messages")].due == len(expected_msgs)
    assert by[("orders-minimise", "orders")].due == len(old_orders - set(held_orders))

    result = apply_retention(policies, inv, store, NOW, "tester", batch_rows=17)
    assert ids(db, "SELECT id FROM support_tickets") == \
        set(kept_tickets) | set(held_tickets)
    assert not expected_tickets & ids(db, "SELECT id FROM support_tickets")
    assert not expected_msgs & ids(db, "SELECT id FROM ticket_messages")
    assert rows_digest(db, f"SELECT * FROM support_tickets WHERE id IN ({csv(held_tickets)})"
                       ) == held_tickets
    assert rows_digest(db, "SELECT * FROM support_tickets WHERE NOT (datetime(opened_at) < ?)",
                       (TICKET_CUTOFF,)) == kept_tickets
    assert rows_digest(db, msgs.format("*", csv(held_tickets))) == held_msgs
    assert rows_digest(db, "SELECT * FROM orders WHERE user_id = ?", (uid,)) == held_orders
    assert rows_digest(db, "SELECT * FROM orders WHERE datetime(created_at) >= ?",
                       (ORDER_CUTOFF,)) == new_orders
    assert ids(db, "SELECT id FROM orders WHERE shipping_address IS NULL") == \
        old_orders - set(held_orders)
    assert result.changed == len(expected_tickets) + len(expected_msgs) + \
        len(old_orders - set(held_orders))

    # Plan after apply: nothing due; a rerun changes nothing.
    again = plan_retention(policies, inv, store, NOW)
    assert again.due == 0
    second = apply_retention(policies, inv, store, NOW, "tester")
    assert second.changed == 0 and not second.resumed

    # Proof: one log row per step, predicates with placeholders, no value; chain intact.
    entries = [e for e in store.log_entries() if e.action == "retention.applied"]
    assert {(e.target, e.details["rule"]) for e in entries} >= {
        ("app_db.support_tickets", "tickets"), ("app_db.ticket_messages", "tickets"),
        ("app_db.orders", "orders-minimise")}
    text = json.dumps([e.details for e in store.log_entries()])
    assert email not in text and "?" in text
    assert store.verify_log().ok


def test_conflict_keeping_obligation_beats_deletion_and_explains(estate: dict) -> None:
    policy = estate["policy"]
    policy.write_text(POLICY + """  - name: orders-tax
    tables: [app_db.orders]
    retain: 10 years
    starts_at: collected
    action: anonymize
    columns: {shipping_address: "null", user_id: "null"}
    legal_basis: legal_obligation
    basis: "Tax and accounting records, 10 years"
  - name: orders-audit
    tables: [app_db.orders]
    retain: 6 years
    starts_at: collected
    action: review
    legal_basis: legal_obligation
    basis: "Audit trail, 6 years"
""")
    db, store, inv = estate["db"], estate["store"], estate["inventory"]
    policies = load_policies([policy])
    with ConnectorPool(inv) as pool:
        estate_ = load_estate(inv, store, pool)
    decision = decide(policies, estate_, holds_in_force(store, NOW))[("app_db", "orders")]
    assert decision.deciding == "orders-tax"          # the longest keeping obligation
    text = "\n".join(decision.explain())
    assert "decided by orders-tax" in text and "waits for the longer keeping obligation" in text
    before = rows_digest(db, "SELECT * FROM orders")
    apply_retention(policies, inv, store, NOW, "tester")
    assert rows_digest(db, "SELECT * FROM orders") == before      # nothing before 10 years
    later = datetime(2035, 6, 1, tzinfo=UTC)
    expected = ids(db, "SELECT id FROM orders WHERE datetime(created_at) < '2025-06-01'")
    plan = plan_retention(policies, inv, store, later)
    tax = next(s for s in plan.steps if s.rule == "orders-tax")
    assert tax.due == len(expected) and expected
    # the decision is recorded per table with the run
    rows = store.query("SELECT deciding FROM retention_decisions WHERE table_name = 'orders'")
    assert rows and rows[0]["deciding"] == "orders-tax"


def test_table_and_source_holds_beat_every_rule(estate: dict) -> None:
    db, store, inv = estate["db"], estate["store"], estate["inventory"]
    LegalHolds(store).place_on_table("app_db.support_tickets", "Litigation", "dpo")
    place_hold(store, reason="Regulator inquiry", actor="dpo", source="app_db",
               ends_at=datetime(2027, 1, 1, tzinfo=UTC))
    before = rows_digest(db, "SELECT * FROM support_tickets")
    orders = rows_digest(db, "SELECT * FROM orders")
    policies = load_policies([estate["policy"]])
    plan = plan_retention(policies, inv, store, NOW)
    assert plan.steps == [] and len(plan.notes) == 2
    apply_retention(policies, inv, store, NOW, "tester")
    assert rows_digest(db, "SELECT * FROM support_tickets") == before
    assert rows_digest(db, "SELECT * FROM orders") == orders
    # after its end date the source hold no longer applies (the table hold still does)
    later = plan_retention(policies, inv, store, datetime(2027, 2, 1, tzinfo=UTC))
    assert [s.table for s in later.steps] == ["orders"]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from governance.cli import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("fault", ["retention.after_batch:2", "retention.before_batch:3",
                                   "retention.after_step:1"])
def test_a_kill_midway_resumes_without_loss_or_double_work(estate: dict, fault: str) -> None:
    db = estate["db"]
    expected_tickets = ids(db, "SELECT id FROM support_tickets WHERE datetime(opened_at) < ?",
                           (TICKET_CUTOFF,))
    old_orders = ids(db, "SELECT id FROM orders WHERE datetime(created_at) < ?",
                     (ORDER_CUTOFF,))
    kept = rows_digest(db, "SELECT * FROM support_tickets WHERE datetime(opened_at) >= ?",
                       (TICKET_CUTOFF,))
    env = {**os.environ, "GOVKIT_FAULT": fault}
    args = ["retention", "apply", "-i", str(estate["demo"].inventory), "--store",
            str(estate["store"].path), "-p", str(estate["policy"]), "--now", NOW.isoformat(),
            "--batch-rows", "25", "--yes"]
    killed = _cli(args, env)
    assert killed.returncode == 137, killed.stderr
    env.pop("GOVKIT_FAULT")
    done = _cli(args, env)
    assert done.returncode == 0, done.stderr
    assert "(resumed)" in done.stdout
    assert not expected_tickets & ids(db, "SELECT id FROM support_tickets")
    assert rows_digest(db, "SELECT * FROM support_tickets WHERE datetime(opened_at) >= ?",
                       (TICKET_CUTOFF,)) == kept
    assert ids(db, "SELECT id FROM orders WHERE shipping_address IS NULL") == old_orders
    steps = estate["store"].query("SELECT table_name, planned_rows, rows_affected, status "
                                  "FROM retention_steps")
    assert all(s["status"] == "done" and s["rows_affected"] == s["planned_rows"] for s in steps)
    assert {s["table_name"]: s["rows_affected"] for s in steps}["support_tickets"] == \
        len(expected_tickets)
    runs = estate["store"].query("SELECT status FROM retention_runs")
    assert [r["status"] for r in runs] == ["completed"]


def _apply_args(estate: dict) -> list[str]:
    return [sys.executable, "-c", "from governance.cli import main; main()", "retention",
            "apply", "-i", str(estate["demo"].inventory), "--store", str(estate["store"].path),
            "-p", str(estate["policy"]), "--now", NOW.isoformat(), "--batch-rows", "25",
            "--yes"]


def test_two_applies_on_one_store_take_turns(estate: dict) -> None:
    """Found by a helper on classicmodels: a second apply started while the first ran
    'resumed' the first one's run, and the two wrote one journal and doubled proof rows
    (the data was right; the record was not). The second now waits for the first; here
    the test holds the lock, then lets two applies race."""
    import time

    from governance.audit_store.files import held_exclusively

    db, store = estate["db"], estate["store"]
    due = ids(db, "SELECT id FROM support_tickets WHERE datetime(opened_at) < ?",
              (TICKET_CUTOFF,))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with held_exclusively(store.path.with_name(store.path.name + ".retention.lock")):
        waiting = subprocess.Popen(_apply_args(estate), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        assert waiting.poll() is None                          # it waits
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before
        second = subprocess.Popen(_apply_args(estate), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=600) for p in (waiting, second)]
    assert [p.returncode for p in (waiting, second)] == [0, 0], outs
    assert any("waiting for it to end" in o + e for o, e in outs)
    assert not due & ids(db, "SELECT id FROM support_tickets")
    # One run changed the rows, the other found nothing left: journals and proofs agree.
    runs = store.query("SELECT r.run_id, r.status, sum(s.rows_affected) AS n FROM "
                       "retention_runs r JOIN retention_steps s USING (run_id) "
                       "GROUP BY r.run_id, r.status ORDER BY n DESC")
    assert [r["status"] for r in runs] == ["completed"] * len(runs)
    assert runs[0]["n"] > 0 and all(r["n"] == 0 for r in runs[1:])
    tickets = store.query("SELECT rows_affected FROM retention_steps WHERE run_id = ? AND "
                          "table_name = 'support_tickets'", [runs[0]["run_id"]])
    assert [t["rows_affected"] for t in tickets] == [len(due)]
    proofs = [e for e in store.log_entries() if e.action == "retention.applied"
              and e.details["run_id"] == runs[0]["run_id"]]
    steps = store.query("SELECT count(*) AS n FROM retention_steps WHERE run_id = ?",
                        [runs[0]["run_id"]])[0]["n"]
    assert len(proofs) == steps                                # one proof per step


@pytest.mark.parametrize("when,table", [
    ("retention.after_step", "app_db.support_tickets"),   # a later step's table
    ("retention.after_batch", "app_db.orders"),           # the table being changed
])
def test_a_hold_placed_while_a_run_applies_stops_it_before_the_held_rows(
        estate: dict, monkeypatch: pytest.MonkeyPatch, when: str, table: str) -> None:
    """Found by a helper on classicmodels: a table hold placed while an apply ran did not
    stop its later steps (100 held payments deleted, proof 'held_rows: 0'). The run now
    stops before the next step or batch, marked failed, nothing more changed; the next
    apply plans with the hold. (The plan: orders anonymized, then tickets and their
    messages deleted.)"""
    from governance.errors import RetentionError
    from governance.retention import applying

    db, store, inv = estate["db"], estate["store"], estate["inventory"]

    def state() -> dict[str, dict[int, str]]:
        return {t: rows_digest(db, f"SELECT * FROM {t}")
                for t in ("orders", "support_tickets", "ticket_messages")}

    before = state()
    real = applying.fault_point
    placed: list[str] = []

    def fault(name: str) -> None:
        if name == when and not placed:
            placed.append(place_hold(store, reason="Tax audit", actor="counsel", table=table,
                                     inventory=inv).hold_id)
        real(name)

    monkeypatch.setattr(applying, "fault_point", fault)
    policies = load_policies([estate["policy"]])
    with pytest.raises(RetentionError, match="was placed after this run was planned"):
        apply_retention(policies, inv, store, NOW, "tester", batch_rows=3)
    monkeypatch.setattr(applying, "fault_point", real)
    stopped = state()
    changed = {t: sum(stopped[t].get(k) != v for k, v in before[t].items()) for t in before}
    if table == "app_db.orders":
        assert 0 < changed["orders"] <= 3                 # one batch, then stopped
    else:
        assert changed["orders"] == 577                   # its step had finished
    assert changed["support_tickets"] == changed["ticket_messages"] == 0
    assert [r["status"] for r in store.query("SELECT status FROM retention_runs")] == \
        ["failed"]
    again = apply_retention(policies, inv, store, NOW, "tester", batch_rows=3)
    assert not again.resumed
    after = state()
    held = table.split(".")[1]
    assert after[held] == stopped[held]                    # the held table as it was
    if held == "orders":
        assert len(after["support_tickets"]) == len(before["support_tickets"]) - 120


def test_files_are_rewritten_without_expired_rows_and_nothing_removed_remains(
        tmp_path: Path) -> None:
    folder = tmp_path / "crm"
    folder.mkdir()
    lines = ["id,email,name,last_seen"]
    records = []
    for i in range(200):
        seen = f"20{23 + i % 4}-0{1 + i % 9}-1{i % 10}"
        lines.append(f"{i},person{i}@example.com,\"Name, {i}\",{seen}")
        records.append(json.dumps({"id": i, "email": f"p{i}@example.org", "seen": seen}))
    csv_file = folder / "contacts.csv"
    csv_file.write_bytes(("\n".join(lines) + "\n").encode())
    os.chmod(csv_file, 0o640)
    (tmp_path / "logs").mkdir()
    jsonl = tmp_path / "logs" / "visits.jsonl"
    jsonl.write_bytes(("\n".join(records) + "\n").encode())
    (tmp_path / "inventory.yaml").write_text("""version: 1
organization: files
sources:
  - name: crm
    kind: csv
    connection: {path: crm}
    owner: crm@example.com
    jurisdictions: [EU]
    tables:
      - name: contacts
        subject_key: email
        columns: {email: {category: contact.email}, name: {category: identity.name}}
  - name: web
    kind: jsonl
    connection: {path: logs}
    owner: web@example.com
    jurisdictions: [EU]
    tables:
      - name: visits
        columns: {email: {category: contact.email}}
""")
    (tmp_path / "policy.yaml").write_text("""version: 1
profile: files
jurisdictions: [EU]
keys: {web.visits: id}
rules:
  - name: contacts
    tables: [crm.contacts]
    retain: 2 years
    clock: last_seen
    action: delete
    basis: "Marketing, two years without contact"
  - name: visits
    tables: [web.visits]
    retain: 2 years
    clock: seen
    action: delete
    basis: "Web logs"
""")
    inv = load_inventory(tmp_path / "inventory.yaml")
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    policies = load_policies([tmp_path / "policy.yaml"])
    cutoff = "2024-12-01"
    gone = [ln for ln in lines[1:] if ln.rsplit(",", 1)[1] < cutoff]
    stay = [lines[0]] + [ln for ln in lines[1:] if ln.rsplit(",", 1)[1] >= cutoff]
    plan = plan_retention(policies, inv, store, NOW)
    assert {s.table: s.due for s in plan.steps} == {"contacts": len(gone), "visits": len(gone)}
    result = apply_retention(policies, inv, store, NOW, "tester")
    assert csv_file.read_bytes() == ("\n".join(stay) + "\n").encode()   # byte-identical rest
    assert os.stat(csv_file).st_mode & 0o777 == 0o640
    data = csv_file.read_bytes() + jsonl.read_bytes()
    for ln in gone:
        assert ln.split(",")[1].encode() not in data
    kept_json = [r for r in records if json.loads(r)["seen"] >= cutoff]
    assert jsonl.read_bytes() == ("\n".join(kept_json) + "\n").encode()
    checks = [e.details["byte_check"] for e in store.log_entries()
              if e.action == "retention.applied"]
    assert all(c["values_left"] == 0 and c["values_checked"] > 0 for c in checks)
    assert result.changed == 2 * len(gone)
    assert plan_retention(policies, inv, store, NOW).due == 0


def test_parquet_events_rewritten_without_expired_rows(estate: dict) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    estate["policy"].write_text("""version: 1
profile: events
jurisdictions: [EU]
keys: {event_log.events: event_id}
rules:
  - name: ips
    categories: [network.ip]
    retain: 30 days
    clock: occurred_at
    action: delete
    basis: "Security logs"
""")
    (f,) = sorted(estate["demo"].events_dir.glob("*.parquet"))
    before = pq.read_table(f)
    cutoff = datetime(2026, 11, 1)
    keep = before.filter(pc.greater_equal(before["occurred_at"], cutoff))
    policies = load_policies([estate["policy"]])
    apply_retention(policies, estate["inventory"], estate["store"], NOW, "tester")
    after = pq.read_table(f)
    assert after.num_rows == keep.num_rows < before.num_rows
    assert after.to_pylist() == keep.to_pylist()


@pytest.mark.parametrize("edit, field, message", [
    ("    retain: 2 years\n", "    retain: 2 yaers\n", "unknown unit 'yaers'"),
    ("tables: [app_db.support_tickets]", "tables: [app_db.support_tickes]", "unknown table"),
    ("columns: {shipping_address: \"null\"}", "columns: {shipping_adress: \"null\"}",
     "unknown column 'shipping_adress'"),
    ("    starts_at: collected\n    action: anonymize", "    clock: amount_cents\n"
     "    action: anonymize", "is not a date"),
])
def test_a_malformed_policy_fails_with_file_line_and_field(estate: dict, edit: str,
                                                           field: str, message: str) -> None:
    text = POLICY.replace(edit, field, 1)
    assert text != POLICY
    estate["policy"].write_text(text)
    line = text[:text.index(field)].count("\n") + 1 + (field[:1] == "\n")
    with pytest.raises(ConfigError) as info:
        policies = load_policies([estate["policy"]])
        with ConnectorPool(estate["inventory"]) as pool:
            e = load_estate(estate["inventory"], estate["store"], pool)
            check_policy(policies[0], e, pool)
    err = str(info.value)
    assert err.startswith(f"{estate['policy']}:") and message in err
    assert f":{line}:" in err or f":{line + 1}:" in err, err
    assert "rules[" in err
    # the CLI says it in one line, exit status 2, nothing changed
    before = rows_digest(estate["db"], "SELECT * FROM support_tickets")
    out = _cli(["retention", "apply", "-i", str(estate["demo"].inventory), "--store",
                str(estate["store"].path), "-p", str(estate["policy"]), "--yes"], dict(os.environ))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert rows_digest(estate["db"], "SELECT * FROM support_tickets") == before


def test_dagster_retention_schedule_starts_stopped_and_the_asset_applies(estate: dict) -> None:
    import dagster as dg

    from pipelines.resources import GovernanceResource
    from pipelines.retention import build_retention_assets, retention_definitions

    resource = GovernanceResource(inventory_path=str(estate["demo"].inventory),
                                  audit_store_path=str(estate["store"].path))
    defs = dg.Definitions.merge(retention_definitions(str(estate["demo"].inventory)),
                                dg.Definitions(resources={"governance": resource}))
    repo = defs.get_repository_def()
    assert repo.get_schedule_def("daily_retention").default_status == \
        dg.DefaultScheduleStatus.STOPPED
    db = estate["db"]
    due = ids(db, "SELECT id FROM support_tickets WHERE datetime(opened_at) < ?",
              (TICKET_CUTOFF,))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        build_retention_assets(dg.StaticPartitionsDefinition(["app_db", "marketing_export",
                                                             "event_log"])),
        partition_key="app_db",
        resources={"governance": resource}, instance=instance,
        run_config={"ops": {"retention": {"config": {
            "policies": [str(estate["policy"])], "now": NOW.isoformat()}}}})
    assert result.success
    assert not due & ids(db, "SELECT id FROM support_tickets")
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    plan_at = next(i for i, m in enumerate(logged) if "plan: tickets" in m)
    first_change = next(i for i, m in enumerate(logged) if "batch 1" in m)
    assert plan_at < first_change          # the plan is logged before any change


def test_the_compliance_audit_reports_rows_past_retention_from_the_policies(
        estate: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 #7: the audit's retention check asks the retention engine (policies from
    GOVKIT_RETENTION_POLICY) and fails on the tables with rows past their period; after
    apply it passes there. The due count is checked with our own SQL."""
    from governance.audit.model import Status
    from governance.audit.runner import run_audit

    db, store, inv = estate["db"], estate["store"], estate["inventory"]
    monkeypatch.setenv("GOVKIT_RETENTION_POLICY", str(estate["policy"]))
    due = len(ids(db, "SELECT id FROM support_tickets WHERE datetime(opened_at) < ?",
                  (TICKET_CUTOFF,)))
    assert due > 0
    run = run_audit(inv, store, today=NOW.date(), only=["retention_period"],
                    load_processing_file=False)
    fails = {(r.table, r.evidence.get("rule")): r for r in run.results
             if r.status is Status.FAIL}
    assert fails[("support_tickets", "tickets")].evidence["rows_due"] == due
    apply_retention(load_policies([estate["policy"]]), inv, store, NOW, "tester")
    after = run_audit(inv, store, today=NOW.date(), only=["retention_period"],
                      load_processing_file=False)
    assert not [r for r in after.results if r.status is Status.FAIL
                and r.table == "support_tickets"]
