"""No table holds rows past its retention period."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from governance.audit import AuditContext, Check, CheckResult, Severity, Status, TableTarget
from governance.audit.providers import RETENTION_PROVIDER, provider


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult] | None:
    fn = provider(RETENTION_PROVIDER)
    # The provider answers None when no retention policy is configured: built-in check then.
    rows = fn(ctx.inventory, ctx.store, ctx.today) if fn is not None else None
    if rows is not None:
        out = []
        for row in rows:
            if row.get("uncovered"):
                out.append(CHECK.result(
                    Status.WARN, source=row["source"], table=row["table"],
                    column=row.get("column"), severity=Severity.LOW, engine="provider",
                    evidence={"category": row.get("category"), "note": "no retention rule "
                              "covers this personal-data column"},
                    remediation="Add a retention rule covering this category or table."))
                continue
            due = int(row.get("rows_due", 0))
            referenced = int(row.get("rows_referenced", 0))
            evidence = {k: row[k] for k in ("rule", "rows_due", "rows_held", "rows_referenced",
                                            "basis", "action") if k in row}
            if referenced:
                # Past the period and still there, kept only because other rows point at
                # them: not compliant until someone decides (anonymize, or a keep rule).
                evidence["note"] = (f"{referenced} row(s) past the period are kept because "
                                    "other rows still refer to them")
            out.append(CHECK.result(
                Status.FAIL if due or referenced else Status.PASS, source=row["source"],
                table=row["table"], column=row.get("clock_column"), engine="provider",
                evidence=evidence,
                remediation=None if not referenced else (
                    "Rows past retention are kept because other rows refer to them: "
                    "anonymize them instead, delete or detach the referring rows, or record "
                    "the obligation that keeps them (a keep rule).")))
        return out
    if not _targets(ctx):
        return [CHECK.result(
            Status.NOT_APPLICABLE, engine="provider", severity=Severity.INFO,
            evidence={"note": "retention not configured: no provider "
                              f"{'.'.join(RETENTION_PROVIDER)}() and no retention with a "
                              "clock_column in processing.yaml"},
            remediation="Declare retention periods (issue 16 policies, or processing.yaml "
                        "retention: {days, clock_column} per table).")]
    return None


def _targets(ctx: AuditContext) -> list[TableTarget]:
    out = []
    for sname, sp in (ctx.processing.sources.items() if ctx.processing else []):
        for tname, tp in sp.tables.items():
            if tp.retention is None or tp.retention.clock_column is None:
                continue
            cutoff = datetime.combine(ctx.today - timedelta(days=tp.retention.days), time(0),
                                      tzinfo=UTC)
            out.append(TableTarget(sname, tname, [tp.retention.clock_column], {
                "as_datetime": [tp.retention.clock_column], "cutoff": cutoff,
                "days": tp.retention.days, "basis": tp.retention.basis,
                "show_samples": False}))
    return out


def _expectations(target: TableTarget) -> list[Any]:
    import great_expectations as gx

    col = target.columns[0]
    return [gx.expectations.ExpectColumnValuesToBeBetween(
        column=f"{col}__as_datetime", min_value=target.params["cutoff"])]


def _interpret(target: TableTarget, column: str | None, result: dict[str, Any],
               success: bool) -> CheckResult:
    evidence = {"retain_days": target.params["days"],
                "cutoff": target.params["cutoff"].date().isoformat(),
                "rows_past_retention": result.get("unexpected_count", 0),
                "rows_without_date": result.get("missing_count", 0),
                "basis": target.params["basis"]}
    return CHECK.result(Status.PASS if success else Status.FAIL, source=target.source,
                        table=target.table, column=column, evidence=evidence)


CHECK = Check(
    check_id="retention_period",
    title="No rows are kept past their retention period",
    severity=Severity.HIGH,
    articles=("GDPR Art. 5(1)(e)", "GDPR Art. 17(1)(a)", "CCPA 1798.100(a)(3)",
              "PIPL Art. 19", "PIPL Art. 47(1)"),
    remediation="Delete or anonymise the rows past retention (govkit retention apply, issue "
                "16), unless a legal hold applies; then record the disposal.",
    kind="source",
    description="Rows whose clock column is older than the retention period (from the "
                "retention provider, or processing.yaml) must be gone.",
    evaluate=_evaluate,
    targets=_targets,
    expectations=_expectations,
    interpret=_interpret,
)
