"""The PII discovery scan: classify every column of every source and record the findings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from governance.audit_store import AuditStore
from governance.detection.cell_scan import TableScanner
from governance.detection.classifier import ColumnClassification, classify_column, classify_matches
from governance.discovery import SourceState, TableState, inspect_source
from governance.errors import GovernanceError
from governance.inventory import Inventory, SourceDecl
from governance.sources import Connector, open_connector
from governance.taxonomy import is_sensitive

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_ROWS = 200
DEFAULT_SEED = 0
# A full scan reads batches of about this many cells (131,072 rows of 20 columns): large
# enough that per-batch costs vanish, small enough that a few batches in flight stay well
# under a gigabyte however wide the table.
FULL_SCAN_BATCH_CELLS = 2_621_440
FULL_SCAN_BATCH_ROWS = (16_384, 262_144)


def full_scan_batch_rows(columns: int) -> int:
    """Rows per batch of a full scan of a table with ``columns`` columns."""
    low, high = FULL_SCAN_BATCH_ROWS
    return max(low, min(high, FULL_SCAN_BATCH_CELLS // max(columns, 1)))


class ScanMode(StrEnum):
    """How much of each table a scan reads."""

    SAMPLED = "sampled"  # a seeded sample per table: quick inventories, repeatable
    FULL = "full"        # every cell, counted: audits and erasure verification

Progress = Callable[[str], None]


class FindingStatus(StrEnum):
    """How a column's finding relates to what the inventory declares."""

    CONFIRMED = "confirmed"                   # detected category equals the declared one
    MISMATCH = "category_mismatch"            # detected a different category than declared
    NOT_DETECTED = "declared_not_detected"    # declared PII, nothing seen in the sample
    UNDECLARED_PII = "undeclared_pii"         # PII in a declared table's undeclared column
    UNDECLARED_TABLE = "undeclared_table_pii"  # PII in a table the inventory does not list
    NO_PII = "no_pii"                         # nothing declared, nothing detected


@dataclass
class ColumnFinding:
    """What one column holds, compared with what the inventory says."""

    source: str
    table_name: str
    column_name: str
    column_type: str | None
    declared_category: str | None
    detected_category: str | None
    entity_types: list[str]
    confidence: float
    sensitive: bool
    status: str
    is_subject_key: bool
    sampled_values: int
    matched_values: int
    masked_samples: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str | None:
        """The category the column holds: detected, else declared."""
        return self.detected_category or self.declared_category


@dataclass
class ScanResult:
    """The outcome of a scan run."""

    run_id: str
    status: str
    sources: list[SourceState]
    findings: list[ColumnFinding]
    errors: list[str]

    def personal_columns(self) -> list[ColumnFinding]:
        """Findings of columns holding personal data (declared or detected)."""
        return [f for f in self.findings if f.category]


def finding_status(declared: str | None, detected: str | None, table_declared: bool) -> str:
    """The FindingStatus of a column."""
    if not table_declared:
        return FindingStatus.UNDECLARED_TABLE if detected else FindingStatus.NO_PII
    if declared:
        if detected == declared:
            return FindingStatus.CONFIRMED
        return FindingStatus.MISMATCH if detected else FindingStatus.NOT_DETECTED
    return FindingStatus.UNDECLARED_PII if detected else FindingStatus.NO_PII


def person_key_columns(source: SourceDecl, table: str,
                       inventory: Inventory | None = None,
                       connector: Connector | None = None) -> set[str]:
    """Columns of ``table`` that identify a person's row: its subject key, declared
    references to a table that has a subject key, and foreign keys the source's own
    catalogue declares to such a table (GDPR Art. 4(1): identifiable by reference).
    Cross-source references are followed when ``inventory`` is given."""
    decl = source.table(table)
    keys: set[str] = set()
    if connector is not None:
        for fk in connector.known_foreign_keys():
            target = source.table(fk.ref_table)
            if fk.table == table and target is not None and target.is_person:
                keys.add(fk.column)
    if decl is None:
        return keys
    if decl.subject_key:
        keys.add(decl.subject_key)
    for ref in decl.references:
        target_source = source
        if ref.source is not None and ref.source != source.name:
            if inventory is None:
                continue
            other = next((s for s in inventory.sources if s.name == ref.source), None)
            if other is None:
                continue
            target_source = other
        target = target_source.table(ref.table)
        if target is not None and target.subject_key:
            keys.add(ref.column)
    return keys


def scan_table(source: SourceDecl, connector: Connector, state: TableState,
               sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = DEFAULT_SEED,
               mode: ScanMode | str = ScanMode.SAMPLED,
               progress: Progress | None = None,
               inventory: Inventory | None = None) -> list[ColumnFinding]:
    """Classify every column of one present table, from a deterministic sample or from
    every cell (``mode``); both give the same kind of findings."""
    decl = source.table(state.table)
    info = connector.table_info(state.table)
    person_keys = person_key_columns(source, state.table, inventory, connector)
    if ScanMode(mode) is ScanMode.FULL:
        classified = _full_scan(connector, state, info.column_names, progress, person_keys)
    else:
        sample = connector.sample_rows(state.table, limit=sample_rows, seed=seed)
        classified = [classify_column(c, sample.column(c).to_pylist(), table=state.table,
                                      person_key=c in person_keys)
                      for c in info.column_names]
    findings = []
    for col, c in zip(info.columns, classified, strict=True):
        declared = None
        if decl is not None and col.name in decl.columns:
            declared = decl.columns[col.name].category
        elif col.name in person_keys:
            # Declared by the inventory itself: a subject key, or a reference to one.
            declared = "identity.user_id"
        findings.append(ColumnFinding(
            source=source.name, table_name=state.table, column_name=col.name,
            column_type=col.type, declared_category=declared, detected_category=c.category,
            entity_types=c.entity_types, confidence=c.confidence,
            sensitive=is_sensitive(c.category) or is_sensitive(declared),
            status=finding_status(declared, c.category, decl is not None),
            is_subject_key=bool(decl and decl.subject_key == col.name),
            sampled_values=c.non_null, matched_values=c.matched,
            masked_samples=c.masked_samples, evidence=c.evidence))
    return findings


def _full_scan(connector: Connector, state: TableState, columns: list[str],
               progress: Progress | None, person_keys: set[str] | None = None
               ) -> list[ColumnClassification]:
    """Every cell of the table, read in batches (memory stays bounded)."""
    with TableScanner(columns) as scanner:

        def report() -> None:
            if progress and state.row_count:
                progress(f"{connector.name}.{state.table}: {scanner.rows:,}/"
                         f"{state.row_count:,} rows scanned")

        batches = connector.stream_rows(state.table,
                                        batch_size=full_scan_batch_rows(len(columns)))
        results = scanner.scan(batches, report)
    return [classify_matches(c, results[c], table=state.table,
                             person_key=c in (person_keys or set())) for c in columns]


def scan_source(inventory: Inventory, source: SourceDecl | str,
                sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = DEFAULT_SEED,
                progress: Progress | None = None, mode: ScanMode | str = ScanMode.SAMPLED,
                ) -> tuple[SourceState, list[ColumnFinding]]:
    """Inspect and classify one source; raises GovernanceError when it cannot be read."""
    src = inventory.source(source) if isinstance(source, str) else source
    with open_connector(inventory, src) as conn:
        state = inspect_source(src, conn)
        if not state.reachable:
            raise GovernanceError(state.error or f"source {src.name!r} cannot be read")
        findings: list[ColumnFinding] = []
        present = [t for t in state.tables if t.present]
        for i, table in enumerate(present, 1):
            if progress:
                progress(f"{src.name}: table {i}/{len(present)} {table.table} "
                         f"({table.row_count:,} rows, {len(table.columns)} columns)")
            findings.extend(scan_table(src, conn, table, sample_rows, seed, mode, progress,
                                       inventory))
    return state, findings


def run_scan(inventory: Inventory, store: AuditStore, sources: list[str] | None = None,
             sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = DEFAULT_SEED,
             actor: str = "govkit", orchestrator_run_id: str | None = None,
             progress: Progress | None = None,
             mode: ScanMode | str = ScanMode.SAMPLED) -> ScanResult:
    """Scan the named sources (all by default) and record the run in the audit store."""
    mode = ScanMode(mode)
    selected = [inventory.source(n) for n in sources] if sources else list(inventory.sources)
    names = [s.name for s in selected]
    sampled = mode is ScanMode.SAMPLED
    run_id = store.start_scan(names, str(mode),
                              str(inventory.path) if inventory.path else None,
                              inventory.digest, sample_rows if sampled else None,
                              seed if sampled else None, orchestrator_run_id)
    store.append_log(actor, "scan.started", run_id,
                     {"sources": names, "mode": str(mode),
                      "sample_rows": sample_rows if sampled else None,
                      "seed": seed if sampled else None,
                      "inventory_digest": inventory.digest})
    states: list[SourceState] = []
    findings: list[ColumnFinding] = []
    errors: list[str] = []
    try:
        for src in selected:
            try:
                state, found = scan_source(inventory, src, sample_rows, seed, progress, mode)
            except GovernanceError as e:
                msg = str(e).splitlines()[0]
                errors.append(msg)
                states.append(SourceState(src.name, src.kind, False, msg))
                if progress:
                    progress(f"{src.name}: FAILED: {msg}")
                continue
            states.append(state)
            findings.extend(found)
            store.record_tables(run_id, [t.as_row() for t in state.tables])
            store.record_findings(run_id, [_finding_row(f) for f in found])
    except BaseException as e:
        store.finish_scan(run_id, "failed", f"{type(e).__name__}: {e}".splitlines()[0])
        store.append_log(actor, "scan.failed", run_id, {"error": type(e).__name__})
        raise
    status = "succeeded" if not errors else ("failed" if len(errors) == len(selected)
                                             else "partial")
    store.finish_scan(run_id, status, "; ".join(errors) or None)
    store.append_log(actor, "scan.finished", run_id, {
        "status": status,
        "columns": len(findings),
        "personal_columns": sum(1 for f in findings if f.category),
        "undeclared_pii": sum(1 for f in findings if f.status in (
            FindingStatus.UNDECLARED_PII, FindingStatus.UNDECLARED_TABLE)),
        "errors": len(errors),
    })
    return ScanResult(run_id, status, states, findings, errors)


def _finding_row(f: ColumnFinding) -> dict[str, Any]:
    row = asdict(f)
    row["status"] = str(f.status)
    return row
