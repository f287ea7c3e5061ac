"""Arrow's RE2 kernels against hyperscan, the two ways of matching whole columns.

    pip install hyperscan && python bench/matchers.py [--rows 1000000]

Measured in one run on the generated users table: a structured column (every cell one
e-mail address: one anchored shape, a match in every cell) and the free-text column
(every recognizer's shape, sparse matches). hyperscan scans the column, joined by
newlines, once for all patterns, but reports each match through a Python callback; Arrow
returns one boolean per cell per pattern without calling back into Python.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)
    try:
        import hyperscan
    except ImportError:
        print("hyperscan is not installed: pip install hyperscan")
        return 2
    from governance.detection.recognizers import load_specs

    specs = {s.entity_type: s for s in load_specs()}
    batches = list(datagen.users_batches(args.rows, args.seed, chunk=65_536))

    def column(name: str):
        import pyarrow as pa

        return pa.chunked_array([b.column(name) for b in batches]).combine_chunks()

    def database(patterns: list[str], flags: int):
        db = hyperscan.Database()
        db.compile(expressions=[p.encode() for p in patterns], ids=list(range(len(patterns))),
                   elements=len(patterns), flags=[flags] * len(patterns))
        return db

    calls = [0]

    def on_match(*_: object) -> None:
        calls[0] += 1

    cases = [("email (structured)", "email", [f"^(?:{specs['EMAIL_ADDRESS'].cell_pattern})$"],
              hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_SOM_LEFTMOST),
             ("notes (free text)", "notes", [s.cell_pattern for s in specs.values()],
              hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_UTF8)]
    print(f"{args.rows:,} cells per column")
    for label, name, patterns, flags in cases:
        values = column(name)
        joined = "\n".join(values.to_pylist()).encode()
        db = database(patterns, flags)
        calls[0] = 0
        hs_s, _ = _timed(lambda: db.scan(joined, match_event_handler=on_match))  # noqa: B023
        re2_s, _ = _timed(lambda: [pc.match_substring_regex(values, p)  # noqa: B023
                                   for p in patterns])  # noqa: B023
        print(f"{label:20} {len(patterns):>2} pattern(s): hyperscan {hs_s:.3f} s "
              f"({calls[0]:,} callbacks), Arrow RE2 {re2_s:.3f} s "
              f"-> RE2/hyperscan time {re2_s / hs_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
