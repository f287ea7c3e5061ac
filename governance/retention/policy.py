"""Retention policies: the rule model, readable periods, and validation against an estate.

A policy file (YAML) names rules by data category and/or ``source.table``: how long rows
are kept (``retain_days: 395`` or ``retain: 13 months``), what starts the clock (a date
column, ``clock: created_at``, or an event declared per table under ``events:``, e.g.
``account_closed``), what happens then (``delete``, ``anonymize`` listed columns, or
``review``), the legal basis and the exceptions. Loading checks the file on its own;
``check_policy`` checks it against the inventory, the sources' catalogues and the latest
scan. Every error names the file, the line and the field.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from governance.config_files import LoadedFile, Loc, format_loc, load_yaml_file
from governance.dsar.plan import REDACTED  # what ``redact`` writes, as erasure's does
from governance.errors import ConfigError, GovernanceError
from governance.inventory import NAME_RE, Inventory, check_jurisdictions, check_unique
from governance.taxonomy import CATEGORIES

# Package data: shipped inside the wheel (pyproject: tool.setuptools.package-data).
SHIPPED_PROFILES = Path(__file__).resolve().parent.parent / "retention_policies"

_UNITS = {"day": "days", "days": "days", "week": "weeks", "weeks": "weeks",
          "month": "months", "months": "months", "year": "years", "years": "years"}
_PERIOD_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")
LegalBasis = Literal["consent", "contract", "legal_obligation", "vital_interests",
                     "public_task", "legitimate_interests"]
Operator = Literal["null", "redact"]


@dataclass(frozen=True)
class Period:
    """A retention period: ``count`` days, weeks, months or years (calendar months)."""

    count: int
    unit: str    # days | weeks | months | years

    @classmethod
    def parse(cls, text: str) -> Period:
        """``13 months``, ``2 years``, ``90 days``, ``1 week``; ValueError names the problem."""
        m = _PERIOD_RE.match(str(text))
        if not m:
            raise ValueError(f"period {text!r} is not a number and a unit, e.g. '13 months', "
                             "'2 years', '90 days'")
        count, unit = int(m.group(1)), m.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(f"period {text!r}: unknown unit {m.group(2)!r}; use days, weeks, "
                             "months or years")
        if count <= 0:
            raise ValueError(f"period {text!r} must be longer than zero")
        return cls(count, _UNITS[unit])

    def before(self, moment: datetime) -> datetime:
        """The moment ``self`` before ``moment`` (month ends clamp: 31 March - 1 month is
        28/29 February)."""
        if self.unit == "days":
            return moment - timedelta(days=self.count)
        if self.unit == "weeks":
            return moment - timedelta(weeks=self.count)
        months = self.count * (12 if self.unit == "years" else 1)
        total = moment.year * 12 + (moment.month - 1) - months
        year, month = divmod(total, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)

    @property
    def approx_days(self) -> float:
        """The period's length in days (months of 30.44 days), to compare periods."""
        per = {"days": 1, "weeks": 7, "months": 30.436875, "years": 365.2425}[self.unit]
        return self.count * per

    def __str__(self) -> str:
        unit = self.unit if self.count != 1 else self.unit[:-1]
        return f"{self.count} {unit}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleException(_Model):
    """Rows a rule never touches: those whose ``column`` holds one of ``in`` (e.g. an
    order in dispute)."""

    column: str
    values: list[str | int | bool] = Field(alias="in", min_length=1)
    reason: str | None = None

    @field_validator("column")
    @classmethod
    def _col(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"column {v!r} is not a plain identifier")
        return v


class RetentionRule(_Model):
    """Keep the rows the rule selects for a period after their clock starts, then act."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    categories: list[str] = Field(default_factory=list)
    tables: list[str] = Field(default_factory=list)
    retain_days: int | None = Field(default=None, gt=0)
    retain: str | None = None
    starts_at: str | None = None      # an event declared under ``events:``
    clock: str | None = None          # a date column of the rule's tables
    action: Literal["delete", "anonymize", "review"]
    columns: dict[str, Operator] = Field(default_factory=dict)
    basis: str = Field(min_length=3)
    legal_basis: LegalBasis | None = None
    exceptions: list[RuleException] = Field(default_factory=list)
    per_subject: bool = False         # asserts the tables are person tables (checked)

    @field_validator("categories")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in CATEGORIES:
                raise ValueError(f"unknown data category {c!r}")
        return v

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: list[str]) -> list[str]:
        for t in v:
            parts = t.split(".")
            if len(parts) != 2 or not all(NAME_RE.match(p) for p in parts):
                raise ValueError(f"table selector {t!r} must be written source.table")
        return v

    @field_validator("retain")
    @classmethod
    def _retain(cls, v: str | None) -> str | None:
        if v is not None:
            Period.parse(v)
        return v

    @field_validator("starts_at", "clock")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v is not None and not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a plain identifier")
        return v

    @field_validator("columns")
    @classmethod
    def _cols(cls, v: dict[str, str]) -> dict[str, str]:
        for c in v:
            if not NAME_RE.match(c):
                raise ValueError(f"column {c!r} is not a plain identifier")
        return v

    @model_validator(mode="after")
    def _complete(self) -> RetentionRule:
        if not self.categories and not self.tables:
            raise ValueError("a rule needs categories, tables, or both")
        if (self.retain_days is None) == (self.retain is None):
            raise ValueError("give the period once: retain_days (a number) or retain "
                             "(e.g. '13 months')")
        if (self.starts_at is None) == (self.clock is None):
            raise ValueError("give what starts the clock once: clock (a date column) or "
                             "starts_at (an event declared under events)")
        if self.columns and self.action != "anonymize":
            raise ValueError("columns are only used with action anonymize")
        if self.action == "anonymize" and not self.columns and not self.categories:
            raise ValueError("action anonymize needs the columns to change (or categories "
                             "whose columns are changed)")
        if self.per_subject and self.action != "delete":
            raise ValueError("per_subject rules delete a person with their rows; use "
                             "action delete")
        return self

    @property
    def period(self) -> Period:
        """The retention period."""
        if self.retain is not None:
            return Period.parse(self.retain)
        return Period(int(self.retain_days or 0), "days")

    @property
    def keeps(self) -> bool:
        """True when the rule is a legal obligation to keep (tax, accounting, litigation)."""
        return self.legal_basis == "legal_obligation"


class RetentionProfile(_Model):
    """A named set of retention rules for some jurisdictions (e.g. the GDPR defaults).

    ``events`` says which column starts each named clock, per ``source.table``
    (``account_closed: {app_db.users: closed_at}``); ``keys`` names a unique row key for
    file tables (rows of CSV, Parquet and JSON-lines files are removed by it).
    """

    version: Literal[1]
    profile: str
    jurisdictions: list[str] = Field(min_length=1)
    events: dict[str, dict[str, str]] = Field(default_factory=dict)
    keys: dict[str, str] = Field(default_factory=dict)
    rules: list[RetentionRule] = Field(min_length=1)

    @field_validator("jurisdictions")
    @classmethod
    def _juris(cls, v: list[str]) -> list[str]:
        return check_jurisdictions(v)

    @field_validator("rules")
    @classmethod
    def _unique(cls, v: list[RetentionRule]) -> list[RetentionRule]:
        check_unique([r.name for r in v], "rule", "")     # (pydantic names the list)
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, per_table in v.items():
            if not NAME_RE.match(name):
                raise ValueError(f"event name {name!r} is not a plain identifier")
            RetentionRule._tables(list(per_table))
            for col in per_table.values():
                if not NAME_RE.match(str(col)):
                    raise ValueError(f"column {col!r} is not a plain identifier")
        return v

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        RetentionRule._tables(list(v))
        return v


@dataclass(frozen=True)
class Policy:
    """A loaded policy file: the profile, where it came from, and each field's line."""

    profile: RetentionProfile
    path: Path
    loaded: LoadedFile[RetentionProfile]

    def error(self, loc: Loc, message: str) -> ConfigError:
        """A ConfigError naming this file, the line of ``loc`` and the field."""
        return ConfigError(str(self.path), message, line=self.loaded.line(loc),
                           field=format_loc(loc) or None)

    def clock_column(self, rule: RetentionRule, source: str, table: str) -> str | None:
        """The column that starts ``rule``'s clock in ``source.table`` (None when the
        rule's event is not declared for that table)."""
        if rule.clock:
            return rule.clock
        return self.profile.events.get(rule.starts_at or "", {}).get(f"{source}.{table}")

    def rule_index(self, rule: RetentionRule) -> int:
        """The position of ``rule`` in the file (for error locations)."""
        return next(i for i, r in enumerate(self.profile.rules) if r.name == rule.name)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate one policy file on its own; ConfigError names file, line, field."""
    loaded = load_yaml_file(path, RetentionProfile, "retention policy", refuse_secrets=True)
    return Policy(loaded.model, Path(path), loaded)


def load_retention_profile(path: str | os.PathLike[str]) -> RetentionProfile:
    """Read and validate one retention profile; ConfigError names file, line and field."""
    return load_policy(path).profile


def shipped_profiles() -> dict[str, RetentionProfile]:
    """The default profiles shipped in governance/retention_policies/, by profile name."""
    files = sorted(SHIPPED_PROFILES.glob("*.yaml"))
    if not files:
        raise GovernanceError(f"no retention profiles in {SHIPPED_PROFILES}: the installation "
                              "is incomplete (package data missing)")
    profiles = [load_retention_profile(p) for p in files]
    return {p.profile: p for p in profiles}


# ---------------------------------------------------------------- against the estate

DATE_TYPES = ("DATE", "TIME")            # DATE, TIMESTAMP, TIMESTAMPTZ, DATETIME, ...
TEXT_TYPES = ("CHAR", "TEXT", "STRING", "VARCHAR", "")
NOT_TEXT_TYPES = ("INT", "NUM", "DEC", "REAL", "FLOA", "DOUB", "BOOL", "BLOB", "BYTEA",
                  "BINARY", "UUID", "MONEY", "SERIAL", "BIT")


@dataclass(frozen=True)
class ColumnFacts:
    """A column as the estate has it: type, whether NULL is allowed, text holding dates."""

    type: str
    nullable: bool = True
    date_text: bool | None = None   # for text columns: do the values read as ISO dates?

    @property
    def is_date(self) -> bool:
        """A date or timestamp column, or text whose values are ISO dates."""
        t = self.type.upper()
        if any(k in t for k in DATE_TYPES):
            return True
        return bool(self.date_text) and any(k in t for k in TEXT_TYPES)

    @property
    def takes_text(self) -> bool:
        """Whether text can be written into the column: not a number, date, boolean or
        bytes column (a column without a type, as SQLite allows, takes it)."""
        t = self.type.upper()
        return not any(k in t for k in (*DATE_TYPES, *NOT_TEXT_TYPES))

    @property
    def is_text(self) -> bool:
        """A text column (dates in it are compared after parsing)."""
        t = self.type.upper()
        return not any(k in t for k in DATE_TYPES) and any(k in t for k in TEXT_TYPES)


@dataclass
class Estate:
    """What policies are checked against: the inventory, each table's columns, and the
    data categories of columns (declared, or classified by the latest scan)."""

    inventory: Inventory
    columns: dict[tuple[str, str], dict[str, ColumnFacts]]
    categories: dict[tuple[str, str, str], str]        # (source, table, column) -> category
    unreachable: dict[str, str]                        # source -> why

    def tables_with(self, categories: Iterable[str]) -> list[tuple[str, str]]:
        """Tables holding a column of one of ``categories``."""
        wanted = set(categories)
        return sorted({(s, t) for (s, t, _), c in self.categories.items() if c in wanted})

    def category_columns(self, source: str, table: str, categories: Iterable[str]
                         ) -> list[str]:
        """The columns of ``source.table`` holding one of ``categories``."""
        wanted = set(categories)
        return sorted(c for (s, t, c), cat in self.categories.items()
                      if s == source and t == table and cat in wanted)

    def declared(self, source: str, table: str) -> bool:
        """True when the inventory declares ``source.table``."""
        try:
            return self.inventory.source(source).table(table) is not None
        except GovernanceError:
            return False


def load_estate(inventory: Inventory, store: Any | None = None, pool: Any | None = None,
                sources: Iterable[str] | None = None) -> Estate:
    """The estate of ``inventory``: columns from each source's catalogue (or, for a source
    that cannot be reached, from the latest scan), categories declared and scanned."""
    from governance.sources.pool import ConnectorPool

    wanted = set(sources) if sources is not None else {s.name for s in inventory.sources}
    columns: dict[tuple[str, str], dict[str, ColumnFacts]] = {}
    categories: dict[tuple[str, str, str], str] = {}
    unreachable: dict[str, str] = {}
    scanned = _latest_findings(store) if store is not None else []
    for f in scanned:
        if f["source"] not in wanted:
            continue
        cat = f["detected_category"] or f["declared_category"]
        if cat:
            categories[(f["source"], f["table_name"], f["column_name"])] = cat
    own_pool = pool is None
    pool = pool or ConnectorPool(inventory)
    try:
        for src in inventory.sources:
            if src.name not in wanted:
                continue
            for t in src.tables:
                for col, decl in t.columns.items():
                    if decl.category:
                        categories[(src.name, t.name, col)] = decl.category
            try:
                conn = pool.get(src.name)
                for info in conn.list_tables():
                    columns[(src.name, info.name)] = {
                        c.name: ColumnFacts(c.type, c.nullable) for c in info.columns}
            except GovernanceError as e:
                unreachable[src.name] = str(e)
                for f in scanned:
                    if f["source"] == src.name:
                        columns.setdefault((src.name, f["table_name"]), {})[f["column_name"]] = \
                            ColumnFacts(f["column_type"] or "")
    finally:
        if own_pool:
            pool.close()
    return Estate(inventory, columns, categories, unreachable)


def _latest_findings(store: Any) -> list[dict[str, Any]]:
    """Each source's findings from its latest succeeded scan."""
    return store.query(
        "WITH latest AS (SELECT f.source, max(r.started_at) AS at FROM column_findings f "
        "JOIN scan_runs r USING (run_id) WHERE r.status = 'succeeded' GROUP BY f.source) "
        "SELECT f.source, f.table_name, f.column_name, f.column_type, f.declared_category, "
        "f.detected_category FROM column_findings f JOIN scan_runs r USING (run_id) "
        "JOIN latest l ON l.source = f.source AND l.at = r.started_at")


def check_text_dates(estate: Estate, pool: Any, source: str, table: str, column: str) -> None:
    """Decide whether a text column holds ISO dates, from a sample of its values."""
    facts = estate.columns.get((source, table), {}).get(column)
    if facts is None or not facts.is_text or facts.date_text is not None:
        return
    try:
        sample = pool.get(source).sample_rows(table, [column], 50, 0).column(0).to_pylist()
    except GovernanceError:
        return
    values = [v for v in sample if v not in (None, "")]
    ok = all(_is_iso(str(v)) for v in values)   # an empty table contradicts nothing
    estate.columns[(source, table)][column] = ColumnFacts(facts.type, facts.nullable, ok)


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text.strip())
        return True
    except ValueError:
        try:
            date.fromisoformat(text.strip())
            return True
        except ValueError:
            return False


def _key_columns(pool: Any | None, source: str, table: str) -> set[str]:
    """The columns of ``table`` that a foreign key the source declares is made of (empty
    when the source cannot be read)."""
    if pool is None:
        return set()
    try:
        keys = pool.get(source).foreign_keys()
    except GovernanceError:
        return set()
    return {c for fk in keys if fk.table == table for c in fk.column.split(",")}


def _primary_key(pool: Any | None, source: str, table: str) -> set[str]:
    """The columns of ``table``'s primary key as the source declares it (empty when the
    source cannot be read or declares none)."""
    if pool is None:
        return set()
    try:
        return set(pool.get(source).table_info(table).primary_key)
    except GovernanceError:
        return set()


def check_policy(policy: Policy, estate: Estate, pool: Any | None = None) -> None:
    """Check ``policy`` against the estate: every table it names is declared and found,
    every column exists, clocks are dates. Raise ConfigError (file, line, field) on the
    first problem."""
    inv = estate.inventory
    p = policy.profile

    def table_exists(sel: str, loc: Loc) -> tuple[str, str]:
        source, _, table = sel.partition(".")
        if source not in {s.name for s in inv.sources}:
            raise policy.error(loc, f"unknown source {source!r} (the inventory declares "
                                    f"{', '.join(s.name for s in inv.sources)})")
        if source in estate.unreachable and (source, table) not in estate.columns:
            return source, table     # cannot be checked now; the plan reports it
        if not estate.declared(source, table) and (source, table) not in estate.columns:
            raise policy.error(loc, f"unknown table {sel!r}: not declared in the inventory "
                                    "nor found in the source")
        if (source, table) not in estate.columns:
            raise policy.error(loc, f"table {sel!r} is declared but not found in the source")
        return source, table

    def column_exists(source: str, table: str, col: str, loc: Loc) -> ColumnFacts | None:
        cols = estate.columns.get((source, table))
        if cols is None:
            return None
        if col not in cols:
            raise policy.error(loc, f"unknown column {col!r} in {source}.{table} (it has "
                                    f"{', '.join(cols)})")
        return cols[col]

    def date_column(source: str, table: str, col: str, loc: Loc) -> None:
        facts = column_exists(source, table, col, loc)
        if facts is None:
            return
        if pool is not None:
            check_text_dates(estate, pool, source, table, col)
            facts = estate.columns[(source, table)][col]
        if not facts.is_date:
            what = "text that does not read as dates" if facts.is_text else facts.type
            raise policy.error(loc, f"clock column {source}.{table}.{col} is not a date "
                                    f"({what})")

    for sel in p.keys:
        s, t = table_exists(sel, ("keys", sel))
        if column_exists(s, t, p.keys[sel], ("keys", sel)) is not None and pool is not None \
                and s not in estate.unreachable:
            from governance.encryption.writers import unique_key

            # Rows are removed by this key: one shared by rows that are due and rows that
            # are not keeps them all, while the rows they own were taken already.
            if not unique_key(pool.get(s), t, [p.keys[sel]]):
                raise policy.error(("keys", sel), f"{p.keys[sel]} is not a row key of {sel}: "
                                   "some rows share a value or have none; name a column "
                                   "that identifies one row")
    for event, per_table in p.events.items():
        for sel, col in per_table.items():
            s, t = table_exists(sel, ("events", event, sel))
            date_column(s, t, col, ("events", event, sel))
    for i, rule in enumerate(p.rules):
        named = [table_exists(sel, ("rules", i, "tables", j))
                 for j, sel in enumerate(rule.tables)]
        if rule.starts_at and rule.starts_at not in p.events and rule.tables:
            raise policy.error(("rules", i, "starts_at"),
                               f"event {rule.starts_at!r} is not declared under events "
                               "(say which column starts it for each table)")
        for s, t in named:
            decl = inv.source(s).table(t)
            if rule.per_subject and (decl is None or not decl.is_person or not decl.subject_key):
                raise policy.error(("rules", i, "per_subject"),
                                   f"{s}.{t} is not a person table with a subject_key: a "
                                   "per-subject rule deletes persons with the rows they own")
            if rule.clock:
                date_column(s, t, rule.clock, ("rules", i, "clock"))
            elif policy.clock_column(rule, s, t) is None:
                raise policy.error(("rules", i, "starts_at"),
                                   f"event {rule.starts_at!r} is not declared for {s}.{t} "
                                   f"(add events.{rule.starts_at}.{s}.{t}: COLUMN)")
            for col in rule.columns:
                facts = column_exists(s, t, col, ("rules", i, "columns", col))
                if facts is not None and rule.columns[col] == "null" and not facts.nullable:
                    redactable = facts.takes_text and col not in _key_columns(pool, s, t)
                    raise policy.error(("rules", i, "columns", col),
                                       f"{s}.{t}.{col} is NOT NULL: "
                                       + ("use redact, not null" if redactable else
                                          "it takes neither NULL nor the text "
                                          f"{REDACTED!r} (a number, a date or a key): "
                                          "delete the rows instead"))
                if facts is not None and rule.columns[col] == "redact":
                    if not facts.takes_text:
                        raise policy.error(
                            ("rules", i, "columns", col),
                            f"{s}.{t}.{col} is of type {facts.type}: redact writes the text "
                            f"{REDACTED!r}; use null (where NULL is allowed) or delete the rows")
                    if col in _key_columns(pool, s, t):
                        raise policy.error(
                            ("rules", i, "columns", col),
                            f"{s}.{t}.{col} is part of a foreign key: redact would point it "
                            "at no row; use null (where NULL is allowed) or delete the rows")
                if facts is not None and col in _primary_key(pool, s, t):
                    raise policy.error(
                        ("rules", i, "columns", col),
                        f"{s}.{t}.{col} is part of the table's primary key: anonymizing it "
                        "would give rows the same key (the database refuses, or rows merge); "
                        "delete the rows instead")
            for k, exc in enumerate(rule.exceptions):
                column_exists(s, t, exc.column, ("rules", i, "exceptions", k, "column"))


def load_policies(paths: Iterable[str | os.PathLike[str]]) -> list[Policy]:
    """Load several policy files; rule names must be unique across them."""
    policies = [load_policy(p) for p in paths]
    seen: dict[str, Path] = {}
    for pol in policies:
        for i, rule in enumerate(pol.profile.rules):
            if rule.name in seen and seen[rule.name] != pol.path:
                raise pol.error(("rules", i, "name"),
                                f"rule {rule.name!r} is also defined in {seen[rule.name]}")
            seen[rule.name] = pol.path
    return policies


def rule_jurisdictions(policy: Policy) -> set[str]:
    """The jurisdictions a policy's rules apply in."""
    return set(policy.profile.jurisdictions)


def column_facts(estate: Estate, source: str, table: str) -> Mapping[str, ColumnFacts]:
    """The columns of ``source.table`` (empty when unknown)."""
    return estate.columns.get((source, table), {})
