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
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    nonces = os.urandom(NONCE_BYTES * len(values))
    out: list[str | bytes] = []
    for i, (a, kid, v, ad) in enumerate(zip(aead_for, key_ids, values, aads, strict=True)):
        out.append(seal_cell(a, kid, v, ad, text, nonces[i * NONCE_BYTES:(i + 1) * NONCE_BYTES]))
    return out
