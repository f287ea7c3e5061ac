"""Cell-level detection over whole Arrow arrays: every cell of a column checked at once.

The same ``RecognizerSpec`` declarations as the per-text path, applied per column batch:

1. one RE2 pass with all recognizers' shapes drops the cells that cannot hold any entity;
2. the survivors are matched whole against each recognizer's shape (the column's most
   frequent identifier first, so a homogeneous column costs one pass) and validated in
   bulk by the recognizer's vectorized check (Luhn, GB 11643, mod 97, phonenumbers'
   metadata, ...);
3. survivors that are not one entity as a whole (free text) have entities searched in
   them with the recognizers' Python patterns, spans validated in bulk again.

Nothing here keeps raw values: a ``ColumnMatches`` holds counts and masked examples only.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from governance.detection.recognizers import NOT_PERSONAL, RecognizerSpec, load_specs
from governance.masking import mask_value

# A value counts as *being* an entity when the entity spans this share of its characters.
FULL_MATCH_SHARE = 0.8
# Free text: long values with words.
FREE_TEXT_MIN_LEN = 20
MAX_EXAMPLES = 3
# Cells looked at first, to try the recognizer a column most likely holds first.
PROBE_CELLS = 256
# Cells per column looked at to tell free text from structured values.
TEXT_CHECK_CELLS = 10_000
_WORDED = r"\pL{2,}[\s,;]+\pL{2,}|\p{Han}{2}"


@dataclass
class ColumnMatches:
    """What the cells of one column hold: counts per entity type, never raw values."""

    column: str
    cells: int = 0                 # non-empty cells examined
    matched_cells: int = 0         # cells holding at least one entity
    text_checked: int = 0          # cells looked at for free text (the first ones)
    text_cells: int = 0            # of those, long cells with words
    whole: Counter[str] = field(default_factory=Counter)    # cells that are one entity
    anywhere: Counter[str] = field(default_factory=Counter)  # cells containing the entity
    examples: dict[str, list[str]] = field(default_factory=dict)  # masked

    @property
    def free_text(self) -> bool:
        """True when at least half of the cells looked at are long text with words."""
        return self.text_checked > 0 and self.text_cells * 2 >= self.text_checked

    def merge(self, other: ColumnMatches) -> None:
        """Add ``other``'s counts (of the same column) to these."""
        self.cells += other.cells
        self.matched_cells += other.matched_cells
        self.text_checked += other.text_checked
        self.text_cells += other.text_cells
        self.whole.update(other.whole)
        self.anywhere.update(other.anywhere)
        for t, masked in other.examples.items():
            self._example(t, masked)

    def _example(self, entity_type: str, masked: Iterable[str]) -> None:
        kept = self.examples.get(entity_type, [])
        for m in masked:
            if len(kept) >= MAX_EXAMPLES:
                break
            if m not in kept:
                kept.append(m)
        if kept:
            self.examples[entity_type] = kept


@dataclass(frozen=True)
class _Compiled:
    spec: RecognizerSpec
    anchored: str
    python: tuple[re.Pattern[str], ...]


# Every identifier we know has an "@", a run of three digits, a dotted quad or two colons;
# this one cheap RE2 pass drops the cells that have none (names, cities, codes, ...).
# (All recognizers' shapes in one alternation would be exact, but too big for RE2's DFA.)
CANDIDATE = r"@|\d{3}|\d\.\d{1,3}\.\d|[0-9A-Fa-f]?:[0-9A-Fa-f]{0,4}:"


@lru_cache(maxsize=4)
def _compile(specs: tuple[RecognizerSpec, ...]) -> tuple[_Compiled, ...]:
    return tuple(_Compiled(s, f"^(?:{s.cell_pattern})$", tuple(p for _, p in s.compiled()))
                 for s in specs)


def default_specs() -> tuple[RecognizerSpec, ...]:
    """The recognizers a column scan uses unless told otherwise."""
    return tuple(load_specs())


def as_text(values: pa.Array) -> pa.Array:
    """``values`` as a string array; other types are cast, or rendered as text."""
    t = values.type
    if pa.types.is_string(t):
        return values
    if pa.types.is_dictionary(t):
        return as_text(values.dictionary_decode())
    try:
        return values.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in values.to_pylist()], pa.string())


class ColumnScanner:
    """Counts the entities in every cell of one column, fed one Arrow array at a time."""

    def __init__(self, column: str, specs: Sequence[RecognizerSpec] | None = None):
        self.matches = ColumnMatches(column)
        self._specs = tuple(specs) if specs is not None else default_specs()
        self._compiled = _compile(self._specs)

    def _likely(self, text: pa.Array) -> list[int]:
        """Indices of the specs this column probably holds: those fitting whole cells of a
        probe of ``text`` or of earlier batches, most frequent first."""
        probe = text.slice(0, PROBE_CELLS)
        seen = self.matches.whole
        scored = []
        for i, c in enumerate(self._compiled):
            n = seen.get(c.spec.entity_type, 0)
            n += pc.sum(pc.match_substring_regex(probe, c.anchored)).as_py() or 0
            if n:
                scored.append((-n, i))
        return [i for _, i in sorted(scored)]

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Examine every cell of ``values``."""
        m = self.matches
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        values = values.drop_null()
        t = values.type
        if _never_identifier(t):
            m.cells += len(values)
            return
        if pa.types.is_integer(t):
            # Only numbers of 11 digits or more can be identifiers we know (CN mobile,
            # cards, ids kept as integers).
            m.cells += len(values)
            text = as_text(values.filter(pc.greater_equal(pc.abs(values), 10**10)))
        else:
            text = pc.utf8_trim_whitespace(as_text(values))
            text = text.filter(pc.not_equal(text, ""))
            m.cells += len(text)
            if m.text_checked < TEXT_CHECK_CELLS:
                head = text.slice(0, TEXT_CHECK_CELLS - m.text_checked)
                m.text_checked += len(head)
                long_cells = head.filter(pc.greater_equal(pc.utf8_length(head), FREE_TEXT_MIN_LEN))
                if len(long_cells):
                    m.text_cells += pc.sum(pc.match_substring_regex(long_cells, _WORDED)
                                           ).as_py() or 0
        if not len(text):
            return
        # 1. The identifiers the column probably holds, on every cell.
        likely = self._likely(text)
        rest = self._match_whole(text, likely)
        # 2. What is left: cells that may hold something, then every other identifier.
        if len(rest):
            rest = rest.filter(pc.match_substring_regex(rest, CANDIDATE))
        if len(rest):
            rest = rest.filter(pc.invert(pc.match_substring_regex(rest, f"^(?:{NOT_PERSONAL})$")))
        if len(rest):
            others = [i for i in range(len(self._compiled)) if i not in likely]
            rest = self._match_whole(rest, others, keep_shaped=False)
        # 3. Cells still unexplained: entities inside free text.
        if len(rest):
            self._scan_text(rest)

    def _match_whole(self, text: pa.Array, order: list[int], keep_shaped: bool = True
                     ) -> pa.Array:
        """Count the cells of ``text`` that are entirely one entity, trying the specs in
        ``order``; return the cells left open (with ``keep_shaped``, also the cells that
        fit a shape but failed validation)."""
        m = self.matches
        whole_type = np.full(len(text), -1, dtype=np.int16)
        shaped = np.zeros(len(text), dtype=bool)
        for i in order:
            c = self._compiled[i]
            open_rows = np.flatnonzero(whole_type < 0)
            if not len(open_rows):
                break
            subset = text if len(open_rows) == len(text) else text.take(pa.array(open_rows))
            fits = pc.match_substring_regex(subset, c.anchored).to_numpy(zero_copy_only=False)
            if not fits.any():
                continue
            rows = open_rows[fits]
            shaped[rows] = True
            ok = c.spec.validate_cells(subset.filter(pa.array(fits)))
            accepted = rows[ok]
            if not len(accepted):
                continue
            whole_type[accepted] = i
            et = c.spec.entity_type
            m.whole[et] += len(accepted)
            m.anywhere[et] += len(accepted)
            m.matched_cells += len(accepted)
            m._example(et, (mask_value(v, et) for v in
                            text.take(pa.array(accepted[:MAX_EXAMPLES])).to_pylist()))
        left = whole_type < 0 if keep_shaped else (whole_type < 0) & ~shaped
        if left.all():
            return text
        return text.filter(pa.array(left))

    def _scan_text(self, texts: pa.Array) -> None:
        """Entities inside free-text cells: Python patterns, validation in bulk per spec.

        Overlapping spans go to the recognizer ranked first (a resident id is not also
        read as a card number or a credit code).
        """
        m = self.matches
        taken: dict[int, list[tuple[int, int]]] = {}
        found: dict[int, set[str]] = {}
        whole: dict[int, set[str]] = {}
        for c in self._compiled:
            shaped = pc.match_substring_regex(texts, c.spec.cell_pattern)
            rows = np.flatnonzero(shaped.to_numpy(zero_copy_only=False))
            if not len(rows):
                continue
            text = dict(zip(rows.tolist(), texts.take(pa.array(rows)).to_pylist(), strict=True))
            hits = [(i, mt) for i, v in text.items() for p in c.python for mt in p.finditer(v)]
            if not hits:
                continue
            ok = c.spec.validate_cells(pa.array([mt.group(0) for _, mt in hits], pa.string()))
            et = c.spec.entity_type
            kept = []
            for (i, mt), valid in zip(hits, ok, strict=True):
                span = mt.group(0)
                spans = taken.setdefault(i, [])
                if not valid or any(mt.start() < e and b < mt.end() for b, e in spans):
                    continue
                spans.append(mt.span())
                found.setdefault(i, set()).add(et)
                kept.append(span)
                if len(span) >= FULL_MATCH_SHARE * len(text[i]):
                    whole.setdefault(i, set()).add(et)
            m._example(et, (mask_value(s, et) for s in kept[:MAX_EXAMPLES]))
        m.matched_cells += len(found)
        for types in found.values():
            m.anywhere.update(types)
        for types in whole.values():
            m.whole.update(types)


def _never_identifier(t: pa.DataType) -> bool:
    """Types whose values cannot be an identifier: numbers with fractions, times, booleans."""
    return (pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t))


def scan_columns(columns: dict[str, pa.Array | pa.ChunkedArray],
                 specs: Sequence[RecognizerSpec] | None = None) -> dict[str, ColumnMatches]:
    """Scan a set of named columns (e.g. a sample) once; returns their matches by name."""
    scanners = {name: ColumnScanner(name, specs) for name in columns}
    for name, values in columns.items():
        scanners[name].add(values)
    return {name: s.matches for name, s in scanners.items()}


class TableScanner:
    """Full scan of a table fed as Arrow record batches; columns are scanned in parallel."""

    def __init__(self, columns: Sequence[str], specs: Sequence[RecognizerSpec] | None = None,
                 workers: int | None = None):
        self.scanners = {c: ColumnScanner(c, specs) for c in columns}
        self.rows = 0
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Examine every cell of ``batch``."""
        self.rows += batch.num_rows
        names = [n for n in batch.schema.names if n in self.scanners]
        list(self._pool.map(lambda n: self.scanners[n].add(batch.column(n)), names))

    def results(self) -> dict[str, ColumnMatches]:
        """The matches per column so far."""
        return {c: s.matches for c, s in self.scanners.items()}

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown()

    def __enter__(self) -> TableScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
