"""Execute the tutorial notebooks and store them with their outputs.

    python tutorials/run_all.py            # full mode: every notebook, outputs saved in place
    python tutorials/run_all.py --fast     # fast mode (NPXCEPTION_FAST=1): a quick smoke run
    python tutorials/run_all.py 03 05      # only the notebooks whose names start with 03 or 05

The kernel is always this interpreter's own ipykernel (whatever kernel specs are installed), with
the repository root and this folder on PYTHONPATH, so the notebooks import the working tree's
`npxception` and the exercise checks in `exercises/`.
Figures for the README (`tutorials/figures/*.png`) are written by full runs only.
"""

from __future__ import annotations

import argparse
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


def notebooks(prefixes: list[str] | None = None) -> list[Path]:
    """The tutorial notebooks in reading order, optionally only those starting with a prefix."""
    found = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in prefixes)]
    return found


def execute(path: Path, *, fast: bool, cwd: Path, timeout: int = 1200) -> nbformat.NotebookNode:
    """Run every cell of the notebook at `path` in a fresh kernel; returns the executed notebook.

    Raises nbclient's CellExecutionError (naming the cell and the traceback) if a cell fails.
    """
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["NPXCEPTION_FAST"] = "1" if fast else "0"
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
    args = parser.parse_args(argv)
    paths = notebooks(args.prefixes)
    if not paths:
        print("no notebook matches", args.prefixes, file=sys.stderr)
        return 1
    (HERE / "figures").mkdir(exist_ok=True)
    for path in paths:
        start = time.perf_counter()
        nb = execute(path, fast=args.fast, cwd=HERE)
        nbformat.write(nb, path)
        print(f"{path.name:<48} {time.perf_counter() - start:7.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
