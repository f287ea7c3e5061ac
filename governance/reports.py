"""Reports rendered from the audit store (never from the sources: masked data only)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from governance.audit_store import AuditStore
from governance.errors import GovernanceError
from governance.taxonomy import is_sensitive

_ATTENTION = ("undeclared_table_pii", "undeclared_pii", "category_mismatch",
              "declared_not_detected")


def _cell(value: object) -> str:
    return str(value if value not in (None, "") else "").replace("|", "\\|").replace("\n", " ")


def scan_report_markdown(store: AuditStore, run_id: str) -> str:
    """A Markdown report of scan run ``run_id``."""
    runs = store.query("SELECT * FROM scan_runs WHERE run_id = ?", [run_id])
    if not runs:
        raise GovernanceError(f"no scan run {run_id!r} in audit store {store.path}")
    run = runs[0]
    findings = store.findings(run_id)
    tables = store.tables(run_id)
    personal = [f for f in findings if f["detected_category"] or f["declared_category"]]
    statuses = Counter(f["status"] for f in findings)
    lines = [
        f"# PII discovery scan {run_id}",
        "",
        f"- Started: {run['started_at']:%Y-%m-%d %H:%M:%S %Z}; status: **{run['status']}**",
        f"- Inventory: `{run['inventory_path']}` (sha256 {str(run['inventory_digest'])[:12]})",
        f"- Sources: {', '.join(run['sources'])}; mode: {run['mode']}, "
        f"{run['sample_rows']} rows sampled per table (seed {run['seed']})",
        f"- Columns scanned: {len(findings)}; holding personal data: {len(personal)}; "
        f"sensitive (GDPR Art. 9 / PIPL Art. 28): "
        f"{sum(1 for f in personal if f['sensitive'])}",
    ]
    if run["error"]:
        lines.append(f"- Errors: {run['error']}")
    lines += ["", "## Needs attention", ""]
    attention = [f for f in findings if f["status"] in _ATTENTION]
    undeclared_tables = [t for t in tables if not t["declared"]]
    missing_tables = [t for t in tables if t["declared"] and not t["present"]]
    if not attention and not missing_tables:
        lines.append("Nothing: every column holding personal data is declared as such.")
    for t in missing_tables:
        lines.append(f"- `{t['source']}.{t['table_name']}` is declared but not in the source")
    for t in undeclared_tables:
        pii = [f["column_name"] for f in findings if f["source"] == t["source"]
               and f["table_name"] == t["table_name"] and f["detected_category"]]
        if pii:
            lines.append(f"- Table `{t['source']}.{t['table_name']}` is not in the inventory "
                         f"and holds personal data in: {', '.join(pii)}")
    for f in attention:
        if f["status"] == "undeclared_table_pii":
            continue
        lines.append(f"- `{f['source']}.{f['table_name']}.{f['column_name']}`: "
                     f"{f['status'].replace('_', ' ')} (declared {f['declared_category']}, "
                     f"detected {f['detected_category']})")
    lines += ["", "## Personal data by column", "",
              "| source | table | column | category | sensitive | confidence | status "
              "| entity types | masked samples |",
              "|---|---|---|---|---|---|---|---|---|"]
    for f in personal:
        category = f["detected_category"] or f["declared_category"]
        lines.append("| " + " | ".join(_cell(v) for v in (
            f["source"], f["table_name"], f["column_name"], category,
            "yes" if is_sensitive(category) or f["sensitive"] else "",
            f"{f['confidence']:.2f}", f["status"], ", ".join(f["entity_types"] or []),
            ", ".join(f["masked_samples"] or []))) + " |")
    lines += ["", "## Tables", "", "| source | table | declared | present | rows | "
              "undeclared columns |", "|---|---|---|---|---|---|"]
    for t in tables:
        lines.append("| " + " | ".join(_cell(v) for v in (
            t["source"], t["table_name"], "yes" if t["declared"] else "NO",
            "yes" if t["present"] else "NO", t["row_count"],
            ", ".join(t["undeclared_columns"] or []))) + " |")
    lines += ["", "## Finding statuses", ""]
    lines += [f"- {status}: {n}" for status, n in sorted(statuses.items())]
    by_category: dict[str, int] = defaultdict(int)
    for f in personal:
        by_category[f["detected_category"] or f["declared_category"]] += 1
    lines += ["", "## Categories", ""]
    lines += [f"- {c}: {n} column(s)" for c, n in sorted(by_category.items())]
    return "\n".join(lines) + "\n"


def write_scan_report(store: AuditStore, run_id: str, out_dir: str | Path) -> Path:
    """Write the Markdown report of ``run_id`` into ``out_dir`` and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{run_id}.md"
    path.write_text(scan_report_markdown(store, run_id), encoding="utf-8")
    return path
