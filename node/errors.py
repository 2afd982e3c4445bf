"""One error base for the whole product.

Every refusal the node can give is a subclass of :class:`TrustspaceError` with a stable,
machine-readable ``code`` and one clear sentence. The CLI catches only this base and
maps ``kind`` to an exit code (``node/cli/exits.py``); the gRPC layer maps ``kind`` to a
status code (``connector/status.py``). Messages say what was expected and what was found,
and never contain keys, tokens or row contents.
"""

from __future__ import annotations

from typing import ClassVar, Literal

Kind = Literal["bad_input", "refused", "unauthenticated", "not_found", "conflict",
               "unavailable", "findings", "internal"]


class TrustspaceError(Exception):
    """Base of every error the product raises on purpose."""

    code: ClassVar[str] = "error"
    kind: ClassVar[Kind] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # Set where a refusal is written to the audit log under a kind of its own (e.g.
        # delivery.refused), so the connector does not write it again as call.refused.
        self.recorded = False

    def __str__(self) -> str:
        return self.message


# --- bad input: an operator's or a file's mistake (exit 2, INVALID_ARGUMENT) -------------
class BadInput(TrustspaceError):
    code = "bad_input"
    kind: ClassVar[Kind] = "bad_input"


class UsageError(BadInput):
    code = "usage"


class InvalidHome(BadInput):
    code = "invalid_home"


class MalformedFile(BadInput):
    code = "malformed_file"


class InvalidTerms(BadInput):
    code = "invalid_terms"


class InvalidDuration(InvalidTerms):
    code = "invalid_duration"


class InvalidId(BadInput):
    code = "invalid_id"


class MalformedMessage(BadInput):
    code = "malformed_message"


# --- refusals: a policy, a peer or a contract says no (exit 3, PERMISSION_DENIED) ---------
class Refused(TrustspaceError):
    code = "refused"
    kind: ClassVar[Kind] = "refused"


class TermExceedsOffer(Refused):
    code = "term_exceeds_offer"


class PolicyRefused(Refused):
    code = "policy_refused"


class ClassificationRefused(Refused):
    code = "classification_refused"


class ContractRefused(Refused):
    code = "contract_refused"


class AccessDenied(Refused):
    code = "access_denied"


class UnknownPeer(Refused):
    code = "unknown_peer"
    kind: ClassVar[Kind] = "unauthenticated"


class BadSignature(Refused):
    code = "bad_signature"
    kind: ClassVar[Kind] = "unauthenticated"


class StaleCall(Refused):
    code = "stale_call"
    kind: ClassVar[Kind] = "unauthenticated"


class ReplayedCall(Refused):
    code = "replayed_call"
    kind: ClassVar[Kind] = "unauthenticated"


class DomainRefused(Refused):
    code = "domain_refused"


class EnvelopeTampered(Refused):
    code = "envelope_tampered"


class PeerUnavailable(Refused):
    code = "peer_unavailable"
    kind: ClassVar[Kind] = "unavailable"


# --- lookups and conflicts ---------------------------------------------------------------
class NotFound(TrustspaceError):
    code = "not_found"
    kind: ClassVar[Kind] = "not_found"


class AlreadyExists(TrustspaceError):
    code = "already_exists"
    kind: ClassVar[Kind] = "conflict"


# --- audit ---------------------------------------------------------------------------------
class AuditFindings(TrustspaceError):
    code = "audit_findings"
    kind: ClassVar[Kind] = "findings"


def all_error_classes() -> dict[str, type[TrustspaceError]]:
    """Every error class by its code, so a peer's refusal is raised again as the same class."""
    found: dict[str, type[TrustspaceError]] = {}
    stack: list[type[TrustspaceError]] = [TrustspaceError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


# --- transparency: Merkle proofs and signed notes ------------------------------------------
class InvalidProof(Refused):
    """A Merkle inclusion or consistency proof that does not prove what it claims."""

    code = "invalid_proof"


class BadNote(MalformedMessage):
    """A signed note, checkpoint or note verifier key that breaks the C2SP formats."""

    code = "bad_note"
