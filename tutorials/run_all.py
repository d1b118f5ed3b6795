"""Execute the tutorial notebooks and store them with their outputs.

    python tutorials/run_all.py --solutions      # full mode, the solutions in the exercise cells
    python tutorials/run_all.py --fast           # fast mode (NPXCEPTION_FAST=1): a quick smoke run
    python tutorials/run_all.py 03 05            # only the notebooks whose names start with 03 or 05

The stored notebooks have blank exercise cells, so a run stops at the first check unless they are
filled in: by you, in the notebook, or with `--solutions` (or NPXCEPTION_SOLUTIONS=1), which puts
each exercise's solution from `solutions/` in its cell before running (the test suite always does).
A run with the solutions stores the notebook with the exercise cells blank again and without the
outputs of the exercise and check cells, so that no stored notebook shows a solution.

The kernel is always this interpreter's own ipykernel (whatever kernel specs are installed), with
the repository root and this folder on PYTHONPATH, so the notebooks import the working tree's
`npxception` and the exercise checks in `exercises/`.
Figures for the README (`tutorials/figures/*.png`) are written by full runs only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _cells():
    spec = importlib.util.spec_from_file_location("tutorial_cells", HERE / "src" / "cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CELLS = _cells()  # solution_source: the solutions the exercise cells name


def exercise_of(cell) -> dict | None:
    """{"exercise": "nbNN", "names": [...]} for an exercise cell, else None."""
    marks = cell.get("metadata", {}).get("tutorial", {})
    return marks if "exercise" in marks else None


def inject_solutions(nb: nbformat.NotebookNode) -> int:
    """Put the solution from solutions/ into every exercise cell; returns how many."""
    count = 0
    for cell in nb.cells:
        marks = exercise_of(cell)
        if marks:
            cell.source = CELLS.solution_source(marks["exercise"], *marks["names"])
            count += 1
    return count


def for_students(executed: nbformat.NotebookNode, stored: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Undo inject_solutions for storing: the exercise cells as they were in `stored` (the
    notebook before the run), and no outputs from exercise or check cells (the solutions made them)."""
    for cell, before in zip(executed.cells, stored.cells):
        marks = cell.get("metadata", {}).get("tutorial", {})
        if exercise_of(cell):
            cell.source = before.source
        if exercise_of(cell) or marks.get("check"):
            cell.outputs, cell.execution_count = [], None
    return executed


def solutions_requested() -> bool:
    return os.environ.get("NPXCEPTION_SOLUTIONS") == "1"


def notebooks(prefixes: list[str] | None = None) -> list[Path]:
    """The tutorial notebooks in reading order, optionally only those starting with a prefix."""
    found = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in prefixes)]
    return found


def execute(path: Path, *, fast: bool, cwd: Path, solutions: bool = False,
            timeout: int = 1200) -> nbformat.NotebookNode:
    """Run every cell of the notebook at `path` in a fresh kernel; returns the executed notebook.

    With `solutions`, the exercise cells run their solutions (inject_solutions), and the returned
    notebook holds them (`for_students` takes them out again before main stores it). Raises
    nbclient's CellExecutionError (naming the cell and the traceback) if a cell fails, a failing
    exercise check included.
    """
    nb = nbformat.read(path, as_version=4)
    if solutions:
        inject_solutions(nb)
    env = dict(os.environ)
    env["NPXCEPTION_FAST"] = "1" if fast else "0"
    # Inside the notebook the grader is always strict: the solutions injected above are ordinary
    # cells of the notebook, graded like a student's answer.
    env.pop("NPXCEPTION_SOLUTIONS", None)
    # The repository root for `npxception`, this folder for `exercises` and `solutions`.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(HERE), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # images in the outputs
    # No kernel directories: the spec manager then offers only the running interpreter's own
    # ipykernel as "python3", never a stale user-level kernel for another Python.
    km = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="run only notebooks starting with these")
    parser.add_argument("--fast", action="store_true", help="fast mode (NPXCEPTION_FAST=1)")
    parser.add_argument("--solutions", action="store_true",
                        help="run the solutions in the exercise cells (also NPXCEPTION_SOLUTIONS=1)")
    args = parser.parse_args(argv)
    solutions = args.solutions or solutions_requested()
    paths = notebooks(args.prefixes)
    if not paths:
        print("no notebook matches", args.prefixes, file=sys.stderr)
        return 1
    (HERE / "figures").mkdir(exist_ok=True)
    for path in paths:
        start = time.perf_counter()
        stored = nbformat.read(path, as_version=4)
        nb = execute(path, fast=args.fast, cwd=HERE, solutions=solutions)
        nbformat.write(for_students(nb, stored) if solutions else nb, path)
        print(f"{path.name:<48} {time.perf_counter() - start:7.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
