-- Datasets, offers, negotiation requests and agreements.
CREATE TABLE datasets (
    dataset_id TEXT PRIMARY KEY,
    classification TEXT NOT NULL,
    fields TEXT NOT NULL,           -- JSON list of field names, in file order
    types TEXT NOT NULL,            -- JSON object field -> inferred type
    row_count INTEGER NOT NULL,
    row_table TEXT NOT NULL,        -- table holding the rows, columns c0..cN in field order
    source_digest TEXT NOT NULL,    -- SHA-256 of the imported file
    added_at INTEGER NOT NULL
);

CREATE TABLE offers (
    offer_id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL REFERENCES datasets (dataset_id),
    terms TEXT NOT NULL,            -- canonical JSON of the policy terms
    added_at INTEGER NOT NULL
);

CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('provider', 'consumer')),
    peer_id TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    document TEXT NOT NULL,         -- the consumer-signed request (SignedDoc JSON)
    state TEXT NOT NULL CHECK (state IN ('pending', 'agreed', 'rejected')),
    reasons TEXT NOT NULL DEFAULT '[]',
    agreement_id TEXT,
    created_at INTEGER NOT NULL,
    decided_at INTEGER
);
CREATE INDEX requests_by_state ON requests (role, state);

CREATE TABLE agreements (
    agreement_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('provider', 'consumer')),
    peer_id TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    app TEXT NOT NULL,
    document TEXT NOT NULL,         -- SignedDoc JSON with the signatures held so far
    state TEXT NOT NULL CHECK (state IN ('awaiting_countersignature', 'active', 'revoked')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revocation TEXT,                -- the provider-signed revocation (SignedDoc JSON)
    hash_key BLOB                   -- provider only: key of this agreement's pseudonyms
);
