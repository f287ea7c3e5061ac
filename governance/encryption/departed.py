"""Data keys of people who are gone: subjects no person row of any source names any more
(retention deleted them) and under whose keys no live cell is sealed.

Such a key opens nothing but old copies and backups of the data, so a retention run that
deleted those people left their data readable there. Destroying it (crypto-shredding)
makes those copies unreadable for them too, as an erasure does. A subject whose person row
is gone but whose key still seals a live cell (a row a hold keeps, a row in another
source) keeps it: destroying it would lose that cell. Nothing is decided when a source
cannot be read (whether a person is gone is then not known).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from governance.audit_store import AuditStore
from governance.crypto.field import EnvelopeError, looks_sealed, parse
from governance.encryption.keys import INDEX_SUBJECT, SubjectKeys
from governance.encryption.policy import EncryptionPolicy
from governance.encryption.runner import ShredOutcome, _by_table, policy_targets, shred_subjects
from governance.encryption.subjects import person_key_column
from governance.errors import GovernanceError
from governance.inventory import Inventory
from governance.sources.pool import ConnectorPool

REASON = "their person rows are gone and no live cell is sealed under their keys"


@dataclass
class Departed:
    """Subjects whose keys can go, those gone whose keys still seal live cells (kept), and
    the sources that could not be read (then nothing can go)."""

    subjects: list[str] = field(default_factory=list)
    still_used: int = 0
    unreadable: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line, counts only."""
        if self.unreadable:
            return (f"not checked: {'; '.join(self.unreadable)} could not be read, so who is "
                    "gone is not known; nothing was destroyed")
        kept = (f"; {self.still_used} whose keys still seal live cells keep them"
                if self.still_used else "")
        return f"{len(self.subjects)} subject(s) gone with a data key left{kept}"


def departed_subjects(inventory: Inventory, store: AuditStore, keys: SubjectKeys,
                      policy: EncryptionPolicy) -> Departed:
    """The subjects with a live data key that no person row names and that seal no cell of
    a column the policy requires encrypted (fingerprints; see the module)."""
    out = Departed()
    live: set[str] = set()
    with ConnectorPool(inventory) as pool:
        for src in inventory.sources:
            for t in src.tables:
                if not t.is_person:
                    continue
                person = (src.name, t.name)
                try:
                    cols = person_key_column(inventory, pool, person).split(",")
                    for batch in pool.get(src.name).stream_rows(t.name, cols):
                        rows = batch.to_pylist()
                        live.update(keys.subject_refs(
                            [(person, r[cols[0]] if len(cols) == 1 else [r[c] for c in cols])
                             for r in rows]))
                except GovernanceError as e:
                    out.unreadable.append(f"{src.name}.{t.name} ({str(e).splitlines()[0]})")
        if out.unreadable:
            return out
        gone: dict[str, str] = {}      # key id -> subject
        for r in store.query("SELECT subject, key_id FROM subject_keys WHERE wrapped IS NOT "
                             "NULL AND subject <> ?", [INDEX_SUBJECT]):
            if r["subject"] not in live:
                gone[r["key_id"]] = r["subject"]
        if not gone:
            return out
        used: set[str] = set()
        sealed = _by_table(policy_targets(inventory, store, policy))
        for (source, table), columns in sealed.items():
            try:
                batches = pool.get(source).stream_rows(table, [c.column for c in columns])
                for batch in batches:
                    for column in batch.columns:
                        for v in column.to_pylist():
                            if looks_sealed(v):
                                try:
                                    kid = parse(v).key_id
                                except EnvelopeError:
                                    continue
                                if kid in gone:
                                    used.add(gone[kid])
            except GovernanceError as e:
                out.unreadable.append(f"{source}.{table} ({str(e).splitlines()[0]})")
    if out.unreadable:
        return out
    subjects = set(gone.values())
    out.subjects = sorted(subjects - used)
    out.still_used = len(subjects & used)
    return out


def shred_departed(keys: SubjectKeys, departed: Departed, actor: str,
                   request_id: str | None = None) -> ShredOutcome | None:
    """Destroy the keys of ``departed.subjects`` (None when there is none, or when a source
    could not be read)."""
    if departed.unreadable or not departed.subjects:
        return None
    return shred_subjects(keys, departed.subjects, actor, REASON, request_id)


__all__: Sequence[str] = ("Departed", "departed_subjects", "shred_departed")
