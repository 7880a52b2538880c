-- The stores several `custody serve` replicas share (server/src/store/pg/). Applied once, in
-- one transaction, by the first server to connect (under an advisory lock); recorded in
-- schema_migrations. Never edit an applied migration: add the next file.

-- The custody log: one row per entry, at its RFC 9162 leaf position. Positions are taken
-- under the one log_state row (SELECT ... FOR UPDATE), never from a sequence: a sequence
-- leaves gaps when a transaction rolls back, and the log must have none.
CREATE TABLE log_entries (
    position  BIGINT PRIMARY KEY CHECK (position >= 0),
    entry     BYTEA  NOT NULL,
    -- SHA-256(0x00 || entry), the RFC 9162 leaf hash, for an auditor reading the table.
    leaf_hash BYTEA  NOT NULL CHECK (length(leaf_hash) = 32)
);

-- The number of entries: the row every append locks, so appends from all replicas form one
-- sequence with no gap and no position used twice.
CREATE TABLE log_state (
    one  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    size BIGINT  NOT NULL CHECK (size >= 0)
);
INSERT INTO log_state (one, size) VALUES (TRUE, 0);

-- Signed tree heads, one per tree size (heads of one size from several replicas sign the
-- same root; the first kept is as good as any).
CREATE TABLE log_heads (
    tree_size BIGINT PRIMARY KEY,
    head      BYTEA  NOT NULL
);

-- The index of stored records: a cache, rebuilt from the records and the log.
CREATE TABLE index_records (
    recording   BYTEA    NOT NULL CHECK (length(recording) = 16),
    seq         BIGINT   NOT NULL,
    kind        SMALLINT NOT NULL,
    record_hash TEXT     NOT NULL,
    prev        TEXT,
    log_index   BIGINT,
    receipt     TEXT,
    PRIMARY KEY (recording, seq)
);

CREATE TABLE index_owners (
    recording BYTEA PRIMARY KEY CHECK (length(recording) = 16),
    device    BYTEA NOT NULL CHECK (length(device) = 32)
);

CREATE TABLE index_state (
    one      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    log_size BIGINT
);

-- One-time enrollment tokens, by SHA-256 of the token (the token itself is never stored).
-- spent_by is set once, by the UPDATE ... WHERE spent_by IS NULL that wins.
CREATE TABLE tokens (
    hash          BYTEA  PRIMARY KEY CHECK (length(hash) = 32),
    label         TEXT   NOT NULL,
    issued_at_us  BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    spent_by      BYTEA  CHECK (length(spent_by) = 32)
);

-- Legal-team members, by SHA-256 of their API token; a name is taken once.
CREATE TABLE members (
    hash          BYTEA  PRIMARY KEY CHECK (length(hash) = 32),
    name          TEXT   NOT NULL UNIQUE,
    role          TEXT   NOT NULL CHECK (role IN ('admin', 'member')),
    created_at_us BIGINT NOT NULL,
    -- The order members were added in (gaps are harmless here).
    added         BIGINT GENERATED ALWAYS AS IDENTITY
);

-- Request nonces inside the freshness window: the key refuses a replay through any
-- replica, and after a restart. Rows older than the window are deleted now and then.
CREATE TABLE nonces (
    device       BYTEA  NOT NULL CHECK (length(device) = 32),
    nonce        BYTEA  NOT NULL CHECK (length(nonce) = 16),
    timestamp_us BIGINT NOT NULL,
    PRIMARY KEY (device, nonce)
);
CREATE INDEX nonces_by_time ON nonces (timestamp_us);
