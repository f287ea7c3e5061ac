"""What the compliance audit asks of retention: data kept too long, data no rule covers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from governance.audit_store import AuditStore
from governance.inventory import Inventory
from governance.retention.planning import plan_retention
from governance.retention.policy import Policy, load_estate
from governance.sources.pool import ConnectorPool


def retention_findings(policies: Sequence[Policy], inventory: Inventory, store: AuditStore,
                       now: datetime) -> dict[str, Any]:
    """``past_retention``: per rule and table, rows past their period now (counted by the
    sources; held rows apart): ``rows`` that applying would change and ``referenced`` ones
    it keeps because other rows still refer to them; ``uncovered``: personal-data columns
    (declared, or found by the latest scan) that no applying rule deletes, anonymizes or
    reviews. No values."""
    with ConnectorPool(inventory) as pool:
        plan = plan_retention(policies, inventory, store, now, pool=pool)
        estate = load_estate(inventory, store, pool)
    past = [{"table": f"{s.source}.{s.table}", "rule": s.rule, "action": s.action,
             "rows": s.due, "held": s.held, "referenced": s.referenced,
             "cutoff": s.cutoff.isoformat() if s.cutoff else None}
            for s in plan.steps if s.due or s.referenced]
    uncovered = []
    for (source, table, column), category in sorted(estate.categories.items()):
        d = plan.decisions.get((source, table))
        rules = d.applying if d is not None else []
        if any(r.rule.action in ("delete", "review") or column in r.columns for r in rules):
            continue
        uncovered.append({"table": f"{source}.{table}", "column": column,
                          "category": category})
    return {"as_of": now.isoformat(), "past_retention": past, "uncovered": uncovered,
            "notes": plan.notes}
