"""Deterministic fault injection at the step boundaries of everything that changes data.

Set ``GOVKIT_FAULT=<point>:<n>`` (optionally ``:raise``) and the process dies with exit
status 137 (as if killed) the ``n``-th time it reaches ``<point>``; with ``:raise`` an
``InjectedFault`` is raised instead. Unset, a fault point costs one dictionary lookup.
The points are listed in ``POINTS``; tests kill a request at each of them and check that a
rerun finishes it without loss.
"""

from __future__ import annotations

import os
from collections import Counter

POINTS = (
    "request.after_plan",        # the plan is made, nothing recorded yet
    "request.after_start",       # the request is in progress, the journal not yet written
    "request.after_journal",     # the journal is written, nothing applied
    "journal.before_step",       # before a step is applied
    "journal.after_step",        # a step applied, its source not yet committed
    "journal.after_commit",      # a source committed, the journal not yet marked done
    "journal.after_mark",        # the journal marked done for a source's steps
    "request.before_complete",   # verified, the state not yet completed
    "file_rewrite",              # a file source's rewrite half written (its own hook)
)

_hits: Counter[str] = Counter()


class InjectedFault(RuntimeError):
    """Raised at a fault point asked for with ``GOVKIT_FAULT=<point>:<n>:raise``."""


def fault_point(name: str) -> None:
    """Die (or raise) here when ``GOVKIT_FAULT`` names this point and its count is reached.
    Several points may be named, comma-separated; other names are left to their owners
    (``file_rewrite:N`` is the file sources' own, inside a rewrite)."""
    spec = os.environ.get("GOVKIT_FAULT")
    if not spec:
        return
    for part in spec.split(","):
        point, _, rest = part.strip().partition(":")
        if point != name:
            continue
        count, _, mode = rest.partition(":")
        _hits[name] += 1
        if count.isdigit() and _hits[name] == int(count or 1):
            if mode == "raise":
                raise InjectedFault(f"fault injected at {name} (hit {_hits[name]})")
            os._exit(137)
