"""Dagster: the weekly compliance audit (job + schedule) and the audit checks as asset
checks on the per-source ``pii_classification`` asset.

The job runs ``govkit audit run`` (stored in the audit store) and writes the HTML report
beside the store; the asset checks run one registered check each, for the source assets,
without storing a run (the job does that). Sources are only read.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from governance.audit.model import FAILING, Severity, Status
from governance.audit.registry import load_checks
from governance.errors import GovernanceError
from pipelines.resources import GovernanceResource

AUDIT_JOB = "compliance_audit"
WEEKLY_AUDIT_CRON = "0 3 * * 1"
SOURCE_ASSET = dg.AssetKey("pii_classification")


@dg.op(description="Run every compliance check, store the run, write the HTML report.")
def run_compliance_audit(context: dg.OpExecutionContext,
                         governance: GovernanceResource) -> dict[str, Any]:
    """The audit run; fails the step when a check fails or cannot run."""
    from governance.audit.report import write_audit_report
    from governance.audit.runner import run_audit

    store = governance.store()
    try:
        run = run_audit(governance.inventory(), store, actor="dagster",
                        orchestrator_run_id=context.run.run_id, progress=context.log.info)
        report, records = write_audit_report(store, run.run_id, "html",
                                             store.path.parent / "audit-reports")
    except GovernanceError as e:
        raise dg.Failure(description=str(e)) from None
    context.add_output_metadata({
        "audit_run_id": run.run_id, "status": run.status,
        "counts": dg.MetadataValue.json(run.counts),
        "report": dg.MetadataValue.path(str(report))})
    if run.failing:
        raise dg.Failure(description=f"audit {run.run_id}: {len(run.failing)} failing "
                                     f"check(s): {', '.join(run.counts['checks_failing'])}",
                         metadata={"report": dg.MetadataValue.path(str(report))})
    return {"run_id": run.run_id, "status": run.status}


@dg.job(name=AUDIT_JOB, description="Weekly compliance audit: every check, stored in the "
                                    "audit store, HTML report beside it.")
def compliance_audit_job() -> None:
    run_compliance_audit()


weekly_compliance_audit = dg.ScheduleDefinition(
    name="weekly_compliance_audit", job=compliance_audit_job, cron_schedule=WEEKLY_AUDIT_CRON,
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 03:00 UTC: the compliance audit (reads sources, writes the audit "
                "store and a report; changes no data). Starts stopped: turn it on in the UI.")


def _asset_check(check_id: str, title: str, severity: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=SOURCE_ASSET, name=f"audit_{check_id}", description=title,
                    blocking=False)
    def _check(governance: GovernanceResource) -> dg.AssetCheckResult:
        from governance.audit.context import AuditContext
        from governance.audit.processing import load_processing
        from governance.audit.runner import run_checks
        from governance.audit_store.store import utcnow

        inv = governance.inventory()
        ctx = AuditContext(inv, governance.store(), load_processing(inv), utcnow().date())
        results = run_checks(ctx, load_checks([check_id]))
        failing = [r for r in results if r.status in FAILING]
        return dg.AssetCheckResult(
            passed=not failing,
            severity=dg.AssetCheckSeverity.ERROR
            if severity in (Severity.CRITICAL, Severity.HIGH) else dg.AssetCheckSeverity.WARN,
            metadata={"failing": dg.MetadataValue.json(
                          [{"where": r.place, "status": str(r.status)} for r in failing]),
                      "passed": sum(1 for r in results if r.status is Status.PASS),
                      "articles": ", ".join(sorted({a for r in results for a in r.articles}))})

    return _check


def build_audit_asset_checks(check_ids: Sequence[str] | None = None
                             ) -> list[dg.AssetChecksDefinition]:
    """One Dagster asset check per registered audit check, on ``pii_classification``."""
    return [_asset_check(c.check_id, c.title, str(c.severity))
            for c in load_checks(list(check_ids) if check_ids else None)]


def audit_definitions() -> dg.Definitions:
    """The audit job, its weekly schedule and the asset checks (merge with the others)."""
    return dg.Definitions(jobs=[compliance_audit_job], schedules=[weekly_compliance_audit],
                          asset_checks=build_audit_asset_checks())
