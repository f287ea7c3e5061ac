"""The column engine: each recognizer on whole cells and inside text, its vectorized
checks against python-stdnum / phonenumbers, full scans of large columns."""

from __future__ import annotations

import random

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stdnum import iban as std_iban
from stdnum import luhn as std_luhn
from stdnum.cn import ric
from stdnum.cn import uscc as std_uscc
from stdnum.us import ssn as std_ssn

from governance.audit_store import AuditStore
from governance.detection import checksums
from governance.detection.cell_scan import ColumnScanner, TableScanner, scan_columns
from governance.detection.recognizers import load_specs
from governance.detection.recognizers.cn_mobile import is_cn_mobile
from governance.detection.recognizers.cn_resident_id import is_cn_resident_id
from governance.detection.recognizers.phone import PHONE_REGIONS
from governance.detection.recognizers.phone import SPEC as PHONE
from governance.inventory import load_inventory
from governance.scan import ScanMode, run_scan

SPECS = load_specs()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.entity_type)
def test_each_recognizer_on_whole_cells(spec) -> None:
    valid = scan_columns({"c": pa.array(list(spec.examples_valid))})["c"]
    assert valid.whole[spec.entity_type] == len(spec.examples_valid), valid
    invalid = scan_columns({"c": pa.array(list(spec.examples_invalid))})["c"]
    assert invalid.anywhere[spec.entity_type] == 0, invalid


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.entity_type)
def test_each_recognizer_inside_text(spec) -> None:
    texts = [f"Kunde schrieb: {v} (bitte prüfen) and more words here" for v in
             spec.examples_valid]
    m = scan_columns({"notes": pa.array(texts)})["notes"]
    assert m.anywhere[spec.entity_type] == len(texts), m
    assert m.whole[spec.entity_type] == 0
    assert m.free_text


def _corrupt(rng: random.Random, value: str) -> str:
    i = rng.randrange(len(value))
    digit = str((int(value[i]) + rng.randrange(1, 10)) % 10) if value[i].isdigit() else "7"
    return value[:i] + digit + value[i + 1:]


def _agree(validator, reference, values: list[str]) -> None:
    got = validator(pa.array(values)).tolist()
    want = [bool(reference(v)) for v in values]
    assert got == want, [v for v, g, w in zip(values, got, want, strict=True) if g != w][:5]


def test_vectorized_checks_agree_with_stdnum() -> None:
    rng = random.Random(7)
    cards = []
    for _ in range(300):
        body = "".join(rng.choice("0123456789") for _ in range(rng.randrange(12, 19)))
        cards.append(body + std_luhn.calc_check_digit(body))
    cards += [_corrupt(rng, c) for c in cards]
    _agree(checksums.luhn, std_luhn.is_valid, cards)

    ids = []
    for _ in range(300):
        body = "110105" + f"{rng.randrange(1900, 2020)}{rng.randrange(1, 13):02d}" \
               f"{rng.randrange(1, 32):02d}{rng.randrange(1000):03d}"
        ids.append(body + ric.calc_check_digit(body + "0"))  # it skips the last character
    assert sum(map(is_cn_resident_id, ids)) > 250  # real dates: most are valid
    ids += [_corrupt(rng, v) for v in ids]
    _agree(checksums.cn_resident_id, is_cn_resident_id, ids)

    codes = []
    divisions = sorted(checksums.USCC_DIVISIONS)
    for i in range(300):  # a real division mostly, any two digits sometimes
        division = rng.choice(divisions) if i % 4 else f"{rng.randrange(100):02d}"
        body = "91" + division + "".join(rng.choice("0123456789") for _ in range(4)) + \
            "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
        codes.append(body + std_uscc.calc_check_digit(body))
    codes += [_corrupt(rng, v) for v in codes]
    _agree(checksums.uscc, checksums.is_uscc, codes)
    assert 0 < sum(map(checksums.is_uscc, codes)) < sum(map(std_uscc.is_valid, codes))

    ibans = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606",
             "NL91ABNA0417164300", "CH9300762011623852957", "MT84MALT011000012345MTLCAST001S",
             "LC55HEMM000100010012001200023015", "SC18SSCB11010000000000001497USD"]
    ibans += [_corrupt(rng, v) for v in ibans for _ in range(20)]
    _agree(checksums.iban, std_iban.is_valid, ibans)

    ssns = [f"{rng.randrange(1000):03d}{rng.randrange(100):02d}{rng.randrange(10000):04d}"
            for _ in range(2000)] + ["078051120", "000123456", "666123456", "912345678"]
    _agree(checksums.us_ssn, std_ssn.is_valid, ssns)


def _valid_number(text: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text))
    except phonenumbers.NumberParseException:
        return False


def test_phone_checks_agree_with_phonenumbers() -> None:
    rng = random.Random(11)
    numbers = []
    for region in PHONE_REGIONS:
        for kind in (phonenumbers.PhoneNumberType.MOBILE,
                     phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            numbers.append(e164)
            numbers += [e164[:3] + _corrupt(rng, e164[3:]) for _ in range(10)]
    got = PHONE.validate_cells(pa.array(numbers)).tolist()
    want = [_valid_number(n) for n in numbers]
    assert got == want, [n for n, g, w in zip(numbers, got, want, strict=True) if g != w]
    assert sum(want) > len(PHONE_REGIONS)  # the test set holds valid numbers too


def test_cn_mobile_check_agrees_with_phonenumbers() -> None:
    rng = random.Random(3)
    numbers = [f"1{rng.randrange(30, 100)}{rng.randrange(10**8):08d}" for _ in range(3000)]
    spec = next(s for s in SPECS if s.entity_type == "CN_MOBILE")
    got = spec.validate_cells(pa.array(numbers)).tolist()
    assert got == [is_cn_mobile(n) for n in numbers]
    assert 0 < sum(got) < len(numbers)


def test_dates_decimals_and_ids_are_not_personal() -> None:
    m = scan_columns({
        "created": pa.array(["2024-01-05", "2023-12-31T10:00:00", "12:30:00"]),
        "amount": pa.array(["3431.82", "20240105.5"]),
        "order_no": pa.array(["20231105123456", "20231105123457"]),
        "uuid": pa.array(["b7b260b4-fd1b-eb18-38bf-64c0d927fb5b"]),
        "ints": pa.array([1, 2, 300000], pa.int64()),
    })
    assert all(not c.anywhere for c in m.values()), m


def test_numbers_stored_as_integers_are_checked() -> None:
    m = scan_columns({"mobile": pa.array([13812345678, 15912345678, 42], pa.int64())})["mobile"]
    assert m.whole["CN_MOBILE"] == 2 and m.cells == 3


def test_overlapping_spans_go_to_the_first_ranked_recognizer() -> None:
    # A resident id that also passes the USCC check must count once, as a resident id.
    candidates = [(b := f"441202194912310{n:02d}") + ric.calc_check_digit(b + "0")
                  for n in range(100)]
    rid = next(c for c in candidates if checksums.is_uscc(c))
    assert checksums.cn_resident_id(pa.array([rid]))[0]
    m = scan_columns({"t": pa.array([f"客户身份证号 {rid} 已核验，请勿外传"])})["t"]
    assert dict(m.anywhere) == {"CN_RESIDENT_ID": 1}


def test_examples_are_masked() -> None:
    m = scan_columns({"e": pa.array(["wang.fang@example.cn", "13812345678"])})["e"]
    shown = [x for xs in m.examples.values() for x in xs]
    assert shown and not any("wang.fang" in x or "13812345678" in x for x in shown)


def test_batches_add_up_to_one_scan() -> None:
    values = [f"user{i}@example.com" if i % 3 else f"note {i}" for i in range(3000)]
    one = ColumnScanner("c")
    one.add(pa.array(values))
    many = ColumnScanner("c")
    for i in range(0, 3000, 256):
        many.add(pa.array(values[i:i + 256]))
    assert one.matches.whole == many.matches.whole
    assert one.matches.cells == many.matches.cells == 3000


def test_one_planted_id_in_a_million_row_column(tmp_path) -> None:
    rows = 1_000_000
    templates = np.array(["Customer asked about delivery times, order 4711 shipped",
                          "Follow-up call booked for next week", "客户反馈物流较慢，已安排加急处理",
                          "Refund processed on 2024-03-01 for 35.20 EUR"])
    notes = templates[np.random.default_rng(5).integers(0, len(templates), rows)].astype(object)
    notes[777_777] = "Kunde hat Ausweis geschickt: 11010519491231002X bitte löschen"
    table = pa.table({"id": pa.array(np.arange(rows)), "notes": pa.array(notes, pa.string())})
    folder = tmp_path / "crm"
    folder.mkdir()
    pq.write_table(table, folder / "tickets.parquet", row_group_size=100_000)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\norganization: Test\nsources:\n  - name: crm\n    kind: parquet\n"
        "    connection: {path: crm}\n    owner: dpo@example.org\n    jurisdictions: [CN]\n"
        "    tables: []\n")
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    result = run_scan(load_inventory(inventory), store, mode=ScanMode.FULL)
    assert result.status == "succeeded", result.errors
    notes_finding = next(f for f in result.findings if f.column_name == "notes")
    assert notes_finding.sampled_values == rows
    assert notes_finding.matched_values == 1
    assert notes_finding.entity_types == ["CN_RESIDENT_ID"]
    assert notes_finding.status == "undeclared_table_pii"
    assert notes_finding.masked_samples == ["1***************2X"]
    [run] = store.scan_runs(1)
    assert run["mode"] == "full"
    # The sampled scan of the same column (200 rows) does not see it: why full scans exist.
    sampled = run_scan(load_inventory(inventory), store, mode=ScanMode.SAMPLED)
    assert next(f for f in sampled.findings if f.column_name == "notes").detected_category \
        is None


def test_table_scanner_uses_threads_and_counts_rows() -> None:
    batch = pa.record_batch({"a": pa.array(["x@example.com"] * 10),
                             "b": pa.array(["13812345678"] * 10)})
    with TableScanner(["a", "b"], workers=2) as scanner:
        scanner.add(batch)
        scanner.add(batch)
    r = scanner.results()
    assert scanner.rows == 20
    assert r["a"].whole["EMAIL_ADDRESS"] == 20 and r["b"].whole["CN_MOBILE"] == 20


MIXED = ["wang.fang@example.cn", " 13812345678 ", "2024-01-05", "11010519491231002X",
         "call me on +44 20 7946 0958 tomorrow please", "11010519491231002Y", "active",
         "", "4111 1111 1111 1111", "order 20231105123456"]


def _summary(m: object) -> tuple:
    return (m.cells, m.matched_cells, dict(m.whole), dict(m.anywhere), m.text_checked,
            m.text_cells)


def test_repetitive_columns_count_each_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A column of few distinct values is scanned as its distinct values; every count is
    the count the cell-by-cell scan gives."""
    from governance.detection import cell_scan

    values = pa.array([MIXED[i % 7 * i % len(MIXED)] for i in range(20_000)])
    deduplicated = ColumnScanner("c")
    deduplicated.add(values)
    monkeypatch.setattr(cell_scan, "DISTINCT_SHARE", -1.0)  # never deduplicate
    cell_by_cell = ColumnScanner("c")
    cell_by_cell.add(values)
    assert _summary(deduplicated.matches) == _summary(cell_by_cell.matches)
    m = deduplicated.matches
    per_value = {v: values.to_pylist().count(v) for v in MIXED}
    assert m.whole["CN_RESIDENT_ID"] == per_value["11010519491231002X"]
    assert m.whole["CN_MOBILE"] == per_value[" 13812345678 "]
    assert m.anywhere["PHONE_NUMBER"] == per_value[MIXED[4]]
    assert m.cells == 20_000 - per_value[""]


def test_parallel_scan_equals_one_column_at_a_time() -> None:
    """Batches scanned several at a time on threads give what scanning each column's
    batches in order gives, also when some batches lack a column."""
    rng = random.Random(11)
    batches = []
    for i in range(40):
        cells = [rng.choice(MIXED) + ("" if i < 20 else f" #{rng.randrange(10**6)}")
                 for _ in range(500)]
        columns = {"a": pa.array(cells), "b": pa.array(list(reversed(cells)))}
        if i % 7 == 3:
            del columns["b"]
        batches.append(pa.record_batch(columns))
    with TableScanner(["a", "b"], workers=2) as scanner:
        seen = []
        parallel = scanner.scan(iter(batches), on_batch=lambda: seen.append(scanner.rows))
    assert seen == [500 * k for k in range(1, 41)]
    for name in ("a", "b"):
        one = ColumnScanner(name)
        for b in batches:
            if name in b.schema.names:
                one.add(b.column(name))
        assert _summary(parallel[name]) == _summary(one.matches)
        assert parallel[name].examples == one.matches.examples


def test_a_failing_source_stops_the_scan_with_its_error() -> None:
    def batches():
        yield pa.record_batch({"a": pa.array(["x@example.com"])})
        raise OSError("disk went away")

    with TableScanner(["a"]) as scanner, pytest.raises(OSError, match="disk went away"):
        scanner.scan(batches())


def test_a_failing_column_stops_the_scan_without_hanging() -> None:
    """An error in one column's batch ends the scan with that error; the batches waiting
    behind it do not block the worker threads."""
    import dataclasses
    import threading

    def validator(values: pa.Array) -> np.ndarray:
        if "BOOM-123" in values.to_pylist():
            raise ValueError("validator failed")
        return np.ones(len(values), dtype=bool)

    spec = dataclasses.replace(PHONE, cell_pattern=r"[A-Z]+-\d+", cell_validator=validator,
                               cell_normalize=None)
    batches = [pa.record_batch({"a": pa.array([f"OK-{i}", "BOOM-123" if i == 5 else "x"]),
                                "b": pa.array(["y", "z"])}) for i in range(40)]
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            with TableScanner(["a", "b"], specs=[spec], workers=2) as scanner:
                scanner.scan(iter(batches))
        except ValueError as e:
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the scan hung"
    assert [str(e) for e in outcome] == ["validator failed"]
