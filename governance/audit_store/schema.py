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
                                                -- (| partial | interrupted)
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
    Migration(2, "data keys, data-subject requests, erasure journal, legal holds", (
        """CREATE TABLE data_keys (
            key_id VARCHAR PRIMARY KEY,
            purpose VARCHAR NOT NULL,           -- e.g. dsar-request
            wrapped BLOB,                       -- AES-GCM under the master key; NULL once destroyed
            created_at TIMESTAMPTZ NOT NULL,
            destroyed_at TIMESTAMPTZ            -- set by crypto-shredding
        )""",
        "COMMENT ON TABLE data_keys IS "
        "'One row per data key, wrapped under the master key (which is never stored here)'",
        """CREATE TABLE dsar_requests (
            request_id VARCHAR PRIMARY KEY,
            request_type VARCHAR NOT NULL,      -- access | erasure | rectify
            jurisdiction VARCHAR NOT NULL,
            law VARCHAR NOT NULL,               -- GDPR | CCPA | PIPL
            state VARCHAR NOT NULL,             -- see governance.dsar.requests.RequestState
            received_at TIMESTAMPTZ NOT NULL,
            due_date DATE NOT NULL,             -- after any extension
            extended BOOLEAN NOT NULL,
            extension_reason VARCHAR,
            identity_types VARCHAR[] NOT NULL,
            masked_identities VARCHAR[] NOT NULL,
            fingerprints VARCHAR[] NOT NULL,    -- keyed hashes of the identities (holds, proof)
            key_id VARCHAR NOT NULL,            -- data key the payload is sealed under
            payload BLOB NOT NULL,              -- identities and corrections, sealed
            delivery_secret BLOB,               -- access export passphrase, sealed
            verified_at TIMESTAMPTZ,
            closed_at TIMESTAMPTZ,
            outcome JSON,                       -- counts per location; never values
            lease_owner VARCHAR,                -- worker running it now, if any
            lease_until TIMESTAMPTZ,
            created_by VARCHAR NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        "COMMENT ON TABLE dsar_requests IS "
        "'One row per data-subject request; identities only sealed, masked or fingerprinted'",
        """CREATE TABLE dsar_steps (
            request_id VARCHAR NOT NULL,
            step_no INTEGER NOT NULL,
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            found_by VARCHAR NOT NULL,          -- subject_key | identity | reference | free_text
            action VARCHAR NOT NULL,            -- delete | anonymize | redact | rectify | held
            match_column VARCHAR NOT NULL,
            columns VARCHAR[],                  -- columns changed (anonymize, redact, rectify)
            planned_rows BIGINT NOT NULL,
            payload BLOB NOT NULL,              -- match values and new values, sealed
            status VARCHAR NOT NULL,            -- pending | done | held
            rows_affected BIGINT,
            done_at TIMESTAMPTZ,
            note VARCHAR,                       -- e.g. the legal hold's reason
            PRIMARY KEY (request_id, step_no)
        )""",
        "COMMENT ON TABLE dsar_steps IS "
        "'The erasure/rectification journal: one row per planned change, marked done once "
        "committed, so an interrupted run resumes without redoing or missing rows'",
        """CREATE TABLE legal_holds (
            hold_id VARCHAR PRIMARY KEY,
            scope VARCHAR NOT NULL,             -- subject | table
            fingerprints VARCHAR[],             -- subject scope: keyed hashes of identities
            masked_identities VARCHAR[],
            source VARCHAR,                     -- table scope
            table_name VARCHAR,
            reason VARCHAR NOT NULL,
            placed_by VARCHAR NOT NULL,
            placed_at TIMESTAMPTZ NOT NULL,
            released_by VARCHAR,
            released_at TIMESTAMPTZ
        )""",
        "COMMENT ON TABLE legal_holds IS "
        "'One row per legal hold: data that must not be erased, and why'",
    )),
    Migration(3, "store metadata: identity, master-key fingerprint, audit-log high-water mark", (
        """CREATE TABLE store_meta (
            name VARCHAR PRIMARY KEY,           -- store_id | key_fingerprint | log_high_water
            value VARCHAR NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        "COMMENT ON TABLE store_meta IS "
        "'Facts about the store itself: its id, the fingerprint of its master key (never "
        "the key), and the highest audit-log seq ever written'",
    )),
    Migration(4, "recorded approval of erasure and rectification runs", (
        "ALTER TABLE dsar_requests ADD COLUMN approved_at TIMESTAMPTZ",
        "ALTER TABLE dsar_requests ADD COLUMN approved_by VARCHAR",
        "ALTER TABLE dsar_requests ADD COLUMN approval_note VARCHAR",
        "COMMENT ON COLUMN dsar_requests.approved_at IS "
        "'When a person approved running an erasure/rectification (verification alone is "
        "not approval); NULL until then and for access requests'",
        "COMMENT ON COLUMN dsar_requests.approval_note IS "
        "'Why the run was approved, as typed, with personal data masked'",
    )),
    Migration(5, "field encryption: subject data keys, encryption checks", (
        """CREATE TABLE subject_keys (
            key_id VARCHAR PRIMARY KEY,         -- named in every envelope sealed under it
            subject VARCHAR NOT NULL,           -- keyed fingerprint of a person row, never a value
            generation INTEGER NOT NULL,        -- 1, then +1 at each data-key rotation
            state VARCHAR NOT NULL,             -- active | retiring | destroyed
            kek_id VARCHAR NOT NULL,            -- name of the KEK that wraps it (never the key)
            wrapped BLOB,                       -- NULL once destroyed (crypto-shredding)
            created_at TIMESTAMPTZ NOT NULL,
            rewrapped_at TIMESTAMPTZ,
            destroyed_at TIMESTAMPTZ
        )""",
        "COMMENT ON TABLE subject_keys IS "
        "'One row per data key of field encryption: one per data subject (and generation), "
        "wrapped by a key-encryption key kept outside the store'",
        """CREATE TABLE encryption_checks (
            check_id VARCHAR NOT NULL,
            checked_at TIMESTAMPTZ NOT NULL,
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            column_name VARCHAR NOT NULL,
            required BOOLEAN NOT NULL,          -- the policy requires it encrypted
            status VARCHAR NOT NULL,            -- see governance.encryption.audit.ColumnStatus
            cells BIGINT,                       -- non-null cells read
            plaintext_cells BIGINT,
            invalid_cells BIGINT,               -- envelope-shaped but malformed or not decrypting
            missing_key_cells BIGINT,           -- naming a data key the store does not have
            shredded_cells BIGINT,              -- under destroyed keys (erased subjects): expected
            detail VARCHAR,                     -- never a value
            PRIMARY KEY (check_id, source, table_name, column_name)
        )""",
        "COMMENT ON TABLE encryption_checks IS "
        "'One row per column per encryption audit: whether the cells the policy requires "
        "encrypted hold valid envelopes whose keys exist; counts only'",
    )),
    Migration(6, "retention: runs, their journal, decisions per table; holds on sources, "
                 "time ranges and persons' keys, with end dates", (
        "ALTER TABLE legal_holds ADD COLUMN covers_from TIMESTAMPTZ",
        "ALTER TABLE legal_holds ADD COLUMN covers_to TIMESTAMPTZ",
        "ALTER TABLE legal_holds ADD COLUMN ends_at TIMESTAMPTZ",
        "ALTER TABLE legal_holds ADD COLUMN key_id VARCHAR",
        "ALTER TABLE legal_holds ADD COLUMN sealed_keys BLOB",
        "COMMENT ON COLUMN legal_holds.covers_from IS "
        "'With covers_to: the hold covers only rows whose retention clock falls in this range'",
        "COMMENT ON COLUMN legal_holds.ends_at IS "
        "'When the hold ends by itself (NULL: until released)'",
        "COMMENT ON COLUMN legal_holds.sealed_keys IS "
        "'Scope subject_keys: the subject keys of the held persons, sealed under key_id'",
        """CREATE TABLE retention_runs (
            run_id VARCHAR PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            status VARCHAR NOT NULL,            -- running | completed | failed
            clock_at TIMESTAMPTZ NOT NULL,      -- the moment periods are counted back from
            policies VARCHAR[] NOT NULL,        -- policy files applied
            policy_digest VARCHAR NOT NULL,     -- sha256 over the policy files
            actor VARCHAR NOT NULL,
            error VARCHAR
        )""",
        "COMMENT ON TABLE retention_runs IS "
        "'One row per retention apply: when, by whom, against which policies and clock'",
        """CREATE TABLE retention_steps (
            run_id VARCHAR NOT NULL,
            step_no INTEGER NOT NULL,
            rule VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            action VARCHAR NOT NULL,            -- delete | anonymize | review
            columns VARCHAR[],                  -- anonymized columns
            predicate VARCHAR NOT NULL,         -- the WHERE clause, placeholders only
            cutoff TIMESTAMPTZ,                 -- rows whose clock is before it are due
            planned_rows BIGINT NOT NULL,
            held_rows BIGINT NOT NULL,
            rows_affected BIGINT NOT NULL,
            batches INTEGER NOT NULL,
            in_flight BIGINT,                   -- due rows before the batch now running
            status VARCHAR NOT NULL,            -- pending | done | skipped | failed
            note VARCHAR,
            done_at TIMESTAMPTZ,
            PRIMARY KEY (run_id, step_no)
        )""",
        "COMMENT ON TABLE retention_steps IS "
        "'The retention journal: one row per rule and table of a run, its counts and "
        "progress, so that a killed run resumes without redoing or missing rows'",
        """CREATE TABLE retention_decisions (
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            decided_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR,                     -- the run it was recorded for (NULL: plan)
            deciding VARCHAR,                   -- the rule or hold that decides
            explanation JSON NOT NULL,          -- every rule considered and why it applies
            PRIMARY KEY (source, table_name, decided_at)
        )""",
        "COMMENT ON TABLE retention_decisions IS "
        "'How the conflict rule resolved the retention rules of each table, and when'",
    )),
    Migration(7, "compliance audit runs, their checks and rendered reports", (
        """CREATE TABLE audit_runs (
            run_id VARCHAR PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            status VARCHAR NOT NULL,            -- running | passed | warnings | failed | error
            actor VARCHAR NOT NULL,
            orchestrator_run_id VARCHAR,        -- e.g. the Dagster run id, when run there
            inventory_path VARCHAR,
            inventory_digest VARCHAR,           -- sha256 of the inventory audited
            processing_digest VARCHAR,          -- sha256 of processing.yaml, when there was one
            as_of DATE NOT NULL,                -- the day deadlines and retention were judged on
            counts JSON,                        -- checks by status and severity
            metrics JSON,                       -- figures the trend charts plot
            snapshot JSON,                      -- data map, requests, records: masked only
            error VARCHAR
        )""",
        "COMMENT ON TABLE audit_runs IS "
        "'One row per compliance audit run: when, over what, outcome, and the masked "
        "snapshot its report is rendered from'",
        """CREATE TABLE audit_checks (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            check_id VARCHAR NOT NULL,
            title VARCHAR NOT NULL,
            status VARCHAR NOT NULL,            -- pass | warn | fail | error | not_applicable
            severity VARCHAR NOT NULL,          -- critical | high | medium | low | info
            articles VARCHAR[] NOT NULL,        -- e.g. GDPR Art. 32(1)(a), PIPL Art. 51
            source VARCHAR,
            table_name VARCHAR,
            column_name VARCHAR,
            evidence JSON,                      -- counts and masked samples only
            remediation VARCHAR,
            engine VARCHAR NOT NULL,            -- great_expectations | store | provider
            PRIMARY KEY (run_id, seq)
        )""",
        "COMMENT ON TABLE audit_checks IS "
        "'One row per check outcome of an audit run (one check may give one row per column)'",
        """CREATE TABLE audit_reports (
            run_id VARCHAR NOT NULL,
            format VARCHAR NOT NULL,            -- html | md | json
            rendered_at TIMESTAMPTZ NOT NULL,
            sha256 VARCHAR NOT NULL,
            bytes BIGINT NOT NULL,
            content VARCHAR NOT NULL,           -- the report as written (masked data only)
            PRIMARY KEY (run_id, format, rendered_at)
        )""",
        "COMMENT ON TABLE audit_reports IS "
        "'One row per report rendered from an audit run, with its content and hash'",
    )),
    Migration(8, "index on subject_keys.subject: crypto-shredding and its check read one "
                 "subject's keys", (
        "CREATE INDEX subject_keys_subject ON subject_keys (subject)",
    )),
    Migration(9, "the process running each scan, so a scan whose process was killed is "
                 "marked interrupted", (
        "ALTER TABLE scan_runs ADD COLUMN worker VARCHAR",   # host:pid of the scanning process
    )),
    Migration(10, "the plan an approval approves: whose rows and which changes", (
        "ALTER TABLE dsar_requests ADD COLUMN approved_plan VARCHAR",
        "COMMENT ON COLUMN dsar_requests.approved_plan IS "
        "'JSON: keyed fingerprints of the person rows and the (source, table, action) of the "
        "changes in the plan the approver reviewed; a run whose plan differs stops. No value'",
    )),
)

SCHEMA_VERSION = max(m.version for m in MIGRATIONS)
