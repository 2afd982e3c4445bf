-- The node's own state: key-value facts about the node, trusted peers, seen call nonces,
-- and the audit log (entries and signed checkpoints).
CREATE TABLE node_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE peers (
    node_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    domain TEXT NOT NULL,
    address TEXT NOT NULL,
    card TEXT NOT NULL,            -- the signed card as given, JSON
    added_at INTEGER NOT NULL,
    removed_at INTEGER              -- NULL while trusted
);

CREATE TABLE seen_nonces (
    node_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at INTEGER NOT NULL,       -- unix milliseconds of the call's timestamp
    PRIMARY KEY (node_id, nonce)
) WITHOUT ROWID;
CREATE INDEX seen_nonces_by_time ON seen_nonces (seen_at);

CREATE TABLE audit_entries (
    seq INTEGER PRIMARY KEY,        -- 0, 1, 2, ... without gaps
    time INTEGER NOT NULL,          -- unix milliseconds
    kind TEXT NOT NULL,
    entry BLOB NOT NULL,            -- canonical bytes of the entry (node/audit_format.py)
    hash BLOB NOT NULL              -- RFC 9162 leaf hash of entry
);

CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,       -- number of entries covered
    root BLOB NOT NULL,
    note TEXT NOT NULL,             -- signed note (C2SP tlog-checkpoint)
    frontier BLOB NOT NULL,         -- compact range at this size, to extend the tree cheaply
    time INTEGER NOT NULL
);

-- Checkpoints of counterparties, as they gave them and as we cosigned them.
CREATE TABLE audit_peer_checkpoints (
    peer_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,             -- the peer's checkpoint with our cosignature
    received_at INTEGER NOT NULL,
    PRIMARY KEY (peer_id, size)
);
