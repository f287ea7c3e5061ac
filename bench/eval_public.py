"""Accuracy on data nobody on this project wrote, next to Presidio's in the same run.

    python bench/eval_public.py [--cache DIR] [--skip-tpcds]

Text detection (the ``govkit detect`` path) on public test vectors:
  * IBAN_CODE, CN_RESIDENT_ID, CN_USCC: the valid and invalid numbers of python-stdnum's own
    test files (``tests/test_*.doctest`` of its sdist from PyPI); the label is the test file's
    (valid when the doctest expects no error);
  * PHONE_NUMBER: libphonenumber's example number of every region and number type
    (``phonenumbers.example_number_for_type``), written internationally and, after a
    ``Phone:`` label with the record's country known, nationally; negatives are the same
    numbers with their last digit dropped that phonenumbers calls invalid;
  * CREDIT_CARD: Faker's card numbers of each brand it ships (its IIN prefixes and lengths,
    Luhn), and the same with the check digit changed (invalid by stdnum.luhn).
Column classification on two public sample databases, labelled in ``bench/labels/*.yaml``
with a reason per label: Chinook (PyPI wheel dictum-core==0.1.15) and TPC-DS (tpcgen-cli).

Presidio baseline: its AnalyzerEngine with every predefined recognizer and no NER model;
for columns, a column takes the category of the entity Presidio finds in at least half of
its sampled cells.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as a script, bench/ comes first on sys.path, where a module may shadow a library
# the analyzer imports (a file named like a library): look there last.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
LABELS = HERE / "labels"
DEFAULT_CACHE = Path(os.environ.get("GOVKIT_PUBLIC_CACHE",
                                    Path.home() / ".cache" / "govkit-public"))
STDNUM_TESTS = ("test_iban.doctest", "test_cn_ric.doctest", "test_cn_uscc.doctest")
CHINOOK_WHEEL = "dictum-core==0.1.15"
CHINOOK_MEMBER = "dictum_core/examples/chinook/chinook.sqlite.sql"
PRESIDIO_COLUMN_CELLS = 100


# --- downloads (pip, into a cache; nothing committed) ----------------------------------------

def _pip_download(spec: str, dest: Path, sdist: bool = False) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), spec]
    if sdist:
        args[5:5] = ["--no-binary", ":all:"]
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    return dest


def stdnum_tests(cache: Path) -> Path:
    """The folder of python-stdnum's test files, from its sdist (downloaded once)."""
    import stdnum

    version = stdnum.__version__
    out = cache / f"python-stdnum-{version}-tests"
    if all((out / n).exists() for n in STDNUM_TESTS):
        return out
    folder = _pip_download(f"python-stdnum=={version}", cache / "sdist", sdist=True)
    archive = next(folder.glob(f"python_stdnum-{version}.tar.gz"),
                   None) or next(folder.glob(f"python-stdnum-{version}.tar.gz"))
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if m.name.endswith(STDNUM_TESTS) and "/tests/" in m.name:
                f = tar.extractfile(m)
                assert f is not None
                (out / Path(m.name).name).write_bytes(f.read())
    return out


def chinook_db(cache: Path) -> Path:
    """Chinook as an SQLite file built from the wheel's SQL script (downloaded once)."""
    db = cache / "chinook.sqlite"
    if db.exists():
        return db
    folder = _pip_download(CHINOOK_WHEEL, cache / "wheels")
    wheel = next(folder.glob("dictum_core-0.1.15-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        script = z.read(CHINOOK_MEMBER).decode("utf-8")
    tmp = db.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.executescript(script)
    con.close()
    tmp.rename(db)
    return db


def tpcds_dir(cache: Path) -> Path:
    """TPC-DS scale 0.01 as CSV files, generated once with tpcgen-cli."""
    out = cache / "tpcds-0.01"
    if (out / "customer.csv").exists():
        return out
    exe = Path(sys.executable).with_name("tpcgen-cli")
    subprocess.run([str(exe) if exe.exists() else "tpcgen-cli", "tpcds", "csv", "-s", "0.01",
                    "--output-dir", str(out)], check=True, capture_output=True, timeout=600)
    return out


# --- public test vectors ---------------------------------------------------------------------

_BLOCK = re.compile(r">>> numbers = '''\n(.*?)'''\n>>> \[ ?x for x in numbers\.splitlines\(\) "
                    r"if x and (not )?\w+\.is_valid\(x\)", re.S)
_CALL = re.compile(r">>> \w+\.validate\('([^']+)'\)[^\n]*\n([^\n]*)")


def doctest_vectors(path: Path) -> list[tuple[str, bool]]:
    """(number, valid) pairs from a python-stdnum doctest file: the number blocks checked
    with ``is_valid`` (``not is_valid`` lists valid numbers) and ``validate()`` calls
    (valid unless a Traceback follows)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for mt in _BLOCK.finditer(text):
        valid = mt.group(2) is not None
        for line in mt.group(1).splitlines():
            value = line[4:].strip() if line.startswith("... ") else ""
            if value:
                out.append((value, valid))
    for mt in _CALL.finditer(text):
        out.append((mt.group(1), not mt.group(2).startswith("Traceback")))
    return list(dict.fromkeys(out))


def phone_vectors() -> list[tuple[str, str | None, str | None]]:
    """(text, label, country) from libphonenumber's example numbers of every region/type."""
    import phonenumbers
    from phonenumbers import PhoneNumberFormat as F
    from phonenumbers import PhoneNumberType as T

    types = [T.FIXED_LINE, T.MOBILE, T.TOLL_FREE, T.PREMIUM_RATE, T.SHARED_COST, T.VOIP,
             T.PERSONAL_NUMBER, T.PAGER, T.UAN, T.VOICEMAIL]
    out: list[tuple[str, str | None, str | None]] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in types:
            n = phonenumbers.example_number_for_type(region, t)
            if n is None:
                continue
            out.append((f"Call {phonenumbers.format_number(n, F.INTERNATIONAL)} today",
                        "PHONE_NUMBER", None))
            out.append((f"Phone: {phonenumbers.format_number(n, F.NATIONAL)}", "PHONE_NUMBER",
                        region))
            national = str(n.national_number)
            short = phonenumbers.PhoneNumber(country_code=n.country_code,
                                             national_number=int(national[:-1] or "0"))
            if len(national) > 3 and not phonenumbers.is_valid_number(short):
                out.append((f"Call {phonenumbers.format_number(short, F.INTERNATIONAL)} today",
                            None, None))
    return out


def card_vectors(seed: int = 14, per_brand: int = 40) -> list[tuple[str, str | None]]:
    """(text, label): Faker's card numbers per brand, and with a changed check digit."""
    from faker import Faker
    from stdnum import luhn

    fake = Faker()
    Faker.seed(seed)
    rng = random.Random(seed)
    out: list[tuple[str, str | None]] = []
    for brand in ("maestro", "mastercard", "visa13", "visa16", "visa19", "amex", "discover",
                  "diners", "jcb15", "jcb16"):
        for i in range(per_brand):
            number = fake.credit_card_number(card_type=brand)
            printed = " ".join(number[k:k + 4] for k in range(0, len(number), 4)) \
                if i % 2 else number
            out.append((f"Paid with card {printed} yesterday", "CREDIT_CARD"))
            wrong = number[:-1] + str((int(number[-1]) + rng.randrange(1, 10)) % 10)
            if not luhn.is_valid(wrong):
                out.append((f"Paid with card {wrong} yesterday", None))
    return out


def text_vectors(cache: Path) -> tuple[list[tuple[str, str | None, str | None]], dict[str, str]]:
    """All text vectors (text, label, country) and where each type's labels came from."""
    tests = stdnum_tests(cache)
    rows: list[tuple[str, str | None, str | None]] = []
    files = {"IBAN_CODE": "test_iban.doctest", "CN_RESIDENT_ID": "test_cn_ric.doctest",
             "CN_USCC": "test_cn_uscc.doctest"}
    for etype, name in files.items():
        for value, valid in doctest_vectors(tests / name):
            rows.append((f"Please use {value} for this.", etype if valid else None, None))
    rows += phone_vectors()
    rows += [(t, label, None) for t, label in card_vectors()]
    import stdnum

    sources = {t: f"python-stdnum {stdnum.__version__} sdist tests/{n}" for t, n in files.items()}
    import phonenumbers

    sources["PHONE_NUMBER"] = (f"phonenumbers {phonenumbers.__version__} "
                               "example_number_for_type, every region and type")
    import faker

    sources["CREDIT_CARD"] = f"Faker {faker.VERSION} credit_card_number per brand"
    return rows, sources


# --- scoring ---------------------------------------------------------------------------------

# Types scored together: a mainland mobile is a phone number, a UnionPay card a card.
SCORED_AS = {"CN_MOBILE": "PHONE_NUMBER", "CN_BANK_CARD": "CREDIT_CARD"}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 (1.0 when there is nothing to find and nothing found)."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score_text(pred: list[set[str]], truth: list[str | None], types: list[str]
               ) -> dict[str, tuple[int, int, int]]:
    """Per type: (tp, fp, fn) over lines."""
    out = {}
    for t in types:
        tp = sum(1 for p, y in zip(pred, truth, strict=True) if t in p and y == t)
        fp = sum(1 for p, y in zip(pred, truth, strict=True) if t in p and y != t)
        fn = sum(1 for p, y in zip(pred, truth, strict=True) if t not in p and y == t)
        out[t] = (tp, fp, fn)
    return out


def presidio_engine():
    """Presidio's AnalyzerEngine with all its predefined recognizers and no NER model."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    from governance.detection.analyzer import _offline_tldextract

    _offline_tldextract()
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def evaluate_text(cache: Path) -> dict[str, Any]:
    """Per entity type P/R/F1 of govkit's text path and Presidio's, and invalid reports."""
    from stdnum import iban, luhn
    from stdnum.cn import uscc

    from governance.detection import checksums
    from governance.detection.analyzer import analyze_text
    from governance.detection.recognizers.cn_resident_id import is_cn_resident_id

    rows, sources = text_vectors(cache)
    presidio = presidio_engine()
    ours, theirs, truth = [], [], []
    invalid: Counter[str] = Counter()
    checks = {"IBAN_CODE": iban.is_valid, "CREDIT_CARD": lambda s: luhn.is_valid(
        re.sub(r"[ -]", "", s)), "CN_BANK_CARD": lambda s: luhn.is_valid(re.sub(r"[ -]", "", s)),
        "CN_RESIDENT_ID": is_cn_resident_id,
        "CN_USCC": lambda s: uscc.is_valid(s) and checksums.is_uscc(s)}
    for text, label, country in rows:
        found = analyze_text(text, score_threshold=0.4, country=country)
        for e in found:
            check = checks.get(e.type)
            if check is not None and not check(text[e.start:e.end]):
                invalid[e.type] += 1
        ours.append({SCORED_AS.get(e.type, e.type) for e in found})
        got = presidio.analyze(text=text, language="en", score_threshold=0.4)
        theirs.append({SCORED_AS.get(r.entity_type, r.entity_type) for r in got})
        truth.append(label)
    types = ["IBAN_CODE", "CREDIT_CARD", "PHONE_NUMBER", "CN_RESIDENT_ID", "CN_USCC"]
    return {"ours": score_text(ours, truth, types), "presidio": score_text(theirs, truth, types),
            "support": Counter(t for t in truth), "lines": len(rows), "sources": sources,
            "invalid_reports": invalid}


def load_labels(name: str) -> dict[str, Any]:
    """A labels file of bench/labels."""
    import yaml

    return yaml.safe_load((LABELS / f"{name}.yaml").read_text(encoding="utf-8"))


def chinook_tables(db: Path) -> tuple[dict[str, dict[str, list[Any]]], dict[str, set[str]]]:
    """Every table's columns and values, and per table the columns that refer to a person's
    row (subject keys from the labels file, references from SQLite's foreign-key catalogue)."""
    labels = load_labels("chinook")
    subject = labels["subject_keys"]
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    tables: dict[str, dict[str, list[Any]]] = {}
    keys: dict[str, set[str]] = {}
    names = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for t in names:
        quoted = '"' + t.replace('"', '""') + '"'
        cur = con.execute(f"SELECT * FROM {quoted}")  # noqa: S608 - names from the catalogue
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
        tables[t] = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
        keys[t] = {subject[t]} if t in subject else set()
        for fk in con.execute(f"PRAGMA foreign_key_list({quoted})"):
            if subject.get(fk[2]) == fk[4]:
                keys[t].add(fk[3])
    con.close()
    return tables, keys


def tpcds_tables(folder: Path) -> tuple[dict[str, dict[str, list[Any]]], dict[str, set[str]]]:
    """The labelled TPC-DS tables (first ``rows`` rows) and their person-key columns."""
    import pyarrow.csv as pcsv

    labels = load_labels("tpcds")
    tables = {}
    keys: dict[str, set[str]] = {}
    for t in labels["tables"]:
        table = pcsv.read_csv(folder / f"{t}.csv").slice(0, labels["rows"])
        tables[t] = {c: table.column(c).to_pylist() for c in table.column_names}
        keys[t] = {labels["subject_keys"][t]} if t in labels["subject_keys"] else set()
    for col, target in labels["references"].items():
        t, c = col.split(".")
        tt, tc = target.split(".")
        if labels["subject_keys"].get(tt) == tc:
            keys[t].add(c)
    return tables, keys


def presidio_column(engine: Any, values: list[Any]) -> str | None:
    """The category of the entity Presidio finds in at least half of a column's cells."""
    from governance.taxonomy import ENTITY_CATEGORY

    cells = [str(v) for v in values if v is not None and str(v).strip()]
    if not cells:
        return None
    cells = random.Random(0).sample(cells, min(PRESIDIO_COLUMN_CELLS, len(cells)))
    counts: Counter[str] = Counter()
    for c in cells:
        found = engine.analyze(text=c, language="en", score_threshold=0.4)
        # Types in the order of Presidio's best score, so that a tie (an e-mail is also
        # read as a URL in every cell) goes to the better-scored type, not to hash order.
        best: dict[str, float] = {}
        for r in found:
            best[r.entity_type] = max(best.get(r.entity_type, 0.0), r.score)
        counts.update(sorted(best, key=lambda t: (-best[t], t)))
    if not counts:
        return None
    etype, n = counts.most_common(1)[0]
    return ENTITY_CATEGORY.get(etype, f"other:{etype}") if 2 * n >= len(cells) else None


def evaluate_columns(name: str, tables: dict[str, dict[str, list[Any]]],
                     keys: dict[str, set[str]], presidio: Any) -> dict[str, Any]:
    """Column classification against the labels: ours and Presidio's, and the errors."""
    from governance.detection.classifier import classify_column

    labels = {k: v["category"] for k, v in (load_labels(name)["labels"] or {}).items()}
    rows = []
    for t, columns in tables.items():
        for c, values in columns.items():
            got = classify_column(c, values, table=t, person_key=c in keys.get(t, set()))
            rows.append((f"{t}.{c}", labels.get(f"{t}.{c}"), got.category,
                         presidio_column(presidio, values)))
    return {"rows": rows}


def column_scores(rows: list[tuple[str, str | None, str | None, str | None]], which: int
                  ) -> tuple[dict[str, tuple[int, int, int]], tuple[int, int, int]]:
    """Per category (tp, fp, fn) and overall, for prediction column ``which`` (2 ours, 3
    Presidio's): a personal prediction is right when it equals the label."""
    per: dict[str, list[int]] = {}
    total = [0, 0, 0]
    for _, label, *preds in rows:
        pred = preds[which - 2]
        for cat in {label, pred} - {None}:
            per.setdefault(cat, [0, 0, 0])
        if pred is not None and pred == label:
            per[pred][0] += 1
            total[0] += 1
        else:
            if pred is not None:
                per[pred][1] += 1
                total[1] += 1
            if label is not None:
                per[label][2] += 1
                total[2] += 1
    return {k: tuple(v) for k, v in per.items()}, tuple(total)  # type: ignore[return-value]


def _line(name: str, ours: tuple[int, int, int], theirs: tuple[int, int, int] | None,
          support: int) -> str:
    p, r, f = prf(*ours)
    s = f"  {name:<24} {support:>5}  {p:5.3f} {r:5.3f} {f:5.3f}"
    if theirs is not None:
        p2, r2, f2 = prf(*theirs)
        s += f"   {p2:5.3f} {r2:5.3f} {f2:5.3f}"
    return s


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--skip-tpcds", action="store_true")
    parser.add_argument("--errors", action="store_true", help="list misclassified columns")
    parser.add_argument("--prepare", action="store_true",
                        help="only download/generate the public data into the cache")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        stdnum_tests(args.cache)
        chinook_db(args.cache)
        if not args.skip_tpcds:
            tpcds_dir(args.cache)
        print(f"public data ready in {args.cache}")
        return 0

    text = evaluate_text(args.cache)
    print(f"TEXT  {text['lines']} lines; per entity type (line-level)")
    print(f"  {'type':<24} {'pos':>5}  {'govkit P   R     F1':<19}   Presidio P   R     F1")
    for t, ours in text["ours"].items():
        theirs = text["presidio"][t]
        presidio_has = t not in ("CN_RESIDENT_ID", "CN_USCC")
        print(_line(t, ours, theirs if presidio_has else None, text["support"][t])
              + ("" if presidio_has else "   (no Presidio recognizer)"))
    print("  labels: " + "; ".join(f"{k}: {v}" for k, v in text["sources"].items()))
    print(f"  reports of a checksummed identifier that python-stdnum rejects: "
          f"{sum(text['invalid_reports'].values())} {dict(text['invalid_reports'])}")

    presidio = presidio_engine()
    dbs = [("chinook", *chinook_tables(chinook_db(args.cache)))]
    if not args.skip_tpcds:
        dbs.append(("tpcds", *tpcds_tables(tpcds_dir(args.cache))))
    all_rows = []
    for name, tables, keys in dbs:
        rows = evaluate_columns(name, tables, keys, presidio)["rows"]
        all_rows += rows
        _, ours = column_scores(rows, 2)
        _, theirs = column_scores(rows, 3)
        labelled = sum(1 for r in rows if r[1])
        print(f"\nCOLUMNS {name}: {len(rows)} columns, {labelled} labelled personal "
              f"(labels: bench/labels/{name}.yaml)")
        print(_line("all categories", ours, theirs, labelled))
        if args.errors:
            for col, label, pred, _ in rows:
                if label != pred:
                    print(f"    {col}: label {label}, govkit {pred}")
    per_ours, ours = column_scores(all_rows, 2)
    per_theirs, theirs = column_scores(all_rows, 3)
    print(f"\nCOLUMNS both databases, per category ({len(all_rows)} columns)")
    print(f"  {'category':<24} {'pos':>5}  {'govkit P   R     F1':<19}   Presidio P   R     F1")
    for cat in sorted(set(per_ours) | set(per_theirs)):
        support = sum(1 for r in all_rows if r[1] == cat)
        print(_line(cat, per_ours.get(cat, (0, 0, 0)), per_theirs.get(cat, (0, 0, 0)), support))
    print(_line("all categories", ours, theirs, sum(1 for r in all_rows if r[1])))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    raise SystemExit(main())
