"""How file sources compare key values: as one text, whichever way a tool wrote them.

A file has no types to agree on: pandas writes an integer column holding a null as
``14.0``, a JSON-lines export may write ``"14"`` in one line and ``14`` in the next, a
Parquet file may hold ``14.0`` as a double. ``key_text`` gives each of these the text
``14``; every other value keeps its text (``014`` stays ``014``, ``1.5`` stays ``1.5``).

The same rule is written three times, for Python values, for Arrow arrays and for
DuckDB SQL, and tested equal on the same values: a file's rewrite (Python or Arrow) and
the plan's reads (DuckDB) must pick the same rows.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A whole number written with a zero fraction: ``14.0``, ``-3.00`` (not ``014.0``).
_WHOLE = r"^(-?(?:0|[1-9][0-9]*))\.0+$"
_WHOLE_RE = re.compile(_WHOLE)


def key_text(value: Any) -> str | None:
    """The text ``value`` is compared by as a key of a file source (None for None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _WHOLE_RE.sub(r"\1", repr(value))      # -0.0 is -0, as Arrow and DuckDB say
    if isinstance(value, Decimal):
        value = str(value)
    text = value if isinstance(value, str) else str(value)
    return _WHOLE_RE.sub(r"\1", text)


def key_text_array(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``key_text`` of each cell of an Arrow array, as a string array."""
    if pa.types.is_floating(values.type):
        return _floats_text(values)
    text = values.cast(pa.string())
    return pc.replace_substring_regex(text, _WHOLE, r"\1")


def _floats_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``key_text`` of floating-point cells: Arrow's own cast writes ``1e+15`` and
    ``1.23456789012e+11`` where Python and DuckDB write the whole number. Whole numbers
    below 1e16 (Python's repr is positional there) are cast as integers; the rest as
    Python writes them."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    x = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)   # nulls read as NaN
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        whole = valid & np.isfinite(x) & (np.abs(x) < 1e16) & (np.floor(x) == x) \
            & ~((x == 0) & np.signbit(x))                        # -0.0 is -0
    out = pa.array(np.where(whole, x, 0).astype(np.int64)).cast(pa.string())
    rest = np.flatnonzero(valid & ~whole)
    if len(rest):
        mask = np.zeros(len(arr), bool)
        mask[rest] = True
        others = pa.array([key_text(v) for v in arr.take(pa.array(rest)).to_pylist()],
                          pa.string())
        out = pc.replace_with_mask(out, pa.array(mask), others)
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


def key_text_sql(expr: str, column_type: str) -> str:
    """``key_text`` of DuckDB expression ``expr`` of type ``column_type`` (a JSON value
    compared as Python's json module reads it: the string ``"14"`` as ``14``, the number
    ``1e1`` as ``10``)."""
    typ = column_type.upper()
    if typ == "JSON":    # (DuckDB writes a JSON number as a double: 1e1 as 10.0)
        text = f"json_extract_string({expr}, '$')"
    elif typ in ("FLOAT", "REAL", "FLOAT4"):
        text = f"CAST(CAST({expr} AS DOUBLE) AS VARCHAR)"   # as Python reads a float32
    else:
        text = f"CAST({expr} AS VARCHAR)"
    return f"regexp_replace({text}, '{_WHOLE}', '\\1')"
