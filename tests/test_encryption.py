"""Field-level encryption (issue 15): policy, encrypt/decrypt on SQLite, DuckDB, CSV,
Parquet and PostgreSQL, tampering and moved ciphertexts, crypto-shredding (also of a file
copy taken before), rotation, crash and resume, the encryption audit, and no plaintext or
key material in the store or the log. Checks read the sources with their own drivers."""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from governance.audit_store import AuditStore
from governance.cli import main
from governance.crypto.field import EnvelopeError, associated_data, open_cell, parse
from governance.crypto.keystore import LocalKeyStore
from governance.encryption import (
    Decryptor,
    SubjectKeys,
    encrypt,
    encryption_status,
    keystore_for,
    load_policy,
    rotate_data_keys,
    rotate_kek,
    shred_person_rows,
)
from governance.encryption import writers as writers_mod
from governance.encryption.policy import EncryptionPolicy
from governance.errors import ConfigError, GovernanceError
from governance.inventory import load_inventory


def _kyc(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT user_id, resident_id, bank_card FROM user_kyc "
                         "ORDER BY user_id").fetchall()


def _setup(demo: Any, tmp_path: Path, policy_text: str | None = None
           ) -> tuple[Any, AuditStore, EncryptionPolicy, SubjectKeys]:
    inv = load_inventory(demo.inventory)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    path = None
    if policy_text is not None:
        path = demo.root / "encryption.yaml"
        path.write_text(policy_text)
    policy = load_policy(path, inv)
    return inv, store, policy, SubjectKeys(store, keystore_for(policy, store))


def test_policy_defaults_cover_sensitive_categories_and_errors_name_file_line_field(
        fresh_demo: Any, tmp_path: Path) -> None:
    inv = load_inventory(fresh_demo.inventory)
    pol = load_policy(None, inv)
    for cat in ("identity.national_id", "financial.card", "financial.bank_account", "health",
                "biometric", "location.precise", "identity.passport"):
        assert cat in pol.require
    bad = fresh_demo.root / "encryption.yaml"
    bad.write_text("version: 1\nrequire: [identity.national_id]\ncolumns:\n"
                   "  - {column: app_db.nosuch.col}\n")
    with pytest.raises(ConfigError) as e:
        load_policy(bad, inv)
    assert str(e.value).startswith(f"{bad}:4: columns[0].column:")
    bad.write_text("version: 1\nrequire: [identity.nationalid]\n")
    with pytest.raises(ConfigError) as e:
        load_policy(bad, inv)
    assert f"{bad}:2: require" in str(e.value) and "unknown data category" in str(e.value)


def test_sqlite_encrypt_decrypt_tamper_move_shred_audit(fresh_demo: Any, tmp_path: Path
                                                       ) -> None:
    inv, store, policy, keys = _setup(fresh_demo, tmp_path)
    before = _kyc(fresh_demo.app_db)
    assert len(before) >= 3
    # The audit flags the required columns while they hold plaintext.
    status = {s.column: s for s in encryption_status(inv, store, policy)}
    assert status["resident_id"].status == "plaintext"
    assert status["resident_id"].plaintext_cells == len(before)
    # A dry run changes nothing.
    digest = hashlib.sha256(fresh_demo.app_db.read_bytes()).hexdigest()
    dry = encrypt(inv, store, None, policy, apply=False)
    assert dry.tables[0].cells_sealed == 2 * len(before)
    assert hashlib.sha256(fresh_demo.app_db.read_bytes()).hexdigest() == digest

    out = encrypt(inv, store, keys, policy, apply=True)
    assert out.ok and out.tables[0].cells_sealed == 2 * len(before)
    after = _kyc(fresh_demo.app_db)
    plain = {v for r in before for v in r[1:]}
    for _uid, rid, card in after:
        assert rid.startswith("gk1:sk-") and card.startswith("gk1:sk-")
        assert rid not in plain and card not in plain
        # The two cells of a row are under one key: the row's owner's.
        assert parse(rid).key_id == parse(card).key_id
    assert len({parse(r[1]).key_id for r in after}) == len(after)  # a key per subject
    # Twice: nothing encrypted twice.
    again = encrypt(inv, store, keys, policy, apply=True)
    assert again.tables[0].cells_sealed == 0 and again.tables[0].cells_already == 2 * len(after)
    assert _kyc(fresh_demo.app_db) == after
    # Decrypted back identically.
    got = Decryptor(inv, store, keys, policy).read("app_db", "user_kyc", None, "tester",
                                                   "test read")
    assert sorted((r["user_id"], r["resident_id"], r["bank_card"]) for r in got.rows) == before
    # The audit is satisfied, also when decrypting every envelope in place.
    assert all(s.ok for s in encryption_status(inv, store, policy, keys))

    # Moving a ciphertext to another row, and altering one, are detected.
    (a, a_rid, _), (b, _, _) = after[0], after[1]
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.execute("UPDATE user_kyc SET resident_id = ? WHERE user_id = ?", (a_rid, b))
    env = parse(a_rid)
    with pytest.raises(EnvelopeError):
        open_cell(keys.cipher(env.key_id), env,
                  associated_data("app_db", "user_kyc", "resident_id", b))
    with pytest.raises(EnvelopeError):  # another column of the same row
        open_cell(keys.cipher(env.key_id), env,
                  associated_data("app_db", "user_kyc", "bank_card", a))
    flipped = a_rid[:-3] + ("A" if a_rid[-3] != "A" else "B") + a_rid[-2:]
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.execute("UPDATE user_kyc SET bank_card = ? WHERE user_id = ?", (flipped, a))
    found = {s.column: s for s in encryption_status(inv, store, policy, keys)}
    assert found["resident_id"].status == "invalid" and found["resident_id"].invalid_cells == 1
    assert found["bank_card"].status == "invalid" and found["bank_card"].invalid_cells == 1
    rows = store.query("SELECT status FROM encryption_checks ORDER BY checked_at DESC LIMIT 2")
    assert {r["status"] for r in rows} == {"invalid"}


def test_shredded_subject_unreadable_in_sources_and_in_a_copy_taken_before(
        fresh_demo: Any, tmp_path: Path) -> None:
    policy_text = ("version: 1\nrequire: [identity.national_id, financial.bank_account]\n"
                   "sources:\n  event_log: {require: [network.ip]}\n"
                   "row_keys:\n  event_log.events: event_id\n")
    inv, store, policy, keys = _setup(fresh_demo, tmp_path, policy_text)
    events = sorted(fresh_demo.events_dir.glob("*.parquet"))[0]
    plain = {r["event_id"]: r for r in pq.read_table(events).to_pylist()}
    out = encrypt(inv, store, keys, policy, apply=True)
    assert out.ok, [t.describe() for t in out.tables]
    sealed = pq.read_table(events)
    assert sealed.schema == pq.read_table(events).schema
    rows = sealed.to_pylist()
    assert all(r["ip_address"].startswith("gk1:") for r in rows)
    # Every other column is unchanged.
    for r in rows:
        p = plain[r["event_id"]]
        assert {k: v for k, v in r.items() if k != "ip_address"} == \
               {k: v for k, v in p.items() if k != "ip_address"}
    backup = tmp_path / "events-backup.parquet"
    shutil.copy2(events, backup)
    kyc_db = tmp_path / "app-backup.db"
    shutil.copy2(fresh_demo.app_db, kyc_db)

    # An events row's IP is under its user's key (owner found across sources).
    victim = rows[0]["user_id"]
    other = next(r["user_id"] for r in rows if r["user_id"] != victim)
    outcome = shred_person_rows(inv, keys, {("app_db", "users"): [{"id": victim}]},
                                "tester", "erasure test", "dsar-test")
    assert outcome.verified and outcome.keys_destroyed
    # A fresh key ring (another process) cannot read the victim's cells of the old copy.
    fresh = SubjectKeys(store, keystore_for(policy, store))
    dec = Decryptor(inv, store, fresh, policy)
    copy_rows = pq.read_table(backup).to_pylist()
    res = dec.open_rows("event_log", "events", copy_rows, ["event_id"], "tester", "check")
    by_user: dict[Any, list[Any]] = {}
    for r, orig in zip(res.rows, copy_rows, strict=True):
        by_user.setdefault(r["user_id"], []).append((r["ip_address"], orig["event_id"]))
    assert all(ip is None for ip, _ in by_user[victim])
    assert all(ip == plain[eid]["ip_address"] for ip, eid in by_user[other])
    # The same in the copy of the SQLite file (if the victim had KYC rows).
    with sqlite3.connect(kyc_db) as c:
        copy_kyc = c.execute("SELECT user_id, resident_id FROM user_kyc").fetchall()
    for uid, rid in copy_kyc:
        env = parse(rid)
        if uid == victim:
            with pytest.raises(GovernanceError):
                fresh.cipher(env.key_id)
        else:
            assert open_cell(fresh.cipher(env.key_id), env, associated_data(
                "app_db", "user_kyc", "resident_id", uid)) is not None
    # The log records it: fingerprints and key ids, no value.
    entry = [e for e in store.log_entries() if e.action == "encryption.subject_shredded"][-1]
    assert entry.details["keys_destroyed"] == outcome.keys_destroyed
    assert entry.details["subjects"] == [keys.subject_ref(("app_db", "users"), victim)]
    assert all(len(s) == 37 and s.startswith("subj-") for s in entry.details["subjects"])
    # The audit counts shredded cells as expected, not as failures.
    ip = next(s for s in encryption_status(inv, store, policy) if s.column == "ip_address")
    assert ip.ok and ip.shredded_cells == len(by_user[victim])


def test_a_store_backup_taken_before_a_shred_decrypts_until_the_kek_is_rotated_and_destroyed(
        fresh_demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a helper: a backup of the audit store taken before a shred still holds the
    subject's wrapped key (the help claimed every copy and backup unreadable). The README's
    remedy, checked here: a KEK of its own, rotated after the shred and then destroyed,
    leaves such a backup unable to unwrap anything, while the live store reads the others."""
    monkeypatch.setenv("GOVKIT_FIELD_KEK", base64.b64encode(os.urandom(32)).decode())
    policy_text = ("version: 1\nrequire: [identity.national_id, financial.bank_account]\n"
                   "key_store: {kind: local, key_env: GOVKIT_FIELD_KEK}\n")
    inv, store, policy, keys = _setup(fresh_demo, tmp_path, policy_text)
    assert encrypt(inv, store, keys, policy, apply=True).ok
    kyc = [(uid, parse(rid)) for uid, rid, _ in _kyc(fresh_demo.app_db)]
    victim, other = kyc[0], next(k for k in kyc if k[0] != kyc[0][0])
    backup = tmp_path / "store-backup.duckdb"
    with store.connect() as conn:
        conn.execute("CHECKPOINT")
    shutil.copy2(store.path, backup)
    shutil.copy2(store.path.with_name(store.path.name + ".key"),
                 backup.with_name(backup.name + ".key"))
    assert shred_person_rows(inv, keys, {("app_db", "users"): [{"id": victim[0]}]},
                             "tester", "erasure").verified
    old = keystore_for(policy, store)
    with pytest.raises(GovernanceError):
        SubjectKeys(store, old).cipher(victim[1].key_id)
    # The limit: the old store and the KEK still open the victim's cell.
    aad = associated_data("app_db", "user_kyc", "resident_id", victim[0])
    assert open_cell(SubjectKeys(AuditStore(backup), old).cipher(victim[1].key_id), victim[1],
                     aad) is not None
    # The remedy: rotate to a new KEK, then the old one is destroyed (no longer given).
    new = LocalKeyStore(os.urandom(32), "new KEK")
    assert rotate_kek(store, old, new, "tester").remaining == 0
    with pytest.raises(GovernanceError):
        SubjectKeys(AuditStore(backup), new)     # the backup's keys need the old KEK
    live = SubjectKeys(store, new)
    assert open_cell(live.cipher(other[1].key_id), other[1], associated_data(
        "app_db", "user_kyc", "resident_id", other[0])) is not None
    with pytest.raises(GovernanceError):
        live.cipher(victim[1].key_id)


def test_crypto_shred_help_and_output_name_what_a_store_backup_keeps(
        fresh_demo: Any, tmp_path: Path) -> None:
    text = CliRunner().invoke(main, ["crypto", "shred", "--help"]).output
    assert "backup of the audit store taken before still holds the keys" in " ".join(text.split())
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    args = ["-i", str(fresh_demo.inventory), "--store", str(store_path)]
    assert CliRunner().invoke(main, ["encrypt", *args, "--apply"]).exit_code == 0
    uid = _kyc(fresh_demo.app_db)[0][0]
    out = CliRunner().invoke(main, ["crypto", "shred", *args, "--person", f"app_db.users={uid}",
                                    "--reason", "erasure", "--yes"])
    assert out.exit_code == 0, out.output
    assert "no key left" in out.output and "backup of this audit store taken before still " \
        "holds these keys" in out.output


def test_request_engine_hooks_decrypt_for_access_and_shred_for_erasure(
        fresh_demo: Any, tmp_path: Path) -> None:
    from governance.encryption.runner import decrypt_for_access, shred_for_erasure

    inv, store, policy, keys = _setup(fresh_demo, tmp_path)
    assert shred_for_erasure(inv, store, {("app_db", "users"): [{"id": 1}]}, "t", "r-0") is None
    before = _kyc(fresh_demo.app_db)
    encrypt(inv, store, keys, policy, apply=True)
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.row_factory = sqlite3.Row
        rows = [dict(r) for r in c.execute("SELECT * FROM user_kyc ORDER BY user_id")]
    got = decrypt_for_access(inv, store, {("app_db", "user_kyc"): rows}, "t", "dsar-1")
    assert [(r["user_id"], r["resident_id"], r["bank_card"])
            for r in got[("app_db", "user_kyc")]] == before
    victim = before[0][0]
    out = shred_for_erasure(inv, store, {("app_db", "users"): [{"id": victim}]}, "t", "dsar-2")
    assert out is not None and out.verified and len(out.keys_destroyed) == 1
    got = decrypt_for_access(inv, store, {("app_db", "user_kyc"): rows}, "t", "dsar-3")
    assert got[("app_db", "user_kyc")][0]["resident_id"] is None
    assert got[("app_db", "user_kyc")][1]["resident_id"] == before[1][1]


def test_csv_rewrite_keeps_other_fields_and_round_trips(fresh_demo: Any, tmp_path: Path
                                                       ) -> None:
    policy_text = ("version: 1\nrequire: []\ncolumns:\n"
                   "  - {column: marketing_export.contacts.last_name}\n")
    inv, store, policy, keys = _setup(fresh_demo, tmp_path, policy_text)
    with fresh_demo.marketing_csv.open(newline="") as f:
        before = list(csv.reader(f))
    assert encrypt(inv, store, keys, policy, apply=True).ok
    with fresh_demo.marketing_csv.open(newline="") as f:
        after = list(csv.reader(f))
    assert after[0] == before[0] and len(after) == len(before)
    at = before[0].index("last_name")
    for b, a in zip(before[1:], after[1:], strict=True):
        assert a[:at] + a[at + 1:] == b[:at] + b[at + 1:]
        assert a[at].startswith("gk1:") and a[at] != b[at]
    got = Decryptor(inv, store, keys, policy).read("marketing_export", "contacts", None,
                                                   "tester", "check")
    assert sorted((r["email"], r["last_name"]) for r in got.rows) == \
        sorted((b[0], b[at]) for b in before[1:])


def test_crash_midway_leaves_plaintext_or_valid_ciphertext_and_resumes(
        fresh_demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv, store, policy, keys = _setup(fresh_demo, tmp_path)
    before = _kyc(fresh_demo.app_db)
    monkeypatch.setattr(writers_mod, "PAGE_ROWS", 2)
    calls = {"n": 0}

    def crash(message: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as a kill between two pages would

    with pytest.raises(KeyboardInterrupt):
        encrypt(inv, store, keys, policy, apply=True, progress=crash)
    mid = _kyc(fresh_demo.app_db)
    orig = {r[0]: r for r in before}
    sealed = 0
    for uid, rid, card in mid:
        for col, v in (("resident_id", rid), ("bank_card", card)):
            if v.startswith("gk1:"):
                env = parse(v)
                assert open_cell(keys.cipher(env.key_id), env, associated_data(
                    "app_db", "user_kyc", col, uid)) == orig[uid][1 if col == "resident_id"
                                                                  else 2]
                sealed += 1
            else:
                assert v == orig[uid][1 if col == "resident_id" else 2]
    assert 0 < sealed < 2 * len(before)
    out = encrypt(inv, store, keys, policy, apply=True)
    assert out.tables[0].cells_sealed == 2 * len(before) - sealed
    assert all(r[1].startswith("gk1:") and r[2].startswith("gk1:")
               for r in _kyc(fresh_demo.app_db))


def test_the_cli_reads_while_a_kek_rotation_is_half_done(fresh_demo: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """Found by a helper on classicmodels: ``rotate-master`` killed midway left every read
    failing, with the old key and with the new (the CLI could not hold both). With the new
    KEK under ``also_unwrap_with`` in the policy, ``govkit decrypt`` reads every cell
    meanwhile, and after the rotation the keys swap places."""
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    runner = CliRunner()
    args = ["-i", str(fresh_demo.inventory), "--store", str(store_path)]
    assert runner.invoke(main, ["encrypt", *args, "--apply"]).exit_code == 0
    before = _kyc(fresh_demo.app_db)
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(store_path)
    policy = load_policy(None, inv)
    new_kek = os.urandom(32)
    monkeypatch.setenv("GK_NEW_KEK", base64.b64encode(new_kek).decode())
    part = rotate_kek(store, keystore_for(policy, store), LocalKeyStore(new_kek, "GK_NEW_KEK"),
                      "tester", batch=2, limit=2)          # a rotation cut short
    assert part.keys == 2 and part.remaining > 0

    def read(policy_text: str | None) -> Any:
        extra = []
        if policy_text is not None:
            (tmp_path / "enc.yaml").write_text(policy_text)
            extra = ["--policy", str(tmp_path / "enc.yaml")]
        return runner.invoke(main, ["decrypt", *args, *extra, "app_db", "user_kyc", "--reason",
                                    "check", "--out", str(tmp_path / f"o{os.urandom(3).hex()}")])

    assert read(None).exit_code == 2                       # the old key alone: refused
    during = read("version: 1\nalso_unwrap_with: [{kind: local, key_env: GK_NEW_KEK}]\n")
    assert during.exit_code == 0 and during.output.startswith(
        f"{len(before)} row(s), {2 * len(before)} cell(s) decrypted, 0 unreadable"), \
        during.output
    rest = rotate_kek(store, keystore_for(policy, store), LocalKeyStore(new_kek, "GK_NEW_KEK"),
                      "tester")
    assert rest.remaining == 0
    after = read("version: 1\nkey_store: {kind: local, key_env: GK_NEW_KEK}\n")
    assert after.exit_code == 0 and "0 unreadable" in after.output, after.output


def test_a_data_key_rotation_finishes_past_a_column_encrypt_refuses(fresh_demo: Any,
                                                                   tmp_path: Path) -> None:
    """Found by a helper on classicmodels: a policy column that encrypt refuses (it is the
    owner's key: payments.checknumber there, orders.user_id here) made every rotate-keys
    end "not finished", the old keys kept for good. Such a column holds no envelope, so
    the rotation finishes; one holding envelopes would still keep the old keys."""
    inv, store, _, keys = _setup(fresh_demo, tmp_path)
    (tmp_path / "enc.yaml").write_text("version: 1\ncolumns:\n"
                                       "  - {column: app_db.orders.user_id}\n")
    policy = load_policy(tmp_path / "enc.yaml", inv)
    out = encrypt(inv, store, keys, policy, apply=True)
    refused = [t for t in out.tables if t.error]
    assert [t.table for t in refused] == ["orders"] and "identifies rows" in refused[0].error
    before = _kyc(fresh_demo.app_db)
    old_ids = {parse(r[1]).key_id for r in before}
    rot = rotate_data_keys(inv, store, keys, policy, None, "tester")
    assert rot.cells_resealed == 2 * len(before)
    after = _kyc(fresh_demo.app_db)
    assert not old_ids & {parse(r[1]).key_id for r in after}
    got = Decryptor(inv, store, keys, policy).read("app_db", "user_kyc", None, "t", "r")
    assert len(got.rows) == len(before) and got.cells_decrypted == 2 * len(before)
    assert {r["state"] for k in old_ids for r in store.query(
        "SELECT state FROM subject_keys WHERE key_id = ?", [k])} == {"destroyed"}


def test_rotation_of_kek_and_of_data_keys(fresh_demo: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    inv, store, policy, keys = _setup(fresh_demo, tmp_path)
    before = _kyc(fresh_demo.app_db)
    encrypt(inv, store, keys, policy, apply=True)
    cells = _kyc(fresh_demo.app_db)
    new_kek = os.urandom(32)
    new = LocalKeyStore(new_kek, "new")
    old = keys.keystore
    # Part-way (a limit stands for an interruption): readers holding both keys still read.
    part = rotate_kek(store, old, new, "tester", batch=2, limit=2)
    assert part.keys == 2 and part.remaining > 0
    both = SubjectKeys(store, new, previous=[old])
    got = Decryptor(inv, store, both, policy).read("app_db", "user_kyc", None, "t", "r")
    assert sorted((r["user_id"], r["resident_id"], r["bank_card"]) for r in got.rows) == before
    rest = rotate_kek(store, old, new, "tester", batch=3)
    assert rest.remaining == 0
    assert _kyc(fresh_demo.app_db) == cells  # no data rewritten
    monkeypatch.setenv("GOVKIT_NEW_KEK", base64.b64encode(new_kek).decode())
    pol_new = policy.model_copy(update={"key_store": policy.key_store.model_copy(
        update={"key_env": "GOVKIT_NEW_KEK"})})
    only_new = SubjectKeys(store, keystore_for(pol_new, store))
    got = Decryptor(inv, store, only_new, pol_new).read("app_db", "user_kyc", None, "t", "r")
    assert sorted((r["user_id"], r["resident_id"], r["bank_card"]) for r in got.rows) == before
    with pytest.raises(GovernanceError, match="not the configured key-encryption key"):
        SubjectKeys(store, old)
    # Data-key rotation: new key ids, same plaintext, the old keys destroyed.
    old_ids = {parse(r[1]).key_id for r in cells}
    out = rotate_data_keys(inv, store, only_new, pol_new, None, "tester")
    assert out.cells_resealed == 2 * len(before)
    rotated = _kyc(fresh_demo.app_db)
    assert not old_ids & {parse(r[1]).key_id for r in rotated}
    got = Decryptor(inv, store, SubjectKeys(store, keystore_for(pol_new, store)), pol_new
                    ).read("app_db", "user_kyc", None, "t", "r")
    assert sorted((r["user_id"], r["resident_id"], r["bank_card"]) for r in got.rows) == before
    states = store.query("SELECT state, count(*) AS n FROM subject_keys WHERE key_id IN "
                         f"({', '.join('?' * len(old_ids))}) GROUP BY state", list(old_ids))
    assert states == [{"state": "destroyed", "n": len(old_ids)}]


def test_blind_index_finds_a_subject_by_encrypted_email(fresh_demo: Any, tmp_path: Path
                                                       ) -> None:
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.execute("ALTER TABLE legacy_newsletter_signups ADD COLUMN email_bidx TEXT")
        wanted = c.execute("SELECT signup_id, email_address FROM legacy_newsletter_signups "
                           "ORDER BY signup_id LIMIT 1").fetchone()
    original = fresh_demo.inventory.read_text()

    def declare(extra: str) -> None:
        fresh_demo.inventory.write_text(original.replace(
            "      - name: orders\n",
            f"      - name: legacy_newsletter_signups\n{extra}      - name: orders\n", 1))

    declare("")
    policy_text = ("version: 1\nrequire: []\ncolumns:\n  - {column: "
                   "app_db.legacy_newsletter_signups.email_address, blind_index: email_bidx}\n")
    inv, store, policy, keys = _setup(fresh_demo, tmp_path, policy_text)
    out = encrypt(inv, store, keys, policy, apply=True)
    # Rows that reach no person are left in clear and reported, never guessed.
    assert out.tables[0].rows_unowned == out.tables[0].rows > 0
    assert out.tables[0].cells_sealed == 0
    # Declared a person table keyed by signup_id, each row is its own subject.
    declare("        subject_key: signup_id\n")
    inv = load_inventory(fresh_demo.inventory)
    out = encrypt(inv, store, keys, policy, apply=True)
    assert out.ok and out.tables[0].cells_sealed == out.tables[0].rows
    probe = keys.blind_index("app_db", "legacy_newsletter_signups", "email_address",
                             "  " + wanted[1].upper())
    with sqlite3.connect(fresh_demo.app_db) as c:
        hits = c.execute("SELECT signup_id, email_address FROM legacy_newsletter_signups "
                         "WHERE email_bidx = ?", (probe,)).fetchall()
    assert [h[0] for h in hits] == [wanted[0]]
    assert hits[0][1].startswith("gk1:")


def test_a_dry_run_says_what_it_would_seal_not_that_it_sealed(fresh_demo: Any,
                                                              tmp_path: Path) -> None:
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    digest = hashlib.sha256(fresh_demo.app_db.read_bytes()).hexdigest()
    args = ["encrypt", "-i", str(fresh_demo.inventory), "--store", str(store_path)]
    dry = CliRunner().invoke(main, args)
    assert dry.exit_code == 0, dry.output
    summaries = [line for line in dry.output.splitlines() if " rows, " in line]
    assert summaries and all(re.search(r"\d+ cell\(s\) to seal, ", line) for line in summaries)
    assert "cell(s) sealed" not in dry.output
    assert hashlib.sha256(fresh_demo.app_db.read_bytes()).hexdigest() == digest
    done = CliRunner().invoke(main, [*args, "--apply"])
    assert done.exit_code == 0 and re.search(r"[1-9]\d* cell\(s\) sealed, ", done.output)


def test_wrong_or_missing_master_key_is_one_line_and_changes_nothing(
        fresh_demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    digest = hashlib.sha256(fresh_demo.app_db.read_bytes()).hexdigest()
    runner = CliRunner()
    monkeypatch.setenv("GOVKIT_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    r = runner.invoke(main, ["encrypt", "-i", str(fresh_demo.inventory), "--store",
                             str(store_path), "--apply"])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and "is not the key of audit store" in r.output
    monkeypatch.delenv("GOVKIT_MASTER_KEY")
    (tmp_path / "audit.duckdb.key").rename(tmp_path / "elsewhere.key")
    r = runner.invoke(main, ["encrypt", "-i", str(fresh_demo.inventory), "--store",
                             str(store_path), "--apply"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "not found" in r.output
    assert hashlib.sha256(fresh_demo.app_db.read_bytes()).hexdigest() == digest
    assert AuditStore(store_path).query("SELECT count(*) AS n FROM subject_keys")[0]["n"] == 0


def test_cli_and_store_hold_no_plaintext_and_no_key_material(fresh_demo: Any, tmp_path: Path
                                                            ) -> None:
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    before = _kyc(fresh_demo.app_db)
    runner = CliRunner()
    args = ["-i", str(fresh_demo.inventory), "--store", str(store_path)]
    outputs = []
    for cmd in (["encrypt", *args], ["encrypt", *args, "--apply"],
                ["crypto", "audit", *args], ["crypto", "audit", *args, "--decrypt-check"],
                ["crypto", "shred", *args, "--person", f"app_db.users={before[0][0]}",
                 "--reason", "erasure of k.silva@example.com", "--yes"],
                ["decrypt", *args, "app_db", "user_kyc", "--reason", "fraud check",
                 "--out", str(tmp_path / "out.csv")]):
        r = runner.invoke(main, cmd)
        assert r.exit_code == 0, (cmd, r.output)
        outputs.append(r.output)
    assert oct((tmp_path / "out.csv").stat().st_mode & 0o777) == "0o600"
    with (tmp_path / "out.csv").open() as f:
        read = {(int(r["user_id"]), r["resident_id"], r["bank_card"]) for r in csv.DictReader(f)}
    assert read == {(u, "", "") if u == before[0][0] else (u, a, b) for u, a, b in before}
    secrets = {v for r in before for v in r[1:]}
    secrets.add((tmp_path / "audit.duckdb.key").read_text().strip())
    text = "\n".join(outputs)
    with duckdb.connect(str(store_path), read_only=True) as c:
        for (table,) in c.execute("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = 'main'").fetchall():
            text += str(c.execute(f'SELECT * FROM "{table}"').fetchall())
    assert "k.silva@example.com" not in text
    for s in secrets:
        assert s not in text
    raw = store_path.read_bytes()
    for s in secrets:
        assert s.encode() not in raw
    log = [e for e in AuditStore(store_path).log_entries() if e.action.startswith("encryption.")]
    assert {e.action for e in log} >= {"encryption.encrypted", "encryption.audited",
                                       "encryption.subject_shredded", "encryption.decrypted"}
    dec = next(e for e in log if e.action == "encryption.decrypted")
    assert dec.details["cells_decrypted"] == 2 * (len(before) - 1)
    assert dec.details["cells_unreadable"] == 2


def test_shred_refuses_a_person_with_no_key_and_a_table_of_no_persons(
        fresh_demo: Any, tmp_path: Path) -> None:
    """Found by a helper: ``crypto shred --person app_db.users=1' OR '1'='1`` and
    ``--person app_db.orders=1`` each said "0 data key(s) destroyed ... no key left",
    exit 0, and logged a shredded subject. Refused now (one line, exit 2, nothing
    written); the shred of a real person still works, and a second one says so."""
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    runner = CliRunner()
    args = ["-i", str(fresh_demo.inventory), "--store", str(store_path)]

    def shred(person: str) -> Any:
        return runner.invoke(main, ["crypto", "shred", *args, "--person", person, "--reason",
                                    "erasure", "--yes"])

    def store_rows() -> tuple[int, int]:
        st = AuditStore(store_path)
        return (st.query("SELECT count(*) AS n FROM subject_keys")[0]["n"],
                len(st.log_entries()))

    r = shred("app_db.users=1")             # nothing encrypted yet
    assert r.exit_code == 2 and "holds no data key" in r.output and r.output.count("\n") == 1
    assert runner.invoke(main, ["encrypt", *args, "--apply"]).exit_code == 0
    before = store_rows()
    uid = _kyc(fresh_demo.app_db)[0][0]
    for person, why in (("app_db.users=1' OR '1'='1", "no data key was ever made"),
                        ("app_db.users=999999", "no data key was ever made"),
                        ("app_db.user_kyc=1", "not a person table")):
        r = shred(person)
        assert r.exit_code == 2 and why in r.output and r.output.count("\n") == 1, r.output
        assert store_rows() == before
    r = shred(f"app_db.users={uid}")
    assert r.exit_code == 0 and "no key left" in r.output and not r.output.startswith("0 ")
    again = shred(f"app_db.users={uid}")
    assert again.exit_code == 0 and "destroyed before" in again.output


def test_decrypt_of_a_row_key_that_matches_no_row_is_refused(fresh_demo: Any,
                                                              tmp_path: Path) -> None:
    """Found by a helper: ``decrypt --key "17' OR 1=1"`` said "0 row(s)", exit 0, and wrote
    a CSV of headers. One line, exit 2, no file, no read logged; a real key still reads."""
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    runner = CliRunner()
    args = ["-i", str(fresh_demo.inventory), "--store", str(store_path)]
    assert runner.invoke(main, ["encrypt", *args, "--apply"]).exit_code == 0
    uid = _kyc(fresh_demo.app_db)[0][0]
    logged = len(AuditStore(store_path).log_entries())
    for keys in (["17' OR 1=1"], [str(uid), "999999"]):
        out = tmp_path / "out.csv"
        r = runner.invoke(main, ["decrypt", *args, "app_db", "user_kyc", "--reason", "check",
                                 *[a for k in keys for a in ("--key", k)], "--out", str(out)])
        assert r.exit_code == 2 and "match no row" in r.output, r.output
        assert r.output.count("\n") == 1 and not out.exists()
        assert len(AuditStore(store_path).log_entries()) == logged
    r = runner.invoke(main, ["decrypt", *args, "app_db", "user_kyc", "--reason", "check",
                             "--key", str(uid), "--out", str(tmp_path / "one.csv")])
    assert r.exit_code == 0 and r.output.startswith("1 row(s), 2 cell(s) decrypted"), r.output


def test_decrypt_says_when_cells_were_altered_or_moved_and_exits_1(fresh_demo: Any,
                                                                   tmp_path: Path) -> None:
    """Found by a helper: ``decrypt`` exited 0 when envelopes had been moved to other rows,
    the cells reading as empty like a value that is empty ("3 unreadable (shredded or
    invalid)"). Moved cells are counted apart from shredded ones and exit 1."""
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    runner = CliRunner()
    args = ["-i", str(fresh_demo.inventory), "--store", str(store_path)]
    assert runner.invoke(main, ["encrypt", *args, "--apply"]).exit_code == 0
    (a, ra, _), (b, rb, _) = _kyc(fresh_demo.app_db)[:2]
    with sqlite3.connect(fresh_demo.app_db) as c:      # two rows' ciphertexts swapped
        c.execute("UPDATE user_kyc SET resident_id = ? WHERE user_id = ?", (rb, a))
        c.execute("UPDATE user_kyc SET resident_id = ? WHERE user_id = ?", (ra, b))
    r = runner.invoke(main, ["decrypt", *args, "app_db", "user_kyc", "--reason", "check",
                             "--out", str(tmp_path / "out.csv")])
    assert r.exit_code == 1, r.output
    assert "2 unreadable (0 shredded, 2 invalid: altered or moved)" in r.output
    assert "2 cell(s) do not decrypt in their place" in r.output
    logged = [e for e in AuditStore(store_path).log_entries()
              if e.action == "encryption.decrypted"][-1]
    assert logged.details["cells_invalid"] == 2


def _duckdb_inventory(tmp_path: Path, demo: Any) -> Path:
    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as c:
        c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR)")
        c.execute("CREATE TABLE kyc (id INTEGER PRIMARY KEY, customer_id INTEGER, "
                  "national_id VARCHAR, card BLOB)")
        with sqlite3.connect(demo.app_db) as s:
            for uid, email in s.execute("SELECT id, email FROM users").fetchall():
                c.execute("INSERT INTO customers VALUES (?, ?)", [uid, email])
            for i, (uid, rid, card) in enumerate(_kyc(demo.app_db)):
                c.execute("INSERT INTO kyc VALUES (?, ?, ?, ?)", [i + 1, uid, rid, card.encode()])
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        "version: 1\norganization: t\nsources:\n  - name: crm\n    kind: duckdb\n"
        "    connection: {path: crm.duckdb}\n    owner: t@example.com\n    jurisdictions: [EU]\n"
        "    tables:\n      - name: customers\n        subject_key: id\n"
        "      - name: kyc\n        references: [{column: customer_id, to: customers.id}]\n"
        "        columns:\n          national_id: {category: identity.national_id}\n"
        "          card: {category: financial.card}\n")
    return inv


def test_duckdb_text_and_binary_columns_round_trip(fresh_demo: Any, tmp_path: Path) -> None:
    inv_path = _duckdb_inventory(tmp_path, fresh_demo)
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    policy = load_policy(None, inv)
    keys = SubjectKeys(store, keystore_for(policy, store))
    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as c:
        before = c.execute("SELECT id, customer_id, national_id, card FROM kyc ORDER BY id"
                           ).fetchall()
    assert encrypt(inv, store, keys, policy, apply=True).ok
    with duckdb.connect(str(db)) as c:
        after = c.execute("SELECT id, national_id, card FROM kyc ORDER BY id").fetchall()
    assert all(r[1].startswith("gk1:") and bytes(r[2]).startswith(b"GK\x01") for r in after)
    got = Decryptor(inv, store, keys, policy).read("crm", "kyc", None, "t", "r")
    assert sorted((r["id"], r["customer_id"], r["national_id"], bytes(r["card"]))
                  for r in got.rows) == [(a, b, c, bytes(d)) for a, b, c, d in before]


def test_a_row_changed_while_it_is_sealed_is_left_and_not_counted(
        fresh_demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a helper on classicmodels: a row changed by someone else between encrypt's
    read and its write was rightly left as it was (the update applies only where the cell
    still holds what was read), but the run counted its cells as sealed, logged that, and
    exited 0 with plaintext left. It is counted apart now and the run is not ok."""
    from governance.encryption import writers

    inv, store, policy, keys = _setup(fresh_demo, tmp_path)
    before = _kyc(fresh_demo.app_db)
    victim = before[1][0]
    real = writers._apply_sql

    def someone_else_first(conn: Any, table: str, key: list[str], todo: Any) -> Any:
        conn._conn.execute("UPDATE user_kyc SET resident_id = 'changed meanwhile' "
                           "WHERE user_id = ?", (victim,))
        return real(conn, table, key, todo)

    monkeypatch.setattr(writers, "_apply_sql", someone_else_first)
    out = encrypt(inv, store, keys, policy, apply=True)
    monkeypatch.setattr(writers, "_apply_sql", real)
    [res] = out.tables
    assert not out.ok and res.rows_changed_meanwhile == 1
    assert res.cells_sealed == 2 * (len(before) - 1)
    assert "NOT FINISHED: 1 row(s) changed by someone else" in res.describe()
    now = {r[0]: r for r in _kyc(fresh_demo.app_db)}
    assert now[victim][1:] == ("changed meanwhile", before[1][2])      # left as it was
    assert all(r[1].startswith("gk1:") for u, r in now.items() if u != victim)
    logged = [e for e in store.log_entries() if e.action == "encryption.encrypted"][-1]
    assert logged.details["cells_sealed"] == res.cells_sealed
    assert logged.details["rows_changed_meanwhile"] == 1
    again = encrypt(inv, store, keys, policy, apply=True)
    assert again.ok and again.tables[0].cells_sealed == 2


def _pg_kyc(pg_dsn: str, demo: Any, tmp_path: Path, schema: str, kyc_columns: str
            ) -> Path:
    """The demo's users and KYC rows in a PostgreSQL schema of the test's own (KYC columns
    as ``kyc_columns`` declares them), and an inventory of it (DSN from GK_ENC_PG)."""
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(f'CREATE TABLE "{schema}".users (id integer PRIMARY KEY, email text)')
        c.execute(f'CREATE TABLE "{schema}".user_kyc (user_id integer PRIMARY KEY REFERENCES '
                  f'"{schema}".users(id), {kyc_columns})')
        with sqlite3.connect(demo.app_db) as s:
            for row in s.execute("SELECT id, email FROM users"):
                c.execute(f'INSERT INTO "{schema}".users VALUES (%s, %s)', row)
        for row in _kyc(demo.app_db):
            c.execute(f'INSERT INTO "{schema}".user_kyc VALUES (%s, %s, %s)', row)
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text(
        "version: 1\norganization: t\nsources:\n  - name: pg\n    kind: postgres\n"
        f"    connection: {{dsn_env: GK_ENC_PG, schema: {schema}}}\n"
        "    owner: t@example.com\n    jurisdictions: [EU]\n    tables:\n"
        "      - name: users\n        subject_key: id\n      - name: user_kyc\n"
        "        references: [{column: user_id, to: users.id}]\n        columns:\n"
        "          resident_id: {category: identity.national_id}\n"
        "          bank_card: {category: financial.bank_account}\n")
    return inv_path


@contextmanager
def _pg_estate(pg_dsn: str, demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               kyc_columns: str) -> Iterator[tuple[str, Any, AuditStore, EncryptionPolicy,
                                                   SubjectKeys]]:
    """``_pg_kyc`` in a schema of its own (dropped afterwards): the schema, the inventory,
    an audit store, the default policy and a key ring."""
    import psycopg

    schema = f"gk_enc_{os.getpid()}_{os.urandom(3).hex()}"
    monkeypatch.setenv("GK_ENC_PG", pg_dsn)
    try:
        inv = load_inventory(_pg_kyc(pg_dsn, demo, tmp_path, schema, kyc_columns))
        store = AuditStore(tmp_path / "audit.duckdb", create=True)
        policy = load_policy(None, inv)
        yield schema, inv, store, policy, SubjectKeys(store, keystore_for(policy, store))
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgres_round_trip_and_shred(pg_dsn: str, fresh_demo: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    with _pg_estate(pg_dsn, fresh_demo, tmp_path, monkeypatch,
                    "resident_id text, bank_card text") as (schema, inv, store, policy, keys):
        before = _kyc(fresh_demo.app_db)
        assert encrypt(inv, store, keys, policy, apply=True).ok
        with psycopg.connect(pg_dsn) as c:
            after = c.execute(f'SELECT user_id, resident_id, bank_card FROM "{schema}".user_kyc '
                              "ORDER BY 1").fetchall()
        assert all(r[1].startswith("gk1:") and r[2].startswith("gk1:") for r in after)
        got = Decryptor(inv, store, keys, policy).read("pg", "user_kyc", None, "t", "r")
        assert sorted((r["user_id"], r["resident_id"], r["bank_card"]) for r in got.rows) \
            == before
        victim = before[0][0]
        shred_person_rows(inv, keys, {("pg", "users"): [{"id": victim}]}, "t", "erasure")
        got = Decryptor(inv, store, SubjectKeys(store, keystore_for(policy, store)), policy
                        ).read("pg", "user_kyc", None, "t", "r")
        for r in got.rows:
            expect = (None, None) if r["user_id"] == victim else next(
                (b[1], b[2]) for b in before if b[0] == r["user_id"])
            assert (r["resident_id"], r["bank_card"]) == expect


@pytest.mark.postgres
def test_postgres_a_number_column_and_a_narrow_one_are_named_in_one_run(
        pg_dsn: str, fresh_demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a helper on Oracle's HR (salary numeric(8,2), phone_number varchar(20)):
    encrypt named the number column only, and the narrow one on the next run. Both are
    named at once; nothing sealed, no key made."""
    with _pg_estate(pg_dsn, fresh_demo, tmp_path, monkeypatch,
                    "resident_id varchar(20), bank_card numeric(30,0)"
                    ) as (_, inv, store, policy, keys):
        out = encrypt(inv, store, keys, policy, apply=True)
        [res] = out.tables
        assert res.error is not None and "\n" not in res.error
        assert "pg.user_kyc.bank_card: a numeric(30,0) column cannot hold ciphertext" in \
            res.error
        assert "pg.user_kyc.resident_id: its longest value sealed takes" in res.error
        assert res.error.endswith("nothing was sealed")
        assert store.query("SELECT count(*) AS n FROM subject_keys WHERE subject <> "
                           "'__index__'")[0]["n"] == 0


@pytest.mark.postgres
def test_postgres_columns_too_narrow_for_envelopes_are_named_before_anything_is_made(
        pg_dsn: str, fresh_demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a helper on classicmodels (varchar(50) phones and names): the dry run said
    nothing, and the apply ended in a traceback (value too long) with the subjects' keys
    made for nothing. The column's room is checked first (dry run and apply: one line,
    nothing sealed, no key made); a change the database refuses for another reason (a
    CHECK) is one line for its table."""
    import psycopg

    with _pg_estate(pg_dsn, fresh_demo, tmp_path, monkeypatch,
                    "resident_id varchar(40), bank_card text CHECK (length(bank_card) < 60)"
                    ) as (schema, inv, store, policy, keys):

        def table() -> list[tuple[Any, ...]]:
            with psycopg.connect(pg_dsn) as c:
                return c.execute(f'SELECT * FROM "{schema}".user_kyc ORDER BY 1').fetchall()

        def made() -> int:
            return store.query("SELECT count(*) AS n FROM subject_keys WHERE subject <> "
                               "'__index__'")[0]["n"]

        before = table()
        for apply in (False, True):
            out = encrypt(inv, store, keys, policy, apply=apply)
            [res] = out.tables
            assert not out.ok and res.error is not None
            assert "pg.user_kyc.resident_id: its longest value sealed takes" in res.error
            assert "the column holds 40; change them first" in res.error
            assert table() == before and made() == 0
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute(f'ALTER TABLE "{schema}".user_kyc ALTER COLUMN resident_id TYPE '
                      "varchar(200)")
        out = encrypt(inv, store, keys, policy, apply=True)
        [res] = out.tables
        assert res.error is not None and res.error.startswith(
            "the database refused a change: CheckViolation:"), res.error
        assert "\n" not in res.error and table() == before
        # Once it fits, sealed cells are not counted again: a column exactly as wide as its
        # envelopes is encrypted again (nothing to do) and its keys rotated.
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            c.execute(f'ALTER TABLE "{schema}".user_kyc DROP CONSTRAINT '
                      "user_kyc_bank_card_check")
        assert encrypt(inv, store, keys, policy, apply=True).ok
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            width = c.execute(f'SELECT max(length(resident_id)) FROM "{schema}".user_kyc'
                              ).fetchone()[0]
            c.execute(f'ALTER TABLE "{schema}".user_kyc ALTER COLUMN resident_id TYPE '
                      f"varchar({width})")
        again = encrypt(inv, store, keys, policy, apply=True)
        assert again.ok and again.tables[0].cells_sealed == 0, again.tables[0].describe()
        assert rotate_data_keys(inv, store, keys, policy, None, "t").cells_resealed == \
            2 * len(before)


def test_a_cell_erased_by_redaction_is_not_plaintext_to_the_encryption_audit(
        fresh_demo: Any, tmp_path: Path) -> None:
    """Found by a helper: retention's ``redact`` (and erasure's) writes "[erased]" into a
    sealed column; the encryption audit then failed the column as holding plaintext
    personal data. An erased cell holds nothing; a value in clear still fails it."""
    from governance.dsar.plan import REDACTED

    inv, store, policy, keys = _setup(fresh_demo, tmp_path)
    assert encrypt(inv, store, keys, policy, apply=True).ok
    first, second = (r[0] for r in _kyc(fresh_demo.app_db)[:2])
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.execute("UPDATE user_kyc SET bank_card = ? WHERE user_id = ?", [REDACTED, first])
    card = next(s for s in encryption_status(inv, store, policy) if s.column == "bank_card")
    assert card.ok and card.plaintext_cells == 0, card.describe()
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.execute("UPDATE user_kyc SET bank_card = ? WHERE user_id = ?",
                  ["DE89370400440532013000", second])
    card = next(s for s in encryption_status(inv, store, policy) if s.column == "bank_card")
    assert not card.ok and card.plaintext_cells == 1, card.describe()


def test_decrypt_to_an_existing_file_is_one_line_and_reads_nothing(fresh_demo: Any,
                                                                    tmp_path: Path) -> None:
    """Found by a helper: `decrypt --out` onto an existing file printed a raw errno error,
    after the read had been made and logged."""
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    args = ["-i", str(fresh_demo.inventory), "--store", str(store_path)]
    assert CliRunner().invoke(main, ["encrypt", *args, "--apply"]).exit_code == 0
    out = tmp_path / "kyc.csv"
    out.write_text("kept\n")
    reads = len([e for e in AuditStore(store_path).log_entries()
                 if e.action.startswith("encryption.decrypt")])
    r = CliRunner().invoke(main, ["decrypt", *args, "app_db", "user_kyc", "--reason", "case 1",
                                  "--out", str(out)])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "File exists" in r.output and "nothing was decrypted" in r.output
    assert out.read_text() == "kept\n"
    assert len([e for e in AuditStore(store_path).log_entries()
                if e.action.startswith("encryption.decrypt")]) == reads
    fresh = tmp_path / "new.csv"
    ok = CliRunner().invoke(main, ["decrypt", *args, "app_db", "user_kyc", "--reason", "case 1",
                                   "--out", str(fresh)])
    assert ok.exit_code == 0 and (fresh.stat().st_mode & 0o777) == 0o600
    assert len(fresh.read_text().splitlines()) > 1
    assert len([e for e in AuditStore(store_path).log_entries()
                if e.action.startswith("encryption.decrypt")]) == reads + 1
