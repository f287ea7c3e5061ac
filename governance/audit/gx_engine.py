"""Run the source checks as Great Expectations 1.x suites, read-only, against the sources.

Per table: one pandas data asset with a whole-dataframe batch definition; per (check,
table) one expectation suite and one validation definition; one checkpoint per table
holding them, run once on the rows read. The context is ephemeral (nothing written to
disk), with GX's usage analytics and progress bars off. Raw values that GX reports as
unexpected stay in memory: results keep counts and at most three masked values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from governance.audit.context import AuditContext, TableTarget
from governance.audit.model import Check, CheckResult, Status
from governance.errors import GovernanceError
from governance.masking import mask_value

MAX_SAMPLES = 3
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def gx_context() -> Any:
    """An ephemeral GX data context: in memory, no analytics, no progress bars."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(),
                               analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def _name(*parts: str) -> str:
    return _SAFE_NAME.sub("_", ".".join(parts))


def read_frame(ctx: AuditContext, source: str, table: str, columns: Sequence[str]
               ) -> tuple[Any, int, int | None]:
    """The first ``ctx.max_rows`` rows of ``columns`` of ``source.table`` as a pandas
    DataFrame (read-only connector), the rows read and the table's row count if known."""
    import pyarrow as pa

    from governance.sources import open_connector

    with open_connector(ctx.inventory, source) as conn:
        info = conn.table_info(table)
        cols = conn.check_columns(table, list(dict.fromkeys(columns)))
        batches, n = [], 0
        for batch in conn.stream_rows(table, cols):
            if n + batch.num_rows > ctx.max_rows:
                batch = batch.slice(0, ctx.max_rows - n)
            batches.append(batch)
            n += batch.num_rows
            if n >= ctx.max_rows:
                break
        if batches:
            frame = pa.Table.from_batches(batches).to_pandas()
        else:
            import pandas as pd  # type: ignore[import-untyped]

            frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    total = info.row_count
    return frame, n, total


def default_interpret(check: Check, target: TableTarget, column: str | None,
                      result: Mapping[str, Any], success: bool) -> CheckResult:
    """A failed expectation is a failing check; counts and masked samples as evidence."""
    evidence: dict[str, Any] = {k: result[k] for k in (
        "element_count", "unexpected_count", "missing_count", "unexpected_percent")
        if result.get(k) is not None}
    if target.params.get("show_samples", True):
        samples = [mask_value(v) for v in (result.get("partial_unexpected_list") or [])
                   [:MAX_SAMPLES] if v is not None]
        if samples:
            evidence["masked_samples"] = samples
    return check.result(Status.PASS if success else Status.FAIL, source=target.source,
                        table=target.table, column=column, evidence=evidence)


def run_source_checks(ctx: AuditContext, work: Iterable[tuple[Check, TableTarget]]
                      ) -> list[CheckResult]:
    """Validate every (check, table target) pair; one checkpoint per table."""
    by_table: dict[tuple[str, str], list[tuple[Check, TableTarget]]] = {}
    for check, target in work:
        by_table.setdefault((target.source, target.table), []).append((check, target))
    if not by_table:
        return []
    gx = _gx()
    context = gx_context()
    results: list[CheckResult] = []
    datasources: dict[str, Any] = {}
    for (source, table), pairs in sorted(by_table.items()):
        columns = [c for _, t in pairs for c in t.columns]
        try:
            frame, read, total = read_frame(ctx, source, table, columns)
        except (GovernanceError, OSError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            for check, _target in pairs:
                results.append(check.result(
                    Status.ERROR, source=source, table=table,
                    evidence={"error": f"could not read the table: {first}"},
                    remediation="Make the source reachable (govkit inventory) and rerun."))
            continue
        for _check, target in pairs:
            for col in target.params.get("as_datetime", []):
                import pandas as pd

                frame[f"{col}__as_datetime"] = pd.to_datetime(frame[col], errors="coerce",
                                                              utc=True)
        if source not in datasources:
            datasources[source] = context.data_sources.add_pandas(_name("govkit", source))
        asset = datasources[source].add_dataframe_asset(name=_name(table))
        batch = asset.add_batch_definition_whole_dataframe(_name(table, "whole"))
        definitions, owners = [], {}
        for check, target in pairs:
            suite = context.suites.add(gx.ExpectationSuite(
                name=_name("govkit", check.check_id, source, table)))
            assert check.expectations is not None
            for exp in check.expectations(target):
                suite.add_expectation(exp)
            vd = context.validation_definitions.add(gx.ValidationDefinition(
                data=batch, suite=suite, name=_name("govkit", check.check_id, source, table)))
            definitions.append(vd)
            owners[vd.name] = (check, target)
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=_name("govkit-audit", source, table), validation_definitions=definitions,
            actions=[], result_format={"result_format": "SUMMARY",
                                       "partial_unexpected_count": MAX_SAMPLES}))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        truncated = total is not None and read < total
        for vr in outcome.run_results.values():
            check, target = owners[vr.suite_name] if vr.suite_name in owners else \
                next(iter(owners.values()))
            for er in vr.results:
                cfg = er.expectation_config
                column = cfg.kwargs.get("column")
                column = column.removesuffix("__as_datetime") if column else column
                if er.exception_info and er.exception_info.get("raised_exception"):
                    msg = str(er.exception_info.get("exception_message") or "")
                    results.append(check.result(
                        Status.ERROR, source=source, table=table, column=column,
                        evidence={"error": msg.splitlines()[0][:200] if msg else "error"}))
                    continue
                if check.interpret is not None:
                    res = check.interpret(target, column, dict(er.result or {}),
                                          bool(er.success))
                else:
                    res = default_interpret(check, target, column, dict(er.result or {}),
                                            bool(er.success))
                res.evidence.setdefault("rows_examined", read)
                if total is not None:
                    res.evidence.setdefault("rows_in_table", total)
                res.evidence.setdefault("expectation", cfg.type)
                res.evidence.setdefault("suite", vr.suite_name)
                if truncated and res.status is Status.PASS:
                    res.status = Status.WARN
                    res.evidence["note"] = (f"only the first {read:,} of {total:,} rows were "
                                            "examined (--max-rows)")
                    res.remediation = "Rerun with a higher --max-rows to examine every row."
                res.engine = "great_expectations"
                results.append(res)
    return results


def validate_frame(name: str, frame: Any, expectations: Sequence[Any]) -> list[dict[str, Any]]:
    """Validate a DataFrame computed from the audit store with ``expectations`` (one suite,
    one validation definition, one checkpoint); per expectation: ``success`` and its
    counts (never values)."""
    gx = _gx()
    context = gx_context()
    batch = (context.data_sources.add_pandas(_name("govkit", "store"))
             .add_dataframe_asset(name=_name(name))
             .add_batch_definition_whole_dataframe("whole"))
    suite = context.suites.add(gx.ExpectationSuite(name=_name("govkit", name)))
    for exp in expectations:
        suite.add_expectation(exp)
    vd = context.validation_definitions.add(gx.ValidationDefinition(
        data=batch, suite=suite, name=_name("govkit", name)))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=_name("govkit-audit", name), validation_definitions=[vd], actions=[],
        result_format={"result_format": "BASIC"}))
    outcome = checkpoint.run(batch_parameters={"dataframe": frame})
    out = []
    for vr in outcome.run_results.values():
        for er in vr.results:
            r = dict(er.result or {})
            out.append({"success": bool(er.success), "expectation": er.expectation_config.type,
                        **{k: r[k] for k in ("element_count", "unexpected_count")
                           if k in r}})
    return out
