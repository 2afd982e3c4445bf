"""Importing a CSV file: exactly what SQLite stores for every kind of cell, whatever came first.

The import is the hot path, so it takes shortcuts (typing whole columns of a chunk at once,
giving back text only to the rows that need it, hashing the file while reading it). These
tables pin what lands in the database, value and SQLite type, for cells that look like
numbers but are not, in columns that were integers or reals for thousands of rows (several
chunks and batches) before the cell came, and the registered digest of the file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.audit_format import AuditEntry
from node.config import Config
from node.datasets import IMPORT_BATCH, add_dataset
from node.errors import MalformedFile
from node.home import Home
from node.rowfile import CHUNK_BYTES, INT_MAX, INT_MIN, Value

# cell: the value stored for it when it comes alone (its type is its SQLite type)
CELLS: dict[str, tuple[str, Value]] = {
    "zero": ("0", 0),
    "negative integer": ("-12", -12),
    "largest 64-bit integer": (str(INT_MAX), INT_MAX),
    "smallest 64-bit integer": (str(INT_MIN), INT_MIN),
    "integer above 64 bits": (str(INT_MAX + 1), str(INT_MAX + 1)),
    "integer below 64 bits": (str(INT_MIN - 1), str(INT_MIN - 1)),
    "huge integer": ("9" * 23, "9" * 23),
    "leading zero": ("007", "007"),
    "plus sign": ("+5", "+5"),
    "leading space": (" 12", " 12"),
    "trailing space": ("12 ", "12 "),
    "trailing tab": ("12\t", "12\t"),
    "minus zero": ("-0", "-0"),
    "underscore": ("1_000", "1_000"),
    "hexadecimal": ("0x10", "0x10"),
    "Arabic-Indic digit": ("\u0663", "\u0663"),
    "exponent not as repr writes it": ("1e3", "1e3"),
    "upper-case exponent": ("1E+16", "1E+16"),
    "exponent without sign": ("1e16", "1e16"),
    "small exponent not as repr writes it": ("1e-4", "1e-4"),
    "mantissa and exponent": ("1.0e5", "1.0e5"),
    "float": ("2.5", 2.5),
    "integral float": ("100.0", 100.0),
    "minus zero float": ("-0.0", -0.0),
    "smallest float without exponent": ("0.0001", 0.0001),
    "full-precision float": ("0.30000000000000004", 0.30000000000000004),
    "float in repr's exponent form": ("1e+16", 1e16),
    "small float in repr's exponent form": ("1e-05", 1e-05),
    "trailing zero": ("2.50", "2.50"),
    "bare fraction": (".5", ".5"),
    "bare point": ("5.", "5."),
    "NaN": ("NaN", "NaN"),
    "nan": ("nan", "nan"),
    "inf": ("inf", "inf"),
    "minus inf": ("-inf", "-inf"),
    "Infinity": ("Infinity", "Infinity"),
    "overflowing float": ("1e400", "1e400"),
    "empty": ("", None),
    "text": ("abc", "abc"),
}
NAMES = [f"f{i}" for i in range(len(CELLS))]
KIND = {type(None): "null", int: "integer", float: "real", str: "text"}
ORDER = ["null", "integer", "real", "text"]
# what comes before the cell: rows enough for several chunks and batches
LONG = max(6000, 3 * IMPORT_BATCH)
BEFORE = {"nothing": [], "integers": [str(i) for i in range(LONG)],
          "reals": [f"{i}.5" for i in range(LONG)]}
BEFORE_KIND = {"nothing": "null", "integers": "integer", "reals": "real"}


def _write(path: Path, rows: list[list[str]]) -> Path:
    path.write_bytes("".join(",".join(row) + "\n" for row in rows).encode())
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    made = Home.init(tmp_path_factory.mktemp("import") / "home",
                     Config(name="prov", domain="data.qingdao", listen="127.0.0.1:7001"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def stored(home: Home, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, tuple[dict[str, str], list[list[tuple[Value, str]]]]]:
    """Per history: the types and, per column, every stored (value, SQLite type) in order.

    One file per history: a column per cell, the cell after the history's rows and before
    three more rows like them.
    """
    folder = tmp_path_factory.mktemp("files")
    cells = [cell for cell, _ in CELLS.values()]
    got = {}
    for name, before in BEFORE.items():
        rows = [NAMES, *([c] * len(cells) for c in before), cells,
                *([c] * len(cells) for c in before[:3])]
        dataset = add_dataset(home, f"cells-{name}", _write(folder / f"{name}.csv", rows),
                              "internal")
        columns = [home.conn.execute(f'SELECT c{i}, typeof(c{i}) FROM "{dataset.row_table}" '
                                     "ORDER BY _row").fetchall() for i in range(len(cells))]
        got[name] = dataset.types, columns
    return got


def _typeof(value: Value) -> str:
    return KIND[type(value)]


@pytest.mark.parametrize(("cell", "value"), CELLS.values(), ids=CELLS)
@pytest.mark.parametrize("history", BEFORE)
def test_each_cell_is_stored_as_the_typing_rule_says_after_any_history(
        stored: dict[str, tuple[dict[str, str], list[list[tuple[Value, str]]]]],
        history: str, cell: str, value: Value) -> None:
    index = list(CELLS.values()).index((cell, value))
    types, columns = stored[history]
    column = columns[index]
    before = BEFORE[history]
    kind = max(BEFORE_KIND[history], _typeof(value), key=ORDER.index)
    assert types[NAMES[index]] == kind
    at = len(before)
    if kind == "text":  # every cell as written, earlier numbers given back their text
        expected = [(c, "text") for c in [*before, cell, *before[:3]]]
        expected[at] = (value, _typeof(value))
    else:
        earlier = [int(c) if history == "integers" else float(c) for c in before]
        expected = [(v, _typeof(v)) for v in [*earlier, value, *earlier[:3]]]
    assert column == expected
    stored_value = column[at][0]
    assert type(stored_value) is type(value)
    if isinstance(value, float):  # -0.0 == 0.0: compare the sign too
        assert isinstance(stored_value, float)
        assert math.copysign(1, stored_value) == math.copysign(1, value)


# --- columns that turn to text -------------------------------------------------------------------
MANY = max(20_000, 3 * IMPORT_BATCH)  # rows of more than three chunks and batches
TURNS = {  # id: (cells of the column, the type)
    "numbers then text in the first chunk": (["1", "2.5", "x", "3"], "text"),
    "numbers then text several chunks on": ([str(i) for i in range(MANY)] + ["x", "7"], "text"),
    "reals then text several chunks on": ([f"{i}.25" for i in range(MANY)] + ["1.50"], "text"),
    "empty then text": ([""] * MANY + ["x", "1"], "text"),
    "text then numbers": (["x"] + [str(i) for i in range(MANY)], "text"),
    "numbers, empty cells, then text": ([str(i) if i % 3 else "" for i in range(MANY)]
                                        + ["007"], "text"),
    "numbers to the end": ([str(i) for i in range(MANY)] + ["2.5"], "real"),
}


@pytest.mark.parametrize(("cells", "kind"), TURNS.values(), ids=TURNS)
def test_a_column_that_turns_to_text_keeps_every_cell_as_written(
        home: Home, tmp_path: Path, cells: list[str], kind: str) -> None:
    # a second column of plain integers, and a third that is text from the start
    rows = [["a", "n", "t"], *([c, str(i), f"t{i}"] for i, c in enumerate(cells))]
    dataset_id = f"turns-{len(home.conn.execute('SELECT * FROM datasets').fetchall())}"
    dataset = add_dataset(home, dataset_id, _write(tmp_path / "d.csv", rows), "internal")
    assert dataset.types == {"a": kind, "n": "integer", "t": "text"}
    got = home.conn.execute(f'SELECT c0, typeof(c0), c1, c2 FROM "{dataset.row_table}" '
                            "ORDER BY _row").fetchall()
    if kind == "text":
        assert [(v, t) for v, t, _, _ in got] == [(c or None, "text" if c else "null")
                                                  for c in cells]
    assert [(n, t) for _, _, n, t in got] == [(i, f"t{i}") for i in range(len(cells))]


# --- the registered digest -------------------------------------------------------------------
BODY = "".join(f"{i},{i * 0.5},name {i}\n" for i in range(3 * CHUNK_BYTES // 20))
FILES = {  # id: file content
    "small file": b"a,b\n1,2\n",
    "byte-order mark": b"\xef\xbb\xbfa,b\n1,2\n",
    "CRLF line ends": b"a,b\r\n1,2\r\n",
    "no line end at the end": b"a,b\n1,2",
    "header only": b"a,b\n",
    "blank lines at the end": b"a,b\n1,2\n\n\n",
    "several chunks": ("a,b,c\n" + BODY).encode(),
    "quoted cells across chunks": ('a,b,c\n"x\ny",1,2\n' + BODY).encode(),
    "JSON Lines": b'{"a":1,"b":"x"}\n{"a":2,"b":"y"}\n',
}


@pytest.mark.parametrize("content", FILES.values(), ids=FILES)
def test_the_registered_digest_is_the_sha256_of_the_file(home: Home, tmp_path: Path,
                                                         content: bytes) -> None:
    path = tmp_path / ("d.jsonl" if content.startswith(b"{") else "d.csv")
    path.write_bytes(content)
    dataset_id = f"digest-{hashlib.sha256(content).hexdigest()[:12]}"
    dataset = add_dataset(home, dataset_id, path, "internal")
    digest = hashlib.sha256(content).hexdigest()
    assert dataset.source_digest == digest
    entry = home.conn.execute("SELECT entry FROM audit_entries WHERE kind = 'dataset.added' "
                              "ORDER BY seq DESC LIMIT 1").fetchone()[0]
    assert AuditEntry.decode(entry).body["source_digest"] == digest


def test_a_refused_file_stores_nothing_even_after_many_batches(home: Home,
                                                               tmp_path: Path) -> None:
    rows = [["a", "b"], *([str(i), "x"] for i in range(MANY)), ["1"]]
    path = _write(tmp_path / "d.csv", rows)
    before = home.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    with pytest.raises(MalformedFile, match=f"line {MANY + 2}: expected 2 cells"):
        add_dataset(home, "refused", path, "internal")
    assert home.conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == before
    assert not home.conn.execute("SELECT 1 FROM datasets WHERE dataset_id = 'refused'"
                                 ).fetchone()
