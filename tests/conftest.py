"""Shared fixtures: the demo estate, a scanned demo, and a real PostgreSQL server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The public datasets' fixtures (Chinook, TPC-DS, Oracle's CO and HR on SQLite and PostgreSQL;
# Northwind and Pagila on PostgreSQL), registered once
# for every test module.
from public_data.fixtures import (  # noqa: F401
    _pg_templates,
    _sqlite_templates,
    chinook,
    chinook_pg,
    chinook_sqlite,
    northwind_pg,
    oracle_co,
    oracle_hr,
    pagila_pg,
    tpcds,
    tpcds_data,
    tpcds_pg,
    tpcds_sqlite,
)

from governance.audit_store import AuditStore
from governance.demo import DemoPaths, build_demo
from governance.inventory import Inventory, load_inventory
from governance.scan import ScanResult, run_scan


@pytest.fixture(autouse=True)
def _fault_counts_start_at_zero() -> None:
    """Each test counts its own GOVKIT_FAULT hits (``point:n`` means the n-th in it)."""
    from governance import faults

    faults._hits.clear()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    """The demo estate, generated once per test session (do not modify it)."""
    return build_demo(tmp_path_factory.mktemp("demo") / "acme")


@pytest.fixture(scope="session")
def demo_inventory(demo: DemoPaths) -> Inventory:
    return load_inventory(demo.inventory)


@pytest.fixture(scope="session")
def scanned_demo(demo: DemoPaths, demo_inventory: Inventory,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[ScanResult, AuditStore]:
    """One discovery scan of the whole demo, recorded in its own audit store."""
    store = AuditStore(tmp_path_factory.mktemp("store") / "audit.duckdb", create=True)
    return run_scan(demo_inventory, store), store


@pytest.fixture()
def fresh_demo(tmp_path: Path) -> DemoPaths:
    """A demo estate the test may change."""
    return build_demo(tmp_path / "acme", users=60)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of a real PostgreSQL server (GOVKIT_TEST_PG_DSN); required in CI."""
    dsn = os.environ.get("GOVKIT_TEST_PG_DSN")
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail("GOVKIT_TEST_PG_DSN is not set in CI: .ci/run must start PostgreSQL")
        pytest.skip("no PostgreSQL server configured: set GOVKIT_TEST_PG_DSN "
                    "(bash .ci/run starts one)")
    return dsn
