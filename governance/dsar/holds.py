"""Legal holds: data that must not be erased while litigation or an investigation runs.

A hold covers a subject (by the keyed fingerprints of their identities) or a whole
table. Erasure is refused for a subject under a hold; a held table is left untouched by
erasure and reported with the hold's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from governance.audit_store import AuditStore
from governance.audit_store.store import record_row, utcnow
from governance.crypto import KeyRing
from governance.dsar.identities import Identity
from governance.errors import GovernanceError
from governance.ids import new_id
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
    placed_at: datetime
    released_at: datetime | None

    @property
    def target(self) -> str:
        """What the hold covers, as shown to people."""
        if self.scope == "table":
            return f"{self.source}.{self.table_name}"
        return ", ".join(self.masked_identities)


class LegalHolds:
    """Place, list and release legal holds in an audit store."""

    def __init__(self, store: AuditStore, keyring: KeyRing | None = None):
        self.store = store
        self.keyring = keyring or KeyRing(store)

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
        from governance.inventory import check_name

        check_name(name, "table")
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
        return self.get(hold_id)

    def get(self, hold_id: str) -> LegalHold:
        """The hold ``hold_id``."""
        rows = self._select("WHERE hold_id = ?", [hold_id])
        if not rows:
            raise GovernanceError(f"no legal hold {hold_id!r}")
        return rows[0]

    def active(self) -> list[LegalHold]:
        """Holds in force, oldest first."""
        return self._select("WHERE released_at IS NULL", [])

    def on_subject(self, fingerprints: Sequence[str]) -> list[LegalHold]:
        """Holds in force on a subject with any of these identity fingerprints."""
        return self._select("WHERE released_at IS NULL AND scope = 'subject' "
                            "AND list_has_any(fingerprints, ?)", [list(fingerprints)])

    def subject_holds(self) -> list[tuple[LegalHold, frozenset[str]]]:
        """Holds in force on subjects, each with its identity fingerprints (to match
        identities found later without reading the store again: ``matching``)."""
        return self._select_with_fingerprints(
            "WHERE released_at IS NULL AND scope = 'subject'", [])

    def on_tables(self) -> dict[tuple[str, str], LegalHold]:
        """Holds in force on tables, by (source, table)."""
        return {(h.source, h.table_name): h for h in self.active()  # type: ignore[misc]
                if h.scope == "table"}

    def _select(self, where: str, params: list[Any]) -> list[LegalHold]:
        return [h for h, _ in self._select_with_fingerprints(where, params)]

    def _select_with_fingerprints(self, where: str, params: list[Any]
                                  ) -> list[tuple[LegalHold, frozenset[str]]]:
        # ``where`` is one of this class's constant clauses; values are bound.
        sql = ("SELECT hold_id, scope, masked_identities, source, table_name, reason, "  # noqa: S608
               f"placed_by, placed_at, released_at, fingerprints FROM legal_holds {where} "
               "ORDER BY placed_at")
        return [(LegalHold(r["hold_id"], r["scope"], list(r["masked_identities"] or []),
                           r["source"], r["table_name"], r["reason"], r["placed_by"],
                           r["placed_at"], r["released_at"]), frozenset(r["fingerprints"] or []))
                for r in self.store.query(sql, params)]


def matching(holds: Sequence[tuple[LegalHold, frozenset[str]]], fingerprints: Sequence[str]
             ) -> list[LegalHold]:
    """The holds of ``LegalHolds.subject_holds`` covering any of these fingerprints."""
    wanted = set(fingerprints)
    return [h for h, fps in holds if fps & wanted]
