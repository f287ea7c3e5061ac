"""Connectors to several sources, opened when first needed and closed together."""

from __future__ import annotations

from governance.inventory import Inventory
from governance.sources import Connector, open_connector


class ConnectorPool:
    """One open connector per source of ``inventory`` (read-only unless ``writable``)."""

    def __init__(self, inventory: Inventory, writable: bool = False):
        self.inventory = inventory
        self.writable = writable
        self._open: dict[str, Connector] = {}

    def get(self, source: str) -> Connector:
        """The connector of ``source``, opened on first use."""
        if source not in self._open:
            self._open[source] = open_connector(self.inventory, source, self.writable)
        return self._open[source]

    def close(self) -> None:
        """Close every connector opened."""
        while self._open:
            _, conn = self._open.popitem()
            conn.close()

    def __enter__(self) -> ConnectorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
