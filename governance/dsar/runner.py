"""Running a verified data-subject request end to end: access, erasure or rectification.

``plan_request`` shows what would be found and changed, changing nothing.
``run_request`` takes the request's lease (one worker at a time), records the plan in
the journal before the first change, applies it source by source, then searches every
source again: an erasure completes only when nothing of the subject remains outside
legal holds. Run it again after a crash and it resumes from the journal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governance.audit_store import AuditStore
from governance.crypto.aead import seal
from governance.dsar.approval import PlanBinding, approval_blockers, binding_of
from governance.dsar.export import EXPORT_SUFFIX, build_package, write_export
from governance.dsar.holds import LegalHold, LegalHolds
from governance.dsar.identities import CATEGORY_OF, Identity, IdentityError, IdentityType
from governance.dsar.journal import (
    StepHook,
    drop_pending,
    execute_journal,
    mark_held,
    read_journal,
    write_journal,
)
from governance.dsar.plan import (
    Action,
    PlanError,
    Step,
    corrected_categories,
    not_followed,
    plan_erasure,
    plan_rectification,
)
from governance.dsar.requests import (
    DataSubjectRequest,
    RequestBook,
    RequestError,
    RequestType,
)
from governance.dsar.resolution import (
    Categories,
    Progress,
    Resolution,
    column_categories,
    exact_hits_by_identity,
    locate_subject,
    verification_hits,
)
from governance.encryption.runner import ShredOutcome, decrypt_for_access, shred_for_erasure
from governance.errors import GovernanceError
from governance.faults import fault_point
from governance.inventory import Inventory
from governance.masking import mask_free_text as safe_text
from governance.sources.pool import ConnectorPool
from governance.workers import worker_id

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
    kept: dict[str, str] = field(default_factory=dict)        # place -> why it is kept
    # Steps a resumed run found with nothing left to change: an interrupted run changed
    # their rows and its count was lost (step_no -> rows planned).
    found_done: dict[int, int] = field(default_factory=dict)
    # Access: rows pointing at the subject's rows through keys ownership does not follow,
    # not in the export (place -> what), for the DPO to review.
    not_followed: dict[str, str] = field(default_factory=dict)
    # What the DPO should check before answering (an access that found nothing).
    warnings: list[str] = field(default_factory=list)


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


def _fingerprints(book: RequestBook, identities: Sequence[Identity]) -> list[str]:
    return sorted({book.keyring.fingerprint(i.fingerprint_text()) for i in identities})


def _subject_holds(holds: LegalHolds, book: RequestBook, request: DataSubjectRequest,
                   identities: Sequence[Identity], inventory: Inventory,
                   person_rows: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]]
                   ) -> list[LegalHold]:
    """The holds (of those ``holds`` read) on the subject: by any identity of the request,
    given or derived, or on persons by key covering one of the subject's ``person_rows``."""
    if request.request_type is RequestType.ACCESS:
        return []
    fps = sorted({*request.fingerprints, *_fingerprints(book, identities)})
    found = holds.on_subject(fps)
    return found + [h for h in holds.on_persons(inventory, person_rows) if h not in found]


def _own_person_rows(resolution: Resolution) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The subject's own rows of person tables, by (source, table)."""
    graph = resolution.graph
    return {t: rows for t, rows in resolution.owned.items()
            if graph is not None and graph.is_person(t)}


def _hold_blocker(holds: Sequence[LegalHold]) -> str:
    reasons = "; ".join(f"{h.hold_id}: {h.reason}" for h in holds)
    return (f"the subject is under legal hold ({reasons}); erasure is refused until the "
            "hold is released")


def plan_request(inventory: Inventory, store: AuditStore, request_id: str,
                 progress: Progress | None = None) -> tuple[Resolution, list[Step]]:
    """Where the subject is found and the steps a run would take; changes nothing. What
    would stop a run (a hold, a shared identity, a reference that would break) is listed in
    ``resolution.blockers``."""
    with ConnectorPool(inventory) as pool:
        pool.open_in_background()   # while the store is read
        with store.session():
            book = RequestBook(store)
            request = book.get(request_id)
            given = book.identities(request, derived=False)
            categories = column_categories(inventory, store)
            holds_now = LegalHolds(store, book.keyring)
            table_holds = holds_now.on_tables(inventory)   # (all holds read in this burst)
        resolution = locate_subject(inventory, given, pool, store, progress, categories)
        steps = _plan(inventory, book, request, given, resolution, pool, table_holds)
    holds = _subject_holds(holds_now, book, request, [*given, *resolution.derived],
                           inventory, _own_person_rows(resolution))
    if holds:
        resolution.blockers.insert(0, _hold_blocker(holds))
    return resolution, steps


def _plan(inventory: Inventory, book: RequestBook, request: DataSubjectRequest,
          given: list[Identity], resolution: Resolution, pool: ConnectorPool,
          table_holds: dict[tuple[str, str], LegalHold], first_plan: bool = True
          ) -> list[Step]:
    """The steps of the request's plan now. ``first_plan``: no step of it was done yet
    (a rectification run again after its changes, found by its old e-mail, finds nobody:
    it is not then told that it would correct nothing)."""
    if resolution.blockers and not resolution.locations:
        return []
    everything = [*given, *resolution.derived]
    exclusive = [*given, *[i for i in resolution.derived
                           if i not in resolution.shared_identities]]
    if request.request_type is RequestType.ERASURE:
        return plan_erasure(inventory, resolution, everything, table_holds, pool, exclusive)
    if request.request_type is RequestType.RECTIFY:
        steps = plan_rectification(inventory, resolution, everything,
                                   book.corrections(request), first_plan)
        if first_plan:
            _refuse_identities_of_others(inventory, resolution, steps, pool)
        return steps
    return []


# The kinds of identity a correction can write (an e-mail, a phone), by category.
_IDENTITY_OF = {CATEGORY_OF[t]: t for t in (IdentityType.EMAIL, IdentityType.PHONE)}


def _refuse_identities_of_others(inventory: Inventory, resolution: Resolution,
                                 steps: Sequence[Step], pool: ConnectorPool) -> None:
    """A rectification that would write into the subject's row an e-mail or phone that
    another person's row holds stops the plan: two people would then share it, and a
    request by it could no longer say who asked."""
    new: dict[Identity, str] = {}
    for step in steps:
        if step.action is not Action.RECTIFY:
            continue
        for col, value in step.changes.items():
            for cat in resolution.categories.get((step.source, step.table, col), set()):
                if cat in _IDENTITY_OF:
                    try:
                        ident = Identity(_IDENTITY_OF[cat], str(value))
                        ident.canonical()
                    except (IdentityError, ValueError):
                        continue      # (its form was checked when the step was planned)
                    new[ident] = f"{step.source}.{step.table}.{col}"
    if not new:
        return
    hits = exact_hits_by_identity(inventory, list(new), pool,
                                  categories=resolution.categories)
    for (source, table, col), per in hits.items():
        if resolution.graph is None or not resolution.graph.is_person((source, table)):
            continue
        rows = resolution.owned.get((source, table), [])
        for ident, count in per.items():
            forms = {v.casefold() for v in ident.variants()}
            theirs = count - sum(1 for r in rows
                                 if str(r.get(col) or "").strip().casefold() in forms)
            if theirs > 0:
                resolution.blockers.append(
                    f"{new[ident]}: the new {ident.type.value} is already held by "
                    f"{theirs} other person row(s) of {source}.{table} ({col}); writing it "
                    "would give two people one identity, and a request by it could no "
                    "longer say who asked. Check it with the subject (a typing error?), "
                    "then reject this request and file it again")


@dataclass
class _Run:
    """What a run reads from the store before it searches anything (one burst)."""

    book: RequestBook
    request: DataSubjectRequest
    actor: str
    owner: str                    # who holds the request's lease
    given: list[Identity]         # the identities the subject gave
    categories: Categories
    key: bytes                    # the request's key (it seals the journal)
    journal: list[Step] = field(default_factory=list)
    # Holds as the run began (read again from the store right before any change).
    holds: LegalHolds | None = None

    @property
    def rid(self) -> str:
        return self.request.request_id

    def release(self) -> None:
        """Give the request's lease back (inside the caller's store burst)."""
        self.book.release(self.rid, self.owner)


def run_request(inventory: Inventory, store: AuditStore, request_id: str, actor: str,
                confirm: Confirm | None = None, export_dir: Path | None = None,
                take_over: bool = False, progress: Progress | None = None,
                on_step: StepHook | None = None, every_text_cell: bool = False,
                nothing_left: bool = False) -> RunOutcome:
    """Run a verified (and, to change data, approved) request; see the module docstring.
    Verification matches every identity in the columns of its kind and searches free-text
    columns; with ``every_text_cell`` it searches every text cell of every table too.
    A re-planned request whose new plan finds none of the subject's rows, where the plan
    it replaced had rows to change, stops (the subject may have changed the identity the
    request names) unless ``nothing_left`` confirms that their rows are gone.

    The store is held open only for bursts of bookkeeping, never while a source is
    searched or changed (other processes wait for it meanwhile)."""
    owner = f"{actor}@{worker_id()}"
    # An access request's sources open while the store is read (they are only read).
    with ConnectorPool(inventory) as reading:
        with store.session():
            book = RequestBook(store)
            request = _usable(book, request_id)
            if request.request_type is RequestType.ACCESS:
                reading.open_in_background()   # while the rest of this burst runs
            book.require_approval(request)  # erasure/rectify: verification is not approval
            holds_now = LegalHolds(store, book.keyring)
            if request.request_type is RequestType.ERASURE:
                holds = holds_now.on_subject(request.fingerprints)
                if holds:
                    book.record(request_id, actor, "dsar.refused_legal_hold",
                                {"holds": [h.hold_id for h in holds]})
                    raise RequestError(f"request {request_id}: {_hold_blocker(holds)}")
            book.claim(request_id, owner, take_over=take_over)
            if not every_text_cell and _verified_every_cell_before(store, request_id):
                # A verification that searched every text cell found the subject left:
                # a later one searches at least as widely, or it could say completed
                # with that cell still holding them.
                every_text_cell = True
                if progress:
                    progress("every text cell is searched again: an earlier run's "
                             "verification that did so found the subject left")
            try:
                run = _Run(book, request, actor, owner,
                           book.identities(request, derived=False),
                           column_categories(inventory, store), book.request_key(request))
                if request.request_type is not RequestType.ACCESS:
                    run.journal = read_journal(store, request_id, run.key)
                    run.holds = holds_now
            except BaseException:
                book.release(request_id, owner)
                raise
        try:
            if request.request_type is RequestType.ACCESS:
                return _run_access(inventory, store, run, reading,
                                   export_dir or store.path.parent / "exports", progress)
            return _run_change(inventory, store, run, confirm, progress, on_step,
                               every_text_cell, nothing_left)
        except BaseException:
            book.release(request_id, owner)   # the runs give it back in their last burst
            raise


def _verified_every_cell_before(store: AuditStore, request_id: str) -> bool:
    """Whether a verification of this request that searched every text cell failed."""
    return any((e.details or {}).get("every_text_cell") for e in
               store.log_events(["dsar.verification_failed"], target=request_id))


def _run_access(inventory: Inventory, store: AuditStore, run: _Run, pool: ConnectorPool,
                export_dir: Path, progress: Progress | None) -> RunOutcome:
    with pool:
        resolution = locate_subject(inventory, run.given, pool, store, progress,
                                    run.categories)
        missing = {} if resolution.blockers or resolution.unreachable \
            else not_followed(inventory, resolution, pool)
        for (source, table), rows in resolution.shared.items():
            if rows:    # said in the outcome, never exported
                missing[f"{source}.{table}"] = (
                    f"{len(rows)} row(s) tied to the subject and to another person (a row "
                    "two people share, or a key another person's row holds too): not "
                    "exported; review them")
    with store.session():
        # Completing gives the lease back; on an error run_request does.
        return _deliver_access(inventory, store, run, export_dir, resolution, missing)


def _deliver_access(inventory: Inventory, store: AuditStore, run: _Run, export_dir: Path,
                    resolution: Resolution, missing: dict[str, str] | None = None
                    ) -> RunOutcome:
    """Export what was found and complete the request, its export's passphrase stored
    sealed; nothing is exported when a source could not be searched. ``missing``: rows
    the export may lack (reached only through keys ownership does not follow)."""
    book, request, actor, identities = run.book, run.request, run.actor, run.given
    if resolution.blockers:
        book.record(request.request_id, actor, "dsar.plan_refused",
                    {"blockers": resolution.blockers})
        raise PlanError(f"request {request.request_id} needs a decision, nothing was "
                        "exported: " + " | ".join(resolution.blockers))
    if resolution.unreachable:
        # Nothing is exported from a search that could not reach every source.
        book.record(request.request_id, actor, "dsar.incomplete",
                    {"unreachable_sources": sorted(resolution.unreachable)})
        raise RequestError(f"request {request.request_id}: sources could not be searched, "
                           "nothing was exported: "
                           + "; ".join(resolution.unreachable.values()))
    package, man = build_package(
        request.request_id, request.law, [*identities, *resolution.derived], resolution,
        inventory=inventory,
        decrypt=lambda tables: decrypt_for_access(inventory, store, tables, actor,
                                                  request.request_id))
    path = Path(export_dir) / f"{request.request_id}{EXPORT_SUFFIX}"
    passphrase = write_export(path, package)
    warnings = [] if resolution.locations else [
        "nothing was found: no row of any source holds these identities as they were "
        "given. Before answering that you hold no data, search with another identity the "
        "subject uses: a value may be stored in another form (a phone number written "
        "without its country code, another e-mail address)"]
    outcome = {
        "warnings": warnings,
        "export_file": path.name,
        "export_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "exported_rows": man["exported_rows"],
        "locations": [f"{f['source']}.{f['table']} ({f['found_by']}): {f['rows']}"
                      for f in man["found"]],
        "columns_searched": len(man["searched"]),
        "unreachable_sources": [],
        "not_followed": missing or {},
    }
    secret = seal(run.key, passphrase.encode(), f"{request.request_id}/delivery".encode())
    # In one commit: the lease is still this worker's (nothing is concluded by a worker
    # taken over), in_progress, then completed (nothing was changed in between).
    done = book.conclude(request.request_id, actor, outcome, delivery_secret=secret,
                         owner=run.owner, start=True)
    return RunOutcome(done, "completed", export_path=path, passphrase=passphrase,
                      found_rows=man["exported_rows"], not_followed=missing or {},
                      warnings=warnings)


def _run_change(inventory: Inventory, store: AuditStore, run: _Run, confirm: Confirm | None,
                progress: Progress | None, on_step: StepHook | None,
                every_text_cell: bool = False, nothing_left: bool = False) -> RunOutcome:
    book, request, actor, rid, given = run.book, run.request, run.actor, run.rid, run.given
    with ConnectorPool(inventory, writable=True) as pool:
        _clean_temporaries(pool, inventory, book, rid, actor)
        pending = [s for s in run.journal if s.status == "pending"]
        new_steps: list[Step] | None = None   # a plan made now (not resumed)
        if pending:
            with store.session():
                book.record(rid, actor, "dsar.resumed", {"pending_steps": len(pending)})
                book.start(rid, actor)  # a crash may have come before the state changed
                identities = book.identities(request)
            # A crash may have come before the keys were destroyed: they are (again) below.
            person_rows = _person_rows_of(inventory, pending)
        else:
            # No journal yet, or every step of it done (a rerun after a failed verification
            # or after re-planning): locate the subject again with the identities they gave.
            resolution = locate_subject(inventory, given, pool, store, progress,
                                        run.categories)
            if resolution.unreachable:
                raise RequestError(f"request {rid}: sources could not be searched, nothing "
                                   "changed: " + "; ".join(resolution.unreachable.values()))
            assert run.holds is not None   # read in run_request's first burst
            steps = _plan(inventory, book, request, given, resolution, pool,
                          run.holds.on_tables(inventory),
                          first_plan=not any(s.status == "done" for s in run.journal))
            person_rows = _own_person_rows(resolution)
            holds = _subject_holds(run.holds, book, request, [*given, *resolution.derived],
                                   inventory, person_rows)
            blockers = ([_hold_blocker(holds)] if holds else []) + resolution.blockers
            replaced = 0 if resolution.locations else _replaced_plan_rows(store, rid)
            # The plan must be the one approved: whose rows, which changes (checked once
            # nothing else stops the run).
            approved = PlanBinding.from_json(request.approved_plan) \
                if request.approved_plan else None
            binding = binding_of(inventory, resolution, steps, book.keyring,
                                 approved.columns if approved else None)
            elsewhere = not blockers and approved is not None and _erased_then_elsewhere(
                book, request, run.journal, approved, binding)
            if elsewhere:
                return _verify_erased(inventory, store, run, pool, resolution, binding,
                                      progress, every_text_cell)
            if not blockers:
                gone = set(approved.people if approved else ()) - set(binding.people)
                # (after a replan too: --nothing-left does not approve a plan that no
                # longer finds the approved person rows)
                blockers += approval_blockers(
                    request, binding,
                    first_plan=not any(s.status == "done" for s in run.journal),
                    erased_by=book.erased_by_others(rid, gone))
            if replaced and not nothing_left:
                blockers.append(
                    f"this plan finds none of the subject's rows, where the plan a replan "
                    f"dropped had {replaced} row(s) to change: the subject may have changed "
                    "the e-mail or phone the request names since (then reject this request "
                    "and file one with the identity they use now, keeping the date it was "
                    "received: govkit dsar new ... --received YYYY-MM-DD), or their rows were "
                    f"removed meanwhile (then confirm it: govkit dsar run {rid} --nothing-left)")
            if blockers:
                book.record(rid, actor, "dsar.plan_refused", {"blockers": blockers})
                raise PlanError(f"request {rid} needs a decision, nothing was changed: "
                                + " | ".join(blockers))
            if replaced:   # (and nothing_left: else a blocker above)
                with store.session():
                    book.record(rid, actor, "dsar.nothing_left_confirmed",
                                {"rows_in_dropped_plan": replaced})
            new_steps = [s for s in steps if s.status == "pending" or s.action is Action.HELD]
            fault_point("request.after_plan")
            if confirm is not None and not confirm(new_steps):
                with store.session():
                    book.record(rid, actor, "dsar.plan_declined", {"steps": len(new_steps)})
                    run.release()
                return RunOutcome(request, "cancelled", new_steps)
            identities = [*given, *resolution.derived]
        with store.session():
            if new_steps is not None:
                book.add_derived(request, resolution.derived, actor,
                                 resolution.elsewhere_identities, resolution.left_to_others)
                # The state moves first: a crash before the journal is written leaves an
                # in-progress request without a journal, which a rerun simply plans again.
                book.start(rid, actor)
                fault_point("request.after_start")
                write_journal(store, rid, run.key, new_steps,
                              first_step=max((s.step_no for s in run.journal), default=0) + 1)
                fault_point("request.after_journal")
                book.record(rid, actor, "dsar.plan_recorded", {
                    "steps": [s.describe() for s in new_steps], "plan": binding.digest,
                    # (keyed fingerprints: another request for the same person finding
                    # nobody afterwards knows why)
                    **({"erases_person_rows": list(binding.people)}
                       if request.request_type is RequestType.ERASURE else {})})
            book.renew(rid, run.owner)   # still this worker's, for the next 5 minutes
            planned = _recheck_holds(inventory, store, run, identities, person_rows)
            # Keys are destroyed once no hold stops the run, and kept while a legal hold
            # keeps any of the subject's data (their ciphertext there must stay readable).
            # (Store work, and the sources' catalogues only: no source row is read.)
            held_now = [s for s in planned if s.status == "held"]
            shred = None if held_now else _crypto_shred(inventory, store, request, actor,
                                                        person_rows)
        try:
            ran = execute_journal(store, rid, planned, pool,
                                  lambda v: book.keyring.fingerprint(f"pseudonym:{v}"),
                                  on_step, identities,
                                  lambda conn: book.renew(rid, run.owner, conn),
                                  resumed=new_steps is None)
        except GovernanceError as e:
            # A step stopped the run (rows another person's rows point at, a constraint):
            # what it said is kept with the request, not only printed; by this worker
            # only while it still holds the request (one taken over records nothing more).
            try:
                book.renew(rid, run.owner)
            except RequestError:
                raise e from None
            book.record(rid, actor, "dsar.run_stopped",
                        {"error": type(e).__name__, "reason": safe_text(str(e))})
            raise
        found_done = {s.step_no: s.planned_rows for s in ran
                      if new_steps is None and not s.rows_affected and s.planned_rows}
        found, counts, unreachable = _search_again(inventory, store, book, request,
                                                   identities, pool, progress,
                                                   every_text_cell, run.categories)
    with store.session():
        steps = read_journal(store, rid, None)
        remaining, held, kept = _classify(inventory, store, book, steps, found, counts,
                                          unreachable, given, [_left_to_others(book, request)])
        for s in ran:
            if new_steps is not None and s.action is Action.DELETE_UNREFERENCED \
                    and s.rows_affected is not None and s.rows_affected < s.planned_rows:
                kept[f"{s.source}.{s.table}"] = (
                    f"{s.planned_rows - s.rows_affected} row(s) kept: another row referred "
                    "to them when they were to be deleted")
        if held_now and person_rows:
            why = ("a legal hold keeps some of the subject's data" if any(
                not s.referred() for s in held_now)
                else "rows of the subject's that other rows refer to are kept")
            kept["field-encryption keys"] = (f"not destroyed: {why}, whose ciphertext (if "
                                             "any) must stay readable")
        book.renew(rid, run.owner)   # nothing is concluded by a worker taken over
        outcome = _conclude(book, rid, actor, steps, remaining, held, kept, shred,
                            found_done, every_text_cell)
        if outcome.status != "completed":   # completing gives the lease back itself
            run.release()
        return outcome


def _erased_then_elsewhere(book: RequestBook, request: DataSubjectRequest,
                           journal: Sequence[Step], approved: PlanBinding,
                           now: PlanBinding) -> bool:
    """Whether an erasure erased its subject and its identities now lead only to other
    people: every step of its journal done, none of the approved person rows found any
    more (each erased by a plan this request recorded), and only person rows that are not
    them found (another person given the subject's old e-mail after a run was cut short
    before it completed)."""
    if request.request_type is not RequestType.ERASURE or not approved.people \
            or not now.people or set(approved.people) & set(now.people):
        return False
    if not any(s.status == "done" for s in journal) \
            or any(s.status == "pending" for s in journal):
        return False
    return set(approved.people) <= book.erased_by_itself(request.request_id)


def _verify_erased(inventory: Inventory, store: AuditStore, run: _Run, pool: ConnectorPool,
                   resolution: Resolution, now: PlanBinding, progress: Progress | None,
                   every_text_cell: bool) -> RunOutcome:
    """Verification of an erasure whose subject is erased while its identities now lead
    to other people (``_erased_then_elsewhere``): nothing is changed; what is found in
    those people's rows (at most as many cells per table as the rows a plan now finds
    there) is theirs, anything beyond remains."""
    book, rid, actor = run.book, run.rid, run.actor
    with store.session():
        book.record(rid, actor, "dsar.identity_elsewhere", {
            "person_rows": len(now.people), "plan": now.digest})
    identities = book.identities(run.request)
    found, counts, unreachable = _search_again(inventory, store, book, run.request,
                                               identities, pool, progress, every_text_cell,
                                               run.categories)
    rows: dict[str, int] = {}
    for loc in resolution.locations:
        rows[f"{loc.source}.{loc.table}"] = rows.get(f"{loc.source}.{loc.table}", 0) \
            + len(loc.rows)
    theirs = _Theirs(None, rows, "another person's row holds the identifier now: the "
                     "subject's rows were erased by this request, and this row is not one "
                     "of them (left untouched)")
    with store.session():
        steps = read_journal(store, rid, None)
        remaining, held, kept = _classify(inventory, store, book, steps, found, counts,
                                          unreachable, run.given,
                                          [_left_to_others(book, run.request), theirs])
        book.renew(rid, run.owner)
        outcome = _conclude(book, rid, actor, steps, remaining, held, kept, None, {},
                            every_text_cell)
        if outcome.status != "completed":
            run.release()
        return outcome


def _recheck_holds(inventory: Inventory, store: AuditStore, run: _Run,
                   identities: Sequence[Identity],
                   person_rows: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]]
                   ) -> list[Step]:
    """Holds checked again right before anything changes: a subject hold stops the run
    (the journal waits); pending steps on a table held since planning are marked held.
    Returns the journal as it will run."""
    book, rid = run.book, run.rid
    now = LegalHolds(store, book.keyring)
    holds = _subject_holds(now, book, book.get(rid), identities, inventory, person_rows)
    if holds:
        book.record(rid, run.actor, "dsar.refused_legal_hold",
                    {"holds": [h.hold_id for h in holds]})
        raise RequestError(f"request {rid}: {_hold_blocker(holds)}; the journal waits")
    table_holds = now.on_tables(inventory)
    journal = read_journal(store, rid, run.key)
    late = [s for s in journal if s.status == "pending" and (s.source, s.table) in table_holds]
    if late:
        mark_held(store, rid, late, {(s.source, s.table): table_holds[(s.source, s.table)]
                                      .reason for s in late})
        journal = read_journal(store, rid, run.key)
    return journal


def _conclude(book: RequestBook, rid: str, actor: str, steps: list[Step],
              remaining: dict[str, int], held: dict[str, str], kept: dict[str, str],
              shred: ShredOutcome | None, found_done: dict[int, int],
              every_text_cell: bool = False) -> RunOutcome:
    """Complete the request when verification left nothing unexplained; else record what
    remains."""
    for s in steps:
        if s.referred():      # rows others refer to: kept, not held
            kept.setdefault(f"{s.source}.{s.table}", s.note or "")
        elif s.status == "held":
            held.setdefault(f"{s.source}.{s.table}", f"kept: {s.note}")
    changed = {s.describe(): s.rows_affected for s in steps if s.status == "done"}
    if shred is not None and not shred.verified:
        remaining["crypto-shredding (a data key of the subject is still wrapped)"] = -1
    if remaining:
        book.record(rid, actor, "dsar.verification_failed",
                    {"remaining": remaining, "held": held, "kept": kept,
                     "every_text_cell": every_text_cell})
        return RunOutcome(book.get(rid), "verification_failed", steps, remaining, held,
                          kept=kept, found_done=found_done)
    outcome = {"steps": changed, "held": held, "kept": kept,
               "rows_changed": sum(v or 0 for v in changed.values()),
               "crypto_shredded_keys": len(shred.keys_destroyed) if shred else 0}
    if found_done:
        # Counted honestly: rows an interrupted run changed are not in rows_changed.
        outcome["done_before_an_interruption"] = {
            s.describe(): f"{found_done[s.step_no]} planned; nothing left to change when "
                          "resumed (the interrupted run's count was lost)"
            for s in steps if s.step_no in found_done}
    fault_point("request.before_complete")
    done = book.complete(rid, actor, outcome)
    return RunOutcome(done, "completed", steps, {}, held,
                      found_rows=sum(s.planned_rows for s in steps), kept=kept,
                      found_done=found_done)


def _person_rows_of(inventory: Inventory, steps: Sequence[Step]
                    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The subject's person rows as far as pending journal steps name them (their keys)."""
    persons = _person_tables(inventory)
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in steps:
        if s.action is Action.DELETE and (s.source, s.table) in persons and s.values:
            cols = s.match_column.split(",")
            out.setdefault((s.source, s.table), []).extend(
                dict(zip(cols, v if isinstance(v, list) else [v], strict=True))
                for v in s.values)
    return out


def _crypto_shred(inventory: Inventory, store: AuditStore, request: DataSubjectRequest,
                  actor: str, person_rows: dict[tuple[str, str], list[dict[str, Any]]]
                  ) -> ShredOutcome | None:
    """An erasure destroys the subject's field-encryption keys, so their ciphertexts in
    copies and backups become unreadable too (None: nothing was ever encrypted for them)."""
    if request.request_type is not RequestType.ERASURE or not person_rows:
        return None
    return shred_for_erasure(inventory, store, person_rows, actor, request.request_id)


def _clean_temporaries(pool: ConnectorPool, inventory: Inventory, book: RequestBook,
                       rid: str, actor: str) -> None:
    """Remove copies a crashed file rewrite left behind (they may hold erased data)."""
    removed = 0
    for src in inventory.sources:
        if src.kind not in ("csv", "parquet", "jsonl"):
            continue
        try:
            conn = pool.get(src.name)
        except GovernanceError:
            continue
        clean = getattr(conn, "remove_stale_temporaries", None)
        if clean is not None:
            removed += len(clean() or [])
    if removed:
        book.record(rid, actor, "dsar.stale_copies_removed", {"files": removed})


def replan_request(store: AuditStore, request_id: str, actor: str, reason: str
                   ) -> list[Step]:
    """Drop the journal's pending steps of a request that cannot proceed (after the
    inventory was fixed), so that the next run plans again; done steps stay. Returns the
    steps dropped. Recorded in the audit log."""
    book = RequestBook(store)
    request = _usable(book, request_id)
    journal = read_journal(store, request_id, None)
    dropped = [s for s in journal if s.status == "pending"]
    if not dropped:
        why = "every step of its run is done" if journal else \
            f"no run of it has started: plan it again (govkit dsar plan {request_id})"
        raise RequestError(f"request {request_id} has no pending steps to re-plan ({why})")
    if not reason.strip():
        raise RequestError("say why the request is re-planned (--reason)")
    drop_pending(store, request_id)
    book.record(request.request_id, actor, "dsar.replanned",
                {"dropped_steps": [s.describe() for s in dropped],
                 "dropped_rows": sum(s.planned_rows or 0 for s in dropped),
                 "reason": safe_text(reason)})
    return dropped


def _replaced_plan_rows(store: AuditStore, request_id: str) -> int:
    """The rows the steps dropped by the request's last replan were to change, when no
    plan has been recorded since (else 0)."""
    rows = store.log_events(["dsar.replanned", "dsar.plan_recorded"], target=request_id)
    if not rows or rows[-1].action != "dsar.replanned":
        return 0
    details = rows[-1].details or {}
    # Logs written before the count was kept: one row at least per dropped step.
    return int(details.get("dropped_rows", len(details.get("dropped_steps", ()))))


Hits = tuple[dict[tuple[str, str, str], set[Identity]], dict[tuple[str, str, str], int],
             dict[str, str]]


def _search_again(inventory: Inventory, store: AuditStore, book: RequestBook,
                  request: DataSubjectRequest, identities: list[Identity],
                  pool: ConnectorPool, progress: Progress | None, every_text_cell: bool,
                  categories: Categories) -> Hits:
    """Verification's search: every source again for every identity, given and derived
    (a rectification: the corrected kinds only), in each column of its kind and in the
    text cells; per place the identities found, the cells, and the unreachable sources."""
    if request.request_type is RequestType.RECTIFY:
        corrected = corrected_categories(book.corrections(request), categories[0])
        identities = [i for i in identities
                      if i.category in corrected and i.type is not IdentityType.USER_ID]
        if not identities:
            return {}, {}, {}
    # One pass per table for every identity; each place says which identities it holds.
    hits = verification_hits(inventory, identities, pool, store, every_text_cell, categories)
    if progress:
        progress("every source searched again")
    return hits


@dataclass(frozen=True)
class _Theirs:
    """Cells verification finds that are other people's: of these identities (None: of
    any), at most so many per table (``source.table``: the rows of theirs the plan found
    there), and why."""

    identities: frozenset[Identity] | None
    rows: Mapping[str, int]
    why: str

    def explains(self, place: tuple[str, str, str], ids: set[Identity], cells: int) -> bool:
        """Whether the ``cells`` found at ``place`` holding ``ids`` are theirs."""
        return (self.identities is None or ids <= self.identities) and \
            cells <= self.rows.get(f"{place[0]}.{place[1]}", 0)


def _left_to_others(book: RequestBook, request: DataSubjectRequest) -> _Theirs:
    """The rows the plan left as someone else's that hold identities read from the
    subject's rows (an employee or a supplier with the customer's phone)."""
    identities, rows = book.left_to_others(request)
    return _Theirs(frozenset(identities), rows,
                   "an identifier read from the subject's rows that another person's or "
                   "firm's record holds too (not theirs to erase)")


def _classify(inventory: Inventory, store: AuditStore, book: RequestBook,
              steps: Sequence[Step], found: dict[tuple[str, str, str], set[Identity]],
              counts: dict[tuple[str, str, str], int], unreachable: dict[str, str],
              given: list[Identity], theirs: Sequence[_Theirs] = ()
              ) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """What verification found, sorted: what remains unexplained (place -> cells), what a
    legal hold keeps, and what is kept for another recorded reason (a detail row others
    refer to, an identifier another person holds too, other people's rows ``theirs``
    accounts for, an anonymized record)."""
    table_holds = LegalHolds(store, book.keyring).on_tables(inventory)
    kept_tables = {(s.source, s.table): s.note or "" for s in steps
                   if s.action is Action.HELD and (s.source, s.table) not in table_holds}
    anonymized = {(s.source, s.table): s.note or "anonymized" for s in steps
                  if s.action is Action.ANONYMIZE}
    graph_persons = _person_tables(inventory)
    # A derived identifier still held by a person row after the erasure is someone else's
    # too (a household's phone): its hits are that person's data, not the subject's.
    shared = {i for place, ids in found.items() if (place[0], place[1]) in graph_persons
              for i in ids if i not in given}
    remaining: dict[str, int] = {}
    held: dict[str, str] = {}
    kept: dict[str, str] = {}
    for place, ids in sorted(found.items()):
        source, table, column = place
        where = f"{source}.{table}.{column}"
        hold = table_holds.get((source, table))
        if hold is not None:
            held[f"{source}.{table}"] = f"{hold.hold_id}: {hold.reason}"
        elif ids <= shared:
            kept[where] = "an identifier another person's record holds too (not theirs to erase)"
        elif why := next((t.why for t in theirs if t.explains(place, ids, counts[place])),
                         None):
            kept[where] = why
        elif (source, table) in kept_tables:
            kept[where] = kept_tables[(source, table)]
        elif (source, table) in anonymized and column not in _changed_columns(steps, place):
            kept[where] = f"anonymized record kept: {anonymized[(source, table)]}"
        else:
            remaining[where] = counts[place]
    for source, error in unreachable.items():
        remaining[f"{source} (unreachable: {error})"] = -1
    return remaining, held, kept


def _changed_columns(steps: Sequence[Step], place: tuple[str, str, str]) -> set[str]:
    return {c for s in steps if (s.source, s.table) == place[:2] for c in s.columns}


def _person_tables(inventory: Inventory) -> set[tuple[str, str]]:
    return {(s.name, t.name) for s in inventory.sources for t in s.tables if t.is_person}


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


def step_state(outcome: RunOutcome, step: Step) -> str:
    """How a step of ``outcome`` ended, as shown to people: ``[done, N changed]``, or done
    by an interrupted run whose count was lost, ``[held]``, ``[pending]``."""
    if step.step_no in outcome.found_done:
        return (f"[done before an interruption: {outcome.found_done[step.step_no]} planned, "
                "nothing left to change when resumed, the count was lost]")
    if step.status == "done":
        return f"[done, {step.rows_affected} changed]"
    return f"[{step.status}]"


def describe_outcome(outcome: RunOutcome) -> dict[str, Any]:
    """The outcome as shown to people and orchestrators (no values)."""
    return {"request_id": outcome.request.request_id, "status": outcome.status,
            "state": outcome.request.state.value,
            "steps": [f"{s.describe()} {step_state(outcome, s)}" for s in outcome.steps],
            "remaining": outcome.remaining, "held": outcome.held, "kept": outcome.kept,
            "not_followed": outcome.not_followed, "warnings": outcome.warnings,
            "export": str(outcome.export_path) if outcome.export_path else None}
