"""Field encryption in Dagster: the job per source encrypts and the asset check fails on
plaintext where the policy requires ciphertext; Dagster's storage holds no plaintext."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import dagster as dg

from governance.audit_store import AuditStore
from pipelines.build import build_definitions
from pipelines.encryption import CHECK_NAME, encryption_definitions


def _check(result: Any) -> Any:
    [ev] = result.get_asset_check_evaluations()
    assert ev.check_name == CHECK_NAME
    return ev


def test_job_per_source_encrypts_and_check_fails_on_plaintext(fresh_demo: Any, tmp_path: Path
                                                             ) -> None:
    store_path = tmp_path / "audit.duckdb"
    AuditStore(store_path, create=True).schema_version()
    defs = dg.Definitions.merge(build_definitions(fresh_demo.inventory, store_path),
                                encryption_definitions(str(fresh_demo.inventory)))
    job = defs.resolve_job_def("field_encryption_job")
    with sqlite3.connect(fresh_demo.app_db) as c:
        plain = [v for r in c.execute("SELECT resident_id, bank_card FROM user_kyc") for v in r]
    with dg.DagsterInstance.ephemeral() as instance:
        dry = job.execute_in_process(partition_key="app_db", instance=instance, run_config={
            "ops": {"field_encryption": {"config": {"dry_run": True}}}})
        assert dry.success
        ev = _check(dry)
        assert not ev.passed  # the dry run changed nothing: plaintext is still there
        assert "app_db.user_kyc.resident_id: plaintext" in str(ev.metadata["not_encrypted"])
        done = job.execute_in_process(partition_key="app_db", instance=instance)
        assert done.success and _check(done).passed
        assert done.asset_materializations_for_node("field_encryption")[0].metadata[
            "cells_sealed"].value == len(plain)
        # Dagster's event log (run storage) holds no plaintext value.
        stored = ""
        for run in instance.get_runs():
            for rec in instance.all_logs(run.run_id):
                stored += str(rec)
        assert stored and not any(v in stored for v in plain)
    with sqlite3.connect(fresh_demo.app_db) as c:
        assert all(v.startswith("gk1:") for r in c.execute(
            "SELECT resident_id, bank_card FROM user_kyc") for v in r)
