"""Fixtures shared by every test: real homes, real ports, the installed command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.sample import POLICY, free_port, write_companies, write_policy

REPO = Path(__file__).resolve().parents[1]
TRUSTSPACE = Path(sys.executable).parent / "trustspace"
__all__ = ["POLICY", "free_port", "write_companies", "write_policy", "run_cli", "Node"]


def run_cli(*args: str | Path, check: bool = False, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``trustspace`` command as a user would."""
    result = subprocess.run([str(TRUSTSPACE), *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"trustspace {' '.join(map(str, args))} exited "
                             f"{result.returncode}: {result.stderr}")
    return result


class Node:
    """A node made with ``trustspace init``, optionally running ``serve``."""

    def __init__(self, home: Path, name: str, domain: str,
                 extra_init: list[str | Path] | None = None) -> None:
        self.home, self.name, self.domain = home, name, domain
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        run_cli("init", home, "--name", name, "--domain", domain, "--listen",
                f"127.0.0.1:{self.port}", *(extra_init or []), check=True)

    def configure(self, **values: Any) -> None:
        """Change keys of the node's config.toml, as an operator edits it (before serve)."""
        from dataclasses import replace

        from node.config import Config
        from node.home import CONFIG_FILE

        path = self.home / CONFIG_FILE
        path.write_text(replace(Config.load(path), **values).to_toml(), "utf-8")

    def cli(self, *args: str | Path, check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command, *rest = [str(a) for a in args]
        words = command.split()
        return run_cli(*words, self.home, *rest, check=check, timeout=timeout)

    def card_file(self) -> Path:
        path = self.home.parent / f"{self.name}.card.json"
        path.write_text(run_cli("card", self.home, check=True).stdout)
        return path

    def start(self) -> Node:
        self.process = subprocess.Popen([str(TRUSTSPACE), "serve", str(self.home)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        run_cli("status", self.home, "--wait", "20", check=True)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.communicate(timeout=30)
        self.process = None


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, Node]]:
    """A provider (data.qingdao) and a consumer (finance.qingdao) that trust each other."""
    provider = Node(tmp_path / "provider", "prov", "data.qingdao")
    consumer = Node(tmp_path / "consumer", "cons", "finance.qingdao")
    provider.cli("peer add", consumer.card_file(), check=True)
    consumer.cli("peer add", provider.card_file(), check=True)
    made = {"provider": provider, "consumer": consumer}
    try:
        yield made
    finally:
        for node in made.values():
            node.stop()


@pytest.fixture
def running(nodes: dict[str, Node]) -> dict[str, Node]:
    for node in nodes.values():
        node.start()
    return nodes
