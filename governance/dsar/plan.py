"""Plans of change for a located subject: what erasure or rectification will do, table by
table, before anything is done. A plan step holds personal data (its match values) and is
shown only through ``Step.describe()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from governance.dsar.holds import LegalHold
from governance.dsar.identities import Identity
from governance.dsar.redaction import redact_identities
from governance.dsar.resolution import FoundBy, Resolution
from governance.errors import GovernanceError
from governance.inventory import Inventory
from governance.taxonomy import CATEGORIES

REDACTED = "[erased]"

# Shorthand field names for rectification, by the data category they correct.
FIELD_CATEGORIES = {
    "email": "contact.email",
    "phone": "contact.phone",
    "name": "identity.name",
    "address": "location.address",
    "date_of_birth": "identity.date_of_birth",
}


class PlanError(GovernanceError):
    """A plan cannot be made as the policy asks (e.g. a hash on a column not matched by)."""


class Action(StrEnum):
    """What a step does to the rows it matches."""

    DELETE = "delete"
    ANONYMIZE = "anonymize"   # keep the record, change the listed columns
    REDACT = "redact"         # rewrite free text without the subject's identities
    RECTIFY = "rectify"       # set corrected values
    HELD = "held"             # left untouched under a legal hold


@dataclass
class Step:
    """One planned change to one table, matched through one column."""

    step_no: int
    source: str
    table: str
    found_by: str
    action: Action
    match_column: str
    values: list[Any]                                     # personal data
    changes: dict[str, Any] = field(default_factory=dict)  # column -> operator / new value;
    # for REDACT: old text -> new text
    planned_rows: int = 0
    status: str = "pending"                               # pending | done | held
    rows_affected: int | None = None
    note: str | None = None
    recorded_columns: list[str] | None = None             # as read back from the journal

    @property
    def columns(self) -> list[str]:
        """The columns the step changes."""
        if self.recorded_columns is not None:
            return list(self.recorded_columns)
        if self.action is Action.REDACT:
            return [self.match_column]
        return sorted(self.changes) if self.action in (Action.ANONYMIZE, Action.RECTIFY) else []

    def describe(self) -> str:
        """One line for people; no value is shown."""
        what = {
            Action.DELETE: "delete rows",
            Action.ANONYMIZE: "anonymize " + ", ".join(
                f"{c}={self.changes[c]}" if c in self.changes else c for c in self.columns),
            Action.REDACT: f"redact the subject in {self.match_column}",
            Action.RECTIFY: "set " + ", ".join(self.columns),
            Action.HELD: f"keep (legal hold: {self.note})",
        }[self.action]
        return (f"{self.step_no}. {self.source}.{self.table}: {self.planned_rows} row(s) "
                f"matched by {self.match_column} ({self.found_by}) -> {what}")

    def payload(self) -> dict[str, Any]:
        """The personal data of the step, for sealing in the journal."""
        return {"values": self.values, "changes": self.changes}


def _ordered(steps: list[tuple[int, bool, Step]]) -> list[Step]:
    """Redactions first, then rows deepest in the reference graph first, person tables
    last, so that no row is deleted while another still points at it."""
    steps.sort(key=lambda t: (t[2].action is not Action.REDACT, -t[0], t[1]))
    out = []
    for n, (_, _, step) in enumerate(steps, 1):
        step.step_no = n
        out.append(step)
    return out


def plan_erasure(inventory: Inventory, resolution: Resolution,
                 identities: Sequence[Identity],
                 table_holds: Mapping[tuple[str, str], LegalHold]) -> list[Step]:
    """The steps that erase the located subject, following each table's erasure policy."""
    steps: list[tuple[int, bool, Step]] = []
    for loc in resolution.locations:
        decl = inventory.source(loc.source).table(loc.table)
        hold = table_holds.get((loc.source, loc.table))
        person_table = bool(decl and decl.subject_key)
        if hold is not None:
            step = Step(0, loc.source, loc.table, loc.found_by.value, Action.HELD,
                        loc.match_column, [], planned_rows=len(loc.rows), status="held",
                        note=hold.reason)
        elif loc.found_by is FoundBy.FREE_TEXT:
            changes = {text: redact_identities(text, identities) for text in loc.values}
            changes = {old: new for old, new in changes.items() if new != old}
            if not changes:
                continue
            step = Step(0, loc.source, loc.table, loc.found_by.value, Action.REDACT,
                        loc.match_column, list(changes), changes, len(changes))
        elif decl is not None and decl.erasure.action == "anonymize":
            for col, op in decl.erasure.columns.items():
                if op == "hash" and col != loc.match_column:
                    raise PlanError(
                        f"{loc.source}.{loc.table}: erasure hashes {col!r}, but the subject's "
                        f"rows are matched by {loc.match_column!r}; hash only the column rows "
                        "are matched by, or null/redact it")
            step = Step(0, loc.source, loc.table, loc.found_by.value, Action.ANONYMIZE,
                        loc.match_column, list(loc.values), dict(decl.erasure.columns),
                        len(loc.rows), note=decl.erasure.basis)
        else:
            step = Step(0, loc.source, loc.table, loc.found_by.value, Action.DELETE,
                        loc.match_column, list(loc.values), planned_rows=len(loc.rows))
        steps.append((loc.depth, person_table, step))
    return _ordered(steps)


def correction_categories(corrections: Mapping[str, str]) -> dict[str, str]:
    """Corrections keyed by data category (``phone`` -> ``contact.phone``)."""
    out = {}
    for name, value in corrections.items():
        category = FIELD_CATEGORIES.get(name, name)
        if category not in CATEGORIES:
            raise PlanError(f"cannot rectify {name!r}: name a field "
                            f"({', '.join(FIELD_CATEGORIES)}) or a data category")
        out[category] = value
    return out


def plan_rectification(inventory: Inventory, resolution: Resolution,
                       identities: Sequence[Identity],
                       corrections: Mapping[str, str]) -> list[Step]:
    """The steps that set the corrected values wherever the subject's data is held."""
    by_category = correction_categories(corrections)
    cats = resolution.categories
    steps: list[tuple[int, bool, Step]] = []
    for loc in resolution.locations:
        if loc.found_by is FoundBy.FREE_TEXT:
            changes = {}
            for text in loc.values:
                new = text
                for ident in identities:
                    if ident.category in by_category:
                        new = redact_identities(new, [ident], by_category[ident.category])
                if new != text:
                    changes[text] = new
            if changes:
                steps.append((loc.depth, False, Step(
                    0, loc.source, loc.table, loc.found_by.value, Action.REDACT,
                    loc.match_column, list(changes), changes, len(changes))))
            continue
        assign = {}
        for row in loc.rows[:1]:
            for col in row:
                for category in cats.get((loc.source, loc.table, col), set()):
                    if category in by_category:
                        assign[col] = by_category[category]
        if assign:
            steps.append((loc.depth, False, Step(
                0, loc.source, loc.table, loc.found_by.value, Action.RECTIFY,
                loc.match_column, list(loc.values), assign, len(loc.rows))))
    return _ordered(steps)
