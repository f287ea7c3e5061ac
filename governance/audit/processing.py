"""``processing.yaml``: what the records of processing need and the inventory does not say.

The inventory says where personal data is; GDPR Art. 30 and PIPL Art. 51-56 also ask why
(purposes, legal bases), who receives it, where it goes (transfers and their PIPL Art. 38
route), how long it is kept, how it is protected and which impact assessments cover it.
This optional file, beside the inventory, holds those facts per source and table. It is
validated against the inventory: an unknown source, table or column is one line naming
file, line and field. Everything is optional: what is missing is listed in the records
with the owner to ask.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from governance.config_files import format_loc, load_yaml_file
from governance.errors import ConfigError
from governance.inventory import Inventory, check_jurisdictions, check_name
from governance.taxonomy import CATEGORIES

PROCESSING_FILE = "processing.yaml"
TransferRoute = Literal["security_assessment", "certification", "standard_contract",
                        "other_law", "adequacy", "scc", "bcr", "derogation"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Controller(_Model):
    """Who is responsible (GDPR Art. 30(1)(a), PIPL Art. 17)."""

    name: str | None = None
    contact: str | None = None
    representative: str | None = None   # GDPR Art. 27 / PIPL Art. 53
    dpo: str | None = None              # GDPR Art. 37 / PIPL Art. 52


class Retention(_Model):
    """How long rows are kept: ``days`` counted from the date in ``clock_column``."""

    days: int = Field(gt=0)
    clock_column: str | None = None
    basis: str | None = None

    @field_validator("clock_column")
    @classmethod
    def _col(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v, "clock_column")


class TableProcessing(_Model):
    """The processing of one table's personal data."""

    activity: str | None = None                 # name of the processing activity
    purposes: list[str] = Field(default_factory=list)
    legal_basis: dict[Literal["GDPR", "CCPA", "PIPL"], str] = Field(default_factory=dict)
    data_subjects: list[str] = Field(default_factory=list)   # customers, staff, ...
    recipients: list[str] = Field(default_factory=list)
    retention: Retention | None = None
    security_measures: list[str] = Field(default_factory=list)
    non_personal: list[str] = Field(default_factory=list)     # columns declared non-personal
    owner: str | None = None

    @field_validator("non_personal")
    @classmethod
    def _cols(cls, v: list[str]) -> list[str]:
        return [check_name(c, "column") for c in v]


class SourceProcessing(_Model):
    """Facts about one source of the inventory."""

    storage_location: str | None = None        # jurisdiction code where the data is stored
    scan_every_days: int = Field(default=7, gt=0)
    security_measures: list[str] = Field(default_factory=list)
    tables: dict[str, TableProcessing] = Field(default_factory=dict)

    @field_validator("storage_location")
    @classmethod
    def _where(cls, v: str | None) -> str | None:
        return None if v is None else check_jurisdictions([v])[0]


class Transfer(_Model):
    """Personal data sent from a source to another jurisdiction (GDPR Ch. V, PIPL Art. 38)."""

    source: str
    tables: list[str] = Field(default_factory=list)     # default: every table
    to: str
    recipient: str | None = None
    route: TransferRoute | None = None
    reference: str | None = None                         # contract / filing / certificate


class ImpactAssessment(_Model):
    """A PIPL Art. 55/56 personal-information impact assessment (or a GDPR Art. 35 DPIA)."""

    id: str
    covers: list[str] = Field(min_length=1)             # source or source.table
    completed: date | None = None
    status: Literal["draft", "approved"] = "draft"
    reviewer: str | None = None


class Processing(_Model):
    """A validated processing.yaml."""

    version: Literal[1]
    controller: Controller = Field(default_factory=Controller)
    security_measures: list[str] = Field(default_factory=list)   # everywhere
    encryption_categories: list[str] | None = None    # built-in encryption policy override
    sources: dict[str, SourceProcessing] = Field(default_factory=dict)
    transfers: list[Transfer] = Field(default_factory=list)
    impact_assessments: list[ImpactAssessment] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)
    digest: str | None = Field(default=None, exclude=True)

    @field_validator("encryption_categories")
    @classmethod
    def _cats(cls, v: list[str] | None) -> list[str] | None:
        for c in v or []:
            if c not in CATEGORIES:
                raise ValueError(f"unknown data category {c!r}")
        return v

    def table(self, source: str, table: str) -> TableProcessing | None:
        """The processing facts of ``source.table``, if any."""
        src = self.sources.get(source)
        return src.tables.get(table) if src else None


def processing_path(inventory: Inventory) -> Path:
    """Where the processing file of ``inventory`` lives: beside it."""
    return inventory.base_dir / PROCESSING_FILE


def load_processing(inventory: Inventory, path: str | os.PathLike | None = None
                    ) -> Processing | None:
    """The processing file beside the inventory (or ``path``), validated against it; None
    when there is none. ConfigError names file, line and field."""
    p = Path(path) if path is not None else processing_path(inventory)
    if path is None and not p.exists():
        return None
    loaded = load_yaml_file(p, Processing, "processing file", refuse_secrets=True)
    model = loaded.model

    def fail(message: str, loc: tuple[str | int, ...]) -> ConfigError:
        return ConfigError(str(p), message, line=loaded.line(loc), field=format_loc(loc))

    declared = {s.name: s for s in inventory.sources}
    for name, src in model.sources.items():
        if name not in declared:
            raise fail(f"source {name!r} is not in the inventory "
                       f"(declared: {', '.join(declared)})", ("sources", name))
        for tname, tp in src.tables.items():
            decl = declared[name].table(tname)
            if decl is None:
                raise fail(f"table {tname!r} is not declared in source {name!r} of the "
                           "inventory", ("sources", name, "tables", tname))
            for i, col in enumerate(tp.non_personal):
                if col in decl.columns and decl.columns[col].category:
                    raise fail(f"column {col!r} is declared {decl.columns[col].category} in "
                               "the inventory; it cannot also be non-personal",
                               ("sources", name, "tables", tname, "non_personal", i))
    for i, t in enumerate(model.transfers):
        if t.source not in declared:
            raise fail(f"source {t.source!r} is not in the inventory", ("transfers", i, "source"))
        for j, tname in enumerate(t.tables):
            if declared[t.source].table(tname) is None:
                raise fail(f"table {tname!r} is not declared in source {t.source!r}",
                           ("transfers", i, "tables", j))
        try:
            check_jurisdictions([t.to])
        except ValueError as e:
            raise fail(str(e), ("transfers", i, "to")) from None
    for i, a in enumerate(model.impact_assessments):
        for j, cover in enumerate(a.covers):
            parts = cover.split(".")
            if parts[0] not in declared or (len(parts) == 2 and
                                            declared[parts[0]].table(parts[1]) is None) \
                    or len(parts) > 2:
                raise fail(f"{cover!r} is not a source or source.table of the inventory",
                           ("impact_assessments", i, "covers", j))
    return model.model_copy(update={"path": p.resolve(),
                                    "digest": hashlib.sha256(loaded.raw).hexdigest()})
