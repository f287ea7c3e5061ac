"""Connectors to several sources, opened when first needed and closed together."""

from __future__ import annotations

import contextlib
import threading

from governance.inventory import FILE_KINDS, Inventory
from governance.sources import Connector, open_connector

#: Kinds whose connectors may be opened in one thread and used in another (SQLite's may
#: not, and open in well under a millisecond anyway).
_PORTABLE_KINDS = {"duckdb", "postgres", *FILE_KINDS}


class ConnectorPool:
    """One open connector per source of ``inventory`` (read-only unless ``writable``)."""

    def __init__(self, inventory: Inventory, writable: bool = False):
        self.inventory = inventory
        self.writable = writable
        self._open: dict[str, Connector] = {}
        self._failed: dict[str, BaseException] = {}
        self._opening: threading.Thread | None = None

    def open_in_background(self) -> None:
        """Start opening the sources, and reading their catalogues, in a thread: work the
        caller does meanwhile (audit-store bookkeeping) overlaps with it. ``get`` waits for
        it and raises, in the caller's thread, what opening a source raised."""
        names = [s.name for s in self.inventory.sources
                 if s.kind in _PORTABLE_KINDS and s.name not in self._open]
        if not names or self._opening is not None:
            return

        def work() -> None:
            for name in names:
                try:
                    conn = open_connector(self.inventory, name, self.writable)
                except BaseException as e:   # re-raised by get(), in the caller's thread
                    self._failed[name] = e
                    continue
                self._open[name] = conn
                # A catalogue that cannot be read is not kept: the caller reads it again,
                # and meets the error in its own thread.
                with contextlib.suppress(Exception):
                    conn.list_tables()
                    conn.known_foreign_keys()

        self._opening = threading.Thread(target=work, name="govkit-open-sources",
                                         daemon=True)
        self._opening.start()

    def _wait(self) -> None:
        if self._opening is not None:
            self._opening.join()
            self._opening = None

    def get(self, source: str) -> Connector:
        """The connector of ``source``, opened on first use."""
        self._wait()
        failed = self._failed.pop(source, None)
        if failed is not None:
            raise failed
        if source not in self._open:
            self._open[source] = open_connector(self.inventory, source, self.writable)
        return self._open[source]

    def close(self) -> None:
        """Close every connector opened."""
        self._wait()
        self._failed.clear()
        while self._open:
            _, conn = self._open.popitem()
            conn.close()

    def __enter__(self) -> ConnectorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
