"""Commands of contract negotiation: negotiate, requests, approve, reject, agreements."""

from __future__ import annotations

import argparse
import time
from typing import Any

from node.cli import exits
from node.cli.cmd_node import open_home
from node.cli.output import Output
from node.errors import BadInput, PolicyRefused, TrustspaceError
from policies.durations import format_duration, parse_duration
from policies.evaluate import Request


def register(sub: Any) -> None:
    from node.cli.main import add_command

    p = add_command(sub, "negotiate", "Ask a peer for an agreement on one of its offers.")
    p.add_argument("peer", metavar="PEER", help="the provider's name")
    p.add_argument("offer_id", metavar="OFFER_ID")
    p.add_argument("--purpose", required=True, help="one of the offer's purposes")
    p.add_argument("--app", required=True, help="the local application that will read the data")
    p.add_argument("--fields", help="comma-separated subset of the offered fields")
    p.add_argument("--max-deliveries", type=int, metavar="N")
    p.add_argument("--period", metavar="D", help="with --max-deliveries, e.g. 1d")
    p.add_argument("--retention", metavar="D", help="e.g. 7d")
    p.add_argument("--max-reads", type=int, metavar="N")
    p.add_argument("--valid-for", metavar="D", help="agreement lifetime, e.g. 30d")
    p.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                   help="how long to wait for a manual approval (default 10)")
    p.set_defaults(run=run_negotiate)

    p = add_command(sub, "requests", "Requests waiting for this provider's approval.")
    p.set_defaults(run=run_requests)
    p = add_command(sub, "approve", "Approve a waiting request; the agreement is signed.")
    p.add_argument("request_id", metavar="REQUEST_ID")
    p.set_defaults(run=run_approve)
    p = add_command(sub, "reject", "Reject a waiting request, with a reason for the consumer.")
    p.add_argument("request_id", metavar="REQUEST_ID")
    p.add_argument("--reason", required=True, help="why, in one sentence")
    p.set_defaults(run=run_reject)

    p = add_command(sub, "agreements", "This node's agreements and undecided requests.")
    p.set_defaults(run=run_agreements)


def _duration(value: str | None, key: str) -> int | None:
    return None if value is None else parse_duration(value, key=key)


def run_negotiate(args: argparse.Namespace, out: Output) -> int:
    from connector.consumer import negotiate

    if (args.max_deliveries is None) != (args.period is None):
        raise BadInput("--max-deliveries and --period go together")
    fields = None
    if args.fields is not None:
        fields = tuple(f.strip() for f in args.fields.split(",") if f.strip())
        if not fields:
            raise BadInput("--fields must name at least one field")
    request = Request(purpose=args.purpose, app=args.app, fields=fields,
                      max_deliveries=args.max_deliveries,
                      period=_duration(args.period, "period"),
                      retention=_duration(args.retention, "retention"),
                      max_reads=args.max_reads, valid_for=_duration(args.valid_for, "valid_for"))
    result = negotiate(open_home(args), args.peer, args.offer_id, request, wait_s=args.wait)
    if result.state == "rejected":
        raise PolicyRefused(f"{args.peer} refused: {result.reason}")
    if result.state == "pending":
        out.result({"request_id": result.request_id, "state": "pending"},
                   f"request {result.request_id} waits for {args.peer}'s approval; "
                   "'trustspace agreements' shows it once decided")
        return exits.OK
    assert result.agreement is not None
    agreement = result.agreement.agreement
    terms = agreement.terms
    out.result({"request_id": result.request_id, "state": "agreed",
                "agreement_id": agreement.agreement_id, "terms": terms.to_dict(),
                "expires_at": agreement.expires_at},
               f"agreed with {args.peer}: fields {', '.join(terms.field_names)}; "
               f"{terms.max_deliveries} per {format_duration(terms.period)}, retention "
               f"{format_duration(terms.retention)}, {terms.max_reads} reads",
               agreement.agreement_id)
    return exits.OK


def run_requests(args: argparse.Namespace, out: Output) -> int:
    from node.negotiation import pending_requests
    from node.peers import peer_by_id

    home = open_home(args)
    rows = []
    for r in pending_requests(home, "provider"):
        rows.append({**r, "peer": peer_by_id(home, r["peer_id"], include_removed=True).name})
    out.table("requests", rows, ["request_id", "peer", "offer_id", "purpose", "app"],
              "no requests wait for approval")
    return exits.OK


def run_approve(args: argparse.Namespace, out: Output) -> int:
    from node.negotiation import approve

    doc = approve(open_home(args), args.request_id)
    agreement_id = doc.body()["agreement_id"]
    out.result({"request_id": args.request_id, "agreement_id": agreement_id},
               f"approved {args.request_id}; agreement {agreement_id} awaits the consumer's "
               "countersignature", agreement_id)
    return exits.OK


def run_reject(args: argparse.Namespace, out: Output) -> int:
    from node.negotiation import reject

    reject(open_home(args), args.request_id, args.reason)
    out.result({"request_id": args.request_id, "state": "rejected"},
               f"rejected {args.request_id}")
    return exits.OK


def run_agreements(args: argparse.Namespace, out: Output) -> int:
    from node.agreements import list_agreements
    from node.destruction import overdue
    from node.negotiation import requests_in_state
    from node.peers import peer_by_id

    home = open_home(args)
    if requests_in_state(home, "consumer", "pending"):  # ask their providers, over gRPC
        from connector.consumer import poll_pending_requests

        try:
            poll_pending_requests(home)
        except TrustspaceError:
            pass  # an unreachable provider leaves the request pending; the listing works
    rows = []
    now = int(time.time() * 1000)
    for stored in list_agreements(home):
        a = stored.agreement
        peer = peer_by_id(home, stored.peer_id, include_removed=True).name
        count, held = home.conn.execute(
            "SELECT count(*), coalesce(sum(destroyed_at IS NULL AND completed_at IS NOT NULL), 0)"
            " FROM deliveries WHERE agreement_id = ?", (a.agreement_id,)).fetchone()
        late = overdue(home, a, stored.revoked_at) if stored.role == "provider" else []
        state = stored.state
        if state == "active" and a.expires_at <= now:
            state = "expired"
        rows.append({"agreement_id": a.agreement_id, "role": stored.role, "peer": peer,
                     "offer_id": a.offer_id, "app": a.terms.app, "state": state,
                     "deliveries": count, "held": held,
                     "destruction_overdue": len(late), "overdue_deliveries": late,
                     "expires_at": a.expires_at})
    for state in ("pending", "rejected"):  # a consumer's requests that became no agreement
        for r in requests_in_state(home, "consumer", state):
            rows.append({"agreement_id": "-", "request_id": r["request_id"], "role": "consumer",
                         "peer": peer_by_id(home, r["peer_id"], include_removed=True).name,
                         "offer_id": r["offer_id"], "app": r["app"], "state": state,
                         "reason": "; ".join(x["message"] for x in r["reasons"])})
    out.table("agreements", rows, ["agreement_id", "role", "peer", "offer_id", "app", "state",
                                   "deliveries", "destruction_overdue", "reason"],
              "no agreements")
    return exits.OK
