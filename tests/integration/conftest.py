"""Helpers for the integration tests: module-wide node setups and ways to look inside a node.

The nodes are real (``trustspace init``/``serve``); looking inside them is read-only SQL on
their database, which WAL lets us do while they run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from node.documents import SignedDoc
from node.home import Home
from node.identity import NodeCard
from tests.conftest import Node, write_companies, write_policy

OFFER_ID = "companies-credit"
DATASET_ID = "companies"
PURPOSE = "credit-scoring"
APP = "scoring"


def make_node(base: Path, name: str, domain: str) -> Node:
    return Node(base / name, name, domain)


def trust(node: Node, *peers: Node) -> None:
    """``node`` trusts each of ``peers`` (one direction)."""
    for peer in peers:
        node.cli("peer add", peer.card_file(), check=True)


def publish(provider: Node, base: Path, *, rows: int = 20, dataset: str = DATASET_ID,
            offer: str = OFFER_ID, classification: str = "internal", **policy: Any) -> None:
    """A companies dataset of ``rows`` rows and an offer of it under the shared policy."""
    data = write_companies(base / f"{dataset}.csv", rows)
    if not (base / f"{dataset}.added").exists():
        provider.cli("dataset add", dataset, data, "--classification", classification,
                     check=True)
        (base / f"{dataset}.added").touch()
    terms = write_policy(base / f"{offer}.toml", **policy)
    provider.cli("offer add", offer, "--dataset", dataset, "--policy", terms, check=True)


def last_line(result: Any) -> str:
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {result.stderr}"
    return str(lines[-1])


def negotiate(consumer: Node, *extra: str, offer: str = OFFER_ID, peer: str = "prov",
              purpose: str = PURPOSE, app: str = APP) -> str:
    """Negotiate an agreement that must be granted at once; returns its id."""
    result = consumer.cli("negotiate", peer, offer, "--purpose", purpose, "--app", app, *extra,
                          check=True)
    return last_line(result)


def error_line(result: Any) -> str:
    """The command's one error line (and check it is one line, without a traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return str(lines[0])


def as_json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---- looking inside a node -----------------------------------------------------------------
def sql(node: Node, query: str, *params: object) -> list[tuple[Any, ...]]:
    """Run a read-only query on the node's database."""
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def one(node: Node, query: str, *params: object) -> Any:
    rows = sql(node, query, *params)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def audit(node: Node, kind: str | None = None) -> list[dict[str, Any]]:
    """The bodies of the node's audit entries (of one kind), oldest first."""
    query = "SELECT kind, entry FROM audit_entries ORDER BY seq"
    entries = [(k, json.loads(e)) for k, e in sql(node, query)]
    return [{"kind": k, **e["body"]} for k, e in entries if kind is None or k == kind]


def audit_count(node: Node) -> int:
    return int(one(node, "SELECT count(*) FROM audit_entries"))


def table_snapshot(node: Node, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` and the list of tables, to show a refusal changed nothing."""
    snapshot = {t: sorted(sql(node, f'SELECT * FROM "{t}"'), key=repr) for t in tables}
    snapshot["tables"] = sorted(sql(node, "SELECT name FROM sqlite_master"))
    return snapshot


def agreement_doc(node: Node, agreement_id: str) -> SignedDoc:
    return SignedDoc.from_json(one(node, "SELECT document FROM agreements WHERE agreement_id = ?",
                                   agreement_id))


def card_of(node: Node) -> NodeCard:
    home = Home.open(node.home)
    try:
        return home.card()
    finally:
        home.close()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it holds; a generous bound, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def ensure_running(*nodes: Node) -> None:
    for node in nodes:
        if node.process is None:
            node.start()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
