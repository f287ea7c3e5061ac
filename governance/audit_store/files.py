"""Files only their owner may read: the store, its key and anchor, reports, decrypted exports.

Everything govkit writes that holds findings, keys or personal data is created with mode
0600. DuckDB creates the store and its write-ahead log (``<store>.wal``) itself, so those
are created while the process umask is 0077 (``private_umask``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_MODE = 0o600

_umask_lock = threading.Lock()
_umask_depth = 0
_umask_saved = 0


@contextmanager
def private_umask() -> Iterator[None]:
    """Within this block, files this process creates are readable by their owner only.

    The umask is per process; nested and concurrent blocks (threads) share one change,
    restored when the last block ends, so it never loosens while a block is running.
    """
    global _umask_depth, _umask_saved
    with _umask_lock:
        if _umask_depth == 0:
            _umask_saved = os.umask(0o077)
        _umask_depth += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask_depth -= 1
            if _umask_depth == 0:
                os.umask(_umask_saved)


def write_private_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` (replaced atomically), the file readable by its owner only."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, PRIVATE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_private_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """``write_private_bytes`` of ``text``."""
    return write_private_bytes(path, text.encode(encoding))


@contextmanager
def held_exclusively(path: str | os.PathLike, waiting: Callable[[], None] | None = None
                     ) -> Iterator[None]:
    """Within this block, this process alone holds ``path``'s lock (an ``flock`` on the
    file, created private): another process wanting it waits (``waiting`` is called once
    first), and a process that dies lets it go. Hosts without ``flock`` hold nothing."""
    try:
        import fcntl
    except ImportError:       # not POSIX: no lock
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)          # releases the lock
