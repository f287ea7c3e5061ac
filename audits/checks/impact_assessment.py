"""Sensitive personal information and cross-border provision are covered by an approved
PIPL Art. 55/56 impact assessment, and every transfer out of China names its Art. 38 route."""

from __future__ import annotations

from collections.abc import Iterable

from governance.audit import AuditContext, Check, CheckResult, Severity, Status
from governance.audit.records import cached_records


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult]:
    records = cached_records(ctx)
    out = []
    for item in records["impact_assessment"]["items"]:
        cross = "route" in item
        articles = (["PIPL Art. 38", "PIPL Art. 55(4)", "PIPL Art. 56", "GDPR Art. 46"]
                    if cross else ["PIPL Art. 55(1)", "PIPL Art. 56", "GDPR Art. 35(3)(b)"])
        evidence = {"trigger": item["trigger"], "categories": item["categories"],
                    "assessments": item["assessments"], "ask": item["owner"]}
        if cross:
            evidence.update(route=item["route"], to=item["to"])
        out.append(CHECK.result(Status.FAIL if item["missing"] else Status.PASS,
                                source=item["source"], table=item["table"],
                                articles=articles, evidence=evidence))
    for f in records["data_map"]["flows"]:
        if f["to"] is None or f["from"] == "CN" or not f["route_required"] or f["route"]:
            continue
        out.append(CHECK.result(
            Status.FAIL, source=f["source"], articles=["GDPR Art. 44", "GDPR Art. 46"],
            evidence={"flow": f"{f['from']} -> {f['to']}", "kind": f["kind"],
                      "ask": f["owner"]},
            remediation="Name the transfer's safeguard (adequacy, SCCs, BCRs) under "
                        "transfers: in processing.yaml."))
    if not out:
        out.append(CHECK.result(Status.NOT_APPLICABLE, evidence={
            "note": "no sensitive personal information and no cross-border flow found"}))
    return out


CHECK = Check(
    check_id="impact_assessment",
    title="Impact assessments (PIPL Art. 55/56) and transfer routes (Art. 38) are in place",
    severity=Severity.HIGH,
    articles=("PIPL Art. 55", "PIPL Art. 56", "PIPL Art. 38", "GDPR Art. 35", "GDPR Art. 46"),
    remediation="Complete the impact-assessment draft in the report with the owner, record "
                "it under impact_assessments: in processing.yaml (status: approved), and "
                "declare each transfer's route (standard contract, certification or CAC "
                "security assessment).",
    evaluate=_evaluate,
)
