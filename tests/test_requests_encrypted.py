"""Requests on encrypted columns: an access export holds the decrypted values, an erasure
destroys the subject's data keys so that a copy of the database taken before can no longer
be read for them, while other people's cells still decrypt."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from governance.audit_store import AuditStore
from governance.dsar import run_request
from governance.dsar.export import open_export
from governance.encryption import Decryptor, SubjectKeys, encrypt, keystore_for, load_policy
from governance.inventory import load_inventory
from governance.scan import run_scan
from tests.request_worker import cleared_request


def _request(store: AuditStore, rtype: str, identity: str) -> str:
    return cleared_request(store, rtype, identity if "=" in identity else f"email={identity}")


def test_access_decrypts_and_erasure_shreds_keys_even_for_a_copy(fresh_demo: Any,
                                                                 tmp_path: Path) -> None:
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(fresh_demo.root / "audit.duckdb", create=True)
    run_scan(inv, store)
    db = sqlite3.connect(fresh_demo.app_db)
    plain = {uid: (rid, card) for uid, rid, card in db.execute(
        "SELECT user_id, resident_id, bank_card FROM user_kyc ORDER BY user_id")}
    (a, a_email), (b, _) = db.execute(
        "SELECT u.id, u.email FROM users u JOIN user_kyc k ON k.user_id = u.id "
        "ORDER BY u.id LIMIT 2").fetchall()
    policy = load_policy(None, inv)
    keys = SubjectKeys(store, keystore_for(policy, store))
    assert encrypt(inv, store, keys, policy, apply=True).ok
    sealed = db.execute("SELECT resident_id FROM user_kyc WHERE user_id = ?", [a]).fetchone()
    assert sealed[0].startswith("gk1:")
    db.close()
    backup = tmp_path / "app-before-erasure.db"
    shutil.copy2(fresh_demo.app_db, backup)

    access = run_request(inv, store, _request(store, "access", a_email), "dpo")
    files = open_export(access.export_path, access.passphrase)
    kyc = files["data/app_db/user_kyc.json"]
    kyc = kyc if isinstance(kyc, list) else json.loads(kyc)
    assert [(r["resident_id"], r["bank_card"]) for r in kyc] == [plain[a]]

    out = run_request(inv, store, _request(store, "erasure", a_email), "dpo",
                      confirm=lambda steps: True)
    assert out.status == "completed", out.remaining
    assert out.request.outcome["crypto_shredded_keys"] == 1
    # The copy taken before the erasure: A's cells no longer decrypt, B's still do.
    with sqlite3.connect(backup) as c:
        c.row_factory = sqlite3.Row
        rows = [dict(r) for r in c.execute("SELECT * FROM user_kyc WHERE user_id IN (?, ?) "
                                           "ORDER BY user_id", [a, b])]
    fresh = Decryptor(inv, store, SubjectKeys(store, keystore_for(policy, store)), policy)
    opened = fresh.open_rows("app_db", "user_kyc", rows, ["user_id"], "dpo", "check").rows
    by_user = {r["user_id"]: (r["resident_id"], r["bank_card"]) for r in opened}
    assert by_user[a] == (None, None)
    assert by_user[b] == plain[b]


def test_a_subject_is_found_by_the_blind_index_of_an_encrypted_email(fresh_demo: Any) -> None:
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.execute("ALTER TABLE legacy_newsletter_signups ADD COLUMN email_bidx TEXT")
        signup, email = c.execute("SELECT signup_id, email_address FROM "
                                  "legacy_newsletter_signups ORDER BY signup_id "
                                  "LIMIT 1").fetchone()
    fresh_demo.inventory.write_text(fresh_demo.inventory.read_text().replace(
        "      - name: orders\n",
        "      - name: legacy_newsletter_signups\n        subject_key: signup_id\n"
        "        columns: {email_address: {category: contact.email}}\n"
        "      - name: orders\n", 1))
    (fresh_demo.root / "encryption.yaml").write_text(
        "version: 1\nrequire: []\ncolumns:\n  - {column: "
        "app_db.legacy_newsletter_signups.email_address, blind_index: email_bidx}\n")
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(fresh_demo.root / "audit.duckdb", create=True)
    run_scan(inv, store)
    policy = load_policy(None, inv)
    assert encrypt(inv, store, SubjectKeys(store, keystore_for(policy, store)), policy,
                   apply=True).ok
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert c.execute("SELECT count(*) FROM legacy_newsletter_signups WHERE "
                         "email_address = ?", [email]).fetchone()[0] == 0   # sealed
    out = run_request(inv, store, _request(store, "erasure", email.upper()), "dpo",
                      confirm=lambda steps: True)
    assert out.status == "completed", out.remaining
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert c.execute("SELECT count(*) FROM legacy_newsletter_signups WHERE "
                         "signup_id = ?", [signup]).fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM legacy_newsletter_signups").fetchone()[0] > 0


def test_encrypted_free_text_is_masked_in_an_access_export_as_clear_text_is(
        fresh_demo: Any) -> None:
    """Found by a helper on classicmodels: a comment naming someone else's phone and e-mail
    was masked in the export while in clear, and exported as it was once the column was
    encrypted (the masking ran before the envelope was opened)."""
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(fresh_demo.root / "audit.duckdb", create=True)
    db = sqlite3.connect(fresh_demo.app_db)
    uid, email = db.execute("SELECT u.id, u.email FROM users u JOIN support_tickets t ON "
                            "t.user_id = u.id ORDER BY u.id LIMIT 1").fetchone()
    other = "smith.third.party@example.org"
    db.execute("UPDATE support_tickets SET notes = ? WHERE user_id = ?",
               (f"Call Mr Smith on +44 20 7946 0958 or mail {other}", uid))
    db.commit()
    db.close()
    (fresh_demo.root / "encryption.yaml").write_text(
        "version: 1\ncolumns:\n  - {column: app_db.support_tickets.notes}\n")
    policy = load_policy(fresh_demo.root / "encryption.yaml", inv)
    out = encrypt(inv, store, SubjectKeys(store, keystore_for(policy, store)), policy,
                  apply=True)
    assert next(t for t in out.tables if t.table == "support_tickets").cells_sealed > 0
    access = run_request(inv, store, _request(store, "access", email), "dpo")
    files = open_export(access.export_path, access.passphrase)
    tickets = files["data/app_db/support_tickets.json"]
    tickets = tickets if isinstance(tickets, list) else json.loads(tickets)
    notes = [t["notes"] for t in tickets if t["notes"] and "Smith" in t["notes"]]
    assert notes and all(other not in n and "7946 0958" not in n for n in notes), notes
    assert all("<EMAIL_ADDRESS>" in n and not n.startswith("gk1:") for n in notes)


def _names_encrypted(demo: Any) -> tuple[Any, AuditStore, Any, SubjectKeys, int, str]:
    """The demo with its users' full names encrypted (their marketing contacts keep theirs
    in clear), scanned; a user who also has a marketing contact, and their e-mail."""
    (demo.root / "encryption.yaml").write_text(
        "version: 1\nrequire: []\ncolumns:\n  - {column: app_db.users.full_name}\n")
    inv = load_inventory(demo.inventory)
    store = AuditStore(demo.root / "audit.duckdb", create=True)
    run_scan(inv, store)
    policy = load_policy(None, inv)
    keys = SubjectKeys(store, keystore_for(policy, store))
    assert encrypt(inv, store, keys, policy, apply=True).ok
    contacts = {r["email"] for r in _csv_rows(demo)}
    with sqlite3.connect(demo.app_db) as c:
        uid, email = next((u, e) for u, e in c.execute("SELECT id, email FROM users ORDER BY id")
                          if e in contacts)
        assert c.execute("SELECT full_name FROM users WHERE id = ?", [uid]
                         ).fetchone()[0].startswith("gk1:")
    return inv, store, policy, keys, uid, email


def _csv_rows(demo: Any) -> list[dict[str, Any]]:
    import csv

    [path] = sorted((demo.root / "marketing").glob("*.csv"))
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_an_encrypted_name_is_not_another_persons_name(fresh_demo: Any) -> None:
    """Found by a helper on Oracle's CO (names encrypted in two sources): a person whose
    name was sealed in one table and in clear (or sealed under another key) in another was
    "two people" (the envelopes were compared as names), and no identity could serve the
    request. A sealed cell says nothing about who a row is."""
    inv, store, _, _, uid, email = _names_encrypted(fresh_demo)
    from governance.dsar import plan_request
    from governance.dsar.approval import person_rows_shown

    rid = _request(store, "access", email)
    shown = person_rows_shown(plan_request(inv, store, rid)[0])
    users = next(line for line in shown if line.startswith("app_db.users: "))
    assert "(encrypted)" in users and "gk1" not in users and "*" in users
    out = run_request(inv, store, rid, "dpo")
    assert out.status == "completed"
    files = open_export(out.export_path, out.passphrase)
    users = files["data/app_db/users.json"]
    assert [r["id"] for r in users] == [uid] and not users[0]["full_name"].startswith("gk1:")
    assert [r["email"] for r in files["data/marketing_export/contacts.json"]] == [email]


def test_rotating_the_subjects_key_after_approval_leaves_the_approved_plan_theirs(
        fresh_demo: Any) -> None:
    """Found by a helper: `crypto rotate-keys` between an erasure's approval and its run
    re-encrypted the person's name, so the run said the e-mail "may belong to someone
    else now" and the request could not be approved again."""
    from governance.encryption import rotate_data_keys

    inv, store, policy, keys, uid, email = _names_encrypted(fresh_demo)
    rid = _request(store, "erasure", email)
    with sqlite3.connect(fresh_demo.app_db) as c:
        before = c.execute("SELECT full_name FROM users WHERE id = ?", [uid]).fetchone()[0]
    subject = keys.subject_ref(("app_db", "users"), uid)
    assert rotate_data_keys(inv, store, keys, policy, [subject], "dpo").cells_resealed >= 1
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert c.execute("SELECT full_name FROM users WHERE id = ?", [uid]).fetchone()[0] \
            != before
    out = run_request(inv, store, rid, "dpo", confirm=lambda steps: True)
    assert out.status == "completed", out.remaining
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert c.execute("SELECT count(*) FROM users WHERE id = ?", [uid]).fetchone()[0] == 0
