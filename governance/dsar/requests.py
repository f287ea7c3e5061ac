"""Data-subject requests: intake, deadlines, lifecycle, and their record in the audit store.

Every state change is written together with its hash-chained audit-log row, in one
transaction, naming who made it. Identities are kept sealed under a data key of the
request (``payload``), shown masked, and compared by keyed fingerprint.

Verifying the subject's identity lets an access request run. An erasure or rectification
changes or destroys data and also needs a recorded approval (``approve``: who, when, a
masked note), which ``require_approval`` checks before such a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from governance.audit_store import AuditStore
from governance.audit_store.store import append_log_row, record_row, utcnow
from governance.crypto import KeyRing
from governance.crypto.aead import open_json, seal_json
from governance.dsar.deadlines import DEFAULT_PIPL_WORKING_DAYS, rule_for
from governance.dsar.identities import Identity, IdentityType, parse_identity
from governance.errors import GovernanceError
from governance.ids import new_id
from governance.workers import worker_gone

LEASE_SECONDS = 300


class RequestError(GovernanceError):
    """A request cannot be created, found or moved to the asked state."""


class RequestType(StrEnum):
    """What the subject asks for."""

    ACCESS = "access"      # GDPR Art. 15/20, CCPA 1798.110, PIPL Art. 45
    ERASURE = "erasure"    # GDPR Art. 17, CCPA 1798.105, PIPL Art. 47
    RECTIFY = "rectify"    # GDPR Art. 16, CPRA 1798.106, PIPL Art. 46


class RequestState(StrEnum):
    """Where a request is in its lifecycle."""

    RECEIVED = "received"
    VERIFIED = "verified"          # the subject's identity was checked by a person
    IN_PROGRESS = "in_progress"
    EXTENDED = "extended"          # deadline extended, with a recorded reason
    COMPLETED = "completed"
    REJECTED = "rejected"


S = RequestState
TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    S.RECEIVED: frozenset({S.VERIFIED, S.REJECTED, S.EXTENDED}),
    S.VERIFIED: frozenset({S.IN_PROGRESS, S.REJECTED, S.EXTENDED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.REJECTED, S.EXTENDED}),
    S.EXTENDED: frozenset({S.VERIFIED, S.IN_PROGRESS, S.COMPLETED, S.REJECTED}),
    S.COMPLETED: frozenset(),
    S.REJECTED: frozenset(),
}
OPEN_STATES = (S.RECEIVED, S.VERIFIED, S.IN_PROGRESS, S.EXTENDED)
DESTRUCTIVE = frozenset({RequestType.ERASURE, RequestType.RECTIFY})


@dataclass(frozen=True)
class DataSubjectRequest:
    """One data-subject request as recorded (no plaintext identity in it)."""

    request_id: str
    request_type: RequestType
    jurisdiction: str
    law: str
    state: RequestState
    received_at: datetime
    due_date: date
    extended: bool
    extension_reason: str | None
    identity_types: list[str]
    masked_identities: list[str]
    fingerprints: list[str]
    key_id: str
    verified_at: datetime | None
    closed_at: datetime | None
    outcome: dict[str, Any] | None
    created_by: str
    approved_at: datetime | None = None   # erasure/rectify: when a person approved the run
    approved_by: str | None = None
    # What the approver approved (governance.dsar.approval.PlanBinding as JSON): None
    # before approval, and for approvals recorded before approvals named a plan.
    approved_plan: dict[str, Any] | None = None

    @property
    def destructive(self) -> bool:
        """True for requests whose run changes or deletes data (erasure, rectify)."""
        return self.request_type in DESTRUCTIVE

    def days_left(self, today: date | None = None) -> int:
        """Days until the due date (negative when overdue)."""
        return (self.due_date - (today or utcnow().date())).days

    @property
    def is_open(self) -> bool:
        """True until the request is completed or rejected."""
        return self.state in OPEN_STATES


def _row_to_request(r: Mapping[str, Any]) -> DataSubjectRequest:
    outcome = r["outcome"]
    return DataSubjectRequest(
        r["request_id"], RequestType(r["request_type"]), r["jurisdiction"], r["law"],
        RequestState(r["state"]), r["received_at"], r["due_date"], r["extended"],
        r["extension_reason"], list(r["identity_types"]), list(r["masked_identities"]),
        list(r["fingerprints"]), r["key_id"], r["verified_at"], r["closed_at"],
        json.loads(outcome) if isinstance(outcome, str) else outcome, r["created_by"],
        r.get("approved_at"), r.get("approved_by"),
        json.loads(r["approved_plan"]) if r.get("approved_plan") else None)


def approval_refused(request_id: str, note: str, rtype: RequestType, state: RequestState,
                     verified_at: datetime | None) -> str | None:
    """Why a request in this state cannot be approved (None when it can)."""
    if not note.strip():
        return "say why the run is approved (--note), e.g. the plan was reviewed"
    if rtype not in DESTRUCTIVE:
        return (f"request {request_id} is an {rtype} request: it changes no data and needs "
                "no approval; it runs once verified")
    if state not in OPEN_STATES:
        return f"request {request_id} is {state}; nothing to approve"
    if verified_at is None:
        return (f"request {request_id}: verify the subject's identity before approving the "
                "run (govkit dsar verify)")
    return None


def received_datetime(received: date | datetime | str) -> datetime:
    """When a request was received, as an aware UTC datetime (a date or ``YYYY-MM-DD``
    counts from the start of that day, UTC); RequestError for a date in the future or
    text that is not a date."""
    if isinstance(received, str):
        try:
            received = date.fromisoformat(received.strip())
        except ValueError:
            raise RequestError(f"received date {received!r}: write it as YYYY-MM-DD") from None
    if not isinstance(received, datetime):
        received = datetime.combine(received, time(0), tzinfo=UTC)
    elif received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    now = utcnow()
    if received > now:
        raise RequestError(f"received date {received:%Y-%m-%d} is in the future (today is "
                           f"{now:%Y-%m-%d} UTC)")
    return received


class RequestBook:
    """Create, read and move data-subject requests in one audit store."""

    def __init__(self, store: AuditStore, keyring: KeyRing | None = None):
        self.store = store
        self.keyring = keyring or KeyRing(store)

    # -- intake --------------------------------------------------------------------
    def create(self, request_type: RequestType | str, identities: Sequence[Identity | str],
               jurisdiction: str, actor: str, corrections: Mapping[str, str] | None = None,
               received_at: date | datetime | str | None = None,
               pipl_working_days: int = DEFAULT_PIPL_WORKING_DAYS,
               holidays: Iterable[date] = ()) -> DataSubjectRequest:
        """Record a new request; its due date follows from its jurisdiction, counted from
        ``received_at`` (default: now; a request received earlier, e.g. a letter, gives its
        date; a date in the future is refused)."""
        try:
            rtype = RequestType(request_type)
        except ValueError:
            raise RequestError(f"unknown request type {request_type!r}; use "
                               f"{', '.join(t.value for t in RequestType)}") from None
        ids = [i if isinstance(i, Identity) else parse_identity(i) for i in identities]
        if not ids:
            raise RequestError("a request needs at least one identity, e.g. email=...")
        corrections = dict(corrections or {})
        if rtype is RequestType.RECTIFY and not corrections:
            raise RequestError("a rectify request needs at least one correction (`--set` on "
                               "the CLI, `set` in an intake file)")
        if corrections and rtype is not RequestType.RECTIFY:
            raise RequestError("corrections (`--set`, `set`) are only for rectify requests")
        if corrections:
            from governance.dsar.plan import PlanError, split_corrections

            try:
                split_corrections(corrections)
            except PlanError as e:
                raise RequestError(str(e)) from None
        rule = rule_for(jurisdiction, pipl_working_days, holidays)
        received = utcnow() if received_at is None else received_datetime(received_at)
        request_id = new_id("dsar", f"{received:%Y%m%d}")
        key_id, key = self.keyring.create("dsar-request")
        payload = seal_json(key, {"identities": [[i.type.value, i.value] for i in ids],
                                  "corrections": corrections}, aad=request_id.encode())
        fingerprints = sorted({self.keyring.fingerprint(i.fingerprint_text()) for i in ids})
        masked = [i.masked() for i in ids]
        due = rule.due(received.date())

        def insert(conn: Any) -> None:
            conn.execute(
                "INSERT INTO dsar_requests (request_id, request_type, jurisdiction, law, state, "
                "received_at, due_date, extended, identity_types, masked_identities, "
                "fingerprints, key_id, payload, created_by, updated_at) "
                "VALUES (?, ?, ?, ?, 'received', ?, ?, false, ?, ?, ?, ?, ?, ?, ?)",
                [request_id, rtype.value, jurisdiction, rule.law, received, due,
                 sorted({i.type.value for i in ids}), masked, fingerprints, key_id, payload,
                 actor, utcnow()])
            record_row(conn, "dsar_requests", request_id, actor, "dsar.received", {
                "type": rtype.value, "jurisdiction": jurisdiction, "law": rule.law,
                "identities": masked, "received_at": received.isoformat(),
                "due_date": due.isoformat(), "corrected_fields": sorted(corrections)})

        self.store.write(insert)
        return self.get(request_id)

    # -- reading -------------------------------------------------------------------
    def get(self, request_id: str) -> DataSubjectRequest:
        """The request ``request_id``; RequestError if there is none."""
        rows = self.store.query("SELECT * EXCLUDE (payload) FROM dsar_requests "
                                "WHERE request_id = ?", [request_id])
        if not rows:
            raise RequestError(f"no data-subject request {request_id!r} in {self.store.path}")
        return _row_to_request(rows[0])

    def list_requests(self, open_only: bool = True) -> list[DataSubjectRequest]:
        """Requests, soonest due first (so overdue ones lead)."""
        where = f"WHERE state IN ({', '.join('?' for _ in OPEN_STATES)})" if open_only else ""
        rows = self.store.query(
            f"SELECT * EXCLUDE (payload) FROM dsar_requests {where} "  # noqa: S608
            "ORDER BY due_date, received_at", [s.value for s in OPEN_STATES] if open_only else [])
        return [_row_to_request(r) for r in rows]

    def _payload(self, request: DataSubjectRequest) -> dict[str, Any]:
        rows = self.store.query("SELECT payload FROM dsar_requests WHERE request_id = ?",
                                [request.request_id])
        key = self.keyring.get(request.key_id)
        return open_json(key, bytes(rows[0]["payload"]), aad=request.request_id.encode(),
                         what=f"request {request.request_id}")  # type: ignore[return-value]

    def identities(self, request: DataSubjectRequest, derived: bool = True) -> list[Identity]:
        """The subject's identities (decrypted; never log them): those given, and with
        ``derived`` those found in the subject's own rows when the request was planned."""
        payload = self._payload(request)
        pairs = payload["identities"] + (payload.get("derived", []) if derived else [])
        return [Identity(IdentityType(t), v) for t, v in pairs]

    def left_to_others(self, request: DataSubjectRequest
                       ) -> tuple[list[Identity], dict[str, int]]:
        """Identities read from the subject's rows that the plan also found in rows it left
        as someone else's, and how many such rows each table had (decrypted; never log
        the identities)."""
        payload = self._payload(request)
        return ([Identity(IdentityType(t), v) for t, v in payload.get("elsewhere", [])],
                dict(payload.get("left", {})))

    def add_derived(self, request: DataSubjectRequest, identities: Sequence[Identity],
                    actor: str, elsewhere: Sequence[Identity] = (),
                    left: Mapping[str, int] | None = None) -> None:
        """Keep (sealed) identities found in the subject's rows, for the verification that
        runs after those rows are gone, with those also found in rows left as someone
        else's (and how many per table)."""
        if not identities:
            return
        payload = self._payload(request)
        payload["derived"] = [[i.type.value, i.value] for i in identities]
        payload["elsewhere"] = [[i.type.value, i.value] for i in elsewhere if i in identities]
        payload["left"] = dict(left or {})
        sealed = seal_json(self.request_key(request), payload,
                           aad=request.request_id.encode())
        # Their keyed fingerprints join the request's, so a subject hold on any of them
        # is matched without opening the payload.
        fingerprints = sorted({*request.fingerprints,
                               *(self.keyring.fingerprint(i.fingerprint_text())
                                 for i in identities)})

        def change(conn: Any) -> None:
            conn.execute("UPDATE dsar_requests SET payload = ?, fingerprints = ? "
                         "WHERE request_id = ?", [sealed, fingerprints, request.request_id])
            record_row(conn, "dsar_requests", request.request_id, actor,
                       "dsar.identities_derived", {"identities": [i.masked() for i in identities]})

        self.store.write(change)

    def corrections(self, request: DataSubjectRequest) -> dict[str, str]:
        """The corrections of a rectify request (decrypted; never log them)."""
        return dict(self._payload(request)["corrections"])

    def request_key(self, request: DataSubjectRequest) -> bytes:
        """The request's data key, used to seal its journal."""
        return self.keyring.get(request.key_id)

    # -- lifecycle -----------------------------------------------------------------
    def transition(self, request_id: str, to: RequestState | str, actor: str,
                   details: Mapping[str, Any] | None = None,
                   sets: Mapping[str, Any] | None = None) -> DataSubjectRequest:
        """Move the request to state ``to`` and log it; RequestError if not allowed."""
        self.store.write(lambda conn: self._transition_in(conn, request_id, to, actor,
                                                          details, sets))
        return self.get(request_id)

    def _transition_in(self, conn: Any, request_id: str, to: RequestState | str, actor: str,
                       details: Mapping[str, Any] | None = None,
                       sets: Mapping[str, Any] | None = None) -> None:
        """``transition`` inside the caller's transaction."""
        target = RequestState(to)
        rows = conn.execute("SELECT state, verified_at FROM dsar_requests "
                            "WHERE request_id = ?", [request_id]).fetchall()
        if not rows:
            raise RequestError(f"no data-subject request {request_id!r}")
        current, verified_at = RequestState(rows[0][0]), rows[0][1]
        if target not in TRANSITIONS[current]:
            allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (closed)"
            raise RequestError(f"request {request_id} is {current}; it cannot become "
                               f"{target} (allowed: {allowed})")
        if target in (S.IN_PROGRESS, S.COMPLETED) and verified_at is None:
            raise RequestError(f"request {request_id}: the subject's identity has not "
                               "been verified (govkit dsar verify)")
        if target is S.VERIFIED and verified_at is not None:
            raise RequestError(f"request {request_id} is already verified")
        now = utcnow()
        assigns: dict[str, Any] = {"state": target.value, "updated_at": now,
                                   **(sets or {})}
        if target is S.VERIFIED:
            assigns["verified_at"] = now
        if target in (S.COMPLETED, S.REJECTED):
            assigns.update(closed_at=now, lease_owner=None, lease_until=None)
        cols = ", ".join(f"{k} = ?" for k in assigns)
        conn.execute(f"UPDATE dsar_requests SET {cols} WHERE request_id = ?",  # noqa: S608
                     [*assigns.values(), request_id])
        record_row(conn, "dsar_requests", request_id, actor, f"dsar.{target.value}",
                   {"from": current.value, "to": target.value, **(details or {})})

    def start(self, request_id: str, actor: str) -> None:
        """Move the request to in_progress unless it is there already (a resumed run)."""
        self.store.write(lambda conn: self._start_in(conn, request_id, actor))

    def _start_in(self, conn: Any, request_id: str, actor: str) -> None:
        state = conn.execute("SELECT state FROM dsar_requests WHERE request_id = ?",
                             [request_id]).fetchall()
        if not state or state[0][0] != S.IN_PROGRESS.value:
            self._transition_in(conn, request_id, S.IN_PROGRESS, actor)

    def verify(self, request_id: str, actor: str, note: str) -> DataSubjectRequest:
        """Record that a person checked the subject's identity (how, in ``note``)."""
        if not note.strip():
            raise RequestError("say how the identity was verified (--note)")
        return self.transition(request_id, S.VERIFIED, actor, {"note": _safe_text(note)})

    def approve(self, request_id: str, actor: str, note: str, *,
                plan: Mapping[str, Any]) -> DataSubjectRequest:
        """Record that ``actor`` approved running a verified erasure or rectification
        (why, in ``note``, stored masked) as ``plan`` describes it (whose rows, which
        changes: ``governance.dsar.approval``; fingerprints and names only): identity
        verification alone never lets data be changed or deleted. A request approved
        before may be approved again only for a different plan (the new one replaces it)."""
        if not plan.get("digest"):
            raise RequestError(f"request {request_id}: an approval names the plan it approves")
        safe = _safe_text(note)
        bound = json.dumps(dict(plan), sort_keys=True)

        def change(conn: Any) -> None:
            rows = conn.execute("SELECT request_type, state, verified_at, approved_at, "
                                "approved_by, approved_plan FROM dsar_requests "
                                "WHERE request_id = ?", [request_id]).fetchall()
            if not rows:
                raise RequestError(f"no data-subject request {request_id!r}")
            rtype, state, verified_at, approved_at, approved_by, approved_plan = rows[0]
            refused = approval_refused(request_id, note, RequestType(rtype),
                                       RequestState(state), verified_at)
            if refused:
                raise RequestError(refused)
            before = json.loads(approved_plan).get("digest") if approved_plan else None
            if approved_at is not None and before == plan["digest"]:
                raise RequestError(f"request {request_id} was already approved by "
                                   f"{approved_by} on {approved_at:%Y-%m-%d %H:%M} UTC "
                                   f"(the same plan, {before})")
            now = utcnow()
            conn.execute("UPDATE dsar_requests SET approved_at = ?, approved_by = ?, "
                         "approval_note = ?, approved_plan = ?, updated_at = ? "
                         "WHERE request_id = ?", [now, actor, safe, bound, now, request_id])
            record_row(conn, "dsar_requests", request_id, actor, "dsar.approved",
                       {"type": rtype, "note": safe, "approved_at": now.isoformat(),
                        "plan": plan["digest"], "person_rows": len(plan.get("people", ())),
                        "changes": plan.get("changes", []),
                        **({"replaces": before or "a plan not recorded"}
                           if approved_at is not None else {})})

        self.store.write(change)
        return self.get(request_id)

    def require_approval(self, request: DataSubjectRequest) -> None:
        """RequestError unless ``request`` may change data: an erasure or rectification
        needs a recorded approval (``approve``); an access request needs none."""
        if request.destructive and request.approved_at is None:
            what = ("an erasure" if request.request_type is RequestType.ERASURE
                    else "a rectification")
            rid = request.request_id
            raise RequestError(
                f"request {rid}: {what} changes or deletes data and needs a recorded approval "
                f"first: review `govkit dsar plan {rid}`, then `govkit dsar approve {rid} "
                "--note '...'` (identity verification alone is not approval)")

    def reject(self, request_id: str, actor: str, reason: str) -> DataSubjectRequest:
        """Close the request without acting on it, for ``reason`` (told to the subject)."""
        if not reason.strip():
            raise RequestError("a rejection needs a reason (--reason)")
        steps = self.store.query(
            "SELECT count(*) FILTER (WHERE status = 'done' AND coalesce(rows_affected, 0) > 0) "
            "AS done, coalesce(sum(rows_affected) FILTER (WHERE status = 'done'), 0) AS n, "
            "count(*) FILTER (WHERE status = 'pending') AS pending FROM dsar_steps "
            "WHERE request_id = ?", [request_id])[0]
        # A rejection says nothing was done: a run that changed data (or may have: one
        # killed between a source's commit and its journal) is finished instead.
        if steps["done"]:
            raise RequestError(
                f"request {request_id} has changed data already ({steps['done']} step(s) "
                f"done, {steps['n']} row(s)): rejecting it would record that nothing was done. "
                f"Finish it (govkit dsar run {request_id}); nothing was recorded")
        if steps["pending"]:
            raise RequestError(
                f"request {request_id} has a run that stopped midway and may have changed data: "
                f"run it again to finish it (govkit dsar run {request_id}: it resumes), or, if "
                f"its plan cannot run, re-plan it first (govkit dsar replan {request_id}); "
                "nothing was recorded")
        return self.transition(request_id, S.REJECTED, actor, {"reason": _safe_text(reason)})

    def extend(self, request_id: str, actor: str, reason: str,
               today: date | None = None) -> DataSubjectRequest:
        """Extend the deadline once, as far as the law allows, recording ``reason``. The
        extension must be decided and told to the subject before the original deadline
        has passed (GDPR Art. 12(3): within the first month; CCPA 1798.130(a)(2): within
        the first 45 days): a late one is refused and the request stays overdue."""
        request = self.get(request_id)
        rule = rule_for(request.jurisdiction)
        if not rule.extendable:
            raise RequestError(f"request {request_id}: {request.law} gives no extension")
        if request.extended:
            raise RequestError(f"request {request_id} was already extended "
                               f"(due {request.due_date})")
        if not request.is_open:
            raise RequestError(f"request {request_id} is {request.state}; nothing to extend")
        last_day = rule.extension_deadline(request.received_at.date())
        today = today or utcnow().date()
        if last_day is not None and today > last_day:
            period = "first month" if request.law == "GDPR" else "first 45 days"
            raise RequestError(
                f"request {request_id}: too late to extend: {request.law} allows an "
                f"extension only if it is decided and told to the subject within the "
                f"{period} (by {last_day}); the request is overdue by "
                f"{(today - request.due_date).days} day(s): answer it now")
        if not reason.strip():
            raise RequestError("an extension needs a reason (--reason); it is told to the "
                               "subject")
        due = rule.due(request.received_at.date(), extended=True)
        safe = _safe_text(reason)
        return self.transition(request_id, S.EXTENDED, actor,
                               {"reason": safe, "due_date": due.isoformat()},
                               sets={"extended": True, "extension_reason": safe,
                                     "due_date": due})

    def complete(self, request_id: str, actor: str, outcome: Mapping[str, Any],
                 delivery_secret: bytes | None = None) -> DataSubjectRequest:
        """Close the request as done, storing its outcome (counts, never values) and, for
        an access export, its passphrase sealed under the request's key."""
        return self.conclude(request_id, actor, outcome, delivery_secret)

    def conclude(self, request_id: str, actor: str, outcome: Mapping[str, Any],
                 delivery_secret: bytes | None = None, owner: str | None = None,
                 start: bool = False) -> DataSubjectRequest:
        """``complete`` in one transaction with, for ``owner``, the check that the lease is
        still theirs (``renew``) and, with ``start``, the move to in_progress first (both
        states logged): work that changed nothing (an access export) is concluded in one
        commit."""
        sets: dict[str, Any] = {"outcome": json.dumps(outcome, default=str)}
        if delivery_secret is not None:
            sets["delivery_secret"] = delivery_secret

        def change(conn: Any) -> None:
            if owner is not None:
                self.renew(request_id, owner, conn=conn)
            if start:
                self._start_in(conn, request_id, actor)
            self._transition_in(conn, request_id, S.COMPLETED, actor,
                                {"outcome": dict(outcome),
                                 "delivery_secret_stored": delivery_secret is not None},
                                sets=sets)

        self.store.write(change)
        return self.get(request_id)

    def record(self, request_id: str, actor: str, action: str,
               details: Mapping[str, Any] | None = None) -> int:
        """Log an event of the request (no state change)."""
        return self.store.append_log(actor, action, request_id, dict(details or {}))

    def erased_by_others(self, request_id: str, people: Iterable[str]) -> dict[str, str]:
        """Of ``people`` (keyed fingerprints of person rows, ``governance.dsar.approval``),
        those another erasure's recorded plan erases, each with that request's id."""
        wanted = set(people)
        if not wanted:
            return {}
        out: dict[str, str] = {}
        for e in self.store.log_events(["dsar.plan_recorded"], other_than=request_id):
            for fp in set((e.details or {}).get("erases_person_rows", ())) & wanted:
                out[fp] = str(e.target)
        return out

    def erased_by_itself(self, request_id: str) -> set[str]:
        """The person rows (keyed fingerprints) that the plans this erasure recorded
        erase."""
        return {fp for e in self.store.log_events(["dsar.plan_recorded"], target=request_id)
                for fp in (e.details or {}).get("erases_person_rows", ())}

    # -- leases: one worker runs a request at a time ---------------------------------
    def claim(self, request_id: str, owner: str, take_over: bool = False,
              seconds: int = LEASE_SECONDS) -> None:
        """Take the request's lease for ``owner``; RequestError while another holds it,
        unless ``take_over`` (after a crash)."""

        def change(conn: Any) -> None:
            rows = conn.execute("SELECT lease_owner, lease_until FROM dsar_requests "
                                "WHERE request_id = ?", [request_id]).fetchall()
            if not rows:
                raise RequestError(f"no data-subject request {request_id!r}")
            holder, until = rows[0]
            now = utcnow()
            gone = bool(holder) and holder != owner and worker_gone(holder)
            if holder and holder != owner and until and until > now and not take_over \
                    and not gone:
                raise RequestError(f"request {request_id} is being run by {holder} (lease "
                                   f"until {until:%H:%M:%S} UTC); pass --take-over if that "
                                   "worker died")
            conn.execute("UPDATE dsar_requests SET lease_owner = ?, lease_until = ? "
                         "WHERE request_id = ?", [owner, now + timedelta(seconds=seconds),
                                                  request_id])
            if holder and holder != owner:
                append_log_row(conn, owner, "dsar.lease_taken_over", request_id,
                               {"previous": holder, **({"reason": "its process on this host "
                                                        "is no longer running"}
                                                       if gone else {})})

        self.store.write(change)

    def renew(self, request_id: str, owner: str, conn: Any = None,
              seconds: int = LEASE_SECONDS) -> None:
        """Extend ``owner``'s lease; RequestError when the lease is no longer theirs (another
        worker took it over): the caller must stop before recording anything more. With
        ``conn``, inside the caller's transaction."""

        def change(c: Any) -> None:
            rows = c.execute("UPDATE dsar_requests SET lease_until = ? WHERE request_id = ? "
                             "AND lease_owner = ? RETURNING request_id",
                             [utcnow() + timedelta(seconds=seconds), request_id,
                              owner]).fetchall()
            if not rows:
                holder = c.execute("SELECT lease_owner FROM dsar_requests WHERE "
                                   "request_id = ?", [request_id]).fetchall()
                raise RequestError(
                    f"request {request_id}: this worker ({owner}) no longer holds its lease "
                    f"(now {holder[0][0] if holder and holder[0][0] else 'nobody'}); it "
                    "stops here and records nothing more")

        if conn is not None:
            change(conn)
        else:
            self.store.write(change)

    def release(self, request_id: str, owner: str) -> None:
        """Give the lease back."""
        self.store.write(lambda conn: conn.execute(
            "UPDATE dsar_requests SET lease_owner = NULL, lease_until = NULL "
            "WHERE request_id = ? AND lease_owner = ?", [request_id, owner]))


def _safe_text(text: str) -> str:
    """Free text typed by a person, with any personal data in it masked."""
    from governance.masking import mask_free_text

    return mask_free_text(text)
