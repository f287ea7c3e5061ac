"""Legal holds as retention sees them: what no retention rule may touch, and until when.

The holds of ``governance.dsar.holds`` apply as they are (a subject by the keyed
fingerprints of their identities, a whole table). These functions add holds on a whole
source, on a time range (rows whose retention clock falls in it), and on persons given by
their subject keys (sealed in the store, e.g. the 10,000 accounts of a class action), each
with a reason (stored masked), who placed it and an optional end date. They are rows of
the same ``legal_holds`` table (columns of migration 6), read for everyone by
``governance.legal_holds``: erasure honours every scope too (``governance.dsar.holds``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from governance.audit_store import AuditStore
from governance.audit_store.store import record_row, utcnow
from governance.crypto.aead import seal_json
from governance.errors import GovernanceError
from governance.ids import new_id
from governance.inventory import Inventory, checked_name
from governance.legal_holds import Hold, holds_in_force, unsealed_keys


def place_hold(store: AuditStore, *, reason: str, actor: str, source: str | None = None,
               table: str | None = None, covers: tuple[datetime, datetime] | None = None,
               ends_at: datetime | None = None, subject_keys: Sequence[Any] | None = None,
               inventory: Inventory | None = None) -> Hold:
    """Place a hold on a source, a table (``table`` without ``source`` is ``source.table``),
    a time range of either (or of everything), or on the persons of a person table given by
    their subject keys. The reason is stored masked; keys only sealed."""
    from governance.crypto import KeyRing
    from governance.masking import mask_free_text

    if not reason.strip():
        raise GovernanceError("a legal hold needs a reason (--reason)")
    if table and "." in table and source is None:
        source, _, table = table.partition(".")
    if table is not None:
        checked_name(table, "table")
    if inventory is not None and source is not None:
        src = inventory.source(source)
        decl = src.table(table) if table is not None else None
        if table is not None and decl is None:
            raise GovernanceError(f"hold on {source}.{table}: the inventory declares no such "
                                  "table (a hold on a mistyped name would protect nothing)")
        if subject_keys is not None and decl is not None and not decl.is_person:
            raise GovernanceError(f"hold on {source}.{table} by keys: not a person table (one "
                                  "with a subject_key); hold the persons' own table")
    if covers is not None and covers[0] > covers[1]:
        raise GovernanceError("a hold's time range must start before it ends")
    key_id: str | None = None
    sealed: bytes | None = None
    masked: list[str] = []
    if subject_keys is not None:
        if source is None or table is None:
            raise GovernanceError("a hold on persons by key names their table: source.table")
        keys = sorted({str(k) for k in subject_keys})
        if not keys:
            raise GovernanceError("a hold on persons needs at least one subject key")
        keyring = KeyRing(store)
        key_id, data_key = keyring.create("retention-hold")
        sealed = seal_json(data_key, keys, aad=key_id.encode())
        masked = [f"{len(keys)} key(s)"]
        scope = "subject_keys"
    elif covers is not None:
        scope = "range"
    elif table is not None:
        scope = "table"
    elif source is not None:
        scope = "source"
    else:
        raise GovernanceError("say what the hold covers: a source, a table, a time range or "
                              "persons' keys")
    reason = mask_free_text(reason)
    hold_id = new_id("hold", length=10)

    def insert(conn: Any) -> None:
        conn.execute(
            "INSERT INTO legal_holds (hold_id, scope, fingerprints, masked_identities, source, "
            "table_name, reason, placed_by, placed_at, covers_from, covers_to, ends_at, key_id, "
            "sealed_keys) VALUES (?, ?, [], ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [hold_id, scope, masked, source, table, reason, actor, utcnow(),
             covers[0] if covers else None, covers[1] if covers else None, ends_at, key_id,
             sealed])
        record_row(conn, "legal_holds", hold_id, actor, "hold.placed", {
            "scope": scope, "table": ".".join(p for p in (source, table) if p) or None,
            "covers": [str(covers[0]), str(covers[1])] if covers else None,
            "ends_at": str(ends_at) if ends_at else None, "persons": masked or None,
            "reason": reason})

    store.write(insert)
    return next(h for h in holds_in_force(store, None) if h.hold_id == hold_id)


# Identity columns of person tables, by the category they are declared or found as.
_IDENTITY_OF = {"contact.email": "email", "contact.phone": "phone",
                "identity.national_id": "national_id", "identity.user_id": "user_id"}


def held_subject_keys(store: AuditStore, holds: Iterable[Hold], inventory: Inventory,
                      pool: Any, categories: Mapping[tuple[str, str, str], str]
                      ) -> dict[tuple[str, str], set[str]]:
    """The subject keys of held persons, per person table ``(source, table)``.

    ``subject_keys`` holds are unsealed. A ``subject`` hold (identity fingerprints) is
    matched by streaming each person table's subject key and identity columns and
    fingerprinting the values (the store keeps no identity in the clear): this reads the
    person tables once, in Arrow batches.
    """
    from governance.crypto import KeyRing
    from governance.dsar.identities import Identity, IdentityError

    holds = list(holds)
    out: dict[tuple[str, str], set[str]] = {}
    keyring: KeyRing | None = None
    for h in holds:
        if h.scope == "subject_keys":
            keyring = keyring or KeyRing(store)
            out.setdefault((str(h.source), str(h.table_name)), set()).update(
                unsealed_keys(store, h, keyring))
    wanted = {fp for h in holds if h.scope == "subject" for fp in h.fingerprints}
    if not wanted:
        return out
    keyring = keyring or KeyRing(store)
    for src in inventory.sources:
        for t in src.tables:
            if not t.is_person or not t.subject_key:
                continue
            idcols = {c: _IDENTITY_OF[cat] for (s, tb, c), cat in categories.items()
                      if s == src.name and tb == t.name and cat in _IDENTITY_OF}
            idcols.setdefault(t.subject_key, "user_id")
            try:
                conn = pool.get(src.name)
                cols = [c for c in idcols if c in conn.table_info(t.name).column_names]
                batches = conn.stream_rows(t.name, cols)
                found = set()
                for batch in batches:
                    data = batch.to_pydict()
                    for i, key in enumerate(data[t.subject_key]):
                        for c in cols:
                            v = data[c][i]
                            if v is None:
                                continue
                            try:
                                fp = keyring.fingerprint(
                                    Identity(idcols[c], str(v)).fingerprint_text())  # type: ignore[arg-type]
                            except IdentityError:
                                continue
                            if fp in wanted:
                                found.add(str(key))
                                break
            except GovernanceError:
                continue
            if found:
                out.setdefault((src.name, t.name), set()).update(found)
    return out
