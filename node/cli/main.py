"""The ``trustspace`` command: parses arguments, runs one command, maps errors to exits.

Each group of commands lives in its own module and registers its subcommands here. Only
:class:`node.errors.TrustspaceError` is caught as an expected failure; anything else is a
bug, reported in one line (with ``TRUSTSPACE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from node.cli import exits
from node.cli.output import Output
from node.errors import TrustspaceError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """A usage mistake is one line too; the usage itself is one --help away."""
        print(f"error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(exits.BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from node.cli import cmd_audit, cmd_contract, cmd_data, cmd_flow, cmd_node

    parser = _Parser(prog="trustspace", description="A node of a trusted data space.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="COMMAND")
    for module in (cmd_node, cmd_data, cmd_contract, cmd_flow, cmd_audit):
        module.register(sub)
    return parser


def add_command(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                name: str, help_text: str, *, home: bool = True) -> argparse.ArgumentParser:
    """A subcommand with HOME first and --json, as every command has."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    if home:
        parser.add_argument("home", metavar="HOME", help="the node's home folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC's own log lines (e.g. a failed bind) would break "one line per error" on stderr;
    # the command reports every failure itself. GRPC_VERBOSITY=ERROR brings them back.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(getattr(args, "json", False))
    try:
        code = args.run(args, out)
        return int(code or 0)
    except TrustspaceError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return exits.exit_code_of(e)
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`)
        sys.stderr.close()
        return exits.FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 — a bug: one line for the user, details on request
        if os.environ.get("TRUSTSPACE_DEBUG"):
            traceback.print_exc()
        print(f"error: internal failure ({type(e).__name__}); run again with "
              "TRUSTSPACE_DEBUG=1 to see where", file=sys.stderr)
        return exits.FAILED


if __name__ == "__main__":
    sys.exit(main())
