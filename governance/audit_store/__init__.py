"""The DuckDB audit store: scans, findings and the hash-chained audit log."""

from governance.audit_store.audit_log import LogVerification
from governance.audit_store.store import (
    AuditStore,
    LogEntry,
    default_store_path,
    record_row,
    record_rows,
)

__all__ = ["AuditStore", "LogEntry", "LogVerification", "default_store_path", "record_row",
           "record_rows"]
