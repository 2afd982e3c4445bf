"""What the benchmarks run on: generated data, real nodes, and processes we can measure.

Everything lives under one scratch folder. Nodes are made with the product's own API
(``Home.init``, ``add_peer``, ``add_dataset``, ``add_offer``) and run as the installed
``trustspace serve`` command, one process per node, on free loopback ports; measured work
that belongs to a consumer runs in a worker process of its own (``bench/worker.py``) so its
peak memory is its own. Peak RSS is read from ``/proc/PID/status`` (VmHWM), reset before
each measurement through ``/proc/PID/clear_refs``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRUSTSPACE = Path(sys.executable).parent / "trustspace"
FIELDS = ("id", "ts", "sensor", "value", "category", "payload")
PAYLOAD_PAD = "p" * 150

PROVIDER_DOMAIN = "data.bench"
CONSUMER_DOMAIN = "finance.bench"
PURPOSE = "benchmarking"
APP = "bench-app"

# Two offers over the same dataset: three plain fields, and three of which one is masked
# and one hashed (payload masked keeps its length, sensor becomes a 32-hex pseudonym).
PLAIN_FIELDS = {"id": "plain", "value": "plain", "payload": "plain"}
MASKED_FIELDS = {"id": "plain", "sensor": "hash", "payload": "mask"}


def row(i: int) -> tuple[int, int, str, float, str, str]:
    """Row ``i`` of every benchmark dataset: 6 fields, about 200 bytes as CSV."""
    return (i, 1_700_000_000 + i, f"sensor-{i % 50:04d}", i * 0.5, f"cat{i % 7}",
            f"{i:010d}{PAYLOAD_PAD}")


def write_csv(path: Path, n: int) -> Path:
    """The dataset as an operator would hand it over: a CSV file with a header row."""
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(FIELDS) + "\n")
        for start in range(0, n, 10_000):
            chunk = map(row, range(start, min(n, start + 10_000)))
            f.write("".join(f"{i},{t},{s},{v!r},{c},{p}\n" for i, t, s, v, c, p in chunk))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def policy_text(fields: dict[str, str]) -> str:
    lines = ["[offer]", f'purposes = ["{PURPOSE}"]', f'consumer_domains = ["{CONSUMER_DOMAIN}"]',
             'approval = "auto"', "", "[fields]"]
    lines += [f'{name} = "{transform}"' for name, transform in fields.items()]
    lines += ["", "[limits]", "max_deliveries = 100000", 'period = "1d"', 'retention = "7d"',
              "max_reads = 10", 'valid_for = "90d"', "onward_transfer = false", ""]
    return "\n".join(lines)


# ---- processes --------------------------------------------------------------------------------
def vm_kb(pid: int, key: str = "VmHWM") -> int:
    """A memory figure of a live process from /proc (kB); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pid: int) -> None:
    """Start a new high-water mark of RSS for ``pid`` (Linux clear_refs, value 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
    except OSError:
        pass


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.worker", *args]


def run_worker(*args: str, timeout: float = 900) -> dict[str, Any]:
    """Run one bench worker to its end; its last stdout line is its JSON result."""
    done = subprocess.run(worker_command(*args), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    return parse_worker(done.returncode, done.stdout, done.stderr, args)


def parse_worker(code: int, stdout: str, stderr: str, args: Any) -> dict[str, Any]:
    if code != 0 or not stdout.strip():
        raise RuntimeError(f"bench worker {' '.join(map(str, args))} failed ({code}): "
                           f"{stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def run_together(commands: list[list[str]], timeout: float = 900) -> list[dict[str, Any]]:
    """Run workers at once: each sets up, says ``ready``, and all start on one go."""
    processes = [subprocess.Popen(worker_command(*c, "--together"), cwd=REPO,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for c in commands]
    try:
        for command, p in zip(commands, processes, strict=True):
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                _, err = p.communicate(timeout=timeout)
                raise RuntimeError(f"bench worker {' '.join(command)} failed before it was "
                                   f"ready: {err.strip()[-2000:]}")
        for p in processes:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()  # communicate() closes it
        results = []
        for p in processes:
            out, err = p.communicate(timeout=timeout)
            results.append(parse_worker(p.returncode, out, err, p.args))
        return results
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


# ---- nodes ------------------------------------------------------------------------------------
@dataclass
class NodeRef:
    """A node made for the bench: its home, its address, and its serve process if running."""

    home: Path
    name: str
    domain: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def open(self) -> Any:
        from node.home import Home

        return Home.open(self.home)

    def start(self, timeout: float = 30) -> NodeRef:
        """``trustspace serve HOME`` in a process of its own; returns once it answers."""
        self.log = self.home.parent / f"{self.name}.serve.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([str(TRUSTSPACE), "serve", str(self.home)],
                                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        wait_serving(self.address, self.process, timeout, self.log)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def wait_serving(address: str, process: subprocess.Popen[bytes], timeout: float,
                 log: Path) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"trustspace serve exited ({process.returncode}): "
                               f"{log.read_text(errors='replace')[-2000:]}")
        with grpc.insecure_channel(address) as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=1.0)
                return
            except grpc.RpcError:
                time.sleep(0.1)
    raise RuntimeError(f"trustspace serve on {address} did not answer within {timeout:g} s")


class Server:
    """A baseline server run as a bench worker; ready once it printed ``ready``."""

    def __init__(self, job: str, *args: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(worker_command(job, str(self.port), *args), cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            _, err = self.process.communicate()
            raise RuntimeError(f"bench worker {job} did not start: {err.strip()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=20)


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs: the full run, ``--quick``, and a tiny one for the tests."""

    name: str
    delivery_rows: int
    import_rows: int
    scale_rows: tuple[int, ...]
    consumer_rows: int
    consumers: tuple[int, ...]
    negotiations: int
    negotiators: int
    grown_log: int
    audit_appends: int
    audit_entries: int
    reps: int


FULL = Sizes("full", delivery_rows=1_000_000, import_rows=1_000_000,
             scale_rows=(10_000, 100_000, 1_000_000), consumer_rows=100_000,
             consumers=(1, 4, 16), negotiations=200, negotiators=8, grown_log=100_000,
             audit_appends=100_000, audit_entries=1_000_000, reps=3)
QUICK = Sizes("quick", delivery_rows=20_000, import_rows=20_000, scale_rows=(2_000, 20_000),
              consumer_rows=5_000, consumers=(1, 4, 16), negotiations=40, negotiators=8,
              grown_log=10_000, audit_appends=5_000, audit_entries=20_000, reps=2)
TINY = Sizes("tiny", delivery_rows=2_000, import_rows=2_000, scale_rows=(2_000,),
             consumer_rows=1_000, consumers=(1, 2), negotiations=4, negotiators=2,
             grown_log=1_000, audit_appends=500, audit_entries=1_000, reps=1)


@dataclass
class Workspace:
    """The scratch folder of one bench run and what was already built in it.

    Benchmarks share what is expensive to build: the dataset files, the provider with its
    imported datasets, the consumer and its agreements, the baselines' source table and
    servers. Whatever a benchmark finds missing it builds; what it measures it times itself.
    """

    root: Path
    sizes: Sizes = FULL
    nodes: list[NodeRef] = field(default_factory=list)
    servers: dict[str, Server] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def csv(self, n: int) -> Path:
        """The n-row dataset file (written once per run)."""
        path = self.path("data", f"rows-{n}.csv")
        if not path.exists():
            write_csv(path, n)
        return path

    def node(self, name: str, domain: str) -> NodeRef:
        from node.config import Config
        from node.home import Home

        home = self.path("nodes", name)
        port = free_port()
        Home.init(home, Config(name=name, domain=domain, listen=f"127.0.0.1:{port}")).close()
        ref = NodeRef(home, name, domain, port)
        self.nodes.append(ref)
        return ref

    # ---- the product's side -----------------------------------------------------------------
    def pair(self) -> tuple[NodeRef, NodeRef]:
        """The provider and the consumer, trusting each other, both serving."""
        if "pair" not in self.cache:
            provider = self.node("prov", PROVIDER_DOMAIN)
            consumer = self.node("cons", CONSUMER_DOMAIN)
            trust_each_other(provider, consumer)
            self.cache["pair"] = (provider.start(), consumer.start())
        pair: tuple[NodeRef, NodeRef] = self.cache["pair"]
        return pair

    def dataset(self, n: int) -> str:
        """The n-row dataset on the provider with its offers ``plain-N`` and ``masked-N``."""
        key = f"dataset:{n}"
        if key not in self.cache:
            provider, _ = self.pair()
            self.cache[f"import-seconds:{n}"] = add_dataset_and_offers(
                provider, f"rows-{n}", self.csv(n),
                {f"plain-{n}": PLAIN_FIELDS, f"masked-{n}": MASKED_FIELDS})
            self.cache[key] = f"rows-{n}"
        return str(self.cache[key])

    def agreement(self, offer_id: str) -> str:
        """The consumer's agreement on one of the provider's offers."""
        key = f"agreement:{offer_id}"
        if key not in self.cache:
            provider, consumer = self.pair()
            self.cache[key] = negotiate(consumer, provider, offer_id)
        return str(self.cache[key])

    # ---- the baselines' side ----------------------------------------------------------------
    def source_db(self, n: int) -> Path:
        """A plain SQLite table ``t`` of at least n rows for the baselines to read."""
        from bench.baselines.ideal_pipeline import build_source

        path = self.path("baseline", "source.db")
        if self.cache.get("source-rows", 0) < n:
            for server in self.servers.values():
                server.stop()
            self.servers.clear()
            self.cache[f"source-seconds:{n}"] = build_source(str(path), n)
            self.cache["source-rows"] = n
        return path

    def server(self, job: str, n: int) -> Server:
        """The baseline server ``job`` (ideal-provider, raw-server) over >= n source rows."""
        source = self.source_db(n)
        if job not in self.servers:
            self.servers[job] = Server(job, str(source))
        return self.servers[job]

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        for ref in self.nodes:
            ref.stop()


def trust_each_other(a: NodeRef, b: NodeRef) -> None:
    from node.peers import add_peer

    ha, hb = a.open(), b.open()
    try:
        add_peer(ha, hb.signed_card())
        add_peer(hb, ha.signed_card())
    finally:
        ha.close()
        hb.close()


def add_dataset_and_offers(provider: NodeRef, dataset_id: str, csv_path: Path,
                           offers: dict[str, dict[str, str]]) -> float:
    """Import the dataset (returns the seconds ``add_dataset`` took) and publish its offers."""
    from node.datasets import add_dataset
    from node.offers import add_offer

    home = provider.open()
    try:
        started = time.perf_counter()
        add_dataset(home, dataset_id, csv_path, "internal")
        seconds = time.perf_counter() - started
        for offer_id, fields in offers.items():
            policy = provider.home.parent / f"{offer_id}.policy.toml"
            policy.write_text(policy_text(fields), "utf-8")
            add_offer(home, offer_id, dataset_id, policy)
        return seconds
    finally:
        home.close()


def negotiate(consumer: NodeRef, provider: NodeRef, offer_id: str,
              fields: tuple[str, ...] | None = None) -> str:
    """An agreement on ``offer_id`` for ``consumer`` (the provider must be serving)."""
    from connector.consumer import negotiate as negotiate_call
    from policies.evaluate import Request

    home = consumer.open()
    try:
        result = negotiate_call(home, provider.name, offer_id,
                                Request(purpose=PURPOSE, app=APP, fields=fields))
    finally:
        home.close()
    if result.agreement is None:
        raise RuntimeError(f"negotiation of {offer_id} ended {result.state}: {result.reason}")
    return str(result.agreement.agreement_id)
