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
           "load_policies", "load_policy", "load_retention_profile", "shipped_profiles"]
