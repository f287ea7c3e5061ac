"""Field-level encryption of personal data: policy, per-subject data keys, encrypt/decrypt,
crypto-shredding, rotation and the encryption audit (README: "Field-level encryption")."""

from governance.encryption.audit import ColumnStatus, encryption_status
from governance.encryption.keys import KeyUnavailable, SubjectKeys
from governance.encryption.policy import EncryptionPolicy, load_policy
from governance.encryption.runner import (
    Decryptor,
    encrypt,
    keystore_for,
    rotate_data_keys,
    rotate_kek,
    shred_person_rows,
    shred_subjects,
    subject_keys_for,
)

__all__ = ["ColumnStatus", "Decryptor", "EncryptionPolicy", "KeyUnavailable", "SubjectKeys",
           "encrypt", "encryption_status", "keystore_for", "load_policy", "rotate_data_keys",
           "rotate_kek", "shred_person_rows", "shred_subjects", "subject_keys_for"]
