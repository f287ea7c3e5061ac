"""Retention enforcement on Chinook (public, MIT), on SQLite and PostgreSQL.

The schema has real foreign keys: invoice lines point at invoices, invoices at customers,
customers at the employee who supports them, employees at their manager. Which rows must
go, stay or change is written here in SQL from the schema and the policy, never taken from
govkit; every table is compared before and after by a SHA-256 of each row
(``public_data.oracle``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from public_data.fixtures import PublicDb
from public_data.oracle import Db, differences, row_hashes

from governance.faults import InjectedFault
from governance.inventory import load_inventory
from governance.retention.applying import apply_retention
from governance.retention.holds import place_hold
from governance.retention.planning import plan_retention
from governance.retention.policy import load_policies

NOW = datetime(2026, 12, 1, tzinfo=UTC)
# Chinook's invoices run from 2009 to 2013: 15 years before NOW splits them.
INVOICE_CUTOFF = "2011-12-01 00:00:00"


def _names(db: PublicDb) -> dict[str, str]:
    """Chinook's column names as each database spells them."""
    names = ["InvoiceDate", "HireDate", "BillingAddress", "BillingCity", "BillingPostalCode",
             "CustomerId", "InvoiceId", "EmployeeId"]
    return {n.lower(): (n if db.kind == "sqlite" else n.lower()) for n in names}


def _policy(db: PublicDb, tmp: Path, rules: str) -> list[Any]:
    path = tmp / "retention.yaml"
    path.write_text("version: 1\nprofile: chinook\njurisdictions: [EU]\nrules:\n"
                    + rules.format(**_names(db)))
    return load_policies([path])


INVOICES_DELETED = """
  - name: invoices
    tables: [chinook.invoices]
    retain: 15 years
    clock: {invoicedate}
    action: delete
    basis: "Sales records: 15 years"
"""


def _old_invoices(check: Db) -> set[tuple[Any, ...]]:
    return set(check.query("SELECT invoiceid FROM invoices WHERE invoicedate < ?",
                           (INVOICE_CUTOFF,)))


def _lines_of(check: Db, invoices: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    wanted = {i[0] for i in invoices}
    return {(line, ) for line, inv in check.query(
        "SELECT invoicelineid, invoiceid FROM invoice_items") if inv in wanted}


def test_old_invoices_go_with_their_lines_and_nothing_else_changes(chinook: PublicDb,
                                                                   tmp_path: Path) -> None:
    check = chinook.connect()
    try:
        inv = load_inventory(chinook.fk_inventory)
        invoices = _old_invoices(check)
        lines = _lines_of(check, invoices)
        assert 0 < len(invoices) < 412 and lines
        before = row_hashes(check)
        policies = _policy(chinook, tmp_path, INVOICES_DELETED)
        plan = plan_retention(policies, inv, chinook.store, NOW)
        due = {s.table.lower(): s.due for s in plan.steps}
        assert due == {"invoices": len(invoices), "invoice_items": len(lines)}
        result = apply_retention(policies, inv, chinook.store, NOW, "tester", batch_rows=37)
        assert result.changed == len(invoices) + len(lines)
        assert differences(before, row_hashes(check)) == {
            "invoice_items": {"removed": lines, "added": set(), "changed": set()},
            "invoices": {"removed": invoices, "added": set(), "changed": set()}}
        assert plan_retention(policies, inv, chinook.store, NOW).due == 0
        assert chinook.store.verify_log().ok
    finally:
        check.close()


def test_an_employee_past_retention_goes_only_when_nobody_points_at_them(
        chinook: PublicDb, tmp_path: Path) -> None:
    """Every employee but one was hired before the cutoff; those who support customers or
    manage other employees stay (deleting them would break those rows), the others go."""
    check = chinook.connect()
    try:
        inv = load_inventory(chinook.fk_inventory)
        old = set(check.query("SELECT employeeid FROM employees WHERE hiredate < ?",
                              ("2004-03-01 00:00:00",)))
        pointed = set(check.query("SELECT supportrepid FROM customers WHERE supportrepid IS "
                                  "NOT NULL UNION SELECT reportsto FROM employees WHERE "
                                  "reportsto IS NOT NULL"))
        gone = old - pointed
        assert gone and old & pointed
        before = row_hashes(check)
        policies = _policy(chinook, tmp_path, """
  - name: staff
    tables: [chinook.employees]
    retain: 1 year
    clock: {hiredate}
    action: delete
    basis: "Staff records"
""")
        apply_retention(policies, inv, chinook.store, datetime(2005, 3, 1, tzinfo=UTC),
                        "tester")
        assert differences(before, row_hashes(check)) == {
            "employees": {"removed": gone, "added": set(), "changed": set()}}
    finally:
        check.close()


def test_anonymizing_old_invoices_changes_only_those_columns_of_those_rows(
        chinook: PublicDb, tmp_path: Path) -> None:
    check = chinook.connect()
    try:
        inv = load_inventory(chinook.fk_inventory)
        invoices = _old_invoices(check)
        cols, rows = check.rows("invoices")
        lower = [c.lower() for c in cols]
        blanked = {"billingaddress", "billingpostalcode"}
        expected = {}
        for r in rows:
            row = dict(zip(lower, r, strict=True))
            if (row["invoiceid"],) in invoices:
                row.update({c: None for c in blanked})
            expected[row["invoiceid"]] = row
        before = row_hashes(check)
        policies = _policy(chinook, tmp_path, """
  - name: invoices-minimise
    tables: [chinook.invoices]
    retain: 15 years
    clock: {invoicedate}
    action: anonymize
    columns: {{{billingaddress}: "null", {billingpostalcode}: "null"}}
    basis: "Delivery details no longer needed"
""")
        apply_retention(policies, inv, chinook.store, NOW, "tester", batch_rows=50)
        assert differences(before, row_hashes(check)) == {
            "invoices": {"removed": set(), "added": set(), "changed": invoices}}
        cols, rows = check.rows("invoices")
        after = {r[lower.index("invoiceid")]: dict(zip(lower, r, strict=True)) for r in rows}
        assert after == expected
    finally:
        check.close()


def test_held_customers_and_a_held_time_range_keep_their_invoices(chinook: PublicDb,
                                                                  tmp_path: Path) -> None:
    check = chinook.connect()
    try:
        inv = load_inventory(chinook.fk_inventory)
        held_customer = 2
        place_hold(chinook.store, reason="Dispute 44", actor="dpo", table="chinook.customers",
                   subject_keys=[held_customer], inventory=inv)
        place_hold(chinook.store, reason="Tax audit 2010", actor="dpo",
                   table="chinook.invoices",
                   covers=(datetime(2010, 1, 1, tzinfo=UTC), datetime(2010, 12, 31,
                                                                      tzinfo=UTC)))
        held = set(check.query(
            "SELECT invoiceid FROM invoices WHERE invoicedate < ? AND (customerid = ? OR "
            "invoicedate BETWEEN '2010-01-01 00:00:00' AND '2010-12-31 00:00:00')",
            (INVOICE_CUTOFF, held_customer)))
        invoices = _old_invoices(check) - held
        lines = _lines_of(check, invoices)
        assert held and invoices
        before = row_hashes(check)
        apply_retention(_policy(chinook, tmp_path, INVOICES_DELETED), inv, chinook.store,
                        NOW, "tester")
        assert differences(before, row_hashes(check)) == {
            "invoice_items": {"removed": lines, "added": set(), "changed": set()},
            "invoices": {"removed": invoices, "added": set(), "changed": set()}}
    finally:
        check.close()


@pytest.mark.parametrize("fault", ["retention.after_batch:2", "retention.before_batch:3",
                                   "retention.after_step:1"])
def test_a_run_killed_midway_finishes_exactly_when_applied_again(
        chinook: PublicDb, tmp_path: Path, fault: str, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    check = chinook.connect()
    try:
        inv = load_inventory(chinook.fk_inventory)
        invoices = _old_invoices(check)
        lines = _lines_of(check, invoices)
        before = row_hashes(check)
        policies = _policy(chinook, tmp_path, INVOICES_DELETED)
        monkeypatch.setenv("GOVKIT_FAULT", f"{fault}:raise")
        with pytest.raises(InjectedFault):
            apply_retention(policies, inv, chinook.store, NOW, "tester", batch_rows=40)
        monkeypatch.delenv("GOVKIT_FAULT")
        result = apply_retention(policies, inv, chinook.store, NOW, "tester", batch_rows=40)
        assert result.resumed
        assert differences(before, row_hashes(check)) == {
            "invoice_items": {"removed": lines, "added": set(), "changed": set()},
            "invoices": {"removed": invoices, "added": set(), "changed": set()}}
        steps = chinook.store.query("SELECT table_name, planned_rows, rows_affected, status "
                                    "FROM retention_steps")
        assert {(s["table_name"].lower(), s["rows_affected"], s["status"]) for s in steps} == {
            ("invoices", len(invoices), "done"), ("invoice_items", len(lines), "done")}
    finally:
        check.close()


@pytest.mark.parametrize("point", ["retention.before_batch", "retention.after_batch"])
def test_a_resumed_run_counts_rows_two_rules_share_once(
        chinook: PublicDb, tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """Closed accounts go with their invoices, and old invoices go too: the plan counts a
    closed account's old invoice lines under both rules. Killed inside the second rule's
    step, the resumed run measured the batch cut short against the plan's count and
    recorded the shared lines twice (found by a helper on classicmodels: 3,249 rows
    "changed" for 3,126 removed). The counts are those removed, checked by row hashes."""
    from governance.retention import applying

    check = chinook.connect()
    try:
        check.execute("ALTER TABLE customers ADD COLUMN closed_at DATE",
                      "UPDATE customers SET closed_at = '2020-01-31' WHERE customerid <= 20")
        inv = load_inventory(chinook.fk_inventory)
        before = row_hashes(check)
        policies = _policy(chinook, tmp_path, CLOSED + INVOICES_DELETED)
        plan = plan_retention(policies, inv, chinook.store, NOW)
        # The fault: at the third batch of the second rule's invoice lines.
        at: list[Any] = []
        real_apply, real_fault = applying._apply_sql, applying.fault_point

        def apply_sql(*args: Any, **kwargs: Any) -> None:
            at[:] = [args[5], 0]
            real_apply(*args, **kwargs)

        def fault(name: str) -> None:
            step = at[0] if at else None
            if name == point and step is not None and step.rule == "invoices" \
                    and step.table.lower() == "invoice_items":
                at[1] += 1
                if at[1] == 3:
                    raise InjectedFault(f"fault injected at {name}")
            real_fault(name)

        monkeypatch.setattr(applying, "_apply_sql", apply_sql)
        monkeypatch.setattr(applying, "fault_point", fault)
        with pytest.raises(InjectedFault):
            apply_retention(policies, inv, chinook.store, NOW, "tester", batch_rows=40)
        monkeypatch.setattr(applying, "_apply_sql", real_apply)
        monkeypatch.setattr(applying, "fault_point", real_fault)
        result = apply_retention(policies, inv, chinook.store, NOW, "tester", batch_rows=40)
        assert result.resumed
        removed = {t: len(d["removed"]) for t, d in differences(before,
                                                                 row_hashes(check)).items()}
        assert sum(removed.values()) < plan.due          # the plan counted shared rows twice
        assert result.changed == sum(removed.values())
        steps = chinook.store.query("SELECT table_name, sum(rows_affected) AS n FROM "
                                    "retention_steps GROUP BY table_name")
        assert {s["table_name"].lower(): s["n"] for s in steps} == removed
    finally:
        check.close()


CLOSED = """
  - name: closed-accounts
    tables: [chinook.customers]
    retain: 1 year
    clock: closed_at
    action: delete
    per_subject: true
    basis: "One year after the account closes"
"""
TAX = """
  - name: invoices-tax
    tables: [chinook.invoices]
    retain: 30 years
    clock: {invoicedate}
    action: review
    legal_basis: legal_obligation
    basis: "Tax records"
"""


def _closed_customer(check: Db) -> tuple[int, int, set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """A customer whose account closed in 2020 (a column added here), another customer
    holding a gift card paid with one line of the first's invoice (a table added here, as
    Sakila's payments point at other customers' rentals): (closed, other, invoices,
    lines)."""
    closed, other = (r[0] for r in check.query(
        "SELECT customerid FROM customers ORDER BY customerid LIMIT 2"))
    invoices = set(check.query("SELECT invoiceid FROM invoices WHERE customerid = ?",
                               (closed,)))
    lines = set(check.query("SELECT invoicelineid FROM invoice_items WHERE invoiceid IN "
                            "(SELECT invoiceid FROM invoices WHERE customerid = ?)", (closed,)))
    check.execute("ALTER TABLE customers ADD COLUMN closed_at DATE",
                  f"UPDATE customers SET closed_at = '2020-01-31' WHERE customerid = {closed}",
                  "CREATE TABLE gift_cards (id INTEGER PRIMARY KEY, customerid INTEGER "
                  "REFERENCES customers (customerid), invoicelineid INTEGER REFERENCES "
                  "invoice_items (invoicelineid))",
                  f"INSERT INTO gift_cards VALUES (1, {other}, {min(lines)[0]})")
    return closed, other, invoices, lines


def test_a_closed_account_goes_but_for_what_another_customers_row_points_at(
        chinook: PublicDb, tmp_path: Path) -> None:
    """The closed customer's invoices and lines go; the line another customer's gift card
    points at stays, so its invoice, so the customer row (before, the line went and the
    gift card pointed at nothing)."""
    check = chinook.connect()
    try:
        closed, _, invoices, lines = _closed_customer(check)
        inv = load_inventory(chinook.fk_inventory)
        kept_line = min(lines)
        kept_invoice = check.query("SELECT invoiceid FROM invoice_items WHERE "
                                   "invoicelineid = ?", kept_line)[0]
        before = row_hashes(check)
        apply_retention(_policy(chinook, tmp_path, CLOSED), inv, chinook.store, NOW, "tester")
        assert differences(before, row_hashes(check)) == {
            "invoice_items": {"removed": lines - {kept_line}, "added": set(),
                              "changed": set()},
            "invoices": {"removed": invoices - {kept_invoice}, "added": set(),
                         "changed": set()}}
        assert check.query("SELECT count(*) FROM customers WHERE customerid = ?",
                           (closed,))[0][0] == 1
    finally:
        check.close()


def test_invoices_kept_for_tax_keep_their_lines_and_their_customer(chinook: PublicDb,
                                                                  tmp_path: Path) -> None:
    """A keeping obligation on invoices outlasts the closed account: nothing of the
    customer goes (before, the lines of the kept invoices went)."""
    check = chinook.connect()
    try:
        _closed_customer(check)
        inv = load_inventory(chinook.fk_inventory)
        before = row_hashes(check)
        apply_retention(_policy(chinook, tmp_path, CLOSED + TAX), inv, chinook.store, NOW,
                        "tester")
        assert differences(before, row_hashes(check)) == {}
    finally:
        check.close()


def test_a_hold_to_a_date_holds_the_whole_of_that_day(chinook_sqlite: PublicDb,
                                                      tmp_path: Path) -> None:
    """`retention hold --to 2010-06-15` holds the invoices of the 15th too (before, the
    range ended at its first instant, and that day's invoices were deleted), and the hold
    says so."""
    from click.testing import CliRunner

    from governance.cli import main

    db = chinook_sqlite
    check = db.connect()
    try:
        day = check.query("SELECT substr(min(invoicedate), 1, 10) FROM invoices WHERE "
                          "invoicedate >= '2010-06-15'")[0][0]
        # (Chinook's invoices are all dated at midnight: one that day gets an afternoon.)
        check.execute(f"UPDATE invoices SET invoicedate = '{day} 15:30:00' WHERE invoiceid = "
                      f"(SELECT min(invoiceid) FROM invoices WHERE invoicedate LIKE '{day}%')")
        held = set(check.query("SELECT invoiceid FROM invoices WHERE invoicedate >= "
                               "'2010-06-01' AND substr(invoicedate, 1, 10) <= ?", (day,)))
        assert any(r[0] for r in check.query("SELECT count(*) FROM invoices WHERE "
                                             "substr(invoicedate, 1, 10) = ?", (day,)))
        out = CliRunner().invoke(main, ["retention", "hold", "--store", str(db.store.path),
                                        "-i", str(db.fk_inventory),
                                        "--table", "chinook.invoices", "--from",
                                        "2010-06-01", "--to", day, "--reason", "Audit"])
        assert out.exit_code == 0, out.output
        assert f"from 2010-06-01 to {day}" in out.output
        invoices = _old_invoices(check) - held
        lines = _lines_of(check, invoices)
        before = row_hashes(check)
        apply_retention(_policy(db, tmp_path, INVOICES_DELETED),
                        load_inventory(db.fk_inventory), db.store, NOW, "tester")
        assert differences(before, row_hashes(check)) == {
            "invoice_items": {"removed": lines, "added": set(), "changed": set()},
            "invoices": {"removed": invoices, "added": set(), "changed": set()}}
    finally:
        check.close()


def test_redact_into_a_number_is_refused_with_file_line_and_field(
        chinook_sqlite: PublicDb, tmp_path: Path) -> None:
    """Before, `redact` wrote '[erased]' into Sakila's integer payment.customer_id (found
    by a helper): every such row then pointed at no customer."""
    from governance.errors import ConfigError

    db = chinook_sqlite
    check = db.connect()
    try:
        before = row_hashes(check)
        policies = _policy(db, tmp_path, """
  - name: invoices-minimise
    tables: [chinook.invoices]
    retain: 15 years
    clock: {invoicedate}
    action: anonymize
    columns: {{Total: redact}}
    basis: "Not needed"
""")
        with pytest.raises(ConfigError, match=re.escape(
                "retention.yaml:11: rules[0].columns.Total: chinook.invoices.Total is of "
                "type NUMERIC(10,2): redact writes the text '[erased]'")):
            apply_retention(policies, load_inventory(db.fk_inventory), db.store, NOW, "t")
        assert row_hashes(check) == before
    finally:
        check.close()


@pytest.mark.parametrize(("setup", "table", "clock", "column", "why"), [
    # Northwind's orders point at customers by a text id: redacting it would point them at
    # no customer.
    ([], "orders", "order_date", "customer_id", "is part of a foreign key"),
    # Found by a helper on the employees sample: redacting titles.title, part of its
    # primary key, ended in a traceback that printed a row's key, and every re-run failed
    # alike. Northwind's customers.customer_id is a text primary key (the copy gets a date
    # column to count from).
    (["ALTER TABLE customers ADD COLUMN joined date",
      "UPDATE customers SET joined = '2001-01-01'"], "customers", "joined", "customer_id",
     "is part of the table's primary key"),
], ids=["foreign key", "primary key"])
def test_redacting_a_key_column_is_refused(northwind_pg: PublicDb, tmp_path: Path,
                                           setup: list[str], table: str, clock: str,
                                           column: str, why: str) -> None:
    """Refused when the policy is checked (file, line, field), nothing changed."""
    from governance.errors import ConfigError

    db = northwind_pg
    check = db.connect()
    try:
        if setup:
            check.execute(*setup)
        before = row_hashes(check)
        path = tmp_path / "retention.yaml"
        path.write_text("version: 1\nprofile: nw\njurisdictions: [EU]\nrules:\n"
                        f"  - name: minimise\n    tables: [northwind.{table}]\n"
                        f"    retain: 10 years\n    clock: {clock}\n"
                        f"    action: anonymize\n    columns: {{{column}: redact}}\n"
                        "    basis: Not needed\n")
        with pytest.raises(ConfigError, match=re.escape(
                f"rules[0].columns.{column}: northwind.{table}.{column} {why}")):
            apply_retention(load_policies([path]), load_inventory(db.fk_inventory), db.store,
                            NOW, "t")
        assert row_hashes(check) == before
    finally:
        check.close()


def test_a_change_the_database_refuses_stops_the_run_in_one_line(
        chinook_sqlite: PublicDb, tmp_path: Path) -> None:
    """A unique index the policy check cannot see (two companies redacted alike): the run
    stops with the database's first line (no row's values), recorded as failed, and the
    refused step changed nothing (before, a traceback and a run left 'running')."""
    from governance.errors import RetentionError

    db = chinook_sqlite
    check = db.connect()
    try:
        check.execute("ALTER TABLE customers ADD COLUMN closed_at DATE",
                      "UPDATE customers SET closed_at = '2020-01-31' WHERE company IS NOT NULL",
                      "CREATE UNIQUE INDEX customers_company ON customers (company)")
        before = row_hashes(check)
        policies = _policy(db, tmp_path, """
  - name: closed-minimise
    tables: [chinook.customers]
    retain: 1 year
    clock: closed_at
    action: anonymize
    columns: {{Company: redact}}
    basis: "Not needed once the account closed"
""")
        with pytest.raises(RetentionError) as stopped:
            apply_retention(policies, load_inventory(db.fk_inventory), db.store, NOW, "t")
        line = str(stopped.value)
        assert "the database refused a change (UNIQUE constraint failed" in line
        assert "\n" not in line and "[erased]" not in line
        assert row_hashes(check) == before
        assert [r["status"] for r in db.store.query("SELECT status FROM retention_runs")] == \
            ["failed"]
    finally:
        check.close()


@pytest.mark.parametrize(("args", "why"), [
    (["--table", "chinook.invoicez"], "declares no such table"),
    (["--table", "chinook.invoices", "--keys-file", "KEYS"], "not a person table"),
    (["--table", "chinook.invoices", "--until", "2001-01-01"], "that time has passed"),
    # Found by a helper: a name that is no identifier ended in a traceback (exit 1).
    (["--table", "chinook.invoices; DROP", "--from", "2024-01-01", "--to", "2024-06-30"],
     "is not a plain identifier"),
])
def test_a_hold_that_would_protect_nothing_is_refused(chinook_sqlite: PublicDb,
                                                     tmp_path: Path, args: list[str],
                                                     why: str) -> None:
    """A mistyped table, keys of a table that is not a person table, a hold already ended:
    one line, exit 2, no hold (before: exit 0 and a hold protecting nothing, found by a
    helper)."""
    from click.testing import CliRunner

    from governance.cli import main

    keys = tmp_path / "keys.txt"
    keys.write_text("1\n2\n")
    args = [str(keys) if a == "KEYS" else a for a in args]
    db = chinook_sqlite
    out = CliRunner().invoke(main, ["retention", "hold", "--store", str(db.store.path), "-i",
                                    str(db.fk_inventory), *args, "--reason", "Audit"])
    assert out.exit_code == 2, out.output
    assert why in out.output and len(out.output.strip().splitlines()) == 1, out.output
    assert db.store.query("SELECT count(*) AS n FROM legal_holds")[0]["n"] == 0


def test_rows_an_earlier_rule_frees_go_in_the_same_run(chinook: PublicDb, tmp_path: Path
                                                       ) -> None:
    """Every customer of one support rep closed their account: the closed accounts go, and
    then the rep (hired long ago) is no longer referred to, so the staff rule removes them
    in the same run; a second apply finds nothing due (before, the staff step said it was
    done with the rep still due, found by a helper on Sakila)."""
    check = chinook.connect()
    try:
        rep = 5
        customers = {r[0] for r in check.query(
            "SELECT customerid FROM customers WHERE supportrepid = ?", (rep,))}
        check.execute("ALTER TABLE customers ADD COLUMN closed_at DATE",
                      f"UPDATE customers SET closed_at = '2020-01-31' WHERE supportrepid = "
                      f"{rep}")
        assert customers and not check.query(
            "SELECT 1 FROM employees WHERE reportsto = ?", (rep,))
        inv = load_inventory(chinook.fk_inventory)
        policies = _policy(chinook, tmp_path, CLOSED + """
  - name: staff
    tables: [chinook.employees]
    retain: 20 years
    clock: {hiredate}
    action: delete
    basis: "Staff records"
""")
        apply_retention(policies, inv, chinook.store, NOW, "tester")
        assert not check.query("SELECT 1 FROM employees WHERE employeeid = ?", (rep,))
        assert not {r[0] for r in check.query("SELECT customerid FROM customers")} & customers
        again = plan_retention(policies, inv, chinook.store, NOW)
        assert again.due == 0, [s.describe() for s in again.steps]
    finally:
        check.close()
