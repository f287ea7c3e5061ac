"""Northwind, Microsoft's trading-company sample database, in its PostgreSQL port.

``northwind/northwind.sql`` is the file of GitHub's pthom/northwind_psql at commit cd0ef28,
committed here unchanged with its licence (``northwind/LICENSE``: Microsoft Public License,
which asks that copies keep it). Customers and employees are people; orders point at
both (and at the shipper), order lines at the order and the product, employees at their
manager; suppliers and shippers are firms whose rows hold a contact's name and phone.
The script is run as published.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

SCRIPT = Path(__file__).with_name("northwind") / "northwind.sql"


def load_postgres(dsn: str) -> None:
    """Create Northwind in the (empty) database ``dsn`` from the published script."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCRIPT.read_text(encoding="utf-8"))  # type: ignore[arg-type]
