"""Write the tutorial notebooks (`tutorials/NN_*.ipynb`) from their sources in `tutorials/src/`.

Each source module defines `FILENAME` and `CELLS`, a list of `md(...)` and `code(...)` cells. The
notebooks are written without outputs; `python tutorials/run_all.py` then executes them in place.

    python tutorials/build_notebooks.py          # rebuild every notebook
    python tutorials/build_notebooks.py 03       # only those whose name starts with 03
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"


def load_source(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(path: Path) -> Path:
    """Turn one source module into a notebook next to this script; returns the notebook's path."""
    module = load_source(path)
    nb = nbformat.v4.new_notebook()
    for index, (kind, text) in enumerate(module.CELLS):
        text = text.strip("\n")
        cell = (nbformat.v4.new_markdown_cell(text) if kind == "md"
                else nbformat.v4.new_code_cell(text))
        cell.id = f"cell-{index:02d}"  # stable ids: a rebuild changes only what changed
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    target = HERE / module.FILENAME
    nbformat.validate(nb)
    nbformat.write(nb, target)
    return target


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(SOURCES))  # the sources import their cell constructors from cells.py
    prefixes = argv or [""]
    for path in sorted(SOURCES.glob("nb*.py")):
        if any(path.stem[2:].startswith(p) for p in prefixes):
            print(f"wrote {build(path).relative_to(HERE.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
