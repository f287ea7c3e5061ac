"""Every source was scanned within its schedule (default: every 7 days)."""

from __future__ import annotations

from collections.abc import Iterable

from governance.audit import AuditContext, Check, CheckResult, Severity, Status


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult]:
    out = []
    for s in ctx.inventory.sources:
        sp = ctx.processing.sources.get(s.name) if ctx.processing else None
        every = sp.scan_every_days if sp else 7
        run = ctx.scan_runs.get(s.name)
        if run is None:
            out.append(CHECK.result(Status.FAIL, source=s.name, evidence={
                "last_scan": None, "schedule_days": every}))
            continue
        age = (ctx.today - run["started_at"].date()).days
        out.append(CHECK.result(
            Status.PASS if age <= every else Status.FAIL, source=s.name,
            evidence={"last_scan": run["run_id"], "scanned_on": run["started_at"].date()
                      .isoformat(), "age_days": age, "schedule_days": every,
                      "scan_status": run["status"]}))
    return out


CHECK = Check(
    check_id="scan_freshness",
    title="Every source was scanned within its schedule",
    severity=Severity.MEDIUM,
    articles=("GDPR Art. 32(1)(d)", "GDPR Art. 30(1)", "PIPL Art. 54"),
    remediation="Scan the source (govkit scan --source NAME) and turn on the "
                "daily_discovery_scan schedule.",
    evaluate=_evaluate,
)
