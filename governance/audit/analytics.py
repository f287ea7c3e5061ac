"""Data-subject request statistics a DPO reports to management.

Received, completed on time, completed late, rejected, open, overdue, and the median days
to close, by type, by jurisdiction and per month of receipt. Computed in DuckDB from
``dsar_requests`` (dates and states only: nothing identifying).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from governance.audit_store import AuditStore

_OPEN = "('received', 'verified', 'in_progress', 'extended')"


def _stats(store: AuditStore, group: str | None, today: date) -> list[dict[str, Any]]:
    key = f"{group} AS key" if group else "'all' AS key"
    return store.query(
        f"SELECT {key}, count(*) AS received, "  # noqa: S608 - group is one of ours
        "count(*) FILTER (WHERE state = 'completed' AND CAST(closed_at AS DATE) <= due_date) "
        "  AS completed_on_time, "
        "count(*) FILTER (WHERE state = 'completed' AND CAST(closed_at AS DATE) > due_date) "
        "  AS completed_late, "
        "count(*) FILTER (WHERE state = 'rejected') AS rejected, "
        f"count(*) FILTER (WHERE state IN {_OPEN}) AS open, "
        f"count(*) FILTER (WHERE state IN {_OPEN} AND due_date < ?) AS overdue, "
        "median(date_diff('day', CAST(received_at AS DATE), CAST(closed_at AS DATE))) "
        "  FILTER (WHERE closed_at IS NOT NULL) AS median_days_to_close "
        "FROM dsar_requests GROUP BY ALL ORDER BY key", [today])


def request_analytics(store: AuditStore, today: date) -> dict[str, Any]:
    """Request statistics overall, by type, by jurisdiction (and law), and by month."""
    out: dict[str, Any] = {"as_of": today.isoformat()}
    for name, group in (("total", None), ("by_type", "request_type"),
                        ("by_jurisdiction", "jurisdiction || ' (' || law || ')'"),
                        ("by_month", "strftime(received_at, '%Y-%m')")):
        rows = _stats(store, group, today)
        for r in rows:
            closed = r["completed_on_time"] + r["completed_late"]
            r["on_time_rate"] = round(r["completed_on_time"] / closed, 3) if closed else None
            if r["median_days_to_close"] is not None:
                r["median_days_to_close"] = float(r["median_days_to_close"])
        out[name] = rows[0] if name == "total" and rows else rows
    if not out.get("total"):
        out["total"] = {"key": "all", "received": 0, "completed_on_time": 0,
                        "completed_late": 0, "rejected": 0, "open": 0, "overdue": 0,
                        "median_days_to_close": None, "on_time_rate": None}
    return out


def open_requests(store: AuditStore, today: date) -> list[dict[str, Any]]:
    """Open requests, soonest due first, with days left (negative: overdue). Request ids,
    types, laws and dates only: no identity, not even masked."""
    sql = ("SELECT request_id, request_type, jurisdiction, law, state, "
           "CAST(received_at AS DATE) AS received, due_date, extended FROM dsar_requests "
           "WHERE state IN ('received', 'verified', 'in_progress', 'extended') "
           "ORDER BY due_date, received_at")
    rows = store.query(sql)
    for r in rows:
        r["days_left"] = (r["due_date"] - today).days
    return rows
