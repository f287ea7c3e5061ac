"""Schedules: the daily discovery scan of every source."""


import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

DAILY_SCAN_CRON = "0 2 * * *"
SCHEDULE_DESCRIPTION = (
    "At 02:00 UTC, one discovery-scan run per source of the inventory: reads (samples) every "
    "table and records findings in the audit store; changes no data. Starts stopped: turn it "
    "on in the Dagster UI.")


def build_daily_scan_schedule(job: UnresolvedAssetJobDefinition,
                              partitions: dg.StaticPartitionsDefinition) -> dg.ScheduleDefinition:
    """At 02:00 UTC every day, one run per source so sources scan in parallel. Starts
    stopped (nothing runs unattended until someone turns it on)."""

    @dg.schedule(job=job, cron_schedule=DAILY_SCAN_CRON, name="daily_discovery_scan",
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=SCHEDULE_DESCRIPTION)
    def daily_discovery_scan(context: dg.ScheduleEvaluationContext):
        yield from per_source_runs(context, partitions)

    return daily_discovery_scan


def per_source_runs(context: dg.ScheduleEvaluationContext,
                    partitions: dg.StaticPartitionsDefinition, key_prefix: str = ""):
    """One run request per source partition for this tick (run key ``<prefix><day>-<source>``,
    so a tick never starts a source twice)."""
    tick = context.scheduled_execution_time.strftime("%Y%m%d")
    for source in partitions.get_partition_keys():
        yield dg.RunRequest(run_key=f"{key_prefix}{tick}-{source}", partition_key=source,
                            tags={"govkit/source": source})
