"""Approving a plan, not just a request: whose rows an erasure or rectification may change,
and which changes, as the approver reviewed them.

An approval records a ``PlanBinding``: keyed fingerprints of the subject's person rows the
plan found (each by its key and its name, date of birth or ID number columns, never a
value itself) and the (source, table, action) of each change. A run plans again before it
changes anything and stops, changing nothing, when its plan differs:

- it finds a person row the approved plan did not (the e-mail or phone the request names
  may have been given to someone else since, a row was replaced under the same key, or
  the subject's own row was edited);
- on its first plan it no longer finds an approved person row that no erasure's recorded
  plan erases (the subject may have changed the identity the request names: the request
  would end with their rows kept);
- it changes a table, or changes it in a way, the approved plan did not.

More rows in a table the plan already changes (the subject placed an order since) need no
new approval. An approval cannot move a request to other people: a plan that shares no
person row with the plan approved before is refused (reject the request and file one for
the identity the subject uses now), and a plan that finds no person row at all is
approved only when the approver names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.audit_store import AuditStore
from governance.crypto import KeyRing
from governance.crypto.field import looks_sealed
from governance.dsar.plan import Action, Step
from governance.dsar.requests import (
    DataSubjectRequest,
    RequestBook,
    RequestError,
    approval_refused,
)
from governance.dsar.resolution import WHO_CATEGORIES, Progress, Resolution
from governance.inventory import Inventory
from governance.masking import mask_value
from governance.sources.key_text import key_text


@dataclass(frozen=True)
class PlanBinding:
    """What an approval approves: the subject's person rows (keyed fingerprints) and the
    changes (source, table, action); ``rows`` is shown, never compared."""

    people: tuple[str, ...]
    changes: tuple[tuple[str, str, str], ...]
    rows: int = 0
    # The personal-data columns each person table's rows were fingerprinted by
    # ("source.table" -> names): a run compares by the same ones, whatever a later scan
    # finds.
    columns: Mapping[str, tuple[str, ...]] | None = None

    @property
    def digest(self) -> str:
        """A short name of the plan, shown to the approver and given back to approve it."""
        body = json.dumps([list(self.people), [list(c) for c in self.changes]])
        return "plan-" + hashlib.sha256(body.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        """The form stored with the approval."""
        return {"digest": self.digest, "people": list(self.people),
                "changes": [list(c) for c in self.changes], "rows": self.rows,
                "columns": {t: list(c) for t, c in (self.columns or {}).items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanBinding:
        """The binding ``to_json`` stored."""
        columns = data.get("columns")
        return cls(tuple(data.get("people", ())),
                   tuple((str(s), str(t), str(a)) for s, t, a in data.get("changes", ())),
                   int(data.get("rows", 0)),
                   None if columns is None else {t: tuple(c) for t, c in columns.items()})

    def describe(self) -> str:
        """One line for people: counts and table names, no value."""
        changes = ", ".join(f"{s}.{t} {a}" for s, t, a in self.changes) or "none"
        return (f"{self.digest}: {len(self.people)} person row(s) of the subject; "
                f"changes: {changes}; {self.rows} row(s) planned")


def _key_columns(inventory: Inventory, resolution: Resolution, table: tuple[str, str]
                 ) -> list[str]:
    decl = inventory.source(table[0]).table(table[1])
    info = resolution.catalogue.get(table[0], {}).get(table[1])
    return ([decl.subject_key] if decl is not None and decl.subject_key
            else list(info.primary_key) if info is not None else [])


def _person_text(key_columns: Sequence[str], personal: Sequence[str], table: tuple[str, str],
                 row: Mapping[str, Any]) -> str:
    """The text naming one person row: its subject key or primary key (every written form
    of a whole number alike), else every value of the row, then the values of its
    ``personal`` columns (so that another person given the same key is another row)."""
    # An encrypted cell is left out: its envelope changes when its key is rotated, not
    # the person (the key, and any column in clear, still tell them apart).
    if key_columns and all(c in row for c in key_columns):
        key = "key\x1f" + "\x1f".join(str(key_text(row[c])) for c in key_columns)
    else:
        key = "row\x1f" + json.dumps({k: key_text(v) for k, v in sorted(row.items())
                                      if not looks_sealed(v)})
    values = {c: key_text(row.get(c)) for c in personal if not looks_sealed(row.get(c))}
    return f"approval-person:{table[0]}.{table[1]}\x00{key}\x1e{json.dumps(values)}"


def _person_rows(resolution: Resolution) -> list[tuple[tuple[str, str], Mapping[str, Any]]]:
    graph = resolution.graph
    return [(table, row) for table, rows in sorted(resolution.owned.items())
            if graph is not None and graph.is_person(table) for row in rows]


def binding_of(inventory: Inventory, resolution: Resolution, steps: Sequence[Step],
               keyring: KeyRing, columns: Mapping[str, Sequence[str]] | None = None
               ) -> PlanBinding:
    """The binding of a plan: the subject's own person rows and the changes of ``steps``.
    ``columns``: the columns to fingerprint each person table's rows by besides the key (an
    approved binding's), else those with a WHO_CATEGORIES category now."""
    # A rectification's own changes do not make the subject another person.
    corrected = {(s.source, s.table, c) for s in steps if s.action is Action.RECTIFY
                 for c in s.columns}
    people, used = set(), {}
    for table, row in _person_rows(resolution):
        name = f"{table[0]}.{table[1]}"
        keys = _key_columns(inventory, resolution, table)
        if name not in used:
            used[name] = tuple(columns[name]) if columns is not None and name in columns \
                else tuple(sorted(c for c in row if c not in keys
                                  and (table[0], table[1], c) not in corrected
                                  and resolution.categories.get((table[0], table[1], c),
                                                                set()) & WHO_CATEGORIES))
        people.add(keyring.fingerprint(_person_text(keys, used[name], table, row)))
    changes = {(s.source, s.table, s.action.value) for s in steps
               if s.action is not Action.HELD}
    return PlanBinding(tuple(sorted(people)), tuple(sorted(changes)),
                       sum(s.planned_rows or 0 for s in steps if s.action is not Action.HELD),
                       used)


def person_rows_shown(resolution: Resolution) -> list[str]:
    """The subject's person rows as the approver may see them: table and the masked
    values of their personal-data columns (never a value)."""
    out = []
    for (source, table), row in _person_rows(resolution):
        # (an encrypted cell is named so: its masked ciphertext would say nothing)
        masked = ["(encrypted)" if looks_sealed(row[c]) else mask_value(row[c])
                  for c in sorted(row) if row[c] is not None
                  and resolution.categories.get((source, table, c))]
        out.append(f"{source}.{table}: " + (", ".join(masked) or "(no personal-data column)"))
    return out


def approval_blockers(request: DataSubjectRequest, now: PlanBinding, first_plan: bool,
                      erased_by: Mapping[str, str] | None = None) -> list[str]:
    """Why the plan a run made is not the plan approved (empty when it is). ``first_plan``:
    no step of the request has been done yet; ``erased_by``: approved person rows another
    erasure's recorded plan erases (a plan no longer finding them is no surprise)."""
    rid = request.request_id
    look = f"`govkit dsar plan {rid}` shows them, masked"
    if request.approved_plan is None:
        return [f"the approval names no plan (it was recorded before approvals named one): "
                f"review `govkit dsar plan {rid}` and approve it (govkit dsar approve {rid} "
                f"--plan {now.digest} --note '...')"]
    approved = PlanBinding.from_json(request.approved_plan)
    out = []
    new_people = set(now.people) - set(approved.people)
    moved = bool(approved.people) and bool(now.people) \
        and not set(approved.people) & set(now.people)
    if moved:
        out.append("this plan finds none of the approved person rows, only others (by key, "
                   "and name, date of birth or ID number): the e-mail or phone the request "
                   "names may belong to someone else now, a row was replaced under the same "
                   "key, or the subject's own name, date of birth, ID number or key was "
                   "edited. An approval cannot move a request to other rows: reject this "
                   "request and file one with the identity the subject uses now, keeping the "
                   "date it was received (govkit dsar new ... --received YYYY-MM-DD); "
                   f"{look}")
    elif new_people:
        out.append(f"this plan finds {len(new_people)} person row(s) the approved plan did "
                   "not (by key, and name, date of birth or ID number): someone else may "
                   "now hold the e-mail or phone the request names, or the subject opened "
                   f"another account. Check whose they are ({look}): if they are the "
                   "subject's, approve the plan as it is now; if not, reject this request "
                   "and file one with the identity the subject uses now")
    missing = set(approved.people) - set(now.people) - set(erased_by or {})
    if first_plan and missing and not moved:
        out.append(f"this plan no longer finds {len(missing)} of the {len(approved.people)} "
                   "person row(s) approved: the subject may have changed the e-mail or "
                   "phone the request names (then reject this request and file one with "
                   "the identity they use now, keeping the date it was received: govkit "
                   "dsar new ... --received YYYY-MM-DD), or those rows were removed "
                   f"meanwhile (then check that with `govkit dsar plan {rid}` and approve "
                   "the plan as it is now, naming it)")
    new_changes = sorted(set(now.changes) - set(approved.changes))
    if new_changes:
        out.append("this plan makes changes the approved plan did not ("
                   + ", ".join(f"{s}.{t} {a}" for s, t, a in new_changes)
                   + f"): review `govkit dsar plan {rid}` and approve it (govkit dsar approve "
                   f"{rid} --plan {now.digest} --note '...')")
    return out


def plan_binding(inventory: Inventory, store: AuditStore, request_id: str,
                 progress: Progress | None = None
                 ) -> tuple[Resolution, list[Step], PlanBinding]:
    """``plan_request`` and the binding of the plan it makes (what ``dsar plan`` names)."""
    from governance.dsar.runner import plan_request

    resolution, steps = plan_request(inventory, store, request_id, progress)
    return resolution, steps, binding_of(inventory, resolution, steps, KeyRing(store))


def approve_request(inventory: Inventory, store: AuditStore, request_id: str, actor: str,
                    note: str, reviewed: str | None = None
                    ) -> tuple[DataSubjectRequest, PlanBinding, list[str]]:
    """Approve the plan a run of ``request_id`` would make now (``plan_request``): the
    request, what was approved, and what would still stop the run (holds, ambiguous
    identities). ``reviewed``: the name of the plan the approver reviewed; RequestError
    (nothing recorded) when the plan is no longer that one, when it shares no person row
    with the plan approved before, or when it finds no person row and is not named."""
    book = RequestBook(store)
    request = book.get(request_id)
    # What the store alone can refuse, before any source is read.
    refused = approval_refused(request_id, note, request.request_type, request.state,
                               request.verified_at)
    if refused:
        raise RequestError(refused)
    resolution, steps, binding = plan_binding(inventory, store, request_id)
    if resolution.unreachable:
        raise RequestError(f"request {request_id}: sources could not be searched, so the plan "
                           "is not known; nothing was approved: "
                           + "; ".join(resolution.unreachable.values()))
    if reviewed is not None and reviewed.strip() != binding.digest:
        raise RequestError(f"request {request_id}: the plan is not {reviewed.strip()} (a "
                           "mistyped name, or the data changed since it was reviewed): "
                           f"review `govkit dsar plan {request_id}` again; nothing was "
                           "approved")
    before = PlanBinding.from_json(request.approved_plan) if request.approved_plan else None
    # (compared by the columns the plan approved before was fingerprinted by)
    if before is not None and before.people and binding.people and not set(before.people) \
            & set(binding_of(inventory, resolution, steps, book.keyring, before.columns).people):
        raise RequestError(
            f"request {request_id}: this plan finds none of the person rows of the plan "
            "approved before, only others: the identity the request names leads to someone "
            "else now, or the subject's rows were replaced, or their name, date of birth, ID "
            "number or key was edited, or those columns changed. An approval cannot move "
            "a request to other people (the identity verified was the subject's): reject it "
            "and file one with the identity the subject uses now; nothing was approved")
    if not binding.people and reviewed is None:
        raise RequestError(
            f"request {request_id}: this plan finds none of the subject's person rows, so the "
            "request would complete with nothing of theirs erased or changed (the subject "
            "may have changed the e-mail or phone the request names: then reject it and file "
            "one with the identity they use now). To approve it all the same, review "
            f"`govkit dsar plan {request_id}` and name it: --plan {binding.digest}; nothing "
            "was approved")
    approved = book.approve(request_id, actor, note, plan=binding.to_json())
    return approved, binding, list(resolution.blockers)
