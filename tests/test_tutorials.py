"""Every tutorial notebook runs top to bottom in fast mode (NPXCEPTION_FAST=1).

The executed copies go to a temporary folder; the stored notebooks (with the outputs of a full run)
are left untouched. A failing cell fails the test with the cell's traceback.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def _runner():
    spec = importlib.util.spec_from_file_location("tutorials_run_all", TUTORIALS / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = _runner()
NOTEBOOKS = RUNNER.notebooks()


def test_every_notebook_is_collected():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 9)]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path):
    # A failing cell raises nbclient's CellExecutionError, with the cell and its traceback.
    executed = RUNNER.execute(path, fast=True, cwd=tmp_path)
    nbformat.write(executed, tmp_path / path.name)  # pytest keeps the last runs: open it to look
    last = executed.cells[-1]
    printed = "".join(out.get("text", "") for out in last.get("outputs", []))
    assert "notebook runtime" in printed and "(fast mode)" in printed, (
        f"{path.name} did not run to its last cell in fast mode: {printed!r}")
