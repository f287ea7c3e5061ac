"""``govkit encrypt``, ``govkit decrypt`` and ``govkit crypto ...``: field-level encryption."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from governance.audit_store import default_store_path

# Not imported from governance.cli: it imports this module (also when run as __main__).
from governance.cli_support import EXIT_PROBLEMS
from governance.cli_support import actor as _actor
from governance.cli_support import progress as _progress
from governance.errors import GovernanceError


def _echo_json(value: Any) -> None:
    from governance.reports import jsonable

    click.echo(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


class _Group(click.Group):
    """Turns toolkit errors into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GovernanceError as e:
            click.echo(f"govkit: error: {e}", err=True)
            sys.exit(2)


class _EnvDefault(click.Option):
    """An option whose default is read from the environment when the command runs."""

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        return super().get_default(ctx, call=True)


inventory_option = click.option(
    "--inventory", "-i", "inventory_path", type=click.Path(path_type=Path), cls=_EnvDefault,
    default=lambda: os.environ.get("GOVKIT_INVENTORY", "inventory.yaml"), show_default=True,
    help="Inventory YAML (env GOVKIT_INVENTORY, else ./inventory.yaml).")
store_option = click.option(
    "--store", "store_path", type=click.Path(path_type=Path), cls=_EnvDefault,
    default=lambda: str(default_store_path()), show_default=True,
    help="Audit store DuckDB file (env GOVKIT_AUDIT_STORE, else ./govkit-audit.duckdb).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document (objects nested, not JSON text).")

policy_option = click.option(
    "--policy", "policy_path", type=click.Path(path_type=Path), default=None,
    help="Encryption policy YAML (default: encryption.yaml beside the inventory, else the "
         "built-in defaults: every sensitive category).")


def _open(inventory_path: Path, store_path: Path, policy_path: Path | None) -> tuple[Any, ...]:
    from governance.audit_store import AuditStore
    from governance.encryption import load_policy
    from governance.inventory import load_inventory

    inv = load_inventory(inventory_path)
    policy = load_policy(policy_path, inv)
    return inv, AuditStore(store_path), policy


def _keys(store: Any, policy: Any) -> Any:
    from governance.encryption import subject_keys_for

    return subject_keys_for(policy, store)


@click.command("encrypt", epilog="\b\nExample:\n  govkit encrypt --source app_db --apply")
@inventory_option
@store_option
@policy_option
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@click.option("--table", "tables", multiple=True,
              help="Only this table, `table` or `source.table` (repeatable).")
@click.option("--column", "columns", multiple=True,
              help="Only this column, `column` or `source.table.column` (repeatable).")
@click.option("--apply", is_flag=True,
              help="Rewrite the cells; without it, only show what would be encrypted.")
@json_option
def encrypt_command(inventory_path: Path, store_path: Path, policy_path: Path | None,
                    sources: tuple[str, ...], tables: tuple[str, ...],
                    columns: tuple[str, ...], apply: bool, as_json: bool) -> None:
    """Encrypt in place the columns the encryption policy requires (dry run by default).

    Each cell is sealed with AES-256-GCM under its data subject's own key (found through
    the ownership graph), bound to its source, table, column and row. Cells already
    encrypted are left alone; a run that stops midway resumes where it stopped. Exit
    status 1 when a table could not be done.
    """
    from governance.encryption import encrypt

    inv, store, policy = _open(inventory_path, store_path, policy_path)
    for s in sources:
        inv.source(s)
    keys = _keys(store, policy) if apply else None
    out = encrypt(inv, store, keys, policy, apply=apply, actor=_actor(),
                  sources=list(sources) or None, tables=list(tables) or None,
                  columns=list(columns) or None, progress=None if as_json else _progress)
    if as_json:
        from dataclasses import asdict

        _echo_json({"applied": apply, "tables": [asdict(t) for t in out.tables]})
    else:
        if not out.tables:
            click.echo("No column of these sources is required encrypted by the policy.")
        for t in out.tables:
            click.echo(t.describe(applied=apply))
        if not apply and out.tables:
            click.echo("Dry run: nothing was changed (add --apply to encrypt).")
    if not out.ok:
        sys.exit(EXIT_PROBLEMS)


@click.command("decrypt", epilog="\b\nExample:\n  govkit decrypt app_db user_kyc --key 17 "
               "--reason \"fraud case 2291\" --out kyc-17.csv")
@inventory_option
@store_option
@policy_option
@click.argument("source")
@click.argument("table")
@click.option("--column", "columns", multiple=True,
              help="Only this column (repeatable; default: every column).")
@click.option("--key", "key_values", multiple=True,
              help="Only the row with this row key (repeatable; default: every row).")
@click.option("--reason", required=True,
              help="Why this read is authorised (logged, with personal data masked).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="Write CSV to this file (created 0600) instead of standard output.")
def decrypt_command(inventory_path: Path, store_path: Path, policy_path: Path | None,
                    source: str, table: str, columns: tuple[str, ...],
                    key_values: tuple[str, ...], reason: str, out_file: Path | None) -> None:
    """Read rows of a table with their encrypted cells decrypted (an authorised read).

    The read is recorded in the audit log: who, why, where, how many cells (never a value).
    A cell whose subject was crypto-shredded reads as empty.
    """
    from governance.encryption import Decryptor

    inv, store, policy = _open(inventory_path, store_path, policy_path)
    inv.source(source)
    dec = Decryptor(inv, store, _keys(store, policy), policy)
    f: Any = sys.stdout
    if out_file is not None:   # made (0600, never over a file) before anything is read
        try:
            fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise GovernanceError(f"--out {out_file}: {e.strerror or type(e).__name__} (give a "
                                  "new file's path); nothing was decrypted") from None
        f = os.fdopen(fd, "w", newline="", encoding="utf-8")
    try:
        got = dec.read(source, table, list(columns) or None, _actor(), reason,
                       key_values=list(key_values) or None)
    except BaseException:
        if out_file is not None:
            f.close()
            out_file.unlink(missing_ok=True)
        raise
    names = list(got.rows[0]) if got.rows else list(columns)
    w = csv.DictWriter(f, fieldnames=names)
    w.writeheader()
    for r in got.rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    if out_file is not None:
        f.close()
    shredded = got.cells_unreadable - got.cells_invalid
    click.echo(f"{len(got.rows)} row(s), {got.cells_decrypted} cell(s) decrypted, "
               f"{got.cells_unreadable} unreadable ({shredded} shredded, {got.cells_invalid} "
               "invalid: altered or moved)", err=True)
    if got.cells_invalid:
        click.echo(f"{got.cells_invalid} cell(s) do not decrypt in their place (altered, or "
                   "copied from another row or column): they read as empty; find them with "
                   "`govkit crypto audit --decrypt-check`", err=True)
        sys.exit(EXIT_PROBLEMS)


@click.group("crypto", cls=_Group,
             epilog="\b\nExample:\n  govkit crypto audit --json")
def crypto() -> None:
    """Field-encryption keys and checks: audit, shred, rotate."""


@crypto.command("audit", epilog="\b\nExample:\n  govkit crypto audit --json")
@inventory_option
@store_option
@policy_option
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@click.option("--decrypt-check", is_flag=True,
              help="Also decrypt every envelope in its place (needs the key-encryption key): "
                   "finds ciphertexts moved to another row or altered.")
@json_option
def crypto_audit(inventory_path: Path, store_path: Path, policy_path: Path | None,
                 sources: tuple[str, ...], decrypt_check: bool, as_json: bool) -> None:
    """Check that every column the policy requires encrypted holds only valid envelopes
    whose keys exist; record the findings. Exit status 1 when one does not."""
    from governance.encryption import encryption_status
    from governance.encryption.audit import as_dicts

    inv, store, policy = _open(inventory_path, store_path, policy_path)
    keys = _keys(store, policy) if decrypt_check else None
    found = encryption_status(inv, store, policy, keys, list(sources) or None,
                              actor=_actor())
    if as_json:
        _echo_json({"columns": as_dicts(found)})
    else:
        for s in found:
            click.echo(("  ok  " if s.ok else "  !!  ") + s.describe())
        if not found:
            click.echo("The policy requires no column of these sources encrypted.")
    if any(not s.ok for s in found):
        sys.exit(EXIT_PROBLEMS)


@crypto.command("shred", epilog="\b\nExample:\n  govkit crypto shred --person app_db.users=17 "
                "--reason \"erasure dsar-20261125-1a2b3c4d\" --yes")
@inventory_option
@store_option
@policy_option
@click.option("--person", "persons", multiple=True, required=True,
              help="A person row: source.table=KEY (its subject key; repeatable).")
@click.option("--reason", required=True, help="Why (logged, with personal data masked).")
@click.option("--request", "request_id", default=None, help="The erasure request it serves.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def crypto_shred(inventory_path: Path, store_path: Path, policy_path: Path | None,
                 persons: tuple[str, ...], reason: str, request_id: str | None,
                 yes: bool) -> None:
    """Crypto-shred data subjects: destroy their data keys in this audit store, so that no
    ciphertext of theirs (in the sources, and in copies and backups of them) can be
    decrypted with it. A backup of the audit store taken before still holds the keys: see
    the README (Crypto-shredding) for making such backups useless."""
    from governance.encryption import shred_person_rows
    from governance.encryption.keys import holds_person_keys
    from governance.encryption.subjects import person_key_column
    from governance.errors import GovernanceError
    from governance.sources.pool import ConnectorPool

    inv, store, policy = _open(inventory_path, store_path, policy_path)
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with ConnectorPool(inv) as pool:
        for p in persons:
            place, sep, value = p.partition("=")
            parts = place.split(".")
            if not sep or len(parts) != 2 or not value:
                raise GovernanceError(f"--person {place}=...: write source.table=KEY")
            table = (parts[0], parts[1])
            decl = inv.source(table[0]).table(table[1])
            if decl is None or not decl.is_person:
                raise GovernanceError(f"--person {place}=...: not a person table of the "
                                      "inventory (one with a subject_key); nothing was "
                                      "destroyed")
            col = person_key_column(inv, pool, table)
            rows.setdefault(table, []).append({col: value})
    # A mistyped key, or a person none of whose data was ever encrypted, has no data key:
    # refused before anything is written (a shred of nobody would read as an erasure).
    if not holds_person_keys(store):
        raise GovernanceError("this audit store holds no data key of any person (nothing was "
                              "encrypted under it); nothing was destroyed")
    keys = _keys(store, policy)
    unknown = [f"{t[0]}.{t[1]}={v}" for t, rs in rows.items() for r in rs for v in r.values()
               if not keys.subject_state(keys.subject_ref(t, v))]
    if unknown:
        raise GovernanceError(f"no data key was ever made for {', '.join(unknown)} (a mistyped "
                              "key, or nothing of theirs is encrypted); nothing was destroyed")
    if not yes:
        click.confirm(f"Destroy the data keys of {len(persons)} person(s)? This cannot be "
                      "undone", abort=True)
    out = shred_person_rows(inv, keys, rows, _actor(), reason, request_id)
    before = "" if out.keys_destroyed else " (their keys were destroyed before)"
    click.echo(f"{len(out.keys_destroyed)} data key(s) destroyed for {len(out.subjects)} "
               f"subject(s){before} in {out.seconds * 1000:.1f} ms; check: "
               f"{'no key left' if out.verified else 'KEYS REMAIN'}")
    if out.keys_destroyed:
        click.echo("note: a backup of this audit store taken before still holds these keys; "
                   "rotate the key-encryption key (govkit crypto rotate-master) and destroy "
                   "the old one to make such backups useless")
    if not out.verified:
        sys.exit(EXIT_PROBLEMS)


@crypto.command("shred-departed", epilog="\b\nExample:\n  govkit crypto shred-departed "
                "--apply")
@inventory_option
@store_option
@policy_option
@click.option("--apply", is_flag=True, help="Destroy the keys; without it, only count them.")
def crypto_shred_departed(inventory_path: Path, store_path: Path, policy_path: Path | None,
                          apply: bool) -> None:
    """Crypto-shred the data keys of people who are gone: no person row of any source names
    them any more (retention deleted them) and no live cell is sealed under their keys, so
    the keys open nothing but old copies and backups of the data. A dry run by default."""
    from governance.encryption.departed import departed_subjects, shred_departed

    inv, store, policy = _open(inventory_path, store_path, policy_path)
    keys = _keys(store, policy)
    found = departed_subjects(inv, store, keys, policy)
    click.echo(found.describe())
    if found.unreadable:
        sys.exit(EXIT_PROBLEMS)
    if not apply:
        if found.subjects:
            click.echo("Dry run: nothing was destroyed (add --apply).")
        return
    out = shred_departed(keys, found, _actor())
    if out is not None:
        click.echo(f"{len(out.keys_destroyed)} data key(s) destroyed for {len(out.subjects)} "
                   f"subject(s); check: {'no key left' if out.verified else 'KEYS REMAIN'}")
        if not out.verified:
            sys.exit(EXIT_PROBLEMS)


@crypto.command("rotate-master", epilog="\b\nExample:\n  GOVKIT_NEW_KEK=$(head -c32 "
                "/dev/urandom | base64) govkit crypto rotate-master --new-key-env GOVKIT_NEW_KEK")
@inventory_option
@store_option
@policy_option
@click.option("--new-key-env", default=None,
              help="Environment variable holding the new local key-encryption key (base64).")
@click.option("--new-hsm-key-label", default=None,
              help="Label of the new KEK in the policy's PKCS#11 token (created if missing).")
@click.option("--batch", default=50_000, show_default=True, help="Keys per transaction.")
def crypto_rotate_master(inventory_path: Path, store_path: Path, policy_path: Path | None,
                         new_key_env: str | None, new_hsm_key_label: str | None,
                         batch: int) -> None:
    """Rewrap every data key under a new key-encryption key (no data is rewritten).

    Resumable; readers that hold both keys never fail meanwhile: list the new key under
    the policy's ``also_unwrap_with`` first. Afterwards, point the policy's key_store at
    the new key.
    """
    from governance.encryption import keystore_for, rotate_kek
    from governance.encryption.policy import KeyStoreDecl
    from governance.errors import GovernanceError

    inv, store, policy = _open(inventory_path, store_path, policy_path)
    if bool(new_key_env) == bool(new_hsm_key_label):
        raise GovernanceError("give one of --new-key-env or --new-hsm-key-label")
    old = keystore_for(policy, store)
    if new_key_env:
        decl = KeyStoreDecl(kind="local", key_env=new_key_env)
    else:
        # The token: the policy's own, else the one its also_unwrap_with names (keys
        # moved from a local KEK into an HSM).
        tokens = [d for d in (policy.key_store, *policy.also_unwrap_with) if d.kind == "pkcs11"]
        token = next((d for d in tokens if d.key_label == new_hsm_key_label),
                     tokens[0] if tokens else None)
        if token is None:
            raise GovernanceError("--new-hsm-key-label: the policy names no PKCS#11 token; list "
                                  "the new key under also_unwrap_with first (kind: pkcs11, "
                                  "module, token_label, key_label, pin_env); nothing was changed")
        decl = token.model_copy(update={"key_label": new_hsm_key_label})
    new = keystore_for(policy.model_copy(update={"key_store": decl}), store, create_kek=True)
    out = rotate_kek(store, old, new, _actor(), batch, _progress)
    click.echo(f"{out.keys} data key(s) rewrapped in {out.seconds:.2f} s "
               f"({out.rate:,.0f} keys/s); {out.remaining} left under the old key")


@crypto.command("rotate-keys", epilog="\b\nExample:\n  govkit crypto rotate-keys "
                "--person app_db.users=17 --yes")
@inventory_option
@store_option
@policy_option
@click.option("--person", "persons", multiple=True,
              help="Rotate this person's data key: source.table=KEY (repeatable; default all).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def crypto_rotate_keys(inventory_path: Path, store_path: Path, policy_path: Path | None,
                       persons: tuple[str, ...], yes: bool) -> None:
    """Give data subjects new data keys, re-encrypt their cells, destroy the old keys.

    Resumable: a run that stops midway is finished by the next one.
    """
    from governance.encryption import rotate_data_keys
    from governance.encryption.subjects import person_key_column
    from governance.sources.pool import ConnectorPool

    inv, store, policy = _open(inventory_path, store_path, policy_path)
    keys = _keys(store, policy)
    subjects = None
    if persons:
        subjects = []
        with ConnectorPool(inv) as pool:
            for p in persons:
                place, _, value = p.partition("=")
                src, _, tbl = place.partition(".")
                person_key_column(inv, pool, (src, tbl))
                subjects.append(keys.subject_ref((src, tbl), value))
    if not yes:
        click.confirm("Re-encrypt the cells of " + (f"{len(persons)} person(s)" if persons
                      else "every subject") + " under new data keys?", abort=True)
    out = rotate_data_keys(inv, store, keys, policy, subjects, _actor(), _progress)
    click.echo(f"{out.keys} data key(s) rotated, {out.cells_resealed} cell(s) re-encrypted "
               f"in {out.seconds:.2f} s")


COMMANDS = (encrypt_command, decrypt_command, crypto)


def register(group: click.Group) -> None:
    """Add the commands to ``govkit``."""
    for c in COMMANDS:
        group.add_command(c)


__all__ = ["COMMANDS", "register"]
