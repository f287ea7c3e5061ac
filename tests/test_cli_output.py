"""What the listing and reporting commands print: every source's latest findings, scan
history, --json, exit statuses, Markdown escaping, and --help texts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner, Result

from governance.audit_store import AuditStore
from governance.cli import main
from governance.inventory import load_inventory
from governance.scan import run_scan


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("govkit: error: "), result.output
    return lines[0]


@pytest.fixture()
def per_source_store(fresh_demo, tmp_path: Path) -> Path:
    """A store holding one scan run per source, as Dagster's partitioned runs write them."""
    path = tmp_path / "audit.duckdb"
    inv = load_inventory(fresh_demo.inventory)
    store = AuditStore(path, create=True)
    for source in ("app_db", "marketing_export", "event_log"):
        assert run_scan(inv, store, [source]).status == "succeeded"
    return path


def test_findings_and_report_cover_every_sources_latest_run(per_source_store: Path,
                                                           tmp_path: Path) -> None:
    # Independent expectation, straight from the store with our own SQL.
    with duckdb.connect(str(per_source_store), read_only=True) as c:
        expected = {f"{s}.{t}.{col}" for s, t, col in c.execute(
            "SELECT source, table_name, column_name FROM column_findings "
            "WHERE detected_category IS NOT NULL OR declared_category IS NOT NULL").fetchall()}
    assert {e.split(".")[0] for e in expected} == {"app_db", "marketing_export", "event_log"}
    result = run("findings", "--store", str(per_source_store))
    assert result.exit_code == 0, result.output
    shown = {line.split(":")[0] for line in result.stdout.strip().splitlines()}
    assert shown == expected

    out = tmp_path / "rep"
    result = run("report", "--store", str(per_source_store), "--out", str(out))
    assert result.exit_code == 0, result.output
    text = (out / "latest.md").read_text()
    for source in ("app_db", "marketing_export", "event_log"):
        assert f"| {source.replace('_', chr(92) + '_')} |" in text

    # A newer scan of one source replaces only that source's findings.
    inv = load_inventory(next(per_source_store.parent.glob("acme/inventory.yaml")))
    newer = run_scan(inv, AuditStore(per_source_store), ["app_db"])
    doc = json.loads(run("findings", "--store", str(per_source_store), "--json").stdout)
    assert doc["runs"]["app_db"] == newer.run_id
    assert doc["runs"]["event_log"] != newer.run_id
    assert {f"{f['source']}.{f['table_name']}.{f['column_name']}"
            for f in doc["findings"]} == expected
    assert {f["run_id"] for f in doc["findings"] if f["source"] == "app_db"} == {newer.run_id}


def test_scans_lists_past_scan_runs(per_source_store: Path) -> None:
    with duckdb.connect(str(per_source_store), read_only=True) as c:
        ids = [r[0] for r in c.execute(
            "SELECT run_id FROM scan_runs ORDER BY started_at DESC").fetchall()]
    result = run("scans", "--store", str(per_source_store))
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.strip().splitlines()] == ids
    runs = json.loads(run("scans", "--store", str(per_source_store), "--json").stdout)
    assert [r["run_id"] for r in runs] == ids
    assert [r["sources"] for r in runs] == [["event_log"], ["marketing_export"], ["app_db"]]
    assert all(r["status"] == "succeeded" and r["columns"] > 0 for r in runs)
    assert json.loads(run("scans", "--store", str(per_source_store), "--json",
                          "--limit", "1").stdout)[0]["run_id"] == ids[0]


def test_unknown_run_is_one_line_exit_2_and_creates_nothing(per_source_store: Path,
                                                            tmp_path: Path) -> None:
    line = one_line_error(run("findings", "--store", str(per_source_store), "--run",
                              "scan-nope"))
    assert "scan-nope" in line
    out = tmp_path / "never"
    line = one_line_error(run("report", "--store", str(per_source_store), "--run", "scan-nope",
                              "--out", str(out)))
    assert "scan-nope" in line
    assert not out.exists()


def test_exit_status_of_a_partial_scan_is_1(fresh_demo, tmp_path: Path) -> None:
    inv = fresh_demo.inventory
    inv.write_text(inv.read_text() + """  - name: crm
    kind: postgres
    connection: {dsn_env: GOVKIT_TEST_UNSET_DSN}
    owner: crm-team
    jurisdictions: [EU]
""")
    store = tmp_path / "audit.duckdb"
    AuditStore(store, create=True).schema_version()
    result = CliRunner().invoke(main, ["scan", "-i", str(inv), "--store", str(store)],
                                env={"GOVKIT_TEST_UNSET_DSN": None})
    assert result.exit_code == 1, result.output
    assert "partial" in result.output
    with duckdb.connect(str(store), read_only=True) as c:
        assert c.execute("SELECT status FROM scan_runs").fetchall() == [("partial",)]
    result = CliRunner().invoke(main, ["scan", "-i", str(inv), "--store", str(store),
                                       "--source", "app_db"])
    assert result.exit_code == 0, result.output


def test_exit_status_of_inventory_with_missing_tables_is_1(fresh_demo) -> None:
    inv = fresh_demo.inventory
    clean = run("inventory", "-i", str(inv), "--source", "event_log")
    assert clean.exit_code == 0, clean.output
    assert "0 discrepancy(ies)" in clean.output
    inv.write_text(inv.read_text().replace(
        "      - name: ticket_messages", "      - name: gdpr_consents\n"
        "      - name: ticket_messages"))
    result = run("inventory", "-i", str(inv))
    assert result.exit_code == 1, result.output
    assert "gdpr_consents: DECLARED BUT NOT FOUND" in result.output
    doc = json.loads(run("inventory", "-i", str(inv), "--json").stdout)
    app = next(s for s in doc["sources"] if s["name"] == "app_db")
    missing = [t for t in app["tables"] if not t["present"]]
    assert [t["table"] for t in missing] == ["gdpr_consents"]
    assert doc["discrepancies"] >= 1


def test_exit_status_of_a_tampered_log_is_1(per_source_store: Path) -> None:
    assert run("audit", "verify-log", "--store", str(per_source_store)).exit_code == 0
    with duckdb.connect(str(per_source_store)) as c:
        c.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    assert run("audit", "verify-log", "--store", str(per_source_store)).exit_code == 1


def test_exit_status_of_a_declined_run_is_1(fresh_demo, per_source_store: Path) -> None:
    store = str(per_source_store)
    new = run("dsar", "new", "--store", store, "--type", "erasure", "--jurisdiction", "EU",
              "--identity", "email=nobody-at-all@example.org")
    assert new.exit_code == 0, new.output
    rid = new.stdout.split()[0]
    assert run("dsar", "verify", rid, "--store", store, "--note", "checked").exit_code == 0
    # A plan that finds nobody is approved only when named (after `dsar plan`).
    nameless = run("dsar", "approve", rid, "--store", store, "-i", str(fresh_demo.inventory),
                   "--note", "ok")
    assert nameless.exit_code == 2 and "finds none of the subject's person rows" in \
        nameless.output
    shown = run("dsar", "plan", rid, "--store", store, "-i", str(fresh_demo.inventory))
    digest = shown.output.split("--plan ")[1].split()[0]
    approved = run("dsar", "approve", rid, "--store", store, "-i", str(fresh_demo.inventory),
                   "--plan", digest, "--note", "ok")
    assert approved.exit_code == 0, approved.output
    assert "WARNING: this plan finds none of the subject's person rows" in approved.output
    declined = run("dsar", "run", rid, "--store", store, "-i", str(fresh_demo.inventory),
                   input="n\n")
    assert declined.exit_code == 1, declined.output
    assert f"{rid}: cancelled" in declined.output
    with duckdb.connect(store, read_only=True) as c:
        assert c.execute("SELECT count(*) FROM dsar_steps WHERE request_id = ?",
                         [rid]).fetchall() == [(0,)]


def test_usage_errors_are_2(per_source_store: Path) -> None:
    assert run("scan", "--mode", "bogus").exit_code == 2
    assert run("findings", "--run").exit_code == 2
    assert run("no-such-command").exit_code == 2


def test_every_listing_command_has_json_with_nested_objects(fresh_demo,
                                                           per_source_store: Path) -> None:
    store = str(per_source_store)
    doc = json.loads(run("findings", "--store", store, "--json", "--all").stdout)
    assert doc["findings"] and all(isinstance(f["evidence"], dict) for f in doc["findings"])
    assert all(isinstance(f["masked_samples"], list | None) for f in doc["findings"])
    new = run("dsar", "new", "--store", store, "--type", "access", "--jurisdiction", "EU",
              "--identity", "email=keiko.silva1@example.com")
    rid = new.stdout.split()[0]
    hold = run("dsar", "hold", "add", "--store", store, "--table", "app_db.orders",
               "--reason", "tax audit", "-i", str(fresh_demo.inventory))
    assert hold.exit_code == 0, hold.output
    listed = json.loads(run("dsar", "list", "--store", store, "--json").stdout)
    assert [r["request_id"] for r in listed] == [rid]
    assert isinstance(listed[0]["masked_identities"], list) and "fingerprints" not in listed[0]
    assert "keiko.silva1@example.com" not in json.dumps(listed)
    shown = json.loads(run("dsar", "show", rid, "--store", store, "--json").stdout)
    assert shown["request"]["request_id"] == rid
    assert isinstance(shown["steps"], list)
    assert shown["log"] and all(isinstance(e["details"], dict | None) for e in shown["log"])
    holds = json.loads(run("dsar", "hold", "list", "--store", store, "--json").stdout)
    assert [(h["scope"], h["target"]) for h in holds] == [("table", "app_db.orders")]
    log = json.loads(run("audit", "log", "--store", store, "--json", "--limit", "3").stdout)
    assert len(log) == 3 and all(isinstance(e["details"], dict | None) for e in log)
    assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
    scans = json.loads(run("scans", "--store", store, "--json").stdout)
    assert isinstance(scans[0]["sources"], list)
    inventory = json.loads(run("inventory", "-i", str(fresh_demo.inventory), "--json").stdout)
    assert isinstance(inventory["sources"][0]["tables"][0]["columns"], list)


def test_report_escapes_markdown_and_separates_non_personal_columns(per_source_store: Path,
                                                                   tmp_path: Path) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    out = tmp_path / "rep"
    assert run("report", "--store", str(per_source_store), "--out", str(out)).exit_code == 0
    text = (out / "latest.md").read_text()
    with duckdb.connect(str(per_source_store), read_only=True) as c:
        samples = [s for (row,) in c.execute(
            "SELECT masked_samples FROM column_findings WHERE masked_samples IS NOT NULL"
        ).fetchall() for s in row]
    starred = [s for s in samples if re.search(r"\w\*\*+\w", s)]
    assert starred, "the demo should have masked card or ID numbers"
    html = markdown_it.MarkdownIt().enable("table").render(text)
    assert "<em>" not in html and "<strong>" not in html.split("</h1>", 1)[1].replace(
        "<strong>NO</strong>", "")
    for sample in starred:
        assert sample in html, sample

    attention = text.split("## Needs attention")[1].split("## ")[0]
    quiet = text.split("## Undeclared columns without personal data")[1].split("## ")[0]
    assert "amount_cents" not in attention
    assert "app_db.orders.amount_cents" in quiet
    assert "legacy_newsletter_signups" in attention
    tables = text.split("## Tables")[1].split("## ")[0]
    orders = next(line for line in tables.splitlines() if line.startswith("| app\\_db | orders"))
    assert orders.split(" | ")[5] == "" or "amount" not in orders.split(" | ")[5]


def _all_commands() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [("", main)]

    def walk(group: click.Group, path: str) -> None:
        for name, cmd in group.commands.items():
            sub = f"{path} {name}".strip()
            found.append((sub, cmd))
            if isinstance(cmd, click.Group):
                walk(cmd, sub)

    walk(main, "")
    return found


@pytest.mark.parametrize("path", [p for p, _ in _all_commands()])
def test_help_has_an_example_real_defaults_and_help_for_every_option(path: str) -> None:
    cmd = dict(_all_commands())[path]
    result = run(*path.split(), "--help")
    assert result.exit_code == 0, result.output
    assert "(dynamic)" not in result.output
    assert "Example:" in result.output and "govkit" in result.output.split("Example:")[1], (
        f"`govkit {path}` has no example: add one to governance.cli.EXAMPLES (or an "
        "'Example:' epilog)")
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"govkit {path} {param.opts[0]} has no help"
