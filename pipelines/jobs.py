"""Jobs: the discovery scan of one source (one partition per source)."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

DISCOVERY_JOB = "discovery_scan"


def build_discovery_job(assets: list[dg.AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    """Inventory check then PII classification of a source; run it per source partition."""
    return dg.define_asset_job(DISCOVERY_JOB, selection=dg.AssetSelection.assets(*assets),
                               description="Inventory check and PII discovery scan of a source.")
