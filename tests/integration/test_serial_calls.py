"""Single-request calls are served one at a time, all on one SQLite connection; streams,
health and reflection do not wait for them. Driven over a real gRPC server on loopback with
signed calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from connector.pb import trustspace_pb2 as pb
from connector.pb import trustspace_pb2_grpc as rpc
from connector.provider import CatalogService, TransferService
from node.home import Home
from tests.integration.test_auth import FETCH, LIST_OFFERS, TIMEOUT_S, World, headers

WAIT_S = 10


class Handlers:
    """Stand-ins for two handlers that say what they ran on and can be held inside."""

    def __init__(self) -> None:
        self.connections: set[int] = set()
        self.threads: set[str] = set()
        self.running = self.most_at_once = 0
        self.count_lock = threading.Lock()
        self.inside = threading.Event()
        self.release = threading.Event()
        self.hold = False

    def list_offers(self, home: Home, request: pb.ListOffersRequest,
                    context: grpc.ServicerContext) -> pb.ListOffersResponse:
        with self.count_lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.connections.add(id(home.conn))
        self.threads.add(threading.current_thread().name)
        if self.hold:
            self.inside.set()
            assert self.release.wait(WAIT_S)
        time.sleep(0.002)  # long enough for calls side by side to overlap
        with self.count_lock:
            self.running -= 1
        return pb.ListOffersResponse()

    def fetch(self, request: pb.FetchRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.inside.set()
        assert self.release.wait(WAIT_S)
        yield from ()


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> Handlers:
    made = Handlers()
    monkeypatch.setattr(CatalogService, "ListOffers",
                        lambda self, request, context: made.list_offers(self.home, request,
                                                                        context))
    monkeypatch.setattr(TransferService, "Fetch",
                        lambda self, request, context: made.fetch(request, context))
    return made


@pytest.fixture
def world(tmp_path: Path, handlers: Handlers) -> Iterator[World]:
    made = World(tmp_path)  # its servicers are bound now, to the stand-ins
    try:
        yield made
    finally:
        handlers.release.set()
        made.close()


def list_offers(world: World) -> pb.ListOffersResponse:
    request = pb.ListOffersRequest()
    return rpc.CatalogStub(world.channel).ListOffers(
        request, metadata=headers(world.consumer, world.node_id, LIST_OFFERS, request),
        timeout=TIMEOUT_S)


def held_call(world: World, handlers: Handlers, pool: ThreadPoolExecutor) -> Any:
    """A ListOffers call started and held inside its handler, in the call slot."""
    handlers.hold = True
    held = pool.submit(list_offers, world)
    assert handlers.inside.wait(WAIT_S)
    handlers.hold = False
    return held


def test_calls_made_at_once_are_answered_one_at_a_time_on_one_connection(
        world: World, handlers: Handlers) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: list_offers(world), range(32)))
    assert len(answers) == 32 and all(a == pb.ListOffersResponse() for a in answers)
    assert handlers.most_at_once == 1
    assert len(handlers.connections) == 1 and len(handlers.threads) > 1
    # outside a call, each thread still has a connection of its own
    assert id(world.home.conn) not in handlers.connections


def test_a_call_waits_for_the_one_before_it(world: World, handlers: Handlers) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = held_call(world, handlers, pool)
        waiting = pool.submit(list_offers, world)
        with pytest.raises(TimeoutError):
            waiting.result(timeout=0.5)
        handlers.release.set()
        assert held.result(WAIT_S) == waiting.result(WAIT_S) == pb.ListOffersResponse()


def test_health_is_answered_while_the_call_slot_is_busy(
        world: World, handlers: Handlers) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = held_call(world, handlers, pool)
        health = health_pb2_grpc.HealthStub(world.channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=2)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        handlers.release.set()
        assert held.result(WAIT_S) == pb.ListOffersResponse()


def test_a_stream_in_progress_does_not_hold_the_call_slot(
        world: World, handlers: Handlers) -> None:
    request = pb.FetchRequest(agreement_id="agr-1")
    stream = rpc.TransferStub(world.channel).Fetch(
        request, metadata=headers(world.consumer, world.node_id, FETCH, request),
        timeout=TIMEOUT_S)
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(list, stream)
        assert handlers.inside.wait(WAIT_S)  # the stream's handler is running, and waits
        assert list_offers(world) == pb.ListOffersResponse()
        handlers.release.set()
        assert reading.result(WAIT_S) == []
