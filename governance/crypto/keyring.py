"""The master key and the data keys it wraps.

The master key never enters the audit store: it comes from ``GOVKIT_MASTER_KEY``
(base64 of 32 bytes) or from a key file (``GOVKIT_KEY_FILE``, default: the store's path
with ``.key`` appended, created with mode 0600 with the store; a key file others can read
or write is refused). The store records the
key's fingerprint (``master_key_fingerprint``, never the key): another key, or a missing
key file for a store that has one, is refused before anything is written. Data keys are random
AES-256 keys stored in the audit store's ``data_keys`` table wrapped under the master key.
Destroying a data key (``KeyRing.destroy``) makes everything sealed under it unreadable
for good: crypto-shredding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import uuid
from pathlib import Path
from typing import Any

from governance.audit_store import AuditStore
from governance.audit_store.store import (
    KEY_RECORDED_ACTION,
    append_log_row,
    get_meta,
    set_meta,
    utcnow,
)
from governance.crypto.aead import KEY_BYTES, DecryptionError, new_key, open_sealed, seal
from governance.errors import GovernanceError


class KeyMaterialError(GovernanceError):
    """A key is missing, destroyed or malformed, or is not the key of the store."""


FINGERPRINT_LABEL = b"govkit master-key fingerprint v1"


def master_key_fingerprint(key: bytes) -> str:
    """An identifier of a master key that reveals nothing of it (HMAC-SHA256 of a fixed
    label under the key): recorded in the store, so that another key is recognised."""
    return "mk1-" + hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]


def key_file_for(store: AuditStore) -> Path:
    """Where the master key of ``store`` is kept when no environment variable names it."""
    env = os.environ.get("GOVKIT_KEY_FILE")
    return Path(env) if env else store.path.with_name(store.path.name + ".key")


def _available_key(store: AuditStore) -> tuple[bytes, str] | None:
    env = os.environ.get("GOVKIT_MASTER_KEY")
    if env:
        return _decode(env, "GOVKIT_MASTER_KEY"), "GOVKIT_MASTER_KEY"
    path = key_file_for(store)
    if path.exists():
        _check_private(path)
        return _decode(path.read_text().strip(), str(path)), str(path)
    return None


def _check_private(path: Path) -> None:
    """KeyMaterialError when a key file can be read or written by anyone but its owner
    (a key others on the machine could copy is refused, not used)."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyMaterialError(
            f"master key file {path} is open to others (mode {mode:04o}): run chmod 600 "
            f"{path}, and consider the key exposed if others could read it "
            "(nothing was changed)")


def _create_key_file(path: Path) -> bytes:
    """A new master key in ``path`` (mode 0600); if another process created it first,
    that one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(new_key()).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)     # fails if it exists: never replaces a key
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _decode(path.read_text().strip(), str(path))


def load_master_key(store: AuditStore, create: bool = True) -> bytes:
    """The master key for ``store``: from GOVKIT_MASTER_KEY, else its key file.

    The key must have the fingerprint recorded in the store (KeyMaterialError otherwise;
    nothing is changed). A new key file is created only with ``create`` and only for a
    store that has no recorded key and no data keys; a store's first key is recorded.
    """
    recorded = store.meta("key_fingerprint")     # opens (or creates) the store first
    found = _available_key(store)
    if found is None:
        path = key_file_for(store)
        if recorded:
            raise KeyMaterialError(
                f"master key file {path} not found; audit store {store.path} is sealed under "
                f"the master key with fingerprint {recorded}: set GOVKIT_MASTER_KEY or "
                "GOVKIT_KEY_FILE to that key (nothing was changed)")
        if _wrapped_key(store) is not None:
            raise KeyMaterialError(
                f"master key file {path} not found; audit store {store.path} holds data keys "
                "wrapped under a master key: set GOVKIT_MASTER_KEY or GOVKIT_KEY_FILE to it "
                "(nothing was changed)")
        if not create:
            raise KeyMaterialError(f"master key file {path} not found (set GOVKIT_MASTER_KEY "
                                   "or GOVKIT_KEY_FILE)")
        found = _create_key_file(path), str(path)
    key, where = found
    _check_or_record(store, key, where, recorded)
    return key


def ensure_master_key(store: AuditStore) -> str:
    """For a store just created: its master key (the one given, else a new key file), with
    its fingerprint recorded; return the fingerprint."""
    return master_key_fingerprint(load_master_key(store, create=True))


def check_master_key(store: AuditStore) -> None:
    """KeyMaterialError when a master key is given (GOVKIT_MASTER_KEY or the key file) and
    is not the one whose fingerprint the store recorded. Writes nothing."""
    recorded = store.meta("key_fingerprint")
    found = _available_key(store) if recorded else None
    if found is not None and recorded:
        _mismatch(store, found[0], found[1], recorded)


def _mismatch(store: AuditStore, key: bytes, where: str, recorded: str) -> None:
    fp = master_key_fingerprint(key)
    if not hmac.compare_digest(fp, recorded):
        raise KeyMaterialError(
            f"{where}: this master key (fingerprint {fp}) is not the key of audit store "
            f"{store.path} (fingerprint {recorded}); nothing was changed")


def _wrapped_key(store: AuditStore) -> tuple[str, bytes] | None:
    rows = store.query("SELECT key_id, wrapped FROM data_keys WHERE wrapped IS NOT NULL "
                       "ORDER BY created_at LIMIT 1")
    return (rows[0]["key_id"], bytes(rows[0]["wrapped"])) if rows else None


def _check_or_record(store: AuditStore, key: bytes, where: str, recorded: str | None) -> None:
    """Refuse a key that is not the store's; record the first key used with a store."""
    if recorded:
        _mismatch(store, key, where, recorded)
        return
    wrapped = _wrapped_key(store)
    if wrapped is not None:
        try:
            open_sealed(key, wrapped[1], aad=wrapped[0].encode(), what=f"data key {wrapped[0]}")
        except DecryptionError:
            raise KeyMaterialError(
                f"{where}: this master key does not open the data keys of audit store "
                f"{store.path}; nothing was changed") from None
    fp = master_key_fingerprint(key)

    def record(conn: Any) -> None:
        current = get_meta(conn, "key_fingerprint")
        if current:
            if current != fp:
                raise KeyMaterialError(
                    f"{where}: this master key (fingerprint {fp}) is not the key of audit "
                    f"store {store.path} (fingerprint {current}); nothing was changed")
            return
        set_meta(conn, "key_fingerprint", fp)
        if not store.created_now:
            append_log_row(conn, "govkit", KEY_RECORDED_ACTION, None,
                           {"fingerprint": fp, "key_from": "GOVKIT_MASTER_KEY"
                            if where == "GOVKIT_MASTER_KEY" else "key file"})

    store.write(record)


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(f"{where}: master key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyMaterialError(f"{where}: master key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


class KeyRing:
    """Create, fetch and destroy data keys of one audit store."""

    def __init__(self, store: AuditStore, master_key: bytes | None = None):
        self.store = store
        if master_key is not None:
            _check_or_record(store, master_key, "the given master key",
                             store.meta("key_fingerprint"))
            self._master = master_key
        else:
            self._master = load_master_key(store)
        self._fingerprint_key = hashlib.sha256(b"govkit-fingerprint\x00" + self._master).digest()

    def fingerprint(self, text: str) -> str:
        """A keyed, non-reversible fingerprint of ``text`` (HMAC-SHA256 under a key derived
        from the master key)."""
        return hmac.new(self._fingerprint_key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def create(self, purpose: str) -> tuple[str, bytes]:
        """A new data key for ``purpose``: its id and the key itself."""
        key_id = f"key-{uuid.uuid4().hex}"
        key = new_key()
        wrapped = seal(self._master, key, aad=key_id.encode())
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO data_keys VALUES (?, ?, ?, ?, NULL)",
                         [key_id, purpose, wrapped, utcnow()])
        return key_id, key

    def get(self, key_id: str) -> bytes:
        """The data key ``key_id``; KeyMaterialError when it does not exist or was destroyed."""
        rows = self.store.query("SELECT wrapped, destroyed_at FROM data_keys WHERE key_id = ?",
                                [key_id])
        if not rows:
            raise KeyMaterialError(f"data key {key_id} not found in {self.store.path}")
        if rows[0]["destroyed_at"] is not None or rows[0]["wrapped"] is None:
            raise KeyMaterialError(f"data key {key_id} was destroyed on "
                            f"{rows[0]['destroyed_at']:%Y-%m-%d}")
        try:
            return open_sealed(self._master, bytes(rows[0]["wrapped"]), aad=key_id.encode(),
                               what=f"data key {key_id}")
        except DecryptionError as e:
            raise KeyMaterialError(f"{e}: is this the master key of {self.store.path}?") from None

    def destroy(self, key_id: str) -> bool:
        """Erase the wrapped key for good; True if it existed and was not yet destroyed."""
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT destroyed_at FROM data_keys WHERE key_id = ?",
                                [key_id]).fetchall()
            if not rows or rows[0][0] is not None:
                return False
            conn.execute("UPDATE data_keys SET wrapped = NULL, destroyed_at = ? "
                         "WHERE key_id = ?", [utcnow(), key_id])
        return True
