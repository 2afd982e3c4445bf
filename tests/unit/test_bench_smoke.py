"""The benchmarks still run: each at a tiny size, reporting positive figures beside baselines.

Nothing here is timed: the figures themselves are only checked to exist and be positive.
One workspace (real nodes, real processes) is shared by the cases, as ``make bench`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS
from bench.report import Report, markdown_table, text_table
from bench.workspace import TINY, Workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace(Path(tmp_path_factory.mktemp("bench")), TINY)
    try:
        yield ws
    finally:
        ws.stop_all()


@pytest.mark.parametrize("name", list(BENCHMARKS), ids=list(BENCHMARKS))
def test_benchmark_reports_positive_figures(workspace: Workspace, name: str) -> None:
    report = Report()
    BENCHMARKS[name](workspace, report)
    assert report.figures, f"{name} reported no figure"
    for figure in report.figures:
        assert figure.value > 0, figure
        assert figure.baseline and figure.baseline_value and figure.baseline_value > 0, figure
        assert figure.ratio is not None and figure.ratio > 0, figure
    assert len(text_table(report.figures).splitlines()) == len(report.figures) + 2
    assert markdown_table(report.figures).count("\n") == len(report.figures) + 1
