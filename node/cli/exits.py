"""The one mapping from product errors to the command's exit codes."""

from __future__ import annotations

from node.errors import TrustspaceError

OK = 0
FAILED = 1  # the node or a peer could not do it (unreachable, internal): try again later
BAD_INPUT = 2
REFUSED = 3
FINDINGS = 4

_BY_KIND = {
    "bad_input": BAD_INPUT,
    "not_found": BAD_INPUT,
    "conflict": BAD_INPUT,
    "refused": REFUSED,
    "unauthenticated": REFUSED,
    "findings": FINDINGS,
    "unavailable": FAILED,
    "internal": FAILED,
}


def exit_code_of(error: TrustspaceError) -> int:
    return _BY_KIND[error.kind]
