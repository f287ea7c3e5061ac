"""Records built from the inventory, processing.yaml and what the scans observed.

- the data map: sources -> tables -> categories, sensitive ones marked, cross-border flows
  inferred from each source's jurisdictions and storage location;
- the GDPR Art. 30(1) record of processing activities (one activity per table holding
  personal data, unless processing.yaml names the activity);
- the PIPL personal-information inventory (个人信息清单): one row per personal-data column;
- the PIPL Art. 55/56 impact-assessment draft for sensitive personal information and
  cross-border provision (Art. 38 route), flagged where no assessment covers it.

Fields that cannot be filled are listed with the owner to ask. Only categories, names and
counts appear here: never a value.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from governance.audit.context import AuditContext
from governance.taxonomy import CATEGORIES, is_sensitive

REGION = {"EU": "EEA", "EEA": "EEA", "UK": "UK", "US-CA": "US", "US": "US", "CN": "CN"}
ROUTE_NEEDED = {"CN": "PIPL Art. 38 (security assessment, certification or standard "
                      "contract)",
                "EEA": "GDPR Art. 44-49 (adequacy, SCCs, BCRs or a derogation)",
                "UK": "UK GDPR Art. 44-49 (adequacy regulations, IDTA/Addendum)"}
CN_ROUTES = ("security_assessment", "certification", "standard_contract", "other_law")
ART30_FIELDS = ("controller", "purposes", "data_subjects", "categories", "recipients",
                "transfers", "retention", "security_measures")


def _unknown(field: str, owner: str) -> dict[str, str]:
    return {"field": field, "ask": owner}


def data_map(ctx: AuditContext) -> dict[str, Any]:
    """Sources -> tables -> columns with categories; cross-border flows."""
    tables: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in ctx.columns:
        if not c.category:
            continue
        tables[(c.source, c.table)].append({
            "column": c.column, "category": c.category, "sensitive": c.sensitive,
            "declared": c.declared_listed and c.declared is not None,
            "status": c.status})
    sources = []
    for s in ctx.inventory.sources:
        sp = ctx.processing.sources.get(s.name) if ctx.processing else None
        names = sorted({t for (src, t) in tables if src == s.name})
        sources.append({
            "source": s.name, "kind": s.kind, "owner": s.owner,
            "jurisdictions": list(s.jurisdictions),
            "storage_location": sp.storage_location if sp else None,
            "declared_tables": [t.name for t in s.tables],
            "tables": [{"table": t, "declared": s.table(t) is not None,
                        "categories": sorted({c["category"] for c in tables[(s.name, t)]}),
                        "sensitive": sorted({c["category"] for c in tables[(s.name, t)]
                                             if c["sensitive"]}),
                        "columns": tables[(s.name, t)]} for t in names]})
    return {"organization": ctx.inventory.organization, "sources": sources,
            "flows": cross_border_flows(ctx)}


def cross_border_flows(ctx: AuditContext) -> list[dict[str, Any]]:
    """Personal data leaving the jurisdiction it was collected in: from a source's
    jurisdictions to its storage location, and the transfers processing.yaml declares.
    A source serving several regions whose storage location is not declared is listed
    with ``to: None`` (unknown: to be asked)."""
    flows: list[dict[str, Any]] = []
    proc = ctx.processing
    for s in ctx.inventory.sources:
        sp = proc.sources.get(s.name) if proc else None
        regions = sorted({REGION[j] for j in s.jurisdictions})
        where = REGION[sp.storage_location] if sp and sp.storage_location else None
        if where is None:
            if len(regions) > 1:
                flows.append({"source": s.name, "tables": [], "from": ",".join(regions),
                              "to": None, "kind": "storage location not declared",
                              "route": None, "reference": None, "owner": s.owner})
            continue
        for r in regions:
            if r != where:
                flows.append({"source": s.name, "tables": [], "from": r, "to": where,
                              "kind": "storage", "route": None, "reference": None,
                              "owner": s.owner})
    for t in proc.transfers if proc else []:
        src = ctx.inventory.source(t.source)
        for r in sorted({REGION[j] for j in src.jurisdictions}):
            if r != REGION[t.to]:
                flows.append({"source": t.source, "tables": list(t.tables), "from": r,
                              "to": REGION[t.to], "kind": "transfer",
                              "recipient": t.recipient, "route": t.route,
                              "reference": t.reference, "owner": src.owner})
    # A storage flow is covered by a declared transfer naming its route.
    for f in flows:
        if f["kind"] == "storage" and f["route"] is None and proc:
            for t in proc.transfers:
                if t.source == f["source"] and REGION[t.to] == f["to"] and t.route:
                    f["route"], f["reference"] = t.route, t.reference
    for f in flows:
        f["route_required"] = ROUTE_NEEDED.get(f["from"]) if f["to"] else \
            "unknown until the storage location is declared"
    return flows


def _activities(ctx: AuditContext, dmap: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for s in dmap["sources"]:
        for t in s["tables"]:
            out.append({"source": s["source"], "table": t["table"], "owner": ctx.owner(
                s["source"], t["table"]), "categories": t["categories"],
                "sensitive": t["sensitive"], "jurisdictions": s["jurisdictions"],
                "storage_location": s["storage_location"]})
    return out


def art30_record(ctx: AuditContext, dmap: dict[str, Any]) -> dict[str, Any]:
    """The GDPR Art. 30(1) record: one entry per processing activity (table)."""
    proc = ctx.processing
    controller = proc.controller if proc else None
    entries, unfilled = [], []
    flows = dmap["flows"]
    for a in _activities(ctx, dmap):
        tp = proc.table(a["source"], a["table"]) if proc else None
        sp = proc.sources.get(a["source"]) if proc else None
        owner = a["owner"]
        transfers = [f for f in flows if f["source"] == a["source"] and
                     (not f["tables"] or a["table"] in f["tables"])]
        measures = sorted({*(proc.security_measures if proc else []),
                           *(sp.security_measures if sp else []),
                           *(tp.security_measures if tp else [])})
        entry = {
            "activity": (tp.activity if tp and tp.activity else f"{a['source']}.{a['table']}"),
            "source": a["source"], "table": a["table"],
            "controller": controller.name if controller and controller.name
            else ctx.inventory.organization,
            "controller_contact": controller.contact if controller else None,
            "dpo": controller.dpo if controller else None,
            "purposes": list(tp.purposes) if tp else [],
            "legal_basis": dict(tp.legal_basis) if tp else {},
            "data_subjects": list(tp.data_subjects) if tp else [],
            "categories": a["categories"], "sensitive_categories": a["sensitive"],
            "recipients": list(tp.recipients) if tp else [],
            "transfers": [{"from": f["from"], "to": f["to"], "route": f["route"],
                           "reference": f["reference"]} for f in transfers],
            "retention": (f"{tp.retention.days} days from {tp.retention.clock_column}"
                          if tp and tp.retention else None),
            "security_measures": measures,
            "owner": owner,
        }
        missing = [k for k in ("purposes", "legal_basis", "data_subjects", "recipients",
                               "retention", "security_measures") if not entry[k]]
        if not entry["controller_contact"]:
            missing.append("controller_contact")
        if any(f["to"] is None for f in transfers):
            missing.append("transfers (storage location)")
        if any(f["to"] and f["route"] is None and f["route_required"] for f in transfers):
            missing.append("transfers (safeguard/route)")
        entry["unfilled"] = missing
        if missing:
            unfilled.append({"activity": entry["activity"], "fields": missing, "ask": owner})
        entries.append(entry)
    return {"controller": controller.name if controller and controller.name
            else ctx.inventory.organization, "entries": entries, "unfilled": unfilled}


def pipl_inventory(ctx: AuditContext, dmap: dict[str, Any]) -> dict[str, Any]:
    """The PIPL personal-information inventory: one row per personal-data column."""
    proc = ctx.processing
    rows, unfilled = [], []
    for s in dmap["sources"]:
        for t in s["tables"]:
            tp = proc.table(s["source"], t["table"]) if proc else None
            for c in t["columns"]:
                cat = CATEGORIES.get(c["category"])
                row = {
                    "source": s["source"], "table": t["table"], "column": c["column"],
                    "category": c["category"],
                    "description": cat.description if cat else c["category"],
                    "sensitive_pipl_art28": bool(cat and cat.pipl_art28),
                    "declared": c["declared"],
                    "purpose": "; ".join(tp.purposes) if tp else None,
                    "legal_basis_pipl_art13": tp.legal_basis.get("PIPL") if tp else None,
                    "storage_location": s["storage_location"],
                    "retention": f"{tp.retention.days} days" if tp and tp.retention else None,
                    "recipients": "; ".join(tp.recipients) if tp and tp.recipients else None,
                    "cross_border": any(f["source"] == s["source"] and f["from"] == "CN"
                                        for f in dmap["flows"]) or None,
                    "owner": ctx.owner(s["source"], t["table"]),
                }
                missing = [k for k in ("purpose", "legal_basis_pipl_art13", "storage_location",
                                       "retention") if not row[k]]
                row["unfilled"] = missing
                if missing:
                    unfilled.append({"place": f"{s['source']}.{t['table']}.{c['column']}",
                                     "fields": missing, "ask": row["owner"]})
                rows.append(row)
    return {"rows": rows, "unfilled": unfilled}


def impact_assessment(ctx: AuditContext, dmap: dict[str, Any]) -> dict[str, Any]:
    """The PIPL Art. 55/56 impact-assessment draft: what needs one, what covers it."""
    proc = ctx.processing
    assessments = proc.impact_assessments if proc else []

    def covering(source: str, table: str | None) -> list[dict[str, Any]]:
        return [{"id": a.id, "status": a.status,
                 "completed": a.completed.isoformat() if a.completed else None}
                for a in assessments
                if source in a.covers or (table and f"{source}.{table}" in a.covers)]

    items = []
    for s in dmap["sources"]:
        for t in s["tables"]:
            if not any(is_sensitive(c) and CATEGORIES[c].pipl_art28 for c in t["sensitive"]):
                continue
            items.append({"trigger": "PIPL Art. 55(1): sensitive personal information",
                          "source": s["source"], "table": t["table"],
                          "categories": t["sensitive"], "owner": ctx.owner(s["source"],
                                                                             t["table"]),
                          "assessments": covering(s["source"], t["table"])})
    for f in dmap["flows"]:
        if "CN" not in f["from"].split(","):
            continue
        items.append({"trigger": "PIPL Art. 55(4): provision of personal information abroad "
                                 "(Art. 38 route: " + (f["route"] or "NOT DECLARED") + ")",
                      "source": f["source"], "table": ",".join(f["tables"]) or None,
                      "categories": [], "route": f["route"], "to": f["to"],
                      "owner": f["owner"],
                      "assessments": covering(f["source"], None)})
    for it in items:
        approved = [a for a in it["assessments"] if a["status"] == "approved"]
        it["missing"] = not approved
        if "route" in it and it["route"] not in CN_ROUTES:
            it["missing"] = True
    return {"items": items, "content": [
        "Art. 56(1): whether the purposes and methods of processing are lawful, legitimate "
        "and necessary",
        "Art. 56(2): the impact on individuals' rights and interests, and the security risks",
        "Art. 56(3): whether the protective measures are lawful, effective and proportionate "
        "to the risk"],
        "retention": "PIPL Art. 56: keep the report and the processing record at least "
                     "three years"}


def build_records(ctx: AuditContext) -> dict[str, Any]:
    """The data map and every record, as one JSON-ready document."""
    dmap = data_map(ctx)
    return {"data_map": dmap, "art30": art30_record(ctx, dmap),
            "pipl_inventory": pipl_inventory(ctx, dmap),
            "impact_assessment": impact_assessment(ctx, dmap)}


def cached_records(ctx: AuditContext) -> dict[str, Any]:
    """``build_records(ctx)``, computed once per audit run."""
    if "records" not in ctx.cache:
        ctx.cache["records"] = build_records(ctx)
    return ctx.cache["records"]
