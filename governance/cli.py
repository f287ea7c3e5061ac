"""The ``govkit`` command line."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from governance.audit_store import AuditStore, default_store_path
from governance.errors import GovernanceError

DEFAULT_INVENTORY = "inventory.yaml"


def _fail(message: str) -> None:
    click.echo(f"govkit: error: {message}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns toolkit errors into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except GovernanceError as e:
            _fail(str(e))
        except KeyError as e:
            _fail(str(e.args[0]) if e.args else "not found")
        except FileExistsError as e:
            _fail(str(e))


def _progress(message: str) -> None:
    click.echo(f"  .. {message}", err=True)


def _actor() -> str:
    if os.environ.get("GOVKIT_ACTOR"):
        return os.environ["GOVKIT_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


inventory_option = click.option(
    "--inventory", "-i", "inventory_path", type=click.Path(path_type=Path),
    default=lambda: os.environ.get("GOVKIT_INVENTORY", DEFAULT_INVENTORY), show_default=True,
    help="Inventory YAML (env GOVKIT_INVENTORY).")
store_option = click.option(
    "--store", "store_path", type=click.Path(path_type=Path),
    default=lambda: str(default_store_path()), show_default=True,
    help="Audit store DuckDB file (env GOVKIT_AUDIT_STORE).")


@click.group(cls=_Group)
@click.version_option(package_name="govkit")
def main() -> None:
    """Personal data governance for GDPR, CCPA/CPRA and PIPL."""


# ------------------------------------------------------------------------ inventory


@main.command()
@inventory_option
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
def inventory(inventory_path: Path, sources: tuple[str, ...]) -> None:
    """List declared sources and tables, and what is actually found in them."""
    from governance.discovery import discover
    from governance.inventory import load_inventory

    inv = load_inventory(inventory_path)
    click.echo(f"{inv.organization}: {len(inv.sources)} source(s) declared in {inventory_path}")
    problems = 0
    for state in discover(inv, list(sources) or None):
        src = inv.source(state.source)
        click.echo(f"\n{state.source} [{state.kind}] owner={src.owner} "
                   f"jurisdictions={','.join(src.jurisdictions)}")
        if not state.reachable:
            problems += 1
            click.echo(f"  UNREACHABLE: {state.error}")
            continue
        for t in state.tables:
            if not t.present:
                problems += 1
                click.echo(f"  - {t.table}: DECLARED BUT NOT FOUND in the source")
                continue
            mark = "" if t.declared else "  <- NOT DECLARED in the inventory"
            click.echo(f"  - {t.table}: {t.row_count:,} rows, {len(t.columns)} columns{mark}")
            if not t.declared:
                problems += 1
            elif t.undeclared_columns:
                click.echo(f"      columns not declared: {', '.join(t.undeclared_columns)}")
            if t.declared and t.missing_columns:
                problems += 1
                click.echo(f"      DECLARED COLUMNS MISSING: {', '.join(t.missing_columns)}")
    click.echo(f"\n{problems} discrepancy(ies) between inventory and sources")


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
    store = AuditStore(store_path)
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
    if result.status == "failed":
        sys.exit(1)


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
    """Run the PII discovery scan and record findings in the audit store."""
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
@click.option("--run", "run_id", default=None, help="Scan run id [default: latest].")
@click.option("--all", "show_all", is_flag=True, help="Also columns without personal data.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def findings(store_path: Path, run_id: str | None, show_all: bool, as_json: bool) -> None:
    """Show the column findings of a scan run."""
    store = AuditStore(store_path)
    run_id = run_id or store.latest_run_id()
    if not run_id:
        raise GovernanceError(f"no successful scan run in {store_path}; run `govkit scan` first")
    rows = store.findings(run_id)
    if not show_all:
        rows = [r for r in rows if r["detected_category"] or r["declared_category"]]
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, default=str, ensure_ascii=False))
        else:
            click.echo(f"{r['source']}.{r['table_name']}.{r['column_name']}: "
                       f"{r['detected_category'] or '-'} (declared {r['declared_category'] or '-'},"
                       f" confidence {r['confidence']:.2f}, {r['status']})")


@main.command()
@store_option
@click.option("--run", "run_id", default=None, help="Scan run id [default: latest].")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True)
def report(store_path: Path, run_id: str | None, out_dir: Path) -> None:
    """Write the Markdown report of a scan run."""
    from governance.reports import write_scan_report

    store = AuditStore(store_path)
    run_id = run_id or store.latest_run_id()
    if not run_id:
        raise GovernanceError(f"no successful scan run in {store_path}")
    click.echo(str(write_scan_report(store, run_id, out_dir)))


# ------------------------------------------------------------------------ detect


@main.command()
@click.argument("source", default="-", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--redact", "do_redact", is_flag=True,
              help="Write the lines with entities replaced by <TYPE> instead of JSON.")
@click.option("--min-score", default=0.4, show_default=True, type=click.FloatRange(0, 1),
              help="Lowest recognizer score reported.")
def detect(source, do_redact: bool, min_score: float) -> None:  # noqa: ANN001
    """Find personal data in text lines (FILE, or - for stdin); write JSON lines.

    Each output line is {"line": N, "entities": [{"type", "start", "end", "score",
    "recognizer"}]}, offsets counting characters of the input line.
    """
    from governance.detection.text import detect_lines, entity_json, redact

    for number, text, entities in detect_lines(source, min_score):
        if do_redact:
            click.echo(redact(text, entities))
        else:
            click.echo(json.dumps({"line": number,
                                   "entities": [entity_json(e) for e in entities]},
                                  ensure_ascii=False))


# ------------------------------------------------------------------------ dsar


@main.group()
def dsar() -> None:
    """Data-subject requests: access, erasure, rectification; legal holds."""


def _print_request(r) -> None:  # noqa: ANN001
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
def dsar_new(store_path: Path, request_type: str, identities: tuple[str, ...],
             intake_file: Path | None, jurisdiction: str, corrections: tuple[str, ...],
             pipl_working_days: int) -> None:
    """Record a new data-subject request."""
    from governance.dsar import RequestBook

    if bool(identities) == bool(intake_file):
        raise click.UsageError("give the subject's identities with --identity or --from-file "
                               "(one of the two)")
    if intake_file is not None:
        from governance.dsar.intake import create_from_file

        if corrections:
            raise click.UsageError("with --from-file, put the corrections in the file's `set`")
        r = create_from_file(RequestBook(AuditStore(store_path)), intake_file, request_type,
                             jurisdiction, _actor(), pipl_working_days=pipl_working_days)
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
    r = RequestBook(AuditStore(store_path)).create(
        request_type, list(identities), jurisdiction, _actor(), fixes,
        pipl_working_days=pipl_working_days)
    _print_request(r)
    click.echo(f"next: verify the subject's identity, then `govkit dsar verify {r.request_id} "
               "--note '...'`", err=True)


@dsar.command("list")
@store_option
@click.option("--all", "show_all", is_flag=True, help="Also completed and rejected requests.")
def dsar_list(store_path: Path, show_all: bool) -> None:
    """Open requests with days left, overdue first."""
    from governance.dsar import RequestBook

    requests = RequestBook(AuditStore(store_path)).list_requests(open_only=not show_all)
    for r in requests:
        _print_request(r)
    overdue = sum(1 for r in requests if r.is_open and r.days_left() < 0)
    click.echo(f"{len(requests)} request(s), {overdue} overdue", err=True)


@dsar.command("show")
@store_option
@click.argument("request_id")
def dsar_show(store_path: Path, request_id: str) -> None:
    """A request, its journal and its audit-log history."""
    from governance.dsar import RequestBook
    from governance.dsar.journal import read_journal

    store = AuditStore(store_path)
    r = RequestBook(store).get(request_id)
    _print_request(r)
    if r.extension_reason:
        click.echo(f"  extended: {r.extension_reason}")
    for step in read_journal(store, request_id, None):
        click.echo(f"  {step.describe()} [{step.status}"
                   + (f", {step.rows_affected} changed]" if step.status == "done" else "]"))
    if r.outcome:
        click.echo("  outcome: " + json.dumps(r.outcome, ensure_ascii=False, default=str))
    for e in store.log_entries():
        if e.target == request_id:
            click.echo(f"  {e.seq:>5} {e.logged_at:%Y-%m-%d %H:%M:%S} {e.actor:<10} {e.action}")


def _transition_command(name: str, help_text: str, option: str, method: str) -> None:
    @dsar.command(name, help=help_text)
    @store_option
    @click.argument("request_id")
    @click.option(f"--{option}", "text", required=True)
    def command(store_path: Path, request_id: str, text: str) -> None:
        from governance.dsar import RequestBook

        _print_request(getattr(RequestBook(AuditStore(store_path)), method)(
            request_id, _actor(), text))


_transition_command("verify", "Record that the subject's identity was verified, and how.",
                    "note", "verify")
_transition_command("extend", "Extend the deadline once (GDPR +2 months, CCPA +45 days), "
                    "with the reason told to the subject.", "reason", "extend")
_transition_command("reject", "Close a request without acting on it, with the reason.",
                    "reason", "reject")


@dsar.command("plan")
@inventory_option
@store_option
@click.argument("request_id")
def dsar_plan(inventory_path: Path, store_path: Path, request_id: str) -> None:
    """Where the subject is found and what a run would change; changes nothing."""
    from governance.dsar import plan_request
    from governance.inventory import load_inventory

    resolution, steps = plan_request(load_inventory(inventory_path), AuditStore(store_path),
                                     request_id, _progress)
    _print_plan(resolution, steps)


def _print_plan(resolution, steps) -> None:  # noqa: ANN001
    click.echo(f"Found in {len(resolution.locations)} place(s), "
               f"{len(resolution.searched)} column search(es):")
    for loc in resolution.locations:
        click.echo(f"  - {loc.describe()}")
    for source, error in resolution.unreachable.items():
        click.echo(f"  ! {source}: UNREACHABLE: {error}")
    if steps:
        click.echo("Changes:")
        for s in steps:
            click.echo(f"  {s.describe()}")


@dsar.command("run")
@inventory_option
@store_option
@click.argument("request_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before changing data.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where access exports go [default: exports/ beside the store].")
@click.option("--take-over", is_flag=True,
              help="Take the request over from a worker that died while running it.")
def dsar_run(inventory_path: Path, store_path: Path, request_id: str, yes: bool,
             out_dir: Path | None, take_over: bool) -> None:
    """Run a verified request (resumes an interrupted one)."""
    from governance.dsar import run_request
    from governance.inventory import load_inventory

    def confirm(steps) -> bool:  # noqa: ANN001
        click.echo("Planned changes:")
        for s in steps:
            click.echo(f"  {s.describe()}")
        if not steps:
            click.echo("  (none: nothing of the subject was found)")
        return yes or click.confirm("Apply these changes?", default=False)

    outcome = run_request(load_inventory(inventory_path), AuditStore(store_path), request_id,
                          _actor(), confirm=confirm, export_dir=out_dir, take_over=take_over,
                          progress=_progress)
    for s in outcome.steps:
        if s.status == "done":
            click.echo(f"  {s.describe()} [done, {s.rows_affected} changed]")
        elif s.status == "held":
            click.echo(f"  {s.describe()} [held]")
    for place, reason in outcome.held.items():
        click.echo(f"  kept under legal hold: {place} ({reason})")
    if outcome.export_path:
        click.echo(f"Export ({outcome.found_rows} rows): {outcome.export_path}")
        click.echo(f"Passphrase (send it to the subject by another channel): "
                   f"{outcome.passphrase}")
    if outcome.status == "verification_failed":
        click.echo("VERIFICATION FAILED: the subject is still found in:", err=True)
        for place, n in outcome.remaining.items():
            click.echo(f"  - {place}: {n}", err=True)
        sys.exit(1)
    click.echo(f"{request_id}: {outcome.status}")


@dsar.command("passphrase")
@store_option
@click.argument("request_id")
def dsar_passphrase(store_path: Path, request_id: str) -> None:
    """Show the passphrase of a request's access export (logged as shown)."""
    from governance.dsar.runner import delivery_passphrase

    store = AuditStore(store_path)
    click.echo(delivery_passphrase(store, request_id))
    store.append_log(_actor(), "dsar.passphrase_shown", request_id, {})


@dsar.command("open-export")
@click.argument("export_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--passphrase", prompt=True, hide_input=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder the decrypted files are written to.")
def dsar_open_export(export_file: Path, passphrase: str, out_dir: Path) -> None:
    """Decrypt an access export into a folder."""
    from governance.dsar.export import open_export

    files = open_export(export_file, passphrase)
    for name, content in files.items():
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")
    click.echo(f"{len(files)} file(s) written to {out_dir}")


@dsar.group()
def hold() -> None:
    """Legal holds: data that erasure must not touch."""


@hold.command("add")
@store_option
@click.option("--identity", "identities", multiple=True, help="Hold a subject (repeatable).")
@click.option("--table", default=None, help="Hold a whole table: source.table.")
@click.option("--reason", required=True)
def hold_add(store_path: Path, identities: tuple[str, ...], table: str | None,
             reason: str) -> None:
    """Place a legal hold on a subject or a table."""
    from governance.dsar import LegalHolds, parse_identity

    if bool(identities) == bool(table):
        raise GovernanceError("give either --identity (a subject) or --table (source.table)")
    holds = LegalHolds(AuditStore(store_path))
    h = (holds.place_on_table(table, reason, _actor()) if table else
         holds.place_on_subject([parse_identity(i) for i in identities], reason, _actor()))
    click.echo(f"{h.hold_id}: {h.scope} {h.target}: {h.reason}")


@hold.command("list")
@store_option
def hold_list(store_path: Path) -> None:
    """Legal holds in force."""
    from governance.dsar import LegalHolds

    for h in LegalHolds(AuditStore(store_path)).active():
        click.echo(f"{h.hold_id}: {h.scope} {h.target}: {h.reason} (by {h.placed_by}, "
                   f"{h.placed_at:%Y-%m-%d})")


@hold.command("release")
@store_option
@click.argument("hold_id")
def hold_release(store_path: Path, hold_id: str) -> None:
    """Release a legal hold."""
    from governance.dsar import LegalHolds

    h = LegalHolds(AuditStore(store_path)).release(hold_id, _actor())
    click.echo(f"{h.hold_id} released")


# ------------------------------------------------------------------------ audit


@main.group()
def audit() -> None:
    """The audit store's hash-chained log."""


@audit.command("verify-log")
@store_option
def verify_log(store_path: Path) -> None:
    """Check that no audit-log row was edited or deleted (exit 1 if one was)."""
    if not store_path.exists():
        raise GovernanceError(f"audit store not found: {store_path}")
    store = AuditStore(store_path)
    result = store.verify_log()
    if result.ok:
        click.echo(f"audit log OK: {result.rows_checked} rows, chain intact")
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


@audit.command("log")
@store_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1))
def show_log(store_path: Path, limit: int) -> None:
    """Show the last entries of the audit log."""
    if not store_path.exists():
        raise GovernanceError(f"audit store not found: {store_path}")
    for e in AuditStore(store_path).log_entries(limit):
        click.echo(f"{e.seq:>6} {e.logged_at:%Y-%m-%d %H:%M:%S} {e.actor:<12} {e.action:<16} "
                   f"{e.target or ''} {json.dumps(e.details, ensure_ascii=False)}")


if __name__ == "__main__":
    main()
