"""Retention on Pagila (public, MIT-style; PostgreSQL), whose payments are partitioned by
month (``payment_p2022_01`` .. ``_07``).

Found by a helper: a batch picked its due rows by ``ctid``, which is unique only within
one partition, so the same positions were deleted in every partition: a rule due for 5,924
payments deleted all 16,049 (held ones too, and other customers' under a per-person rule)
and said ``done``. Which rows must go is written here in SQL; every table is compared
before and after by a SHA-256 of each row (``public_data.oracle``).
"""

from __future__ import annotations

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

pytestmark = pytest.mark.postgres

NOW = datetime(2022, 7, 1, tzinfo=UTC)
CUTOFF = "2022-04-02 00:00:00+00"       # NOW less 90 days


def _policy(tmp: Path, rules: str) -> list[Any]:
    path = tmp / "retention.yaml"
    path.write_text("version: 1\nprofile: pagila\njurisdictions: [EU]\nrules:\n" + rules)
    return load_policies([path])


OLD_PAYMENTS = """
  - name: old-payments
    tables: [pagila.payment]
    retain: 90 days
    clock: payment_date
    action: delete
    basis: "Payment records: 90 days (a test's rule)"
"""


def _payments(check: Db, where: str, params: tuple[Any, ...] = ()) -> set[tuple[Any, ...]]:
    """Payments as ``row_hashes`` keys them (the partitioned table's primary key)."""
    return set(check.query(f"SELECT payment_date, payment_id FROM payment WHERE {where}",
                           params))


@pytest.mark.parametrize("batch_rows", [500, 500_000])
def test_old_payments_go_from_every_partition_and_no_other_row(
        pagila_pg: PublicDb, tmp_path: Path, batch_rows: int) -> None:
    check = pagila_pg.connect()
    try:
        inv = load_inventory(pagila_pg.declared_inventory)
        due = _payments(check, "payment_date < ?", (CUTOFF,))
        assert 0 < len(due) < check.query("SELECT count(*) FROM payment")[0][0]
        before = row_hashes(check)
        policies = _policy(tmp_path, OLD_PAYMENTS)
        plan = plan_retention(policies, inv, pagila_pg.store, NOW)
        assert {s.table: s.due for s in plan.steps} == {"payment": len(due)}
        result = apply_retention(policies, inv, pagila_pg.store, NOW, "tester",
                                 batch_rows=batch_rows)
        assert result.changed == len(due)
        assert differences(before, row_hashes(check)) == {
            "payment": {"removed": due, "added": set(), "changed": set()}}
        assert plan_retention(policies, inv, pagila_pg.store, NOW).due == 0
    finally:
        check.close()


def test_a_held_month_of_payments_stays(pagila_pg: PublicDb, tmp_path: Path) -> None:
    check = pagila_pg.connect()
    try:
        inv = load_inventory(pagila_pg.declared_inventory)
        place_hold(pagila_pg.store, reason="Case 12", actor="counsel", table="pagila.payment",
                   covers=(datetime(2022, 2, 1, tzinfo=UTC), datetime(2022, 3, 1, tzinfo=UTC)),
                   inventory=inv)
        due = _payments(check, "payment_date < ? AND NOT (payment_date >= ? AND "
                        "payment_date < ?)", (CUTOFF, "2022-02-01 00:00:00+00",
                                              "2022-03-01 00:00:00+00"))
        held = _payments(check, "payment_date >= ? AND payment_date < ?",
                         ("2022-02-01 00:00:00+00", "2022-03-01 00:00:00+00"))
        assert due and held
        before = row_hashes(check)
        result = apply_retention(_policy(tmp_path, OLD_PAYMENTS), inv, pagila_pg.store, NOW,
                                 "tester", batch_rows=700)
        assert result.changed == len(due)
        assert differences(before, row_hashes(check)) == {
            "payment": {"removed": due, "added": set(), "changed": set()}}
    finally:
        check.close()


@pytest.mark.parametrize("fault", ["retention.after_batch:2", "retention.before_batch:3"])
def test_a_run_killed_midway_finishes_exactly(pagila_pg: PublicDb, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              fault: str) -> None:
    check = pagila_pg.connect()
    try:
        inv = load_inventory(pagila_pg.declared_inventory)
        due = _payments(check, "payment_date < ?", (CUTOFF,))
        before = row_hashes(check)
        policies = _policy(tmp_path, OLD_PAYMENTS)
        monkeypatch.setenv("GOVKIT_FAULT", f"{fault}:raise")
        with pytest.raises(InjectedFault):
            apply_retention(policies, inv, pagila_pg.store, NOW, "tester", batch_rows=900)
        monkeypatch.delenv("GOVKIT_FAULT")
        apply_retention(policies, inv, pagila_pg.store, NOW, "tester", batch_rows=900)
        assert differences(before, row_hashes(check)) == {
            "payment": {"removed": due, "added": set(), "changed": set()}}
    finally:
        check.close()


INACTIVE = """
  - name: inactive-customers
    tables: [pagila.customer]
    retain: 30 days
    clock: create_date
    action: delete
    per_subject: true
    exceptions: [{column: active, in: [1]}]
    basis: "Inactive customers erased 30 days after sign-up (a test's rule)"
"""


def test_inactive_customers_go_with_their_rentals_and_payments_only(
        pagila_pg: PublicDb, tmp_path: Path) -> None:
    """A per-person rule: each inactive customer's payments (in every partition) and
    rentals go (a rental another customer's payment points at would stay, with its
    customer: none does at this date). The helper saw 1,931 payments of active customers
    deleted."""
    check = pagila_pg.connect()
    try:
        inv = load_inventory(pagila_pg.declared_inventory)
        gone = {r[0] for r in check.query("SELECT customer_id FROM customer WHERE active = 0")}
        marks = ", ".join(str(c) for c in sorted(gone))
        kept_rentals = {r[0] for r in check.query(
            f"SELECT r.rental_id FROM rental r WHERE r.customer_id IN ({marks}) AND EXISTS "
            f"(SELECT 1 FROM payment p WHERE p.rental_id = r.rental_id AND p.customer_id "
            f"NOT IN ({marks}))")}
        kept_customers = {r[0] for r in check.query(
            f"SELECT DISTINCT customer_id FROM rental WHERE rental_id IN "
            f"({', '.join(map(str, kept_rentals)) or 'NULL'})")}
        payments = _payments(check, f"customer_id IN ({marks})")
        rentals = {r for r in check.query(f"SELECT rental_id FROM rental WHERE customer_id "
                                          f"IN ({marks})") if r[0] not in kept_rentals}
        customers = {(c,) for c in gone - kept_customers}
        assert gone and payments and rentals
        before = row_hashes(check)
        apply_retention(_policy(tmp_path, INACTIVE), inv, pagila_pg.store, NOW, "tester",
                        batch_rows=300)
        assert differences(before, row_hashes(check)) == {
            "payment": {"removed": payments, "added": set(), "changed": set()},
            "rental": {"removed": rentals, "added": set(), "changed": set()},
            "customer": {"removed": customers, "added": set(), "changed": set()}}
    finally:
        check.close()


@pytest.mark.parametrize("hold", ["payment", "payment-february", "rental"])
def test_a_hold_on_a_table_a_per_person_rule_reaches_keeps_its_rows(
        pagila_pg: PublicDb, tmp_path: Path, hold: str) -> None:
    """A hold on payments (whole, or February: the cascade reads no clock there, so all of
    the due customers' payments are kept, as an erasure keeps a table under a time-range
    hold) or on rentals: a per-person rule deletes none of the held table's rows, nor the
    rows they point at (found by a helper: it deleted them and logged "0 held")."""
    check = pagila_pg.connect()
    try:
        inv = load_inventory(pagila_pg.declared_inventory)
        table = hold.split("-")[0]
        covers = (datetime(2022, 2, 1, tzinfo=UTC), datetime(2022, 3, 1, tzinfo=UTC)) \
            if hold.endswith("february") else None
        place_hold(pagila_pg.store, reason="Case 12", actor="counsel",
                   table=f"pagila.{table}", covers=covers, inventory=inv)
        gone = {r[0] for r in check.query("SELECT customer_id FROM customer WHERE active = 0")}
        marks = ", ".join(str(c) for c in sorted(gone))
        if table == "payment":
            # Payments stay; rentals a payment points at stay, and so do their customers.
            payments: set[tuple[Any, ...]] = set()
            rentals = set(check.query(
                f"SELECT r.rental_id FROM rental r WHERE r.customer_id IN ({marks}) AND NOT "
                "EXISTS (SELECT 1 FROM payment p WHERE p.rental_id = r.rental_id)"))
        else:
            # Rentals stay; payments go (nothing points at them), customers stay.
            payments = _payments(check, f"customer_id IN ({marks})")
            rentals = set()
        before = row_hashes(check)
        result = apply_retention(_policy(tmp_path, INACTIVE), inv, pagila_pg.store, NOW,
                                 "tester", batch_rows=300)
        expected = {t: {"removed": rows, "added": set(), "changed": set()}
                    for t, rows in (("payment", payments), ("rental", rentals)) if rows}
        assert differences(before, row_hashes(check)) == expected
        held = {s["table_name"]: s["held_rows"] for s in result.steps}
        assert held[table] > 0, result.steps
    finally:
        check.close()


def test_anonymizing_a_not_null_key_column_is_refused_with_advice_that_works(
        pagila_pg: PublicDb, tmp_path: Path) -> None:
    """``payment.customer_id`` (NOT NULL, an integer, a key): null is refused, and the
    advice is to delete the rows, not to redact (which is refused too: found by a helper)."""
    from governance.errors import ConfigError
    from governance.retention.policy import check_policy, load_estate
    from governance.sources.pool import ConnectorPool

    inv = load_inventory(pagila_pg.declared_inventory)
    policies = _policy(tmp_path, """
  - name: anon-payments
    tables: [pagila.payment]
    retain: 90 days
    clock: payment_date
    action: anonymize
    columns: {customer_id: "null"}
    basis: "a test's rule"
""")
    with ConnectorPool(inv) as pool:
        with pytest.raises(ConfigError) as e:
            check_policy(policies[0], load_estate(inv, pagila_pg.store, pool), pool)
    assert "delete the rows instead" in str(e.value) and "use redact" not in str(e.value)


OLD_RENTALS = """
  - name: old-rentals
    tables: [pagila.rental]
    retain: 90 days
    clock: rental_date
    action: delete
    basis: "Rental records: 90 days (a test's rule)"
"""


def test_rows_past_their_period_kept_by_references_are_reported_not_passed(
        pagila_pg: PublicDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old rentals that payments (kept: no rule on them) still point at stay, as they
    must; before, the plan and ``retention audit`` counted them nowhere and the
    compliance check passed the table with them still there (found in session 15's
    review). The rentals that go and those kept are written here in SQL."""
    from governance.audit.model import Status
    from governance.audit.runner import run_audit
    from governance.retention.audit import retention_findings

    check = pagila_pg.connect()
    try:
        inv = load_inventory(pagila_pg.declared_inventory)
        # Every Pagila rental is paid: the payments of five old rentals are removed first
        # (this copy's own change), so that those five are due and the others kept.
        check.execute(f"DELETE FROM payment WHERE rental_id IN (SELECT rental_id FROM rental "
                      f"WHERE rental_date < '{CUTOFF}' ORDER BY rental_id LIMIT 5)")
        old = "rental_date < ?"
        paid = "EXISTS (SELECT 1 FROM payment p WHERE p.rental_id = r.rental_id)"
        gone = {r[0] for r in check.query(
            f"SELECT rental_id FROM rental r WHERE {old} AND NOT {paid}", (CUTOFF,))}
        kept = check.query(f"SELECT count(*) FROM rental r WHERE {old} AND {paid}",
                           (CUTOFF,))[0][0]
        assert len(gone) == 5 and kept
        policies = _policy(tmp_path, OLD_RENTALS)
        plan = plan_retention(policies, inv, pagila_pg.store, NOW)
        step = next(s for s in plan.steps if s.table == "rental")
        assert (step.due, step.referenced) == (len(gone), kept)
        assert f"{kept} past the period kept" in step.describe()
        found = retention_findings(policies, inv, pagila_pg.store, NOW)
        assert [(p["table"], p["rows"], p["referenced"]) for p in found["past_retention"]
                ] == [("pagila.rental", len(gone), kept)]

        before = row_hashes(check)
        result = apply_retention(policies, inv, pagila_pg.store, NOW, "tester")
        assert result.changed == len(gone)
        changes = differences(before, row_hashes(check))
        assert set(changes) == {"rental"} and not changes["rental"]["added"] | \
            changes["rental"]["changed"]
        assert {k[0] for k in changes["rental"]["removed"]} == gone
        done = next(r for r in result.steps if r["table_name"] == "rental")
        assert done["referenced_rows"] == kept and f"{kept} row(s) past" in done["note"]
        proof = [e.details for e in pagila_pg.store.log_entries()
                 if e.action == "retention.applied" and e.target == "pagila.rental"]
        assert [p["referenced_rows"] for p in proof] == [kept]

        # After the apply, nothing is due, and the kept rentals are still past their
        # period: the compliance check fails on them, naming why.
        found = retention_findings(policies, inv, pagila_pg.store, NOW)
        assert [(p["rows"], p["referenced"]) for p in found["past_retention"]] == [(0, kept)]
        monkeypatch.setenv("GOVKIT_RETENTION_POLICY", str(tmp_path / "retention.yaml"))
        run = run_audit(inv, pagila_pg.store, today=NOW.date(), only=["retention_period"],
                        load_processing_file=False)
        rental = [r for r in run.results if r.table == "rental"]
        assert [r.status for r in rental] == [Status.FAIL]
        assert rental[0].evidence["rows_referenced"] == kept
        assert rental[0].evidence["rows_due"] == 0
    finally:
        check.close()
