"""Data-source connectors, and the one function that opens the right one for a source."""

from __future__ import annotations

import os

from governance.errors import SourceError
from governance.inventory import FILE_KINDS, Inventory, SourceDecl
from governance.sources.base import (
    ColumnInfo,
    Connector,
    ForeignKey,
    Leaving,
    ReferencedRows,
    TableInfo,
)

__all__ = ["ColumnInfo", "Connector", "ForeignKey", "Leaving", "ReferencedRows", "TableInfo",
           "open_connector"]


def open_connector(inventory: Inventory, source: SourceDecl | str,
                   writable: bool = False) -> Connector:
    """Open the connector for ``source``; read-only unless ``writable``."""
    src = inventory.source(source) if isinstance(source, str) else source
    if src.kind in FILE_KINDS:
        from governance.sources.duckdb_source import FileConnector

        return FileConnector(src.name, src.kind, inventory.resolve_path(src), writable)
    if src.kind == "duckdb":
        from governance.sources.duckdb_source import DuckDBConnector

        return DuckDBConnector(src.name, inventory.resolve_path(src), writable)
    if src.kind == "sqlite":
        from governance.sources.sqlite import SqliteConnector

        return SqliteConnector(src.name, inventory.resolve_path(src), writable)
    if src.kind == "postgres":
        from governance.sources.postgres import PostgresConnector

        env = src.connection.dsn_env
        dsn = os.environ.get(env or "")
        if not dsn:
            raise SourceError(
                f"source {src.name!r}: environment variable {env} (connection.dsn_env) is not set"
            )
        return PostgresConnector(src.name, dsn, src.connection.schema_ or "public", writable)
    raise SourceError(f"source {src.name!r}: no connector for kind {src.kind!r}")
