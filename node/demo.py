"""``make demo``: the whole flow of a data space on this machine, step by step.

A provider and a consumer node start on loopback; the provider registers a sample dataset
and offers it; the consumer negotiates, fetches into its vault, lets an application read,
destroys and sends the receipt; both audit logs are exported, verified offline and turned
into a report. Every step is the real ``trustspace`` command, printed before it runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from node.sample import free_port, write_companies, write_policy

TRUSTSPACE = str(Path(sys.executable).parent / "trustspace")
WORK = Path("demo-run").resolve()

def step(title: str, *args: str, show: int = 12, refused: bool = False) -> str:
    print(f"\n== {title}\n$ trustspace {' '.join(args)}", flush=True)
    result = subprocess.run([TRUSTSPACE, *args], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).rstrip().splitlines()
    for line in lines[:show]:
        print(f"  {line}")
    if len(lines) > show:
        print(f"  ... ({len(lines) - show} more lines)")
    if result.returncode != (3 if refused else 0):
        raise SystemExit(f"demo stopped: the step exited {result.returncode}")
    return result.stdout


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    provider, consumer = WORK / "provider", WORK / "consumer"
    data = write_companies(WORK / "companies.csv", 5000)
    write_policy(WORK / "policy.toml")
    servers: list[subprocess.Popen[str]] = []
    try:
        step("A data holder creates its provider node", "init", str(provider), "--name",
             "qingdao-data", "--domain", "data.qingdao", "--listen", f"127.0.0.1:{free_port()}")
        step("A bank creates its consumer node", "init", str(consumer), "--name", "bank",
             "--domain", "finance.qingdao", "--listen", f"127.0.0.1:{free_port()}")
        (WORK / "provider.card").write_text(step("The provider's signed card", "card",
                                                 str(provider), show=4))
        (WORK / "consumer.card").write_text(step("The consumer's signed card", "card",
                                                 str(consumer), show=4))
        step("Each trusts the other's card", "peer", "add", str(provider),
             str(WORK / "consumer.card"))
        step("", "peer", "add", str(consumer), str(WORK / "provider.card"))
        step("The provider registers a dataset", "dataset", "add", str(provider), "companies",
             str(data), "--classification", "internal")
        step("... and offers it under policy terms", "offer", "add", str(provider), "credit",
             "--dataset", "companies", "--policy", str(WORK / "policy.toml"))
        for home in (provider, consumer):
            servers.append(subprocess.Popen([TRUSTSPACE, "serve", str(home)],
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, text=True))
        step("Both nodes run", "status", str(provider), "--wait", "20")
        step("", "status", str(consumer), "--wait", "20")
        step("The consumer browses the provider's catalog", "catalog", str(consumer),
             "qingdao-data")
        agreement = step("... and negotiates three fields for its scoring app",
                         "negotiate", str(consumer), "qingdao-data", "credit", "--purpose",
                         "credit-scoring", "--app", "scorer", "--fields",
                         "company_id,legal_person,phone", "--retention", "1d",
                         "--max-reads", "3").strip().splitlines()[-1]
        step("One delivery, signed and encrypted, into the consumer's vault", "fetch",
             str(consumer), agreement)
        token = step("The consumer registers the application", "app", "add", str(consumer),
                     "scorer").strip().splitlines()[-1]
        step("The application reads its data (masked name, pseudonymous phone)", "read",
             str(consumer), agreement, "--app", "scorer", "--token", token, show=4)
        step("A request beyond the offer is refused, naming the term", "negotiate",
             str(consumer), "qingdao-data", "credit", "--purpose", "credit-scoring", "--app",
             "scorer", "--retention", "30d", refused=True)
        other = step("... and so is an application the agreement does not name", "app",
                     "add", str(consumer), "other-app").strip().splitlines()[-1]
        step("", "read", str(consumer), agreement, "--app", "other-app", "--token", other,
             refused=True)
        step("The consumer destroys the data; the signed receipt reaches the provider",
             "destroy", str(consumer), agreement)
        step("The provider sees the agreement and the receipt", "agreements", str(provider))
        for name, home in (("provider", provider), ("consumer", consumer)):
            step(f"Export the {name}'s audit log", "audit", "export", str(home), "--out",
                 str(WORK / f"{name}.audit.jsonl"))
        logs = [str(WORK / "provider.audit.jsonl"), str(WORK / "consumer.audit.jsonl")]
        cards = ["--card", str(WORK / "provider.card"), "--card", str(WORK / "consumer.card")]
        step("An auditor verifies both logs offline, trusting only the cards", "audit",
             "verify", *logs, *cards)
        step("... and writes the report", "audit", "report", *logs, *cards, "--html",
             str(WORK / "audit-report.html"))
        print(f"\nThe audit report is {WORK / 'audit-report.html'}")
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
