"""Sensors: launch the runs of data-subject requests that a person has cleared to run."""


import dagster as dg

from governance.dsar import RequestBook, RequestState, RequestType
from governance.dsar.requests import DataSubjectRequest
from pipelines.requests import JOB_NAMES, op_name
from pipelines.resources import GovernanceResource

SENSOR_DESCRIPTION = (
    "Every minute, launches one run (run key: the request id, so each request runs once) of "
    "every open request in the audit store that is cleared to run: ACCESS requests once the "
    "subject's identity is verified (`govkit dsar verify`), which writes an encrypted export; "
    "ERASURE and RECTIFY requests only once they are also approved (`govkit dsar approve`), "
    "which DELETES, anonymizes or changes the subject's rows in every source of the "
    "inventory. Requests received, only verified (erasure/rectify), in progress or closed "
    "are left alone. Starts stopped: turn it on in the Dagster UI once you want runs to "
    "start without a person at the keyboard.")


def cleared_to_run(request: DataSubjectRequest) -> bool:
    """True when the sensor may launch ``request``: open and not started, identity verified,
    and, for an erasure or rectification, approved by a person."""
    if request.state not in (RequestState.VERIFIED, RequestState.EXTENDED):
        return False
    if request.verified_at is None:
        return False
    return not request.destructive or request.approved_at is not None


def build_verified_requests_sensor(jobs: list[dg.JobDefinition]) -> dg.SensorDefinition:
    """The ``verified_requests`` sensor (stopped by default); see SENSOR_DESCRIPTION."""

    @dg.sensor(name="verified_requests", jobs=jobs, minimum_interval_seconds=60,
               description=SENSOR_DESCRIPTION,
               default_status=dg.DefaultSensorStatus.STOPPED)
    def verified_requests(context: dg.SensorEvaluationContext,
                          governance: GovernanceResource):
        for r in RequestBook(governance.store()).list_requests():
            if not cleared_to_run(r):
                continue
            yield dg.RunRequest(
                run_key=r.request_id, job_name=JOB_NAMES[RequestType(r.request_type)],
                run_config={"ops": {op_name(r.request_type): {
                    "config": {"request_id": r.request_id}}}},
                tags={"govkit/request": r.request_id, "govkit/law": r.law})

    return verified_requests
