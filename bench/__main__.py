"""``python -m bench [NAME ...] [--quick]``: run benchmarks, print every figure beside its baseline.

NAME is one of ``import``, ``delivery``, ``scale``, ``negotiation``, ``audit`` (default: all,
in that order, so later ones reuse what earlier ones built). ``--quick`` runs small sizes
(under a minute); ``--markdown`` also prints the table as Markdown for BENCHMARKS.md;
``--json FILE`` writes every figure; ``--keep`` leaves the scratch folder behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench import audit, delivery, importing, negotiation, scale
from bench.report import Report, machine, markdown_table, text_table
from bench.workspace import FULL, QUICK, Workspace

BENCHMARKS: dict[str, Callable[[Workspace, Report], None]] = {
    "import": importing.run,
    "delivery": delivery.run,
    "scale": scale.run,
    "negotiation": negotiation.run,
    "audit": audit.run,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--dir", metavar="DIR", help="scratch folder (default: a new temp one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)

    info = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="trustspace-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace(root, QUICK if args.quick else FULL)
    report = Report()
    started = time.perf_counter()
    try:
        for name in names:
            clock = time.perf_counter()
            print(f"running {name} ...", flush=True)
            before = len(report.figures)
            BENCHMARKS[name](ws, report)
            print(text_table(report.figures[before:]), flush=True)
            print(f"  ({name}: {time.perf_counter() - clock:.0f} s)\n", flush=True)
    finally:
        ws.stop_all()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    total = time.perf_counter() - started
    print(f"all figures ({'quick' if args.quick else 'full'} sizes, {total:.0f} s):")
    print(text_table(report.figures))
    for note in report.notes:
        print(f"- {note}")
    if args.markdown:
        print()
        print(markdown_table(report.figures))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": info, "sizes": asdict(ws.sizes), "seconds": total, "notes": report.notes,
            "figures": [asdict(f) | {"ratio": f.ratio, "verdict": f.verdict}
                        for f in report.figures]}, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
