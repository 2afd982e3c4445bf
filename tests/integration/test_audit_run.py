"""Two real nodes run the whole flow through the ``trustspace`` commands (the provider
serving on loopback), export their logs, and an auditor verifies them: a clean run has
zero findings and its report names the agreement; a consumer that never destroys is
flagged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from connector.server import create_server
from node.cli.main import main
from node.home import Home
from node.sample import free_port, write_policy


def _run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    result = main(list(argv))
    captured = capsys.readouterr()
    assert result == code, captured.err
    return captured.out


@pytest.fixture
def nodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[Path, Path]]:
    """A provider (serving) and a consumer that trust each other; a dataset on offer."""
    provider, consumer = tmp_path / "provider", tmp_path / "consumer"
    _run(capsys, "init", str(provider), "--name", "qingdao-data", "--domain", "data.qingdao",
         "--listen", f"127.0.0.1:{free_port()}")
    _run(capsys, "init", str(consumer), "--name", "bank", "--domain", "finance.qingdao",
         "--listen", f"127.0.0.1:{free_port()}")
    for home in (provider, consumer):
        (tmp_path / f"{home.name}.card").write_text(_run(capsys, "card", str(home)))
    _run(capsys, "peer", "add", str(provider), str(tmp_path / "consumer.card"))
    _run(capsys, "peer", "add", str(consumer), str(tmp_path / "provider.card"))
    data = tmp_path / "companies.csv"
    data.write_text("company_id,legal_person,phone,revenue\n" + "".join(
        f"C{i:05d},Li Wei{i},1380000{i:04d},{1000 + i}\n" for i in range(2500)))
    write_policy(tmp_path / "policy.toml")
    _run(capsys, "dataset", "add", str(provider), "companies", str(data), "--classification",
         "internal")
    _run(capsys, "offer", "add", str(provider), "credit", "--dataset", "companies", "--policy",
         str(tmp_path / "policy.toml"))
    server: grpc.Server = create_server(Home.open(provider))[0]
    server.start()
    try:
        yield provider, consumer
    finally:
        server.stop(grace=None)


def _agree_and_fetch(capsys: pytest.CaptureFixture[str], consumer: Path,
                     *terms: str) -> str:
    agreement = _run(capsys, "negotiate", str(consumer), "qingdao-data", "credit", "--purpose",
                     "credit-scoring", "--app", "scorer", "--fields", "company_id,phone",
                     *terms).strip().splitlines()[-1]
    _run(capsys, "fetch", str(consumer), agreement)
    return agreement


def _export_and_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str,
                       code: int) -> str:
    logs = []
    for name in ("provider", "consumer"):
        logs.append(str(tmp_path / f"{name}.jsonl"))
        _run(capsys, "audit", "export", str(tmp_path / name), "--out", logs[-1])
    cards = ["--card", str(tmp_path / "provider.card"), "--card",
             str(tmp_path / "consumer.card")]
    return _run(capsys, "audit", "verify", *logs, *cards, "--json", *extra, code=code)


def test_a_clean_two_node_run_verifies_with_zero_findings(
        tmp_path: Path, nodes: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    provider, consumer = nodes
    agreement = _agree_and_fetch(capsys, consumer, "--max-reads", "2")
    token = _run(capsys, "app", "add", str(consumer), "scorer").strip().splitlines()[-1]
    _run(capsys, "read", str(consumer), agreement, "--app", "scorer", "--token", token)
    _run(capsys, "destroy", str(consumer), agreement)
    result = json.loads(_export_and_verify(capsys, tmp_path, code=0))
    assert result["clean"] and result["agreements"] == [agreement]
    html = tmp_path / "report.html"
    logs = [str(tmp_path / "provider.jsonl"), str(tmp_path / "consumer.jsonl")]
    _run(capsys, "audit", "report", *logs, "--card", str(tmp_path / "provider.card"),
         "--card", str(tmp_path / "consumer.card"), "--html", str(html))
    page = html.read_text("utf-8")
    assert agreement in page and "No findings" in page


def test_a_consumer_that_keeps_data_past_retention_is_flagged(
        tmp_path: Path, nodes: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, consumer = nodes
    agreement = _agree_and_fetch(capsys, consumer, "--retention", "1s")
    time.sleep(1.5)  # the consumer node does not run, so nothing destroys the delivery
    result = json.loads(_export_and_verify(capsys, tmp_path, "--grace", "0", code=4))
    assert [(f["rule"], f["agreement"], f["log"]) for f in result["findings"]] == \
        [("destruction.overdue", agreement, str(tmp_path / "consumer.jsonl"))]
