"""Retention on files (Parquet) of Oracle's sample schemas CO and HR (MIT; nobody on this
project wrote them): a delete rule on files follows the inventory's references as it does
on a database's foreign keys.

Found by a helper: on Parquet, deleting employees nine years after hiring removed all 12
due, the president included, leaving 28 employees and 6 departments pointing at deleted
managers and the deleted employees' job history behind; deleting old orders left their
1,416 order lines pointing at nothing. The same rules on PostgreSQL kept the 8 employees
others still point at and deleted the orders' lines first.

Expectations are computed here from the rows the published scripts give (Python over
``sample_schemas.rows``), and the files are read back with pyarrow.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from public_data import sample_schemas

from governance.audit_store import AuditStore
from governance.inventory import load_inventory
from governance.retention.applying import apply_retention
from governance.retention.planning import plan_retention
from governance.retention.policy import load_policies

NOW = datetime(2022, 9, 1, tzinfo=UTC)


def _digest(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def _read(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.stem: pq.read_table(p).to_pylist() for p in sorted(folder.glob("*.parquet"))}


def _estate(tmp: Path, dataset: str, tables: list[dict[str, Any]], rules: str
            ) -> tuple[Path, list[Any], AuditStore]:
    data = tmp / "data"
    sample_schemas.write_parquet(data, dataset)
    inv = tmp / "inventory.yaml"
    inv.write_text(yaml.safe_dump({
        "version": 1, "organization": f"oracle {dataset}", "sources": [{
            "name": dataset, "kind": "parquet", "connection": {"path": "data"},
            "owner": "dpo@example.org", "jurisdictions": ["EU"], "tables": tables}]},
        sort_keys=False))
    policy = tmp / "retention.yaml"
    policy.write_text(f"version: 1\nprofile: oracle\njurisdictions: [EU]\n{rules}")
    return inv, load_policies([policy]), AuditStore(tmp / "audit.duckdb", create=True)


HR_TABLES = [
    {"name": "employees", "subject_key": "employee_id", "references": [
        {"column": "manager_id", "to": "employees.employee_id", "kind": "reference",
         "on_erase": "detach"}]},
    {"name": "departments", "references": [
        {"column": "manager_id", "to": "employees.employee_id", "kind": "reference",
         "on_erase": "detach"},
        {"column": "location_id", "to": "locations.location_id"}]},
    {"name": "job_history", "references": [
        {"column": "employee_id", "to": "employees.employee_id", "kind": "owner"}]},
    {"name": "jobs"}, {"name": "locations"}, {"name": "countries"}, {"name": "regions"},
]
HR_RULES = """rules:
  - name: employees-9y
    tables: [hr.employees]
    retain: 9 years
    clock: hire_date
    action: delete
    basis: "Staff records: nine years after hiring"
"""


def test_hr_files_keep_the_employees_others_point_at_and_take_the_job_history_of_those_going(
        tmp_path: Path) -> None:
    inv_path, policies, store = _estate(tmp_path, "hr", HR_TABLES, HR_RULES)
    before = _read(tmp_path / "data")
    cutoff = date(2013, 9, 1)
    due = {e["employee_id"] for e in before["employees"] if e["hire_date"] <= cutoff}
    pointed_at = {e["manager_id"] for e in before["employees"]} | \
        {d["manager_id"] for d in before["departments"]}
    going = due - pointed_at
    assert going and due & pointed_at      # both kinds are in the published data
    inv = load_inventory(inv_path)
    plan = plan_retention(policies, inv, store, NOW)
    person = next(s for s in plan.steps if s.table == "employees")
    assert (person.due, person.referenced) == (len(going), len(due & pointed_at))
    result = apply_retention(policies, inv, store, NOW, "tester")
    assert all(s["status"] == "done" for s in result.steps)
    assert result.changed == len(going) + sum(
        1 for j in before["job_history"] if j["employee_id"] in going | due)
    after = _read(tmp_path / "data")
    assert {e["employee_id"] for e in before["employees"]} - \
        {e["employee_id"] for e in after["employees"]} == going
    # Nothing points at a row that is gone; the job history of those gone went with them.
    left = {e["employee_id"] for e in after["employees"]}
    assert {e["manager_id"] for e in after["employees"]} - {None} <= left
    assert {d["manager_id"] for d in after["departments"]} - {None} <= left
    assert {j["employee_id"] for j in after["job_history"]} <= left
    # Every row left is byte for byte a row that was there (no other change).
    for table, rows in after.items():
        assert {_digest(r) for r in rows} <= {_digest(r) for r in before[table]}, table
    for table in ("departments", "jobs", "locations", "countries", "regions"):
        assert len(after[table]) == len(before[table]), table


CO_TABLES = [
    {"name": "customers", "subject_key": "customer_id"},
    {"name": "orders", "references": [
        {"column": "customer_id", "to": "customers.customer_id", "kind": "owner"},
        {"column": "store_id", "to": "stores.store_id"}]},
    {"name": "shipments", "references": [
        {"column": "customer_id", "to": "customers.customer_id", "kind": "owner"},
        {"column": "store_id", "to": "stores.store_id"}]},
    {"name": "order_items", "references": [
        {"column": "order_id", "to": "orders.order_id", "kind": "owner"},
        {"column": "shipment_id", "to": "shipments.shipment_id", "kind": "reference"},
        {"column": "product_id", "to": "products.product_id"}]},
    {"name": "stores"}, {"name": "products"}, {"name": "inventory"},
]
CO_RULES = """keys: {co.orders: order_id}
rules:
  - name: orders-1y
    tables: [co.orders]
    retain: 1 year
    clock: order_tms
    action: delete
    basis: "Order records: one year"
    exceptions: [{column: order_status, in: [REFUNDED]}]
"""


def test_co_files_delete_old_orders_with_their_lines_first(tmp_path: Path) -> None:
    inv_path, policies, store = _estate(tmp_path, "co", CO_TABLES, CO_RULES)
    before = _read(tmp_path / "data")
    cutoff = datetime(2021, 9, 1)
    due = {o["order_id"] for o in before["orders"]
           if o["order_tms"] <= cutoff and o["order_status"] != "REFUNDED"}
    lines = {(i["order_id"], i["line_item_id"]) for i in before["order_items"]
             if i["order_id"] in due}
    assert due and lines
    inv = load_inventory(inv_path)
    plan = plan_retention(policies, inv, store, NOW)
    assert {(s.table, s.due) for s in plan.steps} == {("orders", len(due)),
                                                      ("order_items", len(lines))}
    result = apply_retention(policies, inv, store, NOW, "tester")
    assert result.changed == len(due) + len(lines)
    after = _read(tmp_path / "data")
    assert {o["order_id"] for o in after["orders"]} == \
        {o["order_id"] for o in before["orders"]} - due
    assert {(i["order_id"], i["line_item_id"]) for i in after["order_items"]} == \
        {(i["order_id"], i["line_item_id"]) for i in before["order_items"]} - lines
    assert {i["order_id"] for i in after["order_items"]} <= \
        {o["order_id"] for o in after["orders"]}
    for table, rows in after.items():
        assert {_digest(r) for r in rows} <= {_digest(r) for r in before[table]}, table
        if table not in ("orders", "order_items"):
            assert len(rows) == len(before[table]), table


def test_co_files_a_key_rows_share_is_refused_before_anything_changes(tmp_path: Path
                                                                       ) -> None:
    """Found by a helper: ``keys: {co.orders: order_status}`` (a value many orders share)
    passed; the plan promised 712 orders, the run took every due order's lines and then
    only the 40 orders whose status no kept order has, leaving 672 orders without their
    lines, and said done. A key is checked to name one row, at the policy's line."""
    from governance.errors import ConfigError

    rules = CO_RULES.replace("keys: {co.orders: order_id}", "keys: {co.orders: order_status}")
    inv_path, policies, store = _estate(tmp_path, "co", CO_TABLES, rules)
    before = _read(tmp_path / "data")
    with pytest.raises(ConfigError, match=r"retention\.yaml:4: keys\.co\.orders: "
                       r"order_status is not a row key of co\.orders"):
        plan_retention(policies, load_inventory(inv_path), store, NOW)
    assert _read(tmp_path / "data") == before


def test_co_files_keep_an_order_a_line_added_during_the_run_points_at(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line written for a due order after the lines' step (another program, during the
    run) keeps its order: the orders' file is rewritten only without orders no row points
    at as it is applied, not as planned."""
    from governance.retention import applying

    inv_path, policies, store = _estate(tmp_path, "co", CO_TABLES, CO_RULES)
    before = _read(tmp_path / "data")
    cutoff = datetime(2021, 9, 1)
    due = sorted(o["order_id"] for o in before["orders"]
                 if o["order_tms"] <= cutoff and o["order_status"] != "REFUNDED")
    late = {**before["order_items"][0], "order_id": due[0], "line_item_id": 99}
    real = applying.fault_point

    def during(name: str) -> None:
        if name == "retention.after_step" and not late.get("written"):
            lines = tmp_path / "data" / "order_items.parquet"
            rows = pq.read_table(lines).to_pylist()
            pq.write_table(pa.Table.from_pylist(rows + [dict(late)]), lines)
            late["written"] = True
        real(name)

    monkeypatch.setattr(applying, "fault_point", during)
    apply_retention(policies, load_inventory(inv_path), store, NOW, "tester")
    after = _read(tmp_path / "data")
    kept = {o["order_id"] for o in after["orders"]}
    assert due[0] in kept and set(due[1:]).isdisjoint(kept)
    assert {i["order_id"] for i in after["order_items"]} <= kept
