"""Assets: the per-source inventory check and the per-source PII classification."""


import dagster as dg

from governance.discovery import discover
from governance.errors import GovernanceError
from governance.reports import write_scan_report
from governance.scan import FindingStatus, ScanMode, run_scan
from pipelines.resources import GovernanceResource


class ClassificationConfig(dg.Config):
    """Run configuration of the classification: ``mode`` overrides the resource's scan_mode."""

    mode: str | None = None


def build_assets(partitions: dg.StaticPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The assets, partitioned by source name."""

    @dg.asset(partitions_def=partitions, group_name="discovery",
              description="Declared versus found tables and columns of one source.")
    def source_inventory(context: dg.AssetExecutionContext,
                         governance: GovernanceResource) -> dg.MaterializeResult:
        source = context.partition_key
        [state] = discover(governance.inventory(), [source])
        if not state.reachable:
            raise dg.Failure(description=f"source {source!r} unreachable: {state.error}")
        undeclared = [t.table for t in state.tables if not t.declared]
        missing = [t.table for t in state.tables if not t.present]
        context.log.info(f"{source}: {len(state.tables)} tables, undeclared {undeclared}, "
                         f"missing {missing}")
        return dg.MaterializeResult(metadata={
            "tables": len(state.tables),
            "undeclared_tables": dg.MetadataValue.json(undeclared),
            "declared_missing_tables": dg.MetadataValue.json(missing),
            "rows": sum(t.row_count or 0 for t in state.tables),
        })

    @dg.asset(partitions_def=partitions, group_name="discovery", deps=[source_inventory],
              description="Data category of every column of one source, stored as findings "
                          "in the audit store.")
    def pii_classification(context: dg.AssetExecutionContext, config: ClassificationConfig,
                           governance: GovernanceResource) -> dg.MaterializeResult:
        source = context.partition_key
        store = governance.store(create=True)
        try:
            mode = ScanMode(config.mode or governance.scan_mode)
        except ValueError:
            raise dg.Failure(description=f"unknown scan mode {config.mode!r}: "
                                         f"use {', '.join(m.value for m in ScanMode)}") from None
        try:
            result = run_scan(governance.inventory(), store, [source], governance.sample_rows,
                              governance.seed, actor="dagster",
                              orchestrator_run_id=context.run.run_id, progress=context.log.info,
                              mode=mode)
        except GovernanceError as e:
            raise dg.Failure(description=str(e)) from None
        if result.status != "succeeded":
            raise dg.Failure(description=f"scan of {source!r} {result.status}: "
                                         f"{'; '.join(result.errors)}")
        report = write_scan_report(store, result.run_id, store.path.parent / "reports")
        undeclared = [f"{f.table_name}.{f.column_name}" for f in result.findings
                      if f.status in (FindingStatus.UNDECLARED_PII,
                                      FindingStatus.UNDECLARED_TABLE)]
        return dg.MaterializeResult(metadata={
            "scan_run_id": result.run_id,
            "mode": str(mode),
            "columns": len(result.findings),
            "personal_columns": len(result.personal_columns()),
            "sensitive_columns": sum(1 for f in result.personal_columns() if f.sensitive),
            "undeclared_pii": dg.MetadataValue.json(undeclared),
            "report": dg.MetadataValue.path(str(report)),
        })

    return [source_inventory, pii_classification]
