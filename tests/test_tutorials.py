"""Every tutorial notebook runs top to bottom in fast mode (NPXCEPTION_FAST=1), with the solutions
from tutorials/solutions/ put in its blank exercise cells; the exercise checks pass on the
solutions, fail on the unsolved exercise files and refuse the known shortcuts
(tutorials/exercises/test_grader.py); and no stored notebook shows a solution.

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
    assert len(numbers) >= 9 and numbers == [f"{i:02d}" for i in range(1, len(numbers) + 1)], numbers


EXERCISED = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # the notebooks with "your turn" exercises


def test_every_notebook_has_exercises():
    for path in NOTEBOOKS:
        if int(path.name[:2]) in EXERCISED:
            text = path.read_text()
            assert "## Exercises" in text and "YOUR TURN" in text and "check_" in text, path.name
    assert [p.stem for p in SOLUTIONS] == [f"nb{i:02d}" for i in EXERCISED]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_exercise_files_match_the_solutions(solution):
    # The exercise files are written from the solutions; a stale one would grade the wrong task.
    stub = BUILDER.stub_text(solution)
    assert "BEGIN SOLUTION" not in stub and 'raise NotImplementedError("your turn")' in stub
    assert (TUTORIALS / "exercises" / solution.name).read_text() == stub, (
        f"tutorials/exercises/{solution.name} is stale: run python tutorials/build_notebooks.py")


def _solution_lines(solution: Path) -> list[str]:
    # The lines between BEGIN and END SOLUTION, without comments and blank lines.
    lines, inside = [], False
    for line in solution.read_text().splitlines():
        stripped = line.split("#")[0].strip()
        if line.strip() in ("# BEGIN SOLUTION", "# END SOLUTION"):
            inside = line.strip() == "# BEGIN SOLUTION"
        elif inside and stripped:
            lines.append(stripped)
    return _code_lines("\n".join(lines))


def _code_lines(text: str) -> list[str]:
    # Loop headers like `for i in range(ho):` and shape unpacking like `kh, kw = w.shape` start
    # every loop nest of the notebooks: left out.
    return [s for s in (line.split("#")[0].strip() for line in text.splitlines())
            if s and not re.fullmatch(r"for \w+ in range\(\w+\):|[\w, ]+ = \w+\.shape", s)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_notebook_shows_no_solution(path):
    # A student opens blank exercise cells; no cell (nor any output) may hold four consecutive
    # lines of a solution (fewer occur in the scaffolds the exercises build on), and exercise and
    # check cells keep no outputs of a run with the solutions.
    nb = nbformat.read(path, as_version=4)
    solutions = [_solution_lines(s) for s in SOLUTIONS]
    runs = {tuple(lines[k:k + 4]) for lines in solutions for k in range(len(lines) - 3)}
    for index, cell in enumerate(nb.cells):
        marks = cell.metadata.get("tutorial", {})
        assert "BEGIN SOLUTION" not in cell.source, (path.name, index)
        if "exercise" in marks:
            assert 'raise NotImplementedError("your turn")' in cell.source, (path.name, index)
        if marks:
            assert not cell.get("outputs"), f"{path.name} cell {index} stores the output of a solution"
        texts = [cell.source] + ["".join(o.get("text", "")) for o in cell.get("outputs", [])]
        for text in texts:
            lines = _code_lines(text)
            shown = [run for run in zip(lines, lines[1:], lines[2:], lines[3:]) if run in runs]
            assert not shown, f"{path.name} cell {index} shows a solution: {shown[0]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_matches_its_source(path):
    # The notebooks are written from tutorials/src/ by build_notebooks.py; a stale one teaches
    # something its source no longer says.
    sources = {BUILDER.source_module(s).FILENAME: s for s in sorted((TUTORIALS / "src").glob("nb*.py"))}
    fresh = BUILDER.cells_of(sources[path.name])
    stored = nbformat.read(path, as_version=4).cells
    assert [(c.cell_type, c.source) for c in fresh] == [(c.cell_type, c.source) for c in stored], (
        f"{path.name} is stale: run python tutorials/build_notebooks.py")


def test_runner_puts_the_solutions_in_and_takes_them_out():
    path = NOTEBOOKS[0]
    stored = nbformat.read(path, as_version=4)
    injected = nbformat.read(path, as_version=4)
    assert RUNNER.inject_solutions(injected) >= 3
    exercises = [k for k, c in enumerate(stored.cells) if RUNNER.exercise_of(c)]
    assert all("NotImplementedError" not in injected.cells[k].source for k in exercises)
    restored = RUNNER.for_students(injected, stored)
    assert [c.source for c in restored.cells] == [c.source for c in stored.cells]


def _grade(solutions: bool, files: str = "test_nb*.py") -> tuple[int, int, str]:
    env = dict(os.environ, NPXCEPTION_SOLUTIONS="1" if solutions else "0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TUTORIALS.parent), env.get("PYTHONPATH")]))
    paths = sorted(str(p) for p in (TUTORIALS / "exercises").glob(files))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
                            cwd=TUTORIALS.parent, env=env, capture_output=True, text=True)
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed)", result.stdout)}
    return counts.get("passed", 0), counts.get("failed", 0), result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_exercise_checks_pass_on_the_solutions():
    passed, failed, output = _grade(solutions=True)
    assert passed >= 24 and failed == 0, output


@pytest.mark.slow
def test_exercise_checks_fail_on_the_unsolved_exercises():
    passed, failed, output = _grade(solutions=False)
    assert passed == 0 and failed >= 24, output


@pytest.mark.slow
def test_grader_refuses_the_known_shortcuts():
    # Wrong answers that used to pass (wrappers of npxception.ops, the backends or the trainer's SGD,
    # importing the solutions, races, serial kernels, a bad work split on the GPU, two passes where
    # one is asked for, a split that follows the thread count) fail, naming what failed.
    passed, failed, output = _grade(solutions=False, files="test_grader.py")
    assert passed >= 68 and failed == 0, output


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path):
    # A failing cell raises nbclient's CellExecutionError, with the cell and its traceback.
    executed = RUNNER.execute(path, fast=True, cwd=tmp_path, solutions=True)
    nbformat.write(executed, tmp_path / path.name)  # pytest keeps the last runs: open it to look
    last = executed.cells[-1]
    printed = "".join(out.get("text", "") for out in last.get("outputs", []))
    assert "notebook runtime" in printed and "(fast mode)" in printed, (
        f"{path.name} did not run to its last cell in fast mode: {printed!r}")
