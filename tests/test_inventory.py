from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from governance.errors import ConfigError
from governance.inventory import load_inventory

VALID = """\
version: 1
organization: Test Org
sources:
  - name: app
    kind: sqlite
    connection: {path: app.db}
    owner: dpo@example.com
    jurisdictions: [EU, CN]
    tables:
      - name: users
        subject_key: id
        columns:
          email: {category: contact.email}
      - name: orders
        references:
          - {column: user_id, to: users.id}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "inventory.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_valid_inventory_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, VALID))
    src = inv.source("app")
    assert src.kind == "sqlite"
    assert src.table("users").subject_key == "id"
    assert src.table("orders").references[0].table == "users"
    assert inv.resolve_path(src) == (tmp_path / "app.db").resolve()
    assert inv.digest and len(inv.digest) == 64


def test_demo_inventory_loads(demo_inventory) -> None:
    assert [s.name for s in demo_inventory.sources] == ["app_db", "marketing_export", "event_log"]
    ref = demo_inventory.source("event_log").table("events").references[0]
    assert (ref.source, ref.table, ref.target_column) == ("app_db", "users", "id")


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), [
    ("kind: sqlite", "kind: oracle", 5, "sources[0].kind", "Input should be"),
    ("connection: {path: app.db}", "connection: {dsn: 'postgres://u:secret@h/db'}", 6,
     "sources[0].connection.dsn", "must not be written in the inventory"),
    ("- name: users", "- name: users; DROP TABLE users", 10, "sources[0].tables[0].name",
     "is not a plain identifier"),
    ("{category: contact.email}", "{category: contact.mail}", 13,
     "sources[0].tables[0].columns.email.category", "unknown data category"),
    ("jurisdictions: [EU, CN]", "jurisdictions: [EU, MARS]", 8, "sources[0].jurisdictions",
     "unknown jurisdiction 'MARS'"),
    ("    owner: dpo@example.com\n", "", 4, "sources[0].owner", "required field is missing"),
    ("to: users.id", "to: customers.id", 16, "sources[0].tables[1].references[0].to",
     "not declared in this source"),
    ("subject_key: id", "subject_key: id\n        colour: blue", 12,
     "sources[0].tables[0].colour", "unknown field"),
])
def test_invalid_inventory_names_file_line_and_field(tmp_path: Path, old: str, new: str,
                                                     line: int, field: str, message: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:{line}: {field}: "), text
    assert message in text
    assert "secret" not in text


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\norganization: [unclosed\nsources: []\n")
    with pytest.raises(ConfigError, match=r"inventory.yaml:\d+: malformed YAML"):
        load_inventory(path)


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inventory file not found"):
        load_inventory(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_inventory(write(tmp_path, "- just\n- a list\n"))


def test_postgres_source_needs_dsn_env(tmp_path: Path) -> None:
    text = VALID.replace("kind: sqlite", "kind: postgres").replace(
        "connection: {path: app.db}", "connection: {dsn_env: lower_case}")
    with pytest.raises(ConfigError, match="is not an environment variable name"):
        load_inventory(write(tmp_path, text))
