"""Bench worker processes: one measured job each, result as one JSON line on stdout.

Running a consumer's fetch, a consumer's negotiations or one side of a baseline in a
process of its own keeps its peak memory its own and lets several run at once, as several
real consumers would. With ``--together`` a worker prints ``ready`` once it has imported
and set up, and starts measuring only when a line arrives on stdin: concurrent workers
then start at the same moment (``bench.workspace.run_together``).

    python -m bench.worker fetch HOME AGREEMENT_ID [--together] [--profile FILE]
    python -m bench.worker negotiate HOME PROVIDER OFFER_ID COUNT [--together]
    python -m bench.worker ideal-provider PORT SOURCE_DB
    python -m bench.worker ideal-consumer PORT DEST_DB ROWS [--together]
    python -m bench.worker raw-server PORT SOURCE_DB
    python -m bench.worker raw-stream PORT ROWS [--together]
    python -m bench.worker raw-unary PORT COUNT SIZE [--together]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

TOGETHER = False


def ready() -> None:
    """Set up and about to measure: with ``--together``, wait for the go of the driver."""
    if TOGETHER:
        print("ready", flush=True)
        sys.stdin.readline()


def peak_rss_kb() -> int:
    """This process's own high-water mark of RSS (getrusage's would include its parent's:
    Linux carries the forking process's peak across exec)."""
    from bench.workspace import vm_kb

    return vm_kb(os.getpid())


def fetch(home_path: str, agreement_id: str, profile: str) -> dict[str, Any]:
    """One delivery into this consumer's vault, through the product's own fetch."""
    from connector.consumer import fetch as fetch_call
    from node.home import Home

    home = Home.open(Path(home_path))
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    ready()
    started, clock = time.time(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = fetch_call(home, agreement_id)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - clock
    vault_bytes = home.conn.execute("SELECT coalesce(sum(length(sealed)), 0) FROM vault_batches "
                                    "WHERE delivery_id = ?", (result.delivery_id,)).fetchone()[0]
    home.close()
    return {"rows": result.rows, "envelopes": result.envelopes, "seconds": seconds,
            "vault_bytes": vault_bytes, "started": started, "ended": started + seconds,
            "peak_rss_kb": peak_rss_kb()}


def negotiate(home_path: str, provider: str, offer_id: str, count: int) -> dict[str, Any]:
    """``count`` negotiations one after another over one connection, each timed whole."""
    from bench.workspace import APP, PURPOSE
    from connector.client import PeerClient
    from connector.consumer import negotiate as negotiate_call
    from node.home import Home
    from node.peers import peer_by_name
    from policies.evaluate import Request

    home = Home.open(Path(home_path))
    request = Request(purpose=PURPOSE, app=APP)
    latencies = []
    client = PeerClient(home, peer_by_name(home, provider))  # one connection, as the baseline
    ready()
    started = time.time()
    for _ in range(count):
        clock = time.perf_counter()
        result = negotiate_call(home, provider, offer_id, request, client=client)
        latencies.append((time.perf_counter() - clock) * 1000)
        if result.state != "agreed":
            raise RuntimeError(f"negotiation ended {result.state}: {result.reason}")
    ended = time.time()
    client.close()
    home.close()
    return {"latencies_ms": latencies, "started": started, "ended": ended}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("job")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--together", action="store_true")
    parser.add_argument("--profile", default="")
    a = parser.parse_args(argv)
    global TOGETHER
    TOGETHER = a.together
    if a.job == "fetch":
        result = fetch(a.args[0], a.args[1], a.profile)
    elif a.job == "negotiate":
        result = negotiate(a.args[0], a.args[1], a.args[2], int(a.args[3]))
    elif a.job == "ideal-provider":
        from bench.baselines import ideal_pipeline

        ideal_pipeline.provider_main(int(a.args[0]), a.args[1])
        return 0
    elif a.job == "ideal-consumer":
        from bench.baselines import ideal_pipeline

        result = ideal_pipeline.consumer_main(int(a.args[0]), a.args[1], int(a.args[2]))
    elif a.job == "raw-server":
        from bench.baselines import raw_grpc

        raw_grpc.server_main(int(a.args[0]), a.args[1])
        return 0
    elif a.job == "raw-stream":
        from bench.baselines import raw_grpc

        result = raw_grpc.stream_client(int(a.args[0]), int(a.args[1]))
    elif a.job == "raw-unary":
        from bench.baselines import raw_grpc

        result = raw_grpc.unary_client(int(a.args[0]), int(a.args[1]), int(a.args[2]))
    else:
        parser.error(f"unknown job {a.job!r}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    # Run the importable module's main, so that the baselines, which import bench.worker,
    # see the same TOGETHER as this process's job.
    from bench.worker import main as module_main

    sys.exit(module_main(sys.argv[1:]))
