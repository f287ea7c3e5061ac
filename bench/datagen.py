"""Seeded generator of a users-like table for benchmarks: 20 columns, any number of rows.

    python bench/datagen.py --rows 1000000 --out bench-data/users_1m.parquet

Structured personal columns (e-mail, CN mobile, international phone, CN resident id,
cards, IBAN, SSN, IP, USCC), non-personal columns (ids, dates, amounts, status, uuid) and
a free-text ``notes`` column where a few rows mention an identifier. Every value is made
with numpy in bulk, so 10M rows take about a minute; rows are written in row groups of
``--chunk`` rows, so memory stays bounded. The same seed always gives the same file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FIRST = np.array(["Alice", "Bob", "Carla", "David", "Emma", "Farid", "Grace", "Hiro", "Ines",
                  "Jonas", "Wei", "Fang", "Li Na", "Mateo", "Olga", "Priya", "Sven", "Yuki"])
LAST = np.array(["Smith", "Müller", "Dubois", "Rossi", "Wang", "Zhang", "Tanaka", "Silva",
                 "Kowalski", "Novak", "Chen", "Garcia", "Jensen", "Okafor", "Ivanova"])
DOMAINS = np.array(["example.com", "example.org", "mail.example.cn", "corp.example.de"])
CITIES = np.array(["Berlin", "Paris", "Shanghai", "Beijing", "San Francisco", "Lyon", "Madrid",
                   "Shenzhen", "Munich", "Austin", "Hangzhou", "Rome"])
STATUS = np.array(["active", "suspended", "closed", "pending"])
AREAS = np.array(["110101", "110105", "310115", "440305", "330106", "510104", "320102"])
NOTE_TEMPLATES = np.array([
    "Customer asked about delivery times for the spring catalogue",
    "Follow-up scheduled after the product demo, no issues reported",
    "Refund processed, order number {n}, customer satisfied",
    "Prefers contact in the afternoon; newsletter opt-out confirmed",
    "客户反馈物流较慢，已安排加急处理",
    "Warranty claim for model X{n} accepted after inspection",
])
COLUMNS = ("user_id", "email", "full_name", "cn_mobile", "phone_intl", "cn_resident_id",
           "credit_card", "cn_bank_card", "iban", "us_ssn", "ip_address", "uscc", "city",
           "country", "status", "signup_date", "last_login", "balance", "device_id", "notes")
# Columns holding personal data, and the entity type a detector should report for them.
TRUTH = {"email": "EMAIL_ADDRESS", "cn_mobile": "CN_MOBILE", "phone_intl": "PHONE_NUMBER",
         "cn_resident_id": "CN_RESIDENT_ID", "credit_card": "CREDIT_CARD",
         "cn_bank_card": "CN_BANK_CARD", "iban": "IBAN_CODE", "us_ssn": "US_SSN",
         "ip_address": "IP_ADDRESS", "uscc": "CN_USCC"}
STRUCTURED = tuple(c for c in COLUMNS if c != "notes")


def _digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return rng.integers(0, 10, size=(n, width), dtype=np.int64)


def _join_digits(d: np.ndarray) -> pa.Array:
    chars = (d + ord("0")).astype(np.uint8)
    return _fixed(chars)


def _fixed(chars: np.ndarray) -> pa.Array:
    """An n × width uint8 matrix as an Arrow string array."""
    n, width = chars.shape
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(chars.tobytes())])


def _luhn_complete(body: np.ndarray) -> np.ndarray:
    """Append the Luhn check digit to each row of digits."""
    d = body[:, ::-1].copy()
    d[:, 0::2] *= 2
    d[d > 9] -= 9
    check = (10 - d.sum(axis=1) % 10) % 10
    return np.concatenate([body, check[:, None]], axis=1)


def resident_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """Valid GB 11643 numbers: real area, birth date 1950-2005, check digit."""
    area = np.array([[int(c) for c in a] for a in AREAS])[rng.integers(0, len(AREAS), n)]
    born = np.datetime64("1950-01-01") + rng.integers(0, 20000, n).astype("timedelta64[D]")
    ymd = pc.strftime(pa.array(born.astype("datetime64[s]")), format="%Y%m%d")
    ymd_digits = np.frombuffer(ymd.buffers()[2], dtype=np.uint8)[: n * 8].reshape(n, 8) - 48
    body = np.concatenate([area, ymd_digits.astype(np.int64), _digits(rng, n, 3)], axis=1)
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = np.frombuffer(b"10X98765432", dtype=np.uint8)[(body * weights).sum(axis=1) % 11]
    chars = np.concatenate([(body + 48).astype(np.uint8), check[:, None]], axis=1)
    return _fixed(chars)


def cn_mobiles(rng: np.random.Generator, n: int) -> pa.Array:
    """Valid mainland mobile numbers (138/139/150/186/199 ranges)."""
    prefixes = np.array([[1, 3, 8], [1, 3, 9], [1, 5, 0], [1, 8, 6], [1, 9, 9]])
    body = np.concatenate([prefixes[rng.integers(0, len(prefixes), n)], _digits(rng, n, 8)],
                          axis=1)
    return _join_digits(body)


def intl_phones(rng: np.random.Generator, n: int) -> pa.Array:
    """UK and German landlines in international form, e.g. +44 20 7946 0958."""
    uk = pc.binary_join_element_wise("+44 20 7946 ", _join_digits(_digits(rng, n, 4)), "")
    de = pc.binary_join_element_wise("+49 30 ", _join_digits(_digits(rng, n, 6)), "")
    return pc.if_else(pa.array(rng.random(n) < 0.5), uk, de)


def cards(rng: np.random.Generator, n: int, prefix: tuple[int, ...], length: int) -> pa.Array:
    """Luhn-valid card numbers starting with ``prefix``."""
    head = np.tile(np.array(prefix), (n, 1))
    body = np.concatenate([head, _digits(rng, n, length - 1 - len(prefix))], axis=1)
    return _join_digits(_luhn_complete(body))


def ibans(rng: np.random.Generator, n: int) -> pa.Array:
    """Valid German IBANs (DE, 22 characters) with their mod 97 check digits."""
    bban = _digits(rng, n, 18)
    # DE = 13 14; check digits = 98 - (bban + "131400") mod 97
    rem = np.zeros(n, dtype=np.int64)
    for col in np.concatenate([bban, np.tile([1, 3, 1, 4, 0, 0], (n, 1))], axis=1).T:
        rem = (rem * 10 + col) % 97
    check = 98 - rem
    chars = np.concatenate([np.tile(np.frombuffer(b"DE", np.uint8), (n, 1)),
                            (np.stack([check // 10, check % 10], axis=1) + 48).astype(np.uint8),
                            (bban + 48).astype(np.uint8)], axis=1)
    return _fixed(chars)


def ssns(rng: np.random.Generator, n: int) -> pa.Array:
    """Valid-looking SSNs AAA-GG-SSSS (area 001-665, group 01-99, serial 0001-9999)."""
    area = rng.integers(1, 666, n)
    group = rng.integers(1, 100, n)
    serial = rng.integers(1, 10000, n)
    d = np.stack([area // 100, area // 10 % 10, area % 10, group // 10, group % 10,
                  serial // 1000, serial // 100 % 10, serial // 10 % 10, serial % 10], axis=1)
    chars = (d + 48).astype(np.uint8)
    dash = np.full((n, 1), ord("-"), np.uint8)
    return _fixed(np.concatenate([chars[:, :3], dash, chars[:, 3:5], dash, chars[:, 5:]], axis=1))


def ips(rng: np.random.Generator, n: int) -> pa.Array:
    """IPv4 addresses."""
    octets = [pc.cast(pa.array(rng.integers(lo, 255, n)), pa.string()) for lo in (1, 0, 0, 1)]
    return pc.binary_join_element_wise(*octets, ".")


def usccs(rng: np.random.Generator, n: int) -> pa.Array:
    """Unified social credit codes with a valid check character (digits-only body),
    registered in one of the AREAS."""
    alphabet = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", np.uint8)
    areas = np.array([[int(c) for c in a] for a in AREAS])[rng.integers(0, len(AREAS), n)]
    body = np.concatenate([np.tile([9, 1], (n, 1)), areas, _digits(rng, n, 9)], axis=1)
    weights = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
    check = alphabet[(31 - (body * weights).sum(axis=1) % 31) % 31]
    return _fixed(np.concatenate([(body + 48).astype(np.uint8), check[:, None]], axis=1))


def notes(rng: np.random.Generator, n: int, emails: pa.Array, ids: pa.Array,
          mention_share: float) -> pa.Array:
    """Support notes; ``mention_share`` of them mention an e-mail or a resident id."""
    text = pa.array(NOTE_TEMPLATES[rng.integers(0, len(NOTE_TEMPLATES), n)])
    text = pc.replace_substring(text, "{n}", str(int(rng.integers(1000, 99999))))
    draw = rng.random(n)
    with_email = pc.binary_join_element_wise(text, "; contact", emails, " ")
    with_id = pc.binary_join_element_wise(text, "; 身份证号", ids, " ")
    text = pc.if_else(pa.array(draw < mention_share / 2), with_email, text)
    return pc.if_else(pa.array((draw >= mention_share / 2) & (draw < mention_share)), with_id,
                      text)


def users_batch(rng: np.random.Generator, start: int, n: int,
                mention_share: float = 0.01) -> pa.RecordBatch:
    """``n`` rows of the users-like table, ids from ``start``."""
    first = pa.array(FIRST[rng.integers(0, len(FIRST), n)])
    last = pa.array(LAST[rng.integers(0, len(LAST), n)])
    local = pc.utf8_lower(pc.replace_substring_regex(
        pc.replace_substring(pc.binary_join_element_wise(first, last, "."), "ü", "ue"),
        " ", ""))
    number = pc.cast(pa.array(rng.integers(1, 10_000, n)), pa.string())
    emails = pc.binary_join_element_wise(
        pc.binary_join_element_wise(local, number, ""),
        pa.array(DOMAINS[rng.integers(0, len(DOMAINS), n)]), "@")
    rid = resident_ids(rng, n)
    signup = np.datetime64("2018-01-01") + rng.integers(0, 3000, n).astype("timedelta64[D]")
    login = signup.astype("datetime64[s]") + rng.integers(0, 10**8, n).astype("timedelta64[s]")
    uuid_hex = _fixed(np.frombuffer(b"0123456789abcdef", np.uint8)[rng.integers(0, 16, (n, 32))])
    device = pc.binary_join_element_wise(*[pc.utf8_slice_codeunits(uuid_hex, a, b) for a, b in
                                           ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))], "-")
    arrays = {
        "user_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "email": emails,
        "full_name": pc.binary_join_element_wise(first, last, " "),
        "cn_mobile": cn_mobiles(rng, n),
        "phone_intl": intl_phones(rng, n),
        "cn_resident_id": rid,
        "credit_card": cards(rng, n, (4,), 16),
        "cn_bank_card": cards(rng, n, (6, 2, 2, 2), 19),
        "iban": ibans(rng, n),
        "us_ssn": ssns(rng, n),
        "ip_address": ips(rng, n),
        "uscc": usccs(rng, n),
        "city": pa.array(CITIES[rng.integers(0, len(CITIES), n)]),
        "country": pa.array(np.array(["DE", "FR", "CN", "US", "IT", "ES"])[rng.integers(0, 6, n)]),
        "status": pa.array(STATUS[rng.integers(0, len(STATUS), n)]),
        "signup_date": pc.strftime(pa.array(signup.astype("datetime64[s]")), format="%Y-%m-%d"),
        "last_login": pc.strftime(pa.array(login), format="%Y-%m-%dT%H:%M:%S"),
        "balance": pc.cast(pa.array(np.round(rng.random(n) * 5000, 2)), pa.string()),
        "device_id": device,
        "notes": notes(rng, n, emails, rid, mention_share),
    }
    return pa.RecordBatch.from_pydict({k: v.combine_chunks() if isinstance(v, pa.ChunkedArray)
                                       else v for k, v in arrays.items()})


def users_batches(rows: int, seed: int = 20261125, chunk: int = 1_000_000,
                  mention_share: float = 0.01):
    """The table as record batches of at most ``chunk`` rows (same seed, same data)."""
    rng = np.random.default_rng(seed)
    for start in range(0, rows, chunk):
        yield users_batch(rng, start, min(chunk, rows - start), mention_share)


def write_users(path: Path, rows: int, seed: int = 20261125, chunk: int = 1_000_000) -> Path:
    """Write the table to a Parquet file, one row group per chunk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for batch in users_batches(rows, seed, chunk):
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema)
            writer.write_batch(batch, row_group_size=min(chunk, 1_000_000))
    finally:
        if writer is not None:
            writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    write_users(args.out, args.rows, args.seed, args.chunk)
    print(f"wrote {args.rows:,} rows × {len(COLUMNS)} columns to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
