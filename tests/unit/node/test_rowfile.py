"""Reading dataset files: every refusal names its line, good files keep every character.

Refusals come first, as a table of named malformed files; then good files and their types;
then batching, chunk boundaries, memory, and properties tying the fast paths to the rule.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import MalformedFile, UsageError
from node.rowfile import (
    _FIELD_NAME,
    CHUNK_BYTES,
    INT_MAX,
    INT_MIN,
    KINDS,
    MAX_FIELDS,
    Row,
    RowFile,
    _typed_column,
    cell_text,
    cell_value,
    open_rows,
)

SECRET = "s3cret"  # a row value: it must never show up in a message
BOM = b"\xef\xbb\xbf"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _read(path: Path, **kwargs: object) -> tuple[RowFile, list[list[Row]]]:
    rows = open_rows(path, **kwargs)  # type: ignore[arg-type]
    return rows, list(rows.batches())


def _all_rows(path: Path, **kwargs: object) -> tuple[RowFile, list[Row]]:
    rows, batches = _read(path, **kwargs)
    return rows, [row for batch in batches for row in batch]


# --- refusals ----------------------------------------------------------------------------------
LONG_NAME = "f" * 65
CSV_REFUSALS = {
    "empty file": (b"", 1, "found an empty file"),
    "only a byte-order mark": (BOM, 1, "found an empty file"),
    "blank first line": (b"\na,b\n1,2\n", 1, "expected a header row, found a blank line"),
    "empty header cell": (b"a,,b\n1,2,3\n", 1, "found an empty one at position 2"),
    "header cell of spaces": (b"a, ,b\n1,2,3\n", 1, "found an empty one at position 2"),
    "duplicate header": (b"a,b,a\n1,2,3\n", 1, "found 'a' at positions 1 and 3"),
    "duplicate header after stripping": (b"a,b, a \n1,2,3\n", 1, "positions 1 and 3"),
    "duplicate header ignoring case": (b"Name,NAME\n1,2\n", 1, "'NAME' at positions 1 and 2"),
    "header name with a space": (b"first name,b\n", 1, "found 'first name' at position 1"),
    "header name starting with _": (b"a,_row\n", 1, "found '_row' at position 2"),
    "header name starting with -": (b"-a\n", 1, "found '-a' at position 1"),
    "header name of 65 characters": (f"a,{LONG_NAME}\n".encode(), 1, "at position 2"),
    "Cyrillic look-alike in the header": ("n\u0430me\n".encode(), 1, "'n\\u0430me'"),
    "quoted header with a line break": (b'"a\nb"\n1\n', 1, "'a\\nb'"),
    "too many fields": ((",".join(f"f{i}" for i in range(MAX_FIELDS + 1)) + "\n").encode(), 1,
                        f"expected at most {MAX_FIELDS} fields, found {MAX_FIELDS + 1}"),
    "row with more cells": (f"a,b\n1,2\n3,{SECRET},5\n".encode(), 3,
                            "expected 2 cells as in the header, found 3"),
    "row with fewer cells": (f"a,b\n1,2\n{SECRET}\n".encode(), 3, "found 1"),
    "ragged row in a quoted file": (f'a,b\n"1",2\n"{SECRET}"\n'.encode(), 3, "found 1"),
    "ragged row after a multi-line cell": (f'a,b\n"x\ny\nz",2\n{SECRET}\n'.encode(), 5,
                                           "found 1"),
    "ragged row starting with a multi-line cell": (f'a,b\n1,2\n"{SECRET}\nx",2,3\n'.encode(),
                                                   3, "found 3"),
    "ragged row with CRLF line ends": (b"a,b\r\n1,2\r\n3\r\n", 3, "found 1"),
    "blank line between rows": (b"a,b\n1,2\n\n3,4\n", 3, "found a blank line before more rows"),
    "blank lines between CRLF rows": (b"a,b\r\n1,2\r\n\r\n\r\n3,4\r\n", 3, "blank line"),
    "blank line after the header": (b"a,b\n\n3,4\n", 2, "blank line"),
    "invalid UTF-8": (f"a,b\n1,2\n3,{SECRET}\xff\n".encode("latin-1"), 3,
                      "expected UTF-8 text, found an invalid byte"),
    "UTF-8 sequence cut at the end": (b"a\n1\n\xe4\xb8", 3, "expected UTF-8 text"),
    "Latin-1 file": ("a\nJos\u00e9\n".encode("latin-1"), 2, "expected UTF-8 text"),
    "NUL byte in a row": (f"a,b\n1,2\n3,{SECRET}\x00\n".encode(), 3,
                          "expected text, found a NUL byte"),
    "NUL byte in the header": (b"a\x00,b\n1,2\n", 1, "NUL byte"),
    "NUL byte inside a multi-line cell": (b'a,b\n1,"x\ny\x00"\n', 3, "NUL byte"),
    "quote left open": (f'a,b\n1,2\n3,"{SECRET}\n4,5\n'.encode(), 3,
                        "expected a closing quote, found the end of the file"),
    "text after a closing quote": (f'a,b\n"x"{SECRET},2\n'.encode(), 2,
                                   "expected a comma or a line end after a closing quote"),
    "lone carriage return": (b"a,b\n1,2\r3,4\n", 2, "found a lone \\r outside quotes"),
    "quoted cell over the csv field limit": (b'a\n"' + b"x" * (csv.field_size_limit() + 1)
                                             + b'"\n', 2, "at most 131072 characters"),
    "cell over the csv field limit": (b"a\n1\n" + b"x" * (csv.field_size_limit() + 1) + b"\n",
                                      3, "at most 131072 characters"),
}

JSONL_REFUSALS = {
    "empty file": (b"", 1, "expected a JSON object, found an empty file"),
    "blank first line": (b'\n{"a":1}\n', 1, "found a blank line"),
    "first line an array": (b"[1,2]\n", 1, "expected a JSON object, found an array"),
    "first line invalid JSON": (b'{"a":1\n', 1, "found invalid JSON"),
    "key starting with _": (b'{"_a":1}\n', 1, "found '_a' at position 1"),
    "duplicate key in the first object": (b'{"a":1,"a":2}\n', 1, "positions 1 and 2"),
    "keys differing only in case": (b'{"a":1,"A":2}\n', 1, "'A' at positions 1 and 2"),
    "invalid JSON": (f'{{"a":1}}\n{{"a":2}}\n{{"a":{SECRET}}}\n'.encode(), 3,
                     "expected a JSON object, found invalid JSON (Expecting value at column 6)"),
    "a string instead of an object": (f'{{"a":1}}\n"{SECRET}"\n'.encode(), 2, "found a string"),
    "null instead of an object": (b'{"a":1}\nnull\n', 2, "found null"),
    "two objects on one line": (b'{"a":1}\n{"a":1}{"a":2}\n', 2, "found invalid JSON"),
    "lines that parse only when joined": (b'{"a":0}\n{"a":[{"b":1}\n{"c":2}]}\n{"a":1},{"a":2}\n',
                                          2, "found invalid JSON"),
    "missing key": (f'{{"a":1,"b":2}}\n{{"a":"{SECRET}"}}\n'.encode(), 2,
                    "expected the key 'b' as in line 1, found it missing"),
    "extra key": (b'{"a":1}\n{"a":1,"c":2}\n', 2, "found the extra key 'c'"),
    "duplicate key": (b'{"a":1,"b":2}\n{"a":1,"a":2,"b":3}\n', 2,
                      "expected each key once, found 'a' twice"),
    "nested object": (f'{{"a":1,"b":2}}\n{{"a":1,"b":{{"x":"{SECRET}"}}}}\n'.encode(), 2,
                      "for the key 'b', found an object"),
    "nested array": (b'{"a":1,"b":2}\n{"a":1,"b":[1]}\n', 2, "for the key 'b', found an array"),
    "nested value in the first line": (b'{"a":[1]}\n', 1, "for the key 'a', found an array"),
    "NaN": (b'{"a":1}\n{"a":NaN}\n', 2, "expected finite numbers, found NaN"),
    "-Infinity": (b'{"a":1}\n{"a":-Infinity}\n', 2, "expected finite numbers"),
    "number beyond the double range": (b'{"a":1}\n{"a":1e400}\n', 2,
                                       "expected a finite number for the key 'a'"),
    "integer above 64 bits": (f'{{"a":1}}\n{{"a":{INT_MAX + 1}}}\n'.encode(), 2,
                              "expected an integer within 64 bits for the key 'a'"),
    "integer below 64 bits": (f'{{"a":1}}\n{{"a":{INT_MIN - 1}}}\n'.encode(), 2, "64 bits"),
    "integer of 5000 digits": (b'{"a":1}\n{"a":' + b"7" * 5000 + b"}\n", 2, "invalid JSON"),
    "nesting too deep": (b'{"a":1}\n{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", 2,
                         "invalid JSON"),
    "NUL escape in a string": (b'{"a":"x"}\n{"a":"x\\u0000y"}\n', 2,
                               "expected text without NUL characters for the key 'a'"),
    "lone surrogate escape": (b'{"a":"x"}\n{"a":"\\ud800"}\n', 2, "lone surrogate"),
    "raw control character in a string": (b'{"a":"x"}\n{"a":"x\ty"}\n', 2, "invalid JSON"),
    "blank line between rows": (b'{"a":1}\n\n{"a":2}\n', 2, "found a blank line before more"),
    "NUL byte": (b'{"a":1}\n{"a":"\x00"}\n', 2, "expected text, found a NUL byte"),
    "invalid UTF-8": (b'{"a":1}\n{"a":2}\n{"a":"\xc3("}\n', 3, "expected UTF-8 text"),
}


def _refusal(tmp_path: Path, name: str, data: bytes) -> MalformedFile:
    path = _write(tmp_path, name, data)
    with pytest.raises(MalformedFile) as caught:
        _read(path, batch_size=2)
    return caught.value


@pytest.mark.parametrize(("data", "line", "says"), CSV_REFUSALS.values(), ids=CSV_REFUSALS)
def test_malformed_csv_is_refused_naming_the_line(tmp_path: Path, data: bytes, line: int,
                                                  says: str) -> None:
    error = _refusal(tmp_path, "d.csv", data)
    assert f"d.csv, line {line}: " in error.message
    assert says in error.message
    assert SECRET not in error.message
    assert error.kind == "bad_input"


@pytest.mark.parametrize(("data", "line", "says"), JSONL_REFUSALS.values(), ids=JSONL_REFUSALS)
def test_malformed_jsonl_is_refused_naming_the_line(tmp_path: Path, data: bytes, line: int,
                                                    says: str) -> None:
    error = _refusal(tmp_path, "d.jsonl", data)
    assert f"d.jsonl, line {line}: " in error.message
    assert says in error.message
    assert SECRET not in error.message


def test_line_longer_than_16_mib_is_refused(tmp_path: Path) -> None:
    error = _refusal(tmp_path, "d.csv", b"a\n1\n" + b"x" * (17 << 20) + b"\n")
    assert "d.csv, line 3: expected lines of at most 16 MiB" in error.message


def test_multi_line_record_longer_than_16_mib_is_refused(tmp_path: Path) -> None:
    cell = b'"' + (b"x" * 999 + b"\n") * 100 + b'",'  # under the csv limit, the record not
    error = _refusal(tmp_path, "d.csv", b"a,b\n1,2\n" + cell * 170 + b"3\n")
    assert "d.csv, line 3: expected records of at most 16 MiB" in error.message


FILE_REFUSALS = {
    "unknown extension": ("d.txt", b"a\n1\n", "expected a .csv, .jsonl or .ndjson file, "
                                               "found '.txt'"),
    "no extension": ("data", b"a\n1\n", "found 'no extension'"),
    "Excel workbook": ("d.xlsx", b"PK\x03\x04", "found '.xlsx'"),
}


@pytest.mark.parametrize(("name", "data", "says"), FILE_REFUSALS.values(), ids=FILE_REFUSALS)
def test_files_of_other_kinds_are_refused_naming_the_accepted_ones(
        tmp_path: Path, name: str, data: bytes, says: str) -> None:
    assert says in _refusal(tmp_path, name, data).message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedFile, match="cannot read the dataset file .*No such file"):
        open_rows(tmp_path / "gone.csv")


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"batch_size": 0}, "batch_size must be at least 1, found 0"),
    ({"format": "xml"}, "format must be 'csv' or 'jsonl', found 'xml'"),
], ids=["batch size 0", "unknown format"])
def test_bad_arguments_are_usage_errors(tmp_path: Path, kwargs: dict[str, object],
                                        says: str) -> None:
    path = _write(tmp_path, "d.csv", b"a\n1\n")
    with pytest.raises(UsageError, match=says):
        open_rows(path, **kwargs)  # type: ignore[arg-type]


def test_file_changed_after_opening_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", b"a,b\n1,2\n")
    rows = open_rows(path)
    path.write_bytes(b"a,c\n1,2\n")
    with pytest.raises(MalformedFile, match="line 1: expected the header read when the file was"):
        list(rows.batches())


def _big_csv(rows: int, style: str) -> bytes:
    """A file of many chunks: cells plain, multi-line, now and then quoted, or CRLF lines."""
    cell = {"multi-line": '"multi\nline, quoted"', "crlf": "CRLF text\r"}.get(style, "text")
    header = "id,note\r\n" if style == "crlf" else "id,note\n"
    return (header + "".join(f'{i},"quoted, now and then"\n' if style == "sometimes"
                             and i % 40 == 0 else f"{i},{cell}\n" for i in range(rows))).encode()


FAR_REFUSALS = {  # each past many chunks, so line numbers are carried across them
    "ragged row after plain chunks": (_big_csv(20_000, "plain") + b"1,2,3\n", "d.csv", 20_002,
                                      "found 3"),
    "ragged row after multi-line cells": (_big_csv(20_000, "multi-line") + b"1,2,3\n", "d.csv",
                                          40_002, "found 3"),
    "ragged row after now-and-then quoted rows": (_big_csv(20_000, "sometimes") + b"1\n",
                                                  "d.csv", 20_002, "found 1"),
    "ragged row after CRLF chunks": (_big_csv(20_000, "crlf") + b"1\r\n", "d.csv", 20_002,
                                     "found 1"),
    "blank line after plain chunks": (_big_csv(20_000, "plain") + b"\n1,x\n", "d.csv", 20_002,
                                      "blank line"),
    "NUL byte after plain chunks": (_big_csv(20_000, "plain") + b"1,\x00\n", "d.csv", 20_002,
                                    "NUL byte"),
    "invalid UTF-8 after multi-line cells": (_big_csv(20_000, "multi-line") + b"1,\xff\n", "d.csv",
                                             40_002, "UTF-8"),
    "quote left open after plain chunks": (_big_csv(20_000, "plain") + b'1,"x\n' * 3, "d.csv",
                                           20_002, "closing quote"),
    "bad JSON after many lines": (b'{"a":1}\n' * 30_000 + b"{\n", "d.jsonl", 30_001,
                                  "invalid JSON"),
    "NUL byte after many lines": (b'{"a":1}\n' * 30_000 + b'{"a":"\x00"}\n', "d.jsonl",
                                  30_001, "NUL byte"),
    "missing key after slow chunks": ((b'{"a":1,"b":2}\n{"b":2,"a":1}\n' * 10_000)
                                      + b'{"a":1}\n', "d.jsonl", 20_001, "'b'"),
    # a chunk's cells are split at once only if every line holds its commas: not just in sum
    "rows whose cells balance out after plain chunks": (
        _big_csv(20_000, "plain") + b"1,2,3\n4\n", "d.csv", 20_002, "found 3"),
    "row with fewer cells amid plain rows": (
        _big_csv(20_000, "plain") + b"1\n" + _big_csv(5, "plain")[8:], "d.csv", 20_002,
        "found 1"),
    "lone CR amid plain rows": (_big_csv(20_000, "plain") + b"1,x\ry\n2,z\n", "d.csv",
                                20_002, "lone \\r outside quotes"),
    "second cell in a one-column file after plain chunks": (
        b"v\n" + b"x\n" * 100_000 + b"a,b\n", "d.csv", 100_002, "expected 1 cells"),
    "blank line in a one-column file after plain chunks": (
        b"v\n" + b"x\n" * 100_000 + b"\ny\n", "d.csv", 100_002, "blank line"),
}


@pytest.mark.parametrize(("data", "name", "line", "says"), FAR_REFUSALS.values(),
                         ids=FAR_REFUSALS)
def test_refusals_far_into_the_file_name_the_right_line(tmp_path: Path, data: bytes,
                                                        name: str, line: int,
                                                        says: str) -> None:
    assert len(data) > 3 * CHUNK_BYTES
    error = _refusal(tmp_path, name, data)
    assert f"{name}, line {line}: " in error.message
    assert says in error.message


def test_first_bad_line_wins_over_a_later_bad_byte(tmp_path: Path) -> None:
    error = _refusal(tmp_path, "d.csv", b"a,b\n1,2\n3\n4,5\n\xff\n")
    assert "line 3: expected 2 cells" in error.message


# --- good files --------------------------------------------------------------------------------
CELLS = {  # the CSV typing rule, cell by cell
    "empty": ("", None),
    "zero": ("0", 0),
    "negative integer": ("-12", -12),
    "largest 64-bit integer": (str(INT_MAX), INT_MAX),
    "smallest 64-bit integer": (str(INT_MIN), INT_MIN),
    "integer above 64 bits stays text": (str(INT_MAX + 1), str(INT_MAX + 1)),
    "leading zero stays text": ("007", "007"),
    "minus zero stays text": ("-0", "-0"),
    "plus sign stays text": ("+5", "+5"),
    "surrounding space stays text": (" 5", " 5"),
    "underscore stays text": ("1_000", "1_000"),
    "Arabic-Indic digits stay text": ("\u0661\u0662", "\u0661\u0662"),
    "float": ("2.5", 2.5),
    "integral float": ("100.0", 100.0),
    "minus zero float": ("-0.0", -0.0),
    "full-precision float": ("0.30000000000000004", 0.30000000000000004),
    "float in repr's exponent form": ("1e+16", 1e16),
    "small float in repr's exponent form": ("1e-05", 1e-05),
    "trailing zero stays text": ("2.50", "2.50"),
    "non-shortest float stays text": ("0.10000000000000001", "0.10000000000000001"),
    "16 digits a double cannot keep stay text": ("9367073931194.726", "9367073931194.726"),
    "exponent not as repr writes it stays text": ("1e5", "1e5"),
    "bare fraction stays text": (".5", ".5"),
    "nan stays text": ("nan", "nan"),
    "inf stays text": ("inf", "inf"),
    "overflowing float stays text": ("1e400", "1e400"),
    "text": ("Qingdao", "Qingdao"),
    "space": (" ", " "),
}


@pytest.mark.parametrize(("cell", "value"), CELLS.values(), ids=CELLS)
def test_csv_cell_typing_rule(cell: str, value: object) -> None:
    typed = cell_value(cell)
    assert type(typed) is type(value)
    assert typed == value
    assert cell_text(typed) == cell


def test_csv_file_with_all_kinds(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", (
        "id,name,score,postcode,remark,empty\n"
        "1,Zhang San,2.5,266000,,\n"
        "2,\u674e\u56db,3,007,x,\n"
        "-3,,0.30000000000000004,,,\n").encode())
    rows, got = _all_rows(path)
    assert rows.fields == ("id", "name", "score", "postcode", "remark", "empty")
    assert got == [(1, "Zhang San", 2.5, 266000, None, None),
                   (2, "\u674e\u56db", 3, "007", "x", None),
                   (-3, None, 0.30000000000000004, None, None, None)]
    assert rows.types() == {"id": "integer", "name": "text", "score": "real",
                            "postcode": "text", "remark": "text", "empty": "null"}
    assert rows.row_count == 3 and rows.complete


QUOTING = {
    "comma in a quoted cell": (b'a,b\n"x, y",1\n', [("x, y", 1)]),
    "doubled quote": (b'a,b\n"say ""hi""",1\n', [('say "hi"', 1)]),
    "line break in a quoted cell": (b'a,b\n"two\nlines",1\n', [("two\nlines", 1)]),
    "CRLF kept inside a quoted cell": (b'a,b\r\n"two\r\nlines",1\r\n', [("two\r\nlines", 1)]),
    "blank line inside a quoted cell": (b'a,b\n"x\n\ny",1\n', [("x\n\ny", 1)]),
    "quoted number is still a number": (b'a,b\n"12",""\n', [(12, None)]),
    "quoted empty cell in one column": (b'a\n""\n1\n', [(None,), (1,)]),
    "quote inside an unquoted cell": (b'a,b\nsay "hi",1\n', [('say "hi"', 1)]),
    "byte-order mark": (BOM + b"a,b\n1,2\n", [(1, 2)]),
    "CRLF line ends": (b"a,b\r\n1,2\r\n3,4\r\n", [(1, 2), (3, 4)]),
    "no line end at the end": (b"a,b\n1,2\n3,4", [(1, 2), (3, 4)]),
    "one blank line at the end": (b"a,b\n1,2\n\n", [(1, 2)]),
    "blank lines at the end": (b"a,b\n1,2\n\n\r\n\n", [(1, 2)]),
    "header-only file": (b"a,b\n", []),
    "header-only file without a line end": (b"a,b", []),
    "header with spaces around names": (b" a , b\n1,2\n", [(1, 2)]),
    "spaces in cells are kept": (b"a,b\n 1 ,x \n", [(" 1 ", "x ")]),
    "other line breaks kept in cells": ("a,b\r\nx\vy\x85z\u2028,1\r\n".encode(),
                                        [("x\vy\x85z\u2028", 1)]),
    "lines ending in LF and CRLF": (b"a,b\n1,2\r\n3,4\n", [(1, 2), (3, 4)]),
    "non-ASCII text": ("a,b\n\u9752\u5c9b,\U0001f600\n".encode(), [("\u9752\u5c9b", "\U0001f600")]),
}


@pytest.mark.parametrize(("data", "expected"), QUOTING.values(), ids=QUOTING)
def test_csv_quoting_and_line_ends(tmp_path: Path, data: bytes, expected: list[Row]) -> None:
    rows, got = _all_rows(_write(tmp_path, "d.csv", data))
    assert rows.fields[0] == "a"
    assert got == expected


def test_header_only_csv_has_no_rows_and_null_types(tmp_path: Path) -> None:
    rows, batches = _read(_write(tmp_path, "d.csv", b"a,b\n"))
    assert batches == [] and rows.row_count == 0 and rows.complete
    assert rows.types() == {"a": "null", "b": "null"}


def test_jsonl_file_with_all_kinds(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.jsonl", (
        b'{"id":1,"name":"Zhang San","score":2.5,"ok":true,"code":"007","none":null}\n'
        b'{"id":2,"name":"","score":3,"ok":false,"code":"12","none":null}\n'
        b'{"none":null,"code":"\\u4e2d\\ud83d\\ude00","ok":null,"score":-0.5,"name":"x","id":-3}\n'
    ))
    rows, got = _all_rows(path)
    assert rows.fields == ("id", "name", "score", "ok", "code", "none")
    assert got == [(1, "Zhang San", 2.5, 1, "007", None),
                   (2, "", 3, 0, "12", None),
                   (-3, "x", -0.5, None, "\u4e2d\U0001f600", None)]
    assert [type(v) for v in got[0]] == [int, str, float, int, str, type(None)]
    assert rows.types() == {"id": "integer", "name": "text", "score": "real",
                            "ok": "integer", "code": "text", "none": "null"}


JSONL_GOOD = {
    "CRLF line ends": (b'{"a":1}\r\n{"a":2}\r\n', [(1,), (2,)]),
    "no line end at the end": (b'{"a":1}\n{"a":2}', [(1,), (2,)]),
    "blank lines at the end": (b'{"a":1}\n\n \n', [(1,)]),
    "spaces around objects": (b' {"a" : 1 } \n\t{"a":2}\n', [(1,), (2,)]),
    "byte-order mark": (BOM + b'{"a":1}\n', [(1,)]),
    "escaped backslash before u0000": (b'{"a":"\\\\u0000"}\n', [("\\u0000",)]),
    "extreme 64-bit integers": (f'{{"a":{INT_MAX}}}\n{{"a":{INT_MIN}}}\n'.encode(),
                                [(INT_MAX,), (INT_MIN,)]),
    "line separators inside strings": ('{"a":"x\u2028y\u0085z"}\n'.encode(),
                                       [("x\u2028y\u0085z",)]),
}


@pytest.mark.parametrize(("data", "expected"), JSONL_GOOD.values(), ids=JSONL_GOOD)
def test_jsonl_line_ends_and_escapes(tmp_path: Path, data: bytes, expected: list[Row]) -> None:
    assert _all_rows(_write(tmp_path, "d.jsonl", data))[1] == expected


@pytest.mark.parametrize(("name", "kwargs", "fmt"), [
    ("d.CSV", {}, "csv"),
    ("d.ndjson", {}, "jsonl"),
    ("d.txt", {"format": "csv"}, "csv"),
    ("d.csv", {"format": "jsonl"}, "jsonl"),
], ids=["upper-case .CSV", ".ndjson", "format given for .txt", "format overrides .csv"])
def test_format_from_extension_or_keyword(tmp_path: Path, name: str, kwargs: dict[str, str],
                                          fmt: str) -> None:
    data = b"a\n1\n" if fmt == "csv" else b'{"a":1}\n'
    rows, got = _all_rows(_write(tmp_path, name, data), **kwargs)
    assert (rows.format, rows.fields, got) == (fmt, ("a",), [(1,)])


# --- batching and streaming --------------------------------------------------------------------
BATCHING = {  # batch_size is 7
    "0 rows": (0, []),
    "1 row": (1, [1]),
    "batch_size rows": (7, [7]),
    "batch_size+1 rows": (8, [7, 1]),
    "3 full batches": (21, [7, 7, 7]),
    "many chunks": (20_000, [7] * 2857 + [1]),
}


@pytest.mark.parametrize(("fmt", "count", "sizes"), [
    pytest.param(fmt, count, sizes, id=f"{fmt}: {name}") for name, (count, sizes)
    in BATCHING.items() for fmt in ("csv", "jsonl")
    if count or fmt == "csv"])  # a JSON Lines file without rows has no header either
def test_batches_hold_batch_size_rows_in_order(tmp_path: Path, fmt: str, count: int,
                                               sizes: list[int]) -> None:
    if fmt == "csv":
        data = "n,t\n" + "".join(f"{i},row {i}\n" for i in range(count))
    else:
        data = "".join(f'{{"n":{i},"t":"row {i}"}}\n' for i in range(count))
    rows, batches = _read(_write(tmp_path, f"d.{fmt}", data.encode()), batch_size=7)
    assert [len(b) for b in batches] == sizes
    assert [row for batch in batches for row in batch] == [(i, f"row {i}") for i in range(count)]
    assert rows.row_count == count and rows.complete


def test_streaming_again_gives_the_same_rows(tmp_path: Path) -> None:
    rows = open_rows(_write(tmp_path, "d.csv", b"a\n1\nx\n"))
    assert list(rows.batches()) == list(rows.batches()) == [[(1,), ("x",)]]
    assert rows.row_count == 2 and rows.types() == {"a": "text"}


def test_multi_line_cells_across_chunk_boundaries(tmp_path: Path) -> None:
    cells = [f"row {i}\n" + "x" * (i % 97) + ("\r\n" if i % 5 else '"quoted", a') + "\n"
             for i in range(6000)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["n", "cell"])
    writer.writerows([i, cell] for i, cell in enumerate(cells))
    data = out.getvalue().encode()
    assert len(data) > 5 * CHUNK_BYTES
    rows, got = _all_rows(_write(tmp_path, "d.csv", data), batch_size=1000)
    assert got == [(i, cell) for i, cell in enumerate(cells)]
    assert rows.types() == {"n": "integer", "cell": "text"}


def _plain_rows(count: int, width: int = 3) -> str:
    return "".join(",".join(f"{i}" if j == 0 else f"{i * 0.5}" if j == 1 else f"x{i}"
                            for j in range(width)) + "\n" for i in range(count))


# chunks after the first are split at once when plain; what they read must be what csv reads
FAR_GOOD = {
    "plain rows": "a,b,c\n" + _plain_rows(20_000),
    "CRLF rows": "a,b,c\r\n" + _plain_rows(20_000).replace("\n", "\r\n"),
    "LF and CRLF rows": "a,b,c\n" + _plain_rows(20_000).replace("5\n", "5\r\n"),
    "no line end at the end": "a,b,c\n" + _plain_rows(20_000)[:-1],
    "blank lines at the end": "a,b,c\n" + _plain_rows(20_000) + "\n\r\n\n",
    "CR as the last line end": "a,b,c\n" + _plain_rows(20_000)[:-1] + "\r",
    "empty cells": "a,b,c\n" + _plain_rows(20_000).replace("7,", ",").replace(",x1", ","),
    "spaces, tabs and other line breaks in cells": "a,b,c\n" + _plain_rows(20_000).replace(
        "x3", " x\t3 ").replace("x4", "\vx\x85\u2028").replace("9,", " 9,"),
    "non-ASCII text": "a,b,c\n" + _plain_rows(20_000).replace("x", "\u9752\U0001f600"),
    "now and then a quoted cell": "a,b,c\n" + "".join(
        f'{i},"say ""{i}""",x\n' if i % 97 == 0 else f"{i},{i},x\n" for i in range(20_000)),
    "one column": "a\n" + "".join(f"{i}\n" if i % 3 else f"t{i}\n" for i in range(40_000)),
    "many columns": ",".join(f"f{i}" for i in range(40)) + "\n" + _plain_rows(3_000, 40),
    "numbers turning to text late": "a,b,c\n" + _plain_rows(20_000) + "007,2.50,x\n",
}


@pytest.mark.parametrize("text", FAR_GOOD.values(), ids=FAR_GOOD)
def test_plain_chunks_read_as_csv_reads_them(tmp_path: Path, text: str) -> None:
    data = text.encode()
    assert len(data) > 3 * CHUNK_BYTES
    rows, got = _all_rows(_write(tmp_path, "d.csv", data), batch_size=999)
    records = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r]
    assert [[cell_text(v) for v in row] for row in got] == records[1:]
    for index, name in enumerate(records[0]):
        kinds = [_kind(cell_value(row[index])) for row in records[1:]]
        assert rows.types()[name] == KINDS[max(kinds)]
    assert rows.row_count == len(records) - 1


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_value_batches_are_the_rows_flat_and_the_digest_is_the_files(tmp_path: Path,
                                                                     fmt: str) -> None:
    if fmt == "csv":
        data = ("n,t\n" + "".join(f"{i},row {i}\n" for i in range(20_000))).encode()
    else:
        data = "".join(f'{{"n":{i},"t":"row {i}"}}\n' for i in range(20_000)).encode()
    assert len(data) > 3 * CHUNK_BYTES
    rows = open_rows(_write(tmp_path, f"d.{fmt}", data))
    assert rows.digest == ""  # not until the file is read
    batches = list(rows.value_batches(7))
    assert [len(b) for b in batches] == [14] * 2857 + [2]
    flat = [value for batch in batches for value in batch]
    assert flat == [v for i in range(20_000) for v in (i, f"row {i}")]
    assert rows.row_count == 20_000 and rows.complete
    assert rows.digest == hashlib.sha256(data).hexdigest()
    with pytest.raises(UsageError, match="batch size must be at least 1, found 0"):
        next(rows.value_batches(0))


DIGESTS = {
    "byte-order mark and CRLF": BOM + b"a,b\r\n1,2\r\n",
    "blank lines at the end": b"a,b\n1,2\n\n\n",
    "header only, no line end": b"a,b",
    "multi-line cells across chunks": _big_csv(20_000, "multi-line"),
    "JSON Lines across chunks": b'{"a":1}\n' * 30_000,
}


@pytest.mark.parametrize("data", DIGESTS.values(), ids=DIGESTS)
def test_the_digest_read_with_the_rows_is_the_files_sha256(tmp_path: Path, data: bytes) -> None:
    name = "d.jsonl" if data.startswith(b"{") else "d.csv"
    rows, _ = _read(_write(tmp_path, name, data))
    assert rows.digest == hashlib.sha256(data).hexdigest()


# cells of a column "v" (beside a text column "w"): which rows (from 0) the reader says may hold
# numbers although "v" turned out to be text
TURNED = {
    "numbers then text several chunks on": ([str(i) for i in range(20_000)] + ["x"],
                                            lambda span: span.start == 0 and 20_000 < span.stop),
    "text, then numbers in the same chunk": (["x"] + [str(i) for i in range(20_000)],
                                             lambda span: span.start == 0 < span.stop < 20_000),
    "text only, some looking like numbers later": ([f"x{i}" for i in range(20_000)] + ["1"],
                                                   None),
    "empty cells then text": ([""] * 20_000 + ["x", "1"],
                              lambda span: 0 < span.start <= 20_000 < span.stop),
    "empty cells, numbers, then text": ([""] * 20_000 + [str(i) for i in range(20_000)]
                                        + ["x"],
                                        lambda span: 0 < span.start <= 20_000 < 40_000
                                        < span.stop),
    "numbers to the end": ([str(i) for i in range(20_000)] + ["2.5"], None),
    "empty to the end": ([""] * 20_000, None),
}


@pytest.mark.parametrize(("cells", "check"), TURNED.values(), ids=TURNED)
def test_numbers_before_text_names_the_rows_that_may_hold_numbers(
        tmp_path: Path, cells: list[str], check: object) -> None:
    data = ("v,w\n" + "".join(f"{c},some text\n" for c in cells)).encode()
    assert len(data) > 3 * CHUNK_BYTES
    rows, got = _all_rows(_write(tmp_path, "d.csv", data))
    spans = rows.numbers_before_text()
    assert "w" not in spans  # text from its first cell
    if check is None:
        assert spans == {}
    else:
        assert callable(check) and check(spans["v"])
        numbers = [i for i, (v, _) in enumerate(got) if isinstance(v, int | float)]
        assert numbers and all(i in spans["v"] for i in numbers)
        assert spans["v"].stop - max(numbers) <= CHUNK_BYTES  # at most the chunk that turned


def test_json_lines_have_no_numbers_to_turn_back(tmp_path: Path) -> None:
    rows, got = _all_rows(_write(tmp_path, "d.jsonl", b'{"v":1}\n{"v":"x"}\n'))
    assert got == [(1,), ("x",)] and rows.types() == {"v": "text"}
    assert rows.numbers_before_text() == {}  # JSON says what is a number: nothing to restore


def test_jsonl_mixing_fast_and_careful_chunks(tmp_path: Path) -> None:
    lines = []
    for i in range(6000):  # reordered keys and escapes send some chunks the careful way
        if i % 1500 == 7:
            lines.append(f'{{"t":"\\ud83d\\ude00 {i}","n":{i}}}')
        else:
            lines.append(json.dumps({"n": i, "t": f"\U0001f600 {i}"}, ensure_ascii=i % 2 == 0))
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 3 * CHUNK_BYTES
    rows, got = _all_rows(_write(tmp_path, "d.jsonl", data))
    assert got == [(i, f"\U0001f600 {i}") for i in range(6000)]


def test_column_that_turns_to_text_late_keeps_every_cell(tmp_path: Path) -> None:
    cells = [str(i) for i in range(20_000)] + ["2.5", "007", "", "x"] + ["1.50"] * 10
    data = ("v\n" + "\n".join(c if c else '""' for c in cells) + "\n").encode()
    rows, got = _all_rows(_write(tmp_path, "d.csv", data))
    assert [cell_text(v) for (v,) in got] == cells
    assert rows.types() == {"v": "text"}
    assert {type(v) for (v,) in got} == {int, float, str, type(None)}


COLUMNS = {  # whole columns of one chunk, typed at once: each cell as the rule says
    "16 digits a double cannot keep, among floats": ["2.5", "9367073931194.726", "1.25"],
    "leading zero among integers": ["12", "007", "3"],
    "minus zero among integers": ["12", "-0", "3"],
    "integer above 64 bits among integers": ["12", str(INT_MAX + 1), "3"],
    "trailing zero among floats": ["2.5", "2.50", "1.25"],
    "float below 1e-4 among floats": ["2.5", "0.00001", "1.25"],
    "bare point among floats": ["2.5", "5.", "1.25"],
}


@pytest.mark.parametrize("column", COLUMNS.values(), ids=COLUMNS)
@pytest.mark.parametrize("kind", [0, 1, 2])
def test_a_column_typed_at_once_keeps_each_cell_as_the_rule_says(column: list[str],
                                                                 kind: int) -> None:
    values, found = _typed_column(column * 100, kind)
    assert [(type(v), cell_text(v)) for v in values] == [
        (type(cell_value(c)), c) for c in column * 100]
    assert found == 3  # one cell of each column is text


def test_column_of_integers_and_floats_is_real(tmp_path: Path) -> None:
    data = ("v\n" + "".join(f"{i}\n{i}.5\n" for i in range(5000))).encode()
    rows, got = _all_rows(_write(tmp_path, "d.csv", data))
    assert got[:3] == [(0,), (0.5,), (1,)]
    assert rows.types() == {"v": "real"}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_memory_stays_bounded_while_streaming(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"big.{fmt}"
    with path.open("w", encoding="utf-8") as f:
        if fmt == "csv":
            f.write("id,company,revenue,city,note\n")
            f.writelines(f'{i},91370200{i:09d}X,{i * 1.25},Qingdao,"a note on row {i}, '
                         f'long enough to make a ~100-byte row"\n' for i in range(200_000))
        else:
            f.writelines(json.dumps({"id": i, "company": f"91370200{i:09d}X",
                                     "revenue": i * 1.25, "city": "Qingdao",
                                     "note": f"a note on row {i}"}) + "\n"
                         for i in range(200_000))
    size = path.stat().st_size
    assert size > 15_000_000
    count = 0
    tracemalloc.start()
    try:
        rows = open_rows(path, batch_size=1000)
        for batch in rows.batches():
            count += len(batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 200_000 == rows.row_count
    assert peak < size / 8, f"peak {peak} bytes while streaming a {size}-byte file"


# --- properties: the fast paths agree with the rule --------------------------------------------
NUMBERISH = st.one_of(
    st.integers(min_value=-(1 << 70), max_value=1 << 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.2f}"),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda f: f"{f:.6g}"),
    st.text(alphabet="0123456789.-+e", max_size=20),
    st.sampled_from(["", "0", "-0", "007", "0.0", "-0.0", "1.0", "10.50", "0.0001", "0.00001",
                     "1e+16", "1e16", "123456789012345.0", "1234567890123456.0", " 1", "1_0"]),
)
# a lone \r is refused (rows end in \n or \r\n) and csv.writer leaves it unquoted, so none here
CELL = st.one_of(NUMBERISH, st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"),
                                    max_size=12))


def _kind(value: object) -> int:
    return KINDS.index({type(None): "null", int: "integer", float: "real",
                        str: "text"}[type(value)])


@given(column=st.lists(NUMBERISH, min_size=1, max_size=30), kind=st.integers(0, 3))
@settings(max_examples=600, deadline=None)
def test_column_typing_agrees_with_the_cell_rule(column: list[str], kind: int) -> None:
    values, found = _typed_column(tuple(column), kind)
    expected = [cell_value(c) for c in column] if kind < 3 else [c or None for c in column]
    assert [(type(v), cell_text(v)) for v in values] == [(type(v), cell_text(v))
                                                         for v in expected]
    assert max(found, kind) == max([kind, *(_kind(v) for v in expected)])  # kinds only widen
    assert all(math.isfinite(v) for v in values if isinstance(v, float))


NAMES = st.lists(st.from_regex(_FIELD_NAME, fullmatch=True), min_size=1, max_size=4,
                 unique_by=str.lower)


@given(names=NAMES, data=st.data(), line_end=st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=200, deadline=None)
def test_any_table_written_as_csv_reads_back_cell_for_cell(
        tmp_path_factory: pytest.TempPathFactory, names: list[str], data: st.DataObject,
        line_end: str) -> None:
    table = data.draw(st.lists(st.lists(CELL, min_size=len(names), max_size=len(names)),
                               max_size=12))
    out = io.StringIO()
    csv.writer(out, lineterminator=line_end).writerows([names, *table])
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    rows, got = _all_rows(path, batch_size=5)
    assert rows.fields == tuple(names)
    assert [[cell_text(v) for v in row] for row in got] == table
    for index, name in enumerate(names):
        kinds = [_kind(cell_value(row[index])) for row in table]
        assert rows.types()[name] == KINDS[max(kinds, default=0)]


@given(names=NAMES, data=st.data(), line_end=st.sampled_from(["\n", "\r\n"]),
       filler=st.sampled_from(["1", "x", "2.5", ""]))
@settings(max_examples=60, deadline=None)
def test_any_table_far_into_a_file_reads_back_cell_for_cell(
        tmp_path_factory: pytest.TempPathFactory, names: list[str], data: st.DataObject,
        line_end: str, filler: str) -> None:
    """As above, after a first chunk of filler rows: the table's chunks are read as cells."""
    table = data.draw(st.lists(st.lists(CELL, min_size=len(names), max_size=len(names)),
                               min_size=1, max_size=40))
    fill = [[filler or "z"] * len(names)] * (CHUNK_BYTES // (2 * len(names)) + 1)
    out = io.StringIO()
    csv.writer(out, lineterminator=line_end).writerows([names, *fill, *table])
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    rows, got = _all_rows(path, batch_size=7)
    assert [[cell_text(v) for v in row] for row in got[len(fill):]] == table
    for index, name in enumerate(names):
        kinds = [_kind(cell_value(row[index])) for row in [*fill, *table]]
        assert rows.types()[name] == KINDS[max(kinds)]


SCALAR = st.one_of(st.none(), st.booleans(), st.integers(INT_MIN, INT_MAX),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8))


@given(names=NAMES, data=st.data(), ascii_only=st.booleans())
@settings(max_examples=150, deadline=None)
def test_any_json_lines_read_back_value_for_value(
        tmp_path_factory: pytest.TempPathFactory, names: list[str], data: st.DataObject,
        ascii_only: bool) -> None:
    table = data.draw(st.lists(st.lists(SCALAR, min_size=len(names), max_size=len(names)),
                               min_size=1, max_size=12))
    path = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    path.write_text("".join(json.dumps(dict(zip(names, row, strict=True)),
                                       ensure_ascii=ascii_only) + "\n" for row in table),
                    encoding="utf-8")
    rows, got = _all_rows(path, batch_size=5)
    assert rows.fields == tuple(names)
    expected = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in table]
    assert [[(type(v), v) for v in row] for row in got] == [[(type(v), v) for v in row]
                                                            for row in expected]
