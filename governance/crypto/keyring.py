"""The master key and the data keys it wraps.

The master key never enters the audit store: it comes from ``GOVKIT_MASTER_KEY``
(base64 of 32 bytes) or from a key file (``GOVKIT_KEY_FILE``, default: the store's path
with ``.key`` appended, created with mode 0600 on first use). Data keys are random
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
import uuid
from pathlib import Path

from governance.audit_store import AuditStore
from governance.audit_store.store import utcnow
from governance.crypto.aead import KEY_BYTES, DecryptionError, new_key, open_sealed, seal
from governance.errors import GovernanceError


class KeyMaterialError(GovernanceError):
    """A key is missing, destroyed or malformed."""


def key_file_for(store: AuditStore) -> Path:
    """Where the master key of ``store`` is kept when no environment variable names it."""
    env = os.environ.get("GOVKIT_KEY_FILE")
    return Path(env) if env else store.path.with_name(store.path.name + ".key")


def load_master_key(store: AuditStore, create: bool = True) -> bytes:
    """The master key for ``store``: from GOVKIT_MASTER_KEY, else its key file."""
    env = os.environ.get("GOVKIT_MASTER_KEY")
    if env:
        return _decode(env, "GOVKIT_MASTER_KEY")
    path = key_file_for(store)
    if path.exists():
        return _decode(path.read_text().strip(), str(path))
    if not create:
        raise KeyMaterialError(f"master key file {path} not found (set GOVKIT_MASTER_KEY or "
                        "GOVKIT_KEY_FILE)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(new_key()).decode() + "\n")
    return _decode(path.read_text().strip(), str(path))


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
        self._master = master_key if master_key is not None else load_master_key(store)
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
