"""The audit run: every registered check, one row per outcome, stored in the audit store."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from governance.audit.analytics import open_requests, request_analytics
from governance.audit.context import AuditContext, TableTarget
from governance.audit.model import FAILING, Check, CheckResult, Severity, Status
from governance.audit.processing import Processing, load_processing
from governance.audit.records import cached_records
from governance.audit.registry import load_checks
from governance.audit_store import AuditStore
from governance.audit_store.rows import AUDIT_RUN_ACTION, audit_checks_digest
from governance.audit_store.store import append_log_row, utcnow
from governance.errors import GovernanceError
from governance.ids import new_id
from governance.inventory import Inventory
from governance.reports import jsonable

RUN_ACTION = AUDIT_RUN_ACTION


class UnknownAuditRunError(GovernanceError):
    """An audit run id that is not in the audit store."""


@dataclass
class AuditRun:
    """The outcome of one audit run."""

    run_id: str
    status: str                      # passed | warnings | failed
    results: list[CheckResult]
    counts: dict[str, Any]
    metrics: dict[str, Any]
    snapshot: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> list[CheckResult]:
        """Outcomes that failed or could not run."""
        return [r for r in self.results if r.status in FAILING]


def _first_line(e: BaseException) -> str:
    text = str(e)
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _error(check: Check, e: BaseException) -> CheckResult:
    return check.result(Status.ERROR, evidence={"error": f"{type(e).__name__}: "
                                                         f"{_first_line(e)}"},
                        remediation="The check could not run: fix the cause and rerun; "
                                    "nothing it covers is proven.")


def run_checks(ctx: AuditContext, checks: Sequence[Check],
               progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Run ``checks``: store checks directly, source checks through Great Expectations."""
    from governance.audit.gx_engine import run_source_checks

    results: list[CheckResult] = []
    work: list[tuple[Check, TableTarget]] = []
    for check in checks:
        if progress:
            progress(f"check {check.check_id}")
        try:
            found = check.evaluate(ctx) if check.evaluate else None
            direct = None if found is None else list(found)
        except Exception as e:  # a broken check is reported, never a pass
            results.append(_error(check, e))
            continue
        if direct is not None:
            results += direct
            continue
        try:
            targets = list(check.targets(ctx)) if check.targets else []
        except Exception as e:
            results.append(_error(check, e))
            continue
        if not targets:
            results.append(check.result(Status.NOT_APPLICABLE, severity=Severity.INFO,
                                        evidence={"note": "no column in scope"}))
        work += [(check, t) for t in targets]
    if work:
        if progress:
            progress(f"Great Expectations: {len(work)} suite(s) over "
                     f"{len({(t.source, t.table) for _, t in work})} table(s)")
        try:
            results += run_source_checks(ctx, work)
        except Exception as e:
            for check in {c.check_id: c for c, _ in work}.values():
                results.append(_error(check, e))
    results.sort(key=CheckResult.sort_key)
    return results


def summarize(results: Sequence[CheckResult]) -> tuple[str, dict[str, Any]]:
    """The run's status and its counts by status and (failing) severity."""
    by_status = Counter(str(r.status) for r in results)
    failing_sev = Counter(str(r.severity) for r in results if r.status in FAILING)
    status = ("failed" if any(r.status in FAILING for r in results) else
              "warnings" if by_status.get("warn") else "passed")
    checks_failing = sorted({r.check_id for r in results if r.status in FAILING})
    return status, {"by_status": dict(by_status), "failing_by_severity": dict(failing_sev),
                    "checks": len({r.check_id for r in results}),
                    "checks_failing": checks_failing, "rows": len(results)}


def _metrics(ctx: AuditContext, results: Sequence[CheckResult],
             analytics: dict[str, Any]) -> dict[str, Any]:
    personal = [c for c in ctx.columns if c.category]
    total = analytics["total"]
    return {
        "personal_columns": len(personal),
        "sensitive_columns": sum(1 for c in personal if c.sensitive),
        "undeclared_columns": sum(1 for f in ctx.findings
                                  if f["status"] in ("undeclared_pii", "undeclared_table_pii")),
        "failing_checks": len({r.check_id for r in results if r.status in FAILING}),
        "failing_rows": sum(1 for r in results if r.status in FAILING),
        "warnings": sum(1 for r in results if r.status is Status.WARN),
        "requests_open": total["open"], "requests_overdue": total["overdue"],
        "requests_on_time_rate": total["on_time_rate"],
    }


def run_audit(inventory: Inventory, store: AuditStore, processing: Processing | None = None,
              today: date | None = None, actor: str = "govkit",
              orchestrator_run_id: str | None = None, only: Sequence[str] | None = None,
              max_rows: int = 1_000_000, load_processing_file: bool = True,
              progress: Callable[[str], None] | None = None) -> AuditRun:
    """Run every registered check (``only``: those ids) and store the run."""
    started = utcnow()
    if processing is None and load_processing_file:
        processing = load_processing(inventory)
    checks = load_checks(list(only) if only else None)
    ctx = AuditContext(inventory, store, processing, today or started.date(), max_rows)
    run_id = new_id("audit", f"{started:%Y%m%dT%H%M%SZ}")
    results = run_checks(ctx, checks, progress)
    status, counts = summarize(results)
    analytics = request_analytics(store, ctx.today)
    snapshot = jsonable({
        "organization": inventory.organization,
        "records": cached_records(ctx),
        "requests": {"open": open_requests(store, ctx.today), "analytics": analytics},
        "scans": {s: {"run_id": r["run_id"], "started_at": r["started_at"],
                      "status": r["status"], "mode": r["mode"]}
                  for s, r in ctx.scan_runs.items()},
        "checks": [{"check_id": c.check_id, "title": c.title, "kind": c.kind,
                    "articles": list(c.articles), "description": c.description}
                   for c in checks],
    })
    metrics = _metrics(ctx, results, analytics)
    # A run of some checks only is compared with runs of the same checks (trends).
    metrics["selected"] = sorted(only) if only else None
    run = AuditRun(run_id, status, results, counts, metrics, snapshot)
    _record(store, run, started, ctx, inventory, processing, actor, orchestrator_run_id)
    return run


def _check_rows(run: AuditRun) -> list[list[Any]]:
    return [[run.run_id, i, r.check_id, r.title, str(r.status), str(r.severity), r.articles,
             r.source, r.table, r.column, json.dumps(jsonable(r.evidence), sort_keys=True,
                                                     ensure_ascii=False),
             r.remediation, r.engine] for i, r in enumerate(run.results, 1)]


def _record(store: AuditStore, run: AuditRun, started: Any, ctx: AuditContext,
            inventory: Inventory, processing: Processing | None, actor: str,
            orchestrator_run_id: str | None) -> None:
    rows = _check_rows(run)
    digest = hashlib.sha256(json.dumps(rows, default=str, sort_keys=True).encode()).hexdigest()

    def write(conn: Any) -> None:
        conn.execute(
            "INSERT INTO audit_runs (run_id, started_at, finished_at, status, actor, "
            "orchestrator_run_id, inventory_path, inventory_digest, processing_digest, as_of, "
            "counts, metrics, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run.run_id, started, utcnow(), run.status, actor, orchestrator_run_id,
             str(inventory.path) if inventory.path else None, inventory.digest,
             processing.digest if processing else None, ctx.today,
             json.dumps(run.counts), json.dumps(jsonable(run.metrics)),
             json.dumps(run.snapshot, ensure_ascii=False)])
        if rows:
            conn.executemany("INSERT INTO audit_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                             "?, ?, ?)", rows)
        append_log_row(conn, actor, RUN_ACTION, run.run_id, {
            "status": run.status, "counts": run.counts, "checks_sha256": digest,
            "as_of": ctx.today.isoformat()})

    store.write(write)


def resolve_run_id(store: AuditStore, run: str) -> str:
    """``latest`` or an audit run id -> the run id; UnknownAuditRunError otherwise."""
    if run == "latest":
        rows = store.query("SELECT run_id FROM audit_runs ORDER BY started_at DESC, run_id "
                           "DESC LIMIT 1")
        if not rows:
            raise UnknownAuditRunError(f"no audit run in {store.path}; run `govkit audit run` "
                                       "first")
        return str(rows[0]["run_id"])
    if not store.query("SELECT 1 FROM audit_runs WHERE run_id = ?", [run]):
        raise UnknownAuditRunError(f"no audit run {run!r} in audit store {store.path}")
    return run


def checks_digest(store: AuditStore, run_id: str) -> str:
    """The sha256 the run's log row holds over its check rows, recomputed from the table."""
    with store.connect() as conn:
        return audit_checks_digest(conn, run_id)
