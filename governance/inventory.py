"""The source inventory: which data sources an organisation has and how people are keyed in them.

An inventory is a YAML file validated into the typed models below. Every error names the
file, the line and the field, e.g. ``inventory.yaml:12: sources[0].kind: ...``.
Secrets never live in the file: a PostgreSQL DSN is read from the environment variable
named by ``connection.dsn_env``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from governance.config_files import FieldError, format_loc, load_yaml_file, secret_kind
from governance.errors import ConfigError, GovernanceError, UnknownSourceError
from governance.taxonomy import CATEGORIES

SourceKind = Literal["csv", "parquet", "jsonl", "duckdb", "sqlite", "postgres"]
FILE_KINDS = ("csv", "parquet", "jsonl")
KNOWN_JURISDICTIONS = ("EU", "EEA", "UK", "US-CA", "US", "CN")

# Names that may reach SQL. Quoting is still done by the driver; this refuses names that
# look like SQL fragments before they get that far.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
SOURCE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SECRET_KEYS = {"dsn", "password", "passwd", "secret", "token", "url", "uri"}


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a plain SQL identifier (optionally schema-qualified)."""
    parts = value.split(".")
    if len(parts) > 2 or not all(NAME_RE.match(p) for p in parts):
        raise ValueError(
            f"{what} {value!r} is not a plain identifier (letters, digits, _ and $; "
            "optionally schema.table)"
        )
    return value


def checked_name(value: str, what: str = "name") -> str:
    """``check_name`` for a name given on a command line: GovernanceError (one line)."""
    try:
        return check_name(value, what)
    except ValueError as e:
        raise GovernanceError(str(e)) from None


def check_jurisdictions(values: list[str]) -> list[str]:
    """Return ``values`` if every one is a known jurisdiction code."""
    for j in values:
        if j not in KNOWN_JURISDICTIONS:
            raise ValueError(f"unknown jurisdiction {j!r}; known: {', '.join(KNOWN_JURISDICTIONS)}")
    return values


def check_unique(names: list[str], what: str, field: str | None = None) -> None:
    """Raise when a name occurs more than once; with ``field`` (the list's name; ``""``
    from a validator of the list itself), the error points at the second occurrence."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        message = f"{what} declared twice: {', '.join(dupes)}"
        if field is None:
            raise ValueError(message)
        second = next(i for i, n in enumerate(names) if n in names[:i])
        raise FieldError(message, (field, second, "name") if field else (second, "name"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Connection(_Model):
    """Where a source lives: a file or folder path, or the env var holding a DSN."""

    path: str | None = None
    dsn_env: str | None = None
    schema_: str | None = Field(default=None, alias="schema")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).lower() in _SECRET_KEYS:
                    raise ValueError(
                        f"'{key}' must not be written in the inventory; put the DSN in an "
                        "environment variable and name it with dsn_env"
                    )
            for key, value in data.items():
                kind = secret_kind(str(value)) if value is not None else None
                if kind:
                    raise FieldError(
                        f"looks like {kind}; put the DSN in an environment variable and "
                        "name it with dsn_env", (str(key),))
        return data

    @field_validator("dsn_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Z_][A-Z0-9_]*$", v):
            raise ValueError(f"dsn_env {v!r} is not an environment variable name")
        return v


ReferenceKind = Literal["owner", "detail", "reference"]


class PlaceholderTarget(_Model):
    """``on_erase: {set: KEY}``: point the referencing rows at a designated placeholder row."""

    set: int | str


OnErase = Literal["refuse", "detach"] | PlaceholderTarget


class Reference(_Model):
    """A foreign-key style link: ``column`` of this table points at ``to``.

    ``to`` is ``table.column`` in the same source, or ``source.table.column`` in another.
    ``kind`` says what the link means for a data subject's rows (README: the ownership
    model): ``owner`` (this row belongs to whoever owns the row pointed at), ``detail`` (the
    row pointed at holds personal detail of this row's owner, e.g. an address) or
    ``reference`` (a mere pointer: never followed to find a subject's rows). Omitted, it is
    inferred. ``on_erase`` says what happens to rows that are kept but point at a row an
    erasure removes: ``refuse`` (the default: the plan stops and names this reference),
    ``detach`` (set the column NULL) or ``{set: KEY}`` (point it at a placeholder row).
    """

    column: str
    to: str
    kind: ReferenceKind | None = None
    on_erase: OnErase = "refuse"

    @field_validator("column")
    @classmethod
    def _col(cls, v: str) -> str:
        return check_name(v, "column")

    @field_validator("to")
    @classmethod
    def _to(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) not in (2, 3) or not all(NAME_RE.match(p) for p in parts):
            raise ValueError(
                f"reference target {v!r} must be written table.column or source.table.column")
        return v

    @property
    def source(self) -> str | None:
        """The referenced source, when it is another one."""
        parts = self.to.split(".")
        return parts[0] if len(parts) == 3 else None

    @property
    def table(self) -> str:
        """The referenced table."""
        return self.to.split(".")[-2]

    @property
    def target_column(self) -> str:
        """The referenced column."""
        return self.to.split(".")[-1]


class ColumnDecl(_Model):
    """What the organisation says a column holds."""

    category: str | None = None
    description: str | None = None

    @field_validator("category")
    @classmethod
    def _cat(cls, v: str | None) -> str | None:
        if v is not None and v not in CATEGORIES:
            raise ValueError(
                f"unknown data category {v!r}; known: {', '.join(sorted(CATEGORIES))}"
            )
        return v


AnonymizeOperator = Literal["null", "hash", "redact"]


class ErasurePolicy(_Model):
    """What an erasure request does to a subject's rows of this table.

    ``delete`` (the default) removes the rows. ``anonymize`` keeps them because a legal
    obligation (``basis``) requires the record, and changes ``columns``: ``null`` clears a
    column, ``redact`` writes ``[erased]``, ``hash`` replaces the value with a keyed hash
    (allowed only on the column the rows are matched by, e.g. a reference).
    """

    action: Literal["delete", "anonymize"] = "delete"
    columns: dict[str, AnonymizeOperator] = Field(default_factory=dict)
    basis: str | None = None

    @field_validator("columns")
    @classmethod
    def _cols(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            check_name(key, "column")
        return v

    @model_validator(mode="after")
    def _complete(self) -> ErasurePolicy:
        if self.action == "anonymize":
            if not self.columns:
                raise ValueError("erasure action anonymize needs the columns to change")
            if not self.basis:
                raise ValueError("erasure action anonymize needs a basis: the legal "
                                 "obligation the record is kept for")
        elif self.columns:
            raise ValueError("erasure columns are only used with action anonymize")
        return self


class TableDecl(_Model):
    """A declared table: its subject key, references and the columns known to hold PII."""

    name: str
    subject_key: str | None = None
    person: bool | None = None   # one person per row; default: has a subject_key
    references: list[Reference] = Field(default_factory=list)
    columns: dict[str, ColumnDecl] = Field(default_factory=dict)
    erasure: ErasurePolicy = Field(default_factory=ErasurePolicy)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "table")

    @field_validator("subject_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v, "subject_key")

    @property
    def is_person(self) -> bool:
        """True when each row of the table is one person (customers, staff, users)."""
        return self.person if self.person is not None else self.subject_key is not None

    @field_validator("columns", mode="before")
    @classmethod
    def _cols(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for key, decl in v.items():
                check_name(str(key), "column")
                if decl is None:
                    v = {**v, key: {}}
        return v


class SourceDecl(_Model):
    """One data source of the organisation."""

    name: str
    kind: SourceKind
    connection: Connection
    owner: str
    jurisdictions: list[str] = Field(min_length=1)
    description: str | None = None
    tables: list[TableDecl] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SOURCE_NAME_RE.match(v):
            raise ValueError(
                f"source name {v!r} must be lower-case letters, digits and _ (starting "
                "with a letter)"
            )
        return v

    @field_validator("jurisdictions")
    @classmethod
    def _juris(cls, v: list[str]) -> list[str]:
        return check_jurisdictions(v)

    @model_validator(mode="after")
    def _consistent(self) -> SourceDecl:
        if self.kind == "postgres":
            if not self.connection.dsn_env:
                raise ValueError("a postgres source needs connection.dsn_env")
        elif not self.connection.path:
            raise ValueError(f"a {self.kind} source needs connection.path")
        names = [t.name for t in self.tables]
        check_unique(names, "table", "tables")
        for ti, t in enumerate(self.tables):
            for ri, ref in enumerate(t.references):
                if ref.source is None and ref.table not in names:
                    raise FieldError(
                        f"table {t.name}: reference {ref.column} -> {ref.to} names a table "
                        "not declared in this source", ("tables", ti, "references", ri, "to"))
        return self

    def table(self, name: str) -> TableDecl | None:
        """The declaration of table ``name``, if declared."""
        return next((t for t in self.tables if t.name == name), None)


class Inventory(_Model):
    """A validated inventory file."""

    version: Literal[1]
    organization: str
    sources: list[SourceDecl] = Field(min_length=1)
    # File sources must lie in the inventory's folder unless this says otherwise.
    allow_outside_paths: bool = False
    path: Path | None = Field(default=None, exclude=True)
    digest: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> Inventory:
        check_unique([s.name for s in self.sources], "source", "sources")
        by_name = {s.name: s for s in self.sources}
        for si, s in enumerate(self.sources):
            for ti, t in enumerate(s.tables):
                for ri, ref in enumerate(t.references):
                    if ref.source is None:
                        continue
                    target = by_name.get(ref.source)
                    if target is None or target.table(ref.table) is None:
                        raise FieldError(
                            f"source {s.name}, table {t.name}: reference {ref.column} -> "
                            f"{ref.to} names a source or table that is not declared",
                            ("sources", si, "tables", ti, "references", ri, "to"))
        return self

    def source(self, name: str) -> SourceDecl:
        """The source called ``name``; a clear error names the declared ones otherwise."""
        for s in self.sources:
            if s.name == name:
                return s
        raise UnknownSourceError(
            f"unknown source {name!r}; declared: {', '.join(s.name for s in self.sources)}"
        )

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the inventory are resolved against."""
        return self.path.parent if self.path else Path.cwd()

    def resolve_path(self, source: SourceDecl) -> Path:
        """The absolute path of a file-based source.

        Raises ConfigError when it lies outside the inventory's folder (after following
        ``..`` and symbolic links) and the inventory does not set ``allow_outside_paths``.
        """
        index = next((i for i, s in enumerate(self.sources) if s.name == source.name), 0)
        field = f"sources[{index}].connection.path"
        where = str(self.path) if self.path else "inventory"
        if source.connection.path is None:
            raise ConfigError(where, f"a {source.kind} source needs connection.path",
                              field=field)
        p = Path(os.path.expandvars(source.connection.path)).expanduser()
        resolved = (p if p.is_absolute() else self.base_dir / p).resolve()
        root = self.base_dir.resolve()
        if not self.allow_outside_paths and not resolved.is_relative_to(root):
            raise ConfigError(
                where, f"{source.connection.path!r} is outside the inventory's folder {root}; "
                "move the file there, or set `allow_outside_paths: true` at the top of the "
                "inventory", field=field)
        return resolved


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read and validate an inventory file; raise ConfigError naming file, line and field.

    Every value is checked for credentials, YAML aliases are capped, and file sources must
    lie in the inventory's folder (see Inventory.resolve_path).
    """
    loaded = load_yaml_file(path, Inventory, "inventory", refuse_secrets=True)
    inv = loaded.model.model_copy(update={"path": Path(path).resolve(),
                                          "digest": hashlib.sha256(loaded.raw).hexdigest()})
    for i, src in enumerate(inv.sources):
        if src.kind != "postgres" and src.connection.path is not None:
            try:
                inv.resolve_path(src)
            except ConfigError as e:
                loc = ("sources", i, "connection", "path")
                raise ConfigError(str(path), e.message, line=loaded.line(loc),
                                  field=format_loc(loc)) from None
    return inv
