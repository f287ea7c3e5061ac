"""Data keys of field encryption: one per data subject, wrapped by a key-encryption key.

Keys live in the audit store's ``subject_keys`` table (migration 5), wrapped by a
``KeyStore`` (local master key or HSM). A subject is named there only by a keyed
fingerprint of its person row (``subj-...``: HMAC under the store's index key), never by a
value. The index key is itself a wrapped row (``__index__``); it also derives the keys of
blind indexes. Destroying a subject's keys (``shred``) makes every envelope sealed under
them unreadable wherever a copy of it lies.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.audit_store import AuditStore
from governance.audit_store.store import append_log_row, utcnow
from governance.crypto.field import row_key_text
from governance.crypto.keystore import KeyStore, KeyStoreError
from governance.errors import GovernanceError

INDEX_SUBJECT = "__index__"
SHRED_ACTION = "encryption.subject_shredded"
CIPHERS_HELD = 250_000      # ciphers kept built at most (~2.4 KB each), here and per run


def ciphers_held() -> int:
    """How many ciphers a key store, and a run, keep built at most (``CIPHERS_HELD``)."""
    return CIPHERS_HELD


class KeyUnavailable(GovernanceError):
    """A data key was destroyed (the subject was erased) or never existed."""

    def __init__(self, key_id: str, reason: str):
        self.key_id, self.reason = key_id, reason
        super().__init__(f"data key {key_id}: {reason}")


class KeyConflict(GovernanceError):
    """Another run gave some subjects a data key while this one was creating theirs: the
    cells sealed here under the keys that were not stored must be discarded."""

    def __init__(self, count: int):
        self.count = count
        super().__init__(f"another run gave {count} of these subjects a data key at the same "
                         "time; the cells sealed under the keys made here were discarded "
                         "(run again)")


def holds_person_keys(store: AuditStore, live_only: bool = False) -> bool:
    """Whether the store holds a data key of any person (``live_only``: one not destroyed)."""
    live = "wrapped IS NOT NULL AND " if live_only else ""
    return bool(store.query(f"SELECT 1 AS x FROM subject_keys WHERE {live}subject <> ? "  # noqa: S608
                            "LIMIT 1", [INDEX_SUBJECT]))


def person_ref(person: tuple[str, str], key_value: Any) -> str:
    """The text that names one person row (``source.table`` and its key), before hashing."""
    return f"{person[0]}.{person[1]}\x00{row_key_text(key_value)}"


class SubjectKeys:
    """Create, fetch, rotate and destroy the data keys of one audit store.

    ``keystore`` wraps new keys; ``previous`` are key stores still accepted for keys wrapped
    before a KEK rotation finished (so no read fails during one).
    """

    def __init__(self, store: AuditStore, keystore: KeyStore,
                 previous: Sequence[KeyStore] = ()):
        self.store = store
        self.keystore = keystore
        self._by_kek = {k.kek_id: k for k in (*previous, keystore)}
        # Data keys this object unwrapped or made (key id -> key: 32 bytes each), and the
        # ciphers built from them (at most CIPHERS_HELD: a cipher's state is ~2.4 KB, a
        # million of them 2.4 GB).
        self._key: dict[str, bytes] = {}
        self._aead: dict[str, AESGCM] = {}
        self._gone: dict[str, str] = {}
        self._refs: dict[str, str] = {}
        self._index_key = self._load_index()
        # HMAC-SHA256 under the index key (RFC 2104) with its padded-key blocks absorbed
        # once: a fingerprint then hashes only the subject's text (tested equal to hmac).
        key = self._index_key if len(self._index_key) <= 64 \
            else hashlib.sha256(self._index_key).digest()
        block = key.ljust(64, b"\0")
        self._hmac_inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._hmac_outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self._bidx: dict[str, bytes] = {}
        # Inside ``deferred_commits``: the commits under way, and the keys they hold (by
        # subject) until each has landed.
        self._commits: list[tuple[Future[set[str]], dict[str, tuple[str, bytes]]]] | None \
            = None
        self._writer: ThreadPoolExecutor | None = None
        self._pending: dict[str, tuple[str, bytes]] = {}

    # -- the index key ------------------------------------------------------------------
    def _load_index(self) -> bytes:
        rows = self.store.query("SELECT key_id, kek_id, wrapped FROM subject_keys "
                                "WHERE subject = ? AND state = 'active'", [INDEX_SUBJECT])
        if rows:
            r = rows[0]
            return self._unwrap(r["key_id"], r["kek_id"], bytes(r["wrapped"]))
        key_id = "ix-" + os.urandom(10).hex()
        key = os.urandom(32)
        wrapped = self.keystore.wrap(key_id, key)
        with self.store.transaction() as conn:
            found = conn.execute("SELECT key_id, kek_id, wrapped FROM subject_keys WHERE "
                                 "subject = ? AND state = 'active'", [INDEX_SUBJECT]).fetchall()
            if not found:
                conn.execute("INSERT INTO subject_keys VALUES (?, ?, 1, 'active', ?, ?, ?, "
                             "NULL, NULL)", [key_id, INDEX_SUBJECT, self.keystore.kek_id,
                                             wrapped, utcnow()])
                return key
        return self._unwrap(found[0][0], found[0][1], bytes(found[0][2]))

    def _unwrap(self, key_id: str, kek_id: str, wrapped: bytes) -> bytes:
        ks = self._by_kek.get(kek_id)
        if ks is None:
            raise KeyStoreError(
                f"data keys of {self.store.path} are wrapped under {kek_id}, which is not the "
                f"configured key-encryption key ({self.keystore.kek_id}): wrong master key or "
                "HSM key? (nothing was changed)")
        return ks.unwrap(key_id, wrapped)

    def _fingerprint(self, ref: str) -> str:
        inner = self._hmac_inner.copy()
        inner.update(ref.encode())
        outer = self._hmac_outer.copy()
        outer.update(inner.digest())
        return "subj-" + outer.hexdigest()[:32]

    def subject_ref(self, person: tuple[str, str], key_value: Any) -> str:
        """The keyed fingerprint naming the subject of a person row (never reversible)."""
        ref = person_ref(person, key_value)
        found = self._refs.get(ref)
        if found is None:
            found = self._fingerprint(ref)
            if len(self._refs) > 2_000_000:
                self._refs.clear()
            self._refs[ref] = found
        return found

    def subject_refs(self, owners: Iterable[tuple[tuple[str, str], Any]]) -> list[str]:
        """``subject_ref`` of each (person table, key value)."""
        refs, fingerprint = self._refs, self._fingerprint
        out = []
        for person, value in owners:
            kind = type(value)
            # row_key_text of a text or a whole number is the value as text.
            text = value if kind is str else str(value) if kind is int \
                else row_key_text(value)
            ref = f"{person[0]}.{person[1]}\x00{text}"
            found = refs.get(ref)
            if found is None:
                found = refs[ref] = fingerprint(ref)
            out.append(found)
        if len(refs) > 2_000_000:
            refs.clear()
        return out

    def blind_index(self, source: str, table: str, column: str, value: Any) -> str | None:
        """The keyed blind index of ``value`` for one column (letter case and surrounding
        blanks ignored), or None for None: equal values give equal indexes."""
        if value is None:
            return None
        name = f"{source}.{table}.{column}"
        key = self._bidx.get(name)
        if key is None:
            key = hmac.new(self._index_key, b"blind-index\x00" + name.encode(),
                           hashlib.sha256).digest()
            self._bidx[name] = key
        text = row_key_text(value).strip().casefold()
        return "bx1-" + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]

    # -- data keys ----------------------------------------------------------------------
    def active_keys(self, subjects: Iterable[str], create: bool = True
                    ) -> dict[str, tuple[str, AESGCM]]:
        """The current data key (id, cipher) of each subject; missing ones are created
        (wrapped and committed before any cell is sealed under them) when ``create``."""
        wanted = sorted(set(subjects))
        if not wanted:
            return {}
        out = self._fetch_active(wanted)
        missing = [s for s in wanted if s not in out]
        if missing and self._pending:
            out.update((s, self._pending[s]) for s in missing if s in self._pending)
            missing = [s for s in missing if s not in out]
        if missing and create:
            out.update(self._create(missing))
        return {s: (kid, self._cipher_of(kid)) for s, (kid, _) in out.items()}

    def held_ciphers(self, key_ids: Sequence[str]) -> list[AESGCM]:
        """The ciphers of keys this object holds (from ``active_key_ids``), built when not
        kept; at most CIPHERS_HELD are kept (a cipher's state is ~2.4 KB)."""
        out: list[Any] = list(map(self._aead.get, key_ids))
        if None in out:
            for i, a in enumerate(out):
                if a is None:
                    out[i] = self._cipher_of(key_ids[i])
        return out

    def _cipher_of(self, key_id: str) -> AESGCM:
        """The cipher of a key this object holds (kept, up to CIPHERS_HELD of them)."""
        a = self._aead.get(key_id)
        if a is None:
            if len(self._aead) >= CIPHERS_HELD:
                self._aead.clear()
            a = self._aead[key_id] = AESGCM(self._key[key_id])
        return a

    def _create(self, missing: list[str]) -> dict[str, tuple[str, bytes]]:
        """New data keys for subjects that had none (a subject given a key meanwhile, by
        another process, keeps that one; inside ``deferred_commits`` that is a KeyConflict
        when the commits are settled)."""
        ids, material = os.urandom(10 * len(missing)).hex(), os.urandom(32 * len(missing))
        items = [("sk-" + ids[20 * i:20 * i + 20], material[32 * i:32 * i + 32])
                 for i in range(len(missing))]
        new = dict(zip(missing, items, strict=True))
        del material
        wrapped = self.keystore.wrap_many(items)
        # Each wrapped key must unwrap to its key before it is stored and used: a key
        # that could not be recovered would lose every cell sealed under it.
        back = self.keystore.unwrap_many([(kid, w) for (kid, _), w in
                                          zip(items, wrapped, strict=True)])
        if any(b != key for (_, key), b in zip(items, back, strict=True)):
            raise KeyStoreError(f"{self.keystore.kek_id}: a wrapped data key does not "
                                "unwrap to itself; nothing was stored")
        del back
        table = pa.table({
            "key_id": [kid for kid, _ in items],
            "subject": list(new),
            "wrapped": pa.array(wrapped, pa.binary()),
        })
        del items
        if self._commits is not None and self._writer is not None:
            # Committed in the background; used now (settle() before anything sealed
            # under them is made durable).
            self._pending.update(new)
            self._commits.append((self._writer.submit(self._store_new, table), new))
            self._key.update(new.values())
            return new
        stored = self._store_new(table)
        out: dict[str, tuple[str, bytes]] = {}
        for subject in stored:
            out[subject] = new[subject]
            self._key[new[subject][0]] = new[subject][1]
        rest = [s for s in missing if s not in stored]
        if rest:
            out.update(self._fetch_active(rest))
        return out

    def _store_new(self, table: pa.Table) -> set[str]:
        """Insert new wrapped keys in one commit; the subjects whose key was stored (one
        given a key meanwhile keeps that one)."""
        now = utcnow()
        with self.store.transaction() as conn:
            conn.register("gk_new_keys", table)
            made = conn.execute(
                "INSERT INTO subject_keys SELECT n.key_id, n.subject, 1, 'active', ?, "
                "n.wrapped, ?, NULL, NULL FROM gk_new_keys n WHERE NOT EXISTS (SELECT 1 "
                "FROM subject_keys k WHERE k.subject = n.subject AND k.state <> "
                "'destroyed') RETURNING subject", [self.keystore.kek_id, now]).fetchall()
            conn.unregister("gk_new_keys")
        return {r[0] for r in made}

    @contextmanager
    def deferred_commits(self) -> Iterator[Callable[[], None]]:
        """Inside the block, new data keys are committed in the background while cells are
        sealed under them. The function given waits for those commits; call it (and let
        it return) before anything sealed under them is made durable. It raises
        KeyConflict when another run gave one of these subjects a key meanwhile. Leaving
        the block waits for every commit and forgets the keys that were not stored."""
        if self._commits is not None:
            yield self.settle
            return
        self._commits = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gk-keys")
        try:
            yield self.settle
        except BaseException:
            try:
                self._settle(raise_conflict=False)
            except BaseException:  # the error already on its way is the one to see
                pass
            raise
        else:
            self._settle(raise_conflict=True)
        finally:
            self._writer.shutdown(wait=True)
            self._commits, self._writer = None, None
            self._pending.clear()

    def settle(self) -> None:
        """Wait for the keys committed in the background (see ``deferred_commits``)."""
        self._settle(raise_conflict=True)

    def _settle(self, raise_conflict: bool) -> None:
        commits, self._commits = self._commits or [], (None if self._commits is None else [])
        lost, error = 0, None
        for future, made in commits:
            try:
                stored = future.result()
            except BaseException as e:   # nothing of that commit was stored
                stored, error = set(), error or e
            for subject, (kid, _) in made.items():
                self._pending.pop(subject, None)
                if subject not in stored:
                    self._key.pop(kid, None)
                    self._aead.pop(kid, None)
                    lost += 1
        if error is not None:
            raise error
        if lost and raise_conflict:
            raise KeyConflict(lost)

    def active_key_ids(self, subjects: Sequence[str], create: bool = True) -> list[str]:
        """The id of the current data key of each of distinct ``subjects`` (made as
        ``active_keys`` makes them), aligned with them; ``held_ciphers`` gives their
        ciphers. KeyUnavailable names a subject left without a key."""
        if not subjects:
            return []
        wanted = pa.array(list(subjects), pa.string())
        found = self._active_rows(wanted)
        at = pc.index_in(wanted, value_set=found.column("subject").combine_chunks())
        ids: list[Any] = found.column("key_id").take(at).to_pylist()
        if not all(k in self._key for k in ids):
            unwrap = [i for i, k in enumerate(ids) if k is not None and k not in self._key]
            if unwrap:
                rows = found.take(at.take(pa.array(unwrap)))
                self._unwrap_into(list(zip(rows.column("key_id").to_pylist(),
                                           rows.column("kek_id").to_pylist(),
                                           rows.column("wrapped").to_pylist(), strict=True)))
            missing = [i for i, k in enumerate(ids) if k is None]
            made = {subjects[i]: self._pending[subjects[i]] for i in missing
                    if subjects[i] in self._pending}
            todo = [subjects[i] for i in missing if subjects[i] not in made]
            if todo and create:
                made.update(self._create(todo))
            for i in missing:
                if subjects[i] not in made:
                    raise KeyUnavailable(subjects[i], "the subject has no active data key "
                                         "(a data-key rotation in progress?)")
                ids[i] = made[subjects[i]][0]
        return ids

    def _active_rows(self, subjects: pa.Array | list[str]) -> pa.Table:
        """The active key rows (subject, key id, KEK id, wrapped key) of ``subjects``, read
        in one join."""
        with self.store.connect() as conn:
            conn.register("gk_subjects", pa.table({"subject": subjects}))
            found = conn.sql(
                "SELECT k.subject, k.key_id, k.kek_id, k.wrapped FROM subject_keys k "
                "JOIN gk_subjects s USING (subject) WHERE k.state = 'active'").to_arrow_table()
            conn.unregister("gk_subjects")
        return found

    def _fetch_active(self, subjects: list[str]) -> dict[str, tuple[str, bytes]]:
        found = self._active_rows(subjects)
        subj, ids, keks = (found.column(c).to_pylist() for c in ("subject", "key_id", "kek_id"))
        cached = self._key
        todo = [i for i, k in enumerate(ids) if k not in cached]
        if todo:
            wrapped = found.column("wrapped").take(pa.array(todo)).to_pylist()
            self._unwrap_into([(ids[i], keks[i], w) for i, w in zip(todo, wrapped,
                                                                      strict=True)])
        return {s: (k, cached[k]) for s, k in zip(subj, ids, strict=True)}

    def _unwrap_into(self, rows: list[tuple[str, str, bytes]]) -> None:
        """Unwrap (key id, KEK id, wrapped) rows into the key cache, per KEK in one call."""
        by_kek: dict[str, list[tuple[str, bytes]]] = {}
        for key_id, kek_id, wrapped in rows:
            by_kek.setdefault(kek_id, []).append((key_id, bytes(wrapped)))
        for kek_id, items in by_kek.items():
            ks = self._by_kek.get(kek_id)
            if ks is None:
                self._unwrap(items[0][0], kek_id, items[0][1])   # the one-line error
                continue
            self._key.update(zip((key_id for key_id, _ in items), ks.unwrap_many(items),
                                 strict=True))

    def _cipher(self, key_id: str, kek_id: str, wrapped: bytes) -> AESGCM:
        if key_id not in self._key:
            self._key[key_id] = self._unwrap(key_id, kek_id, wrapped)
        return self._cipher_of(key_id)

    def ciphers(self, key_ids: Iterable[str]) -> dict[str, AESGCM | KeyUnavailable]:
        """The cipher of each data key, or why it is unavailable (destroyed, unknown)."""
        ids = set(key_ids)
        out: dict[str, AESGCM | KeyUnavailable] = {}
        todo = []
        for k in ids:
            if k in self._key:
                out[k] = self._cipher_of(k)
            elif k in self._gone:
                out[k] = KeyUnavailable(k, self._gone[k])
            else:
                todo.append(k)
        if todo:
            with self.store.connect(read_only=False) as conn:
                conn.register("gk_ids", pa.table({"key_id": todo}))
                rows = conn.execute(
                    "SELECT k.key_id, k.kek_id, k.wrapped, k.destroyed_at FROM subject_keys k "
                    "JOIN gk_ids i USING (key_id) WHERE k.subject <> ?",
                    [INDEX_SUBJECT]).fetchall()
                conn.unregister("gk_ids")
            seen = set()
            for key_id, kek_id, wrapped, destroyed in rows:
                seen.add(key_id)
                if wrapped is None:
                    when = f" on {destroyed:%Y-%m-%d}" if destroyed else ""
                    self._gone[key_id] = f"destroyed{when} (crypto-shredded)"
                    out[key_id] = KeyUnavailable(key_id, self._gone[key_id])
                else:
                    out[key_id] = self._cipher(key_id, kek_id, bytes(wrapped))
            for k in todo:
                if k not in seen:
                    self._gone[k] = "not found in the audit store"
                    out[k] = KeyUnavailable(k, self._gone[k])
        return out

    def cipher(self, key_id: str) -> AESGCM:
        """The cipher of data key ``key_id``; KeyUnavailable when destroyed or unknown."""
        found = self.ciphers([key_id])[key_id]
        if isinstance(found, KeyUnavailable):
            raise found
        return found

    # -- crypto-shredding ---------------------------------------------------------------
    def shred(self, subjects: Iterable[str], actor: str, reason: str | None = None,
              request_id: str | None = None) -> list[str]:
        """Destroy every data key (all generations) of ``subjects``; return their ids.
        Logged with the subjects' fingerprints and key ids, never a value."""
        wanted = sorted(set(subjects) - {INDEX_SUBJECT})
        if not wanted:
            return []
        now = utcnow()
        with self.store.transaction() as conn:
            placeholders = ", ".join("?" * len(wanted))
            # Found by subject, destroyed by key id (the primary key's index): an UPDATE
            # filtering on the subject would read the whole table.
            # (Filters on the indexed column alone, so that DuckDB uses the index.)
            found = [r[0] for r in conn.execute(
                f"SELECT key_id, wrapped IS NOT NULL FROM subject_keys WHERE subject IN "  # noqa: S608
                f"({placeholders})", wanted).fetchall() if r[1]]
            ids = []
            if found:
                ids = sorted(r[0] for r in conn.execute(
                    "UPDATE subject_keys SET wrapped = NULL, state = 'destroyed', "  # noqa: S608
                    f"destroyed_at = ? WHERE key_id IN ({', '.join('?' * len(found))}) "
                    "RETURNING key_id", [now, *found]).fetchall())
            append_log_row(conn, actor, SHRED_ACTION, request_id,
                           {"subjects": wanted, "keys_destroyed": ids,
                            "reason": _masked(reason)})
        for k in ids:
            self._key.pop(k, None)
            self._aead.pop(k, None)
            self._gone[k] = "destroyed (crypto-shredded)"
        return ids

    def subject_state(self, subject: str) -> list[dict[str, Any]]:
        """The key rows of one subject (ids, generations, states, dates; no key material)."""
        return self.store.query(
            "SELECT key_id, generation, state, kek_id, created_at, destroyed_at FROM "
            "subject_keys WHERE subject = ? ORDER BY generation", [subject])


def _masked(text: str | None) -> str | None:
    if text is None:
        return None
    from governance.masking import mask_free_text

    return mask_free_text(text)
