"""The discovery scan on the demo organisation, end to end through the audit store."""

from __future__ import annotations

import sqlite3

from governance.audit_store import AuditStore
from governance.demo import UNDECLARED_TABLE
from governance.reports import scan_report_markdown
from governance.scan import FindingStatus, run_scan


def test_every_declared_pii_column_is_classified_correctly(scanned_demo, demo_inventory) -> None:
    result, _ = scanned_demo
    assert result.status == "succeeded", result.errors
    by_column = {(f.source, f.table_name, f.column_name): f for f in result.findings}
    declared = [(s.name, t.name, c, d.category) for s in demo_inventory.sources
                for t in s.tables for c, d in t.columns.items() if d.category]
    assert len(declared) == 13
    for source, table, column, category in declared:
        f = by_column[(source, table, column)]
        assert f.detected_category == category, (source, table, column, f.evidence)
        assert f.status == FindingStatus.CONFIRMED


def test_pipl_identifiers_found_by_value(scanned_demo) -> None:
    result, _ = scanned_demo
    by_column = {(f.table_name, f.column_name): f for f in result.findings}
    assert by_column[("user_kyc", "resident_id")].entity_types == ["CN_RESIDENT_ID"]
    assert by_column[("user_kyc", "resident_id")].sensitive
    assert by_column[("user_kyc", "bank_card")].entity_types == ["CN_BANK_CARD"]
    assert "CN_MOBILE" in by_column[("users", "phone")].entity_types
    assert {"EMAIL_ADDRESS", "CN_MOBILE"} <= set(by_column[("support_tickets", "notes")]
                                                 .entity_types)


def test_undeclared_table_is_flagged(scanned_demo) -> None:
    result, store = scanned_demo
    flagged = {f.column_name: f.detected_category for f in result.findings
               if f.status == FindingStatus.UNDECLARED_TABLE}
    assert flagged == {"email_address": "contact.email", "name": "identity.name",
                       "signup_ip": "network.ip"}
    tables = {t["table_name"]: t for t in store.tables(result.run_id)}
    assert tables[UNDECLARED_TABLE]["declared"] is False
    assert all(t["declared"] for n, t in tables.items() if n != UNDECLARED_TABLE)


def test_non_personal_columns_are_not_flagged(scanned_demo) -> None:
    result, _ = scanned_demo
    flagged = {(f.table_name, f.column_name) for f in result.findings if f.detected_category}
    for col in [("orders", "amount_cents"), ("orders", "created_at"),
                ("events", "event_id"), ("events", "user_agent"), ("contacts", "campaign")]:
        assert col not in flagged
    # A person's key identifies them (GDPR Art. 4(1)): users.id and the columns that refer
    # to it are personal data, as identity.user_id.
    by_col = {(f.table_name, f.column_name): f.detected_category for f in result.findings}
    assert by_col[("users", "id")] == "identity.user_id"
    assert by_col[("orders", "user_id")] == "identity.user_id"


def test_findings_and_log_are_in_the_store(scanned_demo) -> None:
    result, store = scanned_demo
    rows = store.findings(result.run_id)
    assert len(rows) == len(result.findings) == 43
    assert store.scan_runs()[0]["status"] == "succeeded"
    actions = [e.action for e in store.log_entries()]
    scan_actions = [a for a in actions if a not in ("scan.tables_recorded",
                                                    "scan.findings_recorded")]
    assert scan_actions[-2:] == ["scan.started", "scan.finished"]
    assert store.verify_log().ok


def test_no_raw_personal_data_in_store_or_report(scanned_demo, demo) -> None:
    result, store = scanned_demo
    conn = sqlite3.connect(demo.app_db)
    raw = [v for q in ("SELECT email FROM users", "SELECT phone FROM users",
                       "SELECT resident_id FROM user_kyc", "SELECT bank_card FROM user_kyc",
                       "SELECT full_name FROM users", "SELECT signup_ip FROM "
                       f"{UNDECLARED_TABLE}")
           for (v,) in conn.execute(q)]
    conn.close()
    stored = " ".join(str(v) for r in store.findings(result.run_id) for v in r.values())
    stored += " ".join(str(e.details) for e in store.log_entries())
    report = scan_report_markdown(store, result.run_id)
    for value in raw:
        assert value not in stored, value
        assert value not in report, value
    assert "\\*\\*\\*@example.com" in report  # masked sample, Markdown-escaped


def test_repeated_scans_of_unchanged_data_agree(demo_inventory, tmp_path) -> None:
    store = AuditStore(tmp_path / "a.duckdb", create=True)
    first = run_scan(demo_inventory, store, ["app_db"], seed=3)
    second = run_scan(demo_inventory, store, ["app_db"], seed=3)
    key = [(f.table_name, f.column_name, f.detected_category, f.confidence, f.masked_samples)
           for f in first.findings]
    assert key == [(f.table_name, f.column_name, f.detected_category, f.confidence,
                    f.masked_samples) for f in second.findings]


def test_unreachable_source_is_reported_not_fatal(fresh_demo, tmp_path) -> None:
    from governance.inventory import load_inventory

    (fresh_demo.marketing_csv).unlink()
    inv = load_inventory(fresh_demo.inventory)
    result = run_scan(inv, AuditStore(tmp_path / "a.duckdb", create=True))
    assert result.status == "partial"
    assert len(result.errors) == 1 and "marketing_export" in result.errors[0]
    assert any(f.source == "app_db" for f in result.findings)
