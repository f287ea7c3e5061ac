"""Who is doing a piece of work (a request run, a scan): this host and process, and whether
such a worker is gone."""

from __future__ import annotations

import os
import socket


def worker_id() -> str:
    """This host and process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_gone(worker: str) -> bool:
    """True when ``worker`` (``worker_id``, optionally after ``actor@``) ran on this host and
    its process no longer exists (it was killed); False when unsure (another host, or a
    process of that number exists)."""
    _, _, where = worker.rpartition("@")
    host, _, pid = where.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False   # it exists (another user's process)
    return False
