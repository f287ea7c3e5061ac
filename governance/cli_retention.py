"""``govkit retention``: validate policies, explain, plan (dry run), apply, audit, holds."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from governance.errors import GovernanceError

POLICY_ENV = "GOVKIT_RETENTION_POLICY"


def _cli() -> Any:
    from governance import cli

    return cli


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date or time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _range_end(text: str) -> datetime:
    """The end of a held range: a date alone means the whole of that day (its last
    instant), a date and time that instant."""
    at = _when(text)
    if len(text.strip()) == 10:      # YYYY-MM-DD: to the end of that day
        at = at + timedelta(days=1) - timedelta(microseconds=1)
    return at


def _policies(paths: tuple[Path, ...]) -> list[Any]:
    from governance.retention.policy import load_policies

    if not paths:
        env = os.environ.get(POLICY_ENV)
        paths = tuple(Path(p) for p in env.split(os.pathsep)) if env else ()
    if not paths:
        raise GovernanceError(f"no retention policy: pass --policy FILE (or set {POLICY_ENV})")
    return load_policies(paths)


def _store_option(f: Any) -> Any:
    from governance.audit_store import default_store_path

    return click.option(
        "--store", "store_path", type=click.Path(path_type=Path),
        default=lambda: str(default_store_path()),
        help="Audit store DuckDB file (env GOVKIT_AUDIT_STORE, else ./govkit-audit.duckdb).")(f)


def _inventory_option(f: Any) -> Any:
    return click.option(
        "--inventory", "-i", "inventory_path", type=click.Path(path_type=Path),
        default=lambda: os.environ.get("GOVKIT_INVENTORY", "inventory.yaml"),
        help="Inventory YAML (env GOVKIT_INVENTORY, else ./inventory.yaml).")(f)


def _common(f: Any) -> Any:
    f = click.option("--policy", "-p", "policy_paths", multiple=True,
                     type=click.Path(path_type=Path),
                     help=f"Retention policy YAML; repeat for several (env {POLICY_ENV}, "
                          "paths separated by ':').")(f)
    f = click.option("--now", "now_text", default=None,
                     help="The moment periods are counted back from (ISO; default: now, UTC).")(f)
    return _store_option(_inventory_option(f))


@click.group()
def retention() -> None:
    """Retention schedules: how long personal data is kept, enforced with proof.

    \b
    Example:
      govkit retention plan -p retention.yaml
    """


@retention.command("validate")
@_common
def validate(inventory_path: Path, store_path: Path, policy_paths: tuple[Path, ...],
             now_text: str | None) -> None:
    """Check policy files against the inventory, the sources and the latest scan.

    \b
    Example:
      govkit retention validate -p retention.yaml
    """
    from governance.audit_store import AuditStore
    from governance.inventory import load_inventory
    from governance.retention.policy import check_policy, load_estate
    from governance.sources.pool import ConnectorPool

    policies = _policies(policy_paths)
    inv = load_inventory(inventory_path)
    store = AuditStore(store_path)
    with ConnectorPool(inv) as pool:
        estate = load_estate(inv, store, pool)
        for p in policies:
            check_policy(p, estate, pool)
    click.echo(f"{len(policies)} policy file(s), "
               f"{sum(len(p.profile.rules) for p in policies)} rule(s): valid")


@retention.command("explain")
@_common
@click.argument("table")
def explain(inventory_path: Path, store_path: Path, policy_paths: tuple[Path, ...],
            now_text: str | None, table: str) -> None:
    """Which rule decides for SOURCE.TABLE, and why (every rule and hold considered).

    \b
    Example:
      govkit retention explain app_db.orders -p retention.yaml
    """
    from governance.audit_store import AuditStore
    from governance.inventory import load_inventory
    from governance.legal_holds import holds_in_force
    from governance.retention.conflicts import decide
    from governance.retention.policy import load_estate
    from governance.sources.pool import ConnectorPool

    source, _, name = table.partition(".")
    if not name:
        raise GovernanceError(f"{table!r}: write it as source.table")
    policies = _policies(policy_paths)
    inv = load_inventory(inventory_path)
    inv.source(source)
    store = AuditStore(store_path)
    with ConnectorPool(inv) as pool:
        estate = load_estate(inv, store, pool, [source])
    decisions = decide(policies, estate, holds_in_force(store, _when(now_text)),
                       [(source, name)])
    d = decisions.get((source, name))
    if d is None:
        click.echo(f"{table}: no retention rule covers this table")
        sys.exit(_cli().EXIT_PROBLEMS)
    for line in d.explain():
        click.echo(line)


def _print_plan(plan: Any) -> None:
    click.echo(f"Retention plan at {plan.now:%Y-%m-%d %H:%M} UTC:")
    for s in plan.steps:
        click.echo(f"  {s.describe()}")
    for note in plan.notes:
        click.echo(f"  ? {note}")
    click.echo(f"{plan.due} row(s) due")


@retention.command("plan")
@_common
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plan_cmd(inventory_path: Path, store_path: Path, policy_paths: tuple[Path, ...],
             now_text: str | None, sources: tuple[str, ...], as_json: bool) -> None:
    """Dry run: per rule and table, the rows due and held (counted by the sources).

    \b
    Example:
      govkit retention plan -p retention.yaml --now 2026-12-01
    """
    from governance.audit_store import AuditStore
    from governance.inventory import load_inventory
    from governance.retention.planning import plan_retention

    inv = load_inventory(inventory_path)
    plan = plan_retention(_policies(policy_paths), inv, AuditStore(store_path),
                          _when(now_text), sources or None)
    if as_json:
        _cli()._echo_json(plan.as_json())
    else:
        _print_plan(plan)


@retention.command("apply")
@_common
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@click.option("--batch-rows", default=500_000, show_default=True,
              help="Rows changed per batch (one source transaction each).")
@click.option("--yes", is_flag=True, help="Apply without asking.")
def apply_cmd(inventory_path: Path, store_path: Path, policy_paths: tuple[Path, ...],
              now_text: str | None, sources: tuple[str, ...], batch_rows: int,
              yes: bool) -> None:
    """Delete or anonymize what is due, in batches, journaled; a killed run resumes.

    \b
    Example:
      govkit retention apply -p retention.yaml --yes
    """
    from governance.audit_store import AuditStore
    from governance.encryption.keys import holds_person_keys
    from governance.inventory import load_inventory
    from governance.retention.applying import apply_retention, persons_deleted

    cli = _cli()
    inv = load_inventory(inventory_path)

    def confirm(plan: Any) -> None:
        _print_plan(plan)
        if not yes and plan.due and not click.confirm("Apply this plan?", default=False):
            click.echo("Nothing changed.")
            sys.exit(cli.EXIT_PROBLEMS)

    result = apply_retention(_policies(policy_paths), inv, AuditStore(store_path),
                             _when(now_text), cli._actor(), batch_rows, sources or None,
                             cli._progress, confirm)
    for s in result.steps:
        note = f"  ({s['note']})" if s.get("note") else ""
        click.echo(f"  {s['rule']}: {s['source']}.{s['table_name']}: {s['action']} "
                   f"{s['rows_affected']} row(s), {s['held_rows']} held, {s['status']}{note}")
    click.echo(f"Run {result.run_id}{' (resumed)' if result.resumed else ''}: "
               f"{result.changed} row(s) changed; proof in the audit log")
    people = persons_deleted(inv, result)
    if people and holds_person_keys(AuditStore(store_path), live_only=True):
        # Their data keys open copies and backups taken before: an erasure would destroy them.
        click.echo(f"note: {people} person row(s) deleted; copies of the data taken before "
                   "still decrypt for them while their data keys live: `govkit crypto "
                   "shred-departed --apply` destroys the keys no live cell uses")


@retention.command("audit")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def audit_cmd(inventory_path: Path, store_path: Path, policy_paths: tuple[Path, ...],
              now_text: str | None, as_json: bool) -> None:
    """Tables holding rows past retention; personal-data columns no rule covers.

    \b
    Example:
      govkit retention audit -p retention.yaml
    """
    from governance.audit_store import AuditStore
    from governance.inventory import load_inventory
    from governance.retention.audit import retention_findings

    found = retention_findings(_policies(policy_paths), load_inventory(inventory_path),
                               AuditStore(store_path), _when(now_text))
    if as_json:
        _cli()._echo_json(found)
    else:
        for p in found["past_retention"]:
            kept = f"; {p['referenced']} more kept: other rows still refer to them" \
                if p["referenced"] else ""
            click.echo(f"  ! {p['table']}: {p['rows']} row(s) past {p['rule']} "
                       f"({p['action']}){kept}")
        for u in found["uncovered"]:
            click.echo(f"  ~ {u['table']}.{u['column']} ({u['category']}): no retention rule")
    if found["past_retention"] or found["uncovered"]:
        sys.exit(_cli().EXIT_PROBLEMS)


@retention.command("hold")
@_store_option
@_inventory_option
@click.option("--source", default=None, help="Hold a whole source.")
@click.option("--table", default=None, help="Hold a table, written source.table.")
@click.option("--from", "covers_from", default=None,
              help="With --to: hold only rows whose retention clock is in this range (ISO).")
@click.option("--to", "covers_to", default=None,
              help="End of the held range (ISO; a date alone holds that whole day).")
@click.option("--keys-file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Hold the persons of --table whose subject keys are in this file (one a "
                   "line); the keys are stored sealed.")
@click.option("--until", "ends_at", default=None, help="When the hold ends by itself (ISO).")
@click.option("--reason", required=True, help="Why the data must be kept (stored masked).")
def hold_cmd(store_path: Path, inventory_path: Path, source: str | None, table: str | None,
             covers_from: str | None, covers_to: str | None, keys_file: Path | None,
             ends_at: str | None, reason: str) -> None:
    """Place a legal hold on a source, a table, a time range, or persons by key
    (release it with govkit dsar hold release; list with govkit dsar hold list).

    \b
    Example:
      govkit retention hold --table app_db.orders --from 2024-01-01 --to 2024-06-30 \\
        --reason "Case 12"
    """
    from governance.audit_store import AuditStore
    from governance.inventory import load_inventory
    from governance.retention.holds import place_hold

    if (covers_from is None) != (covers_to is None):
        raise GovernanceError("give both --from and --to")
    keys = None
    if keys_file is not None:
        keys = [k.strip() for k in keys_file.read_text().splitlines() if k.strip()]
    covers = (_when(covers_from), _range_end(covers_to)) if covers_from and covers_to \
        else None
    if ends_at is not None and _when(ends_at) <= datetime.now(UTC):
        raise GovernanceError(f"--until {ends_at}: that time has passed, so the hold would "
                              "protect nothing; give a time to come")
    # The inventory says which sources and tables exist: a hold on a mistyped name is refused.
    inventory = load_inventory(inventory_path)
    h = place_hold(AuditStore(store_path), reason=reason, actor=_cli()._actor(),
                   source=source, table=table, covers=covers,
                   ends_at=_when(ends_at) if ends_at else None, subject_keys=keys,
                   inventory=inventory)
    click.echo(f"Placed {h.describe()}")
