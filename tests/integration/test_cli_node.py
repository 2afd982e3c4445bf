"""The ``trustspace`` command driven as an operator would: the installed command, real homes,
real ``serve`` processes, signals, exit codes and the exact shape of every error.

Exit codes: 0 done, 2 bad input, 3 refused, 1 peer unreachable. An error is one line on
stderr that starts with ``error: `` and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import build_parser, main
from node.identity import NodeKeys, SignedCard
from node.store.db import migration_names
from tests.conftest import Node, free_port, run_cli, write_companies, write_policy
from tests.unit.node.test_identity import CARD_REFUSALS, tampered


def one_line_error(result: Any, code: int, *words: str) -> str:
    """The command failed with ``code`` and said why in one line, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    return str(lines[0])


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{home / 'node.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def audit_kinds(home: Path) -> list[str]:
    return [r[0] for r in rows(home, "SELECT kind FROM audit_entries ORDER BY seq")]


def init(home: Path, *extra: str) -> Any:
    return run_cli("init", home, "--name", "solo", "--domain", "data.qingdao", "--listen",
                   f"127.0.0.1:{free_port()}", *extra)


# ---- init ----------------------------------------------------------------------------------
def test_init_creates_a_home_with_a_private_key(tmp_path: Path) -> None:
    home = tmp_path / "solo"
    result = run_cli("init", home, "--name", "solo", "--domain", "data.qingdao", "--listen",
                     "127.0.0.1:7001", "--json", check=True)
    made = json.loads(result.stdout)
    assert made["name"] == "solo" and made["domain"] == "data.qingdao"
    assert made["node_id"].startswith("n") and len(made["node_id"]) == 33
    assert (home / "node.key").stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "config.toml").is_file()
    assert [r[0] for r in rows(home, "SELECT name FROM schema_migrations ORDER BY rowid")] == \
        migration_names()
    assert audit_kinds(home) == ["node.initialised"]
    card = SignedCard.from_json(run_cli("card", home, check=True).stdout)
    assert card.card.node_id == made["node_id"]
    assert card.card.address == "127.0.0.1:7001"


def test_init_prints_one_human_line(tmp_path: Path) -> None:
    result = init(tmp_path / "solo")
    assert result.returncode == 0 and result.stderr == ""
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith("initialised node solo (n")


def _existing_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    init(home)
    return home


def _non_empty_folder(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    return home


def _a_file(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.write_text("a file")
    return home


INIT_REFUSALS: dict[str, tuple[Any, list[str], list[str]]] = {
    "existing home": (_existing_home, [], ["already exists and is not an empty folder"]),
    "non-empty folder": (_non_empty_folder, [], ["already exists"]),
    "home is a file": (_a_file, [], ["already exists"]),
    "name with a space": (None, ["--name", "my node"], ["node name 'my node' is not a valid id"]),
    "empty name": (None, ["--name", ""], ["is not a valid id"]),
    "upper-case domain": (None, ["--domain", "Data.Qingdao"], ["a domain must be"]),
    "listen without a port": (None, ["--listen", "127.0.0.1"], ["HOST:PORT"]),
    "listen on port 0": (None, ["--listen", "127.0.0.1:0"], ["port from 1 to 65535"]),
    "listen on port 70000": (None, ["--listen", "127.0.0.1:70000"], ["port from 1 to 65535"]),
    "accepted domain not a domain": (None, ["--accept-domain", "ALL"], ["a domain must be"]),
    "tls cert without key": (None, ["--tls-cert", "README.md"], ["go together"]),
    "tls file missing": (None, ["--tls-cert", "nowhere.pem", "--tls-key", "nowhere.key"],
                         ["the TLS file nowhere.pem does not exist"]),
}


@pytest.mark.parametrize(("prepare", "changes", "words"), list(INIT_REFUSALS.values()),
                         ids=list(INIT_REFUSALS))
def test_init_refusals(tmp_path: Path, prepare: Any, changes: list[str],
                       words: list[str]) -> None:
    home = prepare(tmp_path) if prepare else tmp_path / "home"
    before = sorted(p.name for p in home.iterdir()) if home.is_dir() else None
    args = {"--name": "solo", "--domain": "data.qingdao", "--listen": "127.0.0.1:7001"}
    extra: list[str] = []
    for flag, value in zip(changes[::2], changes[1::2], strict=True):
        if flag in args:
            args[flag] = value
        else:
            extra += [flag, value]
    result = run_cli("init", home, *[x for kv in args.items() for x in kv], *extra)
    one_line_error(result, 2, *words)
    assert result.stdout == ""
    if prepare is None:
        assert not home.exists()  # a refused init leaves nothing behind
    else:
        after = sorted(p.name for p in home.iterdir()) if home.is_dir() else None
        assert after == before


# ---- peers and cards -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    """A provider with one offer and a consumer that trust each other, both serving."""
    root = tmp_path_factory.mktemp("pair")
    provider = Node(root / "provider", "prov", "data.qingdao")
    consumer = Node(root / "consumer", "cons", "finance.qingdao")
    provider.cli("peer add", consumer.card_file(), check=True)
    consumer.cli("peer add", provider.card_file(), check=True)
    provider.cli("dataset add", "companies", write_companies(root / "companies.csv", 5),
                 "--classification", "internal", check=True)
    provider.cli("offer add", "credit", "--dataset", "companies", "--policy",
                 write_policy(root / "policy.toml"), check=True)
    made = {"provider": provider, "consumer": consumer}
    try:
        for node in made.values():
            node.start()
        yield made
    finally:
        for node in made.values():
            node.stop()


@pytest.fixture(scope="module")
def lonely(tmp_path_factory: pytest.TempPathFactory) -> Node:
    """A node that trusts nobody yet, to try cards on."""
    return Node(tmp_path_factory.mktemp("lonely") / "home", "lonely", "finance.qingdao")


# The cases the command must show an operator; the full table runs in tests/unit.
CLI_CARD_CASES = ["tampered name", "tampered domain", "tampered address",
                  "tampered encryption key", "tampered issued_at", "tampered signing key",
                  "tampered node id", "signed by the wrong key", "unsigned: no signature",
                  "not JSON", "node id not matching key, signed by that key",
                  "issued_at as a boolean"]


@pytest.fixture(scope="module")
def provider_card(pair: dict[str, Node]) -> str:
    return pair["provider"].card_file().read_text()


@pytest.mark.parametrize("case", CLI_CARD_CASES)
def test_peer_add_refuses_a_bad_card(pair: dict[str, Node], provider_card: str, lonely: Node,
                                     tmp_path: Path, case: str) -> None:
    mutation, _, message, exit_code = CARD_REFUSALS[case]
    own = NodeKeys.load(pair["provider"].home / "node.key")
    other = NodeKeys.load(pair["consumer"].home / "node.key")
    card = tmp_path / "card.json"
    card.write_text(tampered(provider_card, mutation, own, other))
    before = (rows(lonely.home, "SELECT * FROM peers"), audit_kinds(lonely.home))

    line = one_line_error(lonely.cli("peer add", card), exit_code)

    assert re.search(message, line), line
    assert rows(lonely.home, "SELECT * FROM peers") == before[0] == []
    assert audit_kinds(lonely.home) == before[1]


def test_trusting_and_removing_a_peer(tmp_path: Path) -> None:
    a = Node(tmp_path / "a", "alpha", "data.qingdao")
    b = Node(tmp_path / "b", "beta", "finance.qingdao")
    b_card, a_card = b.card_file(), a.card_file()
    # 1. a valid card is trusted, once
    added = json.loads(a.cli("peer add", b_card, "--json", check=True).stdout)
    assert (added["name"], added["domain"]) == ("beta", "finance.qingdao")
    one_line_error(a.cli("peer add", b_card), 2, "beta is already a trusted peer")
    one_line_error(a.cli("peer add", a_card), 2, "this node's own card")
    # 2. a removed peer stays listed, untrusted, and cannot be removed twice
    removed = json.loads(a.cli("peer remove", "beta", "--json", check=True).stdout)
    assert removed == {"name": "beta", "node_id": added["node_id"], "removed": True}
    listed = json.loads(a.cli("peer list", "--json", check=True).stdout)["peers"]
    assert [(p["name"], p["trusted"]) for p in listed] == [("beta", False)]
    one_line_error(a.cli("peer remove", "beta"), 3, "'beta' is not a trusted peer")
    # 3. the same card may be trusted again
    a.cli("peer add", b_card, check=True)
    assert audit_kinds(a.home) == ["node.initialised", "peer.added", "peer.removed",
                                   "peer.added"]


def test_peer_add_refuses_a_card_file_it_cannot_read(lonely: Node, tmp_path: Path) -> None:
    one_line_error(lonely.cli("peer add", tmp_path / "missing.json"), 2,
                   "cannot read the card file", "No such file or directory")
    binary = tmp_path / "card.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    one_line_error(lonely.cli("peer add", binary), 2, "not UTF-8 text")


def test_peer_list_for_people_and_for_programs(pair: dict[str, Node], lonely: Node) -> None:
    consumer = pair["consumer"]
    human = consumer.cli("peer list", check=True).stdout.splitlines()
    assert human[0].split() == ["NAME", "DOMAIN", "ADDRESS", "NODE_ID", "TRUSTED"]
    assert human[1].split()[:2] == ["prov", "data.qingdao"]
    listed = json.loads(consumer.cli("peer list", "--json", check=True).stdout)
    assert [(p["name"], p["domain"], p["trusted"]) for p in listed["peers"]] == \
        [("prov", "data.qingdao", True)]
    assert lonely.cli("peer list", check=True).stdout == "no peers\n"
    assert json.loads(lonely.cli("peer list", "--json", check=True).stdout) == {"peers": []}


def test_card_prints_the_signed_card(pair: dict[str, Node]) -> None:
    provider = pair["provider"]
    for extra in ([], ["--json"]):
        signed = SignedCard.from_json(provider.cli("card", *extra, check=True).stdout)
        assert (signed.card.name, signed.card.domain) == ("prov", "data.qingdao")
        assert signed.card.address == f"127.0.0.1:{provider.port}"


# ---- two real nodes talking ---------------------------------------------------------------
def test_two_trusting_nodes_talk(pair: dict[str, Node]) -> None:
    consumer = pair["consumer"]
    human = consumer.cli("catalog", "prov", check=True).stdout.splitlines()
    assert human[0].split()[:3] == ["OFFER_ID", "DATASET_ID", "ROWS"]
    assert human[1].split()[:3] == ["credit", "companies", "5"]
    offers = json.loads(consumer.cli("catalog", "prov", "--json", check=True).stdout)["offers"]
    assert [(o["offer_id"], o["dataset_id"], o["rows"]) for o in offers] == \
        [("credit", "companies", 5)]
    assert "call.refused" not in audit_kinds(pair["provider"].home)


def test_a_node_the_provider_does_not_trust_is_refused_by_it(pair: dict[str, Node],
                                                              provider_card: str,
                                                              tmp_path: Path) -> None:
    provider = pair["provider"]
    stranger = Node(tmp_path / "stranger", "stranger", "finance.qingdao")
    card = tmp_path / "prov.card.json"
    card.write_text(provider_card)
    stranger.cli("peer add", card, check=True)  # trust in one direction only
    size = len(audit_kinds(provider.home))
    one_line_error(stranger.cli("catalog", "prov"), 3, "prov refused",
                   "is not a trusted peer of this node")
    assert audit_kinds(provider.home)[size:] == ["call.refused"]


def test_catalog_of_a_peer_that_is_not_trusted_here(pair: dict[str, Node]) -> None:
    one_line_error(pair["consumer"].cli("catalog", "nobody"), 3, "'nobody' is not a trusted peer")


def test_catalog_of_a_peer_that_does_not_answer(pair: dict[str, Node], lonely: Node,
                                                tmp_path: Path) -> None:
    asking = Node(tmp_path / "asking", "asking", "finance.qingdao")
    asking.cli("peer add", lonely.card_file(), check=True)  # lonely never serves
    one_line_error(asking.cli("catalog", "lonely"), 1, "lonely did not answer")


def test_status_answers_for_a_serving_node(pair: dict[str, Node]) -> None:
    provider = pair["provider"]
    assert provider.cli("status", check=True).stdout.startswith("node prov is serving on")
    status = json.loads(provider.cli("status", "--json", check=True).stdout)
    assert status["serving"] is True


# ---- status and serve ----------------------------------------------------------------------
WAITS = {"no wait": [], "wait one second": ["--wait", "1"]}


@pytest.mark.parametrize("wait", list(WAITS.values()), ids=list(WAITS))
def test_status_fails_when_nothing_serves(lonely: Node, wait: list[str]) -> None:
    one_line_error(lonely.cli("status", *wait), 1, "did not answer")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    node = Node(tmp_path / "node", "solo", "data.qingdao").start()
    assert node.process is not None
    node.process.send_signal(signum)
    stdout, stderr = node.process.communicate(timeout=30)
    assert node.process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("node solo serving on 127.0.0.1:")
    assert audit_kinds(node.home)[-2:] == ["node.started", "node.stopped"]
    node.process = None
    one_line_error(node.cli("status"), 1, "did not answer")


def test_serve_refuses_a_port_in_use(pair: dict[str, Node], tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    run_cli("init", busy, "--name", "busy", "--domain", "data.qingdao", "--listen",
            f"127.0.0.1:{pair['provider'].port}", check=True)
    one_line_error(run_cli("serve", busy, timeout=30), 2, "cannot listen on 127.0.0.1:")
    assert "node.started" not in audit_kinds(busy)


# ---- help and usage ------------------------------------------------------------------------
Command = tuple[tuple[str, ...], argparse.ArgumentParser]


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every command and subcommand of the argparse tree, with its parser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


COMMANDS = list(commands(build_parser()))
LEAVES = [(path, p) for path, p in COMMANDS
          if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]
WITHOUT_HOME = {("audit", "verify"), ("audit", "report")}  # they read exported logs, no node


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS],
                         ids=[" ".join(p) or "trustspace" for p, _ in COMMANDS])
def test_help_works_for_every_command(path: tuple[str, ...],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(('trustspace', *path))}")
    assert len(out.splitlines()) > 2


@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_takes_home_first_and_json(path: tuple[str, ...],
                                                 parser: argparse.ArgumentParser) -> None:
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    options = {o for a in parser._actions for o in a.option_strings}
    assert "--json" in options
    assert parser.description, "a command without a description"
    if path not in WITHOUT_HOME:
        assert positionals[0] == "home"


def test_help_through_the_installed_command() -> None:
    result = run_cli("peer", "add", "--help", check=True)
    assert "Verify a peer's card and trust the peer." in result.stdout
    assert result.stderr == ""


USAGE_ERRORS = {
    "no command": ([], "the following arguments are required: COMMAND"),
    "unknown command": (["launch"], "invalid choice: 'launch'"),
    "peer without an action": (["peer"], "the following arguments are required: ACTION"),
    "init without options": (["init", "x"], "required: --name, --domain, --listen"),
    "status with a wait that is not a number": (["status", "x", "--wait", "soon"],
                                                "invalid float value: 'soon'"),
    "unknown option": (["card", "x", "--colour"], "unrecognized arguments: --colour"),
}


@pytest.mark.parametrize(("args", "words"), list(USAGE_ERRORS.values()), ids=list(USAGE_ERRORS))
def test_usage_errors_are_one_line(args: list[str], words: str) -> None:
    result = run_cli(*args)
    line = one_line_error(result, 2, words)
    assert line.endswith("--help')")
    assert result.stdout == ""


def _not_a_home(home: Path) -> None:
    home.unlink()


def _damaged_database(home: Path) -> None:
    (home / "node.db").write_bytes(b"not a database" * 100)


def _open_key(home: Path) -> None:
    (home / "node.key").chmod(0o644)


def _future_database(home: Path) -> None:
    conn = sqlite3.connect(home / "node.db")
    conn.execute("INSERT INTO schema_migrations VALUES ('9999_future.sql', 0)")
    conn.commit()
    conn.close()


BAD_HOMES = {
    "not a home": (_not_a_home, "is not a trustspace home"),
    "damaged database": (_damaged_database, "is damaged or not a trustspace database"),
    "key readable by others": (_open_key, "run chmod 600"),
    "database from a newer trustspace": (_future_database, "upgrade trustspace"),
}


@pytest.fixture(scope="module")
def bad_homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    made = {}
    for i, (name, (damage, _)) in enumerate(BAD_HOMES.items()):
        home = root / f"home{i}"
        if damage is _not_a_home:
            home.write_text("")
        else:
            init(home)
        damage(home)
        made[name] = home
    return made


HOME_COMMANDS = {"peer list": ["peer", "list"], "serve": ["serve"]}


@pytest.mark.parametrize("bad", list(BAD_HOMES))
@pytest.mark.parametrize("command", list(HOME_COMMANDS.values()), ids=list(HOME_COMMANDS))
def test_a_bad_home_is_one_clear_line(bad_homes: dict[str, Path], bad: str,
                                      command: list[str]) -> None:
    result = run_cli(*command, bad_homes[bad], timeout=30)
    one_line_error(result, 2, BAD_HOMES[bad][1])
