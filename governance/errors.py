"""Errors raised by the toolkit, each rendered as one line that names where the problem is."""

from __future__ import annotations

import re


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
    # (DuckDB's errors live in its extension module, ``_duckdb``)
    if type(e).__module__.split(".")[0].lstrip("_") not in DRIVER_MODULES:
        return None
    return _QUOTED.sub(_mask_quoted, str(e).splitlines()[0]) if str(e) else type(e).__name__


# A quoted part of a driver's message is a value unless it follows the name of a kind of
# object (constraint "orders_pkey", relation "users"): a value is masked ('***'), since
# first lines quote them too (invalid input syntax for type numeric: "gk1:...", DuckDB's
# Duplicate key "id: 5", Could not convert string 'Smith').
_QUOTED = re.compile(r"""(\w+)?(\s*)("[^"]*"|'[^']*')""")
_NAMED = frozenset({"constraint", "relation", "column", "table", "index", "schema",
                    "database", "function", "sequence", "type", "view", "role", "trigger",
                    "extension", "operator", "collation", "domain"})


def _mask_quoted(m: re.Match[str]) -> str:
    word, space, quoted = m.group(1) or "", m.group(2), m.group(3)
    if word.lower() in _NAMED:
        return m.group(0)
    return f"{word}{space}{quoted[0]}***{quoted[0]}"
