"""Retention in Dagster: one retention asset per source, a job, a daily schedule (stopped).

The asset plans retention for its source (partition), logs the plan (rules, tables,
predicates with placeholders, counts: never values) and then applies it through
``governance.retention``; a run killed midway is finished by the next one. The schedule
deletes data, so it starts STOPPED until a person turns it on in the Dagster UI.
"""


import os
from datetime import UTC, datetime

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from governance.errors import GovernanceError
from pipelines.resources import GovernanceResource
from pipelines.schedules import per_source_runs

RETENTION_JOB = "retention_enforcement"
DAILY_RETENTION_CRON = "30 3 * * *"
POLICY_ENV = "GOVKIT_RETENTION_POLICY"


class RetentionConfig(dg.Config):
    """Policy files (default: ``GOVKIT_RETENTION_POLICY``, ':'-separated), the clock
    (ISO; default now), ``dry_run`` to only plan, and the batch size."""

    policies: list[str] = []
    now: str | None = None
    dry_run: bool = False
    batch_rows: int = 500_000


def build_retention_assets(partitions: dg.StaticPartitionsDefinition
                           ) -> list[dg.AssetsDefinition]:
    """The retention asset, partitioned by source name."""

    @dg.asset(partitions_def=partitions, group_name="retention",
              description="Rows past retention deleted or anonymized in one source, with "
                          "proof in the audit log (plan logged first).")
    def retention(context: dg.AssetExecutionContext, config: RetentionConfig,
                  governance: GovernanceResource) -> dg.MaterializeResult:
        from governance.retention.applying import apply_retention
        from governance.retention.planning import RetentionPlan, plan_retention
        from governance.retention.policy import load_policies

        source = context.partition_key
        paths = config.policies or [p for p in os.environ.get(POLICY_ENV, "").split(os.pathsep)
                                    if p]
        if not paths:
            raise dg.Failure(description=f"no retention policy: set {POLICY_ENV} or the run "
                                         "config's policies")
        now = datetime.fromisoformat(config.now) if config.now else datetime.now(UTC)
        now = now if now.tzinfo else now.replace(tzinfo=UTC)

        def log_plan(plan: RetentionPlan) -> None:
            for s in plan.steps:
                context.log.info(f"plan: {s.describe()} WHERE {s.predicate}")
            for note in plan.notes:
                context.log.info(f"plan: {note}")

        try:
            policies = load_policies(paths)
            store = governance.store()
            if config.dry_run:
                plan = plan_retention(policies, governance.inventory(), store, now, [source])
                log_plan(plan)
                return dg.MaterializeResult(metadata={"dry_run": True, "due": plan.due})
            result = apply_retention(policies, governance.inventory(), store, now, "dagster",
                                     config.batch_rows, [source], context.log.info, log_plan)
        except GovernanceError as e:
            raise dg.Failure(description=str(e)) from None
        return dg.MaterializeResult(metadata={
            "retention_run_id": result.run_id, "resumed": result.resumed,
            "rows_changed": result.changed,
            "steps": dg.MetadataValue.json([
                {"rule": s["rule"], "table": f"{s['source']}.{s['table_name']}",
                 "action": s["action"], "rows": s["rows_affected"], "held": s["held_rows"],
                 "status": s["status"]} for s in result.steps if s["source"] == source])})

    return [retention]


def build_retention_job(assets: list[dg.AssetsDefinition]) -> UnresolvedAssetJobDefinition:
    """Retention of a source; run it per source partition."""
    return dg.define_asset_job(RETENTION_JOB, selection=dg.AssetSelection.assets(*assets),
                               description="Delete or anonymize rows past retention in a "
                                           "source (plan logged first).")


def build_retention_schedule(job: UnresolvedAssetJobDefinition,
                             partitions: dg.StaticPartitionsDefinition
                             ) -> dg.ScheduleDefinition:
    """At 03:30 UTC every day, one run per source. Starts STOPPED: it deletes data."""

    @dg.schedule(job=job, cron_schedule=DAILY_RETENTION_CRON, name="daily_retention",
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Daily retention enforcement per source: DELETES or anonymizes "
                             "rows past retention. Stopped until a person turns it on.")
    def daily_retention(context: dg.ScheduleEvaluationContext):
        yield from per_source_runs(context, partitions, "retention-")

    return daily_retention


def retention_definitions(inventory_path: str) -> dg.Definitions:
    """The retention asset, job and schedule for an inventory's sources (the
    ``governance`` resource comes from the main definitions they are merged with)."""
    from governance.inventory import load_inventory

    partitions = dg.StaticPartitionsDefinition(
        [s.name for s in load_inventory(inventory_path).sources])
    assets = build_retention_assets(partitions)
    job = build_retention_job(assets)
    return dg.Definitions(assets=assets, jobs=[job],
                          schedules=[build_retention_schedule(job, partitions)])
