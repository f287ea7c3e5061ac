"""What every govkit command module shares without importing ``governance.cli`` (which
imports them): exit statuses, who is acting, progress lines."""

from __future__ import annotations

import getpass
import os

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
