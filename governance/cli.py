"""The ``govkit`` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from governance.audit_store import AuditStore, default_store_path

# Exit statuses (README: "Exit codes"), the actor and progress lines, shared with cli_*.py.
from governance.cli_support import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE  # noqa: F401
from governance.cli_support import actor as _actor
from governance.cli_support import held_store as _held_store
from governance.cli_support import progress as _progress
from governance.errors import GovernanceError

DEFAULT_INVENTORY = "inventory.yaml"


def _fail(message: str) -> NoReturn:
    click.echo(f"govkit: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _echo_json(value: Any) -> None:
    from governance.reports import jsonable

    click.echo(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


def _request_json(r: Any) -> dict[str, Any]:
    """A data-subject request as a JSON object: masked identities, no fingerprints."""
    from dataclasses import asdict

    out = {k: v for k, v in asdict(r).items() if k != "fingerprints"}
    if r.approved_plan:   # its person rows as a count, like the identities' fingerprints
        out["approved_plan"] = {**r.approved_plan,
                                "people": len(r.approved_plan.get("people", ()))}
    out["days_left"] = r.days_left()
    out["overdue"] = r.is_open and r.days_left() < 0
    return out


def _step_json(step: Any) -> dict[str, Any]:
    """A journal step as a JSON object: where and what, never the values."""
    return {"step": step.step_no, "source": step.source, "table": step.table,
            "action": str(step.action), "found_by": step.found_by,
            "match_column": step.match_column, "columns": step.columns,
            "planned_rows": step.planned_rows, "status": step.status,
            "rows_affected": step.rows_affected, "description": step.describe()}


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document (objects nested, not JSON text).")


class _Group(click.Group):
    """Turns toolkit errors into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GovernanceError as e:
            _fail(str(e))
        except FileExistsError as e:
            _fail(str(e))


class _LiveDefault(click.Option):
    """An option whose default comes from the environment when the command runs; --help
    shows that value instead of "(dynamic)"."""

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        return super().get_default(ctx, call=True)


inventory_option = click.option(
    "--inventory", "-i", "inventory_path", type=click.Path(path_type=Path), cls=_LiveDefault,
    default=lambda: os.environ.get("GOVKIT_INVENTORY", DEFAULT_INVENTORY), show_default=True,
    help="Inventory YAML (env GOVKIT_INVENTORY, else ./inventory.yaml).")
store_option = click.option(
    "--store", "store_path", type=click.Path(path_type=Path), cls=_LiveDefault,
    default=lambda: str(default_store_path()), show_default=True,
    help="Audit store DuckDB file (env GOVKIT_AUDIT_STORE, else ./govkit-audit.duckdb).")


@click.group(cls=_Group)
@click.version_option(package_name="govkit")
def main() -> None:
    """Personal data governance for GDPR, CCPA/CPRA and PIPL."""


# ------------------------------------------------------------------------ inventory


@main.command()
@inventory_option
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@json_option
def inventory(inventory_path: Path, sources: tuple[str, ...], as_json: bool) -> None:
    """List declared sources and tables, and what is actually found in them.

    Exit status 1 when a source is unreachable, a declared table or column is missing, or
    a table is not declared.
    """
    from dataclasses import asdict

    from governance.discovery import discover
    from governance.inventory import load_inventory

    inv = load_inventory(inventory_path)
    for name in sources:
        inv.source(name)

    def out(text: str) -> None:
        if not as_json:
            click.echo(text)

    out(f"{inv.organization}: {len(inv.sources)} source(s) declared in {inventory_path}")
    problems = 0
    listed: list[dict[str, Any]] = []
    for state in discover(inv, list(sources) or None):
        src = inv.source(state.source)
        listed.append({"name": state.source, "kind": state.kind, "owner": src.owner,
                       "jurisdictions": list(src.jurisdictions), "reachable": state.reachable,
                       "error": state.error, "tables": [asdict(t) for t in state.tables]})
        out(f"\n{state.source} [{state.kind}] owner={src.owner} "
            f"jurisdictions={','.join(src.jurisdictions)}")
        if not state.reachable:
            problems += 1
            out(f"  UNREACHABLE: {state.error}")
            continue
        for t in state.tables:
            if not t.present:
                problems += 1
                out(f"  - {t.table}: DECLARED BUT NOT FOUND in the source")
                continue
            if t.note:
                out(f"  - {t.table}: {t.note}")
                continue
            mark = "" if t.declared else "  <- NOT DECLARED in the inventory"
            out(f"  - {t.table}: {t.row_count:,} rows, {len(t.columns)} columns{mark}")
            if not t.declared:
                problems += 1
            elif t.undeclared_columns:
                out(f"      columns not declared: {', '.join(t.undeclared_columns)}")
            if t.declared and t.missing_columns:
                problems += 1
                out(f"      DECLARED COLUMNS MISSING: {', '.join(t.missing_columns)}")
    ownership, unfollowed = _ownership_review(inv)
    if ownership:
        out("\nOwnership (what data-subject requests cannot do safely here):")
        for line in ownership:
            out(f"  ! {line}")
        problems += len(ownership)
    if unfollowed:
        out("\nForeign keys requests do not follow (a row reached only through one is not "
            "the subject's; an erasure refuses to delete a row one points at from a row "
            "that stays):")
        for line in unfollowed:
            out(f"  ~ {line}")
    from governance.dsar.resolution import index_advice
    from governance.sources.pool import ConnectorPool

    with ConnectorPool(inv) as pool:
        indexes = index_advice(inv, pool)
    if indexes:
        out("\nIndexes (requests work without them, but each one reads the whole table):")
        for line in indexes:
            out(f"  ~ {line}")
    if as_json:
        _echo_json({"organization": inv.organization, "inventory": str(inventory_path),
                    "sources": listed, "ownership": ownership, "unfollowed_keys": unfollowed,
                    "index_advice": indexes,
                    "discrepancies": problems})
    else:
        click.echo(f"\n{problems} discrepancy(ies) between inventory and sources")
    if problems:
        sys.exit(EXIT_PROBLEMS)


def _ownership_review(inv: Any) -> tuple[list[str], list[str]]:
    """The ownership graph's problems, with the foreign keys of every reachable source; and
    the keys it does not follow (composite ones, those of tables in another schema)."""
    from governance.dsar.ownership import build_graph, review
    from governance.errors import GovernanceError
    from governance.sources.pool import ConnectorPool

    keys = {}
    unfollowed = []
    with ConnectorPool(inv) as pool:
        for src in inv.sources:
            try:
                conn = pool.get(src.name)
                keys[src.name] = conn.foreign_keys()
                others = [*conn.composite_foreign_keys(), *conn.foreign_keys_from_elsewhere()]
            except GovernanceError:
                continue
            for fk in others:
                cols, refs = fk.column.replace(",", ", "), fk.ref_column.replace(",", ", ")
                where = (f"{src.name}.{fk.table}" if fk.schema is None
                         else f"{fk.schema}.{fk.table} (outside the source)")
                unfollowed.append(f"{where} ({cols}) -> {src.name}.{fk.ref_table} ({refs})")
    return review(build_graph(inv, keys), inv), unfollowed


# ------------------------------------------------------------------------ scan


def _run_scan(inventory_path: Path, store_path: Path, sources: tuple[str, ...],
              sample_rows: int, seed: int, report_dir: Path | None,
              mode: str = "sampled") -> None:
    from governance.inventory import load_inventory
    from governance.reports import write_scan_report
    from governance.scan import FindingStatus, run_scan

    inv = load_inventory(inventory_path)
    for name in sources:
        inv.source(name)
    store = AuditStore(store_path, create=True)
    store.schema_version()   # open (or create) it now: a bad store fails before the scan
    how = f"{sample_rows} sampled rows per table" if mode == "sampled" else "every cell"
    click.echo(f"Scanning {len(sources) or len(inv.sources)} source(s) of {inv.organization} "
               f"({how}) ...", err=True)
    result = run_scan(inv, store, list(sources) or None, sample_rows, seed, actor=_actor(),
                      progress=_progress, mode=mode)
    personal = result.personal_columns()
    undeclared = [f for f in result.findings if f.status in (
        FindingStatus.UNDECLARED_PII, FindingStatus.UNDECLARED_TABLE)]
    click.echo(f"\nScan {result.run_id}: {result.status}")
    click.echo(f"  columns scanned:         {len(result.findings)}")
    click.echo(f"  holding personal data:   {len(personal)} "
               f"({sum(1 for f in personal if f.sensitive)} sensitive)")
    click.echo(f"  undeclared personal data: {len(undeclared)}")
    for f in undeclared:
        click.echo(f"    ! {f.source}.{f.table_name}.{f.column_name}: {f.detected_category} "
                   f"({f.status})")
    for err in result.errors:
        click.echo(f"  error: {err}")
    report = write_scan_report(store, result.run_id, report_dir or store.path.parent / "reports")
    click.echo(f"\nFindings: audit store {store.path} (tables column_findings, source_tables, "
               f"run_id = '{result.run_id}')")
    click.echo(f"Report:   {report}")
    if result.status != "succeeded":
        click.echo(f"scan {result.status}: {len(result.errors)} source(s) could not be scanned",
                   err=True)
        sys.exit(EXIT_PROBLEMS)


@main.command()
@inventory_option
@store_option
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@click.option("--mode", type=click.Choice(["sampled", "full"]), default="sampled",
              show_default=True,
              help="sampled: a seeded sample per table; full: every cell, counted.")
@click.option("--sample-rows", default=200, show_default=True, type=click.IntRange(1),
              help="Rows sampled per table (sampled mode).")
@click.option("--seed", default=0, show_default=True, type=int, help="Sampling seed.")
@click.option("--report-dir", type=click.Path(path_type=Path), default=None,
              help="Where the Markdown report goes [default: reports/ beside the store].")
def scan(inventory_path: Path, store_path: Path, sources: tuple[str, ...], mode: str,
         sample_rows: int, seed: int, report_dir: Path | None) -> None:
    """Run the PII discovery scan and record findings in the audit store.

    Exit status 1 when a source could not be scanned (the run is partial or failed).
    """
    _run_scan(inventory_path, store_path, sources, sample_rows, seed, report_dir, mode)


@main.command()
@click.option("--dir", "demo_dir", type=click.Path(path_type=Path), default=Path("govkit-demo"),
              show_default=True, help="Where the demo estate is generated.")
@click.option("--rebuild", is_flag=True, help="Regenerate the demo estate even if present.")
@click.option("--store", "store_path", type=click.Path(path_type=Path), default=None,
              help="Audit store [default: DIR/audit.duckdb].")
def demo(demo_dir: Path, rebuild: bool, store_path: Path | None) -> None:
    """Generate the demo organisation (if needed) and run the discovery scan on it."""
    from governance.demo import build_demo, ensure_demo

    paths = build_demo(demo_dir, overwrite=True) if rebuild else ensure_demo(demo_dir)
    click.echo(f"Demo organisation in {paths.root} (inventory {paths.inventory})", err=True)
    _run_scan(paths.inventory, store_path or paths.root / "audit.duckdb", (), 200, 0,
              paths.root / "reports")


@main.command()
@store_option
@click.option("--run", "run_id", default=None,
              help="Only this scan run (see `govkit scans`) [default: the latest findings "
                   "of every source].")
@click.option("--all", "show_all", is_flag=True, help="Also columns without personal data.")
@json_option
def findings(store_path: Path, run_id: str | None, show_all: bool, as_json: bool) -> None:
    """Show the column findings: each source's latest, or those of one scan run."""
    from governance.reports import finding_json, latest_findings, run_findings

    store = _held_store(store_path)
    selected = run_findings(store, run_id) if run_id else latest_findings(store)
    rows = selected.findings
    if not show_all:
        rows = [r for r in rows if r["detected_category"] or r["declared_category"]]
    if as_json:
        _echo_json({"runs": {source: run["run_id"] for source, run in selected.runs.items()},
                    "findings": [finding_json(r) for r in rows]})
        return
    for source, run in sorted(selected.runs.items()):
        click.echo(f"{source}: {run['run_id']} ({run['status']}, "
                   f"{run['started_at']:%Y-%m-%d %H:%M:%S %Z})", err=True)
    for r in rows:
        click.echo(f"{r['source']}.{r['table_name']}.{r['column_name']}: "
                   f"{r['detected_category'] or '-'} (declared {r['declared_category'] or '-'},"
                   f" confidence {r['confidence']:.2f}, {r['status']})")


@main.command()
@store_option
@click.option("--run", "run_id", default=None,
              help="Report this scan run (see `govkit scans`) [default: the latest findings "
                   "of every source, written as latest.md].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports"), show_default=True,
              help="Folder the Markdown report is written to (created if needed).")
def report(store_path: Path, run_id: str | None, out_dir: Path) -> None:
    """Write the Markdown report of the latest findings, or of one scan run."""
    from governance.reports import write_latest_report, write_scan_report

    store = _held_store(store_path)
    path = (write_scan_report(store, run_id, out_dir) if run_id
            else write_latest_report(store, out_dir))
    click.echo(str(path))


@main.command()
@store_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1),
              help="How many of the newest scan runs to list.")
@json_option
def scans(store_path: Path, limit: int, as_json: bool) -> None:
    """List past scan runs, newest first, with what each found."""
    from governance.reports import scan_runs_summary

    store = _held_store(store_path)
    store.mark_interrupted_scans()
    runs = scan_runs_summary(store, limit)
    if as_json:
        _echo_json(runs)
        return
    for r in runs:
        click.echo(f"{r['run_id']}  {r['started_at']:%Y-%m-%d %H:%M:%S}  {r['status']:<9} "
                   f"{r['mode']:<7} {','.join(r['sources'])}  {r['columns']} columns, "
                   f"{r['personal_columns']} personal, {r['undeclared_personal_columns']} "
                   "undeclared personal" + (f"  error: {r['error']}" if r["error"] else ""))
    click.echo(f"{len(runs)} scan run(s)", err=True)


# ------------------------------------------------------------------------ detect


@main.command()
@click.argument("source", default="-", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--redact", "do_redact", is_flag=True,
              help="Write the lines with entities replaced by <TYPE> instead of JSON.")
@click.option("--min-score", default=0.4, show_default=True, type=click.FloatRange(0, 1),
              help="Lowest recognizer score reported.")
def detect(source: Any, do_redact: bool, min_score: float) -> None:
    """Find personal data in text lines (FILE, or - for stdin); write JSON lines.

    Each output line is {"line": N, "entities": [{"type", "start", "end", "score",
    "recognizer"}]}, offsets counting characters of the input line.
    """
    from governance.detection.text import detect_lines, entity_json, redact

    for number, text, entities in detect_lines(source, min_score):
        if do_redact:
            from governance.masking import mask_addresses

            click.echo(mask_addresses(redact(text, entities)))
        else:
            click.echo(json.dumps({"line": number,
                                   "entities": [entity_json(e) for e in entities]},
                                  ensure_ascii=False))


# ------------------------------------------------------------------------ dsar


@main.group()
def dsar() -> None:
    """Data-subject requests: access, erasure, rectification; legal holds."""


def _print_request(r: Any) -> None:
    left = r.days_left()
    due = (f"OVERDUE by {-left} day(s)" if left < 0 else f"{left} day(s) left") \
        if r.is_open else r.state.value
    click.echo(f"{r.request_id}  {r.request_type:<8} {r.law:<5} {r.state:<12} "
               f"due {r.due_date} ({due})  {', '.join(r.masked_identities)}")


@dsar.command("new")
@store_option
@click.option("--type", "request_type", required=True,
              type=click.Choice(["access", "erasure", "rectify"]))
@click.option("--identity", "identities", multiple=True,
              help="type=value: email=..., phone=..., user_id=..., national_id=... (repeatable)")
@click.option("--from-file", "intake_file", type=click.Path(path_type=Path),
              help="Read identities (and rectify's `set`) from this YAML/JSON intake file "
                   "instead, keeping them out of shell history; the file is removed once "
                   "the request is recorded.")
@click.option("--jurisdiction", required=True,
              type=click.Choice(["EU", "EEA", "UK", "US-CA", "CN"]),
              help="Sets the deadline: GDPR one month, CCPA 45 days, PIPL working days.")
@click.option("--set", "corrections", multiple=True,
              help="rectify: field=new value (email, phone, name, address, date_of_birth or a "
                   "data category; repeatable).")
@click.option("--pipl-working-days", default=15, show_default=True, type=click.IntRange(1),
              help="PIPL deadline in working days (GB/T 35273-2020: 15).")
@click.option("--received", metavar="YYYY-MM-DD", default=None,
              help="When the request arrived (a letter last week); the deadline counts from "
                   "it; not in the future [default: now].")
def dsar_new(store_path: Path, request_type: str, identities: tuple[str, ...],
             intake_file: Path | None, jurisdiction: str, corrections: tuple[str, ...],
             pipl_working_days: int, received: str | None) -> None:
    """Record a new data-subject request."""
    from governance.dsar import RequestBook

    if bool(identities) == bool(intake_file):
        raise click.UsageError("give the subject's identities with --identity or --from-file "
                               "(one of the two)")
    if intake_file is not None:
        from governance.dsar.intake import create_from_file

        if corrections:
            raise click.UsageError("with --from-file, put the corrections in the file's `set`")
        r = create_from_file(RequestBook(_held_store(store_path)), intake_file, request_type,
                             jurisdiction, _actor(), pipl_working_days=pipl_working_days,
                             received_at=received)
        _print_request(r)
        click.echo(f"intake file {intake_file} removed; next: `govkit dsar verify "
                   f"{r.request_id} --note '...'`", err=True)
        return
    fixes = {}
    for c in corrections:
        name, sep, value = c.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise GovernanceError(f"--set {name!r}: write it as field=value")
        fixes[name.strip()] = value.strip()
    r = RequestBook(_held_store(store_path)).create(
        request_type, list(identities), jurisdiction, _actor(), fixes,
        pipl_working_days=pipl_working_days, received_at=received)
    _print_request(r)
    click.echo(f"next: verify the subject's identity, then `govkit dsar verify {r.request_id} "
               "--note '...'`", err=True)


@dsar.command("list")
@store_option
@click.option("--all", "show_all", is_flag=True, help="Also completed and rejected requests.")
@json_option
def dsar_list(store_path: Path, show_all: bool, as_json: bool) -> None:
    """Open requests with days left, overdue first."""
    from governance.dsar import RequestBook

    store = _held_store(store_path)
    book = RequestBook(store)
    requests = book.list_requests(open_only=not show_all)
    held = _held_requests(store, book, requests)
    if as_json:
        _echo_json([{**_request_json(r), "held_by": held.get(r.request_id, [])}
                    for r in requests])
        return
    for r in requests:
        _print_request(r)
        if r.request_id in held:
            click.echo(f"    HELD: legal hold {', '.join(held[r.request_id])} blocks this "
                       "erasure")
    overdue = sum(1 for r in requests if r.is_open and r.days_left() < 0)
    click.echo(f"{len(requests)} request(s), {overdue} overdue", err=True)


def _held_requests(store: AuditStore, book: Any, requests: list[Any]) -> dict[str, list[str]]:
    """Open erasure requests a subject hold blocks (by any identity, given or derived)."""
    from governance.dsar import LegalHolds

    holds = LegalHolds(store, book.keyring)   # read once, matched for every request
    if not holds.subject_holds():
        return {}
    out = {}
    for r in requests:
        if not r.is_open or r.request_type.value != "erasure":
            continue
        fps = set(r.fingerprints)  # given and, once planned, derived identities
        if r.state.value in ("in_progress", "extended"):
            # A request planned by an older govkit kept its derived identities only in
            # its sealed payload.
            fps |= {book.keyring.fingerprint(i.fingerprint_text()) for i in book.identities(r)}
        blocking = [h.hold_id for h in holds.on_subject(sorted(fps))]
        if blocking:
            out[r.request_id] = blocking
    return out


@dsar.command("show")
@store_option
@click.argument("request_id")
@json_option
def dsar_show(store_path: Path, request_id: str, as_json: bool) -> None:
    """A request, its journal and its audit-log history."""
    from dataclasses import asdict

    from governance.dsar import RequestBook
    from governance.dsar.journal import read_journal

    store = _held_store(store_path)
    r = RequestBook(store).get(request_id)
    if as_json:
        _echo_json({"request": _request_json(r),
                    "steps": [_step_json(s) for s in read_journal(store, request_id, None)],
                    "log": [asdict(e) for e in store.log_entries() if e.target == request_id]})
        return
    _print_request(r)
    if r.extension_reason:
        click.echo(f"  extended: {r.extension_reason}")
    if r.approved_plan:
        from governance.dsar.approval import PlanBinding

        click.echo(f"  approved by {r.approved_by} on {r.approved_at:%Y-%m-%d %H:%M} UTC: "
                   + PlanBinding.from_json(r.approved_plan).describe())
    for step in read_journal(store, request_id, None):
        click.echo(f"  {step.describe()} [{step.status}"
                   + (f", {step.rows_affected} changed]" if step.status == "done" else "]"))
    if r.outcome:
        click.echo("  outcome: " + json.dumps(r.outcome, ensure_ascii=False, default=str))
    for e in store.log_entries():
        if e.target == request_id:
            why = (e.details or {}).get("reason") if e.action == "dsar.run_stopped" else None
            click.echo(f"  {e.seq:>5} {e.logged_at:%Y-%m-%d %H:%M:%S} {e.actor:<10} {e.action}"
                       + (f": {why}" if why else ""))


def _transition_command(name: str, help_text: str, option: str, method: str) -> None:
    @dsar.command(name, help=help_text)
    @store_option
    @click.argument("request_id")
    @click.option(f"--{option}", "text", required=True)
    def command(store_path: Path, request_id: str, text: str) -> None:
        from governance.dsar import RequestBook

        r = getattr(RequestBook(_held_store(store_path)), method)(request_id, _actor(), text)
        _print_request(r)
        if method == "verify" and r.destructive:
            click.echo(f"NOT YET APPROVED: identity verification does not let this "
                       f"{r.request_type} change data; review `govkit dsar plan {request_id}`, "
                       f"then `govkit dsar approve {request_id} --note '...'`")


_transition_command("verify", "Record that the subject's identity was verified, and how.",
                    "note", "verify")
_transition_command("extend", "Extend the deadline once (GDPR +2 months, CCPA +45 days), "
                    "with the reason told to the subject.", "reason", "extend")
_transition_command("reject", "Close a request without acting on it, with the reason.",
                    "reason", "reject")


@dsar.command("approve")
@inventory_option
@store_option
@click.argument("request_id")
@click.option("--note", required=True, help="What was reviewed before approving (stored "
              "masked).")
@click.option("--plan", "reviewed", default=None, metavar="PLAN",
              help="The plan reviewed, as `govkit dsar plan` names it (plan-...): refused if "
                   "the plan is no longer that one.")
def dsar_approve(inventory_path: Path, store_path: Path, request_id: str, note: str,
                 reviewed: str | None) -> None:
    """Approve running a verified erasure or rectification as planned now: whose rows and
    which changes are recorded with who and when (the note is stored masked). A run whose
    plan differs stops and asks for a new approval. Verification alone never lets data be
    changed."""
    from governance.dsar.approval import approve_request
    from governance.inventory import load_inventory

    r, binding, blockers = approve_request(load_inventory(inventory_path),
                                           _held_store(store_path), request_id, _actor(),
                                           note, reviewed)
    _print_request(r)
    click.echo(f"approved {binding.describe()}")
    if not binding.people:
        click.echo("WARNING: this plan finds none of the subject's person rows: the request "
                   "will complete with nothing of theirs erased or changed")
    for b in blockers:
        click.echo(f"still stops the run: {b}")
    click.echo(f"approved by {r.approved_by}; `govkit dsar run {request_id}` shows the "
               "plan and asks before changing data (the Dagster sensor verified_requests, "
               "if turned on, runs it without asking); a run whose plan differs from this "
               "one stops and asks for a new approval")


@dsar.command("plan")
@inventory_option
@store_option
@click.argument("request_id")
def dsar_plan(inventory_path: Path, store_path: Path, request_id: str) -> None:
    """Where the subject is found and what a run would change; changes nothing."""
    from governance.dsar import RequestBook
    from governance.dsar.approval import person_rows_shown, plan_binding
    from governance.inventory import load_inventory

    store = AuditStore(store_path)
    resolution, steps, binding = plan_binding(load_inventory(inventory_path), store,
                                              request_id, _progress)
    _print_plan(resolution, steps)
    if RequestBook(store).get(request_id).destructive:
        click.echo(f"plan {binding.describe()}")
        for shown in person_rows_shown(resolution):
            click.echo(f"  person row: {shown}")
        if resolution.blockers:
            click.echo("not to approve yet: what is listed above stops the run; settle it, "
                       f"then see this plan again (govkit dsar plan {request_id})")
        else:
            click.echo(f"to approve it: govkit dsar approve {request_id} --plan "
                       f"{binding.digest} --note '...'")


def _print_plan(resolution: Any, steps: Any) -> None:
    click.echo(f"Found in {len(resolution.locations)} place(s), "
               f"{len(resolution.searched)} column search(es):")
    for loc in resolution.locations:
        click.echo(f"  - {loc.describe()}")
    for source, error in resolution.unreachable.items():
        click.echo(f"  ! {source}: UNREACHABLE: {error}")
    for (source, table), rows in resolution.shared.items():
        click.echo(f"  = {source}.{table}: {len(rows)} row(s) shared with another person "
                   "(never changed)")
    for place, n in resolution.others.items():
        click.echo(f"  = {place}: {n} row(s) of another person hold the subject's identifier "
                   "(reported, not changed)")
    for note in resolution.notes:
        click.echo(f"  ? {note}")
    if steps:
        click.echo("Changes:")
        for s in steps:
            click.echo(f"  {s.describe()}")
    if resolution.blockers:
        click.echo("Blocked: a run would change nothing until this is decided:")
        for b in resolution.blockers:
            click.echo(f"  ! {b}")


@dsar.command("run")
@inventory_option
@store_option
@click.argument("request_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before changing data.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where access exports go [default: exports/ beside the store].")
@click.option("--take-over", is_flag=True,
              help="Take the request over from a worker on another host that died while "
                   "running it (one that died on this host is taken over without this).")
@click.option("--verify-every-cell", is_flag=True,
              help="After an erasure, search every text cell of every table for the subject "
                   "(slower), not only identity and free-text columns.")
@click.option("--nothing-left", is_flag=True,
              help="Confirm that a re-planned request's subject has no rows left (its new "
                   "plan finds none where the dropped plan had some); recorded with your name.")
def dsar_run(inventory_path: Path, store_path: Path, request_id: str, yes: bool,
             out_dir: Path | None, take_over: bool, verify_every_cell: bool,
             nothing_left: bool) -> None:
    """Run a verified request (resumes an interrupted one)."""
    from governance.dsar import run_request
    from governance.dsar.runner import step_state
    from governance.inventory import load_inventory

    def confirm(steps: Any) -> bool:
        click.echo("Planned changes:")
        for s in steps:
            click.echo(f"  {s.describe()}")
        if not steps:
            click.echo("  (none: nothing of the subject was found)")
        return yes or click.confirm("Apply these changes?", default=False)

    outcome = run_request(load_inventory(inventory_path), AuditStore(store_path), request_id,
                          _actor(), confirm=confirm, export_dir=out_dir, take_over=take_over,
                          progress=_progress, every_text_cell=verify_every_cell,
                          nothing_left=nothing_left)
    for s in outcome.steps:
        if s.status in ("done", "held"):
            click.echo(f"  {s.describe()} {step_state(outcome, s)}")
    for place, reason in outcome.held.items():
        click.echo(f"  kept under legal hold: {place} ({reason})")
    for place, reason in outcome.kept.items():
        click.echo(f"  kept: {place} ({reason})")
    for place, what in outcome.not_followed.items():
        click.echo(f"  NOT IN THE EXPORT: {place}: {what}")
    for warning in outcome.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    if outcome.export_path:
        click.echo(f"Export ({outcome.found_rows} rows): {outcome.export_path}")
        click.echo(f"Passphrase (send it to the subject by another channel): "
                   f"{outcome.passphrase}")
    if outcome.status == "verification_failed":
        click.echo("VERIFICATION FAILED: the subject is still found in:", err=True)
        for place, n in outcome.remaining.items():
            click.echo(f"  - {place}: {n}", err=True)
        sys.exit(EXIT_PROBLEMS)
    click.echo(f"{request_id}: {outcome.status}")
    if outcome.status == "cancelled":
        sys.exit(EXIT_PROBLEMS)


@dsar.command("replan", epilog="Example: govkit dsar replan dsar-20261125-1a2b3c4d "
              "--reason 'inventory fixed: payment.rental_id detaches'")
@store_option
@click.argument("request_id")
@click.option("--reason", required=True, help="Why the pending steps are dropped (logged, masked).")
def dsar_replan(store_path: Path, request_id: str, reason: str) -> None:
    """Drop a request's pending journal steps so that the next run plans it again."""
    from governance.dsar.runner import replan_request

    dropped = replan_request(_held_store(store_path), request_id, _actor(), reason)
    click.echo(f"{request_id}: {len(dropped)} pending step(s) dropped; `govkit dsar run "
               f"{request_id}` plans it again")


@dsar.command("passphrase")
@store_option
@click.argument("request_id")
def dsar_passphrase(store_path: Path, request_id: str) -> None:
    """Show the passphrase of a request's access export (logged as shown)."""
    from governance.dsar.runner import delivery_passphrase

    store = _held_store(store_path)
    click.echo(delivery_passphrase(store, request_id))
    store.append_log(_actor(), "dsar.passphrase_shown", request_id, {})


@dsar.command("open-export")
@click.argument("export_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--passphrase", prompt=True, hide_input=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder the decrypted files are written to.")
def dsar_open_export(export_file: Path, passphrase: str, out_dir: Path) -> None:
    """Decrypt an access export into a folder (files 0600, folders 0700). The subject opens
    the same file with 7-Zip, WinZip, macOS Archive Utility or `7z x`."""
    from governance.dsar.export import extract_export

    files = extract_export(export_file, passphrase, out_dir)
    click.echo(f"{len(files)} file(s) written to {out_dir} (readable by you only)")


@dsar.group()
def hold() -> None:
    """Legal holds: data that erasure must not touch."""


@hold.command("add")
@store_option
@inventory_option
@click.option("--identity", "identities", multiple=True, help="Hold a subject (repeatable).")
@click.option("--table", default=None,
              help="Hold a whole table: source.table (must be declared in the inventory).")
@click.option("--reason", required=True, help="Why (stored masked, kept for good).")
def hold_add(store_path: Path, inventory_path: Path, identities: tuple[str, ...],
             table: str | None, reason: str) -> None:
    """Place a legal hold on a subject or a table."""
    from governance.dsar import LegalHolds, parse_identity
    from governance.inventory import load_inventory

    if bool(identities) == bool(table):
        raise GovernanceError("give either --identity (a subject) or --table (source.table)")
    holds = LegalHolds(_held_store(store_path))
    h = (holds.place_on_table(table, reason, _actor(), load_inventory(inventory_path))
         if table else
         holds.place_on_subject([parse_identity(i) for i in identities], reason, _actor()))
    click.echo(f"{h.hold_id}: {h.scope} {h.target}: {h.reason}")


@hold.command("list")
@store_option
@json_option
def hold_list(store_path: Path, as_json: bool) -> None:
    """Legal holds in force."""
    from dataclasses import asdict

    from governance.dsar import LegalHolds

    holds = LegalHolds(_held_store(store_path)).active()
    if as_json:
        _echo_json([{**asdict(h), "target": h.target} for h in holds])
        return
    for h in holds:
        click.echo(f"{h.hold_id}: {h.scope} {h.target}: {h.reason} (by {h.placed_by}, "
                   f"{h.placed_at:%Y-%m-%d})")


@hold.command("release")
@store_option
@click.argument("hold_id")
def hold_release(store_path: Path, hold_id: str) -> None:
    """Release a legal hold."""
    from governance.dsar import LegalHolds

    h = LegalHolds(_held_store(store_path)).release(hold_id, _actor())
    click.echo(f"{h.hold_id} released")


# ------------------------------------------------------------------------ audit


@main.group()
def audit() -> None:
    """The audit store's hash-chained log."""


@audit.command("verify-log")
@store_option
@click.option("--expect-head", default=None, metavar="SHA256",
              help="A head hash recorded outside the store: the log must still hold it.")
@click.option("--expect-count", default=None, type=click.IntRange(1), metavar="N",
              help="With --expect-head: the seq it was recorded at (the log must hold at "
                   "least N rows).")
@click.option("--anchor", "anchor_file", type=click.Path(path_type=Path), default=None,
              help="An anchor file (govkit audit anchor --out) [default: STORE.anchor].")
@click.option("--no-anchor", is_flag=True,
              help="Check the chain without the anchor beside the store.")
def verify_log(store_path: Path, expect_head: str | None, expect_count: int | None,
               anchor_file: Path | None, no_anchor: bool) -> None:
    """Check that no audit-log row, and no row of requests, holds or findings, was edited,
    inserted or deleted outside govkit (exit 1 if one was)."""
    store = _held_store(store_path)
    result = store.verify_log(anchor_file, expect_head, expect_count,
                              require_anchor=not no_anchor and anchor_file is None)
    if no_anchor and anchor_file is None:
        result.anchor = None
    if result.ok:
        click.echo(f"audit log OK: {result.rows_checked} rows, chain intact, tracked rows "
                   "match the log" + (f", anchor {result.anchor} matches" if result.anchor
                                      else ""))
        last = store.log_entries(limit=1)
        if last:
            click.echo(f"head: seq {last[0].seq} sha256 {last[0].row_hash} "
                       "(record it outside the store to detect a rewritten chain)")
        return
    click.echo(f"audit log TAMPERED: {len(result.problems)} problem(s) in "
               f"{result.rows_checked} rows", err=True)
    for p in result.problems:
        click.echo(f"  - {p}", err=True)
    sys.exit(1)


@audit.command("anchor")
@store_option
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="Where to write the anchor (mode 0600) [default: STORE.anchor].")
def audit_anchor(store_path: Path, out_file: Path | None) -> None:
    """Record the audit log's head (seq, hash, time) in an anchor file, to check the log
    against later with `verify-log --anchor FILE`; keep a copy outside the store's host."""
    store = _held_store(store_path)
    if not store.verify_log().ok:
        raise GovernanceError(f"the audit log of {store_path} does not verify; run "
                              "`govkit audit verify-log` (no anchor written)")
    a = store.write_anchor(out_file)
    click.echo(f"anchor {out_file or store.anchor_path}: seq {a['seq']} sha256 {a['head']}")


@main.command("init")
@store_option
def init_store(store_path: Path) -> None:
    """Create an empty audit store and its master key (mode 0600)."""
    from governance.crypto.keyring import key_file_for

    existed = store_path.exists()
    store = AuditStore(store_path, create=True)
    version = store.schema_version()
    fingerprint = store.meta("key_fingerprint")
    key = ("GOVKIT_MASTER_KEY" if os.environ.get("GOVKIT_MASTER_KEY")
           else str(key_file_for(store)))
    click.echo(f"audit store {store_path} {'already exists' if existed else 'created'} "
               f"(schema {version}); master key {key}, fingerprint {fingerprint}")


@audit.command("log")
@store_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1),
              help="How many of the newest entries to show.")
@json_option
def show_log(store_path: Path, limit: int, as_json: bool) -> None:
    """Show the last entries of the audit log."""
    from dataclasses import asdict

    entries = _held_store(store_path).log_entries(limit)
    if as_json:
        _echo_json([asdict(e) for e in entries])
        return
    for e in entries:
        click.echo(f"{e.seq:>6} {e.logged_at:%Y-%m-%d %H:%M:%S} {e.actor:<12} {e.action:<16} "
                   f"{e.target or ''} {json.dumps(e.details, ensure_ascii=False)}")


# ------------------------------------------------------------------------ help texts

# One example per command, shown at the end of its --help (tests/test_cli_output.py checks
# that every command has one).
EXAMPLES = {
    "": "govkit inventory -i inventory.yaml && govkit scan && govkit findings",
    "inventory": "govkit inventory -i inventory.yaml --json | jq .discrepancies",
    "scan": "govkit scan --source crm_db --mode full",
    "demo": "govkit demo --dir /tmp/govkit-demo --rebuild",
    "findings": "govkit findings --json | jq '.findings[] | select(.status == \"undeclared_pii\")'",
    "report": "govkit report --out reports    # writes reports/latest.md",
    "scans": "govkit scans --limit 5 --json",
    "detect": "cat export.txt | govkit detect --redact",
    "dsar": "govkit dsar list",
    "dsar new": "govkit dsar new --type erasure --jurisdiction EU --from-file subject.yaml",
    "dsar list": "govkit dsar list --all --json",
    "dsar show": "govkit dsar show dsar-20261125-1a2b3c4d",
    "dsar verify": "govkit dsar verify dsar-20261125-1a2b3c4d --note 'ID checked on a video call'",
    "dsar extend": "govkit dsar extend dsar-20261125-1a2b3c4d --reason 'records in 40 systems'",
    "dsar reject": "govkit dsar reject dsar-20261125-1a2b3c4d --reason 'identity not confirmed'",
    "dsar approve": "govkit dsar approve dsar-20261125-1a2b3c4d --plan plan-3f9a2c1b7d04 "
                    "--note 'plan reviewed by DPO'",
    "dsar plan": "govkit dsar plan dsar-20261125-1a2b3c4d",
    "dsar replan": "govkit dsar replan dsar-20261125-1a2b3c4d",
    "dsar run": "govkit dsar run dsar-20261125-1a2b3c4d",
    "dsar passphrase": "govkit dsar passphrase dsar-20261125-1a2b3c4d",
    "dsar open-export": "govkit dsar open-export exports/dsar-20261125-1a2b3c4d.zip --out subject",
    "dsar hold": "govkit dsar hold list",
    "dsar hold add": "govkit dsar hold add --table app_db.invoices --reason 'tax audit 2026'",
    "dsar hold list": "govkit dsar hold list --json",
    "dsar hold release": "govkit dsar hold release hold-1a2b3c4d",
    "init": "govkit init --store /var/lib/govkit/audit.duckdb",
    "audit": "govkit audit verify-log",
    "audit anchor": "govkit audit anchor --out /mnt/offsite/govkit.anchor",
    "audit verify-log": "govkit audit verify-log --store /var/lib/govkit/audit.duckdb",
    "audit log": "govkit audit log --limit 50 --json",
}

# Help for options declared without one (command path, parameter name).
OPTION_HELP = {
    ("dsar new", "request_type"): "What the subject asks for.",
    ("dsar verify", "text"): "How the subject's identity was verified (stored masked).",
    ("dsar extend", "text"): "Why more time is needed, as told to the subject (stored masked).",
    ("dsar reject", "text"): "Why the request is closed without action (stored masked).",
    ("dsar open-export", "passphrase"): "The export's passphrase (`govkit dsar passphrase "
                                        "ID`); asked for, unechoed, when not given.",
    ("dsar hold add", "reason"): "Why the data must be kept, e.g. the litigation or audit "
                                 "(stored masked).",
}


def _commands(group: click.Group, path: str = "") -> list[tuple[str, click.Command]]:
    """Every command and group below ``group`` with its path (``dsar hold add``)."""
    found: list[tuple[str, click.Command]] = []
    for name, cmd in sorted(group.commands.items()):
        sub = f"{path} {name}".strip()
        found.append((sub, cmd))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, sub)
    return found


def _document(root: click.Group) -> None:
    for path, cmd in [("", root), *_commands(root)]:
        if path in EXAMPLES and not cmd.epilog:
            cmd.epilog = f"\b\nExample:\n  {EXAMPLES[path]}"
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.help:
                param.help = OPTION_HELP.get((path, param.name or ""))


from governance.cli_crypto import register as _register_crypto  # noqa: E402

_register_crypto(main)  # govkit encrypt, decrypt, crypto ... (issue 15)
from governance.cli_retention import retention  # noqa: E402 (issue 16)

main.add_command(retention)
from governance.cli_audit import register as _register_audit  # noqa: E402 (issue 17)

_register_audit(audit, EXAMPLES)  # govkit audit run, audit report
_document(main)


if __name__ == "__main__":
    main()
