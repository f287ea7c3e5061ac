"""Reports rendered from the audit store (never from the sources: masked data only).

A report covers either one scan run, or the latest findings of every source: Dagster scans
each source in a run of its own, so "the latest scan" alone would show one source.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from governance.audit_store import AuditStore
from governance.errors import GovernanceError
from governance.taxonomy import is_sensitive

_ATTENTION = ("undeclared_table_pii", "undeclared_pii", "category_mismatch",
              "declared_not_detected")
_UNDECLARED = ("undeclared_pii", "undeclared_table_pii")
# Runs whose recorded findings count: a partial run recorded the sources it could read.
_USABLE = ("succeeded", "partial")


class UnknownScanRunError(GovernanceError):
    """A scan run id that is not in the audit store."""


@dataclass(frozen=True)
class FindingSet:
    """Findings selected from the audit store: one run's, or each source's latest."""

    title: str
    runs: dict[str, dict[str, Any]]        # source -> its scan_runs row
    findings: list[dict[str, Any]]
    tables: list[dict[str, Any]]

    @property
    def run_ids(self) -> list[str]:
        """The scan runs the findings come from, oldest first."""
        rows = sorted({r["run_id"]: r for r in self.runs.values()}.values(),
                      key=lambda r: (r["started_at"], r["run_id"]))
        return [r["run_id"] for r in rows]


def run_findings(store: AuditStore, run_id: str) -> FindingSet:
    """The findings of scan run ``run_id``; UnknownScanRunError if there is none."""
    runs = store.query("SELECT * FROM scan_runs WHERE run_id = ?", [run_id])
    if not runs:
        raise UnknownScanRunError(f"no scan run {run_id!r} in audit store {store.path} "
                                  "(`govkit scans` lists them)")
    run = runs[0]
    return FindingSet(f"PII discovery scan {run_id}", {s: run for s in run["sources"]},
                      store.findings(run_id), store.tables(run_id))


def latest_findings(store: AuditStore) -> FindingSet:
    """The latest recorded findings of every source, each from its own newest usable run.

    Raises GovernanceError when no scan run recorded any source yet.
    """
    rows = store.query(
        "SELECT t.source, r.* FROM (SELECT DISTINCT run_id, source FROM source_tables) t "
        "JOIN scan_runs r USING (run_id) WHERE r.status IN ('succeeded', 'partial') "
        "QUALIFY row_number() OVER (PARTITION BY t.source "
        "ORDER BY r.started_at DESC, r.run_id DESC) = 1 ORDER BY t.source")
    if not rows:
        raise GovernanceError(f"no completed scan run in {store.path}; run `govkit scan` first")
    runs = {r.pop("source"): r for r in rows}
    findings: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    for run_id in {r["run_id"] for r in runs.values()}:
        findings += [f for f in store.findings(run_id) if runs[f["source"]]["run_id"] == run_id]
        tables += [t for t in store.tables(run_id) if runs[t["source"]]["run_id"] == run_id]
    findings.sort(key=lambda f: (f["source"], f["table_name"], f["column_name"]))
    tables.sort(key=lambda t: (t["source"], t["table_name"]))
    return FindingSet("Latest PII findings of every source", runs, findings, tables)


def scan_runs_summary(store: AuditStore, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` scan runs with their column counts, newest first."""
    return store.query(
        "SELECT r.run_id, r.started_at, r.finished_at, r.status, r.mode, r.sources, "
        "r.sample_rows, r.seed, r.orchestrator_run_id, r.error, "
        "count(f.column_name) AS columns, "
        "count(f.column_name) FILTER (WHERE f.detected_category IS NOT NULL "
        "  OR f.declared_category IS NOT NULL) AS personal_columns, "
        "count(f.column_name) FILTER (WHERE f.status IN ('undeclared_pii', "
        "  'undeclared_table_pii')) AS undeclared_personal_columns "
        "FROM scan_runs r LEFT JOIN column_findings f USING (run_id) "
        "GROUP BY ALL ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?", [limit])


def jsonable(value: Any) -> Any:
    """``value`` with dates as ISO text and nested containers converted, for json.dumps."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def finding_json(row: dict[str, Any]) -> dict[str, Any]:
    """A column finding as a JSON object, its evidence an object rather than JSON text."""
    out = jsonable(dict(row))
    if isinstance(out.get("evidence"), str):
        out["evidence"] = json.loads(out["evidence"])
    return out


# ---------------------------------------------------------------------- Markdown

# Characters that can start inline Markdown (emphasis, code, links, HTML, tables,
# strikethrough, entities); block syntax cannot start inside a table cell or list item.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md_text(value: object) -> str:
    """``value`` as Markdown text that renders literally (``6****18`` stays digits and
    stars, never emphasis); on one line."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(value: object) -> str:
    """``value`` as an inline code span, fenced so that a backtick inside stays literal."""
    text = " ".join(str(value).split())
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _row(values: list[object]) -> str:
    return "| " + " | ".join(md_text(v) for v in values) + " |"


def _place(*parts: object) -> str:
    return md_code(".".join(str(p) for p in parts))


def findings_markdown(selected: FindingSet) -> str:
    """A Markdown report of ``selected``: what needs attention first, then every column."""
    findings, tables = selected.findings, selected.tables
    personal = [f for f in findings if f["detected_category"] or f["declared_category"]]
    statuses = Counter(f["status"] for f in findings)
    lines = [f"# {md_text(selected.title)}", "", "## Scan runs", "",
             "| run | started | status | mode | sources of this report |",
             "|---|---|---|---|---|"]
    for run_id in selected.run_ids:
        run = next(r for r in selected.runs.values() if r["run_id"] == run_id)
        mode = run["mode"] + (f", {run['sample_rows']} rows per table (seed {run['seed']})"
                              if run["sample_rows"] else "")
        lines.append(_row([run_id, f"{run['started_at']:%Y-%m-%d %H:%M:%S %Z}",
                           run["status"], mode,
                           ", ".join(s for s, r in sorted(selected.runs.items())
                                     if r["run_id"] == run_id)]))
    lines.append("")
    for run_id in selected.run_ids:
        run = next(r for r in selected.runs.values() if r["run_id"] == run_id)
        lines.append(f"- Inventory of {md_text(run_id)}: {md_code(run['inventory_path'])} "
                     f"(sha256 {md_text(str(run['inventory_digest'])[:12])})")
        if run["error"]:
            lines.append(f"- Errors in {md_text(run_id)}: {md_text(run['error'])}")
    lines.append(f"- Columns scanned: {len(findings)}; holding personal data: "
                 f"{len(personal)}; sensitive (GDPR Art. 9 / PIPL Art. 28): "
                 f"{sum(1 for f in personal if f['sensitive'])}")

    lines += ["", "## Needs attention", ""]
    attention = [f for f in findings if f["status"] in _ATTENTION]
    undeclared_tables = [t for t in tables if not t["declared"]]
    missing_tables = [t for t in tables if t["declared"] and not t["present"]]
    if not attention and not missing_tables:
        lines.append("Nothing: every column holding personal data is declared as such.")
    for t in missing_tables:
        lines.append(f"- {_place(t['source'], t['table_name'])} is declared but not in "
                     "the source")
    for t in undeclared_tables:
        pii = [f["column_name"] for f in findings if f["source"] == t["source"]
               and f["table_name"] == t["table_name"] and f["detected_category"]]
        if pii:
            lines.append(f"- Table {_place(t['source'], t['table_name'])} is not in the "
                         f"inventory and holds personal data in: "
                         f"{', '.join(md_code(c) for c in pii)}")
    for f in attention:
        if f["status"] == "undeclared_table_pii":
            continue
        lines.append(f"- {_place(f['source'], f['table_name'], f['column_name'])}: "
                     f"{md_text(f['status'].replace('_', ' '))} (declared "
                     f"{md_text(f['declared_category'])}, detected "
                     f"{md_text(f['detected_category'])})")

    lines += ["", "## Personal data by column", "",
              "| source | table | column | category | sensitive | confidence | status "
              "| entity types | masked samples |",
              "|---|---|---|---|---|---|---|---|---|"]
    for f in personal:
        category = f["detected_category"] or f["declared_category"]
        lines.append(_row([
            f["source"], f["table_name"], f["column_name"], category,
            "yes" if is_sensitive(category) or f["sensitive"] else "",
            f"{f['confidence']:.2f}", f["status"], ", ".join(f["entity_types"] or []),
            ", ".join(f["masked_samples"] or [])]))

    undeclared_personal: dict[tuple[str, str], list[str]] = {
        (f["source"], f["table_name"]): [] for f in findings}
    for f in findings:
        if f["status"] in _UNDECLARED:
            undeclared_personal[(f["source"], f["table_name"])].append(f["column_name"])
    lines += ["", "## Tables", "",
              "Undeclared columns are split: those holding personal data need declaring; "
              "the others (ids, amounts, timestamps) were scanned and nothing personal "
              "was found in them.", "",
              "| source | table | declared | present | rows | undeclared, personal data "
              "| undeclared, no personal data found |", "|---|---|---|---|---|---|---|"]
    quiet: list[str] = []
    for t in tables:
        key = (t["source"], t["table_name"])
        personal_cols = undeclared_personal.get(key, [])
        others = [c for c in (t["undeclared_columns"] or []) if c not in personal_cols]
        if not t["declared"]:
            others = []
        quiet += [f"{t['source']}.{t['table_name']}.{c}" for c in others]
        lines.append(_row([t["source"], t["table_name"], "yes" if t["declared"] else "NO",
                           "yes" if t["present"] else "NO", t["row_count"],
                           ", ".join(personal_cols), ", ".join(others)]))
    lines += ["", "## Undeclared columns without personal data", ""]
    if quiet:
        lines.append("Not a problem; listed so that the inventory can be completed: "
                     + ", ".join(md_code(q) for q in quiet))
    else:
        lines.append("None.")
    lines += ["", "## Finding statuses", ""]
    lines += [f"- {md_text(status)}: {n}" for status, n in sorted(statuses.items())]
    by_category: dict[str, int] = defaultdict(int)
    for f in personal:
        by_category[f["detected_category"] or f["declared_category"]] += 1
    lines += ["", "## Categories", ""]
    lines += [f"- {md_text(c)}: {n} column(s)" for c, n in sorted(by_category.items())]
    return "\n".join(lines) + "\n"


def scan_report_markdown(store: AuditStore, run_id: str) -> str:
    """A Markdown report of scan run ``run_id``."""
    return findings_markdown(run_findings(store, run_id))


def write_report(selected: FindingSet, out_dir: str | Path, name: str) -> Path:
    """Write the report of ``selected`` as ``out_dir/name.md`` (mode 0600) and return the
    path; the folder is created only once the report has been rendered."""
    text = findings_markdown(selected)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_scan_report(store: AuditStore, run_id: str, out_dir: str | Path) -> Path:
    """Write the Markdown report of ``run_id`` into ``out_dir`` and return its path."""
    return write_report(run_findings(store, run_id), out_dir, run_id)


def write_latest_report(store: AuditStore, out_dir: str | Path) -> Path:
    """Write the report of every source's latest findings as ``out_dir/latest.md``."""
    return write_report(latest_findings(store), out_dir, "latest")
