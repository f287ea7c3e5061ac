"""Legal holds: data that must not be erased while litigation or an investigation runs.

A hold covers a subject (by the keyed fingerprints of their identities), a whole table,
or (placed through retention: ``governance.retention.holds``) a whole source, a time range
of a table, a source or everything, or persons by their subject keys. Erasure is refused
for a subject under a hold (by an identity, given or derived, or by the key of one of their
person rows); a held table is left untouched by erasure and reported with the hold's reason.
A time-range hold holds its tables whole for erasure, which does not read retention
clocks. A hold stops applying when released or when its end date has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from governance.audit_store import AuditStore
from governance.audit_store.store import record_row, utcnow
from governance.crypto import KeyRing
from governance.dsar.identities import Identity
from governance.errors import GovernanceError
from governance.ids import new_id
from governance.legal_holds import Hold, hold_by_id, holds_in_force, unsealed_keys
from governance.masking import mask_free_text

if TYPE_CHECKING:  # the inventory module (and pydantic) only when a table hold is placed
    from governance.inventory import Inventory


@dataclass(frozen=True)
class LegalHold:
    """One legal hold in force or released."""

    hold_id: str
    scope: str                       # subject | table
    masked_identities: list[str]
    source: str | None
    table_name: str | None
    reason: str
    placed_by: str
    placed_at: datetime | None
    released_at: datetime | None
    place: str | None = None         # what it covers, for the scopes placed by retention

    @property
    def target(self) -> str:
        """What the hold covers, as shown to people."""
        if self.place is not None:
            return self.place
        if self.scope == "table":
            return f"{self.source}.{self.table_name}"
        return ", ".join(self.masked_identities)


class LegalHolds:
    """Place, list and release legal holds in an audit store.

    The holds in force are read once per instance (its checks then agree with each other)
    and again after it places or releases one: make a new instance to see holds placed
    elsewhere since."""

    def __init__(self, store: AuditStore, keyring: KeyRing | None = None):
        self.store = store
        self.keyring = keyring or KeyRing(store)
        self._in_force: list[Hold] | None = None

    def place_on_subject(self, identities: Sequence[Identity], reason: str,
                         actor: str) -> LegalHold:
        """Hold everything about the subject known by ``identities``."""
        if not identities:
            raise GovernanceError("a subject hold needs at least one identity")
        fps = sorted({self.keyring.fingerprint(i.fingerprint_text()) for i in identities})
        return self._place("subject", fps, [i.masked() for i in identities], None, None,
                           reason, actor)

    def place_on_table(self, table: str, reason: str, actor: str,
                       inventory: Inventory | None = None) -> LegalHold:
        """Hold a whole table, written ``source.table``; with ``inventory``, a table it does
        not declare is refused (a hold on a mistyped name would protect nothing)."""
        source, _, name = table.partition(".")
        if not name:
            raise GovernanceError(f"table hold {table!r}: write it as source.table")
        from governance.inventory import checked_name

        checked_name(name, "table")
        if inventory is not None and inventory.source(source).table(name) is None:
            declared = ", ".join(t.name for t in inventory.source(source).tables)
            raise GovernanceError(f"table hold {table!r}: source {source!r} declares no table "
                                  f"{name!r} (declared: {declared})")
        return self._place("table", [], [], source, name, reason, actor)

    def _place(self, scope: str, fps: list[str], masked: list[str], source: str | None,
               table: str | None, reason: str, actor: str) -> LegalHold:
        if not reason.strip():
            raise GovernanceError("a legal hold needs a reason (--reason)")
        reason = mask_free_text(reason)   # the reason is kept for good: no personal data
        hold_id = new_id("hold", length=10)

        def insert(conn: Any) -> None:
            conn.execute("INSERT INTO legal_holds (hold_id, scope, fingerprints, "
                         "masked_identities, source, table_name, reason, placed_by, placed_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [hold_id, scope, fps, masked, source, table, reason, actor, utcnow()])
            record_row(conn, "legal_holds", hold_id, actor, "hold.placed", {
                "scope": scope, "identities": masked,
                "table": f"{source}.{table}" if table else None, "reason": reason})

        self.store.write(insert)
        self._in_force = None
        return self.get(hold_id)

    def release(self, hold_id: str, actor: str) -> LegalHold:
        """End a hold; its record stays."""
        def change(conn: Any) -> None:
            rows = conn.execute("SELECT released_at FROM legal_holds WHERE hold_id = ?",
                                [hold_id]).fetchall()
            if not rows:
                raise GovernanceError(f"no legal hold {hold_id!r}")
            if rows[0][0] is not None:
                raise GovernanceError(f"legal hold {hold_id} was already released")
            conn.execute("UPDATE legal_holds SET released_at = ?, released_by = ? "
                         "WHERE hold_id = ?", [utcnow(), actor, hold_id])
            record_row(conn, "legal_holds", hold_id, actor, "hold.released")

        self.store.write(change)
        self._in_force = None
        return self.get(hold_id)

    def get(self, hold_id: str) -> LegalHold:
        """The hold ``hold_id``."""
        found = hold_by_id(self.store, hold_id)
        if found is None:
            raise GovernanceError(f"no legal hold {hold_id!r}")
        return _legal(found)

    def in_force(self) -> list[Hold]:
        """Every hold in force, of every scope, oldest first (read at the first call)."""
        if self._in_force is None:
            self._in_force = holds_in_force(self.store, utcnow())
        return self._in_force

    def active(self) -> list[LegalHold]:
        """Holds in force, oldest first."""
        return [_legal(h) for h in self.in_force()]

    def on_subject(self, fingerprints: Sequence[str]) -> list[LegalHold]:
        """Holds in force on a subject with any of these identity fingerprints."""
        wanted = set(fingerprints)
        return [_legal(h) for h in self.in_force()
                if h.scope == "subject" and wanted.intersection(h.fingerprints)]

    def subject_holds(self) -> list[LegalHold]:
        """Holds in force on subjects."""
        return [_legal(h) for h in self.in_force() if h.scope == "subject"]

    def on_tables(self, inventory: Inventory | None = None
                  ) -> dict[tuple[str, str], LegalHold]:
        """Holds in force on whole tables, by (source, table): table holds, and with
        ``inventory`` the tables of held sources and of time-range holds too (the oldest
        hold of a table is the one given)."""
        out: dict[tuple[str, str], LegalHold] = {}
        for h in self.in_force():
            if h.scope == "table" and h.source and h.table_name:
                out.setdefault((h.source, h.table_name), _legal(h))
            elif h.scope in ("source", "range") and inventory is not None:
                legal = _legal(h)
                if h.scope == "range":
                    legal = replace(legal, reason=(
                        f"{h.reason} (a hold on rows of {h.range_text}: erasure leaves the "
                        "whole table)"))
                for src in inventory.sources:
                    if h.source is not None and src.name != h.source:
                        continue
                    for t in src.tables:
                        if h.scope == "source" or h.table_name in (None, t.name):
                            out.setdefault((src.name, t.name), legal)
        return out

    def on_persons(self, inventory: Inventory,
                   person_rows: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]]
                   ) -> list[LegalHold]:
        """Holds in force on persons by subject key that cover one of ``person_rows`` (the
        subject's rows of person tables, by (source, table))."""
        out = []
        for h in self.in_force():
            rows = person_rows.get((str(h.source), str(h.table_name)), ())
            if h.scope != "subject_keys" or not rows:
                continue
            decl = inventory.source(str(h.source)).table(str(h.table_name))
            if decl is None or not decl.subject_key:
                continue
            keys = unsealed_keys(self.store, h, self.keyring)
            if any(str(r.get(decl.subject_key)) in keys for r in rows):
                out.append(_legal(h))
        return out


def _legal(h: Hold) -> LegalHold:
    return LegalHold(h.hold_id, h.scope, list(h.masked), h.source, h.table_name, h.reason,
                     h.placed_by, h.placed_at, h.released_at,
                     None if h.scope in ("subject", "table") else h.place)
