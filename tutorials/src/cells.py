"""The cell constructors every notebook source uses."""

import ast
from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"


def md(text: str) -> tuple[str, str]:
    """A markdown cell."""
    return ("md", text)


def code(text: str) -> tuple[str, str]:
    """A code cell."""
    return ("code", text)


def solution_source(notebook: str, *names: str) -> str:
    """The source of top-level functions or assignments `names` in solutions/<notebook>.py."""
    text = (SOLUTIONS / f"{notebook}.py").read_text()
    lines = text.splitlines()
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.Assign)):
            name = node.name if isinstance(node, ast.FunctionDef) else node.targets[0].id
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            found[name] = "\n".join(lines[first - 1:node.end_lineno])
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"solutions/{notebook}.py has no {missing}")
    return "\n\n\n".join(found[n] for n in names)


def exercise(notebook: str, *names: str) -> tuple[str, str]:
    """A "your turn" code cell: the solution of `names`, between BEGIN and END SOLUTION markers."""
    header = (f"# YOUR TURN. Replace what lies between BEGIN and END SOLUTION with your own code, or\n"
              f"# write it in tutorials/exercises/{notebook}.py and run "
              f"`pytest tutorials/exercises/test_{notebook}.py`.\n"
              f"# (This stored notebook shows and runs the solution from tutorials/solutions/{notebook}.py.)\n")
    return ("code", header + solution_source(notebook, *names))
