"""The access package: everything held about a subject (GDPR Art. 15 and 20, CCPA
1798.110, PIPL Art. 45), in a file the subject opens with common tools.

One file, ``<request>.zip``: a ZIP archive whose every member is encrypted with WinZip AES
(AE-2, AES-256), the encryption that 7-Zip, WinZip, WinRAR, macOS Archive Utility (and
``7z x`` on Linux) open when given the passphrase. It holds

- ``index.html``: a human-readable summary: what is held, where, why, how long, who
  receives it, where it came from, the subject's rights, and the data itself as tables;
- ``summary.json``: the same information, machine-readable (GDPR Art. 15(1) (a)-(h));
- ``manifest.json``: what was searched and what was found where (counts, no values);
- ``data/<source>/<table>.json``: the subject's rows.

Why it is safe to send: each member is AES-256 encrypted (CTR mode) and authenticated
(HMAC-SHA1) under a key derived with PBKDF2-HMAC-SHA1 from a random passphrase of 160
bits (``governance.crypto.aead.new_passphrase``), delivered to the subject separately.
WinZip AES's key derivation is fast (1,000 PBKDF2 rounds), which is why the passphrase
is random and long rather than chosen by a person: guessing 2^160 passphrases stays out
of reach however fast each guess is. Member names (``data/app_db/users.json``) are not
encrypted; they name tables, never values.

Information GDPR Art. 15(1) requires besides the data (purposes, recipients, retention,
source, automated decision-making) comes from the inventory where it declares it. The
inventory declares none of these fields today except retention bases (an ``erasure``
block's ``basis``) and descriptions; everything missing is written as "not declared in
the inventory" in the package, naming the source whose owner must supply it, and
listed for the operator (``missing_information``) with the owner's address.

Free text keeps the subject's own identities; other people's personal data in it is
masked. Rows found only through a free-text mention contribute that text, not the rest
of the row.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any

import pyzipper

from governance.audit_store.store import utcnow
from governance.crypto.aead import (
    PASSPHRASE_MAGIC,
    DecryptionError,
    new_passphrase,
    open_with_passphrase,
)
from governance.dsar.identities import Identity
from governance.dsar.redaction import keep_only_subject
from governance.dsar.resolution import FREE_TEXT, FoundBy, Resolution
from governance.errors import GovernanceError
from governance.inventory import Inventory
from governance.taxonomy import CATEGORIES

EXPORT_SUFFIX = ".zip"
HTML_ROWS = 200          # rows per table shown in index.html (all are in the JSON files)
NOT_DECLARED = "not declared in the inventory"

# What each law lets the subject do, and where to complain (GDPR Art. 15(1)(e)-(f)).
RIGHTS: dict[str, list[str]] = {
    "GDPR": [
        "Access to your personal data and to this information (Art. 15)",
        "Rectification of inaccurate data (Art. 16)",
        "Erasure (Art. 17)",
        "Restriction of processing (Art. 18)",
        "Data portability: this package's JSON files are machine-readable (Art. 20)",
        "Objection to processing, including direct marketing (Art. 21)",
        "Not to be subject to a decision based solely on automated processing (Art. 22)",
        "Withdrawal of consent at any time, where processing is based on consent (Art. 7(3))",
        "Lodging a complaint with a supervisory authority, in particular in the member state "
        "of your habitual residence, place of work or of the alleged infringement (Art. 77)",
    ],
    "CCPA": [
        "Know what personal information is collected, used and disclosed (1798.100, "
        "1798.110)",
        "Delete personal information (1798.105)",
        "Correct inaccurate personal information (1798.106)",
        "Opt out of the sale or sharing of personal information (1798.120)",
        "Limit the use of sensitive personal information (1798.121)",
        "Not be discriminated against for exercising these rights (1798.125)",
        "Complain to the California Privacy Protection Agency or the Attorney General",
    ],
    "PIPL": [
        "Know and decide on the processing, restrict or refuse it (Art. 44)",
        "Consult and copy your personal information, and have it transferred (Art. 45)",
        "Correction and completion (Art. 46)",
        "Deletion (Art. 47)",
        "Explanation of the processing rules (Art. 48)",
        "Refuse decisions made solely by automated decision-making that significantly "
        "affect your rights (Art. 24)",
        "Complain to or report to the departments performing personal information "
        "protection duties (Art. 65)",
    ],
}

# GDPR Art. 15(1) information, per table: key -> heading shown to the subject.
ART15_FIELDS = {
    "purposes": "Purposes of the processing (Art. 15(1)(a))",
    "recipients": "Recipients or categories of recipients (Art. 15(1)(c))",
    "retention": "Retention period or the criteria for it (Art. 15(1)(d))",
    "source_of_data": "Where the data came from, if not from you (Art. 15(1)(g))",
    "automated_decision_making": "Automated decision-making, including profiling "
                                 "(Art. 15(1)(h))",
    "third_country_transfers": "Transfers to third countries and their safeguards "
                               "(Art. 15(2))",
}


class ExportError(GovernanceError):
    """An access export cannot be written, read or unpacked."""


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


def _table_information(inventory: Inventory | None, source: str, table: str
                       ) -> dict[str, str]:
    """The Art. 15(1) information the inventory declares for one table; what it does not
    declare reads NOT_DECLARED, naming the source whose owner must supply it."""
    missing = f"{NOT_DECLARED}; ask the owner of source {source!r}"
    info = {key: missing for key in ART15_FIELDS}
    info["description"] = missing
    if inventory is None:
        return info
    try:
        src = inventory.source(source)
    except (KeyError, GovernanceError):
        return info
    decl = src.table(table)
    description = (decl.description if decl is not None else None) or src.description
    if description:
        info["description"] = description
    if decl is not None and decl.erasure.basis:
        kept = ("kept after an erasure request with your personal data removed"
                if decl.erasure.action == "anonymize" else "deleted on an erasure request")
        info["retention"] = f"{decl.erasure.basis} ({kept})"
    return info


def missing_information(inventory: Inventory | None,
                        tables: Sequence[tuple[str, str]]) -> list[str]:
    """For the operator: which Art. 15(1) information the inventory does not declare for
    ``tables`` (source, table), and whom to ask (the source's owner)."""
    out = []
    for source, table in tables:
        info = _table_information(inventory, source, table)
        gaps = [key for key, value in info.items() if value.startswith(NOT_DECLARED)]
        if not gaps:
            continue
        owner = "the source's owner"
        if inventory is not None:
            try:
                owner = inventory.source(source).owner
            except (KeyError, GovernanceError):
                pass
        out.append(f"{source}.{table}: {', '.join(gaps)} {NOT_DECLARED}; ask {owner}")
    return out


def build_package(request_id: str, law: str, identities: Sequence[Identity],
                  resolution: Resolution, inventory: Inventory | None = None,
                  decrypt: Callable[[dict], dict] | None = None) -> tuple[bytes, dict]:
    """The access package as the bytes of an unencrypted ZIP held in memory (encrypt it
    with ``write_export``), and its manifest. With ``inventory``, the package carries what
    it declares of the Art. 15(1) information; the manifest returned (not the one in the
    package) also lists what is missing, for the operator (``not_declared``)."""
    categories = resolution.categories
    man = manifest(request_id, law, identities, resolution)
    tables = package_rows(resolution, identities)
    if decrypt is not None:  # cells sealed by field encryption, opened (and logged)
        tables = decrypt(tables)
        # Free text opened just now is masked as clear free text was (third parties' data
        # in it), which package_rows could not see through the envelope.
        tables = {(s, t): [{k: _free_text(v, identities)
                            if FREE_TEXT in categories.get((s, t, k), set()) else v
                            for k, v in row.items()} for row in rows]
                  for (s, t), rows in tables.items()}
    organization = inventory.organization if inventory is not None else None
    summary: dict[str, Any] = {
        "request_id": request_id, "law": law, "controller": organization or NOT_DECLARED,
        "generated_at": man["generated_at"], "tables": [],
        "rights": RIGHTS.get(law, RIGHTS["GDPR"]),
    }
    files: dict[str, bytes] = {}
    for (source, table), rows in sorted(tables.items()):
        held = sorted({c for row in rows for col in row
                       for c in categories.get((source, table, col), set())})
        path = f"data/{source}/{table}.json"
        entry = {"source": source, "table": table, "rows": len(rows),
                 "categories": {c: CATEGORIES[c].description if c in CATEGORIES else c
                                for c in held},
                 "file": path,
                 **_table_information(inventory, source, table)}
        summary["tables"].append(entry)
        files[path] = _json(rows)
    man["exported_rows"] = sum(t["rows"] for t in summary["tables"])
    files["manifest.json"] = _json(man)
    files["summary.json"] = _json(summary)
    files["index.html"] = render_html(summary, tables).encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ["index.html", "summary.json", "manifest.json",
                     *sorted(n for n in files if n.startswith("data/"))]:
            z.writestr(name, files[name])
    returned = dict(man)
    returned["not_declared"] = missing_information(inventory, sorted(tables))
    return buf.getvalue(), returned


def _plain(value: Any) -> Any:
    """A value JSON cannot hold as it is: bytes as their base64 text (marked, so that an
    image reads back as the same bytes, not as Python's repr), anything else as text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return str(value)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=_plain).encode("utf-8")


def render_html(summary: dict[str, Any],
                tables: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    """The human-readable summary of the package (self-contained HTML, no scripts)."""
    e = html.escape
    who = summary["controller"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Your personal data: {e(summary['request_id'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;"
        "padding:0 1em;line-height:1.45}table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "td,th{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}"
        "th{background:#eee}.missing{color:#a40}</style></head><body>",
        "<h1>The personal data we hold about you</h1>",
        f"<p>Controller: {e(str(who))}. Request {e(summary['request_id'])} "
        f"({e(summary['law'])}), prepared {e(summary['generated_at'][:10])}. "
        "The same information is in <code>summary.json</code>, and your data in the "
        "<code>data/</code> folder as JSON files you can take to another service.</p>",
        "<h2>Overview</h2><table><tr><th>Where</th><th>Records</th><th>Kinds of data "
        "(Art. 15(1)(b))</th></tr>",
    ]
    for t in summary["tables"]:
        cats = ", ".join(t["categories"].values()) or "-"
        parts.append(f"<tr><td>{e(t['source'])} / {e(t['table'])}</td><td>{t['rows']}</td>"
                     f"<td>{e(cats)}</td></tr>")
    parts.append("</table>")
    for t in summary["tables"]:
        parts.append(f"<h2>{e(t['source'])} / {e(t['table'])}</h2><dl>")
        for key, heading in [("description", "What this is"), *ART15_FIELDS.items()]:
            value = str(t[key])
            css = ' class="missing"' if value.startswith(NOT_DECLARED) else ""
            parts.append(f"<dt><b>{e(heading)}</b></dt><dd{css}>{e(value)}</dd>")
        parts.append(f"</dl><p>{t['rows']} record(s); file <code>{e(t['file'])}</code>"
                     "</p>")
        rows = tables.get((t["source"], t["table"]), [])
        columns = list(dict.fromkeys(c for row in rows for c in row))
        if rows:
            parts.append("<table><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in columns)
                         + "</tr>")
            for row in rows[:HTML_ROWS]:
                parts.append("<tr>" + "".join(
                    f"<td>{e('' if row.get(c) is None else str(row.get(c)))}</td>"
                    for c in columns) + "</tr>")
            parts.append("</table>")
            if len(rows) > HTML_ROWS:
                parts.append(f"<p>The first {HTML_ROWS} of {len(rows)} records are shown; "
                             f"all are in <code>{e(t['file'])}</code>.</p>")
    parts.append(f"<h2>Your rights ({e(summary['law'])})</h2><ul>")
    parts += [f"<li>{e(r)}</li>" for r in summary["rights"]]
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def write_export(path: Path, package: bytes) -> str:
    """Write ``package`` (the ZIP of ``build_package``) to ``path`` as a ZIP whose every
    member is AES-256 encrypted (WinZip AES) under a new random passphrase, created with
    mode 0600; returns the passphrase."""
    passphrase = new_passphrase()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w+b") as f, zipfile.ZipFile(io.BytesIO(package)) as plain, \
                pyzipper.AESZipFile(f, "w", compression=pyzipper.ZIP_DEFLATED,
                                    encryption=pyzipper.WZ_AES) as z:
            z.setpassword(passphrase.encode())
            z.setencryption(pyzipper.WZ_AES, nbits=256)
            for name in plain.namelist():
                z.writestr(name, plain.read(name))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return passphrase


def read_export(path: Path, passphrase: str) -> dict[str, bytes]:
    """The files of an access export, by name, as bytes; DecryptionError on a wrong
    passphrase. Also opens exports of earlier versions (``GOVKIT-SEALED-1``)."""
    data = Path(path).read_bytes()
    if data.startswith(PASSPHRASE_MAGIC):
        data = open_with_passphrase(passphrase, data, what=str(path))
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {name: z.read(name) for name in z.namelist()}
    try:
        with pyzipper.AESZipFile(io.BytesIO(data)) as z:
            z.setpassword(passphrase.encode())
            out = {}
            for info in z.infolist():
                if not info.flag_bits & 0x1:
                    raise ExportError(f"{path}: member {info.filename!r} is not encrypted; "
                                      "not a govkit access export")
                out[info.filename] = z.read(info)
            return out
    except RuntimeError as e:
        if "password" in str(e).lower():
            raise DecryptionError(f"{path}: wrong passphrase") from None
        raise ExportError(f"{path}: cannot be read ({e})") from None
    except (zipfile.BadZipFile, pyzipper.BadZipFile, EOFError) as e:
        raise ExportError(f"{path}: not a readable ZIP archive ({e})") from None


def open_export(path: Path, passphrase: str) -> dict[str, Any]:
    """The files of an access export, by name: JSON files decoded, others as text."""
    return {name: json.loads(content) if name.endswith(".json") else content.decode("utf-8")
            for name, content in read_export(path, passphrase).items()}


def extract_export(path: Path, passphrase: str, out_dir: Path) -> list[Path]:
    """Decrypt an access export into ``out_dir``: folders 0700, files 0600 (readable by
    their owner only); a member name leaving ``out_dir`` is refused and nothing is written."""
    files = read_export(path, passphrase)
    root = Path(out_dir).resolve()
    targets = {}
    for name in files:
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ExportError(f"{path}: member {name!r} would be written outside {out_dir}")
        targets[name] = root.joinpath(*rel.parts)
    written = []
    for name, target in targets.items():
        _mkdirs_private(root, target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)   # an existing file keeps no wider mode
            f.write(files[name])
        written.append(target)
    return written


def _mkdirs_private(root: Path, folder: Path) -> None:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        if not current.exists():
            current.mkdir(mode=0o700)
