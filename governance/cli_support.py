"""What every govkit command module shares without importing ``governance.cli`` (which
imports them): exit statuses, who is acting, progress lines."""

from __future__ import annotations

import getpass
import os
from typing import Any

import click

EXIT_OK = 0        # done, nothing wrong found
EXIT_PROBLEMS = 1  # done, and it found problems (or a check failed, or the user declined)
EXIT_USAGE = 2     # bad usage or input: nothing was done


def actor() -> str:
    """Who is acting: GOVKIT_ACTOR, else the operating-system user."""
    if os.environ.get("GOVKIT_ACTOR"):
        return os.environ["GOVKIT_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def progress(message: str) -> None:
    """One progress line on stderr."""
    click.echo(f"  .. {message}", err=True)


def held_store(path: Any, create: bool = False) -> Any:
    """The audit store at ``path``, kept open until the command ends: for commands that
    work on the store alone (other processes wait meanwhile, so never for one that
    searches or changes a source)."""
    from governance.audit_store import AuditStore

    store = AuditStore(path, create=create)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.with_resource(store.session())
    return store
