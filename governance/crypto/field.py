"""The envelope of one encrypted cell: AES-256-GCM under a data subject's data key.

An envelope names its format version and the data key it is sealed under, so a cell
describes itself:

- text form (text columns, CSV, JSON lines): ``gk1:<key id>:<base64url(nonce || ct || tag)>``
- bytes form (BLOB / BYTEA / binary columns): ``b"GK\\x01" || len(key id) || key id ||
  nonce || ct || tag``

The plaintext carries a one-byte type tag (text, integer, float, bytes, other as JSON
text), so a value decrypts to what was encrypted. The associated data binds the cell to
its place: source, table, column and the row's key. A ciphertext copied to another row or
column does not decrypt (``EnvelopeError``); nor does one whose bytes were altered.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.errors import GovernanceError

TEXT_PREFIX = "gk1:"
BYTES_PREFIX = b"GK\x01"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_RE = re.compile(r"^[a-z]{2,8}-[0-9a-f]{8,64}$")
_TEXT_RE = re.compile(r"^gk1:([a-z]{2,8}-[0-9a-f]{8,64}):([A-Za-z0-9_-]+)$")


class EnvelopeError(GovernanceError):
    """A cell is not a valid envelope, or it does not decrypt in its place (wrong key,
    moved to another row or column, or altered)."""


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: the data key it names and the nonce || ciphertext || tag."""

    key_id: str
    body: bytes
    text: bool


def row_key_text(value: Any) -> str:
    """The canonical text of a row's key (a composite key's parts joined by U+001F)."""
    if isinstance(value, list | tuple):
        return "\x1f".join(row_key_text(v) for v in value)
    if isinstance(value, bytes):
        return value.hex()
    return "" if value is None else str(value)


def aad_prefix(source: str, table: str, column: str) -> bytes:
    """The part of the associated data shared by every cell of one column (names are plain
    identifiers: they never hold the NUL separator)."""
    return f"gk1\x00{source}\x00{table}\x00{column}\x00".encode()


def associated_data(source: str, table: str, column: str, row_key: Any) -> bytes:
    """What binds a cell's ciphertext to its place: source, table, column, row key."""
    return aad_prefix(source, table, column) + row_key_text(row_key).encode(
        "utf-8", "surrogatepass")


def _encode(value: Any) -> bytes:
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, bool):
        return b"j" + json.dumps(value).encode()
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, float):
        return b"f" + repr(value).encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return b"b" + bytes(value)
    return b"j" + json.dumps(value, default=str, ensure_ascii=False).encode()


def _decode(data: bytes) -> Any:
    tag, body = data[:1], data[1:]
    if tag == b"s":
        return body.decode("utf-8", "surrogatepass")
    if tag == b"i":
        return int(body)
    if tag == b"f":
        return float(body)
    if tag == b"b":
        return body
    if tag == b"j":
        return json.loads(body)
    raise EnvelopeError("envelope holds an unknown value type")


def seal_cell(aead: AESGCM, key_id: str, value: Any, aad: bytes, text: bool = True,
              nonce: bytes | None = None) -> str | bytes:
    """The envelope of ``value`` under the data key ``key_id`` (``aead`` holds it)."""
    n = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    body = n + aead.encrypt(n, _encode(value), aad)
    if text:
        return f"{TEXT_PREFIX}{key_id}:{base64.urlsafe_b64encode(body).rstrip(b'=').decode()}"
    kid = key_id.encode()
    return BYTES_PREFIX + bytes([len(kid)]) + kid + body


def looks_sealed(value: Any) -> bool:
    """Whether ``value`` has the shape of an envelope (cheap; no key involved)."""
    if isinstance(value, str):
        return value.startswith(TEXT_PREFIX)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value[:3]) == BYTES_PREFIX
    return False


def parse(value: Any) -> Envelope:
    """The envelope in ``value``; EnvelopeError when it is not one (or is truncated)."""
    if isinstance(value, str):
        m = _TEXT_RE.match(value)
        if not m:
            raise EnvelopeError("not a govkit envelope (text form)")
        try:
            body = base64.urlsafe_b64decode(m.group(2) + "=" * (-len(m.group(2)) % 4))
        except (binascii.Error, ValueError):
            raise EnvelopeError("envelope body is not base64") from None
        env = Envelope(m.group(1), body, True)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if raw[:3] != BYTES_PREFIX or len(raw) < 4:
            raise EnvelopeError("not a govkit envelope (bytes form)")
        n = raw[3]
        kid = raw[4:4 + n].decode("ascii", "replace")
        if not KEY_ID_RE.match(kid):
            raise EnvelopeError("envelope names a malformed key id")
        env = Envelope(kid, raw[4 + n:], False)
    else:
        raise EnvelopeError("not a govkit envelope")
    if len(env.body) < NONCE_BYTES + TAG_BYTES + 1:
        raise EnvelopeError("envelope is truncated")
    return env


def open_cell(aead: AESGCM, envelope: Envelope, aad: bytes) -> Any:
    """The value sealed in ``envelope``; EnvelopeError if it was altered, moved or the key
    is not its key."""
    nonce, ct = envelope.body[:NONCE_BYTES], envelope.body[NONCE_BYTES:]
    try:
        return _decode(aead.decrypt(nonce, ct, aad))
    except InvalidTag:
        raise EnvelopeError(f"envelope under {envelope.key_id} does not decrypt here "
                            "(altered, moved to another row or column, or wrong key)") from None


def seal_many(aead_for: Sequence[AESGCM], key_ids: Sequence[str], values: Sequence[Any],
              aads: Sequence[bytes], text: bool = True) -> list[str | bytes]:
    """``seal_cell`` over parallel lists (one random nonce each)."""
    if not values:
        return []
    sealed = seal_encoded(aead_for, key_ids, [_encode(v) for v in values], aads, text)
    return sealed.to_pylist()


# -- whole columns at once ---------------------------------------------------------------
#
# The same envelopes as ``seal_cell``, built for a batch of cells: the plaintexts' type
# tags and the associated data come from Arrow kernels, one ``os.urandom`` call gives every
# nonce of the batch (12 distinct bytes per cell), AES-GCM runs once per cell, and the
# envelopes are assembled (and base64url-encoded) as byte matrices with numpy.

_VECTOR_KEY_TYPES = (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string)
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64_rows(mat: np.ndarray) -> np.ndarray:
    """The unpadded base64url text of each row of a (rows, n) uint8 matrix."""
    rows, n = mat.shape
    pad = -n % 3
    if pad:
        mat = np.concatenate([mat, np.zeros((rows, pad), np.uint8)], axis=1)
    return _b64_padded_rows(np.ascontiguousarray(mat).data, rows, n)


def _b64_padded_rows(data: bytes | memoryview, rows: int, n: int) -> np.ndarray:
    """The unpadded base64url text of ``rows`` records of ``n`` bytes each, laid end to end
    in ``data``, each zero-padded to a multiple of 3 bytes: one base64 pass over the whole
    buffer encodes every record on its own, and the characters that encode the padding are
    cut off."""
    text = binascii.b2a_base64(data, newline=False).translate(_URLSAFE)
    return np.frombuffer(text, np.uint8).reshape(rows, -1)[:, :(4 * n + 2) // 3]


def _pick(items: Sequence[Any], at: np.ndarray) -> Sequence[Any]:
    if len(at) == len(items):
        return items
    got = operator.itemgetter(*at.tolist())(items)
    return (got,) if len(at) == 1 else got


def _matrix(parts: list[np.ndarray], text: bool) -> pa.Array:
    mat = np.ascontiguousarray(np.concatenate(parts, axis=1))
    rows, width = mat.shape
    offsets = np.arange(rows + 1, dtype=np.int64) * width
    if offsets[-1] < 2 ** 31:
        typ, offsets = (pa.string() if text else pa.binary()), offsets.astype(np.int32)
    else:
        typ = pa.large_string() if text else pa.large_binary()
    return pa.Array.from_buffers(typ, rows, [None, pa.py_buffer(offsets), pa.py_buffer(mat)])


def seal_encoded(aead_for: Sequence[AESGCM], key_ids: Sequence[str],
                 plaintexts: Sequence[bytes] | pa.Array, aads: Sequence[bytes],
                 text: bool = True, nonces: bytes | None = None,
                 key_id_lengths: np.ndarray | None = None) -> pa.Array:
    """The envelopes (an Arrow string array, or binary for the bytes form) of plaintexts
    already type-tagged (``encode_values``), cell i under ``aead_for[i]`` (data key
    ``key_ids[i]``, ``key_id_lengths[i]`` characters when given) bound to ``aads[i]``.
    Each cell gets its own random nonce; ``nonces`` (12 bytes per cell) exists only for
    tests that compare with ``seal_cell``."""
    ct_len: np.ndarray | None = None
    if isinstance(plaintexts, pa.Array):
        ct_len = pc.binary_length(plaintexts).to_numpy(zero_copy_only=False).astype(
            np.int64) + TAG_BYTES
        plaintexts = plaintexts.to_pylist()
    n = len(plaintexts)
    if not (len(aead_for) == len(key_ids) == len(aads) == n):
        raise ValueError("seal_encoded: parallel sequences of different lengths")
    if n == 0:
        return pa.array([], pa.string() if text else pa.binary())
    nonce_buf = os.urandom(NONCE_BYTES * n) if nonces is None else nonces
    if len(nonce_buf) != NONCE_BYTES * n:
        raise ValueError("seal_encoded: 12 nonce bytes per cell")
    nonce_list = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(NONCE_BYTES), n, [None, pa.py_buffer(nonce_buf)]).cast(pa.binary()).to_pylist()
    cts = list(map(AESGCM.encrypt, aead_for, nonce_list, plaintexts, aads))
    nonce_mat = np.frombuffer(nonce_buf, np.uint8).reshape(n, NONCE_BYTES)
    if ct_len is None:
        ct_len = np.fromiter(map(len, cts), np.int64, n)
    kid_len = np.fromiter(map(len, key_ids), np.int64, n) if key_id_lengths is None \
        else key_id_lengths.astype(np.int64)
    if kid_len.max() > 255:
        raise EnvelopeError("a data key id is at most 255 characters")
    group_of = kid_len * (1 << 32) + ct_len
    if group_of.min() == group_of.max():
        kinds, inverse = group_of[:1], np.zeros(n, np.int64)
    else:
        kinds, inverse = np.unique(group_of, return_inverse=True)
    pieces, order = [], []
    for g, kind in enumerate(kinds):
        at = np.arange(n) if len(kinds) == 1 else np.flatnonzero(inverse == g)
        m, klen, clen = len(at), int(kind >> 32), int(kind & 0xFFFFFFFF)
        # Each body (nonce || ciphertext || tag) a row, zero-padded to a multiple of 3
        # bytes for the text form.
        pad = -(NONCE_BYTES + clen) % 3 if text else 0
        bodies = np.zeros((m, NONCE_BYTES + clen + pad), np.uint8)
        bodies[:, :NONCE_BYTES] = nonce_mat if len(kinds) == 1 else nonce_mat[at]
        bodies[:, NONCE_BYTES:NONCE_BYTES + clen] = np.frombuffer(
            b"".join(_pick(cts, at)), np.uint8).reshape(m, clen)
        try:
            kid_bytes = "".join(_pick(key_ids, at)).encode("ascii")
        except UnicodeEncodeError:
            raise EnvelopeError("a data key id must be ASCII") from None
        kid = np.frombuffer(kid_bytes, np.uint8).reshape(m, klen)
        if text:
            parts = [np.broadcast_to(np.frombuffer(TEXT_PREFIX.encode(), np.uint8), (m, 4)),
                     kid, np.broadcast_to(np.frombuffer(b":", np.uint8), (m, 1)),
                     _b64_padded_rows(bodies.data, m, NONCE_BYTES + clen)]
        else:
            parts = [np.broadcast_to(np.frombuffer(BYTES_PREFIX + bytes([klen]), np.uint8),
                                     (m, 4)), kid,
                     bodies]
        pieces.append(_matrix(parts, text))
        order.append(at)
    if len(pieces) == 1:
        return pieces[0]
    typ = pa.large_string() if text else pa.large_binary()
    joined = pa.concat_arrays([p.cast(typ) for p in pieces])
    back = np.empty(n, np.int64)
    back[np.concatenate(order)] = np.arange(n)
    out = joined.take(pa.array(back))
    small = pa.string() if text else pa.binary()
    return out.cast(small) if sum(p.nbytes for p in pieces) < 2 ** 31 else out


def encode_values(values: pa.Array) -> pa.Array:
    """``_encode`` of each (non-null) value of an Arrow array: the type-tagged plaintexts,
    as a binary array."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.binary_join_element_wise("s", values, "").cast(pa.large_binary())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.binary_join_element_wise(pa.scalar(b"b", t), values, pa.scalar(b"", t)
                                           ).cast(pa.large_binary())
    return pa.array([_encode(v) for v in values.to_pylist()], pa.large_binary())


def associated_data_column(source: str, table: str, column: str, row_keys: pa.Array
                           ) -> list[bytes]:
    """``associated_data`` of each row key of an Arrow array (one column's cells)."""
    prefix = aad_prefix(source, table, column)
    if any(is_(row_keys.type) for is_ in _VECTOR_KEY_TYPES):
        text = row_keys.cast(pa.large_string()).cast(pa.large_binary())
        return pc.binary_join_element_wise(pa.scalar(prefix, pa.large_binary()), text,
                                           pa.scalar(b"", pa.large_binary()),
                                           null_handling="replace", null_replacement=b""
                                           ).to_pylist()
    return [prefix + row_key_text(v).encode("utf-8", "surrogatepass")
            for v in row_keys.to_pylist()]
