"""Write the tutorial notebooks (`tutorials/NN_*.ipynb`) from their sources in `tutorials/src/`,
and the exercise files (`tutorials/exercises/nbNN.py`) from the solutions (`tutorials/solutions/`).

Each source module defines `FILENAME` and `CELLS`, a list of `md(...)`, `code(...)` and
`exercise(...)` cells. The notebooks are written without outputs; `python tutorials/run_all.py`
then executes them in place. An exercise file is its solution file with every block between
`# BEGIN SOLUTION` and `# END SOLUTION` replaced by `raise NotImplementedError`.

    python tutorials/build_notebooks.py          # rebuild every notebook (and the exercise files)
    python tutorials/build_notebooks.py 03       # only those whose name starts with 03
    python tutorials/build_notebooks.py --text   # refresh only the markdown of the stored
                                                 # notebooks, keeping their code and outputs
"""

from __future__ import annotations

import ast
import importlib.util
import sys
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


def stub_text(solution: Path) -> str:
    """The exercise file for `solution`: its docstring replaced, its solution blocks cut out."""
    text = solution.read_text()
    lines, out, skipping = text.splitlines(), [], False
    body = ast.parse(text).body
    has_docstring = body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    start = body[0].end_lineno if has_docstring else 0  # the header replaces the docstring
    for line in lines[start:]:
        stripped = line.strip()
        if stripped == "# BEGIN SOLUTION":
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("your turn")')
            skipping = True
        elif stripped == "# END SOLUTION":
            skipping = False
        elif not skipping:
            out.append(line)
    if skipping:
        raise ValueError(f"{solution}: a BEGIN SOLUTION has no END SOLUTION")
    return STUB_HEADER.format(name=solution.stem) + "\n".join(out).lstrip("\n") + "\n"


def write_stubs() -> list[Path]:
    """Write exercises/nbNN.py for every solutions/nbNN.py; returns the paths written."""
    written = []
    for solution in sorted(SOLUTIONS.glob("nb*.py")):
        target = EXERCISES / solution.name
        target.write_text(stub_text(solution))
        written.append(target)
    return written


def cells_of(path: Path) -> list:
    """The notebook cells (nbformat nodes) of one source module, with stable ids."""
    module = load_source(path)
    cells = []
    for index, (kind, text) in enumerate(module.CELLS):
        text = text.strip("\n")
        cell = (nbformat.v4.new_markdown_cell(text) if kind == "md"
                else nbformat.v4.new_code_cell(text))
        cell.id = f"cell-{index:02d}"  # stable ids: a rebuild changes only what changed
        cells.append(cell)
    return cells


def refresh_text(path: Path) -> Path:
    """Replace the markdown cells of the stored notebook with the source's, keeping the outputs.

    Only for text edits: the code cells must be unchanged, or the outputs would not belong to them.
    """
    module = load_source(path)
    target = HERE / module.FILENAME
    stored = nbformat.read(target, as_version=4)
    fresh = cells_of(path)
    if [c.cell_type for c in fresh] != [c.cell_type for c in stored.cells] or any(
            f.source != s.source for f, s in zip(fresh, stored.cells) if f.cell_type == "code"):
        raise ValueError(f"{target.name}: the code cells changed; rebuild and rerun it instead")
    for f, s in zip(fresh, stored.cells):
        s.source = f.source
    nbformat.write(stored, target)
    return target


def build(path: Path) -> Path:
    """Turn one source module into a notebook next to this script; returns the notebook's path."""
    module = load_source(path)
    nb = nbformat.v4.new_notebook()
    nb.cells.extend(cells_of(path))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    target = HERE / module.FILENAME
    nbformat.validate(nb)
    nbformat.write(nb, target)
    return target


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(SOURCES))  # the sources import their cell constructors from cells.py
    text_only = "--text" in argv
    prefixes = [a for a in argv if a != "--text"] or [""]
    for path in sorted(SOURCES.glob("nb*.py")):
        if any(path.stem[2:].startswith(p) for p in prefixes):
            target = refresh_text(path) if text_only else build(path)
            print(f"wrote {target.relative_to(HERE.parent)}")
    if not text_only:
        for stub in write_stubs():
            print(f"wrote {stub.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
