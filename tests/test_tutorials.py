"""Every tutorial notebook runs top to bottom in fast mode (NPXCEPTION_FAST=1), and the exercise
checks pass on the solutions and fail on the unsolved exercise files.

The executed copies go to a temporary folder; the stored notebooks (with the outputs of a full run)
are left untouched. A failing cell fails the test with the cell's traceback.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def _load(name: str, filename: str):
    spec = importlib.util.spec_from_file_location(name, TUTORIALS / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = _load("tutorials_run_all", "run_all.py")
BUILDER = _load("tutorials_build_notebooks", "build_notebooks.py")
NOTEBOOKS = RUNNER.notebooks()
SOLUTIONS = sorted((TUTORIALS / "solutions").glob("nb*.py"))


def test_every_notebook_is_collected():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) >= 8 and numbers == [f"{i:02d}" for i in range(1, len(numbers) + 1)], numbers


def test_every_notebook_has_exercises():
    for path in NOTEBOOKS[:7]:
        text = path.read_text()
        assert "## Exercises" in text and "YOUR TURN" in text and "check_" in text, path.name
    assert [p.stem for p in SOLUTIONS] == [f"nb{i:02d}" for i in range(1, 8)]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_exercise_files_match_the_solutions(solution):
    # The exercise files are written from the solutions; a stale one would grade the wrong task.
    stub = BUILDER.stub_text(solution)
    assert "BEGIN SOLUTION" not in stub and 'raise NotImplementedError("your turn")' in stub
    assert (TUTORIALS / "exercises" / solution.name).read_text() == stub, (
        f"tutorials/exercises/{solution.name} is stale: run python tutorials/build_notebooks.py")


def _grade(solutions: bool) -> tuple[int, int, str]:
    env = dict(os.environ, NPXCEPTION_SOLUTIONS="1" if solutions else "0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TUTORIALS.parent), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(TUTORIALS / "exercises")], cwd=TUTORIALS.parent, env=env,
                            capture_output=True, text=True)
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed)", result.stdout)}
    return counts.get("passed", 0), counts.get("failed", 0), result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_exercise_checks_pass_on_the_solutions():
    passed, failed, output = _grade(solutions=True)
    assert passed >= 17 and failed == 0, output


@pytest.mark.slow
def test_exercise_checks_fail_on_the_unsolved_exercises():
    passed, failed, output = _grade(solutions=False)
    assert passed == 0 and failed >= 17, output


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
