"""Helpers for request tests: a request ready to run, and a request run in a process of its
own, as a worker would run it, for tests that kill it (``GOVKIT_FAULT``) or run two at once
(the worker prints the outcome's status, or ``refused: <why>``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = """
import sys
from governance.audit_store import AuditStore
from governance.dsar.runner import run_request
from governance.errors import GovernanceError
from governance.inventory import load_inventory
inventory, store, request_id, take_over = sys.argv[1:5]
try:
    out = run_request(load_inventory(inventory), AuditStore(store), request_id, 'worker',
                      confirm=lambda steps: True, take_over=take_over == '1')
    print(out.status)
except GovernanceError as e:
    print('refused:', e)
"""


def start_worker(inventory: Path, store: Path, request_id: str, fault: str | None = None,
                 take_over: bool = True) -> subprocess.Popen:
    """Start running ``request_id``; ``fault`` is a ``GOVKIT_FAULT`` spec, or None."""
    env = {k: v for k, v in os.environ.items() if k != "GOVKIT_FAULT"}
    if fault:
        env["GOVKIT_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(inventory), str(store),
                             request_id, "1" if take_over else "0"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_worker(inventory: Path, store: Path, request_id: str, fault: str | None = None,
               take_over: bool = True, timeout: float = 240) -> tuple[int, str, str]:
    """Run a worker to its end: (exit status, stdout, stderr)."""
    proc = start_worker(inventory, store, request_id, fault, take_over)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def cleared_request(store: Any, rtype: str, identity: str, jurisdiction: str = "EU",
                    inventory: Any = None) -> str:
    """A request recorded, verified and (to change data) approved as planned now: ready to
    run. Its id. ``inventory``: an Inventory or its path (default: inventory.yaml beside
    the store)."""
    from governance.dsar.requests import RequestBook

    book = RequestBook(store)
    r = book.create(rtype, [identity], jurisdiction, "dpo")
    book.verify(r.request_id, "dpo", "identity checked")
    if rtype != "access":
        approve_plan(store, r.request_id, inventory)
    return r.request_id


def approve_plan(store: Any, request_id: str, inventory: Any = None,
                 actor: str = "dpo-lead") -> Any:
    """Approve the plan a run of ``request_id`` would make now (as a DPO does after
    reviewing `govkit dsar plan`): the PlanBinding approved."""
    from governance.dsar.approval import approve_request
    from governance.dsar.requests import RequestError
    from governance.inventory import Inventory, load_inventory

    if inventory is None:
        inventory = Path(store.path).parent / "inventory.yaml"
    if not isinstance(inventory, Inventory):
        inventory = load_inventory(Path(inventory))
    try:
        return approve_request(inventory, store, request_id, actor, "plan reviewed")[1]
    except RequestError as e:
        if "name it: --plan" not in str(e):
            raise
    # A plan that finds no person row: the DPO reviewed it and names it.
    from governance.dsar.approval import plan_binding

    digest = plan_binding(inventory, store, request_id)[2].digest
    return approve_request(inventory, store, request_id, actor, "plan reviewed", digest)[1]


def exported_tables(outcome: Any) -> dict[str, list[dict[str, Any]]]:
    """An access request's export, opened: table name -> its rows (tables with rows only;
    the name as the source spells it)."""
    from governance.dsar.export import open_export

    files = open_export(outcome.export_path, outcome.passphrase)
    return {name.split("/")[2].removesuffix(".json"): rows for name, rows in files.items()
            if name.startswith("data/") and rows}
