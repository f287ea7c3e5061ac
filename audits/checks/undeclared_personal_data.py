"""Every column the latest scans found holding personal data is declared in the inventory."""

from __future__ import annotations

from collections.abc import Iterable

from governance.audit import AuditContext, Check, CheckResult, Severity, Status


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult]:
    if not ctx.findings:
        return [CHECK.result(Status.NOT_APPLICABLE, severity=Severity.INFO,
                             evidence={"note": "no scan recorded yet (see scan_freshness)"})]
    out = []
    for f in ctx.findings:
        place = {"source": f["source"], "table": f["table_name"], "column": f["column_name"]}
        samples = list(f.get("masked_samples") or [])[:3]
        if f["status"] in ("undeclared_pii", "undeclared_table_pii"):
            out.append(CHECK.result(
                Status.FAIL, **place,
                severity=Severity.HIGH if f["sensitive"] else Severity.MEDIUM,
                evidence={"detected": f["detected_category"], "finding": f["status"],
                          "scan_run": f["run_id"], "masked_samples": samples}))
        elif f["status"] == "category_mismatch":
            out.append(CHECK.result(
                Status.WARN, **place, severity=Severity.LOW,
                evidence={"declared": f["declared_category"],
                          "detected": f["detected_category"], "scan_run": f["run_id"]},
                remediation="Correct the column's category in the inventory, or confirm "
                            "the declared one and ignore the detector's guess."))
    if not out:
        out.append(CHECK.result(Status.PASS, evidence={
            "columns_scanned": len(ctx.findings),
            "personal_columns": sum(1 for f in ctx.findings if f["detected_category"]
                                    or f["declared_category"])}))
    return out


CHECK = Check(
    check_id="undeclared_personal_data",
    title="All personal data found by the scans is declared in the inventory",
    severity=Severity.HIGH,
    articles=("GDPR Art. 30(1)(c)", "GDPR Art. 13(1)(c)", "CCPA 1798.100(a)(1)",
              "PIPL Art. 51(1)", "PIPL Art. 17"),
    remediation="Declare the table/column with its category in the inventory (with a "
                "purpose and legal basis in processing.yaml), or delete the data if it has "
                "no purpose.",
    evaluate=_evaluate,
)
