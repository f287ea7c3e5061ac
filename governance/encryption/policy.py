"""The encryption policy: which columns must be encrypted at rest, and with which KEK.

A policy file sits beside the inventory (``encryption.yaml``)::

    version: 1
    require: [identity.national_id, financial.bank_account]   # default: DEFAULT_REQUIRED
    sources:                       # optional, per source: more categories, or skip it
      event_log: {require: [network.ip]}
      marketing_export: {skip: true}
    columns:                       # columns named one by one (beyond their category)
      - {column: app_db.users.email, blind_index: email_bidx}
    exempt:
      - {column: app_db.users.date_of_birth, reason: "needed in clear for age checks"}
    row_keys:                      # tables without a primary key: the unique column(s)
      event_log.events: event_id
    key_store: {kind: local}       # or pkcs11: module, token_label, key_label, pin_env

A column is required when its declared category (the inventory), or the category the
latest scan found in it, is required for its source; or when ``columns`` names it.
Errors name the file, the line and the field (``encryption.yaml:7: columns[0].column: ...``).
Without a file the defaults apply: every sensitive category (GDPR Art. 9, PIPL Art. 28:
national IDs, passports, financial accounts and cards, health, biometric, precise location,
credentials, religion, ...) in every source.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from governance.config_files import FieldError, load_yaml_file
from governance.errors import ConfigError
from governance.inventory import NAME_RE, Inventory
from governance.taxonomy import CATEGORIES

DEFAULT_REQUIRED: tuple[str, ...] = tuple(sorted(k for k, c in CATEGORIES.items() if c.sensitive))
POLICY_FILE = "encryption.yaml"
_COLUMN_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}\.[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$")
_TABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}\.[A-Za-z_][A-Za-z0-9_$]*$")


def _check_categories(v: list[str]) -> list[str]:
    for i, c in enumerate(v):
        if c not in CATEGORIES:
            raise FieldError(f"unknown data category {c!r}; known: {', '.join(sorted(CATEGORIES))}",
                             (i,))
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceRule(_Model):
    """Per-source additions: more required categories, or the source left out."""

    require: list[str] = Field(default_factory=list)
    skip: bool = False

    @field_validator("require")
    @classmethod
    def _cats(cls, v: list[str]) -> list[str]:
        return _check_categories(v)


def _check_column_name(v: str) -> str:
    """``v`` if it is written ``source.table.column``."""
    if not _COLUMN_RE.match(v):
        raise ValueError(f"{v!r} is not source.table.column")
    return v


class ColumnRule(_Model):
    """One column named explicitly: ``source.table.column``; optional blind-index column."""

    column: str
    blind_index: str | None = None

    @field_validator("column")
    @classmethod
    def _col(cls, v: str) -> str:
        return _check_column_name(v)

    @field_validator("blind_index")
    @classmethod
    def _bidx(cls, v: str | None) -> str | None:
        if v is not None and not NAME_RE.match(v):
            raise ValueError(f"blind_index {v!r} is not a plain column name")
        return v


class Exemption(_Model):
    """A column the policy would require but that is kept in clear, and why."""

    column: str
    reason: str = Field(min_length=3)

    @field_validator("column")
    @classmethod
    def _col(cls, v: str) -> str:
        return _check_column_name(v)


class KeyStoreDecl(_Model):
    """Where the key-encryption key lives. ``local``: the audit store's master key, or the
    base64 key in the environment variable ``key_env``. ``pkcs11``: an AES key labelled
    ``key_label`` in the token ``token_label`` of ``module``, PIN in env ``pin_env``."""

    kind: Literal["local", "pkcs11"] = "local"
    key_env: str | None = None
    module: str | None = None
    token_label: str | None = None
    key_label: str | None = None
    pin_env: str | None = None

    @field_validator("key_env", "pin_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Z_][A-Z0-9_]*$", v):
            raise ValueError(f"{v!r} is not an environment variable name")
        return v


class EncryptionPolicy(_Model):
    """A validated encryption policy."""

    version: Literal[1] = 1
    require: list[str] = Field(default_factory=lambda: list(DEFAULT_REQUIRED))
    sources: dict[str, SourceRule] = Field(default_factory=dict)
    columns: list[ColumnRule] = Field(default_factory=list)
    exempt: list[Exemption] = Field(default_factory=list)
    row_keys: dict[str, str] = Field(default_factory=dict)
    key_store: KeyStoreDecl = Field(default_factory=KeyStoreDecl)
    # Key stores whose KEK still unwraps keys wrapped under it (never wraps new ones): the
    # new KEK while `crypto rotate-master` runs, so that no read fails meanwhile.
    also_unwrap_with: list[KeyStoreDecl] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("require")
    @classmethod
    def _cats(cls, v: list[str]) -> list[str]:
        return _check_categories(v)

    @field_validator("row_keys")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for table, cols in v.items():
            if not _TABLE_RE.match(table):
                raise FieldError(f"{table!r} is not source.table", (table,))
            if not all(NAME_RE.match(c.strip()) for c in cols.split(",")):
                raise FieldError(f"{cols!r} is not a column name (or a,b)", (table,))
        return v


@dataclass(frozen=True)
class Target:
    """One column to encrypt, with how its rows are keyed."""

    source: str
    table: str
    column: str
    category: str | None
    why: str                           # "category identity.national_id" | "named in policy"
    blind_index: str | None = None

    @property
    def name(self) -> str:
        """``source.table.column``."""
        return f"{self.source}.{self.table}.{self.column}"


def load_policy(path: str | os.PathLike[str] | None, inventory: Inventory) -> EncryptionPolicy:
    """The policy in ``path`` (None: ``encryption.yaml`` beside the inventory if present,
    else the defaults), checked against ``inventory``; ConfigError naming file:line: field."""
    if path is None:
        beside = inventory.base_dir / POLICY_FILE
        if not beside.exists():
            return EncryptionPolicy()
        path = beside
    loaded = load_yaml_file(path, EncryptionPolicy, "encryption policy", refuse_secrets=True)
    policy = loaded.model.model_copy(update={"path": Path(path)})

    def fail(message: str, loc: tuple[str | int, ...]) -> None:
        from governance.config_files import format_loc

        raise ConfigError(str(path), message, line=loaded.line(loc), field=format_loc(loc))

    names = {s.name for s in inventory.sources}
    for name in policy.sources:
        if name not in names:
            fail(f"unknown source {name!r}; declared: {', '.join(sorted(names))}",
                 ("sources", name))
    named: list[tuple[str, list[str]]] = [("columns", [c.column for c in policy.columns]),
                                          ("exempt", [e.column for e in policy.exempt])]
    for key, items in named:
        for i, column in enumerate(items):
            src, table, _ = column.split(".")
            if src not in names:
                fail(f"unknown source {src!r}", (key, i, "column"))
            if inventory.source(src).table(table) is None:
                fail(f"table {src}.{table} is not declared in the inventory", (key, i, "column"))
    for tk in policy.row_keys:
        src, table = tk.split(".")
        if src not in names or inventory.source(src).table(table) is None:
            fail(f"table {tk} is not declared in the inventory", ("row_keys", tk))
    for ks, loc in [(policy.key_store, ("key_store",)),
                    *((d, ("also_unwrap_with", i)) for i, d in
                      enumerate(policy.also_unwrap_with))]:
        if ks.kind == "pkcs11":
            for f in ("token_label", "key_label", "pin_env"):
                if not getattr(ks, f):
                    fail(f"a pkcs11 key store needs {f}", (*loc, f))
        elif ks.module or ks.token_label or ks.key_label or ks.pin_env:
            fail("module, token_label, key_label and pin_env are for kind: pkcs11",
                 (*loc, "kind"))
    return policy


def targets(policy: EncryptionPolicy, inventory: Inventory,
            detected: dict[tuple[str, str, str], set[str]] | None = None,
            sources: list[str] | None = None) -> list[Target]:
    """The columns ``policy`` requires encrypted (declared or ``detected`` categories, and
    columns named), minus exemptions, in inventory order."""
    exempt = {e.column for e in policy.exempt}
    named = {c.column: c for c in policy.columns}
    out: dict[str, Target] = {}
    cats: dict[tuple[str, str, str], set[str]] = {}
    for src in inventory.sources:
        for t in src.tables:
            for col, decl in t.columns.items():
                if decl.category:
                    cats.setdefault((src.name, t.name, col), set()).add(decl.category)
    for k, found in (detected or {}).items():
        cats.setdefault(k, set()).update(found)
    for src in inventory.sources:
        rule = policy.sources.get(src.name, SourceRule())
        if rule.skip or (sources and src.name not in sources):
            continue
        required = set(policy.require) | set(rule.require)
        for (s, table, col), found in sorted(cats.items()):
            if s != src.name:
                continue
            hit = sorted(found & required)
            name = f"{s}.{table}.{col}"
            if hit and name not in exempt:
                bidx = named[name].blind_index if name in named else None
                out[name] = Target(s, table, col, hit[0], f"category {hit[0]}", bidx)
        for name, c in named.items():
            s, table, col = name.split(".")
            if s == src.name and name not in out and name not in exempt:
                category = next(iter(sorted(cats.get((s, table, col), set()))), None)
                out[name] = Target(s, table, col, category, "named in policy", c.blind_index)
    return list(out.values())


def describe(policy: EncryptionPolicy) -> dict[str, Any]:
    """The policy as plain data (reports, logs)."""
    return {"require": policy.require, "path": str(policy.path) if policy.path else None,
            "key_store": policy.key_store.kind}
