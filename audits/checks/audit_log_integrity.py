"""The audit log's hash chain is intact, and the tracked rows match it."""

from __future__ import annotations

from collections.abc import Iterable

from governance.audit import AuditContext, Check, CheckResult, Severity, Status


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult]:
    result = ctx.store.verify_log()
    evidence = {"rows_checked": result.rows_checked, "problems": len(result.problems),
                "first_problems": result.problems[:10], "anchor": result.anchor}
    return [CHECK.result(Status.PASS if result.ok else Status.FAIL, evidence=evidence)]


CHECK = Check(
    check_id="audit_log_integrity",
    title="The audit log is intact (hash chain, head, anchor, tracked rows)",
    severity=Severity.CRITICAL,
    articles=("GDPR Art. 5(2)", "GDPR Art. 30(1)", "GDPR Art. 32(1)(b)",
              "CCPA 1798.185(a)(15)", "PIPL Art. 54"),
    remediation="Treat as a security incident: find who changed the store (govkit audit "
                "verify-log lists the rows), restore it from a backup, and keep an anchor "
                "off the host (govkit audit anchor --out).",
    evaluate=_evaluate,
)
