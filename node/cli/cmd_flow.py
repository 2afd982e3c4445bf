"""Commands that move or end data: fetch, app add, read, destroy, revoke."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from node.cli import exits
from node.cli.cmd_node import open_home
from node.cli.output import Output
from node.faults import crash_point


def register(sub: Any) -> None:
    from node.cli.main import add_command

    p = add_command(sub, "fetch", "Fetch one delivery of an agreement into the vault.")
    p.add_argument("agreement_id", metavar="AGREEMENT_ID")
    p.set_defaults(run=run_fetch)

    app = sub.add_parser("app", help="Register consuming applications.",
                         description="Register consuming applications.")
    app_sub = app.add_subparsers(dest="app_command", required=True, metavar="ACTION")
    p = add_command(app_sub, "add", "Register an application; prints its credential once.")
    p.add_argument("app_id", metavar="APP_ID")
    p.set_defaults(run=run_app_add)

    p = add_command(sub, "read", "Read the newest delivery of an agreement, as an application.")
    p.add_argument("agreement_id", metavar="AGREEMENT_ID")
    p.add_argument("--app", required=True, metavar="APP_ID")
    p.add_argument("--token", required=True, metavar="TOKEN", help="the application's credential")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.set_defaults(run=run_read)

    p = add_command(sub, "destroy", "Destroy an agreement's data now and send the receipt.")
    p.add_argument("agreement_id", metavar="AGREEMENT_ID")
    p.set_defaults(run=run_destroy)

    p = add_command(sub, "revoke", "Stop an agreement; the consumer must destroy its data.")
    p.add_argument("agreement_id", metavar="AGREEMENT_ID")
    p.add_argument("--reason", default="revoked by the provider")
    p.set_defaults(run=run_revoke)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal; nothing when stderr is not one."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("fetching"), BarColumn(), TextColumn("{task.completed:,}/"
                  "{task.total:,} rows"), TimeRemainingColumn(), transient=True) as progress:
        task = progress.add_task("fetch", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def run_fetch(args: argparse.Namespace, out: Output) -> int:
    from connector.consumer import fetch

    home = open_home(args)
    with _progress_bar(not out.as_json) as progress:
        result = fetch(home, args.agreement_id, progress)
    out.result({"agreement_id": result.agreement_id, "delivery_id": result.delivery_id,
                "rows": result.rows, "envelopes": result.envelopes, "resumed": result.resumed},
               f"{'resumed and completed' if result.resumed else 'fetched'} delivery "
               f"{result.delivery_id}: {result.rows} rows in {result.envelopes} envelopes, "
               "stored encrypted in the vault")
    return exits.OK


def run_app_add(args: argparse.Namespace, out: Output) -> int:
    from node.apps import add_app

    credential = add_app(open_home(args), args.app_id)
    out.result({"app_id": args.app_id, "credential": credential},
               f"registered application {args.app_id}; its credential is shown only now:",
               credential)
    return exits.OK


def run_read(args: argparse.Namespace, out: Output) -> int:
    from node.apps import begin_read, finish_read, rows_of

    home = open_home(args)
    release = begin_read(home, args.agreement_id, args.app, args.token)
    crash_point("read.counted")
    fields = release.fields
    stdout = sys.stdout
    if args.format == "csv":
        writer = csv.writer(stdout, lineterminator="\n")
        writer.writerow(fields)
        for row in rows_of(home, release):
            writer.writerow(["" if v is None else v for v in row])
    else:
        for row in rows_of(home, release):
            stdout.write(json.dumps(dict(zip(fields, row, strict=True)), ensure_ascii=False))
            stdout.write("\n")
    stdout.flush()
    crash_point("read.output")
    receipt = finish_read(home, release)
    sent = False
    if receipt is not None:  # the last permitted read destroyed the delivery: send the proof
        from connector.outbox_sender import flush_outbox

        sent = flush_outbox(home, receipt.body()["provider"]) > 0
    print(f"read {release.rows} rows of delivery {release.delivery_id} "
          f"(read {release.read_number} of {release.max_reads})"
          + ("" if receipt is None else "; the delivery is now destroyed and the receipt "
             + ("acknowledged" if sent else "will be sent when the provider is reachable")),
          file=sys.stderr)
    return exits.OK


def run_destroy(args: argparse.Namespace, out: Output) -> int:
    from connector.outbox_sender import flush_outbox
    from node.destruction import destroy

    home = open_home(args)
    receipt = destroy(home, args.agreement_id, "requested")
    crash_point("destroy.destroyed")
    body = receipt.body()
    sent = flush_outbox(home, body["provider"]) > 0
    out.result({"agreement_id": args.agreement_id, "receipt_id": body["receipt_id"],
                "rows": body["rows"], "deliveries": len(body["deliveries"]),
                "receipt_delivered": sent},
               f"destroyed {body['rows']} rows of agreement {args.agreement_id} and its key; "
               + ("the provider acknowledged the receipt" if sent else
                  "the receipt will be sent when the provider is reachable"))
    return exits.OK


def run_revoke(args: argparse.Namespace, out: Output) -> int:
    from connector.outbox_sender import flush_outbox
    from node.revocation import revoke

    home = open_home(args)
    doc = revoke(home, args.agreement_id, args.reason)
    crash_point("revoke.revoked")
    notified = flush_outbox(home, doc.body()["consumer"]) > 0
    out.result({"agreement_id": args.agreement_id, "revoked": True,
                "consumer_notified": notified},
               f"revoked agreement {args.agreement_id}; "
               + ("the consumer was notified and destroys its data" if notified else
                  "the consumer will be notified when reachable"))
    return exits.OK
