"""Audit reports rendered from the audit store: self-contained HTML (inline CSS and SVG
charts, no network), Markdown and JSON; records as CSV and JSON.

A report is rendered from what the run stored (masked evidence and snapshot), never from
the sources. Each rendered report is stored in ``audit_reports`` with its sha256.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
from pathlib import Path
from typing import Any

from governance.audit.runner import resolve_run_id
from governance.audit_store import AuditStore
from governance.audit_store.files import write_private_text
from governance.audit_store.store import utcnow
from governance.reports import jsonable, md_code, md_text

FORMATS = ("html", "md", "json")
HISTORY_RUNS = 100
FAILING = ("fail", "error")
_SUBSECOND = re.compile(r"(T\d{2}:\d{2}:\d{2})\.\d{1,9}")


def load_report_data(store: AuditStore, run: str = "latest",
                     history: int = HISTORY_RUNS) -> dict[str, Any]:
    """Everything a report shows: the run, its checks and the trend of past runs."""
    run_id = resolve_run_id(store, run)
    [row] = store.query("SELECT * FROM audit_runs WHERE run_id = ?", [run_id])
    for k in ("counts", "metrics", "snapshot"):
        row[k] = json.loads(row[k]) if isinstance(row[k], str) else (row[k] or {})
    checks = store.query("SELECT * EXCLUDE (run_id) FROM audit_checks WHERE run_id = ? "
                         "ORDER BY seq", [run_id])
    for c in checks:
        c["evidence"] = json.loads(c["evidence"]) if isinstance(c["evidence"], str) else \
            (c["evidence"] or {})
        c["articles"] = list(c["articles"])
    # Runs comparable with this one: the same checks (a run of one check is no trend
    # point of full runs), each shown with the day it judged.
    trend = store.query(
        "SELECT run_id, started_at, as_of, status, metrics FROM (SELECT * FROM audit_runs "
        "WHERE started_at <= ? AND coalesce(CAST(json_extract(metrics, '$.selected') AS "
        "VARCHAR), 'null') = coalesce(CAST(json_extract(?::JSON, '$.selected') AS VARCHAR), "
        "'null') ORDER BY started_at DESC, run_id DESC LIMIT ?) ORDER BY started_at, run_id",
        [row["started_at"], json.dumps(row["metrics"]), history])
    for t in trend:
        t["metrics"] = json.loads(t["metrics"]) if isinstance(t["metrics"], str) else \
            (t["metrics"] or {})
    log = store.query("SELECT count(*) AS n, max(seq) AS head FROM audit_log")[0]
    text = json.dumps(jsonable({"run": row, "checks": checks, "trend": trend,
                                "audit_log": log}), ensure_ascii=False, default=str)
    # Times to the second: a report needs no microseconds (and "07.821374" reads as a
    # phone number to a detector).
    return json.loads(_SUBSECOND.sub(r"\1", text))


# ---------------------------------------------------------------------- charts


def svg_line_chart(title: str, points: list[tuple[str, float | None]], series: str,
                   width: int = 460, height: int = 180, percent: bool = False) -> str:
    """An inline SVG line chart of ``points`` (label, value), one point per run."""
    esc = html.escape
    pts = [(label, v) for label, v in points if v is not None]
    pad_l, pad_b, pad_t, pad_r = 40, 28, 24, 12
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([v for _, v in pts] + [1.0]) if not percent else 100.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'data-series="{esc(series)}" data-points="{len(pts)}">',
           f"<title>{esc(title)}</title>",
           f'<text x="{pad_l}" y="15" class="ct">{esc(title)}</text>',
           f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" '
           'class="axis"/>',
           f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" class="axis"/>',
           f'<text x="{pad_l - 4}" y="{pad_t + 4}" class="yl">{top:g}'
           f'{"%" if percent else ""}</text>',
           f'<text x="{pad_l - 4}" y="{pad_t + h}" class="yl">0</text>']
    if not pts:
        out.append(f'<text x="{pad_l + 10}" y="{pad_t + h / 2}" class="ct">no data</text>')
    else:
        n = len(pts)
        coords = []
        for i, (_, v) in enumerate(pts):
            x = pad_l + (w / 2 if n == 1 else w * i / (n - 1))
            y = pad_t + h - (h * (v / top) if top else 0)
            coords.append((x, y, v))
        if n > 1:
            out.append('<polyline class="line" fill="none" points="'
                       + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords) + '"/>')
        step = max(1, n // 40)
        for i, (x, y, v) in enumerate(coords):
            if i % step == 0 or i == n - 1:
                out.append(f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                           f"<title>{esc(pts[i][0])}: {v:g}</title></circle>")
        out.append(f'<text x="{pad_l}" y="{height - 8}" class="xl">{esc(pts[0][0])}</text>')
        if n > 1:
            out.append(f'<text x="{pad_l + w}" y="{height - 8}" class="xl" '
                       f'text-anchor="end">{esc(pts[-1][0])}</text>')
    out.append("</svg>")
    return "".join(out)


def trend_charts(data: dict[str, Any]) -> list[str]:
    """The trend charts: findings, failing checks, request timeliness across runs."""
    trend = data["trend"]
    labels = [f"{t['started_at'][:16].replace('T', ' ')}"
              + ("" if str(t.get("as_of"))[:10] == t["started_at"][:10]
                 else f" (as of {str(t['as_of'])[:10]})") for t in trend]

    def series(key: str, scale: float = 1.0) -> list[tuple[str, float | None]]:
        return [(label, None if t["metrics"].get(key) is None else
                 round(float(t["metrics"][key]) * scale, 1))
                for label, t in zip(labels, trend, strict=True)]

    return [
        svg_line_chart("Personal-data columns found", series("personal_columns"),
                       "personal_columns"),
        svg_line_chart("Undeclared personal-data columns", series("undeclared_columns"),
                       "undeclared_columns"),
        svg_line_chart("Failing checks", series("failing_checks"), "failing_checks"),
        svg_line_chart("Overdue data-subject requests", series("requests_overdue"),
                       "requests_overdue"),
        svg_line_chart("Requests answered on time (%)", series("requests_on_time_rate", 100),
                       "requests_on_time_rate", percent=True),
    ]


# ---------------------------------------------------------------------- helpers


def _place(c: dict[str, Any]) -> str:
    parts = [p for p in (c.get("source"), c.get("table_name"), c.get("column_name")) if p]
    return ".".join(parts) if parts else "(estate)"


def _evidence_text(ev: dict[str, Any]) -> str:
    parts = []
    for k, v in ev.items():
        if v in (None, [], {}, ""):
            continue
        if isinstance(v, list | dict):
            v = json.dumps(v, ensure_ascii=False, default=str)
        parts.append(f"{k}: {v}")
    return "; ".join(parts)


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    run = data["run"]
    by = run["counts"].get("by_status", {})
    return {"status": run["status"], "run_id": run["run_id"], "as_of": run["as_of"],
            "started_at": run["started_at"], "pass": by.get("pass", 0),
            "warn": by.get("warn", 0), "fail": by.get("fail", 0),
            "error": by.get("error", 0), "not_applicable": by.get("not_applicable", 0),
            "checks_failing": run["counts"].get("checks_failing", []),
            "metrics": run["metrics"]}


# ---------------------------------------------------------------------- JSON


def render_json(data: dict[str, Any]) -> str:
    """The report as one JSON document."""
    return json.dumps({"summary": _summary(data), "checks": data["checks"],
                       "snapshot": data["run"]["snapshot"], "trend": [
                           {"run_id": t["run_id"], "started_at": t["started_at"],
                            "as_of": t["as_of"], "status": t["status"],
                            "metrics": t["metrics"]}
                           for t in data["trend"]],
                       "audit_log": data["audit_log"]},
                      ensure_ascii=False, indent=2, default=str) + "\n"


# ---------------------------------------------------------------------- Markdown


def _md_row(values: list[object]) -> str:
    return "| " + " | ".join(md_text(v) for v in values) + " |"


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown (trend charts as tables of figures)."""
    s = _summary(data)
    snap = data["run"]["snapshot"]
    lines = [f"# Compliance audit {md_text(s['run_id'])}", "",
             f"{md_text(snap.get('organization'))}, as of {s['as_of']}: "
             f"**{s['status'].upper()}**", "", "## Summary", "",
             f"- checks: {s['pass']} pass, {s['warn']} warn, {s['fail']} fail, "
             f"{s['error']} error, {s['not_applicable']} not applicable",
             f"- failing checks: {', '.join(md_code(c) for c in s['checks_failing']) or 'none'}",
             f"- personal-data columns: {s['metrics'].get('personal_columns')} "
             f"({s['metrics'].get('sensitive_columns')} sensitive), undeclared: "
             f"{s['metrics'].get('undeclared_columns')}",
             f"- open requests: {s['metrics'].get('requests_open')}, overdue: "
             f"{s['metrics'].get('requests_overdue')}",
             f"- audit log: {data['audit_log']['n']} rows", "",
             "## Failing checks", ""]
    failing = [c for c in data["checks"] if c["status"] in FAILING]
    if not failing:
        lines.append("None.")
    for c in failing:
        lines += [f"### {md_text(c['status'].upper())} {md_text(c['severity'])}: "
                  f"{md_text(c['title'])}", "",
                  f"- where: {md_code(_place(c))}",
                  f"- articles: {md_text(', '.join(c['articles']))}",
                  f"- evidence: {md_text(_evidence_text(c['evidence']))}",
                  f"- remediation: {md_text(c['remediation'])}", ""]
    lines += ["## All checks", "", "| status | severity | check | where | articles | evidence |",
              "|---|---|---|---|---|---|"]
    for c in data["checks"]:
        lines.append(_md_row([c["status"], c["severity"], c["check_id"], _place(c),
                              ", ".join(c["articles"]), _evidence_text(c["evidence"])[:300]]))
    lines += ["", "## Data map", ""]
    dmap = snap["records"]["data_map"]
    for src in dmap["sources"]:
        lines.append(f"- **{md_text(src['source'])}** ({md_text(src['kind'])}, owner "
                     f"{md_text(src['owner'])}, jurisdictions "
                     f"{md_text(', '.join(src['jurisdictions']))}, stored in "
                     f"{md_text(src['storage_location'] or 'not declared')})")
        for t in src["tables"]:
            cats = ", ".join(f"{c} (sensitive)" if c in t["sensitive"] else c
                             for c in t["categories"])
            lines.append(f"  - {md_code(t['table'])}{'' if t['declared'] else ' UNDECLARED'}: "
                         f"{md_text(cats)}")
    lines += ["", "### Cross-border flows", ""]
    for f in dmap["flows"] or []:
        lines.append(f"- {md_text(f['source'])}: {md_text(f['from'])} -> "
                     f"{md_text(f['to'] or 'unknown')} ({md_text(f['kind'])}; route "
                     f"{md_text(f['route'] or 'not declared')}; required: "
                     f"{md_text(f['route_required'])})")
    if not dmap["flows"]:
        lines.append("None.")
    lines += ["", "## Open requests", "", "| request | type | law | due | days left |",
              "|---|---|---|---|---|"]
    for r in snap["requests"]["open"]:
        lines.append(_md_row([r["request_id"], r["request_type"], r["law"], r["due_date"],
                              r["days_left"]]))
    lines += ["", "## Request statistics", "",
              "| group | received | on time | late | rejected | open | overdue | median days |",
              "|---|---|---|---|---|---|---|---|"]
    an = snap["requests"]["analytics"]
    for label, rows in (("all", [an["total"]]), ("type", an["by_type"]),
                        ("jurisdiction", an["by_jurisdiction"]), ("month", an["by_month"])):
        for r in rows:
            lines.append(_md_row([f"{label}: {r['key']}", r["received"], r["completed_on_time"],
                                  r["completed_late"], r["rejected"], r["open"], r["overdue"],
                                  r["median_days_to_close"]]))
    lines += _md_records(snap["records"])
    lines += ["", "## Trends", "", "| run | as of | status | personal columns | undeclared | "
              "failing checks | overdue requests | on time |", "|---|---|---|---|---|---|---|---|"]
    for t in data["trend"]:
        m = t["metrics"]
        lines.append(_md_row([t["run_id"], t["as_of"], t["status"], m.get("personal_columns"),
                              m.get("undeclared_columns"), m.get("failing_checks"),
                              m.get("requests_overdue"), m.get("requests_on_time_rate")]))
    return "\n".join(lines) + "\n"


def _md_records(records: dict[str, Any]) -> list[str]:
    lines = ["", "## Record of processing activities (GDPR Art. 30)", "",
             "| activity | purposes | legal basis | subjects | categories | recipients | "
             "transfers | retention | measures |", "|---|---|---|---|---|---|---|---|---|"]
    for e in records["art30"]["entries"]:
        lines.append(_md_row([e["activity"], "; ".join(e["purposes"]) or "?",
                              "; ".join(f"{k}: {v}" for k, v in e["legal_basis"].items()) or "?",
                              "; ".join(e["data_subjects"]) or "?", ", ".join(e["categories"]),
                              "; ".join(e["recipients"]) or "?",
                              "; ".join(f"{t['from']}->{t['to'] or '?'} ({t['route'] or '?'})"
                                        for t in e["transfers"]) or "none",
                              e["retention"] or "?", "; ".join(e["security_measures"]) or "?"]))
    lines += ["", "### Fields to fill, and whom to ask", ""]
    for u in records["art30"]["unfilled"]:
        lines.append(f"- {md_code(u['activity'])}: {md_text(', '.join(u['fields']))} (ask "
                     f"{md_text(u['ask'])})")
    if not records["art30"]["unfilled"]:
        lines.append("None.")
    lines += ["", "## PIPL personal-information inventory", "",
              "| place | category | sensitive (Art. 28) | purpose | legal basis (Art. 13) | "
              "stored in | retention | cross-border |", "|---|---|---|---|---|---|---|---|"]
    for r in records["pipl_inventory"]["rows"]:
        lines.append(_md_row([f"{r['source']}.{r['table']}.{r['column']}", r["category"],
                              "yes" if r["sensitive_pipl_art28"] else "", r["purpose"] or "?",
                              r["legal_basis_pipl_art13"] or "?", r["storage_location"] or "?",
                              r["retention"] or "?", "yes" if r["cross_border"] else ""]))
    pia = records["impact_assessment"]
    lines += ["", "## PIPL Art. 55/56 impact assessment (draft)", ""]
    for it in pia["items"]:
        cover = ", ".join(f"{a['id']} ({a['status']})" for a in it["assessments"]) or "none"
        lines.append(f"- {'MISSING' if it['missing'] else 'covered'}: {md_text(it['trigger'])} "
                     f"at {md_code(it['source'] + ('.' + it['table'] if it['table'] else ''))}"
                     f"; assessments: {md_text(cover)}; ask {md_text(it['owner'])}")
    if not pia["items"]:
        lines.append("Nothing requires an assessment.")
    lines += ["", "The assessment must cover:"] + [f"- {md_text(c)}" for c in pia["content"]]
    return lines


# ---------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;width:100%}
td,th{border:1px solid #d5d9e0;padding:4px 6px;vertical-align:top;text-align:left;font-size:13px}
th{background:#f1f3f7}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-weight:600;font-size:12px}
.fail,.error,.failed{background:#fde2e1;color:#a1160a}.warn,.warnings{background:#fff3cd;color:#7a5300}
.pass,.passed{background:#dff5e3;color:#136c2e}.not_applicable{background:#eceff3;color:#555}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #d5d9e0;border-radius:8px;
padding:10px 14px;min-width:120px}.card b{font-size:22px;display:block}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e1e4ea;border-radius:6px}
.chart .axis{stroke:#889}.chart .line{stroke:#2d5fd3;stroke-width:2}.chart .pt{fill:#2d5fd3}
.chart .ct{font-size:12px;font-weight:600;fill:#333}
.chart .yl{font-size:10px;text-anchor:end;fill:#666}
.chart .xl{font-size:10px;fill:#666}.sens{color:#a1160a;font-weight:600}code{font-size:12px}
"""


def render_html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no scripts, no
    external references."""
    e = html.escape
    s = _summary(data)
    snap = data["run"]["snapshot"]
    m = s["metrics"]

    def badge(status: str) -> str:
        return f'<span class="badge {e(status)}">{e(status.replace("_", " "))}</span>'

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
             'style-src \'unsafe-inline\'; img-src data:">',
             f"<title>Compliance audit {e(s['run_id'])}</title><style>{_CSS}</style></head>",
             "<body>", f"<h1>Compliance audit: {e(str(snap.get('organization')))}</h1>",
             f'<section id="summary"><h2>Summary</h2><p>Run <code>{e(s["run_id"])}</code>, '
             f"as of {e(str(s['as_of']))}: {badge(s['status'])}</p><div class=\"cards\">"]
    for label, value in (("pass", s["pass"]), ("warn", s["warn"]), ("fail", s["fail"]),
                         ("error", s["error"]),
                         ("personal-data columns", m.get("personal_columns")),
                         ("undeclared", m.get("undeclared_columns")),
                         ("open requests", m.get("requests_open")),
                         ("overdue requests", m.get("requests_overdue")),
                         ("audit-log rows", data["audit_log"]["n"])):
        parts.append(f'<div class="card"><b>{e(str(value))}</b>{e(label)}</div>')
    parts.append("</div></section>")
    failing = [c for c in data["checks"] if c["status"] in FAILING]
    parts.append(f'<section id="failing"><h2>Failing checks ({len(failing)})</h2>')
    parts.append(_check_table(failing, hints=True) if failing else "<p>None.</p>")
    parts.append("</section>")
    parts.append('<section id="trends"><h2>Trends across runs</h2><div class="charts">')
    parts += trend_charts(data)
    parts.append("</div></section>")
    parts.append('<section id="checks"><h2>All checks</h2>')
    parts.append(_check_table(data["checks"], hints=False))
    parts.append("</section>")
    parts.append(_html_data_map(snap["records"]["data_map"]))
    parts.append(_html_requests(snap["requests"]))
    parts.append(_html_records(snap["records"]))
    parts.append(f"<footer><p>Rendered {e(utcnow().isoformat(timespec='seconds'))} from the "
                 "audit store; evidence holds counts and masked samples only.</p></footer>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _check_table(checks: list[dict[str, Any]], hints: bool) -> str:
    e = html.escape
    rows = ["<table><tr><th>status</th><th>severity</th><th>check</th><th>where</th>"
            "<th>articles</th><th>evidence</th>" + ("<th>remediation</th>" if hints else "")
            + "</tr>"]
    for c in checks:
        rows.append(
            f'<tr class="check-row" data-status="{e(c["status"])}">'
            f'<td><span class="badge {e(c["status"])}">{e(c["status"])}</span></td>'
            f"<td>{e(c['severity'])}</td><td><b>{e(c['title'])}</b><br><code>"
            f"{e(c['check_id'])}</code></td><td><code>{e(_place(c))}</code></td>"
            f"<td>{e(', '.join(c['articles']))}</td>"
            f"<td>{e(_evidence_text(c['evidence']))}</td>"
            + (f"<td>{e(c['remediation'] or '')}</td>" if hints else "") + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _html_data_map(dmap: dict[str, Any]) -> str:
    e = html.escape
    out = ['<section id="data-map"><h2>Data map</h2><table><tr><th>source</th><th>table</th>'
           "<th>categories (sensitive in red)</th></tr>"]
    for src in dmap["sources"]:
        head = (f"<b>{e(src['source'])}</b> ({e(src['kind'])})<br>owner {e(src['owner'])}"
                f"<br>jurisdictions {e(', '.join(src['jurisdictions']))}<br>stored in "
                f"{e(src['storage_location'] or 'not declared')}")
        tables = src["tables"] or [{"table": "-", "declared": True, "categories": [],
                                    "sensitive": []}]
        for i, t in enumerate(tables):
            cats = ", ".join(f'<span class="sens">{e(c)}</span>' if c in t["sensitive"]
                             else e(c) for c in t["categories"])
            out.append("<tr>" + (f'<td rowspan="{len(tables)}">{head}</td>' if i == 0 else "")
                       + f"<td><code>{e(t['table'])}</code>"
                       + ("" if t["declared"] else ' <span class="badge fail">undeclared'
                          "</span>") + f"</td><td>{cats}</td></tr>")
    out.append("</table><h3>Cross-border flows</h3>")
    if dmap["flows"]:
        out.append("<table><tr><th>source</th><th>from</th><th>to</th><th>kind</th>"
                   "<th>route</th><th>route required</th></tr>")
        for f in dmap["flows"]:
            out.append(f"<tr><td>{e(f['source'])}</td><td>{e(f['from'])}</td>"
                       f"<td>{e(f['to'] or 'unknown')}</td><td>{e(f['kind'])}</td>"
                       f"<td>{e(f['route'] or 'not declared')}</td>"
                       f"<td>{e(f['route_required'] or '')}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    out.append("</section>")
    return "".join(out)


def _html_requests(req: dict[str, Any]) -> str:
    e = html.escape
    out = ['<section id="requests"><h2>Open data-subject requests</h2>']
    if req["open"]:
        out.append("<table><tr><th>request</th><th>type</th><th>law</th><th>state</th>"
                   "<th>due</th><th>days left</th></tr>")
        for r in req["open"]:
            cls = ' class="fail"' if r["days_left"] < 0 else ""
            out.append(f"<tr><td><code>{e(r['request_id'])}</code></td>"
                       f"<td>{e(r['request_type'])}</td><td>{e(r['law'])}</td>"
                       f"<td>{e(r['state'])}</td><td>{e(str(r['due_date']))}</td>"
                       f"<td{cls}>{r['days_left']}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>None open.</p>")
    an = req["analytics"]
    out.append('<h3>Request statistics</h3><table id="request-stats"><tr><th>group</th>'
               "<th>received</th><th>completed on time</th><th>completed late</th>"
               "<th>rejected</th><th>open</th><th>overdue</th><th>median days to close</th></tr>")
    for label, rows in (("all", [an["total"]]), ("type", an["by_type"]),
                        ("jurisdiction", an["by_jurisdiction"]), ("month", an["by_month"])):
        for r in rows:
            out.append(f"<tr><td>{e(label)}: {e(str(r['key']))}</td><td>{r['received']}</td>"
                       f"<td>{r['completed_on_time']}</td><td>{r['completed_late']}</td>"
                       f"<td>{r['rejected']}</td><td>{r['open']}</td><td>{r['overdue']}</td>"
                       f"<td>{e(str(r['median_days_to_close']))}</td></tr>")
    out.append("</table></section>")
    return "".join(out)


def _html_records(records: dict[str, Any]) -> str:
    e = html.escape
    out = ['<section id="art30"><h2>Record of processing activities (GDPR Art. 30)</h2>',
           "<table><tr><th>activity</th><th>purposes</th><th>legal basis</th><th>subjects</th>"
           "<th>categories</th><th>recipients</th><th>transfers</th><th>retention</th>"
           "<th>security measures</th></tr>"]
    for a in records["art30"]["entries"]:
        out.append(
            f"<tr><td><code>{e(a['activity'])}</code></td>"
            f"<td>{e('; '.join(a['purposes']) or '?')}</td>"
            f"<td>{e('; '.join(f'{k}: {v}' for k, v in a['legal_basis'].items()) or '?')}</td>"
            f"<td>{e('; '.join(a['data_subjects']) or '?')}</td>"
            f"<td>{e(', '.join(a['categories']))}</td>"
            f"<td>{e('; '.join(a['recipients']) or '?')}</td>"
            f"<td>{e('; '.join(str(t['from']) + '->' + str(t['to'] or '?') for t in a['transfers']) or 'none')}</td>"  # noqa: E501
            f"<td>{e(a['retention'] or '?')}</td>"
            f"<td>{e('; '.join(a['security_measures']) or '?')}</td></tr>")
    out.append("</table><h3>Fields to fill, and whom to ask</h3><ul>")
    for u in records["art30"]["unfilled"] + records["pipl_inventory"]["unfilled"]:
        where = u.get("activity") or u.get("place")
        out.append(f"<li><code>{e(where)}</code>: {e(', '.join(u['fields']))} (ask "
                   f"{e(u['ask'])})</li>")
    out.append("</ul></section>")
    out.append('<section id="pipl-inventory"><h2>PIPL personal-information inventory</h2>'
               "<table><tr><th>place</th><th>category</th><th>sensitive (Art. 28)</th>"
               "<th>purpose</th><th>legal basis (Art. 13)</th><th>stored in</th>"
               "<th>retention</th><th>cross-border</th></tr>")
    for r in records["pipl_inventory"]["rows"]:
        out.append(f"<tr><td><code>{e(r['source'])}.{e(r['table'])}.{e(r['column'])}</code>"
                   f"</td><td>{e(r['category'])}</td>"
                   f"<td>{'yes' if r['sensitive_pipl_art28'] else ''}</td>"
                   f"<td>{e(r['purpose'] or '?')}</td>"
                   f"<td>{e(r['legal_basis_pipl_art13'] or '?')}</td>"
                   f"<td>{e(r['storage_location'] or '?')}</td>"
                   f"<td>{e(r['retention'] or '?')}</td>"
                   f"<td>{'yes' if r['cross_border'] else ''}</td></tr>")
    out.append("</table></section>")
    pia = records["impact_assessment"]
    out.append('<section id="pia"><h2>PIPL Art. 55/56 impact assessment (draft)</h2><table>'
               "<tr><th>status</th><th>trigger</th><th>where</th><th>assessments</th>"
               "<th>ask</th></tr>")
    for it in pia["items"]:
        cover = ", ".join(f"{a['id']} ({a['status']})" for a in it["assessments"]) or "none"
        status = "fail" if it["missing"] else "pass"
        out.append(f'<tr><td><span class="badge {status}">'
                   f"{'missing' if it['missing'] else 'covered'}</span></td>"
                   f"<td>{e(it['trigger'])}</td><td><code>{e(it['source'])}"
                   f"{'.' + e(it['table']) if it['table'] else ''}</code></td>"
                   f"<td>{e(cover)}</td><td>{e(it['owner'])}</td></tr>")
    out.append("</table><p>The assessment must cover:</p><ul>")
    out += [f"<li>{e(c)}</li>" for c in pia["content"]]
    out.append(f"</ul><p>{e(pia['retention'])}</p></section>")
    return "".join(out)


# ---------------------------------------------------------------------- records files

ART30_COLUMNS = ("activity", "source", "table", "controller", "controller_contact", "dpo",
                 "purposes", "legal_basis", "data_subjects", "categories",
                 "sensitive_categories", "recipients", "transfers", "retention",
                 "security_measures", "owner", "unfilled")
PIPL_COLUMNS = ("source", "table", "column", "category", "description",
                "sensitive_pipl_art28", "declared", "purpose", "legal_basis_pipl_art13",
                "storage_location", "retention", "recipients", "cross_border", "owner",
                "unfilled")


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        out = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, dict):
                v = "; ".join(f"{k}: {x}" for k, x in v.items())
            elif isinstance(v, list):
                v = "; ".join(json.dumps(x, ensure_ascii=False) if isinstance(x, dict)
                              else str(x) for x in v)
            out.append("" if v is None else v)
        w.writerow(out)
    return buf.getvalue()


def write_records(data: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """The Art. 30 record and the PIPL inventory as CSV and JSON, and the impact-assessment
    draft as JSON, into ``out_dir`` (files 0600); their paths."""
    rec = data["run"]["snapshot"]["records"]
    rid = data["run"]["run_id"]
    out = Path(out_dir)
    files = {
        f"{rid}-art30.csv": _csv(rec["art30"]["entries"], ART30_COLUMNS),
        f"{rid}-art30.json": json.dumps(rec["art30"], ensure_ascii=False, indent=2),
        f"{rid}-pipl-inventory.csv": _csv(rec["pipl_inventory"]["rows"], PIPL_COLUMNS),
        f"{rid}-pipl-inventory.json": json.dumps(rec["pipl_inventory"], ensure_ascii=False,
                                                 indent=2),
        f"{rid}-pipl-impact-assessment.json": json.dumps(rec["impact_assessment"],
                                                         ensure_ascii=False, indent=2),
    }
    return [write_private_text(out / name, text) for name, text in files.items()]


# ---------------------------------------------------------------------- rendering


def render(data: dict[str, Any], fmt: str) -> str:
    """The report of ``data`` in ``fmt`` (html, md or json)."""
    if fmt == "html":
        return render_html(data)
    if fmt == "md":
        return render_markdown(data)
    if fmt == "json":
        return render_json(data)
    raise ValueError(f"unknown report format {fmt!r}; use {', '.join(FORMATS)}")


def write_audit_report(store: AuditStore, run: str, fmt: str, out_dir: str | Path,
                       records: bool = True) -> tuple[Path, list[Path]]:
    """Render run ``run`` (``latest`` or an id) as ``fmt`` into ``out_dir`` (0600), store
    the rendering in ``audit_reports``; with ``records`` also write the records files.
    Return the report's path and the records' paths."""
    data = load_report_data(store, run)
    text = render(data, fmt)
    rid = data["run"]["run_id"]
    path = write_private_text(Path(out_dir) / f"{rid}.{fmt}", text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    store.write(lambda conn: conn.execute(
        "INSERT INTO audit_reports VALUES (?, ?, ?, ?, ?, ?)",
        [rid, fmt, utcnow(), digest, len(text.encode()), text]))
    extra = write_records(data, out_dir) if records else []
    return path, extra
