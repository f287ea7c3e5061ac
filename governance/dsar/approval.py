"""Approving a plan, not just a request: whose rows an erasure or rectification may change,
and which changes, as the approver reviewed them.

An approval records a ``PlanBinding``: keyed fingerprints of the subject's person rows the
plan found (never a value) and the (source, table, action) of each change. A run plans
again before it changes anything and stops, changing nothing, when its plan differs:

- it finds a person row the approved plan did not (the e-mail or phone the request names
  may have been given to someone else since, or the subject opened another account);
- it finds none of the person rows approved, on its first plan, and no other erasure's
  recorded plan erases them (the subject may have changed the identity the request names:
  the request would end with nothing erased);
- it changes a table, or changes it in a way, the approved plan did not.

More rows in a table the plan already changes (the subject placed an order since) and
fewer person rows than approved need no new approval. The approver approves again after
reviewing the new plan (``govkit dsar plan``, then ``govkit dsar approve``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.audit_store import AuditStore
from governance.crypto import KeyRing
from governance.dsar.plan import Action, Step
from governance.dsar.requests import DataSubjectRequest, RequestBook, RequestError
from governance.dsar.resolution import Resolution
from governance.inventory import Inventory
from governance.sources.key_text import key_text


@dataclass(frozen=True)
class PlanBinding:
    """What an approval approves: the subject's person rows (keyed fingerprints) and the
    changes (source, table, action); ``rows`` is shown, never compared."""

    people: tuple[str, ...]
    changes: tuple[tuple[str, str, str], ...]
    rows: int = 0

    @property
    def digest(self) -> str:
        """A short name of the plan, shown to the approver and given back to approve it."""
        body = json.dumps([list(self.people), [list(c) for c in self.changes]])
        return "plan-" + hashlib.sha256(body.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        """The form stored with the approval."""
        return {"digest": self.digest, "people": list(self.people),
                "changes": [list(c) for c in self.changes], "rows": self.rows}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanBinding:
        """The binding ``to_json`` stored."""
        return cls(tuple(data.get("people", ())),
                   tuple((str(s), str(t), str(a)) for s, t, a in data.get("changes", ())),
                   int(data.get("rows", 0)))

    def describe(self) -> str:
        """One line for people: counts and table names, no value."""
        changes = ", ".join(f"{s}.{t} {a}" for s, t, a in self.changes) or "none"
        return (f"{self.digest}: {len(self.people)} person row(s) of the subject; "
                f"changes: {changes}; {self.rows} row(s) planned")


def _person_key(inventory: Inventory, resolution: Resolution, table: tuple[str, str],
                row: Mapping[str, Any]) -> str:
    """The text naming one person row: its subject key or primary key (every written form
    of a whole number alike), else every value of the row."""
    decl = inventory.source(table[0]).table(table[1])
    info = resolution.catalogue.get(table[0], {}).get(table[1])
    columns: Sequence[str] = ([decl.subject_key] if decl is not None and decl.subject_key
                              else list(info.primary_key) if info is not None else [])
    if columns and all(c in row for c in columns):
        return "key\x1f" + "\x1f".join(str(key_text(row[c])) for c in columns)
    return "row\x1f" + json.dumps({k: key_text(v) for k, v in sorted(row.items())})


def binding_of(inventory: Inventory, resolution: Resolution, steps: Sequence[Step],
               keyring: KeyRing) -> PlanBinding:
    """The binding of a plan: the subject's own person rows and the changes of ``steps``."""
    graph = resolution.graph
    people = set()
    for table, rows in resolution.owned.items():
        if graph is None or not graph.is_person(table):
            continue
        for row in rows:
            text = f"approval-person:{table[0]}.{table[1]}\x00" + \
                _person_key(inventory, resolution, table, row)
            people.add(keyring.fingerprint(text))
    changes = {(s.source, s.table, s.action.value) for s in steps
               if s.action is not Action.HELD}
    return PlanBinding(tuple(sorted(people)), tuple(sorted(changes)),
                       sum(s.planned_rows or 0 for s in steps if s.action is not Action.HELD))


def approval_blockers(request: DataSubjectRequest, now: PlanBinding, first_plan: bool,
                      erased_by: Mapping[str, str] | None = None) -> list[str]:
    """Why the plan a run made is not the plan approved (empty when it is). ``first_plan``:
    no step of the request has been done yet; ``erased_by``: approved person rows another
    erasure's recorded plan erases (a plan finding none of them is then no surprise)."""
    rid = request.request_id
    again = (f"review `govkit dsar plan {rid}` and, if it is right, approve it "
             f"(govkit dsar approve {rid} --plan {now.digest} --note '...')")
    if request.approved_plan is None:
        return [f"the approval names no plan (it was recorded before approvals named one): "
                f"{again}"]
    approved = PlanBinding.from_json(request.approved_plan)
    out = []
    new_people = set(now.people) - set(approved.people)
    if new_people:
        out.append(f"this plan finds {len(new_people)} person row(s) the approved plan did "
                   "not: the e-mail or phone the request names may belong to someone else "
                   "now, or the subject opened another account; if they are the subject's, "
                   + again)
    if first_plan and approved.people and not now.people \
            and not set(approved.people) <= set(erased_by or {}):
        out.append("this plan finds none of the subject's person rows the approved plan "
                   "found: the subject may have changed the e-mail or phone the request "
                   "names since (then reject this request and file one with the identity "
                   "they use now, keeping the date it was received: govkit dsar new ... "
                   "--received YYYY-MM-DD), or their rows were removed meanwhile (then "
                   + again + ")")
    new_changes = sorted(set(now.changes) - set(approved.changes))
    if new_changes:
        out.append("this plan makes changes the approved plan did not ("
                   + ", ".join(f"{s}.{t} {a}" for s, t, a in new_changes) + "): " + again)
    return out


def approve_request(inventory: Inventory, store: AuditStore, request_id: str, actor: str,
                    note: str, reviewed: str | None = None
                    ) -> tuple[DataSubjectRequest, PlanBinding, list[str]]:
    """Approve the plan a run of ``request_id`` would make now (``plan_request``): the
    request, what was approved, and what would still stop the run (holds, ambiguous
    identities). ``reviewed``: the digest of the plan the approver reviewed; RequestError
    (nothing recorded) when the plan is no longer that one."""
    from governance.dsar.runner import plan_request

    book = RequestBook(store)
    request = book.get(request_id)
    if not note.strip():   # before the sources are read
        raise RequestError("say why the run is approved (--note), e.g. the plan was reviewed")
    if not request.destructive:
        raise RequestError(f"request {request_id} is an {request.request_type} request: it "
                           "changes no data and needs no approval; it runs once verified")
    resolution, steps = plan_request(inventory, store, request_id)
    if resolution.unreachable:
        raise RequestError(f"request {request_id}: sources could not be searched, so the plan "
                           "is not known; nothing was approved: "
                           + "; ".join(resolution.unreachable.values()))
    binding = binding_of(inventory, resolution, steps, book.keyring)
    if reviewed is not None and reviewed.strip() != binding.digest:
        raise RequestError(f"request {request_id}: the plan is now {binding.digest}, not "
                           f"{reviewed.strip()} as reviewed (the data changed since): review "
                           f"`govkit dsar plan {request_id}` again; nothing was approved")
    approved = book.approve(request_id, actor, note, plan=binding.to_json())
    return approved, binding, list(resolution.blockers)
