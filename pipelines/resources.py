"""Dagster resources: where the inventory and the audit store are, and scan settings."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from governance.audit_store import AuditStore
from governance.inventory import Inventory, load_inventory
from governance.scan import DEFAULT_SAMPLE_ROWS, DEFAULT_SEED


class GovernanceResource(dg.ConfigurableResource):
    """The inventory and audit store the pipelines work on."""

    inventory_path: str
    audit_store_path: str
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    seed: int = DEFAULT_SEED
    scan_mode: str = "sampled"  # or "full": every cell (see governance.scan.ScanMode)
    export_dir: str | None = None  # access exports; default: exports/ beside the store

    def inventory(self) -> Inventory:
        """The validated inventory."""
        return load_inventory(self.inventory_path)

    def store(self, create: bool = False) -> AuditStore:
        """The audit store (created only with ``create``: the discovery scan)."""
        return AuditStore(self.audit_store_path, create=create)

    def exports_path(self) -> Path:
        """Where access exports are written."""
        return Path(self.export_dir) if self.export_dir else \
            Path(self.audit_store_path).parent / "exports"
