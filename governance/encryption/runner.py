"""Encrypt, read, rotate and shred: the operations of field-level encryption.

- ``encrypt``: seals the columns the policy requires, each cell under its data subject's
  key (found through the ownership graph), in place. Dry run unless ``apply``. Cells that
  already hold an envelope are left alone (never encrypted twice); rows shared by two
  people or owned by nobody are left in clear and reported.
- ``Decryptor``: authorised reads; each call is logged (who, why, where, how many cells).
- ``shred_subjects`` / ``shred_person_rows``: crypto-shredding by destroying data keys.
- ``rotate_kek``: rewraps data keys under a new key-encryption key, no data rewritten.
- ``rotate_data_keys``: new data keys for subjects, their cells re-encrypted, old keys
  destroyed once no policy column holds a cell under them.
Every audit-log row holds counts, places, key ids and subject fingerprints: never a value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from governance.audit_store import AuditStore
from governance.audit_store.store import append_log_row, utcnow
from governance.crypto.field import (
    BYTES_PREFIX,
    TEXT_PREFIX,
    EnvelopeError,
    aad_prefix,
    associated_data,
    associated_data_column,
    encode_values,
    looks_sealed,
    open_cell,
    parse,
    row_key_text,
    seal_cell,
    seal_encoded,
)
from governance.crypto.keystore import KeyStore
from governance.encryption.keys import (
    INDEX_SUBJECT,
    KeyUnavailable,
    SubjectKeys,
    ciphers_held,
)
from governance.encryption.policy import EncryptionPolicy, Target, targets
from governance.encryption.subjects import (
    CODE_NOBODY,
    CODE_SHARED,
    NOBODY,
    SHARED,
    OwnerIndex,
    person_key_column,
)
from governance.encryption.writers import (
    BLIND_INDEX_CHARS,
    BatchChanges,
    ColumnWise,
    column_kind,
    declared_length,
    longest_envelope,
    rewrite_table,
    sealed_cells,
    unique_key,
)
from governance.errors import GovernanceError, SourceError, refused_by_database
from governance.inventory import FILE_KINDS, Inventory
from governance.sources.pool import ConnectorPool

Progress = Callable[[str], None]
ENCRYPT_ACTION = "encryption.encrypted"
DECRYPT_ACTION = "encryption.decrypted"
ROTATE_KEK_ACTION = "encryption.kek_rotated"
ROTATE_KEYS_ACTION = "encryption.data_keys_rotated"


class EncryptionError(GovernanceError):
    """An encryption run cannot be done as asked (the reason names the place)."""


@dataclass
class TableOutcome:
    """What a run did (or would do) to one table's policy columns. Counts only."""

    source: str
    table: str
    columns: list[str]
    rows: int = 0
    cells_sealed: int = 0             # encrypted by this run (or to encrypt, dry run)
    cells_already: int = 0            # already envelopes: left alone
    cells_null: int = 0
    rows_shared: int = 0              # owned by two people: left in clear
    rows_unowned: int = 0             # reach no person: left in clear
    subjects: int = 0
    rows_changed_meanwhile: int = 0   # changed by someone else while sealed: left as they were
    error: str | None = None

    def describe(self, applied: bool = True) -> str:
        """One line for the terminal (``applied``: False for a dry run: what it would do)."""
        if self.error:
            return f"{self.source}.{self.table}: NOT DONE: {self.error}"
        extra = ""
        if self.rows_shared or self.rows_unowned:
            extra = (f"; left in clear: {self.rows_shared} shared row(s), "
                     f"{self.rows_unowned} row(s) of nobody")
        if self.rows_changed_meanwhile:
            extra += (f"; NOT FINISHED: {self.rows_changed_meanwhile} row(s) changed by "
                      "someone else meanwhile were left as they are: run encrypt again")
        return (f"{self.source}.{self.table} [{', '.join(self.columns)}]: {self.rows} rows, "
                f"{self.cells_sealed} cell(s) {'sealed' if applied else 'to seal'}, "
                f"{self.cells_already} already sealed, "
                f"{self.subjects} subject(s){extra}")


@dataclass
class RunOutcome:
    """An encryption run: one outcome per table."""

    applied: bool
    tables: list[TableOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no table failed or left rows to do."""
        return not any(t.error or t.rows_changed_meanwhile for t in self.tables)


def keystore_for(policy: EncryptionPolicy, store: AuditStore, create_kek: bool = False
                 ) -> KeyStore:
    """The key store the policy names: local (the store's master key, or ``key_env``) or
    PKCS#11 (PIN from ``pin_env``). KeyStoreError (one line) when it cannot be opened."""
    import base64
    import binascii
    import os

    from governance.crypto.keystore import (
        KeyStoreError,
        LocalKeyStore,
        Pkcs11KeyStore,
        find_pkcs11_module,
    )

    ks = policy.key_store
    if ks.kind == "pkcs11":
        module = ks.module or find_pkcs11_module()
        if not module:
            raise KeyStoreError("no PKCS#11 module: set key_store.module or "
                                "GOVKIT_PKCS11_MODULE")
        pin = os.environ.get(ks.pin_env or "")
        if not pin:
            raise KeyStoreError(f"the HSM PIN is not set (environment variable {ks.pin_env}); "
                                "nothing was changed")
        return Pkcs11KeyStore(module, ks.token_label or "", pin, ks.key_label or "",
                              create=create_kek)
    if ks.key_env:
        text = os.environ.get(ks.key_env)
        if not text:
            raise KeyStoreError(f"the key-encryption key is not set (environment variable "
                                f"{ks.key_env}); nothing was changed")
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise KeyStoreError(f"{ks.key_env}: not valid base64; nothing was changed") from None
        return LocalKeyStore(key, ks.key_env)
    from governance.crypto.keyring import load_master_key

    return LocalKeyStore(load_master_key(store, create=False), "master key")


def subject_keys_for(policy: EncryptionPolicy, store: AuditStore) -> SubjectKeys:
    """The data keys of ``store`` under the policy's key store, also unwrapping with the
    policy's ``also_unwrap_with`` stores (a KEK rotation under way)."""
    others = [keystore_for(policy.model_copy(update={"key_store": d}), store)
              for d in policy.also_unwrap_with]
    return SubjectKeys(store, keystore_for(policy, store), others)


def _row_key(inventory: Inventory, policy: EncryptionPolicy, pool: ConnectorPool,
             source: str, table: str) -> list[str]:
    conn = pool.get(source)
    declared = policy.row_keys.get(f"{source}.{table}")
    if declared:
        return [c.strip() for c in declared.split(",")]
    info = conn.table_info(table)
    if info.primary_key:
        return list(info.primary_key)
    decl = inventory.source(source).table(table)
    if decl is not None and decl.is_person and decl.subject_key:
        return [decl.subject_key]
    raise EncryptionError(f"{source}.{table} has no primary key: name the column(s) that "
                          f"identify a row under row_keys in the encryption policy "
                          f"(e.g. {source}.{table}: id)")


def _detected(store: AuditStore) -> dict[tuple[str, str, str], set[str]]:
    """Categories the latest scan of each source found (so undeclared columns count)."""
    try:
        rows = store.query(
            "SELECT f.source, f.table_name, f.column_name, f.detected_category FROM "
            "column_findings f JOIN (SELECT source, max(run_id) AS run_id FROM column_findings "
            "GROUP BY source) l USING (source, run_id) WHERE f.detected_category IS NOT NULL")
    except GovernanceError:
        return {}
    out: dict[tuple[str, str, str], set[str]] = {}
    for r in rows:
        out.setdefault((r["source"], r["table_name"], r["column_name"]), set()).add(
            r["detected_category"])
    return out


def policy_targets(inventory: Inventory, store: AuditStore, policy: EncryptionPolicy,
                   sources: Sequence[str] | None = None) -> list[Target]:
    """The columns the policy requires encrypted (declared and latest-scan categories)."""
    return targets(policy, inventory, _detected(store), list(sources) if sources else None)


def _by_table(found: Iterable[Target]) -> dict[tuple[str, str], list[Target]]:
    out: dict[tuple[str, str], list[Target]] = {}
    for t in found:
        out.setdefault((t.source, t.table), []).append(t)
    return out


def encrypt(inventory: Inventory, store: AuditStore, keys: SubjectKeys | None,
            policy: EncryptionPolicy, apply: bool = False, actor: str = "govkit",
            sources: Sequence[str] | None = None, tables: Sequence[str] | None = None,
            columns: Sequence[str] | None = None, progress: Progress | None = None,
            found: Sequence[Target] | None = None) -> RunOutcome:
    """Seal the policy's columns (``source.table.column`` filters: ``tables``, ``columns``).
    Dry run without ``apply`` (``keys`` may then be None: nothing is created or read)."""
    if apply and keys is None:
        raise EncryptionError("encrypting needs the data keys (a key store)")
    chosen = [t for t in (found if found is not None
                          else policy_targets(inventory, store, policy, sources))
              if (not sources or t.source in sources)
              and (not tables or f"{t.source}.{t.table}" in tables or t.table in tables)
              and (not columns or t.name in columns or t.column in columns)]
    outcome = RunOutcome(apply)
    with ConnectorPool(inventory, writable=apply) as pool:
        owners = OwnerIndex(inventory, pool)
        for (source, table), cols in _by_table(chosen).items():
            res = TableOutcome(source, table, [t.column for t in cols])
            outcome.tables.append(res)
            started = time.monotonic()
            try:
                _encrypt_table(inventory, policy, pool, owners, keys, source, table, cols,
                               apply, res, progress)
            except GovernanceError as e:
                res.error = str(e).splitlines()[0]
            except Exception as e:
                refused = refused_by_database(e)
                if refused is None:
                    raise
                # The database refused a change (its transaction rolled back): one line.
                res.error = f"the database refused a change: {type(e).__name__}: {refused}"
            if apply:
                _log(store, actor, ENCRYPT_ACTION, f"{source}.{table}",
                     {"columns": res.columns, "rows": res.rows, "cells_sealed": res.cells_sealed,
                      "cells_already": res.cells_already, "rows_shared": res.rows_shared,
                      "rows_unowned": res.rows_unowned, "subjects": res.subjects,
                      "rows_changed_meanwhile": res.rows_changed_meanwhile,
                      "seconds": round(time.monotonic() - started, 3), "error": res.error})
    return outcome


def _check_table(inventory: Inventory, policy: EncryptionPolicy, pool: ConnectorPool,
                 owners: OwnerIndex, source: str, table: str, cols: Sequence[Target]
                 ) -> tuple[list[str], list[str], dict[str, str]]:
    conn = pool.get(source)
    info = conn.table_info(table)
    if not info.changeable:
        raise EncryptionError(f"{source}.{table} is a view; encrypt the table it reads")
    key = _row_key(inventory, policy, pool, source, table)
    conn.check_columns(table, key)
    need = owners.needed_columns((source, table))
    kinds = {}
    narrow = []
    for t in cols:
        if t.column in key or t.column in need:
            raise EncryptionError(f"{t.name} identifies rows or their owner; it cannot be "
                                  "encrypted in place (exempt it in the encryption policy)")
        try:
            kinds[t.column] = column_kind(conn, table, t.column)
        except SourceError as e:   # named with the others, so that one run finds them all
            narrow.append(str(e).split("; ")[0])
            continue
        room = declared_length(conn, table, t.column)
        if room is not None and kinds[t.column] == "text":
            needed = longest_envelope(conn, table, t.column)
            if needed > room:
                narrow.append(f"{t.name}: its longest value sealed takes {needed} characters "
                              f"and the column holds {room}")
                continue
        if t.blind_index:
            conn.check_columns(table, [t.blind_index])
            room = declared_length(conn, table, t.blind_index)
            if room is not None and room < BLIND_INDEX_CHARS:
                raise EncryptionError(
                    f"{source}.{table}.{t.blind_index}: a blind index takes "
                    f"{BLIND_INDEX_CHARS} characters and the column holds {room}; widen it "
                    "first; nothing was sealed")
    if narrow:        # every column that cannot hold envelopes named at once: one run
        raise EncryptionError(f"{'; '.join(narrow)}; change them first (to text, or a "
                              "varchar a little longer); nothing was sealed")
    if f"{source}.{table}" in policy.row_keys and not unique_key(conn, table, key):
        raise EncryptionError(f"{source}.{table}: row_keys {', '.join(key)} is not unique "
                              "(or has empty values)")
    return key, need, kinds


def _encrypt_table(inventory: Inventory, policy: EncryptionPolicy, pool: ConnectorPool,
                   owners: OwnerIndex, keys: SubjectKeys | None, source: str, table: str,
                   cols: Sequence[Target], apply: bool, res: TableOutcome,
                   progress: Progress | None) -> None:
    key, need, kinds = _check_table(inventory, policy, pool, owners, source, table, cols)
    conn = pool.get(source)
    targets_ = [t.column for t in cols]
    bidx = {t.column: t.blind_index for t in cols if t.blind_index}
    subjects: set[str] = set()
    total = conn.table_info(table).row_count

    prefixes = {c: aad_prefix(source, table, c) for c in targets_}
    as_text = {c: kinds[c] == "text" for c in targets_}

    def transform(rows: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        who = owners.owners((source, table), rows)
        todo_subject: dict[int, str] = {}
        for i, (r, w) in enumerate(zip(rows, who, strict=True)):
            plain = False
            for c in targets_:
                v = r.get(c)
                if v is None:
                    res.cells_null += 1
                elif looks_sealed(v):
                    res.cells_already += 1
                else:
                    plain = True
            if not plain:
                continue
            if w is SHARED:
                res.rows_shared += 1
            elif w is NOBODY:
                res.rows_unowned += 1
            elif keys is not None:
                todo_subject[i] = keys.subject_ref(w[0], w[1])
            else:
                todo_subject[i] = f"{w[0]}:{w[1]}"
        subjects.update(todo_subject.values())
        if not apply or keys is None:
            res.cells_sealed += sum(1 for i in todo_subject for c in targets_
                                    if rows[i].get(c) is not None and not looks_sealed(rows[i][c]))
            # Rows that would change (counted by the progress report; nothing is written).
            return [{} if i not in todo_subject else {"": None} for i in range(len(rows))]
        active = keys.active_keys(todo_subject.values(), create=True)
        out: list[dict[str, Any] | None] = [None] * len(rows)
        single = key[0] if len(key) == 1 else None
        for i, subject in todo_subject.items():
            r = rows[i]
            key_id, aead = active[subject]
            rk = r[single] if single is not None else [r[k] for k in key]
            rk_bytes = row_key_text(rk).encode("utf-8", "surrogatepass")
            ch: dict[str, Any] = {}
            for c in targets_:
                v = r.get(c)
                if v is None or looks_sealed(v):
                    continue
                ch[c] = seal_cell(aead, key_id, v, prefixes[c] + rk_bytes, text=as_text[c])
                if c in bidx:
                    ch[bidx[c]] = keys.blind_index(source, table, c, v)
                res.cells_sealed += 1
            out[i] = ch
        return out

    # Column-wise (a Parquet file): the same decisions for a whole row group at once.
    # Owner codes index OwnerIndex.known; a code's data key is fetched (or created) once
    # per run, at the first batch that needs it.
    kid_of = np.empty(0, object)             # owner code -> data key id
    aead_of = np.empty(0, object)            # owner code -> its cipher, while held
    klen_of = np.zeros(0, np.int64)          # owner code -> len(data key id)
    addr_of = np.zeros(0, np.int64)          # owner code -> where its cipher is in memory
    have = np.zeros(0, bool)                 # owner code -> key fetched in this run
    held = np.zeros(0, bool)                 # owner code -> its cipher held here
    # (At most ciphers_held() ciphers are held here, ~2.4 KB each: past that, those the
    # batch at hand does not need are let go, and asked for again when one needs them.)

    def keys_for(codes: np.ndarray) -> None:
        nonlocal kid_of, aead_of, klen_of, addr_of, have, held
        assert keys is not None
        if len(owners.known) > len(have):
            grow = len(owners.known) - len(have)
            kid_of = np.concatenate([kid_of, np.full(grow, None, object)])
            aead_of = np.concatenate([aead_of, np.full(grow, None, object)])
            klen_of = np.concatenate([klen_of, np.zeros(grow, np.int64)])
            addr_of = np.concatenate([addr_of, np.zeros(grow, np.int64)])
            have = np.concatenate([have, np.zeros(grow, bool)])
            held = np.concatenate([held, np.zeros(grow, bool)])
        needed = np.zeros(len(have), bool)
        needed[codes] = True
        new = np.flatnonzero(needed & ~have).tolist()
        if not new:
            return
        refs = keys.subject_refs([owners.known[c] for c in new])
        kids = keys.active_key_ids(refs, create=True)
        kid_of[new] = _objects(kids)
        klen_of[new] = np.fromiter(map(len, kids), np.int64, len(kids))
        have[new] = True
        subjects.update(refs)
        if int(held.sum()) + len(new) > ciphers_held():
            drop = held & ~needed
            aead_of[drop], held[drop] = None, False
        # Built here, before a forked copy takes over batches.
        hold(np.asarray(new, np.int64))

    def hold(codes: np.ndarray) -> None:
        """Hold the ciphers of ``codes`` (distinct owner codes not held)."""
        assert keys is not None
        ciphers = keys.held_ciphers(kid_of[codes].tolist())
        aead_of[codes] = _objects(ciphers)
        addr_of[codes] = np.fromiter(map(id, ciphers), np.int64, len(ciphers))
        held[codes] = True

    def prepare_columns(data: pa.Table) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """What a batch's sealing needs, decided here: the owner code of each row and,
        by column, the rows whose cell is sealed (their keys fetched or made now)."""
        n = data.num_rows
        plain_any = np.zeros(n, bool)
        plain: dict[str, np.ndarray] = {}
        for c in targets_:
            col = data.column(c).combine_chunks()
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                sealed = pc.starts_with(col, TEXT_PREFIX)
            elif pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
                sealed = pc.starts_with(col, BYTES_PREFIX)
            else:
                sealed = pa.array([looks_sealed(v) for v in col.to_pylist()], pa.bool_())
            is_sealed = sealed.fill_null(False).to_numpy(zero_copy_only=False)
            res.cells_null += int(n - valid.sum())
            res.cells_already += int((valid & is_sealed).sum())
            plain[c] = valid & ~is_sealed
            plain_any |= plain[c]
        if not plain_any.any():
            return None
        codes = owners.owner_codes((source, table), data)
        res.rows_shared += int((plain_any & (codes == CODE_SHARED)).sum())
        res.rows_unowned += int((plain_any & (codes == CODE_NOBODY)).sum())
        owned = plain_any & (codes >= 0)
        keys_for(codes[owned])
        cells = {c: rows for c in targets_ if len(rows := np.flatnonzero(plain[c] & owned))}
        res.cells_sealed += sum(map(len, cells.values()))
        return codes, cells

    def seal_columns(data: pa.Table, prepared: tuple[np.ndarray, dict[str, np.ndarray]] | None
                     ) -> BatchChanges:
        """The sealed cells of a batch, as ``prepare_columns`` decided them: CPU work with
        the keys already held (a forked process may do it)."""
        if prepared is None:
            return {}
        codes, cells = prepared
        for rows in cells.values():     # ciphers let go since prepare: held again
            if not held[codes[rows]].all():
                hold(np.unique(codes[rows][~held[codes[rows]]]))
        changes: BatchChanges = {}
        single = data.column(key[0]).combine_chunks() if len(key) == 1 else None
        for c, rows in cells.items():
            mask = np.zeros(data.num_rows, bool)
            mask[rows] = True
            # Cells sealed in the order their ciphers lie in memory (each key's AES state
            # is read from memory once, in sequence), then put back in row order.
            order = np.argsort(addr_of[codes[rows]])
            rows = rows[order]
            back = np.empty(len(order), np.int64)
            back[order] = np.arange(len(order))
            at = pa.array(rows)
            cell_codes = codes[rows]
            if single is not None:
                aads = associated_data_column(source, table, c, single.take(at))
            else:
                prefix = prefixes[c]
                aads = [prefix + row_key_text(list(r.values())).encode("utf-8", "surrogatepass")
                        for r in data.select(key).take(at).to_pylist()]
            values = data.column(c).combine_chunks().take(at)
            sealed = seal_encoded(aead_of[cell_codes].tolist(), kid_of[cell_codes].tolist(),
                                  encode_values(values), aads, as_text[c],
                                  key_id_lengths=klen_of[cell_codes])
            changes[c] = (mask, sealed.take(pa.array(back)))
            if c in bidx:
                assert keys is not None
                changes[bidx[c]] = (mask, pa.array(
                    [keys.blind_index(source, table, c, v) for v in values.to_pylist()],
                    pa.string()).take(pa.array(back)))
        return changes

    def report(done: int, changed: int) -> None:
        if progress:
            of = f"/{total}" if total is not None else ""
            progress(f"{source}.{table}: {done}{of} rows read, {changed} row(s) "
                     f"{'sealed' if apply else 'to seal'}")

    # A file is swapped in at the end: its new keys are committed meanwhile, in the
    # background, and the swap waits for them (a database commits page by page).
    deferred = keys.deferred_commits() if apply and keys is not None \
        and conn.kind in FILE_KINDS else nullcontext(None)
    try:
        with deferred as settle:
            columns = ColumnWise(prepare_columns, seal_columns) if apply and keys else None
            result = rewrite_table(conn, table, key, [*key, *need, *targets_, *bidx.values()],
                                   [*targets_, *bidx.values()], transform, apply, report,
                                   batch_transform=columns, before_swap=settle)
    except BaseException:
        if apply and conn.kind in FILE_KINDS:
            res.cells_sealed = 0    # the file was not swapped in: nothing of it is sealed
        raise
    res.rows = result.rows
    res.subjects = len(subjects)
    if result.skipped:      # their cells were counted as sealed when the page was made
        res.rows_changed_meanwhile = len(result.skipped)
        res.cells_sealed -= sum(1 for r in result.skipped for c in targets_
                                if r.get(c) is not None and not looks_sealed(r[c]))


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), object)
    out[:] = values
    return out


def _log(store: AuditStore, actor: str, action: str, target: str | None,
         details: dict[str, Any]) -> None:
    store.append_log(actor, action, target, details)


# -- authorised reads ---------------------------------------------------------------------

@dataclass
class ReadOutcome:
    """What one authorised read returned (rows hold plaintext: the caller's to protect)."""

    rows: list[dict[str, Any]]
    cells_decrypted: int
    cells_unreadable: int             # destroyed keys (erased subjects), or invalid
    cells_invalid: int = 0            # of those, envelopes altered or moved (not shredded)


ERASED = None   # what an unreadable (shredded) cell reads as


class Decryptor:
    """Authorised reads of encrypted cells. Every call is logged: who, why, where and
    how many cells; never a value."""

    def __init__(self, inventory: Inventory, store: AuditStore, keys: SubjectKeys,
                 policy: EncryptionPolicy | None = None):
        self.inv, self.store, self.keys = inventory, store, keys
        self.policy = policy or EncryptionPolicy()

    def row_key(self, pool: ConnectorPool, source: str, table: str) -> list[str]:
        """The column(s) whose values bind a row's ciphertexts."""
        return _row_key(self.inv, self.policy, pool, source, table)

    def open_rows(self, source: str, table: str, rows: Sequence[dict[str, Any]],
                  key: Sequence[str], actor: str, purpose: str,
                  request_id: str | None = None, log: bool = True) -> ReadOutcome:
        """``rows`` (as read from the source) with every envelope cell decrypted; a cell
        whose key was destroyed or that does not decrypt in its place reads as None."""
        out: list[dict[str, Any]] = []
        ok = bad = invalid = 0
        envs: list[tuple[int, str, Any]] = []
        for i, r in enumerate(rows):
            out.append(dict(r))
            for c, v in r.items():
                if v is not None and looks_sealed(v):
                    envs.append((i, c, v))
        parsed = []
        for i, c, v in envs:
            try:
                parsed.append((i, c, parse(v)))
            except EnvelopeError:
                out[i][c] = ERASED
                bad += 1
                invalid += 1
        ciphers = self.keys.ciphers({e.key_id for _, _, e in parsed})
        for i, c, env in parsed:
            a = ciphers[env.key_id]
            r = rows[i]
            rk = r[key[0]] if len(key) == 1 else [r[k] for k in key]
            if isinstance(a, KeyUnavailable):
                out[i][c] = ERASED
                bad += 1
                continue
            try:
                out[i][c] = open_cell(a, env, associated_data(source, table, c, rk))
                ok += 1
            except EnvelopeError:
                out[i][c] = ERASED
                bad += 1
                invalid += 1
        if log and (ok or bad):
            _log(self.store, actor, DECRYPT_ACTION, f"{source}.{table}",
                 {"purpose": _mask(purpose), "request": request_id, "rows": len(rows),
                  "columns": sorted({c for _, c, _ in envs}), "cells_decrypted": ok,
                  "cells_unreadable": bad, "cells_invalid": invalid})
        return ReadOutcome(out, ok, bad, invalid)

    def read(self, source: str, table: str, columns: Sequence[str] | None, actor: str,
             purpose: str, key_values: Sequence[Any] | None = None,
             request_id: str | None = None) -> ReadOutcome:
        """Rows of a table (all, or those whose row key is in ``key_values``), decrypted."""
        with ConnectorPool(self.inv) as pool:
            conn = pool.get(source)
            key = self.row_key(pool, source, table)
            cols = list(dict.fromkeys([*key, *(columns or conn.table_info(table).column_names)]))
            conn.check_columns(table, cols)
            if key_values is not None:
                if len(key) != 1:
                    raise EncryptionError(f"{source}.{table}: selecting by a composite row "
                                          "key is not supported; read all rows")
                rows = [{c: r[c] for c in cols}
                        for r in conn.find_rows(table, key[0], list(key_values))]
                # (Counted, not compared: "12" asked for an integer key finds 12.)
                missing = len(set(map(str, key_values))) - len({str(r[key[0]]) for r in rows})
                if missing > 0:
                    raise EncryptionError(
                        f"{source}.{table}: {missing} of the row keys asked for match no row "
                        f"({key[0]}); nothing was read")
            else:
                rows = [r for b in conn.stream_rows(table, cols) for r in b.to_pylist()]
        return self.open_rows(source, table, rows, key, actor, purpose, request_id)


def _mask(text: str | None) -> str | None:
    if text is None:
        return None
    from governance.masking import mask_free_text

    return mask_free_text(text)


# -- crypto-shredding ---------------------------------------------------------------------

@dataclass
class ShredOutcome:
    """Keys destroyed for a subject, and the independent check that they are gone."""

    subjects: list[str]
    keys_destroyed: list[str]
    verified: bool
    seconds: float                    # destroy + log (one transaction) + check, store opened


def shred_subjects(keys: SubjectKeys, subjects: Sequence[str], actor: str,
                   reason: str | None = None, request_id: str | None = None) -> ShredOutcome:
    """Destroy every data key of ``subjects`` (fingerprints from ``SubjectKeys.subject_ref``)
    and log it in one transaction, then check, with a fresh read of the store, that none of
    them can be unwrapped. The store is held open (one session) for the two."""
    started = time.perf_counter()
    with keys.store.session():
        destroyed = keys.shred(subjects, actor, reason, request_id)
        verified = verify_shredded(keys.store, subjects)
    took = time.perf_counter() - started
    return ShredOutcome(list(subjects), destroyed, verified, took)


def verify_shredded(store: AuditStore, subjects: Sequence[str]) -> bool:
    """True when no key of ``subjects`` is left wrapped in the store (so no ciphertext of
    theirs, wherever copied, can be decrypted)."""
    if not subjects:
        return True
    marks = ", ".join("?" * len(subjects))
    # (Filters on the subject alone, so that an index on it is used; the rest is counted.)
    rows = store.query(f"SELECT count(*) FILTER (WHERE wrapped IS NOT NULL OR state <> "  # noqa: S608
                       f"'destroyed') AS n FROM subject_keys WHERE subject IN ({marks})",
                       list(subjects))
    return rows[0]["n"] == 0


def shred_person_rows(inventory: Inventory, keys: SubjectKeys,
                      person_rows: Mapping[tuple[str, str], Sequence[dict[str, Any]]],
                      actor: str,
                      reason: str | None = None, request_id: str | None = None) -> ShredOutcome:
    """Crypto-shred the subjects of person rows (e.g. a resolution's owned rows of person
    tables): the request engine's erasure calls this."""
    subjects = []
    with ConnectorPool(inventory) as pool:
        for table, rows in person_rows.items():
            col = person_key_column(inventory, pool, table)
            for r in rows:
                kv = r.get(col) if "," not in col else [r.get(c) for c in col.split(",")]
                if kv is not None:
                    subjects.append(keys.subject_ref(table, kv))
    return shred_subjects(keys, sorted(set(subjects)), actor, reason, request_id)


# -- rotation ------------------------------------------------------------------------------

@dataclass
class RotationOutcome:
    """Keys rewrapped (KEK rotation) or rotated (data keys), with the rate."""

    keys: int
    seconds: float
    remaining: int = 0
    cells_resealed: int = 0

    @property
    def rate(self) -> float:
        """Keys per second."""
        return self.keys / self.seconds if self.seconds else 0.0


def rotate_kek(store: AuditStore, old: KeyStore, new: KeyStore, actor: str = "govkit",
               batch: int = 50_000, progress: Progress | None = None,
               limit: int | None = None) -> RotationOutcome:
    """Rewrap every data key wrapped under ``old`` with ``new``, ``batch`` keys per
    transaction (resumable: a rerun picks up the keys still under ``old``). No data is
    rewritten; each key row names its KEK, so readers holding both never fail meanwhile."""
    if old.kek_id == new.kek_id:
        raise EncryptionError("the new key-encryption key is the current one")
    started = time.perf_counter()
    done = 0
    total = store.query("SELECT count(*) AS n FROM subject_keys WHERE kek_id = ? AND "
                        "wrapped IS NOT NULL", [old.kek_id])[0]["n"]
    while limit is None or done < limit:
        size = batch if limit is None else min(batch, limit - done)
        # One store session per batch: other processes get the store between batches.
        with store.session():
            with store.connect() as conn:
                found = conn.execute("SELECT key_id, wrapped FROM subject_keys WHERE "
                                     "kek_id = ? AND wrapped IS NOT NULL LIMIT ?",
                                     [old.kek_id, size]).fetchall()
            if not found:
                break
            items = [(k, bytes(w)) for k, w in found]
            del found
            plain = old.unwrap_many(items)
            wrapped = new.wrap_many([(k, p) for (k, _), p in zip(items, plain, strict=True)])
            del plain
            table = pa.table({"key_id": [k for k, _ in items],
                              "old": pa.array([w for _, w in items], pa.binary()),
                              "new": pa.array(wrapped, pa.binary())})
            with store.transaction() as conn:
                conn.register("gk_rewrap", table)
                # Rows found by a join, updated by row id (an UPDATE ... FROM joining on
                # the key, the KEK and the old wrapped key is planned far slower). A key
                # changed since it was read (shredded, rewrapped) is left alone.
                changed = conn.execute(
                    "UPDATE subject_keys SET wrapped = u.new, kek_id = ?, rewrapped_at = ? "
                    "FROM (SELECT k.rowid AS rid, g.new FROM subject_keys k JOIN gk_rewrap g "
                    "ON k.key_id = g.key_id AND k.wrapped = g.old WHERE k.kek_id = ?) u "
                    "WHERE subject_keys.rowid = u.rid",
                    [new.kek_id, utcnow(), old.kek_id]).fetchall()[0][0]
                conn.unregister("gk_rewrap")
        done += int(changed)
        if progress:
            progress(f"rewrapped {done}/{total} data keys")
        if not changed:
            break    # every key read had changed meanwhile: what is left is reported
    seconds = time.perf_counter() - started
    remaining = store.query("SELECT count(*) AS n FROM subject_keys WHERE kek_id = ? AND "
                            "wrapped IS NOT NULL", [old.kek_id])[0]["n"]
    _log(store, actor, ROTATE_KEK_ACTION, None,
         {"from": old.kek_id, "to": new.kek_id, "keys": done, "remaining": remaining,
          "seconds": round(seconds, 3)})
    return RotationOutcome(done, seconds, remaining)


def rotate_data_keys(inventory: Inventory, store: AuditStore, keys: SubjectKeys,
                     policy: EncryptionPolicy, subjects: Sequence[str] | None = None,
                     actor: str = "govkit", progress: Progress | None = None) -> RotationOutcome:
    """Give ``subjects`` (None: every subject) a new data key, re-encrypt their cells in
    every policy column, then destroy the old keys. Resumable: keys marked ``retiring``
    by an interrupted run are finished first. A column that holds a cell under a retiring
    key after the pass (a failed table) keeps the old keys alive."""
    started = time.perf_counter()
    now = utcnow()
    with store.transaction() as conn:
        where = "state = 'active' AND subject <> ?"
        params: list[Any] = [INDEX_SUBJECT]
        if subjects is not None:
            if not subjects:
                return RotationOutcome(0, 0.0)
            where += f" AND subject IN ({', '.join('?' * len(subjects))})"
            params += list(subjects)
        chosen = conn.execute(f"SELECT subject, key_id, generation FROM subject_keys "  # noqa: S608
                              f"WHERE {where} AND subject NOT IN (SELECT subject FROM "
                              "subject_keys WHERE state = 'retiring')", params).fetchall()
        if chosen:
            conn.register("gk_rot", pa.table({"key_id": [c[1] for c in chosen]}))
            conn.execute("UPDATE subject_keys SET state = 'retiring' WHERE key_id IN "
                         "(SELECT key_id FROM gk_rot)")
            conn.unregister("gk_rot")
    if chosen:
        import os as _os

        new = [(s, "sk-" + _os.urandom(10).hex(), g + 1, _os.urandom(32)) for s, _, g in chosen]
        wrapped = keys.keystore.wrap_many([(kid, k) for _, kid, _, k in new])
        table = pa.table({"key_id": [n[1] for n in new], "subject": [n[0] for n in new],
                          "generation": pa.array([n[2] for n in new], pa.int32()),
                          "wrapped": pa.array(wrapped, pa.binary())})
        with store.transaction() as conn:
            conn.register("gk_newgen", table)
            conn.execute("INSERT INTO subject_keys SELECT key_id, subject, generation, 'active', "
                         "?, wrapped, ?, NULL, NULL FROM gk_newgen", [keys.keystore.kek_id, now])
            conn.unregister("gk_newgen")
    retiring = {r["key_id"]: r["subject"] for r in store.query(
        "SELECT key_id, subject FROM subject_keys WHERE state = 'retiring'")}
    if not retiring:
        return RotationOutcome(0, time.perf_counter() - started)
    resealed = 0
    failed = []
    found = policy_targets(inventory, store, policy)
    with ConnectorPool(inventory, writable=True) as pool:
        owners = OwnerIndex(inventory, pool)
        for (source, table), cols in _by_table(found).items():
            try:
                resealed += _reseal_table(inventory, policy, pool, owners, keys, source,
                                          table, cols, retiring, progress)
            except GovernanceError as e:
                if _never_sealed(pool, source, table, cols):
                    # A column encrypt refuses (a key, a view) holds no envelope: no cell
                    # under an old key is left there, so it does not keep the old keys.
                    continue
                failed.append(f"{source}.{table}: {str(e).splitlines()[0]}")
    if failed:
        raise EncryptionError("data-key rotation not finished (old keys kept; rerun to "
                              f"resume): {'; '.join(failed)}")
    with store.transaction() as conn:
        conn.register("gk_ret", pa.table({"key_id": list(retiring)}))
        conn.execute("UPDATE subject_keys SET wrapped = NULL, state = 'destroyed', "
                     "destroyed_at = ? WHERE key_id IN (SELECT key_id FROM gk_ret)", [utcnow()])
        conn.unregister("gk_ret")
        append_log_row(conn, actor, ROTATE_KEYS_ACTION, None,
                       {"keys_rotated": len(retiring), "cells_resealed": resealed,
                        "old_keys_destroyed": sorted(retiring)[:1000]})
    return RotationOutcome(len(retiring), time.perf_counter() - started, 0, resealed)


def _never_sealed(pool: ConnectorPool, source: str, table: str, cols: Sequence[Target]
                  ) -> bool:
    """Whether the columns of ``cols`` provably hold no envelope: a column whose type cannot
    hold one (a number), or text columns none of whose cells is one (False when that
    cannot be read, or a column is binary)."""
    try:
        conn = pool.get(source)
        texts = []
        for t in cols:
            try:
                kind = column_kind(conn, table, t.column)
            except SourceError:
                continue            # a number or a date: never sealed
            if kind != "text":
                return False
            texts.append(t.column)
        return not texts or sealed_cells(conn, table, texts) == 0
    except Exception:       # not provable here: the rotation keeps the old keys
        return False


def _reseal_table(inventory: Inventory, policy: EncryptionPolicy, pool: ConnectorPool,
                  owners: OwnerIndex, keys: SubjectKeys, source: str, table: str,
                  cols: Sequence[Target], retiring: dict[str, str],
                  progress: Progress | None) -> int:
    key, _, kinds = _check_table(inventory, policy, pool, owners, source, table, cols)
    conn = pool.get(source)
    targets_ = [t.column for t in cols]
    count = 0

    def transform(rows: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        nonlocal count
        out: list[dict[str, Any] | None] = [None] * len(rows)
        old_ids = set()
        parsed: dict[tuple[int, str], Any] = {}
        for i, r in enumerate(rows):
            for c in targets_:
                v = r.get(c)
                if v is not None and looks_sealed(v):
                    try:
                        env = parse(v)
                    except EnvelopeError:
                        continue
                    if env.key_id in retiring:
                        parsed[(i, c)] = env
                        old_ids.add(env.key_id)
        if not parsed:
            return out
        old = keys.ciphers(old_ids)
        active = keys.active_keys({retiring[k] for k in old_ids}, create=False)
        for (i, c), env in parsed.items():
            r = rows[i]
            rk = r[key[0]] if len(key) == 1 else [r[k] for k in key]
            aad = associated_data(source, table, c, rk)
            a = old[env.key_id]
            if isinstance(a, KeyUnavailable):
                continue
            value = open_cell(a, env, aad)
            new_id, new_aead = active[retiring[env.key_id]]
            ch = out[i] or {}
            ch[c] = seal_cell(new_aead, new_id, value, aad, text=kinds[c] == "text")
            out[i] = ch
            count += 1
        return out

    def report(done: int, changed: int) -> None:
        if progress:
            progress(f"{source}.{table}: {done} rows read, {changed} row(s) re-encrypted")

    rewrite_table(conn, table, key, key, targets_, transform, True, report)
    return count


def require_source(inventory: Inventory, name: str) -> None:
    """SourceError for an unknown source (one line)."""
    try:
        inventory.source(name)
    except GovernanceError as e:
        raise SourceError(str(e)) from None


# -- the request engine's hooks (governance/dsar/runner.py calls these) -------------------

def _any_envelope(tables: Mapping[tuple[str, str], Sequence[dict[str, Any]]]) -> bool:
    return any(looks_sealed(v) for rows in tables.values() for r in rows for v in r.values()
               if v is not None)


def decrypt_for_access(inventory: Inventory, store: AuditStore,
                       tables: Mapping[tuple[str, str], Sequence[dict[str, Any]]], actor: str,
                       request_id: str, policy: EncryptionPolicy | None = None
                       ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """An access request's rows (``package_rows``' mapping) with every envelope cell
    decrypted, one audit-log row per table; a shredded cell reads as None. Without any
    envelope the rows come back as they are and no key is needed."""
    out = {k: [dict(r) for r in rows] for k, rows in tables.items()}
    if not _any_envelope(tables):
        return out
    from governance.encryption.policy import load_policy

    policy = policy or load_policy(None, inventory)
    dec = Decryptor(inventory, store, subject_keys_for(policy, store), policy)
    with ConnectorPool(inventory) as pool:
        for (source, table), rows in tables.items():
            if not any(looks_sealed(v) for r in rows for v in r.values() if v is not None):
                continue
            key = dec.row_key(pool, source, table)
            out[(source, table)] = dec.open_rows(source, table, rows, key, actor,
                                                 "access request", request_id).rows
    return out


def shred_for_erasure(inventory: Inventory, store: AuditStore,
                      person_rows: Mapping[tuple[str, str], Sequence[dict[str, Any]]],
                      actor: str, request_id: str, policy: EncryptionPolicy | None = None
                      ) -> ShredOutcome | None:
    """An erasure's crypto-shredding: destroy the data keys of the subject's person rows
    (``resolution.owned`` restricted to person tables), so that their ciphertexts in copies
    and backups are unreadable too; None when the store holds no field-encryption key."""
    if not store.query("SELECT 1 AS x FROM subject_keys WHERE subject <> ? LIMIT 1",
                       [INDEX_SUBJECT]):
        return None
    from governance.encryption.policy import load_policy

    policy = policy or load_policy(None, inventory)
    keys = subject_keys_for(policy, store)
    return shred_person_rows(inventory, keys, person_rows, actor,
                             f"erasure request {request_id}", request_id)
