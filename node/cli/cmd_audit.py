"""The audit commands: export a node's log, verify exported logs, write the HTML report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.cli import exits
from node.cli.output import Output
from node.errors import UsageError

if TYPE_CHECKING:
    from node.auditor.verify import Verification


def register(sub: Any) -> None:
    from node.cli.main import add_command

    audit = sub.add_parser("audit", help="Export, verify and report on audit logs.",
                           description="Export, verify and report on audit logs.")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    p = add_command(audit_sub, "export", "Export this node's audit log for an auditor.")
    p.add_argument("--out", required=True, metavar="FILE", help="the export file to write")
    p.set_defaults(run=run_export)

    p = add_command(audit_sub, "verify", "Verify exported logs offline, trusting only the "
                    "given cards (exit 4 with findings).", home=False)
    _verification_arguments(p)
    p.set_defaults(run=run_verify)

    p = add_command(audit_sub, "report", "Verify exported logs and write a self-contained "
                    "HTML report (exit 4 with findings).", home=False)
    _verification_arguments(p)
    p.add_argument("--html", required=True, metavar="FILE", help="the report file to write")
    p.set_defaults(run=run_report)


def _verification_arguments(p: argparse.ArgumentParser) -> None:
    from node.auditor import DEFAULT_GRACE_S

    p.add_argument("logs", nargs="+", metavar="LOG", help="an export made by 'audit export'")
    p.add_argument("--card", action="append", default=[], metavar="CARD",
                   help="a node card to trust, as 'card' printed it (repeatable)")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                   help=f"how late a destruction may be (default {DEFAULT_GRACE_S} s)")


def run_export(args: argparse.Namespace, out: Output) -> int:
    from node.audit_export import export_log
    from node.cli.cmd_node import open_home

    summary = export_log(open_home(args), Path(args.out))
    out.result({"out": str(summary.path), "node_id": summary.node_id,
                "entries": summary.entries, "checkpoints": summary.checkpoints,
                "cosigned": summary.cosigned, "peer_checkpoints": summary.peer_checkpoints},
               f"exported {summary.entries} entries, {summary.checkpoints} checkpoints, "
               f"{summary.cosigned + summary.peer_checkpoints} cosigned checkpoints to "
               f"{summary.path}")
    return exits.OK


def run_verify(args: argparse.Namespace, out: Output) -> int:
    verification = _verify(args)
    if out.as_json:
        print(json.dumps(verification.to_dict(), sort_keys=True, ensure_ascii=False))
    else:
        _print_findings(verification)
    return exits.OK if verification.clean else exits.FINDINGS


def run_report(args: argparse.Namespace, out: Output) -> int:
    from node.auditor.findings import count
    from node.auditor.report import write_report

    verification = _verify(args)
    path = Path(args.html)
    write_report(verification, path)
    out.result({"html": str(path), "clean": verification.clean,
                "findings": len(verification.findings),
                "agreements": [a.agreement_id for a in verification.agreements]},
               f"wrote the audit report to {path}: "
               f"{count(len(verification.agreements), 'agreement')}, "
               f"{count(len(verification.findings), 'finding')}")
    return exits.OK if verification.clean else exits.FINDINGS


def _verify(args: argparse.Namespace) -> Verification:
    from node.auditor.verify import verify

    if args.grace < 0:
        raise UsageError(f"--grace must be zero or more seconds; found {args.grace:g}")
    return verify([Path(p) for p in args.logs], [Path(c) for c in args.card],
                  grace_s=args.grace)


def _print_findings(verification: Verification) -> None:
    from node.auditor.findings import STEPS, count

    for step, title in STEPS.items():
        mine = [f for f in verification.findings if f.step == step]
        print(f"step {step}, {title}: " + (count(len(mine), "finding") if mine else "passed"))
        for finding in mine:
            print(f"  {finding.line()}")
    total = len(verification.findings)
    print(f"{count(len(verification.logs), 'log')}, "
          f"{count(verification.entries, 'entry', 'entries')}, "
          f"{count(len(verification.agreements), 'agreement')}: "
          + ("clean" if not total else count(total, "finding")))
