"""The consumer's vault: received batches encrypted at rest, one key per agreement.

Each agreement's key is random, kept only wrapped (SecretBox) under the node's vault master
key. Batches are stored as SecretBox ciphertexts, never as plain rows. Destroying an
agreement deletes its batches and its key (crypto-shredding): with the key gone, no copy of
the ciphertext — in a backup or a free page — can be read again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from node.errors import ContractRefused
from node.home import Home


def _master(home: Home) -> SecretBox:
    return SecretBox(home.keys.vault_master)


def ensure_key(conn: sqlite3.Connection, home: Home, agreement_id: str) -> SecretBox:
    row = conn.execute("SELECT wrapped_key FROM vault_keys WHERE agreement_id = ?",
                       (agreement_id,)).fetchone()
    if row is None:
        key = os.urandom(SecretBox.KEY_SIZE)
        conn.execute("INSERT INTO vault_keys (agreement_id, wrapped_key) VALUES (?, ?)",
                     (agreement_id, bytes(_master(home).encrypt(key))))
        return SecretBox(key)
    return SecretBox(_unwrap(home, agreement_id, row[0]))


def _unwrap(home: Home, agreement_id: str, wrapped: bytes) -> bytes:
    try:
        return bytes(_master(home).decrypt(wrapped))
    except CryptoError:
        raise ContractRefused(f"the vault key of agreement {agreement_id} does not open with "
                              "this node's key") from None


def open_key(home: Home, agreement_id: str) -> SecretBox:
    row = home.conn.execute("SELECT wrapped_key FROM vault_keys WHERE agreement_id = ?",
                            (agreement_id,)).fetchone()
    if row is None:
        raise ContractRefused(f"the data of agreement {agreement_id} was destroyed")
    return SecretBox(_unwrap(home, agreement_id, row[0]))


def store_batch(conn: sqlite3.Connection, box: SecretBox, agreement_id: str, delivery_id: str,
                seq: int, rows: int, plaintext: bytes) -> None:
    conn.execute("INSERT INTO vault_batches (delivery_id, seq, agreement_id, rows, sealed) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (delivery_id, seq, agreement_id, rows, bytes(box.encrypt(plaintext))))


def batches(home: Home, box: SecretBox, delivery_id: str) -> Iterator[bytes]:
    """The plaintext batches of one delivery, in order, one at a time."""
    conn = home.conn
    seq = -1
    while True:
        row = conn.execute("SELECT seq, sealed FROM vault_batches WHERE delivery_id = ? "
                           "AND seq > ? ORDER BY seq LIMIT 1", (delivery_id, seq)).fetchone()
        if row is None:
            return
        seq = row[0]
        try:
            yield bytes(box.decrypt(row[1]))
        except CryptoError:
            raise ContractRefused(f"a vault batch of delivery {delivery_id} was altered") \
                from None


def delete_delivery(conn: sqlite3.Connection, delivery_id: str) -> None:
    conn.execute("DELETE FROM vault_batches WHERE delivery_id = ?", (delivery_id,))


def shred(conn: sqlite3.Connection, agreement_id: str) -> None:
    """Delete every batch of the agreement and its key."""
    conn.execute("DELETE FROM vault_batches WHERE agreement_id = ?", (agreement_id,))
    conn.execute("DELETE FROM vault_keys WHERE agreement_id = ?", (agreement_id,))
