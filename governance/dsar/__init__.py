"""Data-subject requests: access, erasure and rectification across every source."""

from governance.dsar.holds import LegalHold, LegalHolds
from governance.dsar.identities import Identity, IdentityType, parse_identity
from governance.dsar.requests import (
    DataSubjectRequest,
    RequestBook,
    RequestError,
    RequestState,
    RequestType,
)
from governance.dsar.runner import RunOutcome, plan_request, run_request

__all__ = ["DataSubjectRequest", "Identity", "IdentityType", "LegalHold", "LegalHolds",
           "RequestBook", "RequestError", "RequestState", "RequestType", "RunOutcome",
           "parse_identity", "plan_request", "run_request"]
