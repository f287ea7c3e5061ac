"""Jobs that record data-subject requests from intake files, and run them, one job per
request type, configured with the request id."""


import dagster as dg

from governance.dsar import RequestBook, RequestType, run_request
from governance.dsar.deadlines import DEFAULT_PIPL_WORKING_DAYS
from governance.dsar.intake import create_from_file
from governance.dsar.runner import describe_outcome
from governance.errors import GovernanceError
from pipelines.resources import GovernanceResource

JOB_NAMES = {t: f"dsar_{t.value}" for t in RequestType}
INTAKE_JOB = "dsar_intake"


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
           description=f"Run a verified {request_type.value} request end to end"
                       + (" (only once approved: `govkit dsar approve`)."
                          if request_type is not RequestType.ACCESS else "."))
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


class IntakeConfig(dg.Config):
    """A request to record. The subject's identities are read from ``intake_file`` (see
    governance.dsar.intake), never from this config, which Dagster keeps in plaintext.
    ``received`` (YYYY-MM-DD) records a request that arrived earlier (a letter); the
    deadline counts from it; default: now. It may be in the intake file instead."""

    request_type: str
    jurisdiction: str
    intake_file: str
    remove_file: bool = True
    pipl_working_days: int = DEFAULT_PIPL_WORKING_DAYS
    received: str | None = None


@dg.op(description="Record a data-subject request from an intake file (then removed).")
def record_request(context: dg.OpExecutionContext, config: IntakeConfig,
                   governance: GovernanceResource) -> str:
    """Record the request; returns its id."""
    try:
        request = create_from_file(
            RequestBook(governance.store()), config.intake_file, config.request_type,
            config.jurisdiction, actor=f"dagster:{context.run_id}", remove=config.remove_file,
            pipl_working_days=config.pipl_working_days, received_at=config.received)
    except GovernanceError as e:
        raise dg.Failure(description=str(e)) from None
    then = (f"; then `govkit dsar approve {request.request_id} --note ...` before it can "
            "run" if request.destructive else "")
    context.log.info(f"recorded {request.request_id} ({request.request_type}, "
                     f"{', '.join(request.masked_identities)}), received "
                     f"{request.received_at:%Y-%m-%d}, due {request.due_date}; "
                     f"next: `govkit dsar verify {request.request_id} --note ...`{then}")
    context.add_output_metadata({"request_id": request.request_id,
                                 "due_date": str(request.due_date),
                                 "identities": ", ".join(request.masked_identities)})
    return request.request_id


@dg.job(name=INTAKE_JOB, description="Record a data-subject request from an intake file "
                                     "(config: request_type, jurisdiction, intake_file).")
def intake_job() -> None:
    record_request()
