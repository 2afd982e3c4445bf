"""Raw gRPC: the transport alone, with no authentication, signing, encryption or storage.

``Stream`` sends the same projected bytes the product sends, in the same batches: the
agreed columns read from SQLite as many rows at a time as a product envelope holds by
default, and encoded by the product's own batch encoder (a compact JSON array of rows); the
client only counts them. ``Echo`` answers a
unary call with as many bytes as it was sent, the floor for one negotiation round trip.
Messages are plain bytes (no protobuf), so nothing but gRPC itself is measured.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from concurrent import futures
from typing import Any

from node.config import DEFAULT_ENVELOPE_ROWS
from node.envelopes import encode_batch

SERVICE = "benchraw.Raw"
OPTIONS = [("grpc.max_send_message_length", 64 << 20),
           ("grpc.max_receive_message_length", 64 << 20)]
BATCH = DEFAULT_ENVELOPE_ROWS
COLUMNS = "id, value, payload"


def server_main(port: int, source: str) -> None:
    import grpc

    def stream(request: bytes, context: Any) -> Any:
        limit = int(request.decode())
        conn = sqlite3.connect(source, check_same_thread=False)
        try:
            cursor = conn.execute(f"SELECT {COLUMNS} FROM t ORDER BY id LIMIT ?", (limit,))
            while batch := cursor.fetchmany(BATCH):
                yield encode_batch(batch)
        finally:
            conn.close()

    def echo(request: bytes, context: Any) -> bytes:
        return request

    handlers = {"Stream": grpc.unary_stream_rpc_method_handler(stream),
                "Echo": grpc.unary_unary_rpc_method_handler(echo)}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=OPTIONS)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def _channel(port: int) -> Any:
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=20)
    return channel


def stream_client(port: int, rows: int) -> dict[str, Any]:
    from bench.worker import peak_rss_kb, ready

    channel = _channel(port)
    call = channel.unary_stream(f"/{SERVICE}/Stream")
    ready()
    started, clock = time.time(), time.perf_counter()
    wire = batches = 0
    for message in call(str(rows).encode()):
        wire += len(message)
        batches += 1
    seconds = time.perf_counter() - clock
    channel.close()
    return {"rows": rows, "batches": batches, "seconds": seconds, "wire_bytes": wire,
            "started": started, "ended": started + seconds, "peak_rss_kb": peak_rss_kb()}


def unary_client(port: int, count: int, size: int) -> dict[str, Any]:
    from bench.worker import ready

    channel = _channel(port)
    call = channel.unary_unary(f"/{SERVICE}/Echo")
    payload = b"x" * size
    call(payload)  # the first call sets up the connection
    latencies = []
    ready()
    started = time.time()
    for _ in range(count):
        clock = time.perf_counter()
        call(payload)
        latencies.append((time.perf_counter() - clock) * 1000)
    ended = time.time()
    channel.close()
    return {"latencies_ms": latencies, "started": started, "ended": ended,
            "p50_ms": statistics.median(latencies)}
