"""Running a verified data-subject request end to end: access, erasure or rectification.

``plan_request`` shows what would be found and changed, changing nothing.
``run_request`` takes the request's lease (one worker at a time), records the plan in
the journal before the first change, applies it source by source, then searches every
source again: an erasure completes only when nothing of the subject remains outside
legal holds. Run it again after a crash and it resumes from the journal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governance.audit_store import AuditStore, record_row
from governance.crypto.aead import seal
from governance.dsar.export import EXPORT_SUFFIX, build_package, write_export
from governance.dsar.holds import LegalHolds
from governance.dsar.identities import Identity, IdentityType
from governance.dsar.journal import StepHook, execute_journal, read_journal, write_journal
from governance.dsar.plan import (
    Step,
    correction_categories,
    plan_erasure,
    plan_rectification,
)
from governance.dsar.requests import (
    DataSubjectRequest,
    RequestBook,
    RequestError,
    RequestState,
    RequestType,
    worker_id,
)
from governance.dsar.resolution import (
    Progress,
    Resolution,
    locate_subject,
    search_everywhere,
)
from governance.inventory import Inventory
from governance.sources.pool import ConnectorPool

Confirm = Callable[[list[Step]], bool]


@dataclass
class RunOutcome:
    """What running a request did."""

    request: DataSubjectRequest
    status: str                   # completed | verification_failed | cancelled
    steps: list[Step] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)   # place -> cells/rows left
    held: dict[str, str] = field(default_factory=dict)        # place -> hold reason
    export_path: Path | None = None
    passphrase: str | None = None  # shown once to the operator; never logged
    found_rows: int = 0


def _usable(book: RequestBook, request_id: str, rtype: RequestType | None = None
            ) -> DataSubjectRequest:
    request = book.get(request_id)
    if not request.is_open:
        raise RequestError(f"request {request_id} is {request.state}; nothing to run")
    if request.verified_at is None:
        raise RequestError(f"request {request_id}: verify the subject's identity first "
                           "(govkit dsar verify)")
    if rtype is not None and request.request_type is not rtype:
        raise RequestError(f"request {request_id} is a {request.request_type} request")
    return request


def plan_request(inventory: Inventory, store: AuditStore, request_id: str,
                 progress: Progress | None = None) -> tuple[Resolution, list[Step]]:
    """Where the subject is found and the steps a run would take; changes nothing."""
    book = RequestBook(store)
    request = book.get(request_id)
    identities = book.identities(request)
    with ConnectorPool(inventory) as pool:
        resolution = locate_subject(inventory, identities, pool, store, progress)
    return resolution, _plan(inventory, store, book, request,
                             [*identities, *resolution.derived], resolution)


def _plan(inventory: Inventory, store: AuditStore, book: RequestBook,
          request: DataSubjectRequest, identities: list[Identity],
          resolution: Resolution) -> list[Step]:
    if request.request_type is RequestType.ERASURE:
        return plan_erasure(inventory, resolution, identities,
                            LegalHolds(store, book.keyring).on_tables())
    if request.request_type is RequestType.RECTIFY:
        return plan_rectification(inventory, resolution, identities,
                                  book.corrections(request))
    return []


def run_request(inventory: Inventory, store: AuditStore, request_id: str, actor: str,
                confirm: Confirm | None = None, export_dir: Path | None = None,
                take_over: bool = False, progress: Progress | None = None,
                on_step: StepHook | None = None) -> RunOutcome:
    """Run a verified request; see the module docstring."""
    book = RequestBook(store)
    request = _usable(book, request_id)
    if request.request_type is RequestType.ERASURE:
        holds = LegalHolds(store, book.keyring).on_subject(request.fingerprints)
        if holds:
            book.record(request_id, actor, "dsar.refused_legal_hold",
                        {"holds": [h.hold_id for h in holds]})
            reasons = "; ".join(f"{h.hold_id}: {h.reason}" for h in holds)
            raise RequestError(f"request {request_id}: the subject is under legal hold "
                               f"({reasons}); erasure refused until the hold is released")
    owner = f"{actor}@{worker_id()}"
    book.claim(request_id, owner, take_over=take_over)
    try:
        if request.request_type is RequestType.ACCESS:
            return _run_access(inventory, store, book, request, actor,
                               export_dir or store.path.parent / "exports", progress)
        return _run_change(inventory, store, book, request, actor, confirm, progress, on_step)
    finally:
        book.release(request_id, owner)


def _start(book: RequestBook, request: DataSubjectRequest, actor: str) -> None:
    if request.state is not RequestState.IN_PROGRESS:
        book.transition(request.request_id, RequestState.IN_PROGRESS, actor)


def _run_access(inventory: Inventory, store: AuditStore, book: RequestBook,
                request: DataSubjectRequest, actor: str, export_dir: Path,
                progress: Progress | None) -> RunOutcome:
    identities = book.identities(request)
    _start(book, request, actor)
    with ConnectorPool(inventory) as pool:
        resolution = locate_subject(inventory, identities, pool, store, progress)
    package, man = build_package(request.request_id, request.law,
                                 [*identities, *resolution.derived], resolution)
    path = Path(export_dir) / f"{request.request_id}{EXPORT_SUFFIX}"
    passphrase = write_export(path, package)
    key = book.request_key(request)
    store.write(lambda conn: (conn.execute(
        "UPDATE dsar_requests SET delivery_secret = ? WHERE request_id = ?",
        [seal(key, passphrase.encode(), f"{request.request_id}/delivery".encode()),
         request.request_id]), record_row(conn, "dsar_requests", request.request_id, actor,
                                          "dsar.delivery_secret_stored")))
    outcome = {
        "export_file": path.name,
        "export_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "exported_rows": man["exported_rows"],
        "locations": [f"{f['source']}.{f['table']} ({f['found_by']}): {f['rows']}"
                      for f in man["found"]],
        "columns_searched": len(man["searched"]),
        "unreachable_sources": sorted(resolution.unreachable),
    }
    if resolution.unreachable:
        book.record(request.request_id, actor, "dsar.incomplete",
                    {"unreachable_sources": sorted(resolution.unreachable)})
        raise RequestError(f"request {request.request_id}: sources could not be searched: "
                           + "; ".join(resolution.unreachable.values()))
    done = book.complete(request.request_id, actor, outcome)
    return RunOutcome(done, "completed", export_path=path, passphrase=passphrase,
                      found_rows=man["exported_rows"])


def _run_change(inventory: Inventory, store: AuditStore, book: RequestBook,
                request: DataSubjectRequest, actor: str, confirm: Confirm | None,
                progress: Progress | None, on_step: StepHook | None) -> RunOutcome:
    identities = book.identities(request)
    key = book.request_key(request)
    rid = request.request_id
    with ConnectorPool(inventory, writable=True) as pool:
        steps = read_journal(store, rid, key)
        if steps:
            book.record(rid, actor, "dsar.resumed",
                        {"pending_steps": sum(s.status == "pending" for s in steps)})
        else:
            resolution = locate_subject(inventory, identities, pool, store, progress)
            if resolution.unreachable:
                raise RequestError(f"request {rid}: sources could not be searched, nothing "
                                   "changed: " + "; ".join(resolution.unreachable.values()))
            identities = [*identities, *resolution.derived]
            steps = _plan(inventory, store, book, request, identities, resolution)
            if confirm is not None and not confirm(steps):
                book.record(rid, actor, "dsar.plan_declined", {"steps": len(steps)})
                return RunOutcome(request, "cancelled", steps)
            book.add_derived(request, resolution.derived, actor)
            write_journal(store, rid, key, steps)
            book.record(rid, actor, "dsar.plan_recorded", {
                "steps": [s.describe() for s in steps]})
            _start(book, request, actor)
        execute_journal(store, rid, steps, pool,
                        lambda v: book.keyring.fingerprint(f"pseudonym:{v}"), on_step)
        steps = read_journal(store, rid, None)
        remaining, held = _verify(inventory, store, book, request, identities, pool, progress)
    for s in steps:
        if s.status == "held":
            held.setdefault(f"{s.source}.{s.table}", f"legal hold: {s.note}")
    changed = {s.describe(): s.rows_affected for s in steps if s.status == "done"}
    if remaining:
        book.record(rid, actor, "dsar.verification_failed",
                    {"remaining": remaining, "held": held})
        return RunOutcome(book.get(rid), "verification_failed", steps, remaining, held)
    outcome = {"steps": changed, "held": held,
               "rows_changed": sum(v or 0 for v in changed.values())}
    done = book.complete(rid, actor, outcome)
    return RunOutcome(done, "completed", steps, {}, held,
                      found_rows=sum(s.planned_rows for s in steps))


def _verify(inventory: Inventory, store: AuditStore, book: RequestBook,
            request: DataSubjectRequest, identities: list[Identity], pool: ConnectorPool,
            progress: Progress | None) -> tuple[dict[str, int], dict[str, str]]:
    """What of the subject is still found (searching every source again), outside legal
    holds; and what is kept under a hold, with its reason."""
    if request.request_type is RequestType.RECTIFY:
        corrected = correction_categories(book.corrections(request))
        identities = [i for i in identities
                      if i.category in corrected and i.type is not IdentityType.USER_ID]
        if not identities:
            return {}, {}
    table_holds = LegalHolds(store, book.keyring).on_tables()
    # Every text cell of every source is searched for the identities the subject gave;
    # those derived from the subject's (now erased) rows are searched in free text.
    given = [i for i in book.identities(request, derived=False) if i in identities]
    cells, unreachable = search_everywhere(inventory, given, pool, progress)
    found: dict[tuple[str, str, str], int] = dict(cells)
    if request.request_type is not RequestType.RECTIFY:
        # (Rectified rows are still found by the subject's other identities: for a
        # rectification only the old values of corrected identities count.)
        derived = [i for i in identities if i not in given]
        resolution = locate_subject(inventory, given, pool, store, progress, expand=False,
                                    also_in_text=derived, given_in_text=False)
        for loc in resolution.locations:
            place = (loc.source, loc.table, loc.match_column)
            found[place] = max(found.get(place, 0), len(loc.rows))
    remaining: dict[str, int] = {}
    held: dict[str, str] = {}
    for (source, table, column), n in sorted(found.items()):
        hold = table_holds.get((source, table))
        if hold is not None:
            held[f"{source}.{table}"] = f"{hold.hold_id}: {hold.reason}"
        else:
            remaining[f"{source}.{table}.{column}"] = n
    for source, error in unreachable.items():
        remaining[f"{source} (unreachable: {error})"] = -1
    return remaining, held


def delivery_passphrase(store: AuditStore, request_id: str) -> str:
    """The passphrase of a request's access export (for the DPO to send the subject)."""
    from governance.crypto.aead import open_sealed

    book = RequestBook(store)
    request = book.get(request_id)
    rows = store.query("SELECT delivery_secret FROM dsar_requests WHERE request_id = ?",
                       [request_id])
    if not rows or rows[0]["delivery_secret"] is None:
        raise RequestError(f"request {request_id} has no access export")
    return open_sealed(book.request_key(request), bytes(rows[0]["delivery_secret"]),
                       f"{request_id}/delivery".encode(), "delivery passphrase").decode()


def describe_outcome(outcome: RunOutcome) -> dict[str, Any]:
    """The outcome as shown to people and orchestrators (no values)."""
    return {"request_id": outcome.request.request_id, "status": outcome.status,
            "state": outcome.request.state.value,
            "steps": [s.describe() + (f" [{s.status}, {s.rows_affected} changed]"
                                      if s.status == "done" else f" [{s.status}]")
                      for s in outcome.steps],
            "remaining": outcome.remaining, "held": outcome.held,
            "export": str(outcome.export_path) if outcome.export_path else None}
