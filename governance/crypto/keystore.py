"""Key-encryption keys (KEKs): what wraps the data keys of field encryption.

A ``KeyStore`` wraps and unwraps 32-byte data keys under a key-encryption key it holds;
each wrapped key is bound to its key id, so a wrapped key copied onto another key's row
does not unwrap. Two implementations:

- ``LocalKeyStore``: the KEK is a 32-byte key in this process (by default the audit
  store's master key: ``GOVKIT_MASTER_KEY`` or the 0600 key file, as
  ``governance.crypto.keyring`` loads it); AES-256-GCM.
- ``Pkcs11KeyStore``: the KEK is an AES-256 key inside a PKCS#11 token (an HSM; SoftHSM2 in
  tests), created non-extractable and sensitive. Wrapping and unwrapping run inside the
  token (CKM_AES_GCM); the KEK itself never leaves it.

A cloud KMS or Vault transit adapter implements the same four members: ``kek_id`` (a
stable name of the KEK version, stored beside every wrapped key), ``wrap(key_id, key)``,
``unwrap(key_id, wrapped)`` (both bound to ``key_id`` as associated data / context, raising
``KeyStoreError`` on failure) and ``close()``. Data keys are unwrapped once per process
and kept in memory; the KEK is only asked for keys not yet unwrapped.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from abc import ABC, abstractmethod
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.errors import GovernanceError

KEY_BYTES = 32
NONCE_BYTES = 12
_LOCAL = b"\x01"
_PKCS11 = b"\x02"


class KeyStoreError(GovernanceError):
    """A key-encryption key is missing or wrong, an HSM cannot be opened (module, token,
    PIN), or a wrapped key does not unwrap."""


class KeyStore(ABC):
    """Wraps data keys under a key-encryption key that it keeps."""

    @property
    @abstractmethod
    def kek_id(self) -> str:
        """A stable name of the KEK (never the key): stored with every key it wraps."""

    @abstractmethod
    def wrap(self, key_id: str, key: bytes) -> bytes:
        """``key`` encrypted under the KEK, bound to ``key_id``."""

    @abstractmethod
    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """The key ``wrap`` wrapped; KeyStoreError if it was altered or is another key's."""

    def wrap_many(self, items: list[tuple[str, bytes]]) -> list[bytes]:
        """``wrap`` of each (key id, key)."""
        return [self.wrap(k, v) for k, v in items]

    def unwrap_many(self, items: list[tuple[str, bytes]]) -> list[bytes]:
        """``unwrap`` of each (key id, wrapped key)."""
        return [self.unwrap(k, v) for k, v in items]

    def close(self) -> None:  # noqa: B027 - stores without a session need nothing
        """Release any session."""

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalKeyStore(KeyStore):
    """A KEK held in this process: AES-256-GCM with a random nonce per wrapped key."""

    def __init__(self, kek: bytes, name: str = "local"):
        if len(kek) != KEY_BYTES:
            raise KeyStoreError(f"{name}: a key-encryption key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(kek)
        fp = hmac.new(kek, b"govkit field-encryption KEK v1", hashlib.sha256).hexdigest()[:24]
        self._id = f"local:{fp}"

    @property
    def kek_id(self) -> str:
        return self._id

    def wrap(self, key_id: str, key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _LOCAL + nonce + self._aead.encrypt(nonce, key, key_id.encode())

    def wrap_many(self, items: list[tuple[str, bytes]]) -> list[bytes]:
        """``wrap`` of each (key id, key): one random nonce each, drawn in one call."""
        nonces = os.urandom(NONCE_BYTES * len(items))
        return [_LOCAL + nonces[i:i + NONCE_BYTES]
                + self._aead.encrypt(nonces[i:i + NONCE_BYTES], key, key_id.encode())
                for i, (key_id, key) in zip(range(0, len(nonces), NONCE_BYTES), items,
                                            strict=True)]

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        if wrapped[:1] != _LOCAL or len(wrapped) < 1 + NONCE_BYTES + 16:
            raise KeyStoreError(f"data key {key_id}: not wrapped by a local key store")
        try:
            return self._aead.decrypt(wrapped[1:1 + NONCE_BYTES], wrapped[1 + NONCE_BYTES:],
                                      key_id.encode())
        except InvalidTag:
            raise KeyStoreError(f"data key {key_id} does not unwrap under {self._id} "
                                "(wrong key-encryption key, or altered)") from None


DEFAULT_PKCS11_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                          "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


class Pkcs11KeyStore(KeyStore):
    """A KEK inside a PKCS#11 token: an AES-256 secret key, sensitive and not extractable.

    ``module`` is the token's PKCS#11 library, ``token_label`` its label and ``pin`` the
    user PIN; ``key_label`` names the KEK. With ``create`` a missing KEK is generated inside
    the token. Wrapping is CKM_AES_GCM inside the token with the key id as associated data.
    """

    def __init__(self, module: str, token_label: str, pin: str, key_label: str,
                 create: bool = False):
        try:
            import pkcs11
            from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
        except ImportError:
            raise KeyStoreError("the PKCS#11 key store needs python-pkcs11 "
                                "(pip install python-pkcs11)") from None
        self._pkcs11 = pkcs11
        self.token_label, self.key_label = token_label, key_label
        try:
            lib = pkcs11.lib(module)
        except (RuntimeError, OSError, pkcs11.PKCS11Error) as e:
            raise KeyStoreError(f"PKCS#11 module {module} cannot be loaded "
                                f"({type(e).__name__}); nothing was changed") from None
        try:
            token = lib.get_token(token_label=token_label)
        except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned, pkcs11.PKCS11Error):
            raise KeyStoreError(f"PKCS#11 token {token_label!r} not found in {module}; "
                                "nothing was changed") from None
        try:
            self._session: Any = token.open(user_pin=pin, rw=True)
        except pkcs11.UserAlreadyLoggedIn:
            # This process is logged in to the token already (another key store on it, as
            # a KEK rotation within one token has): a session of its own shares that login.
            self._session = token.open(rw=True)
        except pkcs11.PinIncorrect:
            raise KeyStoreError(f"PKCS#11 token {token_label!r}: wrong PIN; nothing was "
                                "changed") from None
        except (pkcs11.PinLenRange, pkcs11.ArgumentsBad, pkcs11.PKCS11Error) as e:
            raise KeyStoreError(f"PKCS#11 token {token_label!r}: cannot log in "
                                f"({type(e).__name__}); nothing was changed") from None
        try:
            self._key: Any = self._session.get_key(object_class=ObjectClass.SECRET_KEY,
                                                   key_type=KeyType.AES, label=key_label)
        except pkcs11.NoSuchKey:
            if not create:
                self._session.close()
                raise KeyStoreError(f"PKCS#11 token {token_label!r} has no AES key labelled "
                                    f"{key_label!r}; nothing was changed") from None
            self._key = self._session.generate_key(
                KeyType.AES, 256, label=key_label, store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                          Attribute.TOKEN: True, Attribute.PRIVATE: True})
        except pkcs11.MultipleObjectsReturned:
            self._session.close()
            raise KeyStoreError(f"PKCS#11 token {token_label!r} has several keys labelled "
                                f"{key_label!r}") from None
        self._id = f"pkcs11:{token_label}/{key_label}"

    @property
    def kek_id(self) -> str:
        return self._id

    def extractable(self) -> bool:
        """Whether the token would let the KEK out (it must not)."""
        a = self._pkcs11.Attribute
        return bool(self._key[a.EXTRACTABLE]) or not bool(self._key[a.SENSITIVE])

    def wrap(self, key_id: str, key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        p = self._pkcs11
        try:
            body = self._key.encrypt(key, mechanism=p.Mechanism.AES_GCM,
                                     mechanism_param=p.GCMParams(nonce, key_id.encode(), 128))
        except p.PKCS11Error as e:
            raise KeyStoreError(f"data key {key_id}: the HSM did not wrap it "
                                f"({type(e).__name__})") from None
        return _PKCS11 + nonce + bytes(body)

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        if wrapped[:1] != _PKCS11 or len(wrapped) < 1 + NONCE_BYTES + 16:
            raise KeyStoreError(f"data key {key_id}: not wrapped by a PKCS#11 key store")
        p = self._pkcs11
        try:
            return bytes(self._key.decrypt(
                wrapped[1 + NONCE_BYTES:], mechanism=p.Mechanism.AES_GCM,
                mechanism_param=p.GCMParams(wrapped[1:1 + NONCE_BYTES], key_id.encode(), 128)))
        except p.PKCS11Error:
            raise KeyStoreError(f"data key {key_id} does not unwrap under {self._id} "
                                "(wrong KEK, or altered)") from None

    def close(self) -> None:
        session: Any = getattr(self, "_session", None)
        self._session = None
        if session is not None:
            session.close()


def find_pkcs11_module() -> str | None:
    """The SoftHSM2 module, where Debian installs it (``GOVKIT_PKCS11_MODULE`` first)."""
    env = os.environ.get("GOVKIT_PKCS11_MODULE")
    if env:
        return env
    return next((m for m in DEFAULT_PKCS11_MODULES if os.path.exists(m)), None)
