"""Audit pieces on their own: processing.yaml errors, adding a check with one file,
request analytics against hand-written SQL, SVG charts."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from governance.audit.analytics import request_analytics
from governance.audit.processing import load_processing
from governance.audit.registry import load_checks
from governance.audit.report import svg_line_chart
from governance.audit_store import AuditStore
from governance.audit_store.store import utcnow
from governance.cli import main
from governance.demo import build_demo
from governance.dsar import RequestBook
from governance.errors import ConfigError
from governance.inventory import load_inventory


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return build_demo(tmp_path_factory.mktemp("audit-units") / "demo")


@pytest.mark.parametrize("body, line, field, words", [
    ("version: 1\nsources:\n  app_dbx: {}\n", 3, "sources.app_dbx", "not in the inventory"),
    ("version: 1\nsources:\n  app_db:\n    tables:\n      nope: {}\n", 5,
     "sources.app_db.tables.nope", "not declared"),
    ("version: 1\nsources:\n  app_db:\n    tables:\n      users:\n        retention:\n"
     "          days: -3\n", 7, "sources.app_db.tables.users.retention.days", "greater"),
    ("version: 1\ntransfers:\n  - {source: app_db, to: MARS}\n", 3, "transfers[0].to",
     "unknown jurisdiction"),
    ("version: 1\nsources:\n  app_db:\n    tables:\n      users:\n        non_personal: "
     "[email]\n", 6, "sources.app_db.tables.users.non_personal[0]", "cannot also be"),
])
def test_processing_file_errors_name_file_line_and_field(demo, tmp_path: Path, body: str,
                                                         line: int, field: str,
                                                         words: str) -> None:
    path = tmp_path / "processing.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_processing(load_inventory(demo.inventory), path)
    assert str(e.value).startswith(f"{path}:{line}: {field}: "), str(e.value)
    assert words in str(e.value)


def test_bad_processing_file_is_exit_2_and_records_no_run(demo, tmp_path: Path) -> None:
    store = tmp_path / "audit.duckdb"
    AuditStore(store, create=True).schema_version()
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\nsources:\n  nosuch: {}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["audit", "run", "-i", str(demo.inventory), "--store",
                                       str(store), "--processing", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3: sources.nosuch:" in result.output
    assert AuditStore(store).query("SELECT count(*) AS n FROM audit_runs")[0]["n"] == 0


def test_a_check_is_added_with_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    folder = tmp_path / "checks"
    folder.mkdir()
    (folder / "owner_is_a_team.py").write_text(textwrap.dedent('''
        from governance.audit import Check, Severity, Status

        def _evaluate(ctx):
            for s in ctx.inventory.sources:
                ok = s.owner.endswith("-team@acme.example")
                yield CHECK.result(Status.PASS if ok else Status.WARN, source=s.name)

        CHECK = Check(check_id="owner_is_a_team", title="Sources are owned by a team",
                      severity=Severity.LOW, articles=("GDPR Art. 24",),
                      remediation="Name a team mailbox as owner.", evaluate=_evaluate)
    '''), encoding="utf-8")
    monkeypatch.setenv("GOVKIT_AUDIT_CHECKS", str(folder))
    ids = [c.check_id for c in load_checks()]
    assert "owner_is_a_team" in ids and "audit_log_integrity" in ids
    (folder / "broken.py").write_text("CHECK = 42\n", encoding="utf-8")
    with pytest.raises(Exception, match="CHECK must be"):
        load_checks()


def test_request_analytics_match_hand_written_sql(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    book = RequestBook(store)
    today = utcnow().date()
    made = []
    for days_ago, jur, kind in ((70, "EU", "access"), (50, "US-CA", "erasure"),
                                (5, "EU", "access"), (40, "CN", "access")):
        made.append(book.create(kind, [f"email=p{days_ago}@example.com"], jur, "t",
                                received_at=today - timedelta(days=days_ago)))
    book.verify(made[2].request_id, "t", "ok")
    book.transition(made[2].request_id, "in_progress", "t")
    book.complete(made[2].request_id, "t", {})
    book.reject(made[1].request_id, "t", "not verifiable")
    got = request_analytics(store, today)
    [own] = store.query(
        "SELECT count(*) AS received, count(*) FILTER (WHERE state = 'completed' AND "
        "closed_at::DATE <= due_date) AS on_time, count(*) FILTER (WHERE state NOT IN "
        "('completed', 'rejected') AND due_date < current_date) AS overdue FROM dsar_requests")
    assert got["total"]["received"] == own["received"] == 4
    assert got["total"]["completed_on_time"] == own["on_time"] == 1
    assert got["total"]["overdue"] == own["overdue"] == 2      # the EU one at 70 days, CN at 40
    assert got["total"]["rejected"] == 1
    assert {r["key"]: r["received"] for r in got["by_type"]} == {"access": 3, "erasure": 1}
    assert {r["key"] for r in got["by_jurisdiction"]} == {"EU (GDPR)", "US-CA (CCPA)",
                                                          "CN (PIPL)"}
    assert sum(r["received"] for r in got["by_month"]) == 4


def test_svg_chart_plots_one_point_per_run_and_escapes() -> None:
    svg = svg_line_chart("<b>x</b>", [("r1", 1), ("r2", None), ("r3", 3)], "s")
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert svg.count("<circle") == 2 and 'data-points="2"' in svg and "<polyline" in svg


def test_an_audit_judged_before_the_last_scan_does_not_count_that_scan_as_fresh(
        tmp_path: Path) -> None:
    """Found by a helper: `audit run --as-of` a day before the only scan passed
    scan_freshness with age_days -1371. A scan made after the day judged did not exist
    then: the check fails, naming the later scan; judged on the scan's day, it passes."""
    from datetime import date

    from governance.audit.runner import run_audit
    from governance.scan import run_scan

    estate = build_demo(tmp_path / "acme", users=60)
    inv = load_inventory(estate.inventory)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    scan = run_scan(inv, store)
    today = date.today()
    early = run_audit(inv, store, today=date(2022, 9, 1), only=["scan_freshness"])
    fresh = [r for r in early.results if r.check_id == "scan_freshness"]
    assert fresh and all(r.status.value == "fail" for r in fresh)
    assert {r.evidence["later_scan"] for r in fresh} == {scan.run_id}
    now = run_audit(inv, store, today=today, only=["scan_freshness"])
    assert all(r.status.value == "pass" and r.evidence["age_days"] >= 0
               for r in now.results if r.check_id == "scan_freshness")


def test_trends_compare_runs_of_the_same_checks_and_show_the_day_each_judged(
        tmp_path: Path) -> None:
    """Found by a helper: a one-check run stood in the trends of full runs (failing
    checks 4 -> 1 -> 4 read as a fix then a regression), and the day each run judged was
    not shown."""
    from datetime import date

    from governance.audit.report import load_report_data, render_markdown
    from governance.audit.runner import run_audit

    estate = build_demo(tmp_path / "acme", users=60)
    inv = load_inventory(estate.inventory)
    store = AuditStore(tmp_path / "audit.duckdb", create=True)
    first = run_audit(inv, store, today=date(2026, 3, 1))
    one = run_audit(inv, store, only=["scan_freshness"])
    last = run_audit(inv, store)
    full = load_report_data(store, last.run_id)
    assert [t["run_id"] for t in full["trend"]] == [first.run_id, last.run_id]
    text = render_markdown(full)
    trends = text.split("## Trends")[1]
    assert first.run_id in trends and one.run_id not in trends and "2026-03-01" in trends
    single = load_report_data(store, one.run_id)
    assert [t["run_id"] for t in single["trend"]] == [one.run_id]
