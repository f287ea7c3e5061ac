"""The demo organisation: a seeded, generated-on-demand estate with known personal data.

``build_demo(target)`` writes an SQLite app database (users, orders, KYC records of
Chinese customers, support tickets with free-text notes), a marketing CSV export, a
Parquet event log with IP addresses, and the inventory describing them. One table of
the app database, ``legacy_newsletter_signups``, holds personal data but is deliberately
left out of the inventory: the scan must flag it.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from stdnum import luhn

DEMO_SEED = 20261125
DEFAULT_DEMO_DIR = Path("govkit-demo")
INVENTORY_TEMPLATE = Path(__file__).with_name("inventory.yaml")
UNDECLARED_TABLE = "legacy_newsletter_signups"

_FIRST = ["Alice", "Bruno", "Chloé", "Dmitri", "Emma", "Farid", "Greta", "Hugo", "Ines",
          "Jonas", "Keiko", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa"]
_LAST = ["Martin", "Schmidt", "Rossi", "Garcia", "Novak", "Dubois", "Jensen", "Silva",
         "Kowalski", "Murphy", "Tanaka", "Meyer", "Lopez", "Fischer", "Moreau"]
_CN_SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"]
_CN_GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟"]
_CN_AREAS = ["110101", "310115", "440305", "330106", "510107", "420106"]
_STREETS = ["Rue de Rivoli", "Hauptstraße", "Via Roma", "Main Street", "Calle Mayor",
            "Kongens Gade", "Market Street"]
_CITIES = [("75001", "Paris"), ("10115", "Berlin"), ("00184", "Roma"), ("94105", "San Francisco"),
           ("28013", "Madrid"), ("1050", "København")]
_CN_ADDRESSES = ["上海市浦东新区世纪大道100号", "北京市东城区王府井大街1号",
                 "深圳市南山区科技园路8号"]
_PHONE_FORMATS = ["+1 415-555-01{:02d}", "+44 20 7946 0{:03d}", "+49 30 9018{:02d}",
                  "+33 1 42 68 53 {:02d}"]
_EVENT_TYPES = ["page_view", "add_to_cart", "checkout", "search", "login"]
_AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)",
           "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"]


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo estate was written."""

    root: Path
    inventory: Path
    app_db: Path
    marketing_csv: Path
    events_dir: Path


def cn_resident_id(rng: random.Random, birth: date) -> str:
    """A syntactically valid Chinese resident ID (GB 11643 checksum) for a made-up person."""
    body = f"{rng.choice(_CN_AREAS)}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(body)) % 11
    check = (12 - total) % 11
    return body + ("X" if check == 10 else str(check))


def cn_bank_card(rng: random.Random) -> str:
    """A made-up UnionPay card number with a valid Luhn digit."""
    body = "6222" + "".join(str(rng.randint(0, 9)) for _ in range(14))
    return body + luhn.calc_check_digit(body)


def cn_mobile(rng: random.Random) -> str:
    """A made-up mainland mobile number."""
    return f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}"


def build_demo(target: Path = DEFAULT_DEMO_DIR, seed: int = DEMO_SEED, users: int = 240,
               overwrite: bool = False) -> DemoPaths:
    """Generate the demo estate in ``target`` (deterministic for a given seed)."""
    target = Path(target)
    paths = DemoPaths(target, target / "inventory.yaml", target / "app.db",
                      target / "marketing" / "contacts.csv", target / "events")
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} already exists; pass overwrite=True to rebuild it")
        shutil.rmtree(target)
    paths.marketing_csv.parent.mkdir(parents=True)
    paths.events_dir.mkdir(parents=True)
    rng = random.Random(seed)
    people = _people(rng, users)
    _write_app_db(rng, paths.app_db, people)
    _write_marketing(rng, paths.marketing_csv, people)
    _write_events(rng, paths.events_dir / "events.parquet", people)
    shutil.copyfile(INVENTORY_TEMPLATE, paths.inventory)
    return paths


def ensure_demo(target: Path = DEFAULT_DEMO_DIR) -> DemoPaths:
    """The demo estate in ``target``, generated first if it is not there."""
    target = Path(target)
    if (target / "inventory.yaml").exists() and (target / "app.db").exists():
        return DemoPaths(target, target / "inventory.yaml", target / "app.db",
                         target / "marketing" / "contacts.csv", target / "events")
    return build_demo(target, overwrite=True)


def _people(rng: random.Random, n: int) -> list[dict]:
    people = []
    for uid in range(1, n + 1):
        chinese = uid % 6 == 0
        birth = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 50))
        if chinese:
            name = rng.choice(_CN_SURNAMES) + "".join(rng.choices(_CN_GIVEN, k=rng.randint(1, 2)))
            email = f"user{uid}@qq.example.cn"
            phone = cn_mobile(rng)
            address = rng.choice(_CN_ADDRESSES)
        else:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            name = f"{first} {last}"
            email = f"{first.lower()}.{last.lower()}{uid}@example.com".replace("é", "e")
            phone = rng.choice(_PHONE_FORMATS).format(rng.randint(0, 99))
            zipcode, city = rng.choice(_CITIES)
            address = f"{rng.randint(1, 200)} {rng.choice(_STREETS)}, {zipcode} {city}"
        people.append({"id": uid, "name": name, "email": email, "phone": phone,
                       "birth": birth, "address": address, "chinese": chinese,
                       "country": "CN" if chinese else rng.choice(["FR", "DE", "IT", "US", "ES"])})
    return people


def _note(rng: random.Random, p: dict) -> str:
    if p["chinese"]:
        return rng.choice([
            f"用户来电，要求把手机号改为{cn_mobile(rng)}，已核实身份。",
            f"客户反映订单未送达，联系电话{p['phone']}，请尽快处理。",
            "客户询问退货政策，已发送说明。",
        ])
    return rng.choice([
        f"Customer wrote from {p['email']} asking about a late delivery.",
        f"Please call back on {p['phone']} regarding the refund request.",
        "Customer asked how to change the delivery slot; explained the options.",
        f"Refund approved; customer confirmed the address {p['address']}.",
    ])


def _write_app_db(rng: random.Random, path: Path, people: list[dict]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, full_name TEXT,
            phone TEXT, date_of_birth TEXT, country TEXT, created_at TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),
            amount_cents INTEGER, currency TEXT, status TEXT, shipping_address TEXT,
            created_at TEXT);
        CREATE TABLE user_kyc (user_id INTEGER PRIMARY KEY REFERENCES users(id),
            resident_id TEXT, bank_card TEXT, verified_at TEXT);
        CREATE TABLE support_tickets (id INTEGER PRIMARY KEY,
            user_id INTEGER REFERENCES users(id), subject TEXT, notes TEXT, opened_at TEXT);
        CREATE TABLE ticket_messages (id INTEGER PRIMARY KEY,
            ticket_id INTEGER REFERENCES support_tickets(id), sender TEXT, body TEXT);
        CREATE TABLE legacy_newsletter_signups (signup_id INTEGER PRIMARY KEY,
            email_address TEXT, name TEXT, signup_ip TEXT, signed_up_at TEXT);
    """)
    start = datetime(2023, 1, 1)
    for p in people:
        created = start + timedelta(minutes=rng.randint(0, 900_000))
        conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (p["id"], p["email"], p["name"], p["phone"], p["birth"].isoformat(),
                      p["country"], created.isoformat(timespec="seconds")))
        if p["chinese"]:
            conn.execute("INSERT INTO user_kyc VALUES (?, ?, ?, ?)",
                         (p["id"], cn_resident_id(rng, p["birth"]), cn_bank_card(rng),
                          created.date().isoformat()))
    order_id = 0
    for p in people:
        for _ in range(rng.randint(0, 5)):
            order_id += 1
            conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", (
                order_id, p["id"], rng.randint(500, 50_000), "CNY" if p["chinese"] else "EUR",
                rng.choice(["paid", "shipped", "refunded"]), p["address"],
                (start + timedelta(minutes=rng.randint(0, 900_000))).isoformat(
                    timespec="seconds")))
    ticket_id = message_id = 0
    for p in rng.sample(people, k=len(people) // 2):
        ticket_id += 1
        conn.execute("INSERT INTO support_tickets VALUES (?, ?, ?, ?, ?)", (
            ticket_id, p["id"], rng.choice(["Delivery", "Refund", "Account"]), _note(rng, p),
            (start + timedelta(minutes=rng.randint(0, 900_000))).isoformat(timespec="seconds")))
        for sender in ("customer", "agent"):
            message_id += 1
            body = (_note(rng, p) if sender == "customer"
                    else "Thank you for contacting Acme Shop support, we are on it.")
            conn.execute("INSERT INTO ticket_messages VALUES (?, ?, ?, ?)",
                         (message_id, ticket_id, sender, body))
    for i, p in enumerate(rng.sample(people, k=60), 1):
        conn.execute("INSERT INTO legacy_newsletter_signups VALUES (?, ?, ?, ?, ?)", (
            i, p["email"], p["name"], _ip(rng), f"2019-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"))
    conn.commit()
    conn.close()


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"2001:db8:{rng.randint(0, 0xffff):x}::{rng.randint(1, 0xffff):x}"
    octets = (rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
    return ".".join(map(str, octets))


def _write_marketing(rng: random.Random, path: Path, people: list[dict]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "first_name", "last_name", "opted_in", "campaign"])
        for p in people:
            if p["chinese"] or rng.random() < 0.3:
                continue
            first, last = p["name"].split(" ", 1)
            w.writerow([p["email"], first, last, rng.choice(["yes", "no"]),
                        rng.choice(["spring_sale", "black_friday", "newsletter"])])


def _write_events(rng: random.Random, path: Path, people: list[dict]) -> None:
    rows = []
    start = datetime(2026, 10, 1)
    for i in range(3000):
        p = rng.choice(people)
        rows.append({"event_id": f"ev-{i:06d}", "user_id": p["id"],
                     "event_type": rng.choice(_EVENT_TYPES), "ip_address": _ip(rng),
                     "user_agent": rng.choice(_AGENTS),
                     "occurred_at": start + timedelta(seconds=rng.randint(0, 5_000_000))})
    pq.write_table(pa.Table.from_pylist(rows), path)
