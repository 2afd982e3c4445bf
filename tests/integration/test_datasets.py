"""Datasets and offers through the command line: what is stored, and what is refused.

A malformed dataset file is refused naming its line, a malformed terms file naming its key
(exit 2); an offer the classification forbids is refused (exit 3). Every refusal leaves the
node's datasets, offers, tables and audit log exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POLICY, Node, write_companies
from tests.integration.conftest import (
    DATASET_ID,
    as_json,
    audit,
    audit_count,
    error_line,
    make_node,
    sql,
    table_snapshot,
)

DEFAULT_TERMS = POLICY.format(approval="auto", max_deliveries=24, retention="7d", max_reads=10)


@pytest.fixture(scope="module")
def node(module_dir: Path) -> Iterator[Node]:
    """A provider node (not serving) with the companies dataset and, for each level, a copy."""
    made = make_node(module_dir, "prov", "data.qingdao")
    data = write_companies(module_dir / "companies.csv", 30)
    made.cli("dataset add", DATASET_ID, data, "--classification", "internal", check=True)
    for level in ("core", "sensitive"):
        made.cli("dataset add", f"companies-{level}", data, "--classification", level,
                 check=True)
    made.cli("offer add", "existing", "--dataset", DATASET_ID, "--policy",
             write_text(module_dir / "existing.toml", DEFAULT_TERMS), check=True)
    yield made


def write_text(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def unchanged(node: Node) -> tuple[object, ...]:
    """What no refusal may change: the tables (and the list of them) and the audit log."""
    return table_snapshot(node, "datasets", "offers"), audit_count(node)


def listed(node: Node, what: str) -> list[str]:
    """The ids the command line lists, ``what`` being dataset or offer."""
    rows = as_json(node.cli(f"{what} list", "--json"))[f"{what}s"]
    return [row[f"{what}_id"] for row in rows]


# ---- datasets --------------------------------------------------------------------------------
IMPORTS: dict[str, tuple[str, str, int, dict[str, str]]] = {
    "CSV with a header row": (
        "firms.csv", "company_id,revenue,employees,listed\nC1,2.5,10,yes\nC2,1.0,3,\n", 2,
        {"company_id": "text", "revenue": "real", "employees": "integer", "listed": "text"}),
    "JSON Lines": (
        "firms.jsonl",
        '{"company_id": "C1", "revenue": 2.5, "employees": 10}\n'
        '{"employees": 3, "company_id": "C2", "revenue": null}\n', 2,
        {"company_id": "text", "revenue": "real", "employees": "integer"}),
    "a header only": ("empty.csv", "company_id,revenue\n", 0,
                      {"company_id": "null", "revenue": "null"}),
}


@pytest.mark.parametrize("name, content, rows, types", IMPORTS.values(), ids=IMPORTS.keys())
def test_a_dataset_keeps_its_fields_types_classification_and_registration(
        node: Node, tmp_path: Path, name: str, content: str, rows: int,
        types: dict[str, str]) -> None:
    path = write_text(tmp_path / name, content)
    dataset_id = "firms-" + name.replace(".", "-")
    added = as_json(node.cli("dataset add", dataset_id, path, "--classification", "public",
                             "--json"))
    assert added == {"dataset_id": dataset_id, "rows": rows, "fields": list(types),
                     "types": types, "classification": "public",
                     "registration": hashlib.sha256(path.read_bytes()).hexdigest()}
    listed = as_json(node.cli("dataset list", "--json"))["datasets"]
    assert {"dataset_id": dataset_id, "classification": "public", "rows": rows,
            "fields": ",".join(types)} in listed
    assert [e["dataset"] for e in audit(node, "dataset.added")].count(dataset_id) == 1


def test_a_text_column_keeps_its_cells_as_text_even_where_they_look_like_numbers(
        node: Node, tmp_path: Path) -> None:
    path = write_text(tmp_path / "codes.csv", "code,amount\n12,1\n007,2\n1.50,3\n2.5,4\nab,5\n")
    added = as_json(node.cli("dataset add", "codes", path, "--classification", "public",
                             "--json"))
    assert added["types"] == {"code": "text", "amount": "integer"}
    table = sql(node, "SELECT row_table FROM datasets WHERE dataset_id = 'codes'")[0][0]
    stored = sql(node, f'SELECT c0, typeof(c0), c1 FROM "{table}" ORDER BY _row')
    assert stored == [("12", "text", 1), ("007", "text", 2), ("1.50", "text", 3),
                      ("2.5", "text", 4), ("ab", "text", 5)]


BIG_THEN_RAGGED = "a,b\n" + "1,2\n" * 6000 + "3\n"  # the bad row comes after a stored batch

# id: (file name, content, extra arguments, what the one error line must say)
BAD_DATASETS: dict[str, tuple[str, str | bytes, list[str], list[str]]] = {
    "a ragged row": ("ragged.csv", "a,b\n1,2\n3\n", [], ["line 3", "expected 2 cells"]),
    "a ragged row after the first batch": ("late.csv", BIG_THEN_RAGGED, [],
                                           ["line 6002", "expected 2 cells"]),
    "bad JSON": ("bad.jsonl", '{"a": 1}\n{"a":\n', [], ["line 2", "invalid JSON"]),
    "a JSON line with other keys": ("keys.jsonl", '{"a": 1}\n{"b": 2}\n', [],
                                    ["line 2", "extra key 'b'"]),
    "a duplicate header": ("dup.csv", "a,b,a\n1,2,3\n", [], ["line 1", "distinct field names"]),
    "an empty header cell": ("empty.csv", "a,,b\n1,2,3\n", [], ["line 1", "position 2"]),
    "an unclosed quote": ("quote.csv", 'a,b\n1,"2\n', [], ["line 2", "closing quote"]),
    "bytes that are not UTF-8": ("latin.csv", b"a,b\n1,\xe9\n", [], ["line 2", "UTF-8"]),
    "an unknown file type": ("rows.txt", "a,b\n1,2\n", [], ["expected a .csv"]),
    "an unknown classification": ("ok.csv", "a,b\n1,2\n", ["--classification", "secret"],
                                  ["invalid choice: 'secret'"]),
    "an id that is no id": ("ok.csv", "a,b\n1,2\n", ["--id", "bad/id"], ["not a valid id"]),
    "an id already taken": ("ok.csv", "a,b\n1,2\n", ["--id", DATASET_ID], ["already exists"]),
}


@pytest.mark.parametrize("name, content, extra, says", BAD_DATASETS.values(),
                         ids=BAD_DATASETS.keys())
def test_a_malformed_dataset_is_refused_naming_the_line_and_nothing_is_stored(
        node: Node, tmp_path: Path, name: str, content: str | bytes, extra: list[str],
        says: list[str]) -> None:
    path = write_text(tmp_path / name, content)
    dataset_id = extra[1] if extra[:1] == ["--id"] else "refused"
    classification = extra[1] if extra[:1] == ["--classification"] else "internal"
    before = unchanged(node)

    result = node.cli("dataset add", dataset_id, path, "--classification", classification)

    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]  # argparse prints its usage first
    assert line.startswith("error: ") and "Traceback" not in result.stderr
    for text in says:
        assert text in line
    assert unchanged(node) == before
    assert dataset_id not in listed(node, "dataset") or dataset_id == DATASET_ID


def test_a_missing_dataset_file_is_refused(node: Node, tmp_path: Path) -> None:
    before = unchanged(node)
    result = node.cli("dataset add", "missing", tmp_path / "missing.csv", "--classification",
                      "public")
    assert result.returncode == 2
    assert "does not exist" in error_line(result)
    assert unchanged(node) == before
    assert "missing" not in listed(node, "dataset")


# ---- offers ------------------------------------------------------------------------------------
def test_an_offer_lists_its_terms(node: Node, tmp_path: Path) -> None:
    policy = write_text(tmp_path / "terms.toml", DEFAULT_TERMS)
    node.cli("offer add", "listed", "--dataset", DATASET_ID, "--policy", policy, check=True)
    offers = {o["offer_id"]: o for o in as_json(node.cli("offer list", "--json"))["offers"]}
    listed = offers["listed"]
    assert {k: listed[k] for k in ("dataset_id", "purposes", "fields", "approval", "frequency",
                                   "retention")} == {
        "dataset_id": DATASET_ID, "purposes": "credit-scoring",
        "fields": "company_id:plain,legal_person:mask,phone:hash,revenue:plain",
        "approval": "auto", "frequency": "24/1d", "retention": "7d"}
    added = [e for e in audit(node, "offer.added") if e["offer"] == "listed"]
    assert len(added) == 1 and added[0]["terms"] == listed["terms"]


def _terms(old: str, new: str) -> str:
    assert old in DEFAULT_TERMS
    return DEFAULT_TERMS.replace(old, new)


# id: (terms text, what the error line must say)
BAD_TERMS: dict[str, tuple[str, str]] = {
    "an unknown key": (_terms("max_reads = 10", "max_reads = 10\nmax_read = 3"),
                       "limits.max_read is not a key"),
    "a number written as text": (_terms("max_reads = 10", 'max_reads = "10"'),
                                 "limits.max_reads must be a whole number"),
    "an unknown transform": (_terms('phone = "hash"', 'phone = "encrypt"'),
                             "fields.phone must be one of plain, mask, hash"),
    "a bad duration": (_terms('retention = "7d"', 'retention = "7 days"'),
                       "limits.retention must be a duration"),
    "a missing key": (_terms("onward_transfer = false", ""),
                      "lack limits.onward_transfer"),
    "an unknown section": (DEFAULT_TERMS + "\n[extra]\nx = 1\n",
                           "[extra] is not a section"),
    "an unknown approval": (_terms('approval = "auto"', 'approval = "sometimes"'),
                            "offer.approval must be one of auto, manual"),
    "a domain that is no domain": (
        _terms('consumer_domains = ["finance.qingdao"]', 'consumer_domains = ["Finance"]'),
        "offer.consumer_domains[0] must be"),
    "a field not in the dataset": (_terms('revenue = "plain"', 'revenue = "plain"\n'
                                          'city_code = "plain"'),
                                   "fields.city_code is not a field of the dataset"),
    "text that is not TOML": ("[offer\npurposes = ", "not valid TOML"),
}


@pytest.mark.parametrize("terms, says", BAD_TERMS.values(), ids=BAD_TERMS.keys())
def test_malformed_terms_are_refused_naming_the_key_and_nothing_is_stored(
        node: Node, tmp_path: Path, terms: str, says: str) -> None:
    policy = write_text(tmp_path / "terms.toml", terms)
    before = unchanged(node)
    result = node.cli("offer add", "refused", "--dataset", DATASET_ID, "--policy", policy)
    assert result.returncode == 2, result.stderr
    assert says in error_line(result)
    assert unchanged(node) == before
    assert "refused" not in listed(node, "offer")


# id: (offer id, dataset, policy text or None for a missing file, exit code, error text)
BAD_OFFERS: dict[str, tuple[str, str, str | None, int, str]] = {
    "an offer of core data": ("core-offer", "companies-core", DEFAULT_TERMS, 3,
                              "core data never leaves the node"),
    "an offer of core data even with manual approval": (
        "core-offer", "companies-core", _terms('"auto"', '"manual"'), 3,
        "core data never leaves the node"),
    "sensitive data with auto approval": (
        "sensitive-offer", "companies-sensitive", DEFAULT_TERMS, 3,
        'requires offer.approval = "manual"'),
    "an unknown dataset": ("orphan", "no-such-data", DEFAULT_TERMS, 2, "no dataset"),
    "a missing terms file": ("orphan", DATASET_ID, None, 2, "cannot read the policy terms"),
    "an offer id that is no id": ("bad/offer", DATASET_ID, DEFAULT_TERMS, 2, "not a valid id"),
    "an offer id already taken": ("existing", DATASET_ID, DEFAULT_TERMS, 2, "already exists"),
}


@pytest.mark.parametrize("offer_id, dataset, terms, code, says", BAD_OFFERS.values(),
                         ids=BAD_OFFERS.keys())
def test_an_offer_the_rules_forbid_is_refused_and_nothing_is_stored(
        node: Node, tmp_path: Path, offer_id: str, dataset: str, terms: str | None, code: int,
        says: str) -> None:
    policy = tmp_path / "terms.toml"
    if terms is not None:
        write_text(policy, terms)
    before = unchanged(node)
    result = node.cli("offer add", offer_id, "--dataset", dataset, "--policy", policy)
    assert result.returncode == code, result.stderr
    assert says in error_line(result)
    assert unchanged(node) == before
    assert offer_id not in listed(node, "offer") or offer_id == "existing"


def test_the_sensitive_dataset_may_be_offered_under_manual_approval(
        node: Node, tmp_path: Path) -> None:
    policy = write_text(tmp_path / "terms.toml", _terms('"auto"', '"manual"'))
    result = node.cli("offer add", "sensitive-manual", "--dataset", "companies-sensitive",
                      "--policy", policy, "--json")
    assert as_json(result)["approval"] == "manual"
    assert json.loads(node.cli("offer list", "--json").stdout)["offers"]
