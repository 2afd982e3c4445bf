"""Reading an operator's dataset file: CSV or JSON Lines, streamed in batches, strictly checked.

``dataset add`` must import a million rows with bounded memory and must refuse a malformed
file without storing anything, so this module reads the file in chunks, checks every line as it
goes, and raises :class:`~node.errors.MalformedFile` naming the first bad line. The importer
wraps the whole stream in one transaction; a refusal mid-stream therefore leaves nothing.

The rules, in one place:

Files
  The format comes from the extension (``.csv``; ``.jsonl`` or ``.ndjson``) unless ``format``
  says otherwise. Text is UTF-8 (a leading byte-order mark is ignored, as Excel writes one);
  invalid UTF-8 and NUL bytes are refused. Lines end with ``\\n`` or ``\\r\\n``. Line numbers
  count ``\\n`` from 1; a byte-level problem names the line holding the byte, a row-level
  problem names the line where the row starts. Blank lines at the end are ignored; a blank line
  followed by more rows is refused. A physical line may hold at most 16 MiB.

Field names
  1-64 ASCII letters, digits, ``_``, ``-`` or ``.``, starting with a letter or digit (the rule
  of :mod:`node.ids`): never ``_``-prefixed, so they cannot collide with the importer's own
  columns, and never a Unicode look-alike. Names must be distinct ignoring case, because SQLite
  column names are. At most :data:`MAX_FIELDS` fields. CSV header cells are stripped of
  surrounding whitespace first; JSON keys are taken exactly.

CSV
  RFC 4180: comma-separated, double quotes, ``""`` for a quote inside a quoted cell, line
  breaks allowed inside quoted cells; the first record is the header, every row has exactly its
  number of cells, a header-only file is a valid dataset of 0 rows. Cells become values by one
  rule that never loses a character: an empty cell is ``None``; a cell that *is* how Python
  prints an integer within 64 bits (``"-12"``, ``"0"``; not ``"007"``, ``"+5"``, ``"-0"``,
  ``" 5"``, ``"1_000"``) is that ``int``; a cell that *is* how Python prints a finite float
  (``repr``: ``"2.5"``, ``"100.0"``, ``"1e+16"``; not ``"2.50"``, ``".5"``, ``"1e5"``, ``"nan"``)
  is that ``float``; anything else stays ``str``. Quoting does not matter (``"12"`` is 12), and
  once a column has held text its later cells stay ``str``, as the column is text anyway. So
  :func:`cell_text` of any value gives back its cell exactly, and the importer can restore a
  text column whose earlier batches held numbers. In a single-column file an empty value is
  written ``""``, since a blank line is a blank line. A quote inside an unquoted cell is kept as
  a character, as :mod:`csv` does.

JSON Lines
  One JSON object per line; the keys of the first object, in order, are the fields, and every
  object has exactly those keys, each once, in any order. Values are strings, numbers, booleans
  or null; nested objects and arrays, NaN/Infinity, numbers outside the finite double range,
  integers outside 64 bits, strings holding NUL or lone surrogates are refused. ``true`` and
  ``false`` become ``1`` and ``0``: SQLite has no boolean and spells TRUE/FALSE that way. A
  JSON string stays a string even if it looks like a number, and ``""`` stays ``""``.

Types
  :meth:`RowFile.types` gives per field the widest kind seen: ``null`` (only empty) <
  ``integer`` < ``real`` < ``text``. :meth:`RowFile.numbers_before_text` names, per CSV field
  that turned to text, the rows that may still hold numbers, so the importer gives back their
  text to those rows only.

Speed: this is the import hot path, so the work is done a chunk (64 KiB) at a time in C-level
calls, and rows travel as one flat list of values per chunk (``value_batches``; a multi-row
``INSERT`` binds it as it is), not a tuple each. A plain chunk (no quote, no blank line, no
lone ``\\r``) whose lines each hold ``width - 1`` commas, as one ``bytes.translate`` shows, is
split into cells by one ``str.split``; other lines are split with ``str.split`` too (about 2.5x
faster than :mod:`csv`), except those holding a quote, which :mod:`csv` reads; a chunk where a
quoted cell spans lines, or most lines have quotes, is read by :mod:`csv` whole. Cells are
typed a column at a time with ``map(int, ...)``/``map(float, ...)`` guarded by whole-column
string checks; only a column that mixes kinds is typed cell by cell. The file is hashed as it
is read (``RowFile.digest``). Line numbers are worked out only when something is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import contains, itemgetter
from pathlib import Path
from typing import Any, Literal, cast

from node.errors import MalformedFile, UsageError

Value = int | float | str | None
Row = tuple[Value, ...]
Format = Literal["csv", "jsonl"]

FORMATS_BY_SUFFIX: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_FIELDS = 1000  # SQLite allows 2000 columns by default; the importer adds its own
MAX_LINE_BYTES = 16 << 20
QUOTES_PER_LINE = 1.0  # above this, csv reads a chunk faster whole than line by line
CHUNK_BYTES = 64 << 10  # a few hundred rows: amortizes per-chunk work and stays in cache
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
KINDS = ("null", "integer", "real", "text")
_NULL, _INTEGER, _REAL, _TEXT = range(4)

_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_BOM = b"\xef\xbb\xbf"


def open_rows(path: Path, *, batch_size: int = 1000, format: Format | None = None) -> RowFile:
    """Open a dataset file and read its field names; the rows are read by ``batches()``."""
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, found {batch_size}")
    if format is None:
        found = FORMATS_BY_SUFFIX.get(path.suffix.lower())
        if found is None:
            raise MalformedFile(f"{path}: expected a .csv, .jsonl or .ndjson file, "
                                f"found {path.suffix or 'no extension'!r}")
        format = found
    elif format not in ("csv", "jsonl"):
        raise UsageError(f"format must be 'csv' or 'jsonl', found {format!r}")
    source = _Source(path)
    fields = _read_csv_header(source) if format == "csv" else _read_jsonl_header(source)
    return RowFile(path, format, fields, batch_size)


def cell_text(value: Value) -> str:
    """The CSV cell a typed value came from: the inverse of the CSV typing rule."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


class RowFile:
    """A dataset file whose header has been read and checked; ``batches()`` streams the rows.

    ``row_count`` and ``types()`` describe the rows streamed so far and are final once
    ``complete`` is true, i.e. once ``batches()`` has been consumed to the end.
    """

    def __init__(self, path: Path, format: Format, fields: tuple[str, ...],
                 batch_size: int) -> None:
        self.path = path
        self.format: Format = format
        self.fields = fields
        self.batch_size = batch_size
        self.row_count = 0
        self.complete = False
        self.digest = ""
        self._kinds = [_NULL] * len(fields)
        self._spans = [range(0)] * len(fields)

    def types(self) -> dict[str, str]:
        return {field: KINDS[kind] for field, kind in zip(self.fields, self._kinds, strict=True)}

    def numbers_before_text(self) -> dict[str, range]:
        """Per CSV field that turned to text, the rows (from 0) that may still hold numbers.

        CSV typing reads ``12`` as a number until its column shows text, so the rows before
        (and those of the chunk where it did) may hold numbers that :func:`cell_text` turns
        back into their cells. A field that was text from its first cell has none.
        """
        return {field: span for field, kind, span in
                zip(self.fields, self._kinds, self._spans, strict=True)
                if kind == _TEXT and span}

    def batches(self) -> Iterator[list[Row]]:
        """Rows as tuples in ``fields`` order, ``batch_size`` at a time (the last may be short)."""
        width = len(self.fields)
        for values in self.value_batches(self.batch_size):
            yield list(zip(*[iter(values)] * width, strict=True))

    def value_batches(self, size: int) -> Iterator[list[Value]]:
        """The same rows, ``size`` at a time, each batch one flat list of values row after row.

        What a multi-row ``INSERT`` binds, without a tuple per row. Reading the file also
        hashes it: ``digest`` is its SHA-256 (hex) once ``complete``, so the bytes registered
        are the bytes imported, read once.
        """
        if size < 1:
            raise UsageError(f"batch size must be at least 1, found {size}")
        self.row_count, self.complete, self.digest = 0, False, ""
        self._kinds = [_NULL] * len(self.fields)
        self._spans = [range(0)] * len(self.fields)
        digest = hashlib.sha256()
        source = _Source(self.path, digest.update)
        chunks = (_csv_values(source, self.fields, self._kinds, self._spans)
                  if self.format == "csv" else _jsonl_values(source, self.fields, self._kinds))
        width = len(self.fields)
        step = size * width
        pending: list[Value] = []
        for values in chunks:
            if pending:
                pending.extend(values)
            else:
                pending = values
            if len(pending) >= step:
                start = 0
                while len(pending) - start >= step:
                    self.row_count += size
                    yield pending[start:start + step]
                    start += step
                del pending[:start]
        if pending:
            self.row_count += len(pending) // width
            yield pending
        self.digest = digest.hexdigest()
        self.complete = True


# --- bytes to text -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    path: Path
    on_read: Callable[[bytes], None] | None = None  # sees every byte of the file, in order

    def error(self, line: int, what: str) -> MalformedFile:
        return MalformedFile(f"{self.path}, line {line}: {what}")

    def chunks(self) -> Generator[str, None, None]:
        """The file's text in pieces of about ``CHUNK_BYTES``, each ending at a line end.

        NUL bytes and invalid UTF-8 are refused after the lines before them have been yielded,
        so the caller still finds an earlier problem first. Line numbers are the caller's to
        count (it splits the lines anyway); this only counts them when it refuses.
        """
        try:
            with self.path.open("rb") as f:
                yield from self._chunks(f)
        except OSError as e:
            raise MalformedFile(f"cannot read the dataset file {self.path}: "
                                f"{e.strerror or 'read error'}") from None

    def _chunks(self, f: io.BufferedReader) -> Iterator[str]:
        offset = 0  # of the next chunk in the file
        held: list[bytes] = []  # the start of a line longer than one read
        held_size = 0
        while True:
            data = f.read(CHUNK_BYTES)
            if self.on_read is not None:
                self.on_read(data)
            cut = data.rfind(b"\n") + 1
            if data and not cut:
                held.append(data)
                held_size += len(data)
                if held_size > MAX_LINE_BYTES:
                    raise self.error(self._line_at(offset), "expected lines of at most "
                                     f"{MAX_LINE_BYTES >> 20} MiB, found a longer one")
                continue
            chunk = b"".join([*held, data[:cut]]) if held else data[:cut] if data else b""
            held, held_size = ([data[cut:]], len(data) - cut) if cut < len(data) else ([], 0)
            start = 0
            if offset == 0 and chunk.startswith(_BOM):
                start = len(_BOM)
            bad = chunk.find(b"\x00", start)
            problem = "expected text, found a NUL byte"
            try:
                text = chunk[start:bad if bad >= 0 else len(chunk)].decode("utf-8")
            except UnicodeDecodeError as e:
                bad, problem = start + e.start, "expected UTF-8 text, found an invalid byte"
            if bad >= 0:
                good = chunk.rfind(b"\n", 0, bad) + 1
                if good > start:
                    yield chunk[start:good].decode("utf-8")
                raise self.error(self._line_at(offset) + chunk.count(b"\n", 0, bad), problem)
            if text:
                yield text
            if not data:
                return
            offset += len(chunk)

    def _line_at(self, offset: int) -> int:
        """The number of the line starting at byte ``offset``: read again, on refusals only."""
        lines = 1
        with self.path.open("rb") as f:
            while offset > 0:
                data = f.read(min(offset, CHUNK_BYTES))
                if not data:
                    break
                lines += data.count(b"\n")
                offset -= len(data)
        return lines


def _split_lines(text: str) -> list[str] | None:
    """The lines of ``text`` without their ends, if each ends in ``\\n`` or ``\\r\\n``."""
    if "\r" not in text:
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()
        return lines
    if any(other in text for other in _OTHER_LINE_BREAKS):
        return None
    lines = text.splitlines()  # one pass, where split("\r\n") plus checks take three
    return lines if len(lines) == text.count("\n") + (not text.endswith("\n")) else None


_OTHER_LINE_BREAKS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # str.splitlines() splits at these


# --- field names -----------------------------------------------------------------------------
def _check_fields(names: Sequence[str], source: _Source, what: str) -> tuple[str, ...]:
    if len(names) > MAX_FIELDS:
        raise source.error(1, f"expected at most {MAX_FIELDS} fields, found {len(names)}")
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if not name:
            raise source.error(1, f"expected a field name in every {what}, found an empty one "
                                  f"at position {number}")
        if not _FIELD_NAME.fullmatch(name):
            raise source.error(1, "expected field names of 1-64 ASCII letters, digits, '_', "
                                  "'-' or '.' starting with a letter or digit, found "
                                  f"{_shown(name)} at position {number}")
        earlier = seen.setdefault(name.lower(), number)
        if earlier != number:
            raise source.error(1, "expected distinct field names (ignoring case), found "
                                  f"{_shown(name)} at positions {earlier} and {number}")
    return tuple(names)


def _shown(name: str) -> str:
    return ascii(name) if len(name) <= 70 else ascii(name[:64]) + "..."


# --- CSV -----------------------------------------------------------------------------------
class _Records:
    """The CSV records of one chunk; their start lines are worked out only when needed."""

    def __init__(self, source: _Source, line: int, text: str, rows: list[list[str]],
                 plain: bool) -> None:
        self.source, self.line, self.text, self.rows, self.plain = source, line, text, rows, plain
        self._starts: list[int] | None = None

    def start(self, index: int) -> int:
        if self.plain:
            return self.line + index
        if self._starts is None:
            ends = _csv_line_ends(self.text)[0]
            self._starts = [self.line + end for end in [0, *ends]]
        return self._starts[index]


def _csv_line_ends(text: str) -> tuple[list[int], csv.Error | None]:
    """The line count after each record of ``text``, and the error that stopped it if any."""
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    ends: list[int] = []
    try:
        for _ in reader:
            ends.append(reader.line_num)
    except csv.Error as e:
        return ends, e
    return ends, None


@dataclass(frozen=True)
class _Cells:
    """A chunk of plain rows (see :func:`_plain_cells`): its cells, row after row."""

    values: list[Value]
    rows: int


def _csv_records(source: _Source, width: int = 0) -> Generator[_Records | _Cells, None, None]:
    """The chunks of the file as records; given the ``width`` of a row, plain chunks after
    the first as their cells (the first holds the header, which is checked by records)."""
    limit = csv.field_size_limit()
    line = 1  # the number of the first line of ``text``
    held = ""  # the start of a record cut by a chunk end, read again with what follows
    waiting: list[str] = []  # text read after ``held``: at least as much before re-reading
    for text in chain(source.chunks(), [""]):
        last = not text
        if held:
            waiting.append(text)
            read = sum(map(len, waiting))
            if not last and read < len(held) and read + len(held) <= MAX_LINE_BYTES:
                continue  # re-reading only after doubling keeps a long record linear
            text, held, waiting = held + "".join(waiting), "", []
        elif last:
            return
        if width and line > 1:
            cells = _plain_cells(text, width, limit)
            if cells is not None:
                yield cells
                line += cells.rows
                continue
        quoted = '"' in text
        lines = _split_lines(text)
        if (lines is not None and all(lines)
                and (len(text) <= limit or max(map(len, lines)) <= limit)
                and (not quoted or _few_quotes(text, len(lines)))):
            split = _split_records(lines) if quoted else list(map(str.split, lines, repeat(",")))
            if split is not None:
                yield _Records(source, line, text, split, True)
                line += len(lines)
                continue
        rows: list[list[str]] = []
        reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
        try:
            rows.extend(reader)
        except csv.Error as e:
            ends, _ = _csv_line_ends(text)
            done = ends[-1] if ends else 0
            cut = str(e) == "unexpected end of data"
            if not cut or last:
                if rows:  # none when the chunk's first record is the bad one: its refusal
                    yield _Records(source, line, text, rows, False)
                raise source.error(line + done, "expected a closing quote, found the end of "
                                   "the file" if cut else _csv_problem(e, limit)) from None
            at = _line_offset(text, done)
            held = text[at:]
            if len(held) > MAX_LINE_BYTES:
                raise source.error(line + done, f"expected records of at most "
                                                f"{MAX_LINE_BYTES >> 20} MiB, found a longer "
                                                "one (is a quote left open?)") from None
            if done:
                yield _Records(source, line, text[:at], rows, False)
                line += done
            continue
        yield _Records(source, line, text, rows, False)
        line += reader.line_num


_SEPARATORS = b",\n"
_NOT_SEPARATORS = bytes(sorted(set(range(256)) - set(_SEPARATORS)))


def _plain_cells(text: str, width: int, limit: int) -> _Cells | None:
    """The cells of a chunk of plain lines, each a row of ``width`` cells, else None.

    Plain: no quote, no blank line, no ``\\r`` but in ``\\r\\n``, no cell above the csv
    field limit. Then :mod:`csv` would split each line at its commas, and so does one
    ``str.split`` of the whole chunk, without a list per row; that each line holds
    ``width - 1`` commas is checked on the chunk's commas and line ends alone. Anything
    else (a ragged row too) is left to the line-by-line reader, which finds the bad line.
    """
    if '"' in text:
        return None
    if "\r" in text:
        if text.count("\r") != text.count("\r\n"):
            return None
        text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"  # the last line of a file without a line end
    if width == 1:
        if "," in text:
            return None
        cells = text.split("\n")
        cells.pop()  # after the last line end
        if "" in cells:  # a blank line
            return None
    else:  # one row of separators per line, so no blank line either
        separators = text.encode().translate(None, _NOT_SEPARATORS)
        if separators != (b"," * (width - 1) + b"\n") * (len(separators) // width):
            return None
        cells = text.replace("\n", ",").split(",")
        cells.pop()  # after the last line end
    if len(text) > limit and max(map(len, cells)) > limit:
        return None
    return _Cells(cast(list[Value], cells), len(cells) // width)


def _few_quotes(text: str, lines: int) -> bool:
    """Whether splitting lines beats csv: judged on the chunk's start, as counting costs."""
    sample = min(len(text), 4096)
    return text.count('"', 0, sample) * len(text) <= QUOTES_PER_LINE * lines * sample


def _split_records(lines: list[str]) -> list[list[str]] | None:
    """The records of ``lines`` if each line is one: split, but lines with quotes by csv.

    None when a quoted cell spans lines or a line is malformed; the caller then reads the
    whole chunk with csv, which also finds the error.
    """
    rows = list(map(str.split, lines, repeat(",")))
    quoted = list(compress(range(len(lines)), map(contains, lines, repeat('"'))))
    try:
        parsed = list(csv.reader([lines[i] for i in quoted], strict=True))
    except csv.Error:
        return None
    if len(parsed) != len(quoted):
        return None
    for index, row in zip(quoted, parsed, strict=True):
        rows[index] = row
    return rows


def _line_offset(text: str, index: int) -> int:
    """Where line ``index`` (from 0) of ``text`` starts; searched from the end, where it is."""
    at = len(text)
    if index:
        for _ in range(text.count("\n") - index + 1):
            at = text.rindex("\n", 0, at)
        at += 1
    return at if index else 0


def _csv_problem(error: csv.Error, limit: int) -> str:
    message = str(error)
    if message.startswith("',' expected after"):
        return "expected a comma or a line end after a closing quote, found another character"
    if message.startswith("new-line character seen in unquoted field"):
        return "expected lines to end with \\n or \\r\\n, found a lone \\r outside quotes"
    if message.startswith("field larger than field limit"):
        return f"expected cells of at most {limit} characters, found a longer one"
    return f"expected RFC 4180 CSV, found a malformed record ({message})"


def _read_csv_header(source: _Source) -> tuple[str, ...]:
    records = _csv_records(source)  # without a width: records only, never cells
    try:
        return _csv_header(cast(_Records | None, next(records, None)), source)
    finally:
        records.close()


def _csv_header(records: _Records | None, source: _Source) -> tuple[str, ...]:
    if records is None:
        raise source.error(1, "expected a header row, found an empty file")
    header = records.rows[0]
    if not header:
        raise source.error(1, "expected a header row, found a blank line")
    return _check_fields([cell.strip() for cell in header], source, "header cell")


def _csv_values(source: _Source, fields: tuple[str, ...], kinds: list[int],
                spans: list[range]) -> Iterator[list[Value]]:
    """The typed values of each chunk, row after row; widens ``kinds`` as it goes and notes in
    ``spans`` the rows that may hold numbers of a column that turned to text."""
    width = len(fields)
    blank = 0  # the first blank line seen: allowed only if nothing but blank lines follows
    header = True
    seen = 0  # rows before this chunk
    starts = [0] * width  # per column, the first row of the chunk where it stopped being null
    for records in _csv_records(source, width):
        if isinstance(records, _Cells):
            if blank:
                raise source.error(blank, "expected a row, found a blank line before more rows")
            values, count = records.values, records.rows
        else:
            rows, skip = records.rows, 0
            if header:
                if _csv_header(records, source) != fields:
                    raise source.error(1, "expected the header read when the file was opened, "
                                          "found another one (the file changed)")
                header, skip = False, 1
            if skip or blank or set(map(len, rows)) != {width}:
                rows, blank = _checked_rows(records, skip, width, blank)
                if not rows:
                    continue
            values, count = list(chain.from_iterable(rows)), len(rows)
        for index in range(width):
            column = cast(list[str], values[index::width])
            typed, kind = _typed_column(column, kinds[index])
            if kind > kinds[index]:
                if kinds[index] == _NULL:
                    starts[index] = seen
                if kind == _TEXT and (kinds[index] > _NULL or _NUMBERS & set(map(type, typed))):
                    spans[index] = range(starts[index], seen + count)
                kinds[index] = kind
            if typed is not column:
                values[index::width] = typed
        seen += count
        yield values


_NUMBERS = {int, float}


def _checked_rows(records: _Records, skip: int, width: int,
                  blank: int) -> tuple[list[list[str]], int]:
    """The rows from ``skip`` on, checked one by one: the slow path, for odd chunks only."""
    checked = []
    for index in range(skip, len(records.rows)):
        row = records.rows[index]
        if not row:
            blank = blank or records.start(index)
        elif blank:
            raise records.source.error(blank, "expected a row, found a blank line before more "
                                              "rows")
        elif len(row) != width:
            raise records.source.error(records.start(index), f"expected {width} cells as in "
                                                             f"the header, found {len(row)}")
        else:
            checked.append(row)
    return checked, blank


# --- CSV cell typing ---------------------------------------------------------------------------
def _typed_column(column: Sequence[str], kind: int) -> tuple[Sequence[Value], int]:
    """The values of one column of a chunk and the widest kind among them."""
    if kind == _TEXT:  # already text: no cell can widen it, only empty cells change
        return (column if all(column) else [cell or None for cell in column]), _TEXT
    if not all(column):  # some cell is empty (all() is quicker than '"" in column')
        present = [cell for cell in column if cell]
        if not present:
            return [None] * len(column), _NULL
        values, found = _typed_present(present, kind)
        it = iter(values)
        return [next(it) if cell else None for cell in column], found
    return _typed_present(column, kind)


def _typed_present(column: Sequence[str], kind: int) -> tuple[Sequence[Value], int]:
    if kind <= _INTEGER:
        ints = _as_ints(column)
        if ints is not None:
            return ints, _INTEGER
    floats = _as_floats(column)
    if floats is not None:
        return floats, _REAL
    values = list(map(cell_value, column))
    found = set(map(type, values))
    return values, (_TEXT if str in found else _REAL if float in found else _INTEGER)


def cell_value(cell: str) -> Value:
    """The CSV typing rule for one cell (see the module docstring); never loses a character."""
    if not cell:
        return None
    try:
        number = int(cell)
    except ValueError:
        try:
            real = float(cell)
        except ValueError:
            return cell
        return real if math.isfinite(real) and repr(real) == cell else cell
    return number if INT_MIN <= number <= INT_MAX and str(number) == cell else cell


_INT_CHARS = b"0123456789-\n"
_FLOAT_CHARS = b"0123456789.e+-\n"  # what repr() of a finite float uses


def _as_ints(column: Sequence[str]) -> list[int] | None:
    """All cells as ints if every one is a canonical 64-bit integer, else None.

    Whole-column checks stand in for ``str(int(cell)) == cell``: only digits and '-', which
    ``int()`` accepts only as ``-?[0-9]+``; no leading zero unless the cell is ``0``; no ``-0``.
    When the least cell is at least ``"1"`` none starts with '-' or '0', which settles the
    last two in one pass (searching the joined cells for ``"\\n0"`` costs several).
    """
    joined = "\n\n".join(column)
    if not joined.isascii() or joined.encode().translate(None, _INT_CHARS):
        return None
    try:
        ints = list(map(int, column))
    except ValueError:
        return None
    if min(column) >= "1":
        return ints if max(ints) <= INT_MAX else None
    framed = f"\n{joined}\n"
    if "-0" in framed or framed.count("\n0") != framed.count("\n0\n"):
        return None
    if min(ints) < INT_MIN or max(ints) > INT_MAX:
        return None
    return ints


def _as_floats(column: Sequence[str]) -> list[float] | None:
    """All cells as floats if every one is ``repr`` of a finite float, else None.

    A cell ``-?(0|[1-9][0-9]*)\\.[0-9]+`` without trailing zeros (but ``N.0``), at most 16
    characters (so at most 15 significant digits, which a double keeps exactly) and not below
    1e-4 is ``repr(float(cell))``: whole-column string checks settle that without ``repr``,
    which costs more than everything else here. When the least cell is at least ``"1"``, none
    starts with '-', '.' or '0', and the checks of how cells start are settled in one pass.
    Other columns compare with ``repr``.
    """
    joined = "\n\n".join(column)
    if not joined.isascii() or joined.encode().translate(None, _FLOAT_CHARS):
        return None
    try:
        floats = list(map(float, column))
    except ValueError:
        return None
    framed = f"\n{joined}\n"
    if ("e" not in joined and "+" not in joined and joined.count(".") == len(column)
            and ".\n" not in framed and framed.count("0\n") == framed.count(".0\n")
            and max(map(len, column)) <= 16
            and (min(column) >= "1" or _starts_as_repr(framed))):
        return floats
    if list(map(repr, floats)) == list(column) and all(map(math.isfinite, floats)):
        return floats
    return None


def _starts_as_repr(framed: str) -> bool:
    """Whether each cell of a float column starts as repr writes it (see :func:`_as_floats`):
    '-' only first, a digit before the point, no leading zero, not below 1e-4."""
    return ("\n." not in framed and "-." not in framed
            and framed.count("-") == framed.count("\n-")
            and framed.count("\n0") == framed.count("\n0.")
            and framed.count("\n-0") == framed.count("\n-0.")
            and "\n0.0000" not in framed and "\n-0.0000" not in framed)


# --- JSON Lines --------------------------------------------------------------------------------
class _Object(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, so duplicate keys stay visible."""


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    raise _NonFinite(name)


_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")  # \u0000 or a surrogate half
_ALLOWED = frozenset({str, int, float, bool, type(None)})
_first_char = _first_item = itemgetter(0)
_second_item = itemgetter(1)
_last_char = itemgetter(-1)


def _read_jsonl_header(source: _Source) -> tuple[str, ...]:
    chunks = source.chunks()
    try:
        first = next(chunks, None)
    finally:
        chunks.close()
    if first is None:
        raise source.error(1, "expected a JSON object, found an empty file")
    line = first.partition("\n")[0]
    if not line.strip(" \t\r"):
        raise source.error(1, "expected a JSON object, found a blank line")
    names = [key for key, _ in _parse_object(line, 1, source)]
    return _check_fields(names, source, "key of the first object")


def _parse_object(line: str, number: int, source: _Source) -> _Object:
    try:
        parsed = json.loads(line, object_pairs_hook=_Object, parse_constant=_refuse_constant)
    except _NonFinite as e:
        raise source.error(number, f"expected finite numbers, found {e}") from None
    except json.JSONDecodeError as e:
        raise source.error(number, f"expected a JSON object, found invalid JSON ({e.msg} at "
                                   f"column {e.colno})") from None
    except (ValueError, RecursionError):
        raise source.error(number, "expected a JSON object, found invalid JSON (a number too "
                                   "long or nesting too deep)") from None
    if not isinstance(parsed, _Object):
        raise source.error(number, f"expected a JSON object, found {_json_kind(parsed)}")
    return parsed


def _json_kind(value: object) -> str:
    if isinstance(value, _Object):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {str: "a string", int: "a number", float: "a number"}.get(type(value), "null")


def _jsonl_values(source: _Source, fields: tuple[str, ...],
                  kinds: list[int]) -> Iterator[list[Value]]:
    """The values of each chunk, row after row; widens ``kinds`` as it goes."""
    line = 1  # the number of the first line of ``text``
    blank = 0  # the first blank line seen: allowed only if nothing but blank lines follows
    for text in source.chunks():
        lines = _split_lines(text)
        values = None
        if lines and not blank:
            values = _jsonl_fast(text, lines, fields, kinds)
        if values is None or lines is None:
            lines = text.split("\n")
            if not lines[-1]:
                lines.pop()
            rows, blank = _jsonl_slow(lines, line, fields, kinds, source, blank)
            values = list(chain.from_iterable(rows))
        line += len(lines)
        if values:
            yield values


def _jsonl_fast(text: str, lines: list[str], fields: tuple[str, ...],
                kinds: list[int]) -> list[Value] | None:
    """The values, row after row, of a chunk of well-formed objects with the header's keys in
    order, else None.

    The chunk is parsed as one JSON array. That each line held exactly one object is ensured
    by: one item per line, every line starting with '{' and ending with '}', and no nested
    arrays or objects (an item spanning lines would need one).
    """
    if (not all(lines) or set(map(_first_char, lines)) != {"{"}
            or set(map(_last_char, lines)) != {"}"}
            or ("\\" in text and _SUSPECT_ESCAPE.search(text))):
        return None
    try:  # objects become tuples of pairs, arrays lists: neither is a value we accept
        items = json.loads(f"[{','.join(lines)}]", object_pairs_hook=tuple,
                           parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    width = len(fields)
    if len(items) != len(lines) or set(map(type, items)) != {tuple}:
        return None
    pairs = list(chain.from_iterable(items))
    if len(pairs) != width * len(items):
        return None
    if tuple(map(_first_item, pairs)) != fields * len(items):
        return None
    values: list[Value] = list(map(_second_item, pairs))
    found_kinds = []
    for index in range(width):
        column: Sequence[Any] = values[index::width]
        found = set(map(type, column))
        if not found <= _ALLOWED:
            return None
        if bool in found:
            column = [int(v) if type(v) is bool else v for v in column]
            values[index::width] = column
            found = found - {bool} | {int}
        if int in found:
            ints = column if found == {int} else [v for v in column if type(v) is int]
            if min(ints) < INT_MIN or max(ints) > INT_MAX:
                return None
        if float in found and not math.isfinite(sum(  # or beyond the double range: slow path
                column if found <= {int, float} else [v for v in column if type(v) is float])):
            return None
        found_kinds.append(_TEXT if str in found else _REAL if float in found
                           else _INTEGER if int in found else _NULL)
    kinds[:] = map(max, kinds, found_kinds)
    return values


def _jsonl_slow(lines: list[str], first: int, fields: tuple[str, ...], kinds: list[int],
                source: _Source, blank: int) -> tuple[list[Row], int]:
    """The rows of a chunk checked line by line; names the first bad line and key."""
    rows: list[Row] = []
    for number, line in enumerate(lines, start=first):
        if not line.strip(" \t\r"):
            blank = blank or number
            continue
        if blank:
            raise source.error(blank, "expected a JSON object, found a blank line before more "
                                      "rows")
        rows.append(_jsonl_row(_parse_object(line, number, source), number, fields, kinds,
                               source))
    return rows, blank


def _jsonl_row(pairs: _Object, number: int, fields: tuple[str, ...], kinds: list[int],
               source: _Source) -> Row:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise source.error(number, f"expected each key once, found {_shown(key)} twice")
        found[key] = value
    for key in found:
        if key not in fields:
            raise source.error(number, "expected only the keys of line 1, found the extra key "
                                       f"{_shown(key)}")
    row: list[Value] = []
    for index, field in enumerate(fields):
        if field not in found:
            raise source.error(number, f"expected the key {_shown(field)} as in line 1, found "
                                       "it missing")
        value = found[field]
        kind = _json_value_kind(value, field, number, source)
        if kind > kinds[index]:
            kinds[index] = kind
        row.append(int(value) if isinstance(value, bool) else value)
    return tuple(row)


def _json_value_kind(value: Any, field: str, number: int, source: _Source) -> int:
    kind = type(value)
    if value is None:
        return _NULL
    if kind is str:
        if "\x00" in value:
            raise source.error(number, f"expected text without NUL characters for the key "
                                       f"{_shown(field)}, found a \\u0000 escape")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise source.error(number, f"expected valid Unicode text for the key "
                                       f"{_shown(field)}, found a lone surrogate escape"
                               ) from None
        return _TEXT
    if kind is bool:
        return _INTEGER
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise source.error(number, f"expected an integer within 64 bits for the key "
                                       f"{_shown(field)}, found a larger one")
        return _INTEGER
    if kind is float:
        if not math.isfinite(value):
            raise source.error(number, f"expected a finite number for the key {_shown(field)},"
                                       " found one beyond the double range")
        return _REAL
    raise source.error(number, f"expected a string, number, boolean or null for the key "
                               f"{_shown(field)}, found {_json_kind(value)}")
