"""How fast could a run that creates its subjects' keys be, on this machine, with two
processes? An idealised pipeline, not govkit's (no resumability, no checks, no progress,
the whole table in memory), timed against the same raw AES-GCM baseline as
``bench/encryption.py``:

owners of every row found at once; the subjects fingerprinted and their keys made, wrapped,
checked and committed (in the background) by govkit's own calls; then a fork: each process
builds its ciphers and seals half the rows (grouped by key, as govkit does), the copy's
envelopes come back over a pipe as Arrow IPC, and the file is written.

    python bench/encryption_floor.py --rows 1000000 --subjects 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).parent))
from encryption import _estate, _raw_baseline

from governance.audit_store import AuditStore
from governance.crypto.field import (
    associated_data_column,
    encode_values,
    seal_encoded,
)
from governance.crypto.keystore import LocalKeyStore
from governance.encryption import SubjectKeys


def _pipeline(root: Path, keys: SubjectKeys) -> dict[str, float]:
    """Seconds since the start at the end of each phase."""
    t0, marks = time.perf_counter(), {}
    tab = pq.read_table(root / "data" / "cards.parquet")
    uniq, codes = np.unique(tab.column("customer_id").to_numpy(), return_inverse=True)
    marks["read, owners"] = time.perf_counter() - t0
    refs = keys.subject_refs([(("shop", "customers"), int(c)) for c in uniq.tolist()])
    marks["fingerprints"] = time.perf_counter() - t0
    with keys.deferred_commits() as settle:
        kids = keys.active_key_ids(refs, create=True)
        material = [keys._key[k] for k in kids]     # the keys' bytes, no cipher built yet
        marks["keys made"] = time.perf_counter() - t0
        kid_arr = np.empty(len(kids), object)
        kid_arr[:] = kids
        klen = np.fromiter(map(len, kids), np.int64, len(kids))

        def seal(lo: int, hi: int) -> pa.Array:
            ciphers = np.empty(len(material), object)
            ciphers[:] = list(map(AESGCM, material))
            addr = np.fromiter(map(id, ciphers), np.int64, len(ciphers))
            order = np.argsort(addr[codes[lo:hi]], kind="stable")
            rows = pa.array(order + lo)
            c = codes[lo:hi][order]
            out = seal_encoded(ciphers[c].tolist(), kid_arr[c].tolist(),
                               encode_values(tab.column("card").take(rows).combine_chunks()),
                               associated_data_column("shop", "cards", "card",
                                                      tab.column("id").take(rows)
                                                      .combine_chunks()),
                               True, key_id_lengths=klen[c])
            back = np.empty(len(order), np.int64)
            back[order] = np.arange(len(order))
            return out.take(pa.array(back))

        half = tab.num_rows // 2
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            sink = pa.BufferOutputStream()
            batch = pa.record_batch([seal(half, tab.num_rows)], names=["v"])
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            data = sink.getvalue().to_pybytes()
            view = memoryview(len(data).to_bytes(8, "little") + data)
            while view:
                view = view[os.write(w, view):]
            os._exit(0)
        os.close(w)
        mine = seal(0, half)
        marks["this half sealed"] = time.perf_counter() - t0
        size, chunks, got = int.from_bytes(os.read(r, 8), "little"), [], 0
        while got < size:
            chunks.append(os.read(r, min(size - got, 1 << 22)))
            got += len(chunks[-1])
        os.waitpid(pid, 0)
        os.close(r)
        theirs = pa.ipc.open_stream(pa.py_buffer(b"".join(chunks))).read_next_batch().column(0)
        marks["the copy's half received"] = time.perf_counter() - t0
        settle()
    out = tab.set_column(tab.schema.get_field_index("card"), "card",
                         pa.chunked_array([mine, theirs]))
    pq.write_table(out, root / "out.parquet", row_group_size=131_072)
    marks["file written"] = time.perf_counter() - t0
    return marks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--subjects", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _estate(root, args.rows, args.subjects)
        store = AuditStore(root / "audit.duckdb", create=True)
        ks = LocalKeyStore(os.urandom(32))
        # The baseline's keys live in a store of their own, so the pipeline creates its own.
        base = AuditStore(root / "baseline.duckdb", create=True)
        raw, _, n = min(_raw_baseline(root, SubjectKeys(base, ks), "cards2") for _ in range(3))
        marks = _pipeline(root, SubjectKeys(store, ks))
        print(f"raw AESGCM, {n:,} cells, table order: {raw:.2f} s (the fastest of three)")
        for phase, at in marks.items():
            print(f"  {phase:<26} at {at:5.2f} s")
        total = marks["file written"]
        print(f"idealised two-process run creating {args.subjects:,} keys: {total:.2f} s, "
              f"{100 * raw / total:.0f}% of raw")


if __name__ == "__main__":
    main()
