"""The hash chain of the audit log: how a row's hash is computed and how the chain is checked."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def row_hash(prev_hash: str, seq: int, logged_at: datetime, actor: str, action: str,
             target: str | None, details: Any) -> str:
    """The sha256 of a log row chained to the previous row's hash."""
    body = canonical_json({
        "seq": seq,
        "logged_at": _utc_iso(logged_at),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
    })
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _utc_iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat()


@dataclass
class LogVerification:
    """The outcome of checking the audit log's chain."""

    rows_checked: int
    problems: list[str] = field(default_factory=list)
    anchor: str | None = None        # the anchor checked, when one was

    @property
    def ok(self) -> bool:
        """True when no row was found edited, deleted or inserted."""
        return not self.problems


def verify_rows(rows: list[tuple], head: tuple[int, str] | None,
                parsed_details: list[Any] | None = None) -> LogVerification:
    """Check ``rows`` (seq, logged_at, actor, action, target, details, prev_hash, row_hash)
    ordered by seq against each other and against the recorded ``head`` (``parsed_details``:
    the rows' details already parsed from JSON)."""
    result = LogVerification(rows_checked=len(rows))
    prev = GENESIS_HASH
    expected_seq = 1
    for i, (seq, logged_at, actor, action, target, details, prev_hash, stored) in \
            enumerate(rows):
        details_value = parsed_details[i] if parsed_details is not None else (
            json.loads(details) if isinstance(details, str) else details)
        if seq != expected_seq:
            result.problems.append(
                f"seq {expected_seq}"
                + (f"..{seq - 1}" if seq - 1 > expected_seq else "")
                + " missing (row deleted)" if seq > expected_seq else f"seq {seq} out of order")
        if prev_hash != prev:
            result.problems.append(f"seq {seq}: prev_hash does not match the row before it")
        computed = row_hash(prev_hash, seq, logged_at, actor, action, target, details_value)
        if computed != stored:
            result.problems.append(f"seq {seq}: row content does not match its hash (edited)")
        prev = stored
        expected_seq = seq + 1
    last_seq = rows[-1][0] if rows else 0
    if head is None:
        if rows:
            result.problems.append("audit_log_head is missing")
    else:
        head_seq, head_hash = head
        if head_seq != last_seq:
            result.problems.append(
                f"head records seq {head_seq} but the log ends at seq {last_seq} "
                "(rows deleted from the end)" if head_seq > last_seq else
                f"head records seq {head_seq} but the log ends at seq {last_seq}")
        elif rows and head_hash != rows[-1][7]:
            result.problems.append("head hash does not match the last row")
    return result
