"""``govkit audit run`` and ``govkit audit report``: the compliance audit commands.

Registered on the ``audit`` group of governance.cli by ``register``.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

EXAMPLES = {
    "audit run": "govkit audit run --json | jq .failing",
    "audit report": "govkit audit report --run latest --format html --out reports",
}


def register(audit: click.Group, examples: dict[str, str]) -> None:
    """Add the audit-run commands to ``audit`` and their examples to ``examples``."""
    from governance.cli import (
        EXIT_PROBLEMS,
        _actor,
        _echo_json,
        _progress,
        inventory_option,
        json_option,
        store_option,
    )

    @audit.command("run")
    @inventory_option
    @store_option
    @click.option("--processing", "processing_path", type=click.Path(path_type=Path),
                  default=None, help="processing.yaml (purposes, legal bases, transfers, "
                  "retention, assessments) [default: beside the inventory, when present].")
    @click.option("--check", "only", multiple=True,
                  help="Run only this check id (repeatable) [default: every check].")
    @click.option("--as-of", "as_of", default=None, metavar="YYYY-MM-DD",
                  help="Judge deadlines and retention on this day [default: today, UTC].")
    @click.option("--max-rows", default=1_000_000, show_default=True,
                  type=click.IntRange(1), help="Rows read per table by the source checks "
                  "(a table with more is reported as only partly examined).")
    @json_option
    def audit_run(inventory_path: Path, store_path: Path, processing_path: Path | None,
                  only: tuple[str, ...], as_of: str | None, max_rows: int,
                  as_json: bool) -> None:
        """Run every compliance check and store the run in the audit store (exit 1 when a
        check fails or cannot run). Sources are only read."""
        from governance.audit.processing import load_processing
        from governance.audit.runner import run_audit
        from governance.audit_store import AuditStore
        from governance.errors import GovernanceError
        from governance.inventory import load_inventory

        inv = load_inventory(inventory_path)
        processing = load_processing(inv, processing_path)
        try:
            today = date.fromisoformat(as_of) if as_of else None
        except ValueError:
            raise GovernanceError(f"--as-of {as_of!r}: write it as YYYY-MM-DD") from None
        run = run_audit(inv, AuditStore(store_path), processing, today, actor=_actor(),
                        only=list(only) or None, max_rows=max_rows,
                        load_processing_file=False, progress=_progress)
        if as_json:
            _echo_json({"run_id": run.run_id, "status": run.status, "counts": run.counts,
                        "metrics": run.metrics, "failing": [
                            {"check": r.check_id, "status": str(r.status),
                             "severity": str(r.severity), "where": r.place,
                             "articles": r.articles, "evidence": r.evidence,
                             "remediation": r.remediation} for r in run.failing]})
        else:
            by = run.counts["by_status"]
            click.echo(f"Audit {run.run_id}: {run.status.upper()} ({by.get('pass', 0)} pass, "
                       f"{by.get('warn', 0)} warn, {by.get('fail', 0)} fail, "
                       f"{by.get('error', 0)} error, {by.get('not_applicable', 0)} n/a)")
            for r in run.failing:
                click.echo(f"  ! {r.status} {r.severity} {r.check_id} {r.place} "
                           f"[{', '.join(r.articles)}]")
            click.echo(f"Report: govkit audit report --run {run.run_id} --format html "
                       "--out reports")
        if run.failing:
            sys.exit(EXIT_PROBLEMS)

    @audit.command("report")
    @store_option
    @click.option("--run", "run", default="latest", show_default=True,
                  help="The audit run: `latest` or an id (govkit audit run prints it).")
    @click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]),
                  default="html", show_default=True, help="Report format.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                  default=Path("reports"), show_default=True,
                  help="Folder for the report and the records (CSV, JSON), files 0600.")
    @click.option("--no-records", is_flag=True,
                  help="Write only the report, not the Art. 30 / PIPL records files.")
    def audit_report(store_path: Path, run: str, fmt: str, out_dir: Path,
                     no_records: bool) -> None:
        """Write the report of an audit run (masked values only) and store it in the audit
        store; also the GDPR Art. 30 record, the PIPL inventory (CSV, JSON) and the PIPL
        impact-assessment draft."""
        from governance.audit.report import write_audit_report
        from governance.audit_store import AuditStore

        path, records = write_audit_report(AuditStore(store_path), run, fmt, out_dir,
                                           records=not no_records)
        click.echo(f"Report: {path}")
        for p in records:
            click.echo(f"Record: {p}")

    examples.update(EXAMPLES)
