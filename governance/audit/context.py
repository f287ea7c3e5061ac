"""What checks see: the inventory, processing facts, latest findings and the audit store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from governance.audit.processing import Processing
from governance.audit_store import AuditStore
from governance.errors import GovernanceError
from governance.inventory import Inventory
from governance.taxonomy import is_sensitive


@dataclass(frozen=True)
class ColumnView:
    """One column as the audit sees it: declared and detected category, latest finding."""

    source: str
    table: str
    column: str
    declared: str | None            # category in the inventory (None: not personal/unknown)
    declared_listed: bool           # named in the inventory (with or without a category)
    detected: str | None
    status: str | None              # latest finding's status
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str | None:
        """The category the column holds: detected, else declared."""
        return self.detected or self.declared

    @property
    def sensitive(self) -> bool:
        """True for GDPR Art. 9 / PIPL Art. 28 categories."""
        return is_sensitive(self.declared) or is_sensitive(self.detected)


@dataclass
class TableTarget:
    """A table a source check validates: the columns it reads, and what it knows of them.

    ``params`` holds per-column facts the check needs (e.g. a retention cutoff).
    """

    source: str
    table: str
    columns: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``source.table``."""
        return f"{self.source}.{self.table}"


@dataclass
class AuditContext:
    """Everything a check may read. Checks never write to sources."""

    inventory: Inventory
    store: AuditStore
    processing: Processing | None
    today: date
    max_rows: int = 1_000_000
    cache: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def findings(self) -> list[dict[str, Any]]:
        """Every source's latest column findings ([] when nothing was scanned yet)."""
        from governance.reports import latest_findings

        try:
            return latest_findings(self.store).findings
        except GovernanceError:
            return []

    @cached_property
    def scan_runs(self) -> dict[str, dict[str, Any]]:
        """Each source's latest usable scan run (succeeded or partial), by source."""
        rows = self.store.query(
            "SELECT t.source, r.run_id, r.started_at, r.finished_at, r.status, r.mode "
            "FROM (SELECT DISTINCT run_id, source FROM source_tables) t "
            "JOIN scan_runs r USING (run_id) WHERE r.status IN ('succeeded', 'partial') "
            "QUALIFY row_number() OVER (PARTITION BY t.source "
            "ORDER BY r.started_at DESC, r.run_id DESC) = 1")
        return {r.pop("source"): r for r in rows}

    @cached_property
    def columns(self) -> list[ColumnView]:
        """Every column known from the inventory or the latest findings."""
        out: dict[tuple[str, str, str], ColumnView] = {}
        for f in self.findings:
            decl = self._declared(f["source"], f["table_name"], f["column_name"])
            ev = f.get("evidence")
            if isinstance(ev, str):
                import json

                ev = json.loads(ev)
            out[(f["source"], f["table_name"], f["column_name"])] = ColumnView(
                f["source"], f["table_name"], f["column_name"], decl[0], decl[1],
                f["detected_category"], f["status"], ev or {})
        for s in self.inventory.sources:
            for t in s.tables:
                for c, d in t.columns.items():
                    out.setdefault((s.name, t.name, c), ColumnView(
                        s.name, t.name, c, d.category, True, None, None))
        return [out[k] for k in sorted(out)]

    def _declared(self, source: str, table: str, column: str) -> tuple[str | None, bool]:
        try:
            t = self.inventory.source(source).table(table)
        except GovernanceError:
            return None, False
        if t is None or column not in t.columns:
            return None, False
        return t.columns[column].category, True

    def non_personal_columns(self, source: str, table: str) -> list[str]:
        """Columns declared non-personal: named in the inventory without a category, or
        listed under ``non_personal`` in processing.yaml."""
        out: list[str] = []
        t = self.inventory.source(source).table(table)
        if t is not None:
            out += [c for c, d in t.columns.items() if d.category is None]
        tp = self.processing.table(source, table) if self.processing else None
        if tp is not None:
            out += [c for c in tp.non_personal if c not in out]
        return out

    def owner(self, source: str, table: str | None = None) -> str:
        """Whom to ask about ``source`` (or one of its tables)."""
        if table and self.processing:
            tp = self.processing.table(source, table)
            if tp is not None and tp.owner:
                return tp.owner
        try:
            return self.inventory.source(source).owner
        except GovernanceError:
            return "the inventory's maintainer"
