"""Authenticated encryption of small payloads with AES-256-GCM, and passphrase sealing.

A sealed payload is ``version byte || 12-byte nonce || ciphertext+tag``. The associated
data (e.g. the id of the request a payload belongs to) binds a ciphertext to its place,
so a payload copied onto another row does not decrypt.
"""

from __future__ import annotations

import base64
import json
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from governance.errors import GovernanceError

_VERSION = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32


class DecryptionError(GovernanceError):
    """A ciphertext did not decrypt: wrong key, wrong associated data, or corrupted."""


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, bound to ``aad``."""
    nonce = os.urandom(NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes = b"", what: str = "payload") -> bytes:
    """Decrypt what ``seal`` produced; DecryptionError if it was altered or the key is wrong."""
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != _VERSION:
        raise DecryptionError(f"{what}: not a govkit sealed payload (corrupt or truncated)")
    nonce, body = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise DecryptionError(f"{what}: authentication failed (wrong key or altered data)") \
            from None


def seal_json(key: bytes, value: object, aad: bytes = b"") -> bytes:
    """``seal`` of a JSON-serialisable value."""
    return seal(key, json.dumps(value, ensure_ascii=False, default=str).encode(), aad)


def open_json(key: bytes, sealed: bytes, aad: bytes = b"", what: str = "payload") -> object:
    """The value ``seal_json`` sealed."""
    return json.loads(open_sealed(key, sealed, aad, what))


# -- passphrase sealing (delivery of access exports) ------------------------------------

PASSPHRASE_MAGIC = b"GOVKIT-SEALED-1\n"
_SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}


def new_passphrase() -> str:
    """A random passphrase of 160 bits, written in groups for reading aloud or typing."""
    raw = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=").lower()
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def _derive(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    return Scrypt(salt=salt, length=KEY_BYTES, **params).derive(passphrase.encode())


def seal_with_passphrase(passphrase: str, plaintext: bytes) -> bytes:
    """``plaintext`` encrypted under a key derived from ``passphrase`` (scrypt, AES-GCM)."""
    salt = os.urandom(16)
    header = {"kdf": "scrypt", **_SCRYPT, "salt": base64.b64encode(salt).decode(),
              "cipher": "AES-256-GCM"}
    head = json.dumps(header, sort_keys=True).encode()
    key = _derive(passphrase, salt, _SCRYPT)
    return PASSPHRASE_MAGIC + head + b"\n" + seal(key, plaintext, aad=head)


def open_with_passphrase(passphrase: str, data: bytes, what: str = "file") -> bytes:
    """The plaintext of ``seal_with_passphrase``; DecryptionError on a wrong passphrase."""
    if not data.startswith(PASSPHRASE_MAGIC):
        raise DecryptionError(f"{what}: not a govkit encrypted export")
    head, sep, body = data[len(PASSPHRASE_MAGIC):].partition(b"\n")
    if not sep:
        raise DecryptionError(f"{what}: truncated header")
    try:
        header = json.loads(head)
        params = {k: int(header[k]) for k in ("n", "r", "p")}
        salt = base64.b64decode(header["salt"])
    except (ValueError, KeyError, TypeError):
        raise DecryptionError(f"{what}: corrupt header") from None
    return open_sealed(_derive(passphrase, salt, params), body, aad=head,
                       what=f"{what} (wrong passphrase or altered file)")
