"""Pagila's catalogue as govkit reads it (public, MIT-style; PostgreSQL): its materialized
view ``rental_by_category`` is published never populated, and reading one is an error
that aborted every later query of the source (every request on Pagila failed). It is left
out of the tables read, and an inventory that declares it is told why it holds no rows
instead of "declared but not found"."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from public_data.fixtures import PublicDb

from governance.discovery import discover
from governance.inventory import load_inventory

pytestmark = pytest.mark.postgres


def test_a_materialized_view_never_populated_is_named_not_read(pagila_pg: PublicDb,
                                                              tmp_path: Path) -> None:
    check = pagila_pg.connect()
    try:
        assert check.query("SELECT relispopulated FROM pg_class WHERE relname = "
                           "'rental_by_category'") == [(False,)]
    finally:
        check.close()
    doc = yaml.safe_load(pagila_pg.declared_inventory.read_text())
    doc["sources"][0]["tables"].append({"name": "rental_by_category"})
    path = tmp_path / "with-view.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (state,) = discover(load_inventory(path))
    assert state.reachable, state.error
    tables = {t.table: t for t in state.tables}
    view = tables["rental_by_category"]
    assert view.present and view.row_count == 0 and "never populated" in (view.note or "")
    assert tables["customer"].row_count == 599 and tables["payment"].present
