"""The Dagster definitions load, and the discovery job really executes."""

from __future__ import annotations

import importlib
import sys
from datetime import datetime

import dagster as dg
import pytest

from governance.audit_store import AuditStore
from pipelines.build import build_definitions


@pytest.fixture()
def defs_and_store(fresh_demo, tmp_path):
    store_path = tmp_path / "audit.duckdb"
    return build_definitions(fresh_demo.inventory, store_path), AuditStore(store_path, create=True)


def test_discovery_job_executes_per_source_partition(defs_and_store) -> None:
    defs, store = defs_and_store
    job = defs.resolve_job_def("discovery_scan")
    instance = dg.DagsterInstance.ephemeral()
    for source in ("app_db", "marketing_export", "event_log"):
        result = job.execute_in_process(partition_key=source, instance=instance)
        assert result.success
        mats = result.asset_materializations_for_node("pii_classification")
        assert mats[0].partition == source
        run_id = mats[0].metadata["scan_run_id"].value
        runs = store.query("SELECT * FROM scan_runs WHERE run_id = ?", [run_id])
        assert runs[0]["sources"] == [source]
        assert runs[0]["orchestrator_run_id"] == result.run_id
        assert runs[0]["status"] == "succeeded"
    app = store.query("SELECT column_name FROM column_findings WHERE status = "
                      "'undeclared_table_pii' ORDER BY column_name")
    assert [r["column_name"] for r in app] == ["email_address", "name", "signup_ip"]
    assert store.verify_log().ok


def test_failing_source_fails_its_run(defs_and_store, fresh_demo) -> None:
    defs, _ = defs_and_store
    fresh_demo.marketing_csv.unlink()
    job = defs.resolve_job_def("discovery_scan")
    result = job.execute_in_process(partition_key="marketing_export",
                                    instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success


def test_materialize_assets_directly(defs_and_store) -> None:
    defs, store = defs_and_store
    assets = list(defs.assets)
    result = dg.materialize(assets, partition_key="event_log",
                            resources={"governance": defs.resources["governance"]})
    assert result.success
    [run] = store.scan_runs()
    assert run["sources"] == ["event_log"]


def test_daily_schedule_requests_one_run_per_source(defs_and_store) -> None:
    defs, _ = defs_and_store
    schedule = defs.resolve_schedule_def("daily_discovery_scan")
    assert schedule.cron_schedule == "0 2 * * *"
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 25, 2))
    requests = list(schedule(ctx))
    assert [r.partition_key for r in requests] == ["app_db", "marketing_export", "event_log"]
    assert len({r.run_key for r in requests}) == 3


def test_definitions_module_loads_from_environment(fresh_demo, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GOVKIT_INVENTORY", str(fresh_demo.inventory))
    monkeypatch.setenv("GOVKIT_AUDIT_STORE", str(tmp_path / "env.duckdb"))
    sys.modules.pop("pipelines.definitions", None)
    module = importlib.import_module("pipelines.definitions")
    dg.Definitions.validate_loadable(module.defs)
    assert module.defs.resolve_job_def("discovery_scan").partitions_def.get_partition_keys() == [
        "app_db", "marketing_export", "event_log"]


def test_definitions_module_builds_demo_when_unconfigured(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GOVKIT_INVENTORY", raising=False)
    monkeypatch.delenv("GOVKIT_AUDIT_STORE", raising=False)
    monkeypatch.setenv("GOVKIT_DEMO_DIR", str(tmp_path / "demo"))
    sys.modules.pop("pipelines.definitions", None)
    module = importlib.import_module("pipelines.definitions")
    assert (tmp_path / "demo" / "inventory.yaml").exists()
    resource = module.defs.resources["governance"]
    assert resource.audit_store_path == str((tmp_path / "demo" / "audit.duckdb").resolve())


def test_full_mode_from_run_config(defs_and_store) -> None:
    defs, store = defs_and_store
    job = defs.resolve_job_def("discovery_scan")
    result = job.execute_in_process(
        partition_key="app_db", instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"pii_classification": {"config": {"mode": "full"}}}})
    assert result.success
    [mat] = result.asset_materializations_for_node("pii_classification")
    assert mat.metadata["mode"].value == "full"
    [run] = store.scan_runs(1)
    assert run["mode"] == "full" and run["sample_rows"] is None
    bad = job.execute_in_process(
        partition_key="app_db", instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        run_config={"ops": {"pii_classification": {"config": {"mode": "everything"}}}})
    assert not bad.success
