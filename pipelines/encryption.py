"""Field encryption in Dagster: one encryption asset per source (partition), a job, and an
asset check that fails while a column the policy requires encrypted holds plaintext.

The asset encrypts its source's policy columns (``dry_run`` only counts), then runs the
encryption audit on that source; the check ``no_plaintext_where_required`` passes only when
every such column holds valid envelopes whose keys exist. Metadata and logs hold counts and
column names, never a value or key material. The KEK comes from the policy's key store (the
audit store's master key by default; an HSM PIN from the environment variable it names).
"""

import os

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from governance.errors import GovernanceError
from pipelines.resources import GovernanceResource

ENCRYPTION_JOB = "field_encryption_job"
CHECK_NAME = "no_plaintext_where_required"
POLICY_ENV = "GOVKIT_ENCRYPTION_POLICY"


class EncryptionConfig(dg.Config):
    """The policy file (default: ``GOVKIT_ENCRYPTION_POLICY``, else encryption.yaml beside
    the inventory, else the defaults) and ``dry_run`` to only count."""

    policy: str | None = None
    dry_run: bool = False


def build_encryption_assets(partitions: dg.StaticPartitionsDefinition
                            ) -> list[dg.AssetsDefinition]:
    """The field-encryption asset (with its check), partitioned by source name."""

    @dg.asset(partitions_def=partitions, group_name="encryption",
              description="The source's columns that the encryption policy requires "
                          "encrypted, sealed under each data subject's key.",
              check_specs=[dg.AssetCheckSpec(
                  CHECK_NAME, asset="field_encryption",
                  description="Fails when a column the policy requires encrypted holds "
                              "plaintext, invalid envelopes or envelopes whose keys are "
                              "missing.")])
    def field_encryption(context: dg.AssetExecutionContext, config: EncryptionConfig,
                         governance: GovernanceResource) -> dg.MaterializeResult:
        from governance.encryption import (
            encrypt,
            encryption_status,
            load_policy,
            subject_keys_for,
        )

        source = context.partition_key
        try:
            inv = governance.inventory()
            store = governance.store()
            policy = load_policy(config.policy or os.environ.get(POLICY_ENV) or None, inv)
            keys = None if config.dry_run else subject_keys_for(policy, store)
            run = encrypt(inv, store, keys, policy, apply=not config.dry_run, actor="dagster",
                          sources=[source], progress=context.log.info)
            for t in run.tables:
                context.log.info(t.describe())
            status = encryption_status(inv, store, policy, sources=[source], actor="dagster")
        except GovernanceError as e:
            raise dg.Failure(description=str(e).splitlines()[0]) from None
        bad = [s for s in status if not s.ok]
        return dg.MaterializeResult(
            metadata={"dry_run": config.dry_run,
                      "cells_sealed": sum(t.cells_sealed for t in run.tables),
                      "tables_failed": [f"{t.source}.{t.table}" for t in run.tables if t.error]},
            check_results=[dg.AssetCheckResult(
                check_name=CHECK_NAME, passed=not bad, severity=dg.AssetCheckSeverity.ERROR,
                metadata={"columns_checked": len(status),
                          "not_encrypted": [f"{s.source}.{s.table}.{s.column}: {s.status} "
                                            f"({s.plaintext_cells} plaintext, "
                                            f"{s.invalid_cells} invalid, "
                                            f"{s.missing_key_cells} missing keys)"
                                            for s in bad]})])

    return [field_encryption]


def build_encryption_job(assets: list[dg.AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    """Field encryption of a source; run it per source partition."""
    return dg.define_asset_job(ENCRYPTION_JOB, selection=dg.AssetSelection.assets(*assets),
                               description="Encrypt a source's policy columns, then check "
                                           "that no required column holds plaintext.")


def encryption_definitions(inventory_path: str) -> dg.Definitions:
    """The encryption asset, its check and job for an inventory's sources (the
    ``governance`` resource comes from the main definitions they are merged with)."""
    from governance.inventory import load_inventory

    partitions = dg.StaticPartitionsDefinition(
        [s.name for s in load_inventory(inventory_path).sources])
    assets = build_encryption_assets(partitions)
    return dg.Definitions(assets=assets, jobs=[build_encryption_job(assets)])
