"""Write the tutorial notebooks (`tutorials/NN_*.ipynb`) from their sources in `tutorials/src/`,
and the exercise files (`tutorials/exercises/nbNN.py`) from the solutions (`tutorials/solutions/`).

Each source module defines `FILENAME` and `CELLS`, a list of `md(...)`, `code(...)`, `check(...)`
and `exercise(...)` cells (src/cells.py). The notebooks are what a student opens: every exercise
cell is blank (its solution blocks cut out, as in the exercise files), and no solution is stored.

A rebuild keeps the stored outputs of every code cell whose code did not change, comments and
layout aside (the outputs come from a full run, `python tutorials/run_all.py --solutions`); a new
or edited cell gets no output, and neither do exercise and check cells, whose outputs would come
from the solutions. An exercise
file is its solution file with every block between `# BEGIN SOLUTION` and `# END SOLUTION`
replaced by `raise NotImplementedError`.

    python tutorials/build_notebooks.py          # rebuild every notebook (and the exercise files)
    python tutorials/build_notebooks.py 03       # only those whose name starts with 03
    python tutorials/build_notebooks.py --clear  # rebuild without any stored outputs
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
SOLUTIONS = HERE / "solutions"
EXERCISES = HERE / "exercises"
STUB_HEADER = (
    '"""Your turn: write each function in place of its `raise NotImplementedError`, then grade it\n'
    "with `pytest tutorials/exercises/test_{name}.py`. Written from tutorials/solutions/{name}.py by\n"
    'build_notebooks.py (rebuilding overwrites this file: keep your answers elsewhere if you rebuild)."""\n'
    "# ruff: noqa: F401  (the solutions' imports stay, for your code to use)\n\n")


def load_source(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CELLS = load_source(SOURCES / "cells.py")  # the sources' cell constructors, and the solution cutter


def stub_text(solution: Path) -> str:
    """The exercise file for `solution`: its docstring replaced, its solution blocks cut out."""
    text = solution.read_text()
    body = ast.parse(text).body
    has_docstring = body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    start = body[0].end_lineno if has_docstring else 0  # the header replaces the docstring
    rest = "\n".join(text.splitlines()[start:])
    return STUB_HEADER.format(name=solution.stem) + CELLS.blank(rest, str(solution)).lstrip("\n") + "\n"


def write_stubs() -> list[Path]:
    """Write exercises/nbNN.py for every solutions/nbNN.py; returns the paths written."""
    written = []
    for solution in sorted(SOLUTIONS.glob("nb*.py")):
        target = EXERCISES / solution.name
        target.write_text(stub_text(solution))
        written.append(target)
    return written


def role(cell) -> str:
    """"exercise", "check" or "" for a notebook cell, from the metadata the sources give it."""
    marks = cell.get("metadata", {}).get("tutorial", {})
    return "exercise" if "exercise" in marks else "check" if marks.get("check") else ""


def source_module(path: Path):
    """One notebook source module (it imports its cell constructors from cells.py)."""
    sys.path.insert(0, str(SOURCES))
    try:
        return load_source(path)
    finally:
        sys.path.remove(str(SOURCES))


def cells_of(path: Path) -> list:
    """The notebook cells (nbformat nodes) of one source module, with stable ids."""
    module = source_module(path)
    cells = []
    for index, (kind, text, metadata) in enumerate(module.CELLS):
        text = text.strip("\n")
        cell = (nbformat.v4.new_markdown_cell(text) if kind == "md"
                else nbformat.v4.new_code_cell(text))
        cell.metadata.update(metadata)
        cell.id = f"cell-{index:02d}"
        cells.append(cell)
    return cells


def same_code(source: str) -> str:
    """What a cell's outputs depend on: its syntax tree, so that an edit of comments or layout alone
    keeps the outputs (the source itself where it does not parse)."""
    try:
        return ast.dump(ast.parse(source))
    except SyntaxError:
        return source


def keep_outputs(fresh: list, stored: list) -> int:
    """Give each fresh code cell the outputs of a stored code cell with the same code, in order
    (never to exercise or check cells); returns how many kept them."""
    available = defaultdict(list)
    for cell in stored:
        if cell.cell_type == "code" and not role(cell):
            available[same_code(cell.source)].append(cell)
    kept = 0
    for cell in fresh:
        key = same_code(cell.source)
        if cell.cell_type == "code" and not role(cell) and available.get(key):
            old = available[key].pop(0)
            cell.outputs, cell.execution_count = old.outputs, old.execution_count
            cell.metadata = {**old.metadata, **cell.metadata}  # the run's timestamps stay with them
            kept += bool(old.outputs)
    return kept


def build(path: Path, clear: bool = False) -> tuple[Path, int]:
    """Turn one source module into a notebook next to this script; returns its path and how many
    cells kept their stored outputs."""
    cells = cells_of(path)
    target = HERE / source_module(path).FILENAME
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    kept = 0
    if target.exists() and not clear:
        stored = nbformat.read(target, as_version=4)
        kept = keep_outputs(cells, stored.cells)
        nb.metadata.update(stored.metadata)              # the run's language_info
    nb.cells.extend(cells)
    nbformat.validate(nb)
    nbformat.write(nb, target)
    return target, kept


def main(argv: list[str]) -> None:
    clear = "--clear" in argv
    prefixes = [a for a in argv if a != "--clear"] or [""]
    for path in sorted(SOURCES.glob("nb*.py")):
        if any(path.stem[2:].startswith(p) for p in prefixes):
            target, kept = build(path, clear)
            print(f"wrote {target.relative_to(HERE.parent)} ({kept} cells kept their outputs)")
    for stub in write_stubs():
        print(f"wrote {stub.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
