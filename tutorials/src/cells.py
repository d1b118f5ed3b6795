"""The cell constructors every notebook source uses.

A cell is (kind, text, metadata). Exercise cells carry {"tutorial": {"exercise": "nbNN", "names":
[...]}}: the notebook shows the blank version (signature, docstring, `raise NotImplementedError`),
and `run_all.py` can put the solution from tutorials/solutions/ in its place before running.
Check cells carry {"tutorial": {"check": true}}: their stored outputs are never kept, since the
stored notebook's blank exercises would not produce them.
"""

import ast
from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


def md(text: str) -> tuple[str, str, dict]:
    """A markdown cell."""
    return ("md", text, {})


def code(text: str) -> tuple[str, str, dict]:
    """A code cell."""
    return ("code", text, {})


def check(text: str) -> tuple[str, str, dict]:
    """A code cell that grades an exercise (its output is not stored)."""
    return ("code", text, {"tutorial": {"check": True}})


def solution_source(notebook: str, *names: str) -> str:
    """The source of top-level functions or assignments `names` in solutions/<notebook>.py."""
    text = (SOLUTIONS / f"{notebook}.py").read_text()
    lines = text.splitlines()
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.Assign)):
            name = node.name if isinstance(node, ast.FunctionDef) else node.targets[0].id
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            last = node.end_lineno
            while last < len(lines) and lines[last].strip() == END:  # a comment ends no node
                last += 1
            found[name] = "\n".join(lines[first - 1:last])
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"solutions/{notebook}.py has no {missing}")
    return "\n\n\n".join(found[n] for n in names)


def blank(text: str, where: str = "the solution") -> str:
    """`text` with every block between BEGIN and END SOLUTION replaced by `raise NotImplementedError`."""
    out, skipping = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("your turn")')
            skipping = True
        elif stripped == END:
            skipping = False
        elif not skipping:
            out.append(line)
    if skipping:
        raise ValueError(f"{where}: a BEGIN SOLUTION has no END SOLUTION")
    return "\n".join(out)


def exercise(notebook: str, *names: str) -> tuple[str, str, dict]:
    """A "your turn" code cell: `names` from solutions/<notebook>.py with the solutions cut out."""
    header = (f"# YOUR TURN: write the body in place of `raise NotImplementedError`, run this cell, then the\n"
              f"# check below. (Or write it in tutorials/exercises/{notebook}.py and run\n"
              f"# `pytest tutorials/exercises/test_{notebook}.py`; stuck? tutorials/solutions/{notebook}.py)\n")
    text = header + blank(solution_source(notebook, *names), f"solutions/{notebook}.py")
    return ("code", text, {"tutorial": {"exercise": notebook, "names": list(names)}})
