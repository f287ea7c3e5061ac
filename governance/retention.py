"""Retention rules: how long each category of personal data may be kept, and what then.

Rules are YAML profiles (``governance/retention_policies/*.yaml``) validated into these models.
This module defines and loads them; enforcement on a schedule (with legal holds) builds
on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from governance.config_files import load_yaml_model
from governance.errors import GovernanceError
from governance.inventory import check_jurisdictions, check_unique
from governance.taxonomy import CATEGORIES

# Package data: shipped inside the wheel (pyproject: tool.setuptools.package-data).
SHIPPED_PROFILES = Path(__file__).resolve().parent / "retention_policies"


class RetentionRule(BaseModel):
    """Keep data of ``categories`` for ``retain_days`` after ``starts_at``, then ``action``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    categories: list[str] = Field(min_length=1)
    retain_days: int = Field(gt=0)
    starts_at: Literal["collected", "last_activity", "account_closed", "contract_end"]
    action: Literal["delete", "anonymize", "review"]
    basis: str = Field(min_length=3)
    tables: list[str] = Field(default_factory=list)

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
            if len(t.split(".")) != 2:
                raise ValueError(f"table selector {t!r} must be written source.table")
        return v


class RetentionProfile(BaseModel):
    """A named set of retention rules for some jurisdictions (e.g. the GDPR defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    profile: str
    jurisdictions: list[str] = Field(min_length=1)
    rules: list[RetentionRule] = Field(min_length=1)

    @field_validator("jurisdictions")
    @classmethod
    def _juris(cls, v: list[str]) -> list[str]:
        return check_jurisdictions(v)

    @field_validator("rules")
    @classmethod
    def _unique(cls, v: list[RetentionRule]) -> list[RetentionRule]:
        check_unique([r.name for r in v], "rule")
        return v


def load_retention_profile(path: str | os.PathLike) -> RetentionProfile:
    """Read and validate one retention profile; ConfigError names file, line and field."""
    profile, _ = load_yaml_model(path, RetentionProfile, "retention profile")
    return profile


def shipped_profiles() -> dict[str, RetentionProfile]:
    """The default profiles shipped in governance/retention_policies/, by profile name."""
    files = sorted(SHIPPED_PROFILES.glob("*.yaml"))
    if not files:
        raise GovernanceError(f"no retention profiles in {SHIPPED_PROFILES}: the installation "
                              "is incomplete (package data missing)")
    profiles = [load_retention_profile(p) for p in files]
    return {p.profile: p for p in profiles}
