"""Consuming applications: registered with a credential, reading only their agreements.

The credential is shown once and only its SHA-256 is kept; it has 256 bits of entropy, so
a plain hash is enough, and it is compared in constant time. A read releases the newest
complete delivery of an agreement that names the application, counts toward
``max_reads``, and is audited with the application, the row count and the fields.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from node.agreements import load_agreement
from node.documents import SignedDoc
from node.errors import AccessDenied, AlreadyExists, ContractRefused, NotFound, TrustspaceError
from node.home import Home
from node.ids import check_id
from node.vault import batches, open_key

CREDENTIAL_PREFIX = "tsapp_"


def _hash(credential: str) -> bytes:
    return hashlib.sha256(credential.encode("utf-8")).digest()


def add_app(home: Home, app_id: str) -> str:
    """Register an application; returns its credential, which is never stored."""
    check_id(app_id, what="application id")
    if home.conn.execute("SELECT 1 FROM apps WHERE app_id = ?", (app_id,)).fetchone():
        raise AlreadyExists(f"application {app_id} is already registered")
    credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
    with home.change() as change:
        entry = change.audit.append("app.added", {"app": app_id})
        change.conn.execute("INSERT INTO apps (app_id, credential_hash, added_at) "
                            "VALUES (?, ?, ?)", (app_id, _hash(credential), entry.time))
    return credential


def authenticate(home: Home, app_id: str, credential: str) -> None:
    row = home.conn.execute("SELECT credential_hash FROM apps WHERE app_id = ?",
                            (app_id,)).fetchone()
    # compare against a dummy hash for unknown apps, so timing tells nothing either way
    stored = row[0] if row is not None else _hash("no such application")
    if not hmac.compare_digest(stored, _hash(credential)) or row is None:
        raise AccessDenied(f"application {app_id!r} is not registered or its credential is "
                           "wrong")


@dataclass(frozen=True)
class Release:
    """What one read releases: the delivery, its fields and how often it was read."""

    agreement_id: str
    delivery_id: str
    fields: tuple[str, ...]
    rows: int
    read_number: int
    max_reads: int

    @property
    def last_read(self) -> bool:
        return self.read_number >= self.max_reads


def begin_read(home: Home, agreement_id: str, app_id: str, credential: str) -> Release:
    """Check the application and the agreement, count and audit the read (one transaction)."""
    try:
        check_id(agreement_id, what="agreement id")
        check_id(app_id, what="application id")
        authenticate(home, app_id, credential)
        try:
            stored = load_agreement(home, agreement_id, role="consumer")
        except NotFound:
            raise AccessDenied(f"no agreement {agreement_id!r} on this node") from None
        terms = stored.agreement.terms
        if terms.app != app_id:
            raise AccessDenied(f"agreement {agreement_id} names another application, not "
                               f"{app_id}")
        if stored.state == "revoked":
            raise ContractRefused(f"agreement {agreement_id} was revoked")
        expired = stored.agreement.live_reason()  # the permission to use ends with the contract
        if expired:
            raise ContractRefused(expired + "; its data may no longer be read")
        row = home.conn.execute(
            "SELECT delivery_id, rows, reads FROM deliveries WHERE agreement_id = ? AND role = "
            "'consumer' AND completed_at IS NOT NULL AND destroyed_at IS NULL "
            "ORDER BY completed_at DESC LIMIT 1", (agreement_id,)).fetchone()
        if row is None:
            raise ContractRefused(f"agreement {agreement_id} has no delivery to read: fetch "
                                  "one, or it was destroyed")
        if row[2] >= terms.max_reads:
            raise ContractRefused(f"delivery {row[0]} was read {row[2]} times, its limit")
    except TrustspaceError as e:
        home.record("data.read_refused", {"agreement": agreement_id[:80], "app": app_id[:80],
                                          "reason": e.code})
        raise
    with home.change() as change:
        # counted under the write lock: two reads at once cannot both take the last one
        counted = change.conn.execute(
            "UPDATE deliveries SET reads = reads + 1 WHERE delivery_id = ? AND reads = ? "
            "AND destroyed_at IS NULL", (row[0], row[2])).rowcount
        if not counted:
            raise ContractRefused(f"delivery {row[0]} was read or destroyed meanwhile; "
                                  "read again")
        change.audit.append("data.read", {
            "agreement": agreement_id, "delivery": row[0], "app": app_id, "rows": row[1],
            "fields": list(terms.field_names), "read_number": row[2] + 1})
    return Release(agreement_id, row[0], terms.field_names, row[1], row[2] + 1,
                   terms.max_reads)


def rows_of(home: Home, release: Release) -> Iterator[list[Any]]:
    """The released rows, one batch decrypted at a time (bounded memory).

    They come from one snapshot of the vault, a read transaction on a connection of their
    own: the running node destroys a delivery read ``max_reads`` times, also while its last
    read is still being written out to a slow application, and that must not cut it short.
    """
    snapshot = Home(home.path, home.config, home.keys)
    try:
        snapshot.conn.execute("BEGIN")  # deferred: the first SELECT fixes the snapshot
        held = snapshot.conn.execute("SELECT destroyed_at IS NULL FROM deliveries WHERE "
                                     "delivery_id = ?", (release.delivery_id,)).fetchone()
        if not held or not held[0]:
            raise ContractRefused(f"delivery {release.delivery_id} was destroyed before it "
                                  "could be read")
        box = open_key(snapshot, release.agreement_id)
        for plaintext in batches(snapshot, box, release.delivery_id):
            yield from json.loads(plaintext)
    finally:
        snapshot.close()  # ends the read transaction


def finish_read(home: Home, release: Release) -> SignedDoc | None:
    """After the last permitted read, the delivery is destroyed and its receipt queued."""
    if not release.last_read:
        return None
    from node.destruction import destroy_held

    # None when the running node's timed work destroyed it first, while the rows went out
    return destroy_held(home, release.agreement_id, "max_reads", [release.delivery_id])


class AppReader:
    """The application API: what ``trustspace read`` does, for a Python program.

    >>> reader = AppReader(home_path, "scoring-app", credential)          # doctest: +SKIP
    >>> for row in reader.rows(agreement_id):                             # doctest: +SKIP
    ...     print(row["company_id"])

    Each call to :meth:`rows` is one read: it counts toward the agreement's ``max_reads``.
    """

    def __init__(self, home_path: str, app_id: str, credential: str) -> None:
        from node.home import home_path as resolve

        self._home = Home.open(resolve(home_path))
        self._app_id = app_id
        self._credential = credential

    def rows(self, agreement_id: str) -> Iterator[dict[str, Any]]:
        release = begin_read(self._home, agreement_id, self._app_id, self._credential)
        fields = release.fields
        for row in rows_of(self._home, release):
            yield dict(zip(fields, row, strict=True))
        finish_read(self._home, release)

    def close(self) -> None:
        self._home.close()
