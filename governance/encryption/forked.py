"""A forked copy of this process that finishes the column-wise changes of some row groups
of a Parquet rewrite while this process does the others (two cores, twice the sealing).

This process reads those row groups and ``prepare``s them first (owners found, data keys
fetched or made and committed as usual), then forks. The copy inherits the prepared
batches and the ciphers, runs only ``ColumnWise.finish`` (CPU work: no store, no source,
no file written), and sends the changes back over a pipe as Arrow IPC, group by group.
Nothing secret crosses the pipe: only the changed cells (envelopes) and their masks.

If the copy fails, hangs or is killed, the groups it had not sent are finished here from
the same prepared batches: the output is the same either way, and the file is still
swapped in only at the end. ``GOVKIT_ENCRYPT_FORK=0`` turns the copy off.
"""

from __future__ import annotations

import gc
import os
import queue
import select
import signal
import struct
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from governance.encryption.writers import BatchChanges, ColumnWise
from governance.faults import fault_point

# A group the copy has not answered within this many seconds is finished here.
ANSWER_SECONDS = 120.0
FORK_MIN_ROWS = 100_000         # smaller files are not worth a fork
_FRAME = struct.Struct("<q")


def fork_wanted(groups: int, rows: int) -> bool:
    """Whether a forked copy is worth starting for a file of ``groups`` row groups."""
    if os.environ.get("GOVKIT_ENCRYPT_FORK", "1") == "0" or not hasattr(os, "fork"):
        return False
    return (os.cpu_count() or 1) >= 2 and groups >= 2 and rows >= FORK_MIN_ROWS


def _pack(changes: Sequence[BatchChanges], sizes: Sequence[int]) -> bytes:
    """The changes of a group's slices as Arrow IPC: per slice, a batch of a mask column
    and a full-length value column (null where unchanged) per changed column."""
    sink = pa.BufferOutputStream()
    sink.write(_FRAME.pack(len(changes)))
    for part, size in zip(changes, sizes, strict=True):
        arrays, names = [], []
        for c, (mask, values) in part.items():
            # Cell i: the next of ``values`` where the mask is set, else null.
            full = pa.concat_arrays([pa.nulls(size, values.type), values]).take(pa.array(
                np.where(mask, np.cumsum(mask) - 1 + size, np.arange(size))))
            arrays += [pa.array(mask), full]
            names += [f"m:{c}", f"v:{c}"]
        piece = pa.BufferOutputStream()
        batch = pa.record_batch(arrays, names=names) if arrays else \
            pa.record_batch([pa.nulls(size, pa.bool_())], names=["-"])
        with pa.ipc.new_stream(piece, batch.schema) as w:
            w.write_batch(batch)
        body = piece.getvalue()
        sink.write(_FRAME.pack(body.size))
        sink.write(body)
    return sink.getvalue().to_pybytes()


def _unpack(data: bytes) -> list[BatchChanges]:
    buf = pa.py_buffer(data)
    (count,), at = _FRAME.unpack_from(data, 0), _FRAME.size
    out: list[BatchChanges] = []
    for _ in range(count):
        (size,) = _FRAME.unpack_from(data, at)
        at += _FRAME.size
        batch = pa.ipc.open_stream(buf.slice(at, size)).read_next_batch()
        at += size
        part: BatchChanges = {}
        for name in batch.schema.names:
            if name.startswith("m:"):
                c = name[2:]
                mask = batch.column(name).to_numpy(zero_copy_only=False)
                part[c] = (mask, batch.column(f"v:{c}").filter(batch.column(name)))
        out.append(part)
    return out


def _die_with_parent() -> None:
    """Be killed when the process that forked this one dies (Linux), so that a copy never
    outlives it holding the file's lock."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)           # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:                        # the parent died before that
        os._exit(70)


def _keep_freed_memory() -> None:
    """In the copy: let glibc keep the memory it frees instead of handing it back, so that
    each row group's arrays reuse pages already touched (fresh pages fault one by one, and
    the copy lives only for its groups). Nothing happens on another C library."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 1 << 30)     # M_MMAP_THRESHOLD: large blocks from the heap, not mmap
    mallopt(-1, 1 << 31)     # M_TRIM_THRESHOLD: the heap's top is not given back


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, n: int, deadline: float) -> bytes | None:
    import time

    chunks, left = [], n
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            return None
        got = os.read(fd, min(left, 1 << 22))
        if not got:
            return None
        chunks.append(got)
        left -= len(got)
    return b"".join(chunks)


class ForkedGroups:
    """Row groups whose changes a forked copy of this process finishes (see the module)."""

    def __init__(self, transform: ColumnWise,
                 batches: dict[int, list[tuple[pa.Table, Any]]]):
        # group -> its slices: (the columns read, what prepare returned), in order.
        self.transform = transform
        self.batches = batches
        self.order = sorted(batches)
        self.pid: int | None = None
        self._fd: int | None = None
        self._answers: queue.Queue[tuple[int, bytes | None]] = queue.Queue(maxsize=4)
        self._reader: threading.Thread | None = None
        self._failed = False
        self._closing = threading.Event()
        self._froze = False

    def start(self) -> None:
        """Fork the copy (nothing happens when fork fails: every group is finished here)."""
        r, w = os.pipe()
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns that a fork of a threaded process may deadlock in the
                # copy: this one touches no lock of another thread's (no store, no file, no
                # logging), and one that hung would be killed and its groups made here.
                warnings.simplefilter("ignore", DeprecationWarning)
                # The objects made so far are left out of garbage collection in both
                # processes, so that a collection does not write to (and copy) every page
                # the two still share.
                self._froze = gc.get_freeze_count() == 0    # else the host froze some
                gc.freeze()
                pid = os.fork()
        except OSError:
            if self._froze:
                gc.unfreeze()
            os.close(r)
            os.close(w)
            self._failed = True
            return
        if pid == 0:   # the copy: finish its groups, send them, leave without clean-up
            code = 0
            try:
                gc.disable()            # short-lived: its garbage goes when it leaves
                _keep_freed_memory()
                os.close(r)
                _die_with_parent()
                for g in self.order:
                    fault_point("encrypt.forked_group")
                    parts = [self.transform.finish(data, prepared)
                             for data, prepared in self.batches[g]]
                    body = _pack(parts, [data.num_rows for data, _ in self.batches[g]])
                    _write_all(w, _FRAME.pack(g) + _FRAME.pack(len(body)) + body)
            except BaseException:
                code = 70
            os._exit(code)
        os.close(w)
        self.pid, self._fd = pid, r
        self._reader = threading.Thread(target=self._read, name="gk-forked-r", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        import time

        assert self._fd is not None
        for _ in self.order:
            deadline = time.monotonic() + ANSWER_SECONDS
            head = _read_exactly(self._fd, 2 * _FRAME.size, deadline)
            if head is None:
                break
            g, size = _FRAME.unpack_from(head, 0)[0], _FRAME.unpack_from(head, 8)[0]
            body = _read_exactly(self._fd, size, deadline)
            if body is None or not self._put((g, body)):
                break
        self._put((-1, None))

    def _put(self, item: tuple[int, bytes | None]) -> bool:
        """Queue an answer, waiting while the queue is full unless closing."""
        while not self._closing.is_set():
            try:
                self._answers.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def take(self, g: int) -> list[BatchChanges]:
        """The changes of group ``g``'s slices: the copy's, or made here if it failed."""
        while not self._failed and self._reader is not None:
            got, body = self._answers.get()
            if got == g and body is not None:
                try:
                    return _unpack(body)
                except (pa.ArrowException, struct.error, ValueError):
                    self._failed = True
                    break
            self._failed = True     # out of order, or the copy stopped
        return [self.transform.finish(data, prepared) for data, prepared in self.batches[g]]

    @property
    def failed(self) -> bool:
        """Whether the copy stopped before sending every group (they were made here)."""
        return self._failed

    def close(self) -> None:
        """Stop the copy if it still runs, and reap it."""
        self._closing.set()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None
            if self._froze:
                gc.unfreeze()
        if self._reader is not None:
            self._reader.join()     # the copy is gone: its pipe is at its end
            self._reader = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
