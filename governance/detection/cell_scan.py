"""Cell-level detection over whole Arrow arrays: every cell of a column checked at once.

The same ``RecognizerSpec`` declarations as the per-text path, applied per column batch:

1. a column repeating its values is reduced to its distinct values, each weighted by how
   often it occurs;
2. the identifiers a probe of the column says it most likely holds are matched whole
   against every cell and validated in bulk by the recognizer's vectorized check (Luhn,
   GB 11643, mod 97, phonenumbers' metadata, ...): a homogeneous column costs one pass;
3. the cells left go through cheap filters (a byte scan, one RE2 pass, the not-personal
   shapes) and the survivors are matched whole against every other recognizer;
4. cells still unexplained (free text) have entities searched in them with the
   recognizers' Python patterns, spans validated in bulk again.

Nothing here keeps raw values: a ``ColumnMatches`` holds counts and masked examples only.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from governance.detection.checksums import string_buffers
from governance.detection.recognizers import NOT_PERSONAL, RecognizerSpec, load_specs
from governance.detection.values import PROFILE_VALUES, profile
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
# Batches a full scan examines at once (each column still in order).
BATCHES_IN_FLIGHT = 2
# The probe is repeated on a batch after one whose likely identifiers left more than this
# share of its cells unexplained.
REPROBE_SHARE = 0.01
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
    # What the first values look like (values.profile): names, streets, hash schemes.
    profile: Counter[str] = field(default_factory=Counter)

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
        self.profile.update(other.profile)
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
        self._order: list[int] | None = None
        self._open_share = 1.0

    def _likely(self, text: pa.Array) -> list[int]:
        """Indices of the specs this column probably holds: those whose shape fits, and
        whose check passes, whole cells of a probe of ``text`` or of earlier batches, most
        frequent first (a column of decimals fits a phone shape, but fails its check)."""
        probe = text.slice(0, PROBE_CELLS)
        probe = probe.filter(pc.invert(pc.match_substring_regex(probe, _NOT_PERSONAL_CELL)))
        seen = self.matches.whole
        scored = []
        for i, c in enumerate(self._compiled):
            n = seen.get(c.spec.entity_type, 0)
            fits = pc.match_substring_regex(probe, c.anchored)
            if pc.any(fits).as_py():
                n += int(c.spec.validate_cells(probe.filter(fits)).sum())
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
            room = PROFILE_VALUES - m.profile["values"]
            if room > 0:
                m.profile.update({"values": min(room, len(values)),
                                  "integer": min(room, len(values))})
            text = as_text(values.filter(pc.greater_equal(pc.abs(values), 10**10)))
            weights = np.ones(len(text), dtype=np.int64)
        else:
            text = as_text(values)
            self._check_free_text(text)
            text, weights = _distinct_if_repetitive(text)
            if _padded(text):
                text = pc.utf8_trim_whitespace(text)
            filled = pc.not_equal(text, "")
            if not pc.all(filled).as_py():
                weights = weights[filled.to_numpy(zero_copy_only=False)]
                text = text.filter(filled)
            m.cells += int(weights.sum())
            room = PROFILE_VALUES - m.profile["values"]
            if room > 0 and len(text):
                m.profile.update(profile(text.slice(0, room).to_pylist()))
        if not len(text):
            return
        # 1. The identifiers the column probably holds, on every cell (probed again while
        #    they leave more than REPROBE_SHARE of a batch open).
        if self._order is None or self._open_share > REPROBE_SHARE:
            self._order = self._likely(text)
        likely = self._order
        before = len(text)
        text, weights = self._match_whole(text, weights, likely)
        self._open_share = len(text) / before
        # 2. What is left: cells that may hold something, then every other identifier.
        for keep in _maybe_personal(text):
            if not len(text):
                break
            kept = keep(text)
            if not kept.all():
                text, weights = text.filter(pa.array(kept)), weights[kept]
        if len(text):
            others = [i for i in range(len(self._compiled)) if i not in likely]
            text, weights = self._match_whole(text, weights, others, keep_shaped=False)
        # 3. Cells still unexplained: entities inside free text.
        if len(text):
            self._scan_text(text, weights)

    def _check_free_text(self, text: pa.Array) -> None:
        """Count long worded cells among the first TEXT_CHECK_CELLS of the column."""
        m = self.matches
        if m.text_checked >= TEXT_CHECK_CELLS:
            return
        head = pc.utf8_trim_whitespace(text.slice(0, TEXT_CHECK_CELLS - m.text_checked))
        head = head.filter(pc.not_equal(head, ""))
        m.text_checked += len(head)
        long_cells = head.filter(pc.greater_equal(pc.utf8_length(head), FREE_TEXT_MIN_LEN))
        if len(long_cells):
            m.text_cells += pc.sum(pc.match_substring_regex(long_cells, _WORDED)).as_py() or 0

    def _match_whole(self, text: pa.Array, weights: np.ndarray, order: list[int],
                     keep_shaped: bool = True) -> tuple[pa.Array, np.ndarray]:
        """Count the cells of ``text`` (each standing for ``weights`` cells) that are
        entirely one entity, trying the specs in ``order``; return the cells left open
        (with ``keep_shaped``, also those that fit a shape but failed validation)."""
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
            n = int(weights[accepted].sum())
            m.whole[et] += n
            m.anywhere[et] += n
            m.matched_cells += n
            m._example(et, (mask_value(v, et) for v in
                            text.take(pa.array(accepted[:MAX_EXAMPLES])).to_pylist()))
        left = whole_type < 0 if keep_shaped else (whole_type < 0) & ~shaped
        if left.all():
            return text, weights
        return text.filter(pa.array(left)), weights[left]

    def _scan_text(self, texts: pa.Array, weights: np.ndarray) -> None:
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
        for i, types in found.items():
            m.matched_cells += int(weights[i])
            for et in types:
                m.anywhere[et] += int(weights[i])
        for i, types in whole.items():
            for et in types:
                m.whole[et] += int(weights[i])


# A column whose first DISTINCT_PROBE cells repeat values this much is scanned as its
# distinct values, each counted as often as it occurs (status, country, dates, ...).
DISTINCT_PROBE = 4_096
DISTINCT_SHARE = 0.5


def _distinct_if_repetitive(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``text`` and one weight per cell, or its distinct values and their counts when the
    column repeats its values."""
    probe = text.slice(0, DISTINCT_PROBE)
    if len(text) > DISTINCT_PROBE and \
            pc.count_distinct(probe).as_py() <= DISTINCT_SHARE * len(probe):
        counts = pc.value_counts(text)
        return counts.field("values"), counts.field("counts").to_numpy()
    return text, np.ones(len(text), dtype=np.int64)


def _maybe_personal(text: pa.Array) -> list[Callable[[pa.Array], np.ndarray]]:
    """The filters dropping cells that cannot hold an identifier we know, cheapest first
    (the not-personal shapes first when the column is mostly dates or decimals)."""
    candidate = [lambda a: contains_any_byte(a, CANDIDATE_BYTES),
                 lambda a: pc.match_substring_regex(a, CANDIDATE).to_numpy(zero_copy_only=False)]
    not_personal = [lambda a: ~pc.match_substring_regex(a, _NOT_PERSONAL_CELL)
                    .to_numpy(zero_copy_only=False)]
    probe = text.slice(0, PROBE_CELLS)
    if not_personal[0](probe).sum() * 2 < len(probe):
        return not_personal + candidate
    return candidate + not_personal


_NOT_PERSONAL_CELL = f"^(?:{NOT_PERSONAL})$"


def _padded(values: pa.Array) -> bool:
    """True when a value of ``values`` (strings, no nulls) may start or end with white space
    (is empty, or has an ASCII space or control byte, or any non-ASCII byte, at an end)."""
    if not len(values):
        return False
    offsets, data = string_buffers(values)
    if (np.diff(offsets) == 0).any():
        return True
    ends = np.concatenate([data[offsets[:-1]], data[offsets[1:] - 1]])
    return bool(((ends <= 0x20) | (ends >= 0x7F)).any())


# Every CANDIDATE match holds one of these bytes.
CANDIDATE_BYTES = b"0123456789@:"


def contains_any_byte(values: pa.Array, chars: bytes) -> np.ndarray:
    """One boolean per value of ``values`` (strings, no nulls): holds one of the ASCII
    bytes ``chars``."""
    if not len(values):
        return np.zeros(0, dtype=bool)
    offsets, data = string_buffers(values)
    offsets = offsets.astype(np.int64)
    data = data[offsets[0]:offsets[-1]]
    wanted = np.zeros(256, dtype=bool)
    wanted[list(chars)] = True
    hits = np.concatenate([[0], np.cumsum(wanted[data], dtype=np.int64)])
    starts = offsets - offsets[0]
    return hits[starts[1:]] > hits[starts[:-1]]


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
    """Full scan of a table fed as Arrow record batches; columns are scanned in parallel.

    Each column sees its batches in order, so results do not depend on thread timing.
    """

    def __init__(self, columns: Sequence[str], specs: Sequence[RecognizerSpec] | None = None,
                 workers: int | None = None):
        self.scanners = {c: ColumnScanner(c, specs) for c in columns}
        self.rows = 0
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
        self._turn = threading.Condition()
        self._next = dict.fromkeys(columns, 0)
        self._queued = dict.fromkeys(columns, 0)
        self._aborted = False

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Examine every cell of ``batch``."""
        for future in self._submit(batch):
            future.result()
        self.rows += batch.num_rows

    def scan(self, batches: Iterable[pa.RecordBatch | pa.Table],
             on_batch: Callable[[], None] | None = None) -> dict[str, ColumnMatches]:
        """Examine every batch of ``batches``, calling ``on_batch`` after each; returns the
        matches per column. The next batch is read, and up to BATCHES_IN_FLIGHT are
        scanned, at once (no core waits for the slowest column of a batch)."""
        in_flight: deque[tuple[int, list[Future[None]]]] = deque()

        def finish_one() -> None:
            rows, futures = in_flight.popleft()
            for future in futures:
                future.result()
            self.rows += rows
            if on_batch is not None:
                on_batch()

        try:
            for batch in read_ahead(batches):
                in_flight.append((batch.num_rows, self._submit(batch)))
                if len(in_flight) >= BATCHES_IN_FLIGHT:
                    finish_one()
            while in_flight:
                finish_one()
        finally:
            if in_flight:  # stopped by an error: let no waiting column block a worker
                with self._turn:
                    self._aborted = True
                    self._turn.notify_all()
                for _, futures in in_flight:
                    for future in futures:
                        future.cancel()
        return self.results()

    def _submit(self, batch: pa.RecordBatch | pa.Table) -> list[Future[None]]:
        futures = []
        for name in batch.schema.names:
            if name in self.scanners:
                seq = self._queued[name]
                self._queued[name] += 1
                futures.append(self._pool.submit(self._add_in_turn, name, seq,
                                                 batch.column(name)))
        return futures

    def _add_in_turn(self, column: str, seq: int, values: pa.Array | pa.ChunkedArray) -> None:
        """Add batch number ``seq`` of ``column`` once its earlier batches are added."""
        with self._turn:
            self._turn.wait_for(lambda: self._next[column] == seq or self._aborted)
            if self._aborted:
                return
        try:
            self.scanners[column].add(values)
        finally:
            with self._turn:
                self._next[column] += 1
                self._turn.notify_all()

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


_DONE = object()


def read_ahead(items: Iterable[object], depth: int = 1) -> Iterator:
    """Yield ``items``, producing up to ``depth`` of them ahead in a worker thread (so that
    reading a source overlaps scanning it); errors of the producer are raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_DONE, None))
        except BaseException as e:
            buffer.put((_DONE, e))

    worker = threading.Thread(target=produce, name="govkit-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.1)
