"""The encryption audit: do the columns the policy requires encrypted hold only valid
envelopes whose data keys exist?

``encryption_status(inventory, store)`` reads every such column and counts its cells:
plaintext, malformed envelopes, envelopes naming a key the store does not have, and
envelopes under destroyed keys (erased subjects: expected). It needs no key-encryption
key (key existence is read from ``subject_keys``); with ``keys`` it also decrypts every
envelope in its place, so a ciphertext moved to another row or altered is found. The
findings are written to ``encryption_checks`` (counts only) and logged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from governance.audit_store import AuditStore
from governance.audit_store.store import append_log_row, utcnow
from governance.crypto.field import (
    Envelope,
    EnvelopeError,
    associated_data,
    looks_sealed,
    open_cell,
    parse,
)
from governance.dsar.plan import REDACTED
from governance.encryption.keys import KeyUnavailable, SubjectKeys
from governance.encryption.policy import EncryptionPolicy, load_policy
from governance.errors import GovernanceError
from governance.ids import new_id
from governance.inventory import Inventory
from governance.sources.pool import ConnectorPool

AUDIT_ACTION = "encryption.audited"


@dataclass
class ColumnStatus:
    """One policy column's state. ``status``: encrypted | plaintext | mixed | invalid |
    missing_keys | unreadable (the source or table could not be read)."""

    source: str
    table: str
    column: str
    required: bool
    status: str
    cells: int = 0
    plaintext_cells: int = 0
    invalid_cells: int = 0
    missing_key_cells: int = 0
    shredded_cells: int = 0
    detail: str | None = None

    @property
    def ok(self) -> bool:
        """True when every non-null cell is a valid envelope (shredded ones included)."""
        return self.status == "encrypted"

    def describe(self) -> str:
        """One line, counts only."""
        line = (f"{self.source}.{self.table}.{self.column}: {self.status.upper()} "
                f"({self.cells} cells: {self.plaintext_cells} plaintext, "
                f"{self.invalid_cells} invalid, {self.missing_key_cells} with missing keys, "
                f"{self.shredded_cells} shredded)")
        return line + (f"; {self.detail}" if self.detail else "")


def encryption_status(inventory: Inventory, store: AuditStore,
                      policy: EncryptionPolicy | None = None, keys: SubjectKeys | None = None,
                      sources: Sequence[str] | None = None, record: bool = True,
                      actor: str = "govkit") -> list[ColumnStatus]:
    """Check every column the policy requires encrypted; record the findings in the store
    (``encryption_checks``) unless ``record`` is false. The compliance audit calls this."""
    from governance.encryption.runner import _by_table, _row_key, policy_targets

    policy = policy or load_policy(None, inventory)
    found = policy_targets(inventory, store, policy, sources)
    known = _key_states(store)
    out: list[ColumnStatus] = []
    with ConnectorPool(inventory) as pool:
        for (source, table), cols in _by_table(found).items():
            names = [t.column for t in cols]
            try:
                conn = pool.get(source)
                key = _row_key(inventory, policy, pool, source, table) if keys else []
                counts: dict[str, Counter[str]] = {c: Counter() for c in names}
                for batch in conn.stream_rows(table, list(dict.fromkeys([*key, *names]))):
                    _count(batch, source, table, names, key, counts, known, keys)
                for c in names:
                    out.append(_status(source, table, c, counts[c]))
            except GovernanceError as e:
                first = str(e).splitlines()[0]
                out.extend(ColumnStatus(source, table, c, True, "unreadable", detail=first)
                           for c in names)
    if record:
        _record(store, out, actor)
    return out


def _key_states(store: AuditStore) -> dict[str, bool]:
    """key id -> True when it can still be unwrapped, False when destroyed."""
    rows = store.query("SELECT key_id, wrapped IS NOT NULL AS live FROM subject_keys")
    return {r["key_id"]: bool(r["live"]) for r in rows}


def _count(batch: pa.RecordBatch, source: str, table: str, names: list[str], key: list[str],
           counts: dict[str, Counter], known: dict[str, bool], keys: SubjectKeys | None) -> None:
    rows = batch.to_pylist()
    to_open: list[tuple[str, dict[str, Any], Envelope]] = []
    for c in names:
        cnt = counts[c]
        for r in rows:
            v = r.get(c)
            if v is None or v == "" or v == REDACTED:   # empty, or erased (redacted)
                continue
            cnt["cells"] += 1
            if not looks_sealed(v):
                cnt["plaintext"] += 1
                continue
            try:
                env = parse(v)
            except EnvelopeError:
                cnt["invalid"] += 1
                continue
            live = known.get(env.key_id)
            if live is None:
                cnt["missing"] += 1
            elif not live:
                cnt["shredded"] += 1
            elif keys is not None:
                to_open.append((c, r, env))
    if not to_open or keys is None:
        return
    # The batch's keys in one read of the store (one per cell took minutes on 60,000 keys).
    ciphers = keys.ciphers({env.key_id for _, _, env in to_open})
    for c, r, env in to_open:
        cnt = counts[c]
        a = ciphers[env.key_id]
        if isinstance(a, KeyUnavailable):
            cnt["missing"] += 1
            continue
        rk = r[key[0]] if len(key) == 1 else [r[k] for k in key]
        try:
            open_cell(a, env, associated_data(source, table, c, rk))
        except EnvelopeError:
            cnt["invalid"] += 1


def _status(source: str, table: str, column: str, cnt: Counter) -> ColumnStatus:
    cells = cnt["cells"]
    if cnt["invalid"]:
        status = "invalid"
    elif cnt["missing"]:
        status = "missing_keys"
    elif cnt["plaintext"] and cnt["plaintext"] == cells:
        status = "plaintext"
    elif cnt["plaintext"]:
        status = "mixed"
    else:
        status = "encrypted"
    return ColumnStatus(source, table, column, True, status, cells, cnt["plaintext"],
                        cnt["invalid"], cnt["missing"], cnt["shredded"])


def _record(store: AuditStore, found: list[ColumnStatus], actor: str) -> str:
    check_id = new_id("enc", f"{utcnow():%Y%m%dT%H%M%SZ}")
    now = utcnow()
    with store.transaction() as conn:
        for s in found:
            conn.execute("INSERT INTO encryption_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                         "?, ?, ?)", [check_id, now, s.source, s.table, s.column, s.required,
                                      s.status, s.cells, s.plaintext_cells, s.invalid_cells,
                                      s.missing_key_cells, s.shredded_cells, s.detail])
        bad = [f"{s.source}.{s.table}.{s.column}" for s in found if not s.ok]
        append_log_row(conn, actor, AUDIT_ACTION, check_id,
                       {"columns": len(found), "not_encrypted": bad,
                        "statuses": dict(Counter(s.status for s in found))})
    return check_id


def as_dicts(found: Sequence[ColumnStatus]) -> list[dict[str, object]]:
    """The findings as plain data (JSON output, Dagster metadata)."""
    return [asdict(s) for s in found]
