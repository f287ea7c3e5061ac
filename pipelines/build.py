"""Build the Dagster Definitions for one inventory and audit store."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from governance.inventory import load_inventory
from pipelines.assets import build_assets
from pipelines.jobs import build_discovery_job
from pipelines.requests import build_request_jobs, intake_job
from pipelines.resources import GovernanceResource
from pipelines.schedules import build_daily_scan_schedule
from pipelines.sensors import build_verified_requests_sensor


def build_definitions(inventory_path: str | Path, audit_store_path: str | Path,
                      sample_rows: int = 200, seed: int = 0) -> dg.Definitions:
    """Definitions over one inventory: partitions are its source names."""
    inventory = load_inventory(inventory_path)
    partitions = dg.StaticPartitionsDefinition([s.name for s in inventory.sources])
    assets = build_assets(partitions)
    job = build_discovery_job(assets)
    request_jobs = list(build_request_jobs().values())
    return dg.Definitions(
        assets=assets,
        jobs=[job, *request_jobs, intake_job],
        schedules=[build_daily_scan_schedule(job, partitions)],
        sensors=[build_verified_requests_sensor(request_jobs)],
        resources={"governance": GovernanceResource(
            inventory_path=str(Path(inventory_path).resolve()),
            audit_store_path=str(Path(audit_store_path).resolve()),
            sample_rows=sample_rows, seed=seed)},
    )
