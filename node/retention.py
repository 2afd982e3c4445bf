"""The running consumer's timed destruction.

Destroys deliveries whose retention ran out, deliveries read ``max_reads`` times (should a
crash have come between the last read and its destruction) and the data of revoked
agreements, each with its receipt.
"""

from __future__ import annotations

from node.agreements import load_agreement
from node.audit import now_ms
from node.destruction import destroy_held
from node.home import Home


def destroy_due(home: Home) -> int:
    """Destroy whatever is due now; returns how many destructions ran.

    A delivery that was cut off and never resumed holds rows too: its retention runs from
    when it started, so it cannot outlive its deadline by never completing.
    """
    now = now_ms()
    done = 0
    rows = home.conn.execute(
        "SELECT d.delivery_id, d.agreement_id, coalesce(d.completed_at, d.started_at), d.reads, "
        "a.state FROM deliveries d JOIN agreements a USING (agreement_id) "
        "WHERE d.role = 'consumer' AND d.destroyed_at IS NULL").fetchall()
    revoked: set[str] = set()
    for delivery_id, agreement_id, received_at, reads, state in rows:
        if state == "revoked":
            revoked.add(agreement_id)
            continue
        terms = load_agreement(home, agreement_id).agreement.terms
        if reads >= terms.max_reads:
            done += destroy_held(home, agreement_id, "max_reads", [delivery_id]) is not None
        elif received_at + terms.retention * 1000 <= now:
            done += destroy_held(home, agreement_id, "retention", [delivery_id]) is not None
    # revoked, rows gone, key still there; the keys lead (CROSS JOIN keeps that order): a
    # provider holds none, and scanning its every agreement each tick cost it 2% of its CPU
    revoked.update(r[0] for r in home.conn.execute(
        "SELECT agreement_id FROM vault_keys CROSS JOIN agreements USING (agreement_id) "
        "WHERE role = 'consumer' AND state = 'revoked'"))
    for agreement_id in sorted(revoked):
        done += destroy_held(home, agreement_id, "revoked") is not None
    return done
