"""The ownership graph, built from an inventory alone (no database), and its defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.dsar.ownership import UNREACHABLE, build_graph, infer_kind
from governance.inventory import load_inventory
from governance.sources import ForeignKey

RENTAL_SHOP = """
version: 1
organization: rental shop (schema shaped like Sakila's)
sources:
  - name: shop
    kind: sqlite
    connection: {path: shop.db}
    owner: dba@example.com
    jurisdictions: [EU]
    tables:
      - name: customer
        subject_key: customer_id
        columns: {email: {category: contact.email}}
        references:
          - {column: address_id, to: address.address_id}
          - {column: store_id, to: store.store_id}
      - name: staff
        subject_key: staff_id
        references:
          - {column: address_id, to: address.address_id}
      - name: address
        columns: {address: {category: location.address}, phone: {category: contact.phone}}
      - name: store
        references:
          - {column: manager_staff_id, to: staff.staff_id}
      - name: rental
        references:
          - {column: customer_id, to: customer.customer_id}
          - {column: staff_id, to: staff.staff_id}
      - name: payment
        references:
          - {column: customer_id, to: customer.customer_id, kind: owner}
          - {column: staff_id, to: staff.staff_id, kind: reference}
          - {column: rental_id, to: rental.rental_id, kind: reference, on_erase: detach}
"""


@pytest.fixture()
def graph(tmp_path: Path):
    p = tmp_path / "inventory.yaml"
    p.write_text(RENTAL_SHOP)
    return build_graph(load_inventory(p))


def test_person_tables_are_those_with_a_subject_key(graph) -> None:
    assert graph.persons == {("shop", "customer"), ("shop", "staff")}


def test_defaults_never_cross_from_one_person_to_another(graph) -> None:
    kinds = {(e.table, e.column): e.kind for e in graph.edges}
    # A person's pointer at a table holding personal data is a detail (their address) ...
    assert kinds[("customer", "address_id")] == "detail"
    assert kinds[("staff", "address_id")] == "detail"
    # ... at a table without personal data a mere reference (the store) ...
    assert kinds[("customer", "store_id")] == "reference"
    # ... and rows of other tables belong to what they point at.
    assert kinds[("rental", "customer_id")] == "owner"
    assert kinds[("store", "manager_staff_id")] == "owner"
    # Declared kinds are kept as written.
    assert kinds[("payment", "staff_id")] == "reference"
    assert kinds[("payment", "rental_id")] == "reference"
    assert infer_kind(True, True, True) == "reference"   # support rep, reports_to


def test_distances_follow_owner_edges_only(graph) -> None:
    assert graph.distance(("shop", "customer")) == 0
    assert graph.distance(("shop", "rental")) == 1
    assert graph.distance(("shop", "payment")) == 1
    assert graph.distance(("shop", "address")) == UNREACHABLE   # a detail, owned by nobody


def test_two_inferred_owner_edges_are_reported_as_ambiguous(graph) -> None:
    problems = graph.problems()
    assert any(p.startswith("shop.rental:") and "customer_id" in p and "staff_id" in p
               for p in problems), problems
    # payment declares which reference is its owner: not ambiguous.
    assert not any(p.startswith("shop.payment:") for p in problems)
    # store is taken as its manager's through a column named for a role: said too.
    assert any(p.startswith("shop.store: taken as a person's rows through") and
               "manager_staff_id" in p for p in problems), problems


def test_on_erase_is_carried_by_the_edge(graph) -> None:
    edge = next(e for e in graph.edges if (e.table, e.column) == ("payment", "rental_id"))
    assert edge.on_erase == "detach"
    default = next(e for e in graph.edges if (e.table, e.column) == ("rental", "staff_id"))
    assert default.on_erase == "refuse"


def test_catalogue_foreign_keys_are_added_with_the_same_defaults(tmp_path: Path) -> None:
    p = tmp_path / "inventory.yaml"
    p.write_text(RENTAL_SHOP)
    inv = load_inventory(p)
    g = build_graph(inv, {"shop": [ForeignKey("inventory", "film_id", "film", "film_id"),
                                   ForeignKey("rental", "customer_id", "customer",
                                              "customer_id")]})
    added = [e for e in g.edges if not e.declared]
    assert [(e.table, e.column, e.kind) for e in added] == [("inventory", "film_id", "owner")]
    # film reaches no person: its owner edge leads nowhere and decides nothing.
    assert g.owner_edges(("shop", "inventory")) == []


def test_inventories_of_today_stay_valid(demo_inventory) -> None:
    g = build_graph(demo_inventory)
    assert ("app_db", "users") in g.persons
    kinds = {(e.table, e.column): e.kind for e in g.edges}
    assert kinds[("orders", "user_id")] == "owner"
    assert kinds[("ticket_messages", "ticket_id")] == "owner"
    assert kinds[("events", "user_id")] == "owner"
    assert g.distance(("app_db", "ticket_messages")) == 2
    assert g.problems() == []


def test_review_names_ambiguous_and_crossing_references_and_unreached_tables(
        tmp_path: Path) -> None:
    from governance.dsar.ownership import review

    p = tmp_path / "inventory.yaml"
    p.write_text(RENTAL_SHOP.replace(
        "      - name: store\n",
        "      - name: loyalty_notes\n"
        "        columns: {note_address: {category: location.address}}\n"
        "      - name: store\n").replace(
        "          - {column: address_id, to: address.address_id}\n"
        "      - name: address",
        "          - {column: address_id, to: address.address_id}\n"
        "          - {column: buddy_id, to: customer.customer_id, kind: owner}\n"
        "      - name: address"))
    inv = load_inventory(p)
    lines = review(build_graph(inv), inv)
    assert any(line.startswith("shop.rental:") for line in lines)
    assert any("staff.buddy_id" in line and "crosses from one person" in line
               for line in lines), lines
    assert any(line.startswith("shop.loyalty_notes:") for line in lines), lines
    assert not any(line.startswith("shop.address:") for line in lines)  # a detail target
