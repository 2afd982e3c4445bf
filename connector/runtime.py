"""The running node: the gRPC server plus the timed work only a running node does.

Every ``TICK_S`` the node covers new audit entries with a checkpoint, destroys data whose
retention ran out, retries what waits in the outbox (receipts, notifications), and asks
providers about requests still waiting for approval. Each task is independent: one
failing (a peer down) never stops the others, and none of them holds a lock across a call
to a peer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from connector.server import create_server
from node.home import Home

TICK_S = 0.5
HEAP_ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter number for the arena limit (glibc's malloc.h)
log = logging.getLogger("trustspace.runtime")


def timed_tasks() -> list[tuple[str, Callable[[Home], object]]]:
    from connector.consumer import poll_pending_requests
    from connector.outbox_sender import flush_outbox
    from node.retention import destroy_due

    def checkpoint(home: Home) -> object:
        return home.checkpointer.checkpoint_if_unattested()

    return [("checkpoint", checkpoint), ("retention", destroy_due),
            ("outbox", flush_outbox), ("pending requests", poll_pending_requests)]


def limit_heap_arenas(arenas: int = HEAP_ARENAS) -> bool:
    """Let glibc's allocator keep ``arenas`` heaps instead of up to eight per core.

    Each thread that allocates while another holds the heap gets an arena of its own, and an
    arena keeps what its threads once held. With 16 deliveries at once the provider's memory
    was mostly eight such arenas, 10-16 MB each (peak 145 MB with 8000-row envelopes); with
    two it was 108 MB, at the same speed. Called before the server starts its threads.
    Returns whether the limit was set (only glibc has it).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc and libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc: nothing to limit
        return False


def run(home: Home, stop: threading.Event, on_ready: Callable[[int], None]) -> None:
    limit_heap_arenas()
    server, port = create_server(home)
    server.start()
    home.record("node.started", {"address": home.config.listen})
    on_ready(port)
    tasks = timed_tasks()
    try:
        while not stop.wait(TICK_S):
            for name, task in tasks:
                try:
                    task(home)
                except Exception as e:  # noqa: BLE001 — keep serving; the next tick retries
                    log.warning("timed task %s failed: %s", name, e)
    finally:
        server.stop(grace=5).wait()
        home.record("node.stopped", {})
