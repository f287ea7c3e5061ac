"""Encryption: AES-GCM sealing, the master key, and data keys that can be destroyed."""

from governance.crypto.aead import open_sealed, seal
from governance.crypto.keyring import KeyRing, load_master_key

__all__ = ["KeyRing", "load_master_key", "open_sealed", "seal"]
