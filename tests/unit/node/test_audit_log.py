"""The audit log's appends: one chain without gaps, and checkpoints on time, however the
appends fall into transactions — one each, many in one, or some rolled back.

A log handed out by ``Home.change`` keeps its last entry and the latest checkpoint in
memory for the length of its transaction; these cases check that this never shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from node.audit_format import GENESIS_PREV, AuditEntry
from node.checkpoints import EVERY_ENTRIES
from node.config import Config
from node.home import Home
from node.merkle import leaf_hash, root_of

CONFIG = Config(name="prov", domain="data.qingdao", listen="127.0.0.1:7001")
ENTRIES = 2 * EVERY_ENTRIES + 500


class Refused(Exception):
    """Raised inside a change to roll it back."""


def one_per_transaction(home: Home) -> None:
    for i in range(ENTRIES):
        home.record("test.event", {"i": i})


def all_in_one(home: Home) -> None:
    with home.change() as change:
        for i in range(ENTRIES):
            change.audit.append("test.event", {"i": i})


def in_batches(size: int) -> Callable[[Home], None]:
    def append(home: Home) -> None:
        for first in range(0, ENTRIES, size):
            with home.change() as change:
                for i in range(first, min(ENTRIES, first + size)):
                    change.audit.append("test.event", {"i": i})
    return append


def with_rollbacks(home: Home) -> None:
    """Every other batch of 700 (long enough to write a checkpoint) is rolled back."""
    i = 0
    while i < ENTRIES:
        with pytest.raises(Refused), home.change() as change:
            for j in range(700):
                change.audit.append("test.event", {"i": -1 - j})
            raise Refused
        with home.change() as change:
            for _ in range(min(700, ENTRIES - i)):
                change.audit.append("test.event", {"i": i})
                i += 1


def two_homes_alternating(home: Home) -> None:
    """A second opening of the same node (as a command beside the running node), each
    appending in turn: neither one's checkpoints may be delayed by the other's."""
    other = Home.open(home.path)
    try:
        for i in range(ENTRIES):
            (home if i % 3 else other).record("test.event", {"i": i})
    finally:
        other.close()


APPENDS: dict[str, Callable[[Home], None]] = {
    "one entry per transaction": one_per_transaction,
    "all in one transaction": all_in_one,
    "batches of 999": in_batches(999),
    "batches of 1000": in_batches(EVERY_ENTRIES),
    "batches of 700, every other one rolled back": with_rollbacks,
    "two openings of the node in turn": two_homes_alternating,
}


@pytest.mark.parametrize("append", list(APPENDS.values()), ids=list(APPENDS))
def test_entries_chain_and_checkpoints_come_on_time(tmp_path: Path,
                                                    append: Callable[[Home], None]) -> None:
    home = Home.init(tmp_path / "node", CONFIG)
    try:
        append(home)
        rows = home.conn.execute("SELECT seq, entry, hash FROM audit_entries "
                                 "ORDER BY seq").fetchall()
        checkpoints = home.conn.execute("SELECT size, root FROM audit_checkpoints "
                                        "ORDER BY size").fetchall()
    finally:
        home.close()
    entries = [AuditEntry.decode(bytes(row[1])) for row in rows]
    leaves = [bytes(row[2]) for row in rows]
    # 1. Every entry is there once, in order, each naming the hash of the one before.
    assert [e.seq for e in entries] == list(range(len(rows))) == [row[0] for row in rows]
    assert [e.body["i"] for e in entries[1:]] == list(range(ENTRIES))  # after node.initialised
    assert [leaf_hash(bytes(row[1])) for row in rows] == leaves
    assert [e.prev for e in entries] == [GENESIS_PREV] + [h.hex() for h in leaves[:-1]]
    # 2. A checkpoint at least every EVERY_ENTRIES entries, each over the right root.
    sizes = [0] + [size for size, _ in checkpoints]
    assert max(b - a for a, b in zip(sizes, sizes[1:], strict=False)) <= EVERY_ENTRIES
    assert len(rows) - sizes[-1] < EVERY_ENTRIES
    assert all(bytes(root) == root_of(leaves[:size]) for size, root in checkpoints)


def test_a_changes_log_refuses_appends_once_its_transaction_ended(tmp_path: Path) -> None:
    home = Home.init(tmp_path / "node", CONFIG)
    try:
        with home.change() as change:
            change.audit.append("test.event", {"i": 0})
        with pytest.raises(RuntimeError, match="only inside the change's transaction"):
            change.audit.append("test.event", {"i": 1})
        with home.change():  # not even inside a later transaction
            with pytest.raises(RuntimeError, match="only inside the change's transaction"):
                change.audit.append("test.event", {"i": 1})
        assert home.audit.size() == 2
    finally:
        home.close()


def test_an_append_with_no_checkpoint_due_does_not_look_for_one(tmp_path: Path) -> None:
    """The process knows the newest checkpoint it saw committed; an append that it shows
    is not due for one (fewer than EVERY_ENTRIES entries, under a second) reads none."""
    home = Home.init(tmp_path / "node", CONFIG)
    statements: list[str] = []
    try:
        home.checkpointer.checkpoint_now()
        home.record("test.event", {"i": -1})  # looks it up: now the process knows it
        home.conn.set_trace_callback(statements.append)
        home.record("test.event", {"i": 0})
    finally:
        home.conn.set_trace_callback(None)
        home.close()
    assert statements and not [s for s in statements if "audit_checkpoints" in s], statements


def test_a_change_that_cannot_begin_leaves_the_node_usable(tmp_path: Path) -> None:
    """A transaction that fails to begin must not keep the process's write lock: another
    thread's change still goes through."""
    import sqlite3
    import threading

    home = Home.init(tmp_path / "node", CONFIG)
    try:
        home.conn.close()  # this thread's connection is gone: BEGIN fails
        with pytest.raises(sqlite3.ProgrammingError), home.change():
            pass
        done = threading.Event()

        def record() -> None:  # another thread, with a connection of its own
            home.record("test.event", {"i": 0})
            done.set()

        threading.Thread(target=record, daemon=True).start()
        assert done.wait(10), "the failed change kept the write lock"
    finally:
        home.close()
