"""Errors raised by the toolkit, each rendered as one line that names where the problem is."""

from __future__ import annotations


class GovernanceError(Exception):
    """Base class for every error the toolkit reports to its user."""


class ConfigError(GovernanceError):
    """A configuration file (inventory, policy) is malformed or invalid."""

    def __init__(self, path: str, message: str, line: int | None = None, field: str | None = None):
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        where = str(path)
        if line is not None:
            where += f":{line}"
        if field:
            where += f": {field}"
        super().__init__(f"{where}: {message}")


class SourceError(GovernanceError):
    """A data source cannot be reached, or a table or column in it does not exist."""


class UnsafeIdentifierError(GovernanceError):
    """A table or column name was refused before it reached a SQL statement."""


class AuditStoreError(GovernanceError):
    """The audit store cannot be opened, migrated or written."""


class UnknownSourceError(GovernanceError):
    """A source name that the inventory does not declare."""


class RetentionError(GovernanceError):
    """A retention plan cannot be applied safely (a held or unkeyed table, a changed policy)."""


class StepStopped(GovernanceError):
    """A step of a request found its rows not as the plan left them, and changed nothing.
    The message says why; the journal adds what became of the source's other steps."""

    def with_outcome(self, text: str) -> StepStopped:
        """This error, its message followed by ``text``."""
        self.args = (f"{self.args[0]}; {text}",)
        return self


DRIVER_MODULES = ("psycopg", "sqlite3", "duckdb")


def refused_by_database(e: BaseException) -> str | None:
    """The first line of an error a database driver raised (a constraint, a value too
    long; its type's name when it says nothing), or None for any other error. Only the
    first line: drivers add the failing row's values on the next ones."""
    if type(e).__module__.split(".")[0] not in DRIVER_MODULES:
        return None
    return str(e).splitlines()[0] if str(e) else type(e).__name__
