"""Known-answer vectors the tests check against, kept in the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VECTOR_COPY = REPO / "tests/vectors/transparency_vectors.json"
VECTOR_SHARED = REPO.parent / "shared/reference/transparency_vectors.json"


def load_transparency_vectors() -> dict[str, Any]:
    """The repository's copy first, so the tests never depend on shared/."""
    for path in (VECTOR_COPY, VECTOR_SHARED):
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    raise FileNotFoundError(f"no transparency vectors at {VECTOR_COPY} or {VECTOR_SHARED}")
