"""Sensors: launch the job of every data-subject request verified in the audit store."""


import dagster as dg

from governance.dsar import RequestBook, RequestState, RequestType
from pipelines.requests import JOB_NAMES, op_name
from pipelines.resources import GovernanceResource


def build_verified_requests_sensor(jobs: list[dg.JobDefinition]) -> dg.SensorDefinition:
    """Every minute, one run per verified request (run key: the request id)."""

    @dg.sensor(name="verified_requests", jobs=jobs, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def verified_requests(context: dg.SensorEvaluationContext,
                          governance: GovernanceResource):  # noqa: ANN202
        for r in RequestBook(governance.store()).list_requests():
            if r.state is not RequestState.VERIFIED:
                continue
            yield dg.RunRequest(
                run_key=r.request_id, job_name=JOB_NAMES[RequestType(r.request_type)],
                run_config={"ops": {op_name(r.request_type): {
                    "config": {"request_id": r.request_id}}}},
                tags={"govkit/request": r.request_id, "govkit/law": r.law})

    return verified_requests
