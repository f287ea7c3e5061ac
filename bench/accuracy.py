"""Accuracy of the column engine against Presidio per cell, on a labelled seeded cell set.

    python bench/accuracy.py [--per-type 300]

Positives: values of every entity type from the benchmark generator (structured cells)
plus the same values inside sentences (free text). Hard negatives: the same values with
one digit changed (check digit broken), dates, decimals, order numbers, UUIDs, plain
words. Prints precision, recall and F1 per entity type for both detectors, and for the
identifiers carrying a check digit, how many of the engine's reports hold no value that
the reference validator (python-stdnum and the like, the per-text path's) accepts.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

# bench/ last on sys.path: a module there may shadow a library (e.g. a file named like a library).
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]

import datagen  # noqa: E402

SENTENCES = ("Please update my record: {} thanks", "客户提供的信息 {} 已核验",
             "Called back, the customer confirmed {} as correct")
NEGATIVES = ("2024-01-05", "2023-12-31T10:00:00", "3431.82", "20231105123456", "order 4711",
             "b7b260b4-fd1b-eb18-38bf-64c0d927fb5b", "Alice Smith", "Berlin", "pending",
             "version 1.2.3", "room 101", "12:30:00")


def _corrupt(rng: random.Random, value: str) -> str:
    digits = [i for i, c in enumerate(value) if c.isdigit()]
    i = digits[-1] if rng.random() < 0.5 else rng.choice(digits)
    return value[:i] + str((int(value[i]) + rng.randrange(1, 10)) % 10) + value[i + 1:]


def labelled_cells(per_type: int, seed: int) -> list[tuple[str, str | None]]:
    """(cell, entity type or None) pairs."""
    rng = random.Random(seed)
    batch = next(datagen.users_batches(per_type, seed, chunk=per_type))
    cells: list[tuple[str, str | None]] = []
    for column, entity in datagen.TRUTH.items():
        values = [str(v) for v in batch.column(column).to_pylist()]
        for v in values:
            cells.append((v, entity))
        for v in values[: per_type // 3]:
            cells.append((rng.choice(SENTENCES).format(v), entity))
        # Identifiers with a check digit only (an SSN with a digit changed is still an SSN).
        if entity not in ("EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CN_MOBILE", "US_SSN"):
            for v in values[: per_type // 2]:  # broken check digit: not an identifier
                cells.append((_corrupt(rng, v), None))
    cells += [(v, None) for v in NEGATIVES for _ in range(per_type // 10)]
    return cells


def _score(pred: list[set[str]], truth: list[str | None], types: list[str]) -> dict:
    out = {}
    for t in types:
        tp = sum(1 for p, y in zip(pred, truth, strict=True) if t in p and y == t)
        fp = sum(1 for p, y in zip(pred, truth, strict=True) if t in p and y != t)
        fn = sum(1 for p, y in zip(pred, truth, strict=True) if t not in p and y == t)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[t] = (precision, recall, f1)
    return out


def engine_predictions(cells: list[str]) -> list[set[str]]:
    """Entity types the column engine finds in each cell (one cell per scan)."""
    from governance.detection.cell_scan import ColumnScanner

    out = []
    for v in cells:
        s = ColumnScanner("value")
        s.add(pa.array([v]))
        out.append(set(s.matches.anywhere))
    return out


def _luhn(value: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(value.replace(" ", "").replace("-", ""))


def _resident_id(value: str) -> bool:
    """GB 11643 check digit and a real birth date, by python-stdnum (its birth-place check
    is left out: a district's code is given to people born before the district existed)."""
    from stdnum.cn import ric

    v = ric.compact(value)
    if len(v) != 18 or not v[:17].isdigit() or ric.calc_check_digit(v) != v[-1]:
        return False
    try:
        ric.get_birth_date(v)
    except ValueError:
        return False
    return True


def _reference() -> dict[str, object]:
    """python-stdnum's validator for each identifier whose validity a check digit decides."""
    from stdnum import iban
    from stdnum.cn import uscc

    return {"CN_BANK_CARD": _luhn, "CN_RESIDENT_ID": _resident_id, "CN_USCC": uscc.is_valid,
            "CREDIT_CARD": _luhn, "IBAN_CODE": iban.is_valid}


def failed_checks(cells: list[str], pred: list[set[str]]) -> Counter[str]:
    """Per checksummed type: cells reported as that type in which no span fitting the
    recognizer's pattern passes python-stdnum's validator (target: none)."""
    from governance.detection.recognizers import load_specs

    reference = _reference()
    patterns = {s.entity_type: [p for _, p in s.compiled()] for s in load_specs()}
    bad: Counter[str] = Counter(dict.fromkeys(reference, 0))
    for cell, types in zip(cells, pred, strict=True):
        for t in types & reference.keys():
            spans = [m.group(0) for p in patterns[t] for m in p.finditer(cell)]
            if not any(reference[t](v) for v in [*spans, cell.strip()]):
                bad[t] += 1
    return bad


def presidio_predictions(cells: list[str], min_score: float) -> list[set[str]]:
    """Entity types Presidio's analyze() finds in each cell."""
    from governance.detection.analyzer import analyze_text

    return [{e.type for e in analyze_text(v, score_threshold=min_score)} for v in cells]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    labelled = labelled_cells(args.per_type, args.seed)
    cells = [c for c, _ in labelled]
    truth = [t for _, t in labelled]
    types = sorted(set(datagen.TRUTH.values()))
    print(f"{len(cells):,} labelled cells: {Counter(t or 'none' for t in truth)}")
    engine_pred = engine_predictions(cells)
    engine = _score(engine_pred, truth, types)
    bad = failed_checks(cells, engine_pred)
    presidio = _score(presidio_predictions(cells, 0.4), truth, types)
    print(f"\n{'entity':16} {'engine P':>9} {'R':>6} {'F1':>6}   {'Presidio P':>10} {'R':>6} "
          f"{'F1':>6}")
    for t in types:
        e, p = engine[t], presidio[t]
        print(f"{t:16} {e[0]:>9.3f} {e[1]:>6.3f} {e[2]:>6.3f}   {p[0]:>10.3f} {p[1]:>6.3f} "
              f"{p[2]:>6.3f}")
    print(f"{'macro F1':16} {np.mean([engine[t][2] for t in types]):>23.3f}   "
          f"{np.mean([presidio[t][2] for t in types]):>24.3f}")
    print("\nengine reports failing the reference check (python-stdnum), target 0: " +
          ", ".join(f"{t} {n}" for t, n in sorted(bad.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
