"""Inventory and intake files as untrusted input: secrets, YAML alias bombs, paths, lines."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from governance.cli import main
from governance.errors import ConfigError
from governance.inventory import load_inventory

BASE = """\
version: 1
organization: Test Org
sources:
  - name: app
    kind: csv
    connection:
      path: data/app.csv
    owner: dpo@example.com
    jurisdictions: [EU]
    tables:
      - name: app
        subject_key: id
  - name: crm
    kind: postgres
    connection:
      dsn_env: CRM_DSN
      schema: public
    owner: crm-team
    jurisdictions: [EU]
"""


def write(folder: Path, text: str, name: str = "inventory.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "app.csv").write_text("id,email\n1,a@example.com\n")
    p = folder / name
    p.write_text(textwrap.dedent(text))
    return p


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_base_inventory_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, BASE))
    assert inv.resolve_path(inv.source("app")) == (tmp_path / "data" / "app.csv").resolve()
    assert inv.allow_outside_paths is False


@pytest.mark.parametrize(("old", "new", "line", "field"), [
    ("path: data/app.csv", "path: 'postgresql://app:hunter2pw@db.internal/app'", 7,
     "sources[0].connection.path"),
    ("schema: public", "schema: 'postgresql://app:hunter2pw@db.internal/app'", 17,
     "sources[1].connection.schema"),
    ("schema: public", "schema: 'host=db.internal user=app password=hunter2pw'", 17,
     "sources[1].connection.schema"),
    ("owner: crm-team", "owner: 'https://bot:hunter2pw@crm.example.com/'", 18,
     "sources[1].owner"),
    ("organization: Test Org", "organization: 'ghp_hunter2pwAbCdEfGhIjKlMnOpQrStUvWxYz01'", 2,
     "organization"),
    ("        subject_key: id", "        subject_key: id\n        description: "
     "'token xoxb-hunter2pw-1234567890-abc'", 13, "sources[0].tables[0].description"),
])
def test_secrets_are_refused_in_every_field(tmp_path: Path, old: str, new: str, line: int,
                                            field: str) -> None:
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new))
    text = error_of(path)
    assert text.startswith(f"{path}:{line}: {field}: looks like "), text
    assert "hunter2pw" not in text


def test_secret_in_a_mistyped_field_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("kind: postgres", "kind: 'postgres://u:hunter2pw@h/d'"))
    text = error_of(path)
    assert "hunter2pw" not in text and "sources[1].kind" in text


BOMB = """\
version: 1
organization: &a0 "lol"
a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]
a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]
a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]
a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]
a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]
a7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]
a8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]
a9: &a9 [*a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8]
sources: *a9
"""


def test_yaml_alias_bomb_fails_fast_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.perf_counter()
    text = error_of(path)
    assert time.perf_counter() - started < 2.0
    assert text.startswith(f"{path}: ") and "aliases" in text, text
    runner = CliRunner()
    started = time.perf_counter()
    result = runner.invoke(main, ["inventory", "-i", str(path)])
    assert time.perf_counter() - started < 5.0
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"govkit: error: {path}: "), result.output


def test_intake_alias_bomb_fails_fast_and_records_nothing(tmp_path: Path) -> None:
    from governance.audit_store import AuditStore

    store = tmp_path / "audit.duckdb"
    AuditStore(store, create=True).schema_version()  # an existing store
    intake = tmp_path / "subject.yaml"
    intake.write_text(BOMB.replace("version: 1\n", "").replace("sources: *a9",
                                                                "identities: {email: *a9}"))
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["dsar", "new", "--type", "erasure", "--jurisdiction",
                                       "EU", "--from-file", str(intake), "--store", str(store)])
    assert time.perf_counter() - started < 5.0
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(intake) in lines[0] and "aliases" in lines[0], result.output
    assert intake.exists()
    assert AuditStore(store).query("SELECT count(*) AS n FROM dsar_requests")[0]["n"] == 0


def test_ordinary_aliases_still_load(tmp_path: Path) -> None:
    text = BASE.replace("    jurisdictions: [EU]\n    tables:",
                        "    jurisdictions: &eu [EU]\n    tables:", 1)
    text = text.replace("    jurisdictions: [EU]\n", "    jurisdictions: *eu\n")
    inv = load_inventory(write(tmp_path, text))
    assert inv.source("crm").jurisdictions == ["EU"]


@pytest.mark.parametrize("path_value", ["../../../../../etc/passwd", "/etc/passwd",
                                        "data/../../outside.csv"])
def test_file_sources_are_confined_to_the_inventory_folder(tmp_path: Path,
                                                           path_value: str) -> None:
    (tmp_path / "outside.csv").write_text("id\n1\n")
    path = write(tmp_path / "inv", BASE.replace("path: data/app.csv", f"path: {path_value}"))
    text = error_of(path)
    assert text.startswith(f"{path}:7: sources[0].connection.path: "), text
    assert "outside the inventory's folder" in text and "allow_outside_paths" in text
    result = CliRunner().invoke(main, ["inventory", "-i", str(path)])
    assert result.exit_code == 2 and "root:" not in result.output, result.output


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("id\n1\n")
    folder = tmp_path / "inv"
    path = write(folder, BASE.replace("path: data/app.csv", "path: data/link.csv"))
    (folder / "data" / "link.csv").symlink_to(tmp_path / "secret.csv")
    assert "outside the inventory's folder" in error_of(path)


def test_allow_outside_paths_lets_an_absolute_path_through(tmp_path: Path) -> None:
    outside = tmp_path / "shared" / "app.csv"
    outside.parent.mkdir()
    outside.write_text("id,email\n1,a@example.com\n")
    text = BASE.replace("path: data/app.csv", f"path: {outside}")
    path = write(tmp_path / "inv", "allow_outside_paths: true\n" + text)
    inv = load_inventory(path)
    assert inv.resolve_path(inv.source("app")) == outside.resolve()
    result = CliRunner().invoke(main, ["inventory", "-i", str(path), "--source", "app"])
    assert "app: 1 rows" in result.output, result.output


def test_duplicate_source_is_reported_at_the_duplicate(tmp_path: Path) -> None:
    text = BASE.replace("  - name: crm\n", "  - name: app\n")
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path}:13: sources[1].name: source declared twice: app")


def test_duplicate_table_is_reported_at_the_duplicate(tmp_path: Path) -> None:
    text = BASE.replace("        subject_key: id\n",
                        "        subject_key: id\n      - name: app\n")
    path = write(tmp_path, text)
    assert error_of(path).startswith(
        f"{path}:13: sources[0].tables[1].name: table declared twice: app")


@pytest.mark.parametrize("old,new,line,field", [
    # Found by a helper: the last of two equal keys won silently (the source read as CSV).
    ("    kind: csv\n", "    kind: csv\n    kind: sqlite\n", 6, "sources[0].kind"),
    ("        subject_key: id\n",
     "        subject_key: id\n        columns:\n          email: {category: contact.email}\n"
     "          email: {category: free_text}\n", 15, "sources[0].tables[0].columns.email"),
    ("version: 1\n", "version: 1\nversion: 1\n", 2, "version"),
])
def test_a_key_written_twice_is_refused_at_the_second(tmp_path: Path, old: str, new: str,
                                                        line: int, field: str) -> None:
    path = write(tmp_path, BASE.replace(old, new, 1))
    assert error_of(path) == f"{path}:{line}: {field}: duplicate key (each may be written once)"
    result = CliRunner().invoke(main, ["scan", "-i", str(path), "--store",
                                       str(tmp_path / "audit.duckdb")])
    assert result.exit_code == 2 and "duplicate key" in result.output
    assert not (tmp_path / "audit.duckdb").exists()


def test_bad_cross_source_reference_is_reported_at_the_reference(tmp_path: Path) -> None:
    text = BASE.replace("        subject_key: id\n",
                        "        subject_key: id\n        references:\n"
                        "          - column: crm_id\n            to: crm.contacts.id\n")
    path = write(tmp_path, text)
    assert error_of(path).startswith(
        f"{path}:15: sources[0].tables[0].references[0].to: source app, table app: "
        "reference crm_id -> crm.contacts.id names a source or table that is not declared")
