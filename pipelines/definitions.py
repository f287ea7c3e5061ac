"""The Dagster ``Definitions`` of govkit; load with ``dagster dev -m pipelines.definitions``.

Configuration comes from the environment: ``GOVKIT_INVENTORY`` (inventory YAML) and
``GOVKIT_AUDIT_STORE`` (DuckDB file). Without ``GOVKIT_INVENTORY`` the bundled demo
organisation is generated in ``GOVKIT_DEMO_DIR`` (default ``./govkit-demo``) and used.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from governance.demo import DEFAULT_DEMO_DIR, ensure_demo
from pipelines.audit import audit_definitions
from pipelines.build import build_definitions
from pipelines.encryption import encryption_definitions
from pipelines.retention import retention_definitions


def _from_environment() -> dg.Definitions:
    inventory = os.environ.get("GOVKIT_INVENTORY")
    if inventory:
        store = os.environ.get("GOVKIT_AUDIT_STORE", "govkit-audit.duckdb")
    else:
        demo = ensure_demo(Path(os.environ.get("GOVKIT_DEMO_DIR", DEFAULT_DEMO_DIR)))
        inventory = str(demo.inventory)
        store = os.environ.get("GOVKIT_AUDIT_STORE", str(demo.root / "audit.duckdb"))
    return dg.Definitions.merge(build_definitions(inventory, store),
                                retention_definitions(inventory),
                                audit_definitions(),  # issue 17
                                encryption_definitions(inventory))  # issue 15


defs = _from_environment()
