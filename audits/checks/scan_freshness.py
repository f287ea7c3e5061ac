"""Every source was scanned within its schedule (default: every 7 days)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governance.audit import AuditContext, Check, CheckResult, Severity, Status


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult]:
    out = []
    for s in ctx.inventory.sources:
        sp = ctx.processing.sources.get(s.name) if ctx.processing else None
        every = sp.scan_every_days if sp else 7
        run = ctx.scan_runs.get(s.name)
        later = None
        if run is not None and run["started_at"].date() > ctx.today:
            # Judged as of an earlier day: a scan made after it did not exist then.
            later, run = run["run_id"], _scanned_by(ctx, s.name)
        if run is None:
            out.append(CHECK.result(Status.FAIL, source=s.name, evidence={
                "last_scan": None, "schedule_days": every, "later_scan": later}))
            continue
        age = (ctx.today - run["started_at"].date()).days
        out.append(CHECK.result(
            Status.PASS if age <= every else Status.FAIL, source=s.name,
            evidence={"last_scan": run["run_id"], "scanned_on": run["started_at"].date()
                      .isoformat(), "age_days": age, "schedule_days": every,
                      "scan_status": run["status"]}))
    return out


def _scanned_by(ctx: AuditContext, source: str) -> dict[str, Any] | None:
    """The source's latest usable scan started on or before the day judged."""
    rows = ctx.store.query(
        "SELECT r.run_id, r.started_at, r.status FROM scan_runs r WHERE r.status IN "
        "('succeeded', 'partial') AND CAST(r.started_at AS DATE) <= ? AND EXISTS (SELECT 1 "
        "FROM source_tables t WHERE t.run_id = r.run_id AND t.source = ?) "
        "ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1", [ctx.today, source])
    return rows[0] if rows else None


CHECK = Check(
    check_id="scan_freshness",
    title="Every source was scanned within its schedule",
    severity=Severity.MEDIUM,
    articles=("GDPR Art. 32(1)(d)", "GDPR Art. 30(1)", "PIPL Art. 54"),
    remediation="Scan the source (govkit scan --source NAME) and turn on the "
                "daily_discovery_scan schedule.",
    evaluate=_evaluate,
)
