"""Columns whose category the encryption policy requires encrypted hold envelopes only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governance.audit import (
    AuditContext,
    Check,
    CheckResult,
    Severity,
    Status,
    TableTarget,
    providers,
)

ARTICLES = ("GDPR Art. 32(1)(a)", "GDPR Art. 34(3)(a)", "CCPA 1798.150(a)(1)",
            "CCPA 1798.81.5(b)", "PIPL Art. 51(3)")


def _from_provider(ctx: AuditContext) -> Iterable[CheckResult] | None:
    fn = providers.provider(providers.ENCRYPTION_PROVIDER)
    if fn is None:
        return None
    out = []
    for item in fn(ctx.inventory, ctx.store, record=False):
        row = item if isinstance(item, dict) else vars(item)
        if not row.get("required", True):
            continue
        status = row.get("status")
        evidence = {k: row[k] for k in ("status", "cells", "plaintext_cells", "invalid_cells",
                                        "missing_key_cells", "shredded_cells")
                    if row.get(k) is not None}
        evidence["provider"] = ".".join(providers.ENCRYPTION_PROVIDER)
        out.append(CHECK.result(
            Status.PASS if status == "encrypted" else
            Status.ERROR if status == "unreadable" else Status.FAIL,
            source=row["source"], table=row["table"], column=row["column"],
            evidence=evidence, engine="provider"))
    return out


def _targets(ctx: AuditContext) -> Iterable[TableTarget]:
    required, where = providers.encryption_categories(ctx.processing)
    by_table: dict[tuple[str, str], TableTarget] = {}
    for c in ctx.columns:
        if c.category in required or c.declared in required:
            t = by_table.setdefault((c.source, c.table), TableTarget(
                c.source, c.table, [], {"policy": where, "categories": {}}))
            t.columns.append(c.column)
            t.params["categories"][c.column] = c.declared if c.declared in required \
                else c.category
    return by_table.values()


def _expectations(target: TableTarget) -> list[Any]:
    import great_expectations as gx

    pattern = providers.envelope_pattern()
    return [gx.expectations.ExpectColumnValuesToMatchRegex(column=c, regex=pattern)
            for c in target.columns]


def _interpret(target: TableTarget, column: str | None, result: dict[str, Any],
               success: bool) -> CheckResult:
    from governance.masking import mask_value

    evidence: dict[str, Any] = {
        "category": target.params["categories"].get(column), "policy": target.params["policy"],
        "cells": (result.get("element_count") or 0) - (result.get("missing_count") or 0),
        "not_envelopes": result.get("unexpected_count", 0)}
    samples = [mask_value(v) for v in (result.get("partial_unexpected_list") or [])[:3]]
    if samples:
        evidence["masked_samples"] = samples
    return CHECK.result(Status.PASS if success else Status.FAIL, source=target.source,
                        table=target.table, column=column, evidence=evidence)


CHECK = Check(
    check_id="encryption_required",
    title="Columns the encryption policy covers hold ciphertext envelopes only",
    severity=Severity.HIGH,
    articles=ARTICLES,
    remediation="Encrypt the column (govkit encrypt, issue 15) so that every cell is an "
                "envelope; until then treat any copy of the table as a breach risk.",
    kind="source",
    description="Every non-null cell of a column whose category the policy requires "
                "encrypted (default: national IDs, financial, health, biometric, precise "
                "location, PIPL Art. 28 categories) must be an envelope.",
    evaluate=_from_provider,
    targets=_targets,
    expectations=_expectations,
    interpret=_interpret,
)
