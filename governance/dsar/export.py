"""The access package: everything held about a subject, machine-readable (GDPR Art. 15
and 20, CCPA 1798.110, PIPL Art. 45), encrypted for delivery.

One file, ``<request>.govkit-export``: a ZIP of ``manifest.json`` (what was searched and
what was found where), ``summary.json`` (categories and row counts per table) and
``data/<source>/<table>.json`` (the rows), sealed with AES-256-GCM under a key derived
from a random passphrase (scrypt). Free text keeps the subject's own identities; other
people's personal data in it is masked. Rows found only through a free-text mention
contribute that text, not the rest of the row.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from governance.audit_store.store import utcnow
from governance.crypto.aead import new_passphrase, open_with_passphrase, seal_with_passphrase
from governance.dsar.identities import Identity
from governance.dsar.redaction import keep_only_subject
from governance.dsar.resolution import FREE_TEXT, FoundBy, Resolution
from governance.taxonomy import CATEGORIES

EXPORT_SUFFIX = ".govkit-export"


def manifest(request_id: str, law: str, identities: Sequence[Identity],
             resolution: Resolution) -> dict[str, Any]:
    """What was searched and what was found where (counts and places, no values)."""
    return {
        "request_id": request_id,
        "law": law,
        "generated_at": utcnow().isoformat(),
        "identities": [i.masked() for i in identities],
        "searched": [asdict(s) for s in resolution.searched],
        "found": [{"source": loc.source, "table": loc.table, "found_by": loc.found_by.value,
                   "match_column": loc.match_column, "via": loc.via, "rows": len(loc.rows)}
                  for loc in resolution.locations],
        "unreachable_sources": resolution.unreachable,
        "categories_from_scan_runs": resolution.findings_run,
    }


def package_rows(resolution: Resolution, identities: Sequence[Identity]
                 ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The subject's rows per table, each once, with third parties masked in free text."""
    categories = resolution.categories
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (source, table), locations in resolution.tables().items():
        seen: set[str] = set()
        rows: list[dict[str, Any]] = []
        own = [loc for loc in locations if loc.found_by is not FoundBy.FREE_TEXT]
        mentions = [loc for loc in locations if loc.found_by is FoundBy.FREE_TEXT]
        for loc in [*own, *mentions]:
            for row in loc.rows:
                if loc.found_by is FoundBy.FREE_TEXT and any(
                        r.get(loc.match_column) == row[loc.match_column]
                        for o in own for r in o.rows):
                    continue  # the text is in one of the subject's own rows already
                row = {k: _free_text(v, identities)
                       if FREE_TEXT in categories.get((source, table, k), set()) else v
                       for k, v in row.items()}
                key = json.dumps(row, sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    rows.append(row)
        out[(source, table)] = rows
    return out


def _free_text(value: Any, identities: Sequence[Identity]) -> Any:
    return keep_only_subject(value, identities) if isinstance(value, str) else value


def build_package(request_id: str, law: str, identities: Sequence[Identity],
                  resolution: Resolution) -> tuple[bytes, dict]:
    """The ZIP bytes of the access package, and its manifest."""
    categories = resolution.categories
    man = manifest(request_id, law, identities, resolution)
    tables = package_rows(resolution, identities)
    summary = {"request_id": request_id, "tables": []}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for (source, table), rows in sorted(tables.items()):
            held = sorted({c for col in (rows[0] if rows else {})
                           for c in categories.get((source, table, col), set())})
            summary["tables"].append({
                "source": source, "table": table, "rows": len(rows),
                "categories": {c: CATEGORIES[c].description for c in held if c in CATEGORIES},
                "file": f"data/{source}/{table}.json"})
            z.writestr(f"data/{source}/{table}.json",
                       json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        man["exported_rows"] = sum(t["rows"] for t in summary["tables"])
        z.writestr("manifest.json", json.dumps(man, ensure_ascii=False, indent=2))
        z.writestr("summary.json", json.dumps(summary, ensure_ascii=False, indent=2))
    return buf.getvalue(), man


def write_export(path: Path, package: bytes) -> str:
    """Encrypt ``package`` to ``path`` under a new passphrase, and return the passphrase."""
    passphrase = new_passphrase()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(seal_with_passphrase(passphrase, package))
    os.replace(tmp, path)
    return passphrase


def open_export(path: Path, passphrase: str) -> dict[str, Any]:
    """The files of an access package, by name (JSON decoded)."""
    data = open_with_passphrase(passphrase, path.read_bytes(), what=str(path))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: json.loads(z.read(name)) for name in z.namelist()}
