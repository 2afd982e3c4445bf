"""Files an operator gives: policy terms (TOML), datasets (CSV, JSON Lines), node cards and
the node's own config.toml — garbage, and files one mistake away from a good one.

Through the Python functions, every file is taken as a good one would be or refused with
its error class (InvalidTerms, MalformedFile, InvalidHome, ...) and one line, and a refused
import leaves the node's database as it was. Through the ``trustspace`` command, a refusal
is exit 2 or 3 with one ``error:`` line on stderr, never a traceback nor an "internal
failure".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.auditor.load import load_cards
from node.config import Config
from node.datasets import add_dataset
from node.errors import (
    AlreadyExists,
    BadInput,
    BadSignature,
    InvalidHome,
    InvalidId,
    InvalidTerms,
    MalformedFile,
    MalformedMessage,
    TrustspaceError,
)
from node.home import Home
from node.identity import NodeCard, NodeKeys, SignedCard, check_address
from node.peers import add_peer
from node.rowfile import open_rows
from policies.terms import Terms, load_terms, parse_terms
from tests.conftest import POLICY, run_cli
from tests.hostile.strategies import examples, json_values, mutations, outcome
from tests.hostile.world import state

EXAMPLES = examples(150)
GOOD_POLICY = POLICY.format(approval="auto", max_deliveries=24, retention="7d", max_reads=10)


# ---- policy terms ------------------------------------------------------------------------------
TOML_VALUES = ['"7 d"', '"07d"', '"7D"', '"-1d"', '"0s"', '"36501d"', '"9999999999999d"', "-1",
               "0", "1.5", "inf", "nan", "true", "[]", "{}", '""', '"\\u0000"', '"a\\nb"',
               '"../x"', '"\u0430uto"', "99999999999999999999", "2147483648", '["a", "a"]',
               '["a", 1]', "[[1]]", "1979-05-27", '"plain "', '"PLAIN"', '"\\ud800"', "'raw'",
               '"x"', '{ a = 1 }']


@st.composite
def near_miss_policies(draw: st.DrawFn) -> str:
    """The good policy with one line changed, removed, repeated, or one line added."""
    lines = GOOD_POLICY.splitlines()
    at = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["value", "value", "value", "remove", "repeat", "insert"]))
    if action == "value" and "=" in lines[at]:
        key = lines[at].split("=")[0]
        lines[at] = key + "= " + draw(st.one_of(st.sampled_from(TOML_VALUES),
                                               st.text(max_size=12)))
    elif action == "remove":
        del lines[at]
    elif action == "repeat":
        lines.insert(at, lines[at])
    else:
        lines.insert(at, draw(st.one_of(
            st.sampled_from(["[offer]", "[extra]", "[fields.x]", "x = 1", '"a b" = "mask"',
                             '"" = "plain"', '"a\\nb" = "plain"', '"\\u202e" = "plain"',
                             "[[limits]]", "=", "[", "\x00", "\ufeff"]),
            st.text(max_size=20))))
    return "\n".join(lines) + "\n"


@EXAMPLES
@given(text=st.one_of(near_miss_policies(), st.text(max_size=200)))
def test_policy_terms_are_parsed_or_refused_naming_the_key(text: str) -> None:
    result = outcome(parse_terms, text)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, InvalidTerms), result
    else:
        assert Terms.from_dict(result.to_dict()) == result


@EXAMPLES
@given(data=st.data())
def test_stored_terms_are_read_back_as_strictly(data: st.DataObject) -> None:
    form = data.draw(mutations(parse_terms(GOOD_POLICY).to_dict()))
    result = outcome(Terms.from_dict, form)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, InvalidTerms), result
    else:
        assert result.to_dict() == form


POLICY_FILES: dict[str, Any] = {
    "not UTF-8": b"\xff\xfe[offer]\n",
    "a folder": None,
    "empty": b"",
    "a NUL byte": b"[offer]\x00\n",
    # regression: the check for repeated purposes used list.index, quadratic in the list
    "100 000 purposes, the last a repeat": GOOD_POLICY.replace(
        'purposes = ["credit-scoring"]', "purposes = [" + ", ".join(
            f'"p{i}"' for i in range(100_000)) + ', "p1"]').encode(),
}


@pytest.mark.parametrize("content", list(POLICY_FILES.values()), ids=list(POLICY_FILES))
def test_policy_files_that_cannot_be_terms_are_refused(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "policy.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidTerms):
        load_terms(path)


# ---- datasets: CSV and JSON Lines ------------------------------------------------------------
GOOD_CSV = b'company_id,name,revenue\nC1,"Zhang, San",1.5\nC2,Li Si,2\n'
GOOD_JSONL = b'{"company_id":"C1","name":"Zhang San","revenue":1.5}\n' \
             b'{"company_id":"C2","name":null,"revenue":2}\n'
FLAWS = [b'"', b",", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"{",
         b"}", b"[", b":", b"\\", b"\\u0000", b"\\ud800", b" ", b"\t", b"1e999", b"NaN",
         "\u2028".encode(), "\u0430".encode(), b"9" * 30]


@st.composite
def near_miss_files(draw: st.DrawFn, good: bytes) -> bytes:
    at = draw(st.integers(0, len(good)))
    flaw = draw(st.one_of(st.sampled_from(FLAWS), st.binary(max_size=4)))
    action = draw(st.sampled_from(["insert", "replace", "cut"]))
    if action == "insert":
        return good[:at] + flaw + good[at:]
    if action == "replace":
        return good[:at] + flaw + good[at + len(flaw):]
    return good[:at]


def _read_all(path: Path) -> tuple[tuple[str, ...], list[Any]]:
    rows = open_rows(path, batch_size=2)
    return rows.fields, [row for batch in rows.batches() for row in batch]


@EXAMPLES
@given(suffix=st.sampled_from([".csv", ".jsonl"]), data=st.data())
def test_dataset_files_are_read_or_refused_naming_the_line(
        tmp_path_factory: pytest.TempPathFactory, suffix: str, data: st.DataObject) -> None:
    good = GOOD_CSV if suffix == ".csv" else GOOD_JSONL
    content = data.draw(st.one_of(near_miss_files(good), st.binary(max_size=80)))
    path = tmp_path_factory.mktemp("rows") / f"data{suffix}"
    path.write_bytes(content)
    result = outcome(_read_all, path)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, MalformedFile), result
        assert str(path) in result.message and ", line " in result.message
    else:
        fields, rows = result
        assert all(len(row) == len(fields) for row in rows)


def test_regression_csv_opening_with_a_stray_quote(tmp_path: Path) -> None:
    """A quote before the first header cell makes the header record itself malformed; the
    reader yielded an empty chunk before its refusal, and the header check took
    ``rows[0]`` of it: IndexError instead of the refusal naming line 1."""
    path = tmp_path / "data.csv"
    path.write_bytes(b'"' + GOOD_CSV)
    with pytest.raises(MalformedFile, match=r"line 1: expected a comma or a line end"):
        open_rows(path)


class Provider:
    """A node home to import into, with nothing served."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = Home.init(root / "home", Config(name="prov", domain="data.qingdao",
                                                    listen="127.0.0.1:7001"))


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    made = Provider(tmp_path_factory.mktemp("import"))
    try:
        yield made
    finally:
        made.home.close()


@examples(60)
@given(suffix=st.sampled_from([".csv", ".jsonl"]), data=st.data())
def test_a_refused_import_leaves_nothing_behind(provider: Provider, suffix: str,
                                                data: st.DataObject) -> None:
    good = GOOD_CSV if suffix == ".csv" else GOOD_JSONL
    content = data.draw(near_miss_files(good))
    path = provider.root / f"data{suffix}"
    path.write_bytes(content)
    before = state(provider.home.path)
    dataset_id = f"d{abs(hash(content)) % 10**12}"
    result = outcome(add_dataset, provider.home, dataset_id, path, "internal")
    if isinstance(result, AlreadyExists):
        return  # the same content drawn twice
    if isinstance(result, TrustspaceError):
        assert isinstance(result, MalformedFile), result
        assert state(provider.home.path) == before  # no table, no row, no audit entry
    else:
        assert result.row_count == len(_read_all(path)[1])


# ---- node cards --------------------------------------------------------------------------------
KEYS = NodeKeys.generate()
CARD = NodeCard.issue(KEYS, "prov", "data.qingdao", "127.0.0.1:7001")
CARD_ERRORS = (MalformedFile, BadInput, BadSignature, InvalidId, MalformedMessage)


def resigned(fields: Any) -> str:
    """A card file whose fields are ``fields``, signed by the card's key over exactly them."""
    from node.canonical import b64, canonical_json

    try:
        payload = canonical_json(fields)
    except MalformedMessage:
        payload = b"{}"
    return json.dumps({"card": fields, "signature": b64(KEYS.sign("node-card", payload))})


@EXAMPLES
@given(data=st.data())
def test_a_card_file_is_trusted_or_refused(data: st.DataObject) -> None:
    from dataclasses import asdict

    text = data.draw(st.one_of(
        mutations(asdict(CARD)).map(resigned),
        mutations(json.loads(SignedCard.create(KEYS, CARD).to_json())).map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=100)))
    result = outcome(SignedCard.from_json, text)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, CARD_ERRORS), result
    else:
        assert result.card.name.isascii() and result.card.address.isascii()


CARDS = {
    "lone surrogate in card name": ("name", "pr\ud800v"),
    "Cyrillic look-alike in card name": ("name", "pr\u043ev"),
    "path separators in card name": ("name", "../prov"),
    "port of 5000 digits": ("address", "127.0.0.1:" + "1" * 5000),
    "port of Arabic-Indic digits": ("address", "127.0.0.1:\u0667\u0660\u0660\u0661"),
    "host of Cyrillic look-alikes": ("address", "\u0435xample.org:7001"),
    "host with a right-to-left override": ("address", "\u202eexample.org:7001"),
    "domain in capitals": ("domain", "DATA.qingdao"),
}


def _card_with(field: str, value: str) -> str:
    from dataclasses import asdict

    return resigned({**asdict(CARD), field: value})


@pytest.mark.parametrize(("field", "value"), list(CARDS.values()), ids=list(CARDS))
def test_a_self_signed_card_with_one_hostile_field_is_refused(field: str, value: str) -> None:
    """Signed by its own key, so only the hostile field can be refused."""
    with pytest.raises(CARD_ERRORS) as caught:
        SignedCard.from_json(_card_with(field, value))
    assert "\n" not in caught.value.message and len(caught.value.message) < 300


def test_regression_card_port_of_5000_digits() -> None:
    """int() refuses strings of 4300 digits or more with ValueError, which left
    SignedCard.from_json: ``peer add`` ended as an internal failure."""
    with pytest.raises(BadInput, match="port from 1 to 65535"):
        SignedCard.from_json(_card_with("address", "127.0.0.1:" + "1" * 5000))


def test_regression_card_port_of_arabic_indic_digits() -> None:
    """str.isdigit() and int() take Arabic-Indic digits: '127.0.0.1:٧٠٠١' was trusted."""
    with pytest.raises(BadInput, match="port from 1 to 65535"):
        SignedCard.from_json(_card_with("address", "127.0.0.1:\u0667\u0660\u0660\u0661"))


def test_regression_card_host_of_look_alike_letters() -> None:
    """A host of Cyrillic letters that look like 'example.org' was trusted as it was."""
    with pytest.raises(BadInput, match="HOST:PORT"):
        SignedCard.from_json(_card_with("address", "\u0435xample.org:7001"))


def test_regression_deeply_nested_card_json() -> None:
    """json.loads raised RecursionError, which is no ValueError, out of SignedCard.from_json:
    ``peer add`` and ``audit verify --card`` ended as an internal failure."""
    with pytest.raises(MalformedFile, match="is not a node card"):
        SignedCard.from_json("[" * 100_000 + "]" * 100_000)


ADDRESSES = ["127.0.0.1:" + "9" * 5000, "h:\u0661", "h:00007001", "h:+70", "h: 70", "h:7_0",
             "\u0430:1", "h\x00:1", ":1", "h:", "[::1]:70000"]


@pytest.mark.parametrize("address", ADDRESSES, ids=[ascii(a)[:30] for a in ADDRESSES])
def test_addresses_of_other_digits_or_letters_are_refused(address: str) -> None:
    with pytest.raises(BadInput, match="HOST:PORT"):
        check_address(address)


@EXAMPLES
@given(text=st.one_of(json_values.map(json.dumps), st.text(max_size=60)))
def test_an_auditor_card_file_is_read_or_refused(tmp_path_factory: pytest.TempPathFactory,
                                                 text: str) -> None:
    path = tmp_path_factory.mktemp("cards") / "card.json"
    path.write_text(text, "utf-8", errors="surrogatepass")
    result = outcome(load_cards, [path])
    assert isinstance(result, (dict, MalformedFile)), result


def test_a_refused_card_leaves_the_peers_as_they_were(provider: Provider) -> None:
    before = state(provider.home.path)
    for field, value in CARDS.values():
        with pytest.raises(CARD_ERRORS):
            add_peer(provider.home, SignedCard.from_json(_card_with(field, value)))
    assert state(provider.home.path) == before


# ---- the node's config.toml ----------------------------------------------------------------------
GOOD_CONFIG = Config(name="prov", domain="data.qingdao", listen="127.0.0.1:7001").to_toml()


@st.composite
def near_miss_configs(draw: st.DrawFn) -> str:
    lines = GOOD_CONFIG.splitlines()
    at = draw(st.integers(0, len(lines) - 1))
    if "=" in lines[at] and draw(st.booleans()):
        key = lines[at].split("=")[0]
        lines[at] = key + "= " + draw(st.one_of(st.sampled_from(
            TOML_VALUES + ["2147483648", "-5", "0", "99999999999", '["*", 1]', '"*"']),
            st.text(max_size=10)))
    else:
        lines.insert(at, draw(st.one_of(st.sampled_from(
            ["node = 1", "[other]", "x = 1", "[node.sub]", '"a\\nb" = 1', "[node]"]),
            st.text(max_size=12))))
    return "\n".join(lines) + "\n"


@EXAMPLES
@given(text=st.one_of(near_miss_configs(), st.text(max_size=100)))
def test_a_config_file_is_loaded_or_refused(tmp_path_factory: pytest.TempPathFactory,
                                            text: str) -> None:
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_text(text, "utf-8", errors="surrogatepass")
    result = outcome(Config.load, path)
    if isinstance(result, TrustspaceError):
        assert isinstance(result, InvalidHome), result
    else:
        assert Config.load(path) == result and 4096 <= result.max_message_bytes < 2**31


CONFIGS = {
    "max_message_bytes of 2^31": ("max_message_bytes = 16777216",
                                  "max_message_bytes = 2147483648"),
    "max_message_bytes of zero": ("max_message_bytes = 16777216", "max_message_bytes = 0"),
    "no streams at all": ("max_streams_per_peer = 8", "max_streams_per_peer = 0"),
    "envelopes of no rows": ("envelope_rows = 8000", "envelope_rows = 0"),
    "a clock skew of 10^17 s": ("clock_skew_seconds = 300",
                                "clock_skew_seconds = 100000000000000000"),
    "node as a value": ("[node]", "node = 1\n[other]"),
}


@pytest.mark.parametrize(("old", "new"), list(CONFIGS.values()), ids=list(CONFIGS))
def test_regression_config_values_that_break_every_command(tmp_path: Path, old: str,
                                                            new: str) -> None:
    """gRPC takes message sizes as a C int: 2^31 raised OverflowError in every command that
    opened a channel; a skew of 10^17 s overflowed SQLite when pruning nonces; ``node = 1``
    raised AttributeError. Now each is refused when the home opens."""
    path = tmp_path / "config.toml"
    assert old in GOOD_CONFIG
    path.write_text(GOOD_CONFIG.replace(old, new))
    with pytest.raises(InvalidHome) as caught:
        Config.load(path)
    assert "\n" not in caught.value.message


def test_a_config_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").mkdir()
    with pytest.raises(InvalidHome, match="cannot read"):
        Config.load(tmp_path / "config.toml")


# ---- the same files through the command ---------------------------------------------------------
@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    run_cli("init", root / "home", "--name", "prov", "--domain", "data.qingdao", "--listen",
            "127.0.0.1:7001", check=True)
    (root / "good.csv").write_bytes(GOOD_CSV)
    run_cli("dataset", "add", root / "home", "companies", root / "good.csv",
            "--classification", "internal", check=True)
    return root


def _card_file(root: Path, name: str, field: str, value: str) -> Path:
    path = root / name
    path.write_text(_card_with(field, value), "utf-8", errors="surrogatepass")
    return path


def _forged(root: Path) -> Path:
    from node.canonical import b64

    raw = json.loads(SignedCard.create(KEYS, CARD).to_json())
    raw["signature"] = b64(NodeKeys.generate().sign("node-card", CARD.payload()))
    return _write(root, "forged.json", json.dumps(raw).encode())


def _write(root: Path, name: str, content: bytes) -> Path:
    (root / name).write_bytes(content)
    return root / name


# name: (build the arguments after HOME from the folder, expected exit code, words)
CLI_CASES: dict[str, tuple[Any, int, str]] = {
    "dataset: CSV with a NUL byte": (lambda r: ["dataset add", "d1", _write(
        r, "nul.csv", b"a,b\n1,\x00\n"), "--classification", "internal"], 2, "NUL byte"),
    "dataset: CSV with an open quote": (lambda r: ["dataset add", "d2", _write(
        r, "quote.csv", b'a,b\n1,"2\n'), "--classification", "internal"], 2, "closing quote"),
    "dataset: JSON Lines nested deeply": (lambda r: ["dataset add", "d3", _write(
        r, "deep.jsonl", b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
        "--classification", "internal"], 2, "line 1"),
    "dataset: id with a path separator": (lambda r: ["dataset add", "../d", r / "good.csv",
                                                     "--classification", "internal"], 2,
                                          "is not a valid id"),
    "dataset: a file that is not there": (lambda r: ["dataset add", "d4", r / "missing.csv",
                                                     "--classification", "internal"], 2,
                                          "does not exist"),
    "offer: policy not UTF-8": (lambda r: ["offer add", "o1", "--dataset", "companies",
                                           "--policy", _write(r, "bad.toml", b"\xff")], 2,
                                "not UTF-8"),
    "offer: policy with a key holding a newline": (lambda r: [
        "offer add", "o2", "--dataset", "companies", "--policy",
        _write(r, "nl.toml", GOOD_POLICY.replace("[offer]", '[offer]\n"a\\nb" = 1').encode())],
        2, "is not a key of [offer]"),
    "offer: policy of a field the dataset lacks": (lambda r: [
        "offer add", "o3", "--dataset", "companies", "--policy",
        _write(r, "fields.toml", GOOD_POLICY.encode())], 2, "is not a field of the dataset"),
    "peer: card nested deeply": (lambda r: ["peer add", _write(
        r, "deep.json", b"[" * 100_000 + b"]" * 100_000)], 2, "is not a node card"),
    "peer: card port of 5000 digits": (lambda r: ["peer add", _card_file(
        r, "port.json", "address", "127.0.0.1:" + "1" * 5000)], 2, "HOST:PORT"),
    "peer: card name with a lone surrogate": (lambda r: ["peer add", _card_file(
        r, "surrogate.json", "name", "pr\ud800v")], 2, "is not a valid id"),
    "peer: card not UTF-8": (lambda r: ["peer add", _write(r, "latin1.json", b"\xe9")], 2,
                             "not UTF-8 text"),
    "peer: card signed by another key": (lambda r: ["peer add", _forged(r)], 3,
                                         "does not verify"),
    "app: id of Cyrillic look-alikes": (lambda r: ["app add", "sc\u043er\u0435r"], 2,
                                        "is not a valid id"),
    "fetch: agreement id with path separators": (lambda r: ["fetch", "../../node.db"], 2,
                                                 "no agreement"),
    "catalog: peer name with a path separator": (lambda r: ["catalog", "../prov"], 3,
                                                 "is not a trusted peer"),
}


@pytest.mark.parametrize(("build", "code", "words"), list(CLI_CASES.values()),
                         ids=list(CLI_CASES))
def test_the_command_refuses_hostile_files_in_one_line(cli_home: Path, build: Any, code: int,
                                                       words: str) -> None:
    command, *rest = build(cli_home)
    before = _rows(cli_home / "home")
    result = run_cli(*command.split(), cli_home / "home", *rest)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "internal failure" not in lines[0] and "Traceback" not in result.stderr
    assert result.returncode == code, result.stderr
    assert words in lines[0]
    assert _rows(cli_home / "home") == before


INIT_CASES = {
    "listen port of 5000 digits": ["--listen", "127.0.0.1:" + "7" * 5000],
    "listen port of Arabic-Indic digits": ["--listen", "127.0.0.1:\u0667\u0660\u0660\u0661"],
    "name with a path separator": ["--name", "a/b"],
    "domain with a control character": ["--domain", "data\x01qingdao"],
}


@pytest.mark.parametrize("change", list(INIT_CASES.values()), ids=list(INIT_CASES))
def test_init_refuses_hostile_options_in_one_line(tmp_path: Path, change: list[str]) -> None:
    """Regression: a --listen port of 5000 digits raised ValueError (an internal failure)."""
    options = {"--name": "prov", "--domain": "data.qingdao", "--listen": "127.0.0.1:7001"}
    options[change[0]] = change[1]
    result = run_cli("init", tmp_path / "home", *(a for kv in options.items() for a in kv))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert not (tmp_path / "home").exists()


def test_the_command_refuses_a_broken_config_in_one_line(cli_home: Path) -> None:
    config = cli_home / "home" / "config.toml"
    original = config.read_text()
    config.write_text(original.replace("max_message_bytes = 16777216",
                                       "max_message_bytes = 2147483648"))
    try:
        result = run_cli("status", cli_home / "home")
    finally:
        config.write_text(original)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "max_message_bytes must be a whole number" in result.stderr


def _rows(home: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{home / 'node.db'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                             "'table' AND name != 'audit_entries' AND name "
                                             "!= 'audit_checkpoints'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()
