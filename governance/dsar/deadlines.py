"""When a data-subject request must be answered, by jurisdiction.

- GDPR (EU, EEA, UK), Art. 12(3): one month from receipt, extendable once by two further
  months where necessary, with the reason told to the subject *within the first month*.
- CCPA/CPRA (US-CA), Cal. Civ. Code 1798.130(a)(2): 45 days, extendable once by 45 days,
  with notice to the consumer within the first 45 days.
- PIPL (CN), Art. 50 "promptly"; GB/T 35273-2020 8.7 sets 15 working days (configurable
  here, with the public holidays to skip). No extension by default.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from governance.errors import GovernanceError

DEFAULT_PIPL_WORKING_DAYS = 15


@dataclass(frozen=True)
class DeadlineRule:
    """How long a law gives to answer, and how far it may be extended."""

    law: str
    months: int = 0
    days: int = 0
    working_days: int = 0
    extension_months: int = 0
    extension_days: int = 0
    holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def extendable(self) -> bool:
        """True when the law allows extending the deadline."""
        return bool(self.extension_months or self.extension_days)

    def extension_deadline(self, received: date) -> date | None:
        """The last day an extension may be decided and told to the subject: the original
        due date (GDPR: within the first month; CCPA: within the first 45 days); None when
        the law gives no extension."""
        return self.due(received) if self.extendable else None

    def due(self, received: date, extended: bool = False) -> date:
        """The last day to answer a request received on ``received``."""
        if self.working_days:
            return add_working_days(received, self.working_days, self.holidays)
        months = self.months + (self.extension_months if extended else 0)
        days = self.days + (self.extension_days if extended else 0)
        return add_months(received, months) + timedelta(days=days)


def add_months(start: date, months: int) -> date:
    """``start`` moved by ``months`` calendar months, clamped to the month's last day
    (31 January + 1 month = 28/29 February)."""
    if not months:
        return start
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def add_working_days(start: date, n: int, holidays: Iterable[date] = ()) -> date:
    """The ``n``-th working day (Monday to Friday, not a holiday) after ``start``."""
    off = set(holidays)
    day = start
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in off:
            n -= 1
    return day


def rule_for(jurisdiction: str, pipl_working_days: int = DEFAULT_PIPL_WORKING_DAYS,
             holidays: Iterable[date] = ()) -> DeadlineRule:
    """The deadline rule of ``jurisdiction`` (EU, EEA, UK, US-CA or CN)."""
    if jurisdiction in ("EU", "EEA", "UK"):
        return DeadlineRule("GDPR", months=1, extension_months=2)
    if jurisdiction == "US-CA":
        return DeadlineRule("CCPA", days=45, extension_days=45)
    if jurisdiction == "CN":
        if pipl_working_days < 1:
            raise GovernanceError("PIPL working days must be at least 1")
        return DeadlineRule("PIPL", working_days=pipl_working_days,
                            holidays=frozenset(holidays))
    raise GovernanceError(f"no request deadline rule for jurisdiction {jurisdiction!r}; "
                          "use EU, EEA, UK, US-CA or CN")
