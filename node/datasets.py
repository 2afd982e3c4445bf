"""Datasets: an operator's file imported into the node, rows kept in a table of their own.

The import streams the file in batches into one transaction together with its audit
entry: a malformed line anywhere leaves nothing behind. Rows sit in columns ``c0..cN`` in
the file's field order, so a delivery can project the agreed fields in SQL.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from node.errors import AlreadyExists, BadInput, MalformedFile, NotFound
from node.home import Home
from node.ids import check_id
from node.rowfile import cell_text, open_rows
from policies.terms import CLASSIFICATIONS

IMPORT_BATCH = 5000


@dataclass(frozen=True)
class Dataset:
    dataset_id: str
    classification: str
    fields: tuple[str, ...]
    types: dict[str, str]
    row_count: int
    row_table: str
    source_digest: str
    added_at: int

    def column_of(self, field: str) -> str:
        return f"c{self.fields.index(field)}"


def add_dataset(home: Home, dataset_id: str, path: Path, classification: str) -> Dataset:
    check_id(dataset_id, what="dataset id")
    if classification not in CLASSIFICATIONS:
        raise BadInput(f"classification must be one of {', '.join(CLASSIFICATIONS)}; "
                       f"found {classification!r}")
    if not path.is_file():
        raise MalformedFile(f"the dataset file {path} does not exist")
    if home.conn.execute("SELECT 1 FROM datasets WHERE dataset_id = ?",
                         (dataset_id,)).fetchone():
        raise AlreadyExists(f"dataset {dataset_id} already exists")
    digest = _file_digest(path)
    rows = open_rows(path, batch_size=IMPORT_BATCH)
    table = f"rows:{dataset_id}"
    columns = [f"c{i}" for i in range(len(rows.fields))]
    insert = (f'INSERT INTO "{table}" ({", ".join(columns)}) '
              f'VALUES ({", ".join("?" * len(columns))})')
    with home.change() as change:
        conn = change.conn
        conn.execute(f'CREATE TABLE "{table}" (_row INTEGER PRIMARY KEY, {", ".join(columns)})')
        for batch in rows.batches():
            conn.executemany(insert, batch)
        types = rows.types()
        if rows.format == "csv":
            _restore_text(conn, table, [i for i, t in enumerate(types.values()) if t == "text"])
        entry = change.audit.append("dataset.added", {
            "dataset": dataset_id, "classification": classification, "rows": rows.row_count,
            "fields": list(rows.fields), "source_digest": digest})
        conn.execute("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (dataset_id, classification, json.dumps(list(rows.fields)),
                      json.dumps(types), rows.row_count, table, digest, entry.time))
    return get_dataset(home, dataset_id)


def get_dataset(home: Home, dataset_id: str) -> Dataset:
    row = home.conn.execute("SELECT * FROM datasets WHERE dataset_id = ?",
                            (dataset_id,)).fetchone()
    if row is None:
        raise NotFound(f"no dataset {dataset_id!r} on this node; add it with "
                       "'trustspace dataset add'")
    return Dataset(row[0], row[1], tuple(json.loads(row[2])), json.loads(row[3]), row[4],
                   row[5], row[6], row[7])


def list_datasets(home: Home) -> list[Dataset]:
    ids = [r[0] for r in home.conn.execute("SELECT dataset_id FROM datasets ORDER BY 1")]
    return [get_dataset(home, i) for i in ids]


def _restore_text(conn: sqlite3.Connection, table: str, text_columns: list[int]) -> None:
    """Give back their cells' text to numbers stored in columns that turned out to be text.

    CSV typing reads ``12`` as a number until the column shows text (``node/rowfile.py``),
    so the rows before that hold numbers: a code column must not deliver ``12`` for one row
    and ``"ab"`` for the next. :func:`cell_text` restores each cell exactly as written.
    """
    for index in text_columns:
        column = f"c{index}"
        numbers = conn.execute(f'SELECT _row, {column} FROM "{table}" '
                               f"WHERE typeof({column}) IN ('integer', 'real')").fetchall()
        conn.executemany(f'UPDATE "{table}" SET {column} = ? WHERE _row = ?',
                         [(cell_text(value), row) for row, value in numbers])


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
