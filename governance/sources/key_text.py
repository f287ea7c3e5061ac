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
    text = values.cast(pa.string())
    return pc.replace_substring_regex(text, _WHOLE, r"\1")


def key_text_sql(expr: str, column_type: str) -> str:
    """``key_text`` of DuckDB expression ``expr`` of type ``column_type`` (a JSON value
    compared by its text: the string ``"14"`` as ``14``)."""
    text = f"json_extract_string({expr}, '$')" if column_type.upper() == "JSON" \
        else f"CAST({expr} AS VARCHAR)"
    return f"regexp_replace({text}, '{_WHOLE}', '\\1')"
