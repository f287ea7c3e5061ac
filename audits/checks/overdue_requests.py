"""No data-subject request is past its legal deadline (a Great Expectations suite over the
store's open requests)."""

from __future__ import annotations

from collections.abc import Iterable

from governance.audit import AuditContext, Check, CheckResult, Severity, Status
from governance.audit.analytics import open_requests

ARTICLES_BY_LAW = {"GDPR": ["GDPR Art. 12(3)"], "CCPA": ["CCPA 1798.130(a)(2)"],
                   "PIPL": ["PIPL Art. 50"]}
SOON_DAYS = 3


def _evaluate(ctx: AuditContext) -> Iterable[CheckResult]:
    import great_expectations as gx
    import pandas as pd

    from governance.audit.gx_engine import validate_frame

    rows = open_requests(ctx.store, ctx.today)
    frame = pd.DataFrame({"request_id": [r["request_id"] for r in rows],
                          "days_left": [r["days_left"] for r in rows]})
    [res] = validate_frame("store.open_requests", frame, [
        gx.expectations.ExpectColumnValuesToBeBetween(column="days_left", min_value=0)])
    out = []
    overdue = {r["request_id"] for r in rows if r["days_left"] < 0}
    if res["success"] != (not overdue):
        raise RuntimeError("the GX suite and the request deadlines disagree")
    for r in rows:
        if r["days_left"] >= SOON_DAYS:
            continue
        late = r["days_left"] < 0
        out.append(CHECK.result(
            Status.FAIL if late else Status.WARN,
            severity=Severity.HIGH if late else Severity.MEDIUM,
            articles=ARTICLES_BY_LAW.get(r["law"], list(CHECK.articles)),
            evidence={"request": r["request_id"], "type": r["request_type"], "law": r["law"],
                      "jurisdiction": r["jurisdiction"], "state": r["state"],
                      "due": r["due_date"].isoformat(), "days_left": r["days_left"],
                      "extended": r["extended"]},
            remediation=None if late else "Due within three days: finish or extend it now "
                                          "(an extension must be told to the subject in time)."))
    if not out:
        out.append(CHECK.result(Status.PASS, evidence={
            "open_requests": len(rows), "expectation": "expect_column_values_to_be_between"},
            engine="great_expectations"))
    for r in out:
        r.engine = "great_expectations"
    return out


CHECK = Check(
    check_id="overdue_requests",
    title="No data-subject request is past its deadline",
    severity=Severity.HIGH,
    articles=("GDPR Art. 12(3)", "CCPA 1798.130(a)(2)", "PIPL Art. 50"),
    remediation="Answer the request now (govkit dsar run) and tell the subject why it is "
                "late; record the cause.",
    evaluate=_evaluate,
)
