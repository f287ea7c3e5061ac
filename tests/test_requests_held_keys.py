"""A legal hold keeps a subject's field-encryption keys: an erasure that a table hold
partly stops does not crypto-shred, so the held ciphertext stays readable; without the
hold the same erasure destroys the key."""

from __future__ import annotations

import sqlite3
from typing import Any

from governance.audit_store import AuditStore
from governance.dsar import LegalHolds, run_request
from governance.encryption import Decryptor, SubjectKeys, encrypt, keystore_for, load_policy
from governance.inventory import load_inventory
from governance.scan import run_scan
from tests.request_worker import cleared_request


def test_a_table_hold_keeps_the_subject_key_and_its_ciphertext_readable(fresh_demo: Any
                                                                        ) -> None:
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(fresh_demo.root / "audit.duckdb", create=True)
    run_scan(inv, store)
    with sqlite3.connect(fresh_demo.app_db) as db:
        (a, a_email), (b, b_email) = db.execute(
            "SELECT u.id, u.email FROM users u JOIN user_kyc k ON k.user_id = u.id "
            "ORDER BY u.id LIMIT 2").fetchall()
        plain = {uid: (rid, card) for uid, rid, card in db.execute(
            "SELECT user_id, resident_id, bank_card FROM user_kyc WHERE user_id IN (?, ?)",
            [a, b])}
    policy = load_policy(None, inv)
    keys = SubjectKeys(store, keystore_for(policy, store))
    assert encrypt(inv, store, keys, policy, apply=True).ok

    def readable(uid: int) -> tuple[Any, Any]:
        with sqlite3.connect(fresh_demo.app_db) as c:
            c.row_factory = sqlite3.Row
            rows = [dict(r) for r in c.execute("SELECT * FROM user_kyc WHERE user_id = ?",
                                               [uid])]
        fresh = Decryptor(inv, store, SubjectKeys(store, keystore_for(policy, store)), policy)
        [row] = fresh.open_rows("app_db", "user_kyc", rows, ["user_id"], "dpo",
                                "check").rows
        return row["resident_id"], row["bank_card"]

    LegalHolds(store).place_on_table("app_db.user_kyc", "tax audit 2026", "dpo", inv)
    held = run_request(inv, store, cleared_request(store, "erasure", f"email={a_email}"),
                       "dpo", confirm=lambda steps: True)
    assert held.status == "completed", held.remaining
    assert "app_db.user_kyc" in held.held
    assert held.request.outcome["crypto_shredded_keys"] == 0
    assert "field-encryption keys" in held.kept
    assert readable(a) == plain[a]          # the held row still decrypts

    # The same erasure of another subject without the hold destroys their key.
    hold = LegalHolds(store).active()[0]
    LegalHolds(store).release(hold.hold_id, "dpo")
    done = run_request(inv, store, cleared_request(store, "erasure", f"email={b_email}"),
                       "dpo", confirm=lambda steps: True)
    assert done.status == "completed", done.remaining
    assert done.request.outcome["crypto_shredded_keys"] == 1
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert c.execute("SELECT count(*) FROM user_kyc WHERE user_id = ?", [b]).fetchone() \
            == (0,)
    assert readable(a) == plain[a]          # A's key, kept under the hold, is untouched
