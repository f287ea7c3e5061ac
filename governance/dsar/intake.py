"""Requests recorded from an intake file, for callers whose parameters are kept in plaintext.

A Dagster run config is stored in Dagster's run storage and shown in its UI, and a shell
command line lands in the shell's history; neither may hold a data subject's e-mail or
phone number. Such callers name an intake file instead, which holds the identities (and a
rectification's new values)::

    identities:
      email: ann@example.org
      phone: ["+44 20 7946 0958", "+86 138 1234 5678"]
    set:              # rectify requests only
      phone: "+44 20 7946 0959"
    received: 2026-11-20   # optional: when the request arrived (default: now)

The file (YAML or JSON) is read, the request is recorded sealed in the audit store, and
the file is then removed, so that no plaintext copy outlives the intake.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from governance.config_files import load_yaml_model
from governance.dsar.identities import Identity, IdentityError, parse_identity
from governance.dsar.requests import (
    DataSubjectRequest,
    RequestBook,
    RequestError,
    received_datetime,
)
from governance.errors import ConfigError

log = logging.getLogger(__name__)


class _IntakeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    identities: dict[str, list[str]]
    corrections: dict[str, str] = Field(default_factory=dict, alias="set")
    received: date | None = None

    @field_validator("received")
    @classmethod
    def _not_future(cls, value: date | None) -> date | None:
        if value is not None:
            try:
                received_datetime(value)
            except RequestError as e:
                raise ValueError(str(e)) from None
        return value

    @field_validator("identities", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if not value:
                raise ValueError("name at least one identity, e.g. `email: ...`")
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value


@dataclass(frozen=True)
class Intake:
    """What an intake file says about a data subject."""

    identities: list[Identity]
    corrections: dict[str, str]
    received: date | None = None


def read_intake_file(path: str | os.PathLike) -> Intake:
    """The identities and corrections of the intake file ``path``; ConfigError names the
    file, line and field of any problem (never a value)."""
    model, _ = load_yaml_model(path, _IntakeModel, "intake")
    identities = []
    for kind, values in model.identities.items():
        for i, value in enumerate(values):
            field = f"identities.{kind}" + (f"[{i}]" if len(values) > 1 else "")
            try:
                identities.append(parse_identity(f"{kind}={value}"))
            except IdentityError as e:
                raise ConfigError(str(path), str(e), field=field) from None
    for name, value in model.corrections.items():
        if not name.strip() or not value.strip():
            raise ConfigError(str(path), "a correction needs a field and a new value",
                              field=f"set.{name}")
    return Intake(identities, {k.strip(): v.strip() for k, v in model.corrections.items()},
                  model.received)


def create_from_file(book: RequestBook, path: str | os.PathLike, request_type: str,
                     jurisdiction: str, actor: str, remove: bool = True,
                     **options: Any) -> DataSubjectRequest:
    """Record a request for the subject described by the intake file ``path`` (see
    ``RequestBook.create`` for ``options``); the file is removed once the request is
    recorded, unless ``remove`` is False. A failure leaves the file in place. The date
    the request was received is the file's ``received`` or ``options['received_at']``
    (not both)."""
    intake = read_intake_file(path)
    if intake.received is not None:
        if options.get("received_at") is not None:
            raise ConfigError(str(path), "the received date is given both here and by the "
                                         "caller (--received); give it once", field="received")
        options["received_at"] = intake.received
    try:
        request = book.create(request_type, intake.identities, jurisdiction, actor,
                              intake.corrections, **options)
    except RequestError as e:
        raise RequestError(f"{path}: {e}") from None
    if remove:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as e:
            log.warning("request %s recorded, but its intake file %s could not be removed: "
                        "%s; remove it by hand", request.request_id, path, e.strerror)
    return request
