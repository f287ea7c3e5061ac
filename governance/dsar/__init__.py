"""Data-subject requests: access, erasure and rectification across every source.

The names below are imported on first use, so that commands that only list or record
requests (``govkit dsar list``, ``new``, ``verify``) do not load the request engine and its
free-text detector.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "LegalHold": "holds", "LegalHolds": "holds",
    "Identity": "identities", "IdentityType": "identities", "parse_identity": "identities",
    "DataSubjectRequest": "requests", "RequestBook": "requests", "RequestError": "requests",
    "RequestState": "requests", "RequestType": "requests",
    "RunOutcome": "runner", "plan_request": "runner", "run_request": "runner",
}

__all__ = ["DataSubjectRequest", "Identity", "IdentityType", "LegalHold", "LegalHolds",
           "RequestBook", "RequestError", "RequestState", "RequestType", "RunOutcome",
           "parse_identity", "plan_request", "run_request"]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` when it is first asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"governance.dsar.{module}"), name)
    globals()[name] = value
    return value
