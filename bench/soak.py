"""``make soak``: 32 consumers negotiate and fetch against one provider for 60 seconds.

The provider runs as a real ``trustspace serve`` process; each consumer is a node of its own
(its own HOME, keys and database), driven from a thread of this process through the same
functions the CLI uses. At the end every log is exported and ``trustspace audit verify``
must find nothing; any error during the run fails the soak.

    python -m bench.soak [--consumers 32] [--seconds 60] [--rows 2000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from connector.consumer import fetch, negotiate
from node.config import Config
from node.datasets import add_dataset
from node.home import Home
from node.offers import add_offer
from node.peers import add_peer
from node.sample import free_port, write_companies, write_policy
from policies.evaluate import Request

TRUSTSPACE = str(Path(sys.executable).parent / "trustspace")
REQUEST = Request(purpose="credit-scoring", app="scorer")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--consumers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the nodes' homes afterwards")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trustspace-soak-"))
    provider = Home.init(work / "provider", Config("prov", "data.qingdao",
                                                   f"127.0.0.1:{free_port()}"))
    data = write_companies(work / "companies.csv", args.rows)
    add_dataset(provider, "companies", data, "internal")
    policy = write_policy(work / "policy.toml", max_deliveries=1_000_000)
    add_offer(provider, "soak", "companies", policy)
    consumers = []
    for n in range(args.consumers):
        home = Home.init(work / f"consumer{n}", Config(f"cons{n}", "finance.qingdao",
                                                       f"127.0.0.1:{free_port()}"))
        add_peer(home, provider.signed_card())
        add_peer(provider, home.signed_card())
        consumers.append(home)
    server = subprocess.Popen([TRUSTSPACE, "serve", str(provider.path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    try:
        subprocess.run([TRUSTSPACE, "status", str(provider.path), "--wait", "30"], check=True,
                       capture_output=True)
        deadline = time.monotonic() + args.seconds

        def work_loop(home: Home) -> None:
            while time.monotonic() < deadline:
                try:
                    result = negotiate(home, "prov", "soak", REQUEST)
                    assert result.agreement is not None, result
                    got = fetch(home, result.agreement.agreement_id)
                    assert got.rows == args.rows, got
                    with lock:
                        counts["agreements"] += 1
                        counts["deliveries"] += 1
                        counts["rows"] += got.rows
                except Exception as e:  # noqa: BLE001 — every error is a soak failure
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")

        started = time.monotonic()
        threads = [threading.Thread(target=work_loop, args=(h,)) for h in consumers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=60)
    logs, cards = [], []
    for home in [provider, *consumers]:
        log = work / f"{home.config.name}.jsonl"
        subprocess.run([TRUSTSPACE, "audit", "export", str(home.path), "--out", str(log)],
                       check=True, capture_output=True)
        card = work / f"{home.config.name}.card"
        card.write_text(home.signed_card().to_json())
        logs.append(str(log))
        cards += ["--card", str(card)]
    verify = subprocess.run([TRUSTSPACE, "audit", "verify", *logs, *cards, "--json"],
                            capture_output=True, text=True)
    findings = json.loads(verify.stdout).get("findings", []) if verify.stdout else ["no output"]
    summary = {"consumers": args.consumers, "seconds": round(elapsed, 1),
               "agreements": counts["agreements"], "deliveries": counts["deliveries"],
               "rows": counts["rows"], "agreements_per_s": round(counts["agreements"] / elapsed, 1),
               "rows_per_s": round(counts["rows"] / elapsed), "errors": len(errors),
               "audit_findings": len(findings), "work": str(work)}
    print(json.dumps(summary, indent=2))
    for error in errors[:10]:
        print("error:", error, file=sys.stderr)
    for finding in findings[:10]:
        print("finding:", finding, file=sys.stderr)
    clean = not errors and not findings and verify.returncode == 0
    if clean and not args.keep:
        shutil.rmtree(work)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
