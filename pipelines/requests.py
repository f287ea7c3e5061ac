"""Jobs that run data-subject requests, one per request type, configured with the id."""


import dagster as dg

from governance.dsar import RequestBook, RequestType, run_request
from governance.dsar.runner import describe_outcome
from governance.errors import GovernanceError
from pipelines.resources import GovernanceResource

JOB_NAMES = {t: f"dsar_{t.value}" for t in RequestType}


class RequestRunConfig(dg.Config):
    """Which request to run; ``take_over`` breaks the lease of a worker that died."""

    request_id: str
    take_over: bool = False


def op_name(request_type: RequestType) -> str:
    """The name of the op running requests of ``request_type`` (run config key)."""
    return f"run_{request_type.value}_request"


def build_request_job(request_type: RequestType) -> dg.JobDefinition:
    """A job running one verified request of ``request_type``."""

    @dg.op(name=op_name(request_type),
           description=f"Run a verified {request_type.value} request end to end.")
    def run_one(context: dg.OpExecutionContext, config: RequestRunConfig,
                governance: GovernanceResource) -> dict:
        store = governance.store()
        try:
            request = RequestBook(store).get(config.request_id)
            if request.request_type is not request_type:
                raise dg.Failure(description=f"{config.request_id} is a "
                                             f"{request.request_type} request, not "
                                             f"{request_type.value}")

            def log_plan(steps: list) -> bool:
                for s in steps:
                    context.log.info(f"plan: {s.describe()}")
                return True

            outcome = run_request(governance.inventory(), store, config.request_id,
                                  actor="dagster", confirm=log_plan,
                                  export_dir=governance.exports_path(),
                                  take_over=config.take_over, progress=context.log.info)
        except GovernanceError as e:
            raise dg.Failure(description=str(e)) from None
        summary = describe_outcome(outcome)
        if outcome.status != "completed":
            raise dg.Failure(description=f"{config.request_id}: {outcome.status}",
                             metadata={"remaining": dg.MetadataValue.json(outcome.remaining)})
        if outcome.export_path:
            context.log.info(f"export written: {outcome.export_path} (passphrase: "
                             f"`govkit dsar passphrase {config.request_id}`)")
        return summary

    @dg.job(name=JOB_NAMES[request_type],
            description=f"Run a verified {request_type.value} request (config: request_id).")
    def request_job() -> None:
        run_one()

    return request_job


def build_request_jobs() -> dict[RequestType, dg.JobDefinition]:
    """One job per request type."""
    return {t: build_request_job(t) for t in RequestType}
