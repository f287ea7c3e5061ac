"""Issue 13, items 10-14: approval before destructive runs, late extensions refused,
unparseable identities, requests received earlier, and an access export the subject opens
with common tools (checked with 7-Zip and with a reader written here from the WinZip AES
specification, independent of pyzipper)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import shutil
import sqlite3
import stat
import struct
import subprocess
import zipfile
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import pyzipper
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from governance.audit_store import AuditStore
from governance.cli import main
from governance.crypto.aead import DecryptionError
from governance.dsar import RequestBook, RequestError, RequestState, plan_request, run_request
from governance.dsar.approval import approve_request
from governance.dsar.deadlines import rule_for
from governance.dsar.export import ExportError, build_package, extract_export, open_export
from governance.dsar.identities import Identity, IdentityError, IdentityType
from governance.inventory import load_inventory
from governance.scan import run_scan
from pipelines.build import build_definitions
from pipelines.resources import GovernanceResource
from tests.request_worker import approve_plan


def _subject(db: Path) -> tuple[int, str, str]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT id, email, phone FROM users WHERE EXISTS (SELECT 1 FROM "
                         "orders o WHERE o.user_id = users.id) ORDER BY id LIMIT 1").fetchone()


def _new_store(path: Path) -> AuditStore:
    """A store that may be created (``create=True`` where the store refuses to create
    itself implicitly)."""
    try:
        return AuditStore(path, create=True)  # type: ignore[call-arg]
    except TypeError:
        return AuditStore(path)


def _users(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT count(*) FROM users").fetchone()[0]


def _env(monkeypatch: pytest.MonkeyPatch, demo) -> Path:
    store = demo.root / "audit.duckdb"
    _new_store(store).schema_version()   # the store exists (as after govkit init)
    monkeypatch.setenv("GOVKIT_AUDIT_STORE", str(store))
    monkeypatch.setenv("GOVKIT_INVENTORY", str(demo.inventory))
    monkeypatch.setenv("GOVKIT_ACTOR", "dpo-cli")
    return store


# ---------------------------------------------------------------- 10. approval


def test_verified_erasure_does_not_run_until_a_person_approves_it(fresh_demo) -> None:
    inventory = load_inventory(fresh_demo.inventory)
    store = _new_store(fresh_demo.root / "audit.duckdb")
    run_scan(inventory, store)
    uid, email, _ = _subject(fresh_demo.app_db)
    book = RequestBook(store)
    r = book.create("erasure", [f"email={email}"], "EU", "dpo")
    with pytest.raises(RequestError, match="verify the subject's identity before approving"):
        approve_request(inventory, store, r.request_id, "dpo-lead", "looks fine")
    book.verify(r.request_id, "dpo", "passport seen")
    before = _users(fresh_demo.app_db)
    with pytest.raises(RequestError, match="needs a recorded approval"):
        run_request(inventory, store, r.request_id, "dpo")
    assert _users(fresh_demo.app_db) == before
    assert book.get(r.request_id).state is RequestState.VERIFIED

    with pytest.raises(RequestError, match="why the run is approved"):
        approve_request(inventory, store, r.request_id, "dpo-lead", "  ")
    with pytest.raises(RequestError, match="names the plan it approves"):
        book.approve(r.request_id, "dpo-lead", "no plan", plan={})
    approved, plan, blockers = approve_request(
        inventory, store, r.request_id, "dpo-lead",
        "plan reviewed; subject reachable on +49 30 901827")
    assert approved.approved_by == "dpo-lead" and approved.approved_at is not None
    assert blockers == [] and plan.people and ("app_db", "users", "delete") in plan.changes
    with pytest.raises(RequestError, match="already approved by dpo-lead.*the same plan"):
        approve_request(inventory, store, r.request_id, "dpo-lead", "again")
    # Own SQL: the approval is in the request row and in the log, the phone masked in both.
    [row] = store.query("SELECT approved_by, approval_note FROM dsar_requests "
                        "WHERE request_id = ?", [r.request_id])
    assert row["approved_by"] == "dpo-lead" and "901827" not in row["approval_note"]
    logged = [e for e in store.log_entries() if e.target == r.request_id
              and e.action == "dsar.approved"]
    assert len(logged) == 1 and logged[0].actor == "dpo-lead"
    assert "901827" not in json.dumps(logged[0].details)
    assert store.verify_log().ok

    outcome = run_request(inventory, store, r.request_id, "dpo")
    assert outcome.status == "completed"
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert c.execute("SELECT count(*) FROM users WHERE id = ?", (uid,)).fetchone()[0] == 0

    access = book.create("access", [f"email={email}"], "EU", "dpo")
    book.verify(access.request_id, "dpo", "checked")
    with pytest.raises(RequestError, match="needs no approval"):
        approve_request(inventory, store, access.request_id, "dpo-lead", "ok")


def test_sensor_waits_for_approval_and_nothing_starts_by_itself(fresh_demo) -> None:
    store_path = fresh_demo.root / "audit.duckdb"
    defs = build_definitions(fresh_demo.inventory, store_path)
    sensor = defs.get_sensor_def("verified_requests")
    schedule = defs.get_schedule_def("daily_discovery_scan")
    assert sensor.default_status is dg.DefaultSensorStatus.STOPPED
    assert schedule.default_status is dg.DefaultScheduleStatus.STOPPED
    assert "approve" in sensor.description and "DELETES" in sensor.description

    book = RequestBook(_new_store(store_path))
    _, email, _ = _subject(fresh_demo.app_db)
    ids = {}
    for name, rtype, verify, approve in [
            ("received", "erasure", False, False), ("verified_only", "erasure", True, False),
            ("access", "access", True, False), ("approved", "erasure", True, True),
            ("rectify_verified", "rectify", True, False)]:
        kw = {"corrections": {"phone": "+44 20 7946 0959"}} if rtype == "rectify" else {}
        r = book.create(rtype, [f"email={email}"], "EU", "dpo", **kw)
        if verify:
            book.verify(r.request_id, "dpo", "checked")
        if approve:
            approve_plan(book.store, r.request_id, fresh_demo.inventory)
        ids[name] = r.request_id
    resource = GovernanceResource(inventory_path=str(fresh_demo.inventory),
                                  audit_store_path=str(store_path))
    with dg.build_sensor_context(resources={"governance": resource}) as ctx:
        launched = {(r.run_key, r.job_name) for r in sensor(ctx)}
    assert launched == {(ids["access"], "dsar_access"), (ids["approved"], "dsar_erasure")}


def test_cli_verify_warns_approval_is_needed_and_run_still_asks(fresh_demo, monkeypatch) -> None:
    _env(monkeypatch, fresh_demo)
    run_scan(load_inventory(fresh_demo.inventory), _new_store(fresh_demo.root / "audit.duckdb"))
    runner = CliRunner()
    _, email, _ = _subject(fresh_demo.app_db)
    new = runner.invoke(main, ["dsar", "new", "--type", "erasure", "--identity",
                               f"email={email}", "--jurisdiction", "EU"])
    assert new.exit_code == 0, new.output
    rid = new.output.split()[0]
    verified = runner.invoke(main, ["dsar", "verify", rid, "--note", "ID card"])
    assert verified.exit_code == 0 and "NOT YET APPROVED" in verified.output
    assert f"govkit dsar approve {rid}" in verified.output
    before = _users(fresh_demo.app_db)
    refused = runner.invoke(main, ["dsar", "run", rid, "--yes"])
    assert refused.exit_code == 2 and "needs a recorded approval" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    approved = runner.invoke(main, ["dsar", "approve", rid, "--note", "plan reviewed"])
    assert approved.exit_code == 0 and "approved by dpo-cli" in approved.output
    declined = runner.invoke(main, ["dsar", "run", rid], input="n\n")
    assert "Apply these changes?" in declined.output
    assert _users(fresh_demo.app_db) == before


# ---------------------------------------------------------------- 11. late extensions


@pytest.mark.parametrize(("jurisdiction", "days_ago", "allowed"), [
    ("EU", 40, False), ("UK", 20, True), ("US-CA", 46, False), ("US-CA", 44, True)])
def test_an_extension_after_the_original_deadline_is_refused(
        tmp_path: Path, jurisdiction: str, days_ago: int, allowed: bool) -> None:
    book = RequestBook(_new_store(tmp_path / "audit.duckdb"))
    received = datetime.now(UTC) - timedelta(days=days_ago)
    r = book.create("access", ["email=ann@example.org"], jurisdiction, "dpo",
                    received_at=received)
    assert r.due_date == rule_for(jurisdiction).due(received.date())
    if allowed:
        extended = book.extend(r.request_id, "dpo", "complex request, many systems")
        assert extended.extended and extended.days_left() > 0
        return
    assert r.days_left() < 0
    with pytest.raises(RequestError, match="too late to extend"):
        book.extend(r.request_id, "dpo", "we were busy")
    after = book.get(r.request_id)
    assert not after.extended and after.due_date == r.due_date and after.days_left() < 0
    assert not [e for e in book.store.log_entries() if e.action == "dsar.extended"]


def test_cli_refuses_a_late_extension_and_the_request_stays_overdue(tmp_path, monkeypatch
                                                                    ) -> None:
    monkeypatch.setenv("GOVKIT_AUDIT_STORE", str(tmp_path / "audit.duckdb"))
    book = RequestBook(_new_store(tmp_path / "audit.duckdb"))
    r = book.create("access", ["email=ann@example.org"], "EU", "dpo",
                    received_at=datetime.now(UTC) - timedelta(days=45))
    runner = CliRunner()
    late = runner.invoke(main, ["dsar", "extend", r.request_id, "--reason", "busy"])
    assert late.exit_code == 2 and "too late to extend" in late.output
    assert "OVERDUE" in runner.invoke(main, ["dsar", "list"]).output


# ---------------------------------------------------------------- 12. identities


def _file_access(identity: str, jurisdiction: str = "EU") -> tuple[int, list[str]]:
    """``dsar new`` of an access request by ``identity``: exit code and output lines."""
    out = CliRunner().invoke(main, ["dsar", "new", "--type", "access", "--identity", identity,
                                    "--jurisdiction", jurisdiction])
    return out.exit_code, out.output.strip().splitlines()


def test_a_bad_phone_number_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GOVKIT_AUDIT_STORE", str(tmp_path / "audit.duckdb"))
    _new_store(tmp_path / "audit.duckdb").schema_version()
    for value in ("abc", "n/a", "+1"):
        code, [line] = _file_access(f"phone={value}")
        assert code == 2, line
        assert line.startswith("govkit: error: phone: not a") and "phone number" in line
    assert RequestBook(_new_store(tmp_path / "audit.duckdb")).list_requests() == []
    with pytest.raises(IdentityError, match="not text"):
        Identity(IdentityType.PHONE, 5)  # type: ignore[arg-type]
    with pytest.raises(IdentityError, match="not a phone number"):
        Identity(IdentityType.PHONE, "n/a").canonical()
    with pytest.raises(IdentityError, match="unknown identity type"):
        Identity("iban", "DE44")  # type: ignore[arg-type]


def test_a_chinese_resident_id_with_a_wrong_check_digit_is_a_one_line_error(
        tmp_path, monkeypatch) -> None:
    """Found by a helper: ``national_id=330106198502183520`` (check digit 9) was filed. The
    check digit is computed by python-stdnum (its published example, 360426199101010071,
    is accepted); other national IDs are taken as written."""
    from stdnum.cn import ric

    monkeypatch.setenv("GOVKIT_AUDIT_STORE", str(tmp_path / "audit.duckdb"))
    _new_store(tmp_path / "audit.duckdb").schema_version()
    for value in ("330106198502183520", "36042619910101007X", "11010519491231002 9",
                  "11010519491231002Y"):
        code, [line] = _file_access(f"national_id={value}", "CN")
        assert code == 2, line
        assert ("not its check digit" in line or "only be a digit or X" in line) and \
            value not in line
    assert RequestBook(_new_store(tmp_path / "audit.duckdb")).list_requests() == []
    for value in ("360426199101010071", "330106198502183529", "11010519491231002x",
                  "123-45-6789", "AB123456C"):
        assert ric.is_valid(value) or len(value) != 18
        code, lines = _file_access(f"national_id={value}", "CN")
        assert code == 0, lines
    assert len(RequestBook(_new_store(tmp_path / "audit.duckdb")).list_requests()) == 5


def test_a_stored_unparseable_phone_is_skipped_not_a_crash(fresh_demo, monkeypatch) -> None:
    """A subject row holding 'n/a' in its phone column: planning and running still work,
    and 'n/a' is not used as an identity."""
    uid, email, _ = _subject(fresh_demo.app_db)
    with sqlite3.connect(fresh_demo.app_db) as c:
        c.execute("UPDATE users SET phone = 'n/a' WHERE id = ?", (uid,))
    _env(monkeypatch, fresh_demo)
    inventory = load_inventory(fresh_demo.inventory)
    store = _new_store(fresh_demo.root / "audit.duckdb")
    run_scan(inventory, store)
    book = RequestBook(store)
    r = book.create("access", [f"email={email}"], "EU", "dpo")
    book.verify(r.request_id, "dpo", "checked")
    plan = CliRunner().invoke(main, ["dsar", "plan", r.request_id])
    assert plan.exit_code == 0, plan.output
    assert "app_db.users: 1 row(s) by identity" in plan.output
    resolution, _ = plan_request(inventory, store, r.request_id)
    assert all(i.type is not IdentityType.PHONE for i in resolution.derived)
    outcome = run_request(inventory, store, r.request_id, "dpo")
    assert outcome.status == "completed"
    users = open_export(outcome.export_path, outcome.passphrase)["data/app_db/users.json"]
    assert [(u["id"], u["phone"]) for u in users] == [(uid, "n/a")]


# ---------------------------------------------------------------- 13. --received


def test_a_request_received_earlier_counts_its_deadline_from_then(fresh_demo, monkeypatch,
                                                                  tmp_path: Path) -> None:
    store = _env(monkeypatch, fresh_demo)
    runner = CliRunner()
    received = date.today() - timedelta(days=10)
    new = runner.invoke(main, ["dsar", "new", "--type", "access", "--identity",
                               "email=ann@example.org", "--jurisdiction", "US-CA",
                               "--received", received.isoformat()])
    assert new.exit_code == 0, new.output
    book = RequestBook(_new_store(store))
    r = book.get(new.output.split()[0])
    assert r.received_at.astimezone(UTC).date() == received
    assert r.due_date == received + timedelta(days=45)
    logged = [e for e in book.store.log_entries() if e.action == "dsar.received"]
    assert logged[-1].details["received_at"].startswith(received.isoformat())

    count = len(book.list_requests(open_only=False))
    future = (date.today() + timedelta(days=2)).isoformat()
    for value, message in [(future, "is in the future"), ("last week", "YYYY-MM-DD")]:
        bad = runner.invoke(main, ["dsar", "new", "--type", "access", "--identity",
                                   "email=ann@example.org", "--jurisdiction", "EU",
                                   "--received", value])
        assert bad.exit_code == 2 and message in bad.output, bad.output
        assert len(bad.output.strip().splitlines()) == 1
    assert len(book.list_requests(open_only=False)) == count

    # Intake file, and the Dagster intake job's config.
    intake = tmp_path / "subject.yaml"
    intake.write_text(f"identities:\n  email: bob@example.org\nreceived: {received}\n")
    from_file = runner.invoke(main, ["dsar", "new", "--type", "access", "--from-file",
                                     str(intake), "--jurisdiction", "EU"])
    assert from_file.exit_code == 0, from_file.output
    assert book.get(from_file.output.split()[0]).due_date == rule_for("EU").due(received)
    intake.write_text(f"identities:\n  email: bob@example.org\nreceived: {future}\n")
    bad_file = runner.invoke(main, ["dsar", "new", "--type", "access", "--from-file",
                                    str(intake), "--jurisdiction", "EU"])
    assert bad_file.exit_code == 2 and f"{intake}:3: received" in bad_file.output
    assert intake.exists()
    intake.write_text("identities:\n  email: bob@example.org\n")
    defs = build_definitions(fresh_demo.inventory, store)
    result = defs.get_job_def("dsar_intake").execute_in_process(run_config={"ops": {
        "record_request": {"config": {"request_type": "access", "jurisdiction": "CN",
                                      "intake_file": str(intake),
                                      "received": received.isoformat()}}}})
    assert result.success
    r = book.get(result.output_for_node("record_request"))
    assert r.received_at.astimezone(UTC).date() == received
    assert r.due_date == rule_for("CN").due(received)


# ---------------------------------------------------------------- 14. the export


def _winzip_aes_read(path: Path, passphrase: str) -> dict[str, bytes]:
    """Every member of a WinZip-AES ZIP, decrypted following the WinZip AE-1/AE-2
    specification with the stdlib and `cryptography` (no pyzipper): PBKDF2-HMAC-SHA1
    (1000 rounds) gives the AES key, the HMAC key and a 2-byte check value; AES-CTR with a
    little-endian counter from 1; HMAC-SHA1 (first 10 bytes) over the ciphertext."""
    out = {}
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            assert info.flag_bits & 0x1 and info.compress_type == 99, info.filename
            extra = info.extra
            while extra:
                tag, size = struct.unpack("<HH", extra[:4])
                if tag == 0x9901:
                    version, vendor, strength, method = struct.unpack(
                        "<H2sBH", extra[4:4 + size])
                    break
                extra = extra[4 + size:]
            else:
                raise AssertionError(f"{info.filename}: no AES extra field")
            assert vendor == b"AE" and strength == 3, "not AES-256"
            start = info.header_offset
            name_len, extra_len = struct.unpack("<HH", raw[start + 26:start + 30])
            data = raw[start + 30 + name_len + extra_len:][:info.compress_size]
            salt, check, body, mac = data[:16], data[16:18], data[18:-10], data[-10:]
            keys = hashlib.pbkdf2_hmac("sha1", passphrase.encode(), salt, 1000, 66)
            assert keys[64:] == check, "password check value"
            assert hmac.compare_digest(
                hmac.new(keys[32:64], body, hashlib.sha1).digest()[:10], mac)
            ecb = Cipher(algorithms.AES(keys[:32]), modes.ECB()).encryptor()
            blocks = (len(body) + 15) // 16
            stream = ecb.update(b"".join(i.to_bytes(16, "little")
                                         for i in range(1, blocks + 1)))
            plain = bytes(a ^ b for a, b in zip(body, stream, strict=False))
            if method == 8:
                plain = zlib.decompress(plain, -15)
            if version == 1:
                assert zlib.crc32(plain) == info.CRC
            out[info.filename] = plain
    return out


@pytest.fixture()
def access_export(fresh_demo):
    inventory = load_inventory(fresh_demo.inventory)
    store = _new_store(fresh_demo.root / "audit.duckdb")
    run_scan(inventory, store)
    uid, email, _ = _subject(fresh_demo.app_db)
    book = RequestBook(store)
    r = book.create("access", [f"email={email}"], "EU", "dpo")
    book.verify(r.request_id, "dpo", "checked")
    outcome = run_request(inventory, store, r.request_id, "dpo")
    assert outcome.status == "completed"
    return fresh_demo, inventory, store, outcome, uid, email


def test_access_export_is_an_aes_zip_common_tools_open(access_export, tmp_path: Path) -> None:
    demo, _, _, outcome, uid, email = access_export
    path, passphrase = outcome.export_path, outcome.passphrase
    assert path.suffix == ".zip" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(passphrase) >= 20
    raw = path.read_bytes()
    assert email.encode() not in raw and email.split("@")[0].encode() not in raw
    files = _winzip_aes_read(path, passphrase)
    assert {"index.html", "summary.json", "manifest.json", "data/app_db/users.json"} <= set(files)
    with sqlite3.connect(demo.app_db) as c:
        c.row_factory = sqlite3.Row
        own = dict(c.execute("SELECT * FROM users WHERE id = ?", (uid,)).fetchone())
    assert json.loads(files["data/app_db/users.json"]) == [own]
    with pytest.raises(DecryptionError, match="wrong passphrase"):
        open_export(path, "not-the-passphrase")

    # Art. 15(1): categories, purposes, recipients, retention, source, rights.
    summary = json.loads(files["summary.json"])
    users = next(t for t in summary["tables"] if t["table"] == "users")
    assert "E-mail address" in users["categories"].values()
    for key in ("purposes", "recipients", "retention", "source_of_data",
                "automated_decision_making"):
        assert users[key].startswith("not declared in the inventory; ask the owner of")
    assert any("supervisory authority" in r for r in summary["rights"])
    assert any("Restriction" in r for r in summary["rights"])
    page = files["index.html"].decode()
    for text in ("Your rights (GDPR)", "Objection", "Purposes of the processing",
                 "Retention period", email):
        assert text in page
    assert "<script" not in page

    # 7-Zip, the tool a subject would use, opens it too (same bytes).
    seven = shutil.which("7z") or shutil.which("7zz")
    if seven is None:
        pytest.skip("7-Zip not installed (Debian: apt-get install p7zip-full)")
    listing = subprocess.run([seven, "l", "-slt", f"-p{passphrase}", str(path)],
                             capture_output=True, text=True, check=True).stdout
    methods = [line for line in listing.splitlines() if line.startswith("Method = ")]
    assert methods and all("AES-256" in m for m in methods), methods
    out = tmp_path / "7z"
    done = subprocess.run([seven, "x", f"-p{passphrase}", f"-o{out}", "-y", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, content in files.items():
        assert (out / name).read_bytes() == content
    wrong = subprocess.run([seven, "x", "-pwrong", f"-o{tmp_path / 'w'}", "-y", str(path)],
                           capture_output=True, text=True)
    assert wrong.returncode != 0


def test_the_package_carries_what_the_inventory_declares(access_export) -> None:
    _, inventory, store, outcome, _, email = access_export
    book = RequestBook(store)
    resolution, _ = plan_request(inventory, store, outcome.request.request_id)
    package, man = build_package(outcome.request.request_id, "GDPR",
                                 book.identities(outcome.request), resolution,
                                 inventory=inventory)
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        summary = json.loads(z.read("summary.json"))
    orders = next(t for t in summary["tables"] if t["table"] == "orders")
    assert orders["retention"].startswith("Tax and accounting records kept 10 years")
    assert summary["controller"] == inventory.organization
    assert any(line.startswith("app_db.orders: ") and "platform-team@acme.example" in line
               and "recipients" in line for line in man["not_declared"])
    assert "platform-team@acme.example" not in json.dumps(summary)


def test_open_export_writes_owner_only_files_and_refuses_escapes(access_export,
                                                                 tmp_path: Path) -> None:
    _, _, _, outcome, _, _ = access_export
    out = tmp_path / "opened"
    opened = CliRunner().invoke(main, ["dsar", "open-export", str(outcome.export_path),
                                       "--passphrase", outcome.passphrase, "--out", str(out)])
    assert opened.exit_code == 0, opened.output
    written = [p for p in out.rglob("*")]
    assert any(p.name == "users.json" for p in written)
    for p in written:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
    assert json.loads((out / "data" / "app_db" / "users.json").read_bytes()) == \
        open_export(outcome.export_path, outcome.passphrase)["data/app_db/users.json"]

    evil = tmp_path / "evil.zip"
    with pyzipper.AESZipFile(evil, "w", encryption=pyzipper.WZ_AES) as z:
        z.setpassword(b"pw-pw-pw-pw-pw-pw-pw")
        z.writestr("ok.json", "{}")
        z.writestr("../escaped.json", "{}")
    with pytest.raises(ExportError, match="outside"):
        extract_export(evil, "pw-pw-pw-pw-pw-pw-pw", tmp_path / "evil-out")
    assert not (tmp_path / "escaped.json").exists()
    assert not (tmp_path / "evil-out" / "ok.json").exists()
