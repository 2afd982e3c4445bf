"""The generated gRPC code is exactly what ``make proto`` makes from proto/trustspace.proto.

The Makefile's own recipe is run (with this interpreter) in a scratch folder, and every
file it writes must equal the checked-in one byte for byte; a stale or hand-edited
connector/pb fails here with the command that refreshes it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PB = REPO / "connector" / "pb"
GENERATED = ("trustspace_pb2.py", "trustspace_pb2_grpc.py", "trustspace_pb2.pyi")


def proto_recipe() -> list[str]:
    """The single command of the Makefile's ``proto`` target, run by this interpreter."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("proto:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    assert len(recipe) == 1, f"the proto target should be one command, found {recipe}"
    words = shlex.split(recipe[0])
    assert words[0] == "$(BIN)/python", f"unexpected proto command {recipe[0]!r}"
    return [sys.executable, *words[1:]]


def test_the_generated_code_is_fresh(tmp_path: Path) -> None:
    shutil.copytree(REPO / "proto", tmp_path / "proto")
    result = subprocess.run(proto_recipe(), cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr

    made = tmp_path / "connector" / "pb"
    assert sorted(p.name for p in made.iterdir()) == sorted(GENERATED)
    stale = [name for name in GENERATED
             if (made / name).read_bytes() != (PB / name).read_bytes()]
    assert not stale, f"connector/pb/{', '.join(stale)} is stale: run 'make proto'"


def test_connector_pb_holds_only_generated_code() -> None:
    present = sorted(p.name for p in PB.iterdir() if p.is_file())
    assert present == sorted(["__init__.py", *GENERATED])
