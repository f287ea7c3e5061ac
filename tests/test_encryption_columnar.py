"""Column-wise field encryption (issue 15, performance): the batch path that encrypts a
Parquet file must make exactly the decisions and envelopes of the per-cell path.

- ``seal_encoded`` gives byte-identical envelopes to ``seal_cell`` for the same nonces
  (text and bytes forms, any value length, several key-id lengths), and a fresh nonce for
  every cell of a batch;
- ``OwnerIndex.owner_codes`` finds the same owner as ``OwnerIndex.owners`` for every row
  (integer and text keys, two references that disagree, dangling references, nulls, an
  owner two hops away);
- encrypting a Parquet file (batch path) and the same rows as a CSV file (per-row path;
  no empty text, which a CSV file reads as NULL)
  give the same counts, and every cell decrypts, with associated data built here, to its
  original value; cells already sealed keep their bytes.
"""

from __future__ import annotations

import base64
import gc
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.audit_store import AuditStore
from governance.crypto import field
from governance.crypto.keystore import LocalKeyStore
from governance.encryption import SubjectKeys, encrypt, load_policy, writers
from governance.encryption.subjects import CODE_NOBODY, CODE_SHARED, NOBODY, SHARED, OwnerIndex
from governance.inventory import load_inventory
from governance.sources.pool import ConnectorPool


def test_b64_rows_is_unpadded_base64url_of_each_row() -> None:
    for n in range(0, 50):
        mat = np.frombuffer(os.urandom(7 * n), np.uint8).reshape(7, n)
        got = [bytes(r) for r in field._b64_rows(mat)]
        assert got == [base64.urlsafe_b64encode(bytes(r)).rstrip(b"=") for r in mat], n


def test_seal_encoded_is_byte_identical_to_seal_cell_and_opens() -> None:
    rng = random.Random(15)
    ciphers = [AESGCM(os.urandom(32)) for _ in range(4)]
    key_ids = ["sk-" + os.urandom(10).hex(), "sk-" + os.urandom(4).hex(),
               "ix-" + os.urandom(12).hex(), "abcdefgh-" + os.urandom(32).hex()]
    texts = [rng.choice(["", "a", "ab", "abc", "Zoë Ångström", "😀" * rng.randint(1, 5),
                         "x" * rng.randint(0, 300)]) for _ in range(3000)]
    for text_form in (True, False):
        values = texts if text_form else [t.encode() for t in texts]
        arr = pa.array(values, pa.string() if text_form else pa.binary())
        which = [rng.randrange(4) for _ in values]
        aead = [ciphers[i] for i in which]
        kids = [key_ids[i] for i in which]
        aads = [field.associated_data("src", "tbl", "col", i) for i in range(len(values))]
        nonces = os.urandom(12 * len(values))
        got = field.seal_encoded(aead, kids, field.encode_values(arr), aads, text_form,
                                 nonces).to_pylist()
        want = [field.seal_cell(aead[i], kids[i], values[i], aads[i], text_form,
                                nonces[12 * i:12 * i + 12]) for i in range(len(values))]
        assert got == want
        # And without given nonces: each cell its own nonce, each opens in its place only.
        sealed = field.seal_encoded(aead, kids, field.encode_values(arr), aads, text_form)
        envs = [field.parse(v) for v in sealed.to_pylist()]
        assert len({e.body[:12] for e in envs}) == len(envs)
        for i, env in enumerate(envs):
            assert env.key_id == kids[i]
            assert field.open_cell(aead[i], env, aads[i]) == values[i]
        moved = field.associated_data("src", "tbl", "col", len(values) + 1)
        try:
            field.open_cell(aead[0], envs[0], moved)
        except field.EnvelopeError:
            pass
        else:
            raise AssertionError("a ciphertext moved to another row decrypted")


def test_associated_data_column_matches_associated_data() -> None:
    for arr in (pa.array([1, -7, None, 10**18], pa.int64()), pa.array([5, 0], pa.uint8()),
                pa.array(["a", None, "Zoë"]), pa.array([1.5, None]),
                pa.array([b"\x00\xff", None], pa.binary())):
        assert field.associated_data_column("s", "t", "c", arr) == \
            [field.associated_data("s", "t", "c", v) for v in arr.to_pylist()]


def test_subject_fingerprints_are_hmac_sha256_of_the_person_row(tmp_path: Path) -> None:
    """Checked against cryptography's HMAC (not the code under test) under the index key
    unwrapped from the store, each by a new SubjectKeys (nothing cached)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.hmac import HMAC

    from governance.encryption.keys import INDEX_SUBJECT

    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    ks = LocalKeyStore(os.urandom(32))
    SubjectKeys(store, ks)
    row = store.query("SELECT key_id, wrapped FROM subject_keys WHERE subject = ?",
                      [INDEX_SUBJECT])[0]
    index_key = ks.unwrap(row["key_id"], bytes(row["wrapped"]))
    samples: list[tuple[Any, str]] = [
        (7, "7"), (-3, "-3"), (10**20, str(10**20)), (True, "True"), ("a@b.example", "a@b.example"),
        ("Zoë 张伟", "Zoë 张伟"), ("", ""), (b"\x00\xff", "00ff"), (1.5, "1.5"),
        (("x", 2), "x\x1f2"), ([3, "y"], "3\x1fy")]
    person = ("shop", "customers")

    def expected(text: str) -> str:
        mac = HMAC(index_key, hashes.SHA256())
        mac.update(f"shop.customers\x00{text}".encode())
        return "subj-" + mac.finalize().hex()[:32]

    want = [expected(text) for _, text in samples]
    assert SubjectKeys(store, ks).subject_refs([(person, v) for v, _ in samples]) == want
    one = SubjectKeys(store, ks)
    assert [one.subject_ref(person, v) for v, _ in samples] == want
    assert len(set(want)) == len(want)


def _estate(root: Path, rng: random.Random, n: int = 3000) -> Path:
    data = root / "data"
    data.mkdir()
    people = 200
    pq.write_table(pa.table({"id": pa.array(range(1, people + 1), pa.int64())}),
                   data / "customers.parquet")
    pq.write_table(pa.table({"code": pa.array([f"M{i:04d}" for i in range(50)])}),
                   data / "members.parquet")
    pq.write_table(pa.table({"order_id": pa.array(range(500), pa.int64()),
                             "customer_id": pa.array([rng.randint(1, people + 20)
                                                      for _ in range(500)], pa.int64())}),
                   data / "orders.parquet")

    def maybe(v: Any, empty: float = 0.05) -> Any:
        return None if rng.random() < empty else v

    cards = []
    for i in range(n):
        if i % 17 == 0:
            cards.append(None)
        else:
            cards.append(f"4{rng.randrange(10**15):015d}" + "x" * rng.randint(0, 20))
    table = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "payer": pa.array([maybe(rng.randint(1, people + 20), 0.4) for _ in range(n)],
                          pa.int64()),
        # Often the payer again (the same owner twice is not shared).
        "payee": pa.array([None] * n, pa.int64()),
        "member": pa.array([maybe(f"M{rng.randrange(60):04d}", 0.8) for _ in range(n)]),
        "order_id": pa.array([maybe(rng.randrange(520), 0.5) for _ in range(n)], pa.int64()),
        "card": pa.array(cards, pa.string()),
        "note": pa.array([maybe("n" * rng.randint(1, 40)) for _ in range(n)], pa.string()),
    })
    payer = table.column("payer").to_pylist()
    payee = [p if rng.random() < 0.3 else maybe(rng.randint(1, people + 20), 0.7)
             for p in payer]
    table = table.set_column(2, "payee", pa.array(payee, pa.int64()))
    pq.write_table(table, data / "payments.parquet", row_group_size=700)
    csv_dir = root / "csvdata"
    csv_dir.mkdir()
    for name in ("customers", "members", "orders"):
        pacsv.write_csv(pq.read_table(data / f"{name}.parquet"), csv_dir / f"{name}.csv")
    pacsv.write_csv(table, csv_dir / "payments.csv")
    tables = (
        "      - name: customers\n        subject_key: id\n"
        "      - name: members\n        subject_key: code\n"
        "      - name: orders\n        references: [{column: customer_id, to: customers.id}]\n"
        "      - name: payments\n        references:\n"
        "          - {column: payer, to: customers.id}\n"
        "          - {column: payee, to: customers.id}\n"
        "          - {column: member, to: members.code}\n"
        "          - {column: order_id, to: orders.order_id}\n"
        "        columns: {card: {category: financial.card}, note: {category: financial.card}}\n")
    inv = root / "inventory.yaml"
    inv.write_text(
        "version: 1\norganization: t\nsources:\n"
        f"  - name: pq\n    kind: parquet\n    connection: {{path: {data}}}\n"
        "    owner: t@example.com\n    jurisdictions: [EU]\n    tables:\n" + tables +
        f"  - name: csv\n    kind: csv\n    connection: {{path: {csv_dir}}}\n"
        "    owner: t@example.com\n    jurisdictions: [EU]\n    tables:\n" + tables)
    (root / "encryption.yaml").write_text(
        "version: 1\nrequire: [financial.card]\nrow_keys:\n  pq.payments: id\n"
        "  csv.payments: id\n")
    return inv


def test_owner_codes_agree_with_owners(tmp_path: Path) -> None:
    rng = random.Random(7)
    inv = load_inventory(_estate(tmp_path, rng))
    with ConnectorPool(inv) as pool:
        for table in (("pq", "payments"), ("pq", "orders"), ("pq", "customers"),
                      ("pq", "members")):
            owners = OwnerIndex(inv, pool)
            cols = sorted(set(owners.needed_columns(table)))
            data = pq.read_table(tmp_path / "data" / f"{table[1]}.parquet", columns=cols)
            rows = data.to_pylist()
            want = OwnerIndex(inv, pool).owners(table, rows)
            codes = owners.owner_codes(table, data)
            got = [SHARED if c == CODE_SHARED else NOBODY if c == CODE_NOBODY
                   else owners.known[c] for c in codes]
            assert got == want, table
            # The same through the search of sorted integer keys (keys too sparse for a
            # table indexed by key).
            assert owners._dense or table[1] in ("customers", "members")
            owners._dense.clear()
            assert owners.owner_codes(table, data).tolist() == codes.tolist()
            if table == ("pq", "payments"):
                # The estate exercises each case.
                assert SHARED in want and NOBODY in want
                assert any(w not in (SHARED, NOBODY) and w[0] == ("pq", "members")
                           for w in want)


def _cells(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={"card": pa.string(), "note": pa.string(), "member": pa.string()})
    ).to_pylist()


@pytest.mark.parametrize("fork", ["off", "on", "copy_killed"])
@pytest.mark.parametrize("held", [None, 7])
def test_parquet_batch_path_matches_csv_row_path_and_decrypts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: str, held: int | None) -> None:
    """``fork``: the Parquet file's odd row groups sealed by a forked copy of the process
    (``on``), by a copy killed at its second group (``copy_killed``: this process seals
    the groups it did not send), or no copy (``off``): the same result each way. ``held``:
    at most that many ciphers kept built (the default bounds memory on large runs; with 7,
    every batch builds most of its ciphers again, and the results are the same)."""
    from governance.encryption import forked
    from governance.encryption import keys as keys_module

    if held is not None:
        monkeypatch.setattr(keys_module, "CIPHERS_HELD", held)

    rng = random.Random(11)

    def per_row(*args: Any) -> None:
        raise AssertionError("a Parquet file was encrypted by the per-row path")

    monkeypatch.setattr(writers, "_copy_parquet", per_row)
    copies: list[tuple[int, bool]] = []
    real_close = forked.ForkedGroups.close

    def close(self: forked.ForkedGroups) -> None:
        copies.append((len(self.batches), self.failed))
        real_close(self)

    monkeypatch.setattr(forked.ForkedGroups, "close", close)
    monkeypatch.setenv("GOVKIT_ENCRYPT_FORK", "0" if fork == "off" else "1")
    monkeypatch.setattr(forked, "FORK_MIN_ROWS", 0)
    if fork == "copy_killed":
        monkeypatch.setenv("GOVKIT_FAULT", "encrypt.forked_group:2")
    monkeypatch.setattr(writers, "TRANSFORM_ROWS", 256)   # row groups of 700: 3 slices
    inv_path = _estate(tmp_path, rng)
    before = pq.read_table(tmp_path / "data" / "payments.parquet").to_pylist()
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    policy = load_policy(tmp_path / "encryption.yaml", inv)
    keys = SubjectKeys(store, LocalKeyStore(os.urandom(32)))

    # A cell sealed before (e.g. by an interrupted run) keeps its bytes.
    first = pq.read_table(tmp_path / "data" / "payments.parquet")
    pre = field.seal_cell(AESGCM(os.urandom(32)), "sk-" + "0" * 20, "earlier", b"x")
    cards = first.column("card").to_pylist()
    cards[1] = pre
    first = first.set_column(first.schema.get_field_index("card"), "card",
                             pa.array(cards, pa.string()))
    pq.write_table(first, tmp_path / "data" / "payments.parquet", row_group_size=700)
    csv_rows = pacsv.read_csv(tmp_path / "csvdata" / "payments.csv", convert_options=
                              pacsv.ConvertOptions(column_types={"card": pa.string()}))
    csv_rows = csv_rows.set_column(csv_rows.schema.get_field_index("card"), "card",
                                   pa.array(cards, pa.string()))
    pacsv.write_csv(csv_rows, tmp_path / "csvdata" / "payments.csv")

    # Objects are kept out of garbage collection around the fork and given back after
    # it; objects a host process froze itself stay frozen.
    host = [object()] if fork == "on" else []
    if host:
        gc.freeze()
    host_frozen = gc.get_freeze_count()
    out = {}
    for source in ("pq", "csv"):
        run = encrypt(inv, store, keys, policy, apply=True, sources=[source],
                      tables=[f"{source}.payments"])
        assert run.ok, [t.describe() for t in run.tables]
        out[source] = run.tables[0]
    a, b = out["pq"], out["csv"]
    assert (a.rows, a.cells_sealed, a.cells_already, a.rows_shared, a.rows_unowned,
            a.subjects) == (b.rows, b.cells_sealed, b.cells_already, b.rows_shared,
                            b.rows_unowned, b.subjects)
    assert a.cells_sealed > 0 and a.rows_shared > 0 and a.rows_unowned > 0

    pq_rows = _cells(tmp_path / "data" / "payments.parquet")
    csv_cells = _cells(tmp_path / "csvdata" / "payments.csv")
    assert pq_rows[1]["card"] == pre and csv_cells[1]["card"] == pre
    sealed = 0
    pairs: dict[str, str] = {}
    for i, (orig, got, other) in enumerate(zip(before, pq_rows, csv_cells, strict=True)):
        assert {k: got[k] for k in ("id", "payer", "payee", "member", "order_id")} == \
               {k: orig[k] for k in ("id", "payer", "payee", "member", "order_id")}
        for col in ("card", "note"):
            v, w = got[col], other[col]
            if i == 1 and col == "card":
                continue
            if orig[col] is None:
                assert v is None
                continue
            # Both paths sealed the cell, or both left it in clear.
            assert field.looks_sealed(v) == field.looks_sealed(w), (i, col)
            if not field.looks_sealed(v):
                assert v == orig[col]
                continue
            env, env2 = field.parse(v), field.parse(w)
            # The same subject in both (each source has its own person table, so its own
            # key): a key of one file always pairs with the same key of the other.
            assert pairs.setdefault(env.key_id, env2.key_id) == env2.key_id
            assert field.open_cell(keys.cipher(env.key_id), env, field.associated_data(
                "pq", "payments", col, orig["id"])) == orig[col]
            sealed += 1
    assert sealed == a.cells_sealed
    assert len(set(pairs.values())) == len(pairs) == a.subjects
    assert len(keys._aead) <= (held or keys_module.CIPHERS_HELD) < \
        (a.subjects if held else 10**9)
    # 3000 rows in groups of 700: the copy had groups 1 and 3.
    assert copies == {"off": [], "on": [(2, False)], "copy_killed": [(2, True)]}[fork]
    if host:
        assert gc.get_freeze_count() >= host_frozen > 0
        gc.unfreeze()
    else:
        assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("slice_rows", [300, 262_144])
def test_parquet_where_every_cell_is_sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            slice_rows: int) -> None:
    """Each row group's column replaced whole (no cell kept), in one piece or in slices:
    still in row order."""
    monkeypatch.setattr(writers, "TRANSFORM_ROWS", slice_rows)
    rng = random.Random(3)
    inv_path = _estate(tmp_path, rng, n=2100)
    f = tmp_path / "data" / "payments.parquet"
    table = pq.read_table(f)
    n = table.num_rows
    table = table.set_column(table.schema.get_field_index("payer"), "payer",
                             pa.array([1 + i % 150 for i in range(n)], pa.int64()))
    for col in ("payee", "member", "order_id"):
        i = table.schema.get_field_index(col)
        table = table.set_column(i, col, pa.nulls(n, table.schema.field(i).type))
    table = table.set_column(table.schema.get_field_index("card"), "card",
                             pa.array([f"card-{i}-" + "z" * (i % 7) for i in range(n)]))
    pq.write_table(table, f, row_group_size=700)
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    keys = SubjectKeys(store, LocalKeyStore(os.urandom(32)))
    run = encrypt(inv, store, keys, load_policy(tmp_path / "encryption.yaml", inv),
                  apply=True, sources=["pq"], tables=["pq.payments"], columns=["card"])
    assert run.ok and run.tables[0].cells_sealed == n
    meta = pq.ParquetFile(f).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [700] * 3
    after = pq.read_table(f).to_pylist()
    for orig, got in zip(table.to_pylist(), after, strict=True):
        env = field.parse(got["card"])
        assert field.open_cell(keys.cipher(env.key_id), env, field.associated_data(
            "pq", "payments", "card", orig["id"])) == orig["card"]
        assert got["note"] == orig["note"]


def test_parquet_blind_index_is_written_for_each_sealed_cell(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blind index of a cell lands on the cell's own row (cells are sealed in key
    order and put back)."""
    monkeypatch.setattr(writers, "TRANSFORM_ROWS", 150)
    rng = random.Random(5)
    inv_path = _estate(tmp_path, rng, n=1500)
    f = tmp_path / "data" / "payments.parquet"
    table = pq.read_table(f)
    table = table.append_column("card_bidx", pa.nulls(table.num_rows, pa.string()))
    pq.write_table(table, f, row_group_size=400)
    (tmp_path / "encryption.yaml").write_text(
        "version: 1\nrequire: []\ncolumns:\n  - {column: pq.payments.card, blind_index: "
        "card_bidx}\nrow_keys:\n  pq.payments: id\n")
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    keys = SubjectKeys(store, LocalKeyStore(os.urandom(32)))
    run = encrypt(inv, store, keys, load_policy(tmp_path / "encryption.yaml", inv),
                  apply=True, sources=["pq"])
    assert run.ok and run.tables[0].cells_sealed > 0
    checked = 0
    for orig, got in zip(table.to_pylist(), pq.read_table(f).to_pylist(), strict=True):
        if field.looks_sealed(got["card"]):
            assert got["card_bidx"] == keys.blind_index("pq", "payments", "card",
                                                        orig["card"])
            checked += 1
        else:
            assert got["card_bidx"] is None and got["card"] == orig["card"]
    assert checked == run.tables[0].cells_sealed


# -- new data keys committed in the background while a file is sealed -----------------

def _sealed_cells_open(store: AuditStore, ks: LocalKeyStore, before: list[dict[str, Any]],
                       path: Path) -> dict[str, int]:
    """Every sealed cell of ``path`` opens, with keys read afresh from the store (a new
    SubjectKeys, nothing cached) and associated data built here, to its original value;
    every other cell is unchanged. Returns the number of sealed cells per key id."""
    fresh = SubjectKeys(store, ks)
    per_key: dict[str, int] = {}
    for orig, got in zip(before, pq.read_table(path).to_pylist(), strict=True):
        for col in ("card", "note"):
            if not field.looks_sealed(got[col]):
                assert got[col] == orig[col]
                continue
            env = field.parse(got[col])
            assert field.open_cell(fresh.cipher(env.key_id), env, field.associated_data(
                "pq", "payments", col, orig["id"])) == orig[col]
            per_key[env.key_id] = per_key.get(env.key_id, 0) + 1
    return per_key


def _data_keys(store: AuditStore) -> dict[str, str]:
    """subject -> key id of every active data key (SQL written here)."""
    return {r["subject"]: r["key_id"] for r in store.query(
        "SELECT subject, key_id FROM subject_keys WHERE state = 'active' AND subject <> "
        "'__index__'")}


class _ForgetfulKeyStore(LocalKeyStore):
    """A key store whose unwrap gives back another key for one of the keys it wrapped (a
    faulty HSM): that key could never be recovered."""

    def unwrap_many(self, items: list[tuple[str, bytes]]) -> list[bytes]:
        out = super().unwrap_many(items)
        return [bytes(32), *out[1:]] if len(out) > 1 else out


@pytest.mark.parametrize("fork", ["0", "1"])
@pytest.mark.parametrize("source", ["pq", "csv"])
def test_a_data_key_that_does_not_unwrap_to_itself_is_never_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, fork: str) -> None:
    """New data keys are wrapped and unwrapped again before the cells sealed under them
    are written: a key store that cannot give one back leaves every file as it was and no
    key stored (Parquet: keys drawn first and committed once the forked copy runs; CSV:
    row by row)."""
    from governance.encryption import forked

    monkeypatch.setenv("GOVKIT_ENCRYPT_FORK", fork)
    monkeypatch.setattr(forked, "FORK_MIN_ROWS", 0)
    inv_path = _estate(tmp_path, random.Random(3))
    folder = tmp_path / ("data" if source == "pq" else "csvdata")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    keys = SubjectKeys(store, _ForgetfulKeyStore(os.urandom(32)))
    run = encrypt(inv, store, keys, load_policy(tmp_path / "encryption.yaml", inv),
                  apply=True, sources=[source], tables=[f"{source}.payments"])
    res = run.tables[0]
    assert not run.ok and "does not unwrap to itself" in (res.error or "")
    assert res.cells_sealed == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert _data_keys(store) == {}


@pytest.mark.parametrize("fault", ["another_run_made_a_key", "commit_fails",
                                   "after_commit_before_swap"])
def test_background_key_commit_faults_leave_the_file_and_a_rerun_completes(
        tmp_path: Path, fault: str) -> None:
    """A Parquet file's new data keys are committed in the background while its cells are
    sealed; the file is swapped in only after they landed. Whatever goes wrong on the
    way, the file is left byte for byte as it was, no cell is ever sealed under a key that
    is not stored, and a second run completes and decrypts."""
    from governance.errors import AuditStoreError, SourceError

    rng = random.Random(5)
    inv_path = _estate(tmp_path, rng)
    f = tmp_path / "data" / "payments.parquet"
    raw, listing = f.read_bytes(), sorted(p.name for p in f.parent.iterdir())
    before = pq.read_table(f).to_pylist()
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    policy = load_policy(tmp_path / "encryption.yaml", inv)
    ks = LocalKeyStore(os.urandom(32))
    keys = SubjectKeys(store, ks)
    other = SubjectKeys(store, ks)    # another run on the same store
    taken: list[str] = []
    store_new = keys._store_new

    def commit(table: pa.Table) -> set[str]:
        if fault == "another_run_made_a_key" and not taken:   # in the first commit only
            subject = table.column("subject")[0].as_py()
            taken.append(other.active_keys([subject])[subject][0])
        elif fault == "commit_fails":
            raise AuditStoreError("injected: the store went away")
        return store_new(table)

    keys._store_new = commit                      # type: ignore[method-assign]
    if fault == "after_commit_before_swap":
        settle = keys.settle

        def settle_then_fail() -> None:
            settle()
            raise SourceError("injected: the process stops before the swap")

        keys.settle = settle_then_fail            # type: ignore[method-assign]
    run = encrypt(inv, store, keys, policy, apply=True, sources=["pq"],
                  tables=["pq.payments"])
    res = run.tables[0]
    assert not run.ok and res.error and res.cells_sealed == 0
    assert f.read_bytes() == raw and sorted(p.name for p in f.parent.iterdir()) == listing
    stored = _data_keys(store)
    if fault == "another_run_made_a_key":
        assert "another run gave 1 of these subjects a data key" in res.error
        assert len(taken) == 1 and taken[0] in stored.values()
    elif fault == "commit_fails":
        assert "injected" in res.error and stored == {}
    else:
        assert "injected" in res.error and len(stored) > 0

    keys.__dict__.pop("_store_new")
    keys.__dict__.pop("settle", None)
    again = encrypt(inv, store, keys, policy, apply=True, sources=["pq"],
                    tables=["pq.payments"])
    assert again.ok, [t.describe() for t in again.tables]
    sealed = again.tables[0].cells_sealed
    assert sealed > 0
    per_key = _sealed_cells_open(store, ks, before, f)
    assert sum(per_key.values()) == sealed
    after = _data_keys(store)
    # One key per subject, every cell under a stored key; a key made before the fault
    # is kept and used, and the other run's key is the one its subject's cells use.
    assert set(per_key) <= set(after.values())
    assert len(after) == again.tables[0].subjects
    assert all(after[s] == k for s, k in stored.items())
    if fault == "after_commit_before_swap":
        assert after == stored     # every key was made by the first run, none again
    if taken:
        assert per_key.get(taken[0], 0) > 0


@pytest.mark.parametrize("boundary", ["a_key_commit_landed", "copy_forked",
                                      "commits_settled", "file_swapped"])
def test_killed_parquet_encryption_leaves_plaintext_or_valid_ciphertext(
        tmp_path: Path, boundary: str) -> None:
    """The process encrypting a Parquet file dies (os._exit: no cleanup) at each boundary
    of the background key commits, of the forked copy that seals half the row groups
    (just started) and of the swap. The file is then its old bytes or wholly sealed under
    stored keys, the store opens, and a second run completes (the copy did not outlive
    the process and keep the file locked)."""
    import subprocess
    import sys

    rng = random.Random(9)
    inv_path = _estate(tmp_path, rng)
    f = tmp_path / "data" / "payments.parquet"
    raw = f.read_bytes()
    before = pq.read_table(f).to_pylist()
    master = os.urandom(32)
    hooks = {
        "a_key_commit_landed": ("SubjectKeys", "_store_new", "governance.encryption.keys"),
        "copy_forked": ("ForkedGroups", "start", "governance.encryption.forked"),
        "commits_settled": ("SubjectKeys", "settle", "governance.encryption.keys"),
        "file_swapped": (None, "_sync_dir", "governance.sources.duckdb_source"),
    }
    owner, name, module = hooks[boundary]
    target = f"m.{owner}" if owner else "m"
    code = f"""
import importlib, os
from governance.audit_store import AuditStore
from governance.crypto.keystore import LocalKeyStore
from governance.encryption import SubjectKeys, encrypt, load_policy
from governance.inventory import load_inventory

import governance.encryption.forked as forked
forked.FORK_MIN_ROWS = 0     # the small file's odd row groups sealed by a forked copy
m = importlib.import_module({module!r})
original = getattr({target}, {name!r})

def dying(*args, **kwargs):
    original(*args, **kwargs)
    os._exit(9)

setattr({target}, {name!r}, dying)
inv = load_inventory({str(inv_path)!r})
store = AuditStore({str(tmp_path / "audit.duckdb")!r}, create=True)
keys = SubjectKeys(store, LocalKeyStore(bytes.fromhex({master.hex()!r})))
encrypt(inv, store, keys, load_policy({str(tmp_path / "encryption.yaml")!r}, inv),
        apply=True, sources=["pq"], tables=["pq.payments"])
"""
    died = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert died.returncode == 9, died.stderr
    store = AuditStore(tmp_path / "audit.duckdb")
    ks = LocalKeyStore(master)
    stored = _data_keys(store)
    # (Killed just after the fork, the background key commit may not have landed yet.)
    assert stored or boundary == "copy_forked", "the child died before any key was stored"
    if boundary == "file_swapped":
        per_key = _sealed_cells_open(store, ks, before, f)
        assert set(per_key) <= set(stored.values()) and sum(per_key.values()) > 0
    else:
        assert f.read_bytes() == raw
    inv = load_inventory(inv_path)
    keys = SubjectKeys(store, ks)
    again = encrypt(inv, store, keys, load_policy(tmp_path / "encryption.yaml", inv),
                    apply=True, sources=["pq"], tables=["pq.payments"])
    assert again.ok, [t.describe() for t in again.tables]
    assert [p.name for p in f.parent.iterdir() if p.name.startswith(".")] == []
    per_key = _sealed_cells_open(store, ks, before, f)
    after = _data_keys(store)
    assert set(per_key) <= set(after.values())
    assert all(after[s] == k for s, k in stored.items())   # no key made twice
    if boundary == "file_swapped":
        assert again.tables[0].cells_sealed == 0
    else:
        assert sum(per_key.values()) == again.tables[0].cells_sealed > 0


@pytest.mark.parametrize("source", ["pq", "csv"])
def test_dry_run_progress_counts_the_rows_a_run_would_change(tmp_path: Path,
                                                             source: str) -> None:
    """The dry run's progress says how many rows would be sealed: the number the run then
    changes (it said 0 before)."""
    import re as re_

    inv_path = _estate(tmp_path, random.Random(4))
    inv = load_inventory(inv_path)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    policy = load_policy(tmp_path / "encryption.yaml", inv)
    keys = SubjectKeys(store, LocalKeyStore(os.urandom(32)))
    said: dict[bool, list[str]] = {False: [], True: []}
    for apply in (False, True):
        run = encrypt(inv, store, keys, policy, apply=apply, sources=[source],
                      tables=[f"{source}.payments"], progress=said[apply].append)
        assert run.ok
    counts = {apply: int(re_.search(r"(\d+) row\(s\) (?:to seal|sealed)",
                                    said[apply][-1]).group(1)) for apply in said}
    assert counts[False] == counts[True] > 0
