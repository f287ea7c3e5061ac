"""What a compliance audit produces: check outcomes with their status, severity and articles.

A check outcome never carries a raw value: evidence holds counts and masked samples only
(``governance.masking.mask_value``), and ``safe_evidence`` masks anything that looks
personal before an outcome is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from governance.audit.context import AuditContext, TableTarget


class Status(StrEnum):
    """The outcome of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"                    # the check could not run: never read as a pass
    NOT_APPLICABLE = "not_applicable"  # nothing to check, or the subsystem is not configured


class Severity(StrEnum):
    """How much a failing check matters."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}
STATUS_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.WARN: 2, Status.NOT_APPLICABLE: 3,
                Status.PASS: 4}
FAILING = (Status.FAIL, Status.ERROR)


@dataclass
class CheckResult:
    """One row of an audit run: a check's outcome for one place (or the whole estate)."""

    check_id: str
    title: str
    status: Status
    severity: Severity
    articles: list[str]
    source: str | None = None
    table: str | None = None
    column: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    remediation: str | None = None
    engine: str = "store"

    @property
    def place(self) -> str:
        """``source.table.column`` as far as known, or ``(estate)``."""
        parts = [p for p in (self.source, self.table, self.column) if p]
        return ".".join(parts) if parts else "(estate)"

    def sort_key(self) -> tuple[int, int, str, str]:
        """Failing first, then by severity, check and place."""
        return (STATUS_ORDER[self.status], SEVERITY_ORDER[self.severity], self.check_id,
                self.place)


@dataclass(frozen=True)
class Check:
    """A compliance check, defined in one file under ``audits/checks/`` as ``CHECK``.

    ``kind`` says how it runs:

    - ``source``: Great Expectations. ``targets(ctx)`` picks the columns to examine (one
      TableTarget per table, naming its columns); ``expectations(target)`` returns the
      gx expectations for that table; the runner builds an expectation suite, a validation
      definition and a checkpoint per source and validates the rows it reads (read-only).
      ``interpret`` (optional) turns one expectation's validation result into a
      CheckResult (the default: fail when the expectation failed, with counts and at most
      three masked unexpected values).
    - ``store``: ``evaluate(ctx)`` computes results from the audit store and the inventory.
    """

    check_id: str
    title: str
    severity: Severity
    articles: tuple[str, ...]
    remediation: str
    kind: str = "store"                       # source | store
    description: str = ""
    evaluate: Callable[[AuditContext], Iterable[CheckResult]] | None = None
    targets: Callable[[AuditContext], Iterable[TableTarget]] | None = None
    expectations: Callable[[TableTarget], list[Any]] | None = None
    interpret: Callable[[TableTarget, str | None, Mapping[str, Any], bool],
                        CheckResult] | None = None

    def result(self, status: Status | str, *, source: str | None = None,
               table: str | None = None, column: str | None = None,
               evidence: Mapping[str, Any] | None = None, severity: Severity | None = None,
               remediation: str | None = None, articles: Iterable[str] | None = None,
               engine: str | None = None) -> CheckResult:
        """A result of this check, defaults taken from its definition."""
        return CheckResult(
            self.check_id, self.title, Status(status), severity or self.severity,
            list(articles if articles is not None else self.articles), source, table, column,
            dict(evidence or {}),
            remediation if remediation is not None else
            (None if Status(status) is Status.PASS else self.remediation),
            engine or ("great_expectations" if self.kind == "source" else "store"))
