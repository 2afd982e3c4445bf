-- Counterparty cosigning of audit checkpoints (connector/audit_exchange.py).

-- Our own checkpoints as we offered them to a peer, and as it returned them cosigned.
CREATE TABLE audit_cosignatures (
    peer_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    note TEXT,                      -- our checkpoint with the peer's cosignature; NULL until it came back
    offered_at INTEGER NOT NULL,
    cosigned_at INTEGER,
    PRIMARY KEY (peer_id, size)
);

-- The consistency proof each held peer checkpoint was accepted with (from the one held before),
-- kept so that an auditor holding only this node's export can check the peer's checkpoints.
ALTER TABLE audit_peer_checkpoints ADD COLUMN proof_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_peer_checkpoints ADD COLUMN proof BLOB NOT NULL DEFAULT x'';
