"""The loader of Oracle's sample schemas reads every row and every value of the published
scripts: counts taken here with regular expressions over the scripts themselves."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from public_data import sample_schemas


@pytest.mark.parametrize("dataset", ["co", "hr"])
def test_every_insert_becomes_a_row_and_every_null_a_none(dataset: str) -> None:
    script = (sample_schemas.FOLDER / sample_schemas.DATASETS[dataset][2]).read_text()
    inserts = Counter(m.lower() for m in re.findall(r"INSERT INTO (\w+)", script))
    loaded = list(sample_schemas.rows(dataset))
    assert Counter(t for t, _ in loaded) == inserts
    # Literal NULLs, statement by statement (products' JSON details are left out, and a
    # store's INSERT leaves out the address columns it has no value for).
    statements = re.split(r"INSERT INTO ", script)[1:]
    literal = sum(len(re.findall(r"\bNULL\b", s.split(";")[0])) for s in statements
                  if not s.lower().startswith("products"))
    columns, keys, _ = sample_schemas.DATASETS[dataset]
    absent = 0      # columns an INSERT does not name, but an identity key it leaves out
    for m in re.finditer(r"INSERT INTO (\w+)\s*\(([^)]*)\)", script):
        table, given = m.group(1).lower(), {c.strip().lower() for c in m.group(2).split(",")}
        if table != "products":
            absent += len({c for c, _, _ in columns[table]} - given - set(keys[table][0]))
    nones = sum(v is None for t, r in loaded if t != "products" for v in r.values())
    assert nones == literal + absent


def test_hr_keeps_the_sales_commissions_written_without_a_leading_zero() -> None:
    staff = [r for t, r in sample_schemas.rows("hr") if t == "employees"]
    assert sum(r["commission_pct"] is not None for r in staff) == 35
    assert min(r["commission_pct"] for r in staff if r["commission_pct"] is not None) > 0
