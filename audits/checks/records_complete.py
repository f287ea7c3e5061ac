"""The GDPR Art. 30 record and the PIPL personal-information inventory can be filled."""

from __future__ import annotations

from collections.abc import Iterable

from governance.audit import AuditContext, Check, CheckResult, Severity, Status
from governance.audit.records import cached_records


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult]:
    records = cached_records(ctx)
    out = []
    for u in records["art30"]["unfilled"]:
        source, _, table = u["activity"].partition(".")
        entry = next(e for e in records["art30"]["entries"] if e["activity"] == u["activity"])
        out.append(CHECK.result(Status.WARN, source=entry["source"], table=entry["table"],
                                evidence={"record": "GDPR Art. 30", "unfilled": u["fields"],
                                          "ask": u["ask"]}))
    pipl = records["pipl_inventory"]["unfilled"]
    if pipl:
        out.append(CHECK.result(
            Status.WARN, articles=["PIPL Art. 51", "PIPL Art. 54"],
            evidence={"record": "PIPL personal-information inventory",
                      "columns_with_gaps": len(pipl),
                      "ask": sorted({u["ask"] for u in pipl})}))
    if not out:
        out.append(CHECK.result(Status.PASS, evidence={
            "activities": len(records["art30"]["entries"]),
            "pipl_rows": len(records["pipl_inventory"]["rows"])}))
    return out


CHECK = Check(
    check_id="records_complete",
    title="The records of processing (GDPR Art. 30, PIPL inventory) are complete",
    severity=Severity.MEDIUM,
    articles=("GDPR Art. 30(1)", "CCPA 1798.100(a)", "PIPL Art. 51"),
    remediation="Ask the owner named in the evidence for the missing fields and add them to "
                "processing.yaml beside the inventory.",
    evaluate=_evaluate,
)
