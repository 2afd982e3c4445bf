-- Deliveries and their envelopes (both sides), the consumer's vault, applications,
-- receipts and the outbox of messages that must reach a peer.
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL REFERENCES agreements (agreement_id),
    role TEXT NOT NULL CHECK (role IN ('provider', 'consumer')),
    number INTEGER NOT NULL,         -- 1 for the agreement's first delivery, ...
    start_document TEXT NOT NULL,    -- provider-signed delivery-start (SignedDoc JSON)
    end_document TEXT,               -- provider-signed delivery-end, once complete
    started_at INTEGER NOT NULL,
    completed_at INTEGER,
    envelopes INTEGER NOT NULL DEFAULT 0,
    rows INTEGER NOT NULL DEFAULT 0,
    last_digest TEXT NOT NULL DEFAULT '',
    reads INTEGER NOT NULL DEFAULT 0,
    destroyed_at INTEGER,            -- consumer: when destroyed; provider: when a receipt says so
    destroy_reason TEXT
);
CREATE INDEX deliveries_by_agreement ON deliveries (agreement_id, started_at);

CREATE TABLE envelopes (
    delivery_id TEXT NOT NULL REFERENCES deliveries (delivery_id),
    seq INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    digest TEXT NOT NULL,            -- SHA-256 hex of the plaintext batch
    PRIMARY KEY (delivery_id, seq)
) WITHOUT ROWID;

-- Consumer: each received batch, re-encrypted under its agreement's vault key.
CREATE TABLE vault_batches (
    delivery_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    agreement_id TEXT NOT NULL,
    rows INTEGER NOT NULL,
    sealed BLOB NOT NULL,            -- SecretBox(nonce || ciphertext) of the batch
    PRIMARY KEY (delivery_id, seq)
) WITHOUT ROWID;

CREATE TABLE vault_keys (
    agreement_id TEXT PRIMARY KEY,
    wrapped_key BLOB NOT NULL        -- the agreement's key, sealed under the node's vault key
);

CREATE TABLE apps (
    app_id TEXT PRIMARY KEY,
    credential_hash BLOB NOT NULL,   -- SHA-256 of the credential; the credential is never kept
    added_at INTEGER NOT NULL
);

CREATE TABLE receipts (
    receipt_id TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('provider', 'consumer')),
    document TEXT NOT NULL,          -- consumer-signed destruction-receipt
    created_at INTEGER NOT NULL,
    acknowledged_at INTEGER
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    peer_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('countersign', 'receipt', 'revocation')),
    document TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    delivered_at INTEGER
);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
