"""Compliance audits: checks registry, the audit run, records, request analytics, reports.

``run_audit`` gathers the inventory, every source's latest findings, encryption and
retention status (through providers), request deadlines and the audit log's integrity into
one run stored in the audit store (``audit_runs``, ``audit_checks``); ``render_report``
writes it as self-contained HTML, Markdown or JSON (``audit_reports``). Checks are one file
each under ``audits/checks/``.
"""

from governance.audit.context import AuditContext, ColumnView, TableTarget
from governance.audit.model import Check, CheckResult, Severity, Status

__all__ = ["AuditContext", "Check", "CheckResult", "ColumnView", "Severity", "Status",
           "TableTarget"]
