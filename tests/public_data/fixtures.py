"""pytest fixtures: Chinook and TPC-DS on SQLite and PostgreSQL, a fresh copy per test.

Each dataset is built once per session (a SQLite file; a PostgreSQL database with a unique
name, dropped at the end of the session) and copied for each test (the file; ``CREATE
DATABASE ... TEMPLATE``). A test gets a ``PublicDb``: where the copy is, a plain connection
for independent checks, the two inventories (FK-only and declared) and an empty audit store.
Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from governance.audit_store import AuditStore

from . import chinook as chinook_dataset
from . import northwind as northwind_dataset
from . import pagila as pagila_dataset
from . import sample_schemas
from . import tpcds as tpcds_dataset
from .inventories import write_inventories
from .oracle import Db
from .sources import DataUnavailable

PG_DSN_ENV = "GOVKIT_PUBLIC_DATA_PG_DSN"
SOURCE = {"chinook": "chinook", "tpcds": "tpcds", "northwind": "northwind",
          "pagila": "pagila", "co": "co", "hr": "hr"}


@dataclass
class PublicDb:
    """One fresh copy of a public dataset, with its inventories and an audit store."""

    dataset: str              # chinook | tpcds | northwind | pagila | co | hr
    kind: str                 # sqlite | postgres
    target: str               # file path or DSN
    fk_inventory: Path        # written from the foreign keys alone
    declared_inventory: Path  # with kind / on_erase where the FK-only one is ambiguous
    store: AuditStore

    @property
    def source(self) -> str:
        """The inventory's name for the source."""
        return SOURCE[self.dataset]

    def connect(self) -> Db:
        """A plain connection for independent checks (close it)."""
        return Db(self.kind, self.target)


def _new_store(path: Path) -> AuditStore:
    """An empty audit store (``create=True`` where the store asks for it)."""
    try:
        store = AuditStore(path, create=True)  # type: ignore[call-arg]
    except TypeError:
        store = AuditStore(path)
    store.query("SELECT 1")  # created now, as `govkit init` would, before the test uses it
    return store


def _unavailable(e: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"public sample data unavailable in CI: {e}")
    pytest.skip(f"public sample data unavailable: {e}")


def _prepare(folder: Path, db: Db, dataset: str, kind: str, target: str) -> tuple[Path, Path]:
    connection = ({"path": target} if kind == "sqlite"
                  else {"dsn_env": PG_DSN_ENV, "schema": "public"})
    source = {"name": SOURCE[dataset], "kind": kind, "connection": connection}
    return write_inventories(db, dataset, source, folder)


# -- built once per session ------------------------------------------------------------

@pytest.fixture(scope="session")
def tpcds_data() -> tpcds_dataset.Data:
    """The TPC-DS subset's rows, read once from the generated CSV files."""
    try:
        return tpcds_dataset.Data()
    except DataUnavailable as e:
        _unavailable(e)
        raise


# One cache per session, however many test modules bring these fixtures in (each module
# that imports a session fixture gets its own instance of it).
_SQLITE_TEMPLATES: dict[str, Path] = {}
_PG_TEMPLATES: dict[str, str] = {}


@pytest.fixture(scope="session")
def _sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _SQLITE_TEMPLATES


def _sqlite_template(dataset: str, cache: dict[str, Path], folder: Path,
                     request: pytest.FixtureRequest) -> Path:
    if dataset not in cache:
        path = folder / f"{dataset}.db"
        try:
            if dataset == "chinook":
                chinook_dataset.load_sqlite(path)
            elif dataset in sample_schemas.DATASETS:
                sample_schemas.load_sqlite(path, dataset)
            else:
                tpcds_dataset.load_sqlite(request.getfixturevalue("tpcds_data"), path)
        except DataUnavailable as e:
            _unavailable(e)
        cache[dataset] = path
    return cache[dataset]


@pytest.fixture(scope="session")
def _pg_templates(pg_dsn: str) -> Iterator[dict[str, str]]:
    """dataset -> name of a session database holding it (created on first use)."""
    made = _PG_TEMPLATES
    yield made
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for name in made.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    made.clear()


_SESSION = uuid.uuid4().hex[:8]


def _pg_template(dataset: str, made: dict[str, str], pg_dsn: str,
                 request: pytest.FixtureRequest) -> str:
    if dataset not in made:
        name = f"govkit_pub_{_SESSION}_{dataset}"
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made[dataset] = name
        dsn = make_conninfo(pg_dsn, dbname=name)
        try:
            if dataset == "chinook":
                chinook_dataset.load_postgres(dsn)
            elif dataset == "northwind":
                northwind_dataset.load_postgres(dsn)
            elif dataset == "pagila":
                pagila_dataset.load_postgres(dsn)
            elif dataset in sample_schemas.DATASETS:
                sample_schemas.load_postgres(dsn, dataset)
            else:
                tpcds_dataset.load_postgres(request.getfixturevalue("tpcds_data"), dsn)
        except DataUnavailable as e:
            _unavailable(e)
    return made[dataset]


# -- a fresh copy per test ---------------------------------------------------------------

def _sqlite_copy(dataset: str, tmp_path: Path, request: pytest.FixtureRequest,
                 cache: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                 ) -> PublicDb:
    template = _sqlite_template(dataset, cache, tmp_path_factory.getbasetemp(), request)
    path = tmp_path / f"{dataset}.db"
    shutil.copyfile(template, path)
    db = Db("sqlite", path)
    try:
        fk, declared = _prepare(tmp_path, db, dataset, "sqlite", str(path))
    finally:
        db.close()
    return PublicDb(dataset, "sqlite", str(path), fk, declared,
                    _new_store(tmp_path / "audit.duckdb"))


def _pg_copy(dataset: str, tmp_path: Path, request: pytest.FixtureRequest, pg_dsn: str,
             made: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[PublicDb]:
    template = _pg_template(dataset, made, pg_dsn, request)
    name = f"govkit_pub_{_SESSION}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    dsn = make_conninfo(pg_dsn, dbname=name)
    monkeypatch.setenv(PG_DSN_ENV, dsn)
    try:
        db = Db("postgres", dsn)
        try:
            fk, declared = _prepare(tmp_path, db, dataset, "postgres", dsn)
        finally:
            db.close()
        yield PublicDb(dataset, "postgres", dsn, fk, declared,
                       _new_store(tmp_path / "audit.duckdb"))
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def chinook_sqlite(tmp_path: Path, request: pytest.FixtureRequest,
                   _sqlite_templates: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> PublicDb:
    """Chinook in a SQLite file of the test's own."""
    return _sqlite_copy("chinook", tmp_path, request, _sqlite_templates, tmp_path_factory)


@pytest.fixture()
def tpcds_sqlite(tmp_path: Path, request: pytest.FixtureRequest,
                 _sqlite_templates: dict[str, Path],
                 tmp_path_factory: pytest.TempPathFactory) -> PublicDb:
    """The TPC-DS subset in a SQLite file of the test's own."""
    return _sqlite_copy("tpcds", tmp_path, request, _sqlite_templates, tmp_path_factory)


@pytest.fixture()
def chinook_pg(tmp_path: Path, request: pytest.FixtureRequest, pg_dsn: str,
               _pg_templates: dict[str, str], monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[PublicDb]:
    """Chinook in a PostgreSQL database of the test's own (dropped afterwards)."""
    yield from _pg_copy("chinook", tmp_path, request, pg_dsn, _pg_templates, monkeypatch)


@pytest.fixture()
def tpcds_pg(tmp_path: Path, request: pytest.FixtureRequest, pg_dsn: str,
             _pg_templates: dict[str, str], monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[PublicDb]:
    """The TPC-DS subset (with a view, a materialized view, a partitioned table and a
    trigger) in a PostgreSQL database of the test's own (dropped afterwards)."""
    yield from _pg_copy("tpcds", tmp_path, request, pg_dsn, _pg_templates, monkeypatch)


@pytest.fixture()
def northwind_pg(tmp_path: Path, request: pytest.FixtureRequest, pg_dsn: str,
                 _pg_templates: dict[str, str], monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[PublicDb]:
    """Northwind (PostgreSQL port, committed with its licence) in a PostgreSQL database of
    the test's own (dropped afterwards)."""
    yield from _pg_copy("northwind", tmp_path, request, pg_dsn, _pg_templates, monkeypatch)


@pytest.fixture()
def pagila_pg(tmp_path: Path, request: pytest.FixtureRequest, pg_dsn: str,
              _pg_templates: dict[str, str], monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[PublicDb]:
    """Pagila (PostgreSQL port of Sakila, committed with its licence) in a PostgreSQL
    database of the test's own (dropped afterwards)."""
    yield from _pg_copy("pagila", tmp_path, request, pg_dsn, _pg_templates, monkeypatch)


def _sample_schema(dataset: str, request: pytest.FixtureRequest) -> Iterator[PublicDb]:
    if request.param == "sqlite":
        yield _sqlite_copy(dataset, request.getfixturevalue("tmp_path"), request,
                           request.getfixturevalue("_sqlite_templates"),
                           request.getfixturevalue("tmp_path_factory"))
        return
    yield from _pg_copy(dataset, request.getfixturevalue("tmp_path"), request,
                        request.getfixturevalue("pg_dsn"),
                        request.getfixturevalue("_pg_templates"),
                        request.getfixturevalue("monkeypatch"))


BACKENDS = ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def chinook(request: pytest.FixtureRequest) -> PublicDb:
    """Chinook on each backend."""
    return request.getfixturevalue(f"chinook_{request.param}")


@pytest.fixture(params=BACKENDS)
def tpcds(request: pytest.FixtureRequest) -> PublicDb:
    """The TPC-DS subset on each backend."""
    return request.getfixturevalue(f"tpcds_{request.param}")


@pytest.fixture(params=BACKENDS)
def oracle_co(request: pytest.FixtureRequest) -> Iterator[PublicDb]:
    """Oracle's CO sample schema (customer orders; committed with its MIT licence) on each
    backend, a copy of the test's own."""
    yield from _sample_schema("co", request)


@pytest.fixture(params=BACKENDS)
def oracle_hr(request: pytest.FixtureRequest) -> Iterator[PublicDb]:
    """Oracle's HR sample schema (employees, managers, job history) on each backend."""
    yield from _sample_schema("hr", request)
