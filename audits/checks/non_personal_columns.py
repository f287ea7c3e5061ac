"""Columns declared non-personal hold no raw personal data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governance.audit import AuditContext, Check, Severity, TableTarget

# E-mail, Chinese resident ID, E.164 phone, payment card (13-19 digits in groups), US SSN,
# IPv4: shapes that are personal data wherever they appear.
PERSONAL = (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
            r"|(?:^|[^0-9])[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])[0-9]{2}[0-9]{3}"
            r"[0-9Xx](?:[^0-9]|$)"
            r"|\+[1-9][0-9]{0,2}[ -]?[0-9]{2,4}(?:[ -]?[0-9]{2,4}){2,4}"
            r"|(?:^|[^0-9])[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{1,7}(?:[^0-9]|$)"
            r"|(?:^|[^0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?:[^0-9]|$)"
            r"|(?:^|[^0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:[^0-9.]|$)")


def _targets(ctx: AuditContext) -> Iterable[TableTarget]:
    for s in ctx.inventory.sources:
        for t in s.tables:
            cols = ctx.non_personal_columns(s.name, t.name)
            if cols:
                yield TableTarget(s.name, t.name, cols)


def _expectations(target: TableTarget) -> list[Any]:
    import great_expectations as gx

    return [gx.expectations.ExpectColumnValuesToNotMatchRegex(column=c, regex=PERSONAL)
            for c in target.columns]


CHECK = Check(
    check_id="non_personal_columns",
    title="Columns declared non-personal hold no raw personal data",
    severity=Severity.MEDIUM,
    articles=("GDPR Art. 30(1)(c)", "GDPR Art. 5(1)(c)", "CCPA 1798.100(a)(1)",
              "PIPL Art. 51(1)"),
    remediation="Declare the column's category in the inventory (and encrypt or minimise "
                "it), or stop writing personal data into it.",
    kind="source",
    description="Columns named in the inventory without a category, or listed under "
                "non_personal in processing.yaml, must not contain e-mail addresses, ID, "
                "card or phone numbers, SSNs or IP addresses.",
    targets=_targets,
    expectations=_expectations,
)
