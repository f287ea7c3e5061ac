"""The Dagster side of the audit: the job stores a run; the asset checks are defined."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from governance.audit_store import AuditStore
from governance.demo import build_demo
from governance.inventory import load_inventory
from governance.scan import run_scan
from pipelines.audit import (
    WEEKLY_AUDIT_CRON,
    audit_definitions,
    build_audit_asset_checks,
    compliance_audit_job,
)
from pipelines.resources import GovernanceResource


def test_job_stores_a_run_and_fails_on_failing_checks(tmp_path: Path) -> None:
    demo = build_demo(tmp_path / "demo")
    store = AuditStore(demo.root / "audit.duckdb", create=True)
    run_scan(load_inventory(demo.inventory), store)
    result = compliance_audit_job.execute_in_process(
        resources={"governance": GovernanceResource(inventory_path=str(demo.inventory),
                                                    audit_store_path=str(store.path))},
        raise_on_error=False)
    assert not result.success        # the demo's undeclared table fails a check
    runs = store.query("SELECT run_id, status, actor FROM audit_runs")
    assert len(runs) == 1 and runs[0]["status"] == "failed" and runs[0]["actor"] == "dagster"
    assert list((demo.root / "audit-reports").glob("audit-*.html"))


def test_definitions_have_weekly_schedule_and_one_asset_check_per_check() -> None:
    defs = audit_definitions()
    [schedule] = defs.schedules or []
    assert schedule.cron_schedule == WEEKLY_AUDIT_CRON
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    names = {spec.name for a in build_audit_asset_checks() for spec in a.check_specs}
    assert {"audit_encryption_required", "audit_audit_log_integrity",
            "audit_retention_period"} <= names
    assert {spec.asset_key for a in build_audit_asset_checks() for spec in a.check_specs} == {
        dg.AssetKey("pii_classification")}
