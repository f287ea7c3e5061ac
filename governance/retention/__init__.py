"""Retention: how long personal data may be kept, and what happens then, enforced.

One module per idea:

- ``policy``: the rule model (periods, clocks, actions, exceptions), loading and
  validation against the inventory, the sources' catalogues and the latest scan;
- ``conflicts``: which rules apply to each table and the documented conflict rule;
- ``holds``: legal holds on a source, a table, a time range or persons, with end dates;
- ``predicates``: a table's rules compiled to one SQL predicate per rule;
- ``planning``: what is due, counted by the sources (``retention plan``);
- ``applying``: batches, journal, resume (``retention apply``);
- ``proof``: audit-log entries and the byte-level check of rewritten files;
- ``audit``: tables past retention and personal data no rule covers.

Nothing here imports Dagster.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import Any

from governance.retention.policy import (
    SHIPPED_PROFILES,
    Period,
    Policy,
    RetentionProfile,
    RetentionRule,
    load_policies,
    load_policy,
    load_retention_profile,
    shipped_profiles,
)

__all__ = ["SHIPPED_PROFILES", "Period", "Policy", "RetentionProfile", "RetentionRule",
           "audit_retention", "load_policies", "load_policy", "load_retention_profile",
           "shipped_profiles"]


def audit_retention(inventory: Any, store: Any, today: date) -> list[dict[str, Any]] | None:
    """For the compliance audit (``audits/checks/retention_period.py``): per rule and table
    the rows past retention (``rows_due``, ``rows_held``, and ``rows_referenced``: past it
    but kept because other rows refer to them), and the personal-data columns no
    rule covers (``uncovered``). None when no retention policy is configured: neither
    ``GOVKIT_RETENTION_POLICY`` (paths, ``os.pathsep``-separated) nor ``retention.yaml``
    beside the inventory."""
    from governance.retention.audit import retention_findings

    paths: list[Any] = [p for p in os.environ.get("GOVKIT_RETENTION_POLICY", "").split(
        os.pathsep) if p]
    if not paths and (inventory.base_dir / "retention.yaml").exists():
        paths = [inventory.base_dir / "retention.yaml"]
    if not paths:
        return None
    now = datetime.combine(today, datetime.max.time(), tzinfo=UTC)
    found = retention_findings(load_policies(paths), inventory, store, now)
    rows: list[dict[str, Any]] = []
    for p in found["past_retention"]:
        source, table = p["table"].split(".", 1)
        rows.append({"source": source, "table": table, "rule": p["rule"],
                     "rows_due": p["rows"], "rows_held": p["held"],
                     "rows_referenced": p["referenced"], "action": p["action"]})
    for u in found["uncovered"]:
        source, table = u["table"].split(".", 1)
        rows.append({"source": source, "table": table, "column": u["column"],
                     "category": u["category"], "uncovered": True})
    return rows
