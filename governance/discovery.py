"""Declared versus found: compare the inventory with what each source actually holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from governance.errors import GovernanceError
from governance.inventory import Inventory, SourceDecl, TableDecl
from governance.sources import Connector, TableInfo, open_connector


@dataclass
class TableState:
    """One table as declared and as found."""

    source: str
    table: str
    declared: bool
    present: bool
    row_count: int | None = None
    columns: list[str] = field(default_factory=list)
    undeclared_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    subject_key: str | None = None
    note: str | None = None           # why a declared table present reads as empty

    def as_row(self) -> dict:
        """The row stored in the audit store's source_tables."""
        return {
            "source": self.source, "table_name": self.table, "declared": self.declared,
            "present": self.present, "row_count": self.row_count,
            "column_count": len(self.columns), "undeclared_columns": self.undeclared_columns,
            "missing_columns": self.missing_columns,
        }


@dataclass
class SourceState:
    """One source: reachable or not, and the state of each of its tables."""

    source: str
    kind: str
    reachable: bool
    error: str | None = None
    tables: list[TableState] = field(default_factory=list)


def declared_columns(table: TableDecl) -> list[str]:
    """Columns the inventory names for ``table``: categorised ones, subject key, references."""
    names = list(table.columns)
    if table.subject_key:
        names.append(table.subject_key)
    names.extend(r.column for r in table.references)
    return list(dict.fromkeys(names))


def compare_tables(source: SourceDecl, found: list[TableInfo],
                   unpopulated: set[str] | frozenset[str] = frozenset()) -> list[TableState]:
    """Table states of ``source`` given the tables found in it (and the materialized
    views present but never populated)."""
    by_name = {t.name: t for t in found}
    states = []
    for decl in source.tables:
        info = by_name.get(decl.name)
        wanted = declared_columns(decl)
        if info is None and decl.name in unpopulated:
            states.append(TableState(
                source.name, decl.name, True, True, 0, subject_key=decl.subject_key,
                note="a materialized view never populated: no rows to read until "
                     "REFRESH MATERIALIZED VIEW"))
            continue
        if info is None:
            states.append(TableState(source.name, decl.name, True, False,
                                     missing_columns=wanted, subject_key=decl.subject_key))
            continue
        cols = info.column_names
        states.append(TableState(
            source.name, decl.name, True, True, info.row_count, cols,
            undeclared_columns=[c for c in cols if c not in wanted],
            missing_columns=[c for c in wanted if c not in cols],
            subject_key=decl.subject_key))
    for info in found:
        if source.table(info.name) is None:
            states.append(TableState(source.name, info.name, False, True, info.row_count,
                                     info.column_names, undeclared_columns=info.column_names))
    return states


def inspect_source(source: SourceDecl, connector: Connector) -> SourceState:
    """The state of one source through an open connector."""
    try:
        found = connector.list_tables()
    except GovernanceError as e:
        return SourceState(source.name, source.kind, False, str(e))
    return SourceState(source.name, source.kind, True,
                       tables=compare_tables(source, found, connector.unpopulated))


def discover(inventory: Inventory, sources: list[str] | None = None) -> list[SourceState]:
    """Declared versus found for every source (or the named ones)."""
    states = []
    for src in _select(inventory, sources):
        try:
            with open_connector(inventory, src) as conn:
                states.append(inspect_source(src, conn))
        except GovernanceError as e:
            states.append(SourceState(src.name, src.kind, False, str(e)))
    return states


def _select(inventory: Inventory, names: list[str] | None) -> list[SourceDecl]:
    if not names:
        return list(inventory.sources)
    return [inventory.source(n) for n in names]
