"""Legal holds as recorded: the rows of ``legal_holds`` in force, of every scope.

One reader for everyone who must honour a hold: retention (``governance.retention.holds``,
which also places the scopes below) and erasure (``governance.dsar.holds``). A hold covers
a subject (keyed fingerprints of their identities), a table, a source, a time range (rows
whose retention clock falls in it) or persons by their subject keys (sealed), with a
reason (masked), who placed it and an optional end date. Light to import: requests read
holds on every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from governance.audit_store import AuditStore
from governance.crypto.aead import open_json

SCOPES = ("subject", "table", "source", "range", "subject_keys")


def instant_text(at: datetime, end: bool = False) -> str:
    """A range bound as people read it: the day alone when it is the day's first instant
    (or, for an ``end``, its last), else the day and time."""
    first = at.time() == datetime.min.time()
    last = at.time() == datetime.max.time()
    if (first and not end) or (last and end):
        return f"{at:%Y-%m-%d}"
    return at.isoformat(timespec="seconds")


@dataclass(frozen=True)
class Hold:
    """One legal hold (in force unless ``released_at`` is set)."""

    hold_id: str
    scope: str                          # subject | table | source | range | subject_keys
    source: str | None
    table_name: str | None
    fingerprints: tuple[str, ...]       # subject: keyed identity fingerprints
    masked: tuple[str, ...]
    covers_from: datetime | None        # with covers_to: only rows whose clock is inside
    covers_to: datetime | None
    ends_at: datetime | None
    reason: str
    placed_by: str
    key_id: str | None = None
    sealed_keys: bytes | None = None
    placed_at: datetime | None = None
    released_at: datetime | None = None

    @property
    def whole(self) -> bool:
        """True when the hold covers every row of its tables (no time range, no persons)."""
        return self.scope in ("table", "source") and self.covers_from is None

    def covers_table(self, source: str, table: str) -> bool:
        """True when the hold's place includes ``source.table`` (persons aside)."""
        if self.scope == "table":
            return (self.source, self.table_name) == (source, table)
        if self.scope == "source":
            return self.source == source
        if self.scope == "range":
            return self.source in (None, source) and self.table_name in (None, table)
        return False

    @property
    def range_text(self) -> str:
        """The held range of the clock, as shown to people ('' without one)."""
        if self.covers_from is None or self.covers_to is None:
            return ""
        return f"{instant_text(self.covers_from)} to {instant_text(self.covers_to, end=True)}"

    @property
    def place(self) -> str:
        """What the hold covers and until when, as shown to people (masked)."""
        where = {"subject": ", ".join(self.masked) or "a subject",
                 # (masked holds the count: "150 key(s)")
                 "subject_keys": f"{self.masked[0] if self.masked else 'some key(s)'} of "
                                 f"persons of {self.source}.{self.table_name}",
                 "table": f"{self.source}.{self.table_name}",
                 "source": f"source {self.source}",
                 "range": ".".join(p for p in (self.source, self.table_name) if p) or "all"
                 }[self.scope]
        if self.covers_from is not None and self.covers_to is not None:
            where += f", clock from {self.range_text}"
        until = f", until {self.ends_at:%Y-%m-%d}" if self.ends_at else ""
        return where + until

    def describe(self) -> str:
        """What the hold covers and why, as shown to people (masked)."""
        return f"{self.hold_id} ({self.place}): {self.reason}"


_COLUMNS = ("hold_id, scope, fingerprints, masked_identities, source, table_name, reason, "
            "placed_by, covers_from, covers_to, ends_at, key_id, sealed_keys, placed_at, "
            "released_at")


def _hold(r: dict[str, Any]) -> Hold:
    return Hold(r["hold_id"], r["scope"], r["source"], r["table_name"],
                tuple(r["fingerprints"] or ()), tuple(r["masked_identities"] or ()),
                r["covers_from"], r["covers_to"], r["ends_at"], r["reason"], r["placed_by"],
                r["key_id"], bytes(r["sealed_keys"]) if r["sealed_keys"] is not None else None,
                r["placed_at"], r["released_at"])


def holds_in_force(store: AuditStore, now: datetime | None) -> list[Hold]:
    """Every hold not released and not ended at ``now`` (None: ignore end dates)."""
    rows = store.query(f"SELECT {_COLUMNS} FROM legal_holds WHERE released_at IS NULL "  # noqa: S608
                       "ORDER BY placed_at")
    return [_hold(r) for r in rows
            if now is None or r["ends_at"] is None or r["ends_at"] > now]


def hold_by_id(store: AuditStore, hold_id: str) -> Hold | None:
    """The hold ``hold_id``, in force or not (None when there is none)."""
    rows = store.query(f"SELECT {_COLUMNS} FROM legal_holds WHERE hold_id = ?",  # noqa: S608
                       [hold_id])
    return _hold(rows[0]) if rows else None


def unsealed_keys(store: AuditStore, hold: Hold, keyring: Any = None) -> set[str]:
    """The subject keys a ``subject_keys`` hold covers (empty for any other hold)."""
    from governance.crypto import KeyRing

    if hold.scope != "subject_keys" or hold.sealed_keys is None or not hold.key_id:
        return set()
    keyring = keyring or KeyRing(store)
    keys = open_json(keyring.get(hold.key_id), hold.sealed_keys, aad=hold.key_id.encode(),
                     what=f"hold {hold.hold_id}")
    return {str(k) for k in (keys if isinstance(keys, list) else [])}
