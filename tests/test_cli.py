"""The govkit command line, as a user runs it."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from governance.cli import main


def test_demo_command_scans_and_says_where_results_are(tmp_path: Path) -> None:
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(main, ["demo"])
        assert result.exit_code == 0, result.output
        assert "undeclared personal data: 3" in result.output
        assert "legacy_newsletter_signups.email_address" in result.output
        report = Path(result.output.split("Report:")[1].strip().splitlines()[0])
        assert report.exists()
        assert "Needs attention" in report.read_text()
        assert Path("govkit-demo/audit.duckdb").exists()
        # Running it again reuses the demo and adds a second run.
        again = runner.invoke(main, ["demo"])
        assert again.exit_code == 0, again.output
        listed = runner.invoke(main, ["findings", "--store", "govkit-demo/audit.duckdb"])
        assert "user_kyc.resident_id: identity.national_id" in listed.output
        log = runner.invoke(main, ["audit", "log", "--store", "govkit-demo/audit.duckdb"])
        assert log.output.count("scan.finished") == 2


def test_inventory_command_reports_undeclared_and_missing(fresh_demo) -> None:
    runner = CliRunner()
    text = fresh_demo.inventory.read_text().replace(
        "      - name: ticket_messages", "      - name: gdpr_consents\n"
        "      - name: ticket_messages")
    fresh_demo.inventory.write_text(text)
    result = runner.invoke(main, ["inventory", "-i", str(fresh_demo.inventory)])
    assert result.exit_code == 1, result.output  # discrepancies found (README: exit codes)
    assert "legacy_newsletter_signups: 60 rows, 5 columns  <- NOT DECLARED" in result.output
    assert "gdpr_consents: DECLARED BUT NOT FOUND" in result.output
    assert "columns not declared: country, created_at" in result.output
    assert "2 discrepancy(ies)" in result.output


def test_bad_input_gives_one_line_errors(fresh_demo, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text(fresh_demo.inventory.read_text().replace("kind: parquet", "kind: parket"))
    for args in (["inventory", "-i", str(bad)],
                 ["scan", "-i", str(bad), "--store", str(tmp_path / "a.duckdb")],
                 ["scan", "-i", str(fresh_demo.inventory), "--store",
                  str(tmp_path / "a.duckdb"), "--source", "crm"],
                 ["findings", "--store", str(tmp_path / "empty.duckdb")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("govkit: error: "), result.output
    result = runner.invoke(main, ["inventory", "-i", str(bad)])
    assert "bad.yaml:" in result.output and "sources[2].kind" in result.output
    result = runner.invoke(main, ["scan", "-i", str(fresh_demo.inventory), "--store",
                                  str(tmp_path / "a.duckdb"), "--source", "crm"])
    assert "unknown source 'crm'" in result.output


def test_postgres_dsn_comes_from_environment_and_is_never_printed(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("""version: 1
organization: T
sources:
  - name: crm
    kind: postgres
    connection: {dsn_env: GOVKIT_TEST_CRM_DSN}
    owner: x
    jurisdictions: [EU]
""")
    runner = CliRunner()
    env = {k: v for k, v in os.environ.items() if k != "GOVKIT_TEST_CRM_DSN"}
    result = runner.invoke(main, ["inventory", "-i", str(inv)], env=env)
    assert "GOVKIT_TEST_CRM_DSN (connection.dsn_env) is not set" in result.output
    result = runner.invoke(main, ["inventory", "-i", str(inv)], env={
        "GOVKIT_TEST_CRM_DSN": "postgresql://bob:s3cret-pw@127.0.0.1:1/nodb"})
    assert "UNREACHABLE" in result.output
    assert "s3cret-pw" not in result.output


def test_full_scan_counts_every_cell_of_the_demo(fresh_demo, tmp_path: Path) -> None:
    store = tmp_path / "audit.duckdb"
    result = CliRunner().invoke(main, ["scan", "-i", str(fresh_demo.inventory), "--store",
                                       str(store), "--mode", "full"])
    assert result.exit_code == 0, result.output
    assert "every cell" in result.output
    from governance.audit_store import AuditStore

    rows = AuditStore(store).query(
        "SELECT f.sampled_values, t.row_count, f.status FROM column_findings f "
        "JOIN source_tables t USING (run_id, source, table_name) "
        "WHERE f.table_name = 'users' AND f.column_name = 'email'")
    assert rows[0]["sampled_values"] == rows[0]["row_count"] > 0
    assert rows[0]["status"] == "confirmed"
