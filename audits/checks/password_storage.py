"""Password columns hold adaptive, salted hashes only: no plain text, no fast hashes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governance.audit import AuditContext, Check, CheckResult, Severity, Status, TableTarget

# bcrypt, argon2, scrypt, PBKDF2 (any iteration count; the scan grades the count).
ADAPTIVE = (r"^(?:\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}|\$argon2(?:id|i|d)\$.+|"
            r"\$scrypt\$.+|\$7\$.+|scrypt:\d+:\d+:\d+\$.+|"
            r"(?:pbkdf2_sha(?:1|256|512)\$|\$pbkdf2(?:-sha256|-sha512)?\$|"
            r"pbkdf2:sha(?:1|256|512):)\d+\$.+)$")


def _targets(ctx: AuditContext) -> Iterable[TableTarget]:
    by_table: dict[tuple[str, str], TableTarget] = {}
    for c in ctx.columns:
        if "credential.password" in (c.declared, c.detected):
            t = by_table.setdefault((c.source, c.table), TableTarget(
                c.source, c.table, [], {"show_samples": False, "grades": {}}))
            t.columns.append(c.column)
            t.params["grades"][c.column] = (c.evidence or {}).get("finding") or {}
    return by_table.values()


def _expectations(target: TableTarget) -> list[Any]:
    import great_expectations as gx

    return [gx.expectations.ExpectColumnValuesToMatchRegex(column=c, regex=ADAPTIVE)
            for c in target.columns]


def _interpret(target: TableTarget, column: str | None, result: dict[str, Any],
               success: bool) -> CheckResult:
    from collections import Counter

    from governance.detection.values import hash_scheme

    # How the few unexpected values GX returns are stored: scheme names, never values.
    schemes = Counter((hash_scheme(str(v)) or ("plaintext", None))[0]
                      for v in (result.get("partial_unexpected_list") or []))
    grade = target.params["grades"].get(column) or {}
    evidence: dict[str, Any] = {
        "cells": (result.get("element_count") or 0) - (result.get("missing_count") or 0),
        "not_adaptive_hash": result.get("unexpected_count", 0),
        "schemes_of_unexpected_sample": dict(schemes)}
    if grade:
        evidence["scan_grade"] = {k: grade.get(k) for k in ("scheme", "grade", "reason")}
    severity = Severity.CRITICAL if "plaintext" in schemes else Severity.HIGH
    return CHECK.result(Status.PASS if success else Status.FAIL, source=target.source,
                        table=target.table, column=column, evidence=evidence,
                        severity=severity)


CHECK = Check(
    check_id="password_storage",
    title="Passwords are stored with an adaptive, salted hash (bcrypt, scrypt, argon2, PBKDF2)",
    severity=Severity.HIGH,
    articles=("GDPR Art. 32(1)(a)", "CCPA 1798.81.5(b)", "CCPA 1798.150(a)(1)",
              "PIPL Art. 51(3)", "PIPL Art. 28"),
    remediation="Rehash on next login with argon2id or bcrypt (OWASP Password Storage Cheat "
                "Sheet) and force a reset for accounts whose password was stored in plain "
                "text or with a fast hash.",
    kind="source",
    description="Every non-null cell of a column declared or detected as credential.password "
                "must be in an adaptive hash format.",
    targets=_targets,
    expectations=_expectations,
    interpret=_interpret,
)
