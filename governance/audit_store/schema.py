"""The audit store's schema: every table, what a row of it means, and its migrations.

Migrations are applied in order and recorded in ``schema_migrations``; a store created by
an older version is brought up to date on open. Never edit a released migration: add one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One step of the schema, applied once."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "scan runs, source tables, column findings, hash-chained audit log", (
        """CREATE TABLE scan_runs (
            run_id VARCHAR PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            status VARCHAR NOT NULL,            -- running | succeeded | failed
            mode VARCHAR NOT NULL,              -- sampled | full
            inventory_path VARCHAR,
            inventory_digest VARCHAR,           -- sha256 of the inventory file scanned
            sources VARCHAR[] NOT NULL,
            sample_rows INTEGER,
            seed INTEGER,
            orchestrator_run_id VARCHAR,        -- e.g. the Dagster run id, when run there
            error VARCHAR
        )""",
        "COMMENT ON TABLE scan_runs IS 'One row per discovery scan: when, over what, outcome'",
        """CREATE TABLE source_tables (
            run_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            declared BOOLEAN NOT NULL,          -- listed in the inventory
            present BOOLEAN NOT NULL,           -- found in the source
            row_count BIGINT,
            column_count INTEGER,
            undeclared_columns VARCHAR[],       -- present but not named in the inventory
            missing_columns VARCHAR[],          -- named in the inventory but not present
            PRIMARY KEY (run_id, source, table_name)
        )""",
        "COMMENT ON TABLE source_tables IS "
        "'One row per table per scan run: declared vs found in the source'",
        """CREATE TABLE column_findings (
            run_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            column_name VARCHAR NOT NULL,
            column_type VARCHAR,
            declared_category VARCHAR,
            detected_category VARCHAR,
            entity_types VARCHAR[],
            confidence DOUBLE,
            sensitive BOOLEAN NOT NULL,         -- GDPR Art. 9 / PIPL Art. 28 category
            status VARCHAR NOT NULL,            -- see governance.scan.FindingStatus
            is_subject_key BOOLEAN NOT NULL,
            sampled_values INTEGER,
            matched_values INTEGER,
            masked_samples VARCHAR[],           -- masked only, never raw values
            evidence JSON,
            PRIMARY KEY (run_id, source, table_name, column_name)
        )""",
        "COMMENT ON TABLE column_findings IS "
        "'One row per column per scan run: what the column holds and the evidence'",
        """CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY,             -- 1, 2, 3 ... without gaps
            logged_at TIMESTAMPTZ NOT NULL,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            target VARCHAR,
            details JSON,                       -- masked; never raw personal data
            prev_hash VARCHAR NOT NULL,         -- row_hash of seq - 1 (zeros for seq 1)
            row_hash VARCHAR NOT NULL           -- sha256 over prev_hash and this row
        )""",
        "COMMENT ON TABLE audit_log IS "
        "'Append-only, hash-chained record of every action taken by or through the toolkit'",
        """CREATE TABLE audit_log_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq BIGINT NOT NULL,
            row_hash VARCHAR NOT NULL
        )""",
        "COMMENT ON TABLE audit_log_head IS "
        "'The last seq and hash of audit_log, so that a deleted tail is detected too'",
    )),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
