"""What a command prints: a short human line by default, one JSON object with --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: dict[str, Any], *human_lines: str) -> None:
        if self.as_json:
            print(json.dumps(data, sort_keys=True, ensure_ascii=False))
        else:
            for line in human_lines:
                print(line)

    def table(self, key: str, rows: Sequence[dict[str, Any]], columns: Sequence[str],
              empty: str) -> None:
        """A list: one JSON object ``{key: rows}``, or aligned columns for a person."""
        if self.as_json:
            print(json.dumps({key: list(rows)}, sort_keys=True, ensure_ascii=False))
            return
        if not rows:
            print(empty)
            return
        cells = [[str(r.get(c, "")) for c in columns] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())

    def progress(self, line: str) -> None:
        """A step of a long operation, for people only (stderr, so stdout stays parseable)."""
        if not self.as_json:
            print(line, file=sys.stderr)
